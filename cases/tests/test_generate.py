"""Generated cases (cases.generate): every state, timelines the workflow allows, real numbers."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import shapely
import time_machine
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone, translation

from accounts.models import Department, Membership
from accounts.scopes import subtree_prefix
from cases import selectors, services, workflow
from cases.generate import DEMO, REALISTIC, generate_cases
from cases.models import Case, CaseEvent, CaseNotice, CaseState, DailyCounter, Source
from cases.sla import yellow_from
from cases.testing import GRID_POINT, make_case_world
from geo.index import locate

pytestmark = pytest.mark.django_db

NOW_SLACK = timedelta(seconds=5)


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def _generated(world, **kwargs):
    options = {"count": 240, "days": 30, "seed": 7, "mix": DEMO, "batch": 70}
    options.update(kwargs)
    return generate_cases(**options)


def _timeline(case):
    return list(CaseEvent.objects.filter(case=case).order_by("at", "id"))


def test_every_state_is_generated(world):
    result = _generated(world)
    states = Counter(Case.objects.values_list("state", flat=True))
    assert set(states) == set(CaseState.values)
    assert result.cases == 240 == sum(states.values())
    assert result.events == CaseEvent.objects.count()
    assert dict(result.states) == dict(states)


def test_even_a_realistic_year_has_every_state(world):
    # Nearly everything finished, yet each open state is there at least once.
    _generated(world, count=60, days=365, mix=REALISTIC, batch=25)
    states = Counter(Case.objects.values_list("state", flat=True))
    assert set(states) == set(CaseState.values)
    assert states[CaseState.CLOSED] > states[CaseState.ACCEPTED]


def test_each_timeline_follows_the_transition_table(world):
    _generated(world)
    department_ids = dict(Department.objects.values_list("code", "pk"))
    holds = defaultdict(list)
    for user_id, role, code, level, department_id in Membership.objects.values_list(
        "user_id", "role__code", "area__code", "area__level", "department_id"
    ):
        holds[user_id].append((role, subtree_prefix(code, level), department_id))
    now = timezone.now()
    for case in Case.objects.select_related("area"):
        events = _timeline(case)
        assert events[0].action == "report" and events[0].from_state == ""
        assert events[0].at == case.created_at
        state, suspended_from, department, transitions = CaseState.REPORTED, "", None, 0
        counts = Counter()
        previous = events[0].at
        for event in events[1:]:
            assert event.at >= previous and event.at <= now + NOW_SLACK, case.number
            previous = event.at
            assert event.from_state == state, (case.number, event.action)
            if event.action == "overdue":
                assert event.to_state == state and event.actor_id is None
                continue
            transition = workflow.TRANSITIONS.get((state, event.action))
            assert transition is not None, (case.number, state, event.action)
            to = suspended_from if transition.to == workflow.PREVIOUS else transition.to
            assert event.to_state == to, (case.number, event.action)
            if event.role == "system":
                # The rating period ran out: CivicGrid closed it as satisfied by default.
                assert event.action == workflow.Action.RATE_SATISFIED and event.actor_id is None
                assert case.public_token and event.data["satisfaction"] == "default"
            elif event.role == "resident":
                # The reporting resident, signed in or through the tracking link.
                assert event.role in transition.roles and case.public_token
                assert event.actor_id in (None, case.reporter_id)
            else:
                # The actor holds the role named, over the grid (and for the department).
                assert event.role in transition.roles, (case.number, event.action, event.role)
            assert event.role in ("system", "resident") or any(
                role == event.role
                and case.area.code.startswith(prefix)
                and (event.role not in workflow.DEPARTMENT or dep == department)
                for role, prefix, dep in holds[event.actor_id]
            ), (case.number, event.action, event.actor_username)
            if event.action == workflow.Action.SUSPEND:
                suspended_from = state
            if event.action == workflow.Action.DISPATCH:
                department = department_ids[event.data["department"]]
            elif event.action == workflow.Action.SEND_BACK:
                department = None
            counts[event.action] += 1
            transitions += 1
            state = to
        assert state == case.state, case.number
        assert case.version == 1 + transitions
        assert case.rework_count == counts[workflow.Action.CHECK_FAIL]
        assert case.send_back_count == counts[workflow.Action.SEND_BACK]
        assert case.postpone_count == counts[workflow.Action.POSTPONE_APPROVE]
        assert case.supervise_count == counts[workflow.Action.SUPERVISE]
        assert case.updated_at == max(e.at for e in events if e.action != "overdue")
        if case.state == CaseState.CLOSED:
            closing = ("close", workflow.Action.RATE_SATISFIED)
            assert case.closed_at == next(e.at for e in reversed(events) if e.action in closing)
        if case.state == CaseState.MERGED:
            assert case.merged_into is not None
            assert events[-1].data["merged_into"] == case.merged_into.number
            assert case.merged_into.created_at <= case.created_at


def test_departments_actors_and_tasks(world):
    _generated(world, ensure=[({world.grid.code}, CaseState.VERIFYING, 2)])
    # Dispatched and later cases went to a department that serves the grid.
    for case in Case.objects.filter(
        state__in=[CaseState.DISPATCHED, CaseState.ACCEPTED]
    ).select_related("department__area", "area"):
        assert case.area.code.startswith(case.department.area.subtree_prefix)
    # The verify and check tasks name the grid's worker; others name nobody.
    worker = world["worker"]
    assert Case.objects.filter(state=CaseState.VERIFYING, assignee=worker).exists()
    assert not Case.objects.filter(
        state__in=[CaseState.CLOSED, CaseState.FILED, CaseState.ACCEPTED], assignee__isnull=False
    ).exists()
    # The generated tasks reach the people's task lists and notices.
    lists = {t.key: t for t in selectors.my_task_lists(user=worker)}
    assert lists["verify"].cases or lists["check"].cases
    assert CaseNotice.objects.filter(recipient=worker).exists()
    # A grid worker's own report names her as reporter, a resident's (the portal) the
    # resident when signed in; a call taken by a clerk names nobody.
    for source, reporter, entered, token in Case.objects.values_list(
        "source", "reporter_id", "created_by_id", "public_token"
    ):
        if source == Source.GRID_WORKER:
            assert reporter == entered is not None
        elif token:
            assert source in services.PUBLIC_SOURCES and reporter == entered
        else:
            assert reporter is None and entered is not None


def test_numbers_follow_the_daily_counters(world):
    _generated(world, count=150, days=3)
    numbers = list(Case.objects.values_list("number", flat=True))
    assert len(set(numbers)) == len(numbers)
    by_day = defaultdict(list)
    for case in Case.objects.select_related("category"):
        day = timezone.localdate(case.created_at)
        serial = int(case.number[13:])
        assert case.number == services.case_number(
            kind=case.kind, category_code=case.category.code, day=day, serial=serial
        )
        by_day[(day, case.kind)].append((case.created_at, case.pk, serial))
    for (day, kind), rows in by_day.items():
        serials = [s for _at, _pk, s in sorted(rows)]
        # 1, 2, 3 … in the order of reporting, and the counter at the last one.
        assert serials == list(range(1, len(rows) + 1)), (day, kind)
        assert DailyCounter.objects.get(date=day, kind=kind).last == len(rows)

    # A real report now takes the next serial of today, never one already given.
    today = timezone.localdate()
    before = DailyCounter.objects.filter(date=today, kind=world.garbage.kind).first()
    case = services.case_report(
        actor=world["worker"],
        category=world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="积存垃圾",
        source=Source.GRID_WORKER,
    )
    assert int(case.number[13:]) == (before.last if before else 0) + 1
    assert Case.objects.filter(number=case.number).count() == 1


def test_a_second_run_continues_the_numbers(world):
    _generated(world, count=60, days=2, seed=1)
    _generated(world, count=60, days=2, seed=2)
    numbers = list(Case.objects.values_list("number", flat=True))
    assert len(set(numbers)) == len(numbers) == 120
    given = Counter(
        (kind, number[5:13]) for kind, number in Case.objects.values_list("kind", "number")
    )
    assert given == Counter(
        {(c.kind, f"{c.date:%Y%m%d}"): c.last for c in DailyCounter.objects.all()}
    )


def test_the_same_seed_twice_gives_other_tracking_links(world):
    # A second run with the same seed makes the same stories, but every tracking
    # link's secret is new (they are unique across the table).
    _generated(world, count=80, seed=3)
    _generated(world, count=80, seed=3)
    tokens = [t for t in Case.objects.values_list("public_token", flat=True) if t]
    assert len(tokens) > 4 and len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", t) for t in tokens)
    assert Case.objects.count() == 160


def test_points_lie_inside_their_grid(world):
    _generated(world, count=120)
    for case in Case.objects.select_related("area"):
        assert case.area.level == 5
        assert case.area_code == case.area.code
        assert case.area.shape.contains(shapely.Point(case.lng, case.lat)), case.number
        assert locate(case.lat, case.lng).grid.code == case.area.code


# A Wednesday morning in Shanghai: steps run in working time, so at an hour outside it
# (a Sunday night, say) a seeded run may hold no case in its warning window at all.
WORKING_MORNING = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)


@time_machine.travel(WORKING_MORNING, tick=False)
def test_deadlines_and_lights_are_consistent(world):
    now = timezone.now()
    result = _generated(world, count=240, now=now)
    from core.calendar_store import work_calendar

    calendar = work_calendar()
    lights = Counter()
    moved = {"resume", "postpone_approve"}
    for case in Case.objects.select_related("category"):
        actions = {e.action for e in _timeline(case)}
        if case.step_deadline is not None:
            assert case.step_yellow_at is not None
            assert case.step_started_at < case.step_yellow_at < case.step_deadline
            if not actions & moved:
                assert case.step_deadline == selectors.step_deadline(
                    category=case.category,
                    step=case.step,
                    urgency=case.urgency,
                    start=case.step_started_at,
                    calendar=calendar,
                )
                assert case.step_yellow_at == yellow_from(
                    started_at=case.step_started_at, deadline=case.step_deadline
                )
                assert case.deadline == services._overall_deadline(
                    category=case.category,
                    urgency=case.urgency,
                    start=case.created_at,
                    calendar=calendar,
                )
        if case.state in workflow.OPEN_STATES:
            assert case.step == workflow.STATE_STEP.get(case.suspended_from or case.state, "")
        else:
            assert case.step == "" and case.step_deadline is None
        swept = case.state in services.SWEPT_STATES
        if swept and case.step_deadline is not None:
            # The sweep has marked what passed, and nothing else.
            assert case.step_overdue == (case.step_deadline <= now), case.number
        if swept and case.deadline is not None and case.deadline <= now:
            assert case.overdue, case.number
        if case.overdue:
            marks = [e for e in _timeline(case) if e.action == "overdue"]
            assert any(e.data["overall_overdue"] for e in marks)
        lights[selectors.case_light(case, now=now)] += 1
    assert lights["green"] and lights["yellow"] and lights["red"], lights
    assert result.cases == 240
    # Nothing the sweep would still mark now.
    assert services.cases_sweep_overdue(now=now) == 0


def test_instants_are_stored_as_the_orm_stores_them(world):
    # Rows are written as text built from microseconds: the same text the ORM writes
    # and compares with (SQLite compares instants as text), to the microsecond.
    _generated(world, count=80)
    names = ("created_at", "step_started_at", "step_deadline", "step_yellow_at", "deadline")
    for case in Case.objects.all():
        for name in (*names, "closed_at", "updated_at", "reporter_purged_at"):
            value = getattr(case, name)
            if value is not None:
                assert Case.objects.filter(pk=case.pk, **{name: value}).exists(), (name, value)
    for event in CaseEvent.objects.exclude(deadline=None)[:400]:
        assert CaseEvent.objects.filter(pk=event.pk, at=event.at, deadline=event.deadline).exists()
    for notice in CaseNotice.objects.all()[:200]:
        assert CaseNotice.objects.filter(pk=notice.pk, created_at=notice.created_at).exists()


def test_the_instant_text_is_the_backends(db):
    from django.db import connection

    from cases.generate import _datetime_adapter
    from core.calendar import from_us

    adapt = _datetime_adapter(connection.vendor)
    rnd = random.Random(3)
    for _ in range(5000):
        us = rnd.randrange(0, 4_000_000_000 * 10**6)
        if rnd.random() < 0.3:
            us -= us % 10**6  # a whole second: no fraction, as str() writes it
        moment = from_us(us)
        if connection.vendor == "sqlite":
            assert adapt(us) == connection.ops.adapt_datetimefield_value(moment)
        else:
            assert datetime.fromisoformat(adapt(us)) == moment
    assert adapt(None) is None


@pytest.mark.django_db(transaction=True)
def test_postgres_locks_what_the_rows_refer_to(small_city):
    # PostgreSQL: COPY, and in a batch's own transaction the per-row foreign key checks
    # replaced by one lock per batch on the rows referred to; a row gone stops the batch.
    from django.db import connection

    from cases.generate import NOTICE_COLUMNS, GenerationError, _hold_references, _writer

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    make_case_world(small_city)
    result = generate_cases(count=60, days=10, seed=4, batch=25, mix=DEMO)
    assert result.cases == Case.objects.count() == 60
    assert result.events == CaseEvent.objects.filter(case__in=Case.objects.all()).count()
    assert result.notices == CaseNotice.objects.filter(recipient__is_active=True).count()
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"  # for the batch's transaction only
    writer = _writer(CaseNotice, NOTICE_COLUMNS)
    row = list(CaseNotice.objects.values_list(*NOTICE_COLUMNS).first())
    with transaction.atomic():
        _hold_references([(writer, [tuple(row)])])
    row[NOTICE_COLUMNS.index("recipient_id")] = 10**9
    with pytest.raises(GenerationError), transaction.atomic():
        _hold_references([(writer, [tuple(row)])])


def test_generation_is_deterministic(world):
    now = timezone.now()
    runs = []
    for _run in range(2):
        with transaction.atomic():
            _generated(world, count=80, now=now, seed=11)
            runs.append(
                list(
                    Case.objects.order_by("created_at").values_list(
                        "number", "state", "category_id", "area_id", "lat", "step_deadline"
                    )
                )
            )
            transaction.set_rollback(True)
    assert runs[0] == runs[1] and len(runs[0]) == 80


def test_an_empty_database_is_refused(db):
    from cases.generate import GenerationError

    with translation.override("en"), pytest.raises(GenerationError, match="grid"):
        generate_cases(count=5)


# --- the command -------------------------------------------------------------------


def _command(*args) -> str:
    out = StringIO()
    call_command("generate_cases", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_command_generates_and_reports_rates(world):
    output = _command("--count", "40", "--days", "5", "--seed", "3", "--workers", "1")
    assert Case.objects.count() == 40
    assert "Generated 40 cases" in output
    assert "cases/s" in output and "rows/s" in output and "timeline entries/s" in output
    assert "States:" in output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--count", "0"], "--count"),
        (["--count", "-5"], "--count"),
        (["--days", "0"], "--days"),
        (["--batch", "0"], "--batch"),
        (["--workers", "0"], "--workers"),
        (["--area", "11x"], "--area"),
    ],
)
def test_command_refuses_bad_input(world, args, message):
    with pytest.raises(CommandError, match=message):
        _command(*args)
    assert not Case.objects.exists()


def test_command_needs_a_city(db):
    with pytest.raises(CommandError, match="seed_demo"):
        _command("--count", "10")


def test_command_needs_grids_in_the_area(world):
    with translation.override("en"), pytest.raises(CommandError, match="grid"):
        _command("--count", "10", "--area", "99")


@pytest.mark.django_db(transaction=True)
def test_worker_processes_write_the_same_cases(small_city):
    make_case_world(small_city)
    now = timezone.now()
    result = generate_cases(count=90, days=10, seed=5, batch=20, workers=2, now=now, mix=DEMO)
    assert result.cases == Case.objects.count() == 90
    numbers = list(Case.objects.values_list("number", flat=True))
    assert len(set(numbers)) == 90
    # Batches are written in order: serials grow with the time of reporting.
    rows = sorted(Case.objects.values_list("created_at", "kind", "number"))
    last = {}
    for created, kind, number in rows:
        day = timezone.localdate(created)
        serial = int(number[13:])
        assert serial == last.get((day, kind), 0) + 1
        last[(day, kind)] = serial
