"""Case list with filters and keyset pages over generated cases, beside the same plain SQL.

The cases are made by ``cases.generate`` (a year of the demo city, default
1,000,000; ``--cases N`` or ``BENCH_CASES=N`` for fewer) in a database of this
benchmark's own, kept in bench/.data between runs (and regenerated when the
count differs); the generation is reported as rows per second.

- CivicGrid: ``cases.selectors.case_list`` + ``case_page`` — what the API's
  list runs — for a mix of filters a dispatcher (the whole district) and a
  grid worker (her grids) use: none, a state, a light, an area prefix, a class
  prefix with a state, a department with states, a week of reporting, and
  deep pages through a cursor; 50 rows a page, the rows read as the API
  reads them (with class, grid and department).
- Reference: a hand-written SELECT with the same WHERE (the scope and area
  filters on the case's own ``area_code``), ORDER BY and LIMIT (the keyset as
  a row comparison) and the columns a list shows, joined, through the
  database cursor. CivicGrid's page is one query too, but it finds the page's
  keys in a subquery on the case table alone and builds model objects.

PostgreSQL's statistics are gathered (VACUUM ANALYZE) before measuring, as
autovacuum does after a bulk load in production; SQLite keeps none (Django
never runs ANALYZE), and the plans are meant to be good without them.

p50 and p95 latency per filter and over the mix; goal p95 ≤ 50 ms (recorded as
the ratio of CivicGrid's p95 to the SQL's, with the 50 ms goal in the note).
SQLite, and PostgreSQL when 127.0.0.1:5432 answers.

Generating 1,000,000 cases takes several minutes per database on two cores;
the queries then take about a minute. ``--cases 100000`` runs in a few minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path

from bench import common

DEFAULT_CASES = 1_000_000
REPEAT = 40
PAGE = 50
GOAL_MS = 50.0
PG_URL = "postgres://postgres@127.0.0.1:5432/{name}"
PG_NAME = "civicgrid_bench_cases"


def _count() -> int:
    for i, arg in enumerate(sys.argv):
        if arg == "--cases" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--cases="):
            return int(arg.split("=", 1)[1])
    return int(os.environ.get("BENCH_CASES", DEFAULT_CASES))


# --- in the worker process --------------------------------------------------------------


def _prepare(count: int) -> dict:
    from django.core.management import call_command

    from cases.demo import ensure_demo_routing
    from cases.generate import generate_cases
    from cases.models import Case
    from geo.demo import DISTRICT_CODE, seed_demo_city
    from geo.models import Area

    call_command("migrate", verbosity=0)
    if Case.objects.count() == count and Area.objects.filter(code=DISTRICT_CODE).exists():
        _gather_statistics()
        return {"generated": False}
    if Area.objects.exists() or Case.objects.exists():
        raise SystemExit("the bench database holds other data: remove it first")
    seed_demo_city()
    ensure_demo_routing()
    result = generate_cases(count=count, days=365, seed=1, workers=2, area_prefix=DISTRICT_CODE)
    _gather_statistics()
    return {
        "generated": True,
        "cases": result.cases,
        "events": result.events,
        "notices": result.notices,
        "seconds": result.seconds,
    }


def _gather_statistics() -> None:
    """PostgreSQL: VACUUM ANALYZE what the list reads (autovacuum's work after a bulk
    load); and check that every case carries its grid's code."""
    from django.db import connection
    from django.db.models import F

    from cases.models import Case

    if Case.objects.exclude(area_code=F("area__code")).exists():
        raise SystemExit("cases without their grid's code: the generator must set area_code")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ("cases_case", "geo_area", "cases_category", "accounts_department"):
                cursor.execute(f"VACUUM ANALYZE {table}")


def _sql(where: list[str], params: list, *, cursor_at=None) -> tuple[str, list]:
    """The hand-written query: the case with its class, grid and department, newest first."""
    from django.db import connection

    adapt = connection.ops.adapt_datetimefield_value
    where = list(where)
    params = [adapt(p) if hasattr(p, "tzinfo") else p for p in params]
    if cursor_at is not None:
        at, pk = cursor_at
        where.append("(c.created_at, c.id) < (%s, %s)")
        params += [adapt(at), pk]
    sql = (
        "SELECT c.*, cat.code, cat.name, cat.name_en, cat.parent_id, "
        "a.code, a.name, a.name_en, a.level, d.code, d.name, d.name_en FROM cases_case c "
        "JOIN cases_category cat ON cat.id = c.category_id "
        "JOIN geo_area a ON a.id = c.area_id "
        "LEFT JOIN accounts_department d ON d.id = c.department_id "
        f"WHERE {' AND '.join(where) or '1 = 1'} "
        f"ORDER BY c.created_at DESC, c.id DESC LIMIT {PAGE + 1}"
    )
    return sql, params


def _mixes(count: int, now) -> list[tuple]:
    """The filters measured: (name, user, CaseFilters, cursor, SQL where terms, SQL params)."""
    from django.utils import timezone

    from accounts.models import User
    from cases import selectors
    from cases.models import Case
    from cases.selectors import LIT_STATES, CaseFilters
    from geo.demo import DEMO_WORKER_USERNAME, DISTRICT_CODE
    from geo.models import GridStaff

    dispatcher = User.objects.get(username="dispatcher")
    worker = User.objects.get(username=DEMO_WORKER_USERNAME)
    worker_grids = sorted(
        GridStaff.objects.filter(user=worker).values_list("area__code", flat=True)
    )
    community = worker_grids[0][:12]
    week_from = timezone.localdate(now) - timedelta(days=120)
    week_to = week_from + timedelta(days=6)
    lit = ", ".join(f"'{s}'" for s in LIT_STATES)
    scope = ["c.area_code LIKE %s"]
    deep = list(
        Case.objects.order_by("-created_at", "-id").values_list("created_at", "pk")[
            min(count - 1, count // 2) : min(count - 1, count // 2) + 1
        ]
    )
    deep_cursor = None
    if deep:
        probe = Case(created_at=deep[0][0], pk=deep[0][1])
        deep_cursor = selectors.encode_cursor(probe)
    start = timezone.make_aware(datetime.combine(week_from, dt_time.min))
    end = timezone.make_aware(datetime.combine(week_to + timedelta(days=1), dt_time.min))
    worker_where = " OR ".join(["c.area_code LIKE %s"] * len(worker_grids))
    mixes = [
        ("all, first page", dispatcher, CaseFilters(), None, scope, [f"{DISTRICT_CODE}%"]),
        (
            "state accepted",
            dispatcher,
            CaseFilters(states=["accepted"]),
            None,
            [*scope, "c.state IN ('accepted')"],
            [f"{DISTRICT_CODE}%"],
        ),
        (
            "light red",
            dispatcher,
            CaseFilters(lights=["red"]),
            None,
            [
                *scope,
                f"c.state IN ({lit})",
                "c.step_deadline IS NOT NULL",
                "c.step_deadline <= %s",
            ],
            [f"{DISTRICT_CODE}%", now],
        ),
        (
            "area = a community",
            dispatcher,
            CaseFilters(area=community),
            None,
            [*scope, "c.area_code LIKE %s"],
            [f"{DISTRICT_CODE}%", f"{community}%"],
        ),
        (
            "class 01 + closed",
            dispatcher,
            CaseFilters(category="01", states=["closed"]),
            None,
            [*scope, "c.state IN ('closed')", "cat.code LIKE %s"],
            [f"{DISTRICT_CODE}%", "01%"],
        ),
        (
            "department + open",
            dispatcher,
            CaseFilters(department=f"{DISTRICT_CODE}-HW", states=["dispatched", "accepted"]),
            None,
            [*scope, "c.state IN ('dispatched', 'accepted')", "d.code = %s"],
            [f"{DISTRICT_CODE}%", f"{DISTRICT_CODE}-HW"],
        ),
        (
            "a week, 4 months ago",
            dispatcher,
            CaseFilters(created_from=week_from, created_to=week_to),
            None,
            [*scope, "c.created_at >= %s", "c.created_at < %s"],
            [f"{DISTRICT_CODE}%", start, end],
        ),
        (
            "deep page (cursor)",
            dispatcher,
            CaseFilters(),
            deep_cursor,
            scope,
            [f"{DISTRICT_CODE}%"],
        ),
        (
            "grid worker, her grids",
            worker,
            CaseFilters(),
            None,
            [f"({worker_where})"],
            [f"{code}%" for code in worker_grids],
        ),
    ]
    return mixes


def _measure(count: int) -> list[dict]:
    from django.db import connection
    from django.utils import timezone

    from cases import selectors

    now = timezone.now()
    mixes = _mixes(count, now)
    results = []
    for name, user, filters, cursor, where, params in mixes:
        cursor_at = selectors.decode_cursor(cursor) if cursor else None
        sql, args = _sql(where, params, cursor_at=cursor_at)

        def civicgrid(user=user, filters=filters, cursor=cursor):
            qs = selectors.case_list(user=user, filters=filters, now=now)
            rows, _next = selectors.case_page(queryset=qs, cursor=cursor, limit=PAGE)
            return rows

        def plain(sql=sql, args=args):
            with connection.cursor() as c:
                c.execute(sql, args)
                return c.fetchall()

        got, want = civicgrid(), plain()
        assert [r.pk for r in got] == [row[0] for row in want[:PAGE]], name
        ours, ref = [], []
        for _ in range(REPEAT):
            t = time.perf_counter()
            civicgrid()
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            plain()
            ref.append(time.perf_counter() - t)
        plan = ""
        if common.percentile(ours, 95) * 1000 > GOAL_MS:
            # The plan of the page's keys (case_page's first query).
            qs = selectors.case_list(user=user, filters=filters, now=now)
            if cursor_at:
                qs = qs.filter(selectors.before_key(*cursor_at))
            plan = qs.values_list("created_at", "pk")[: PAGE + 1].explain()
        results.append({"name": name, "ours": ours, "ref": ref, "rows": len(got), "plan": plan})
    return results


def work(count: int) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "civicgrid.settings")
    django.setup()
    prepared = _prepare(count)
    print(json.dumps({"prepared": prepared}), flush=True)
    print(json.dumps({"results": _measure(count)}), flush=True)


# --- in the benchmark process -------------------------------------------------------------


def measure(label: str, env: dict, count: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_case_list", "--work", str(count)],
        cwd=common.ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case list bench on {label} failed:\n{proc.stderr[-3000:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    prepared = next(x["prepared"] for x in lines if "prepared" in x)
    results = next(x["results"] for x in lines if "results" in x)
    if prepared.get("generated"):
        rows = prepared["cases"] + prepared["events"] + prepared["notices"]
        seconds = prepared["seconds"]
        print(
            f"  generated {prepared['cases']:,} cases, {prepared['events']:,} timeline entries, "
            f"{prepared['notices']:,} notices in {seconds:.0f} s: "
            f"{prepared['cases'] / seconds:,.0f} cases/s, {rows / seconds:,.0f} rows/s",
            flush=True,
        )
        common.record(
            f"case generation, {label}",
            value=seconds / prepared["cases"] * 1e6,
            unit="µs/case",
            reference=seconds / rows * 1e6,
            reference_name="per row written (case, entry or notice)",
            note=(
                f"{prepared['cases']:,} cases with {prepared['events']:,} timeline entries and "
                f"{prepared['notices']:,} notices in {seconds:.0f} s on 2 workers "
                f"({rows / seconds:,.0f} rows/s)"
            ),
        )
    all_ours, all_ref = [], []
    for r in results:
        ours_p50, ours_p95 = (common.percentile(r["ours"], p) * 1000 for p in (50, 95))
        ref_p50, ref_p95 = (common.percentile(r["ref"], p) * 1000 for p in (50, 95))
        all_ours += r["ours"]
        all_ref += r["ref"]
        print(
            f"    {r['name']:<26} p50 {ours_p50:7.2f} ms  p95 {ours_p95:7.2f} ms   "
            f"SQL p50 {ref_p50:7.2f} ms  p95 {ref_p95:7.2f} ms  ({r['rows']} rows)",
            flush=True,
        )
        if r["plan"]:
            print("      plan: " + r["plan"].replace("\n", "\n            "), flush=True)
    ours95 = common.percentile(all_ours, 95) * 1000
    common.record(
        f"case list p95, {count:,} cases, {label}",
        value=ours95,
        unit="ms",
        reference=common.percentile(all_ref, 95) * 1000,
        reference_name="hand-written SQL p95",
        note=(
            f"p50 {common.percentile(all_ours, 50) * 1000:.2f} ms vs SQL "
            f"{common.percentile(all_ref, 50) * 1000:.2f} ms; goal p95 ≤ {GOAL_MS:g} ms "
            f"({'met' if ours95 <= GOAL_MS else 'missed'}); {len(results)} filters × {REPEAT}"
        ),
    )


def run() -> None:
    count = _count()
    sqlite = common.DATA / f"cases-{count}.sqlite3"
    measure("SQLite", {"SQLITE_PATH": str(sqlite), "DATABASE_URL": ""}, count)
    try:
        import psycopg

        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        print(f"  PostgreSQL at 127.0.0.1:5432 unreachable, skipped ({exc.__class__.__name__})")
        return
    name = f"{PG_NAME}_{count}"
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(f"CREATE DATABASE {name}")
    measure("PostgreSQL", {"DATABASE_URL": PG_URL.format(name=name)}, count)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if len(sys.argv) >= 3 and sys.argv[1] == "--work":
        work(int(sys.argv[2]))
    else:
        common.setup_django()
        run()
