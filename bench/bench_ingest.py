"""Report ingest over HTTP: the whole pipeline beside a bare DRF insert, same server, same run.

- CivicGrid: ``POST /api/v1/cases`` with a grid worker's bearer token — the
  serializer, the locate, the routing, the deadlines, the duplicate check,
  the numbering, the timeline entry and the audit entry.
- Reference: ``POST /bench/bare`` on the same server — a DRF APIView behind
  the same middleware and the same token authentication that validates a
  three-field serializer and inserts one row into a table of its own (created
  by this benchmark; not a model, no migration). The bench URLconf adds it
  beside the project's URLs; it exists only in this process.

The server is a separate process (Django's threaded WSGI server, the one
``runserver`` uses, without autoreload) on a freshly migrated database holding
the demo city; the clients are 4 threads with keep-alive connections, each
sending a fixed number of requests, the two endpoints alternating round by
round. The figure is wall time per request (1 / throughput); goal: the
pipeline at most twice the bare insert. Run on SQLite and, when
127.0.0.1:5432 answers, on PostgreSQL (a database created and dropped here).

The server sends without Nagle's algorithm (TCP_NODELAY): its handler writes
the headers and the body separately, and otherwise every keep-alive response
waited for the client's delayed ACK (40 ms), which timed the TCP stack and made
the bare insert look about half as fast as it is. Neither endpoint is
favoured: both answer through the same server.

About 3–6 minutes on a busy two-core machine (two servers to prepare, each side
4 rounds × 4 × 40 requests after a warm-up round).

Where the time goes: ``BENCH_INGEST_PROFILE=/some/folder python bench/run.py
ingest`` runs every request of the server under cProfile and logs its queries;
when the server stops it writes, per endpoint and database, ``<db>_<path>.prof``
(open with pstats) and ``<db>_<path>.queries.txt`` (queries per request, most
frequent first). Profiling slows the server down: its figures are not the
benchmark's.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import common

THREADS = 4
PER_THREAD = 40  # requests per thread per round
ROUNDS = 4
PG_URL = "postgres://postgres@127.0.0.1:5432/{name}"
PG_NAME = "civicgrid_bench_ingest"
BARE_TABLE = "bench_ingest_row"
# A folder: the server profiles every request and writes there when it stops.
PROFILE_ENV = "BENCH_INGEST_PROFILE"


# --- the server process -------------------------------------------------------------


def _bare_view():
    from django.db import connection
    from rest_framework import serializers
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Row(serializers.Serializer):
        lat = serializers.FloatField(min_value=-90, max_value=90)
        lng = serializers.FloatField(min_value=-180, max_value=180)
        description = serializers.CharField(max_length=2000)

    class Bare(APIView):
        def post(self, request):
            row = Row(data=request.data)
            row.is_valid(raise_exception=True)
            data = row.validated_data
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {BARE_TABLE} (lat, lng, description, created_by) "
                    "VALUES (%s, %s, %s, %s)",
                    [data["lat"], data["lng"], data["description"], request.user.pk],
                )
            return Response({"ok": True}, status=201)

    return Bare


def serve(port: int) -> None:
    """In the server process: migrate, load the demo city, make the token, then serve."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "civicgrid.settings")
    django.setup()
    import numpy as np
    import shapely
    from django.conf import settings
    from django.core.management import call_command
    from django.core.servers.basehttp import WSGIServer, get_internal_wsgi_application, run
    from django.db import connection
    from django.urls import path

    from accounts.models import User
    from accounts.tokens import token_create
    from geo.demo import DEMO_WORKER_USERNAME, seed_demo_city
    from geo.models import Area, GridStaff

    call_command("migrate", verbosity=0)
    seed_demo_city()
    worker = User.objects.get(username=DEMO_WORKER_USERNAME)
    _token, key = token_create(user=worker, name="bench ingest")
    id_type = "BIGSERIAL" if connection.vendor == "postgresql" else "INTEGER"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        cursor.execute(
            f"CREATE TABLE {BARE_TABLE} (id {id_type} PRIMARY KEY, lat DOUBLE PRECISION, "
            "lng DOUBLE PRECISION, description TEXT, created_by BIGINT)"
        )
    grids = Area.objects.filter(
        pk__in=GridStaff.objects.filter(user=worker).values("area_id")
    ).order_by("code")
    rng = np.random.default_rng(3)
    points = []
    for grid in grids:
        shape = grid.shape
        x0, y0, x1, y1 = shape.bounds
        xs, ys = rng.uniform(x0, x1, 4000), rng.uniform(y0, y1, 4000)
        inside = shapely.contains_xy(shape, xs, ys)
        points += [(float(y), float(x)) for x, y in zip(xs[inside], ys[inside], strict=True)]
    module = type(sys)("bench_ingest_urls")
    from civicgrid import urls as project_urls

    module.urlpatterns = [*project_urls.urlpatterns, path("bench/bare", _bare_view().as_view())]
    sys.modules["bench_ingest_urls"] = module
    settings.ROOT_URLCONF = "bench_ingest_urls"
    settings.DEBUG = False
    app = get_internal_wsgi_application()
    # One log line per request would be timed too. Set after the WSGI module's
    # django.setup(), which configures logging afresh.
    logging.getLogger("django.server").setLevel(logging.WARNING)
    if os.environ.get(PROFILE_ENV):
        app = _profiled(app, Path(os.environ[PROFILE_ENV]), connection.vendor)
    print(
        json.dumps({"port": port, "token": key, "points": points[:5000]}),
        flush=True,
    )
    run("127.0.0.1", port, app, threading=True, server_cls=_NoDelayServer(WSGIServer))


def _NoDelayServer(base):  # noqa: N802 - makes a class
    """``base`` answering without Nagle's algorithm.

    The request handler writes the headers and the body in two sends; with
    Nagle the body waits for the client's delayed ACK of the headers (40 ms
    on Linux), which would time the TCP stack rather than the application.
    """

    class NoDelay(base):
        def get_request(self):
            sock, addr = super().get_request()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock, addr

    return NoDelay


def _profiled(app, out: Path, label: str):
    """``app`` under cProfile and a query log, per path; written out when the server stops.

    For finding where the time goes, never for the figures: profiling slows
    every request down.
    """
    import cProfile
    import pstats
    import re
    import signal
    from collections import Counter, defaultdict

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    lock = threading.Lock()
    profiles: dict[str, list] = defaultdict(list)
    queries: dict[str, Counter] = defaultdict(Counter)
    requests: Counter = Counter()
    literal = re.compile(r"'[^']*'|\d[\d.e+-]*")

    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        profile = cProfile.Profile()
        with CaptureQueriesContext(connection) as captured:
            profile.enable()
            try:
                body = list(app(environ, start_response))
            finally:
                profile.disable()
        with lock:
            profiles[path].append(profile)
            requests[path] += 1
            for query in captured.captured_queries:
                queries[path][literal.sub("?", query["sql"])[:300]] += 1
        return body

    def dump(*_args):
        out.mkdir(parents=True, exist_ok=True)
        with lock:
            for path, items in profiles.items():
                name = label + path.replace("/", "_")
                stats = pstats.Stats(items[0])
                for item in items[1:]:
                    stats.add(item)
                stats.dump_stats(out / f"{name}.prof")
                n = requests[path]
                lines = [
                    f"{path}: {n} requests, {sum(queries[path].values()) / n:.1f} queries each"
                ]
                lines += [f"{c / n:6.2f}  {sql}" for sql, c in queries[path].most_common()]
                (out / f"{name}.queries.txt").write_text("\n".join(lines) + "\n")
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    return wrapped


# --- the clients --------------------------------------------------------------------


def _client(port, token, bodies, path, out, errors):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for body in bodies:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 201:
            errors.append((response.status, payload[:300]))
        elif response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()
    out.append(len(bodies))


def _round(port, token, path, make_body) -> float:
    """Seconds for THREADS × PER_THREAD requests sent by THREADS threads at once."""
    bodies = [[make_body() for _ in range(PER_THREAD)] for _ in range(THREADS)]
    done, errors = [], []
    threads = [
        threading.Thread(target=_client, args=(port, token, b, path, done, errors)) for b in bodies
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{path}: {len(errors)} failed requests, first: {errors[0]}")
    return elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(label: str, env: dict) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_ingest", "--serve", str(port)],
        cwd=common.ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        if not line:
            raise RuntimeError("the bench server did not start")
        ready = json.loads(line)
        token, points = ready["token"], ready["points"]
        for _ in range(100):  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        rnd = random.Random(5)

        def report():
            lat, lng = points[rnd.randrange(len(points))]
            return json.dumps(
                {
                    "kind": "event",
                    "category": "0101",
                    "lat": lat,
                    "lng": lng,
                    "description": "暴露垃圾，影响通行",
                    "source": "grid_worker",
                }
            )

        def bare():
            lat, lng = points[rnd.randrange(len(points))]
            return json.dumps({"lat": lat, "lng": lng, "description": "暴露垃圾，影响通行"})

        # Warm both paths (the grid index, the calendar, the first connections).
        _round(port, token, "/api/v1/cases", report)
        _round(port, token, "/bench/bare", bare)
        ours, ref = [], []
        for _ in range(ROUNDS):
            ours.append(_round(port, token, "/api/v1/cases", report))
            ref.append(_round(port, token, "/bench/bare", bare))
        n = THREADS * PER_THREAD
        pipeline, baseline = sum(ours) / (n * ROUNDS), sum(ref) / (n * ROUNDS)
        common.record(
            f"report ingest over HTTP, {label}",
            value=pipeline * 1000,
            unit="ms/request",
            reference=baseline * 1000,
            reference_name="bare DRF insert of one row",
            goal=2.0,
            note=(
                f"{THREADS} keep-alive clients × {PER_THREAD} requests × {ROUNDS} rounds each; "
                f"pipeline {1 / pipeline:.0f} req/s, bare {1 / baseline:.0f} req/s; Django's "
                "threaded WSGI server; the grid worker's bearer token on both"
            ),
        )
    finally:
        server.terminate()
        try:
            # A profiling server writes its profiles first.
            server.wait(timeout=120 if os.environ.get(PROFILE_ENV) else 10)
        except subprocess.TimeoutExpired:
            server.kill()


def _pg_admin():
    import psycopg

    return psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)


def run() -> None:
    data = common.DATA
    sqlite = Path(data / "ingest.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{sqlite}{suffix}").unlink(missing_ok=True)
    env = {"SQLITE_PATH": str(sqlite), "DATABASE_URL": "", "CIVICGRID_VAR_DIR": str(data)}
    measure("SQLite", env)
    try:
        admin = _pg_admin()
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        print(f"  PostgreSQL at 127.0.0.1:5432 unreachable, skipped ({exc.__class__.__name__})")
        return
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_NAME}")
        try:
            measure("PostgreSQL", {"DATABASE_URL": PG_URL.format(name=PG_NAME)})
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        common.setup_django()
        run()
