"""Eight processes race: the same transition over HTTP on the same cases, and reports."""

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from cases.models import Case, CaseEvent, CaseState
from cases.services import case_report
from cases.testing import GRID_POINT, make_case_world

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 8
CASES = 100

# Each child acts through the whole HTTP stack (middleware, API view, service), as
# an API client would, and reports the status it got for every case.
CHILD = r"""
import json, sys
import django
django.setup()
from django.db import connection
from django.test import Client
from accounts.models import User

job = json.loads(sys.stdin.readline())
client = Client()
client.force_login(User.objects.get(username=job["username"]))
connection.ensure_connection()
print("ready", flush=True)
sys.stdin.readline()  # go
results = {}
for case_id, number, version in job["cases"]:
    response = client.post(
        f"/api/v1/cases/{number}/actions/file",
        data="{}",
        content_type="application/json",
        headers={"If-Match": f'"{version}"'},
    )
    if response.status_code == 200:
        results[case_id] = "won"
    elif response.status_code == 409 and response.json().get("state") == "filed":
        results[case_id] = "conflict"
    else:  # reported to the test, which fails on it
        results[case_id] = f"{response.status_code}: {response.content[:300]!r}"
print(json.dumps(results), flush=True)
"""


def _database_env() -> dict[str, str]:
    """Point a child process at this test's database (the test database, not the dev one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQLITE_PATH": str(db["NAME"])}
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return {"DATABASE_URL": f"postgres://{auth}@{host}:{port}/{db['NAME']}"}


def _read_line(proc, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        raise AssertionError(f"a child process gave no answer: {proc.stderr.read()}")
    return line


def _race(script: str, jobs: list[dict]) -> tuple[list[dict], float]:
    """Run ``script`` in one process per job, all started at the same moment;
    their answers (one JSON line each) and how long the race took."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}}
    env.update(DJANGO_SETTINGS_MODULE="civicgrid.settings", **_database_env())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in jobs
    ]
    try:
        for proc, job in zip(procs, jobs, strict=True):
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
        for proc in procs:
            assert _read_line(proc, 60).strip() == "ready"
        started = time.monotonic()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        answers = [json.loads(_read_line(proc, 120)) for proc in procs]
        return answers, time.monotonic() - started
    finally:
        for proc in procs:
            proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_exactly_one_of_eight_racing_processes_wins_each_case(small_city):
    world = make_case_world(small_city)
    # Each process files as its own shift lead, so each holds a genuine role.
    from cases.testing import member

    leads = [member(f"lead{i}", "shift_lead", small_city.street).username for i in range(PROCESSES)]
    cases = [
        case_report(
            actor=world["worker"],
            category=world.garbage,
            lat=GRID_POINT[0],
            lng=GRID_POINT[1],
            description=f"race {i}",
            source="grid_worker",
        )
        for i in range(CASES)
    ]
    work = [[c.pk, c.number, c.version] for c in cases]

    answers, _elapsed = _race(CHILD, [{"username": username, "cases": work} for username in leads])

    problems = [r for a in answers for r in a.values() if r not in ("won", "conflict")]
    assert problems == []
    for case in cases:
        outcomes = [a[str(case.pk)] for a in answers]
        assert outcomes.count("won") == 1, (case.number, outcomes)
        assert outcomes.count("conflict") == PROCESSES - 1
    assert set(Case.objects.values_list("state", "version")) == {(CaseState.FILED, 2)}
    assert CaseEvent.objects.filter(action="file").count() == CASES
    # Every winner is on record as the one who filed.
    filers = set(CaseEvent.objects.filter(action="file").values_list("actor_username", flat=True))
    assert filers <= set(leads)


REPORTER = r"""
import json, sys
import django
django.setup()
from django.db import connection
from accounts.models import User
from cases.models import Category
from cases.services import case_report

job = json.loads(sys.stdin.readline())
actor = User.objects.get(username=job["username"])
garbage = Category.objects.get(kind="event", code="0101")
connection.ensure_connection()
print("ready", flush=True)
sys.stdin.readline()  # go
numbers = []
for i in range(job["count"]):
    case = case_report(
        actor=actor, category=garbage, lat=job["lat"], lng=job["lng"],
        description=f"{job['username']} {i}", source="grid_worker",
    )
    numbers.append(case.number)
print(json.dumps({"numbers": numbers}), flush=True)
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_racing_reports_get_unique_gapless_numbers(small_city):
    """Eight processes report at once: every case gets its own number, serials 1..N."""
    world = make_case_world(small_city)
    from cases.testing import member

    workers = [
        member(f"w{i}", "grid_worker", small_city.grids[0]).username for i in range(PROCESSES)
    ]
    per_process = 15
    job = {"count": per_process, "lat": GRID_POINT[0], "lng": GRID_POINT[1]}
    answers, _elapsed = _race(REPORTER, [{**job, "username": w} for w in workers])
    numbers = [n for answer in answers for n in answer["numbers"]]
    assert len(numbers) == len(set(numbers)) == PROCESSES * per_process
    serials = sorted(int(n[-4:]) for n in numbers)
    assert serials == list(range(1, PROCESSES * per_process + 1))
    assert Case.objects.count() == PROCESSES * per_process
    assert world.garbage.cases.count() == PROCESSES * per_process
