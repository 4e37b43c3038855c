"""The case list built to stay fast at a million cases, checked for the same answers.

``Case.area_code`` (the grid's code, copied on the case) carries the scope and
the area filter; a page is one query whose subquery reads the page's keys
from the case table alone (cases.selectors.case_list / case_page). Every page
here is compared with the cases worked out in Python from scratch, for users of
every reach and every kind of filter, paging through ties of reporting time.
"""

from __future__ import annotations

import importlib
import itertools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.scopes import forget_grants
from cases import selectors
from cases.models import Case, CaseState, Category, Kind, Source
from cases.selectors import CaseFilters, case_list, case_page
from cases.services import case_report
from cases.testing import GRID_POINT, make_case_world, member
from geo.models import Area
from geo.partition import partition_community
from geo.services import grids_partition_accept

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 20, 10, 0, tzinfo=TZ)
STATES = [
    CaseState.REPORTED,
    CaseState.FILED,
    CaseState.DISPATCHED,
    CaseState.ACCEPTED,
    CaseState.SUSPENDED,
    CaseState.CLOSED,
    CaseState.CLOSED,
    CaseState.VOIDED,
]


@pytest.fixture
def world(small_city):
    world = make_case_world(small_city)
    # Two grids of one community, and a whole community: other reaches than one grid.
    grids = small_city.grids
    world.users["pair"] = member("pair", "grid_worker", grids[1])
    pair_role = world["pair"].memberships.get()
    pair_role.pk = None
    pair_role.area = grids[2]
    pair_role.save()
    forget_grants(world["pair"])
    world.users["community"] = member("community", "dispatcher", small_city.communities[1])
    return world


def _make_cases(world, n: int = 64) -> list[Case]:
    """``n`` cases over every grid, class, state, department and light, reported in
    bursts that share a moment (ties broken by id)."""
    grids = world.city.grids
    classes = [
        world.garbage,
        world.manhole,
        Category.objects.get(kind=Kind.EVENT, code="0201"),
        Category.objects.get(kind=Kind.COMPONENT, code="0301"),
    ]
    departments = [world.sanitation, world.parks, None]
    sources = [Source.GRID_WORKER, Source.HOTLINE, Source.PORTAL]
    cases = []
    for i in range(n):
        grid = grids[(i * 3) % len(grids)]
        created = NOW - timedelta(hours=(i // 3) * 5)  # three cases a moment
        state = STATES[i % len(STATES)]
        lit = state not in (CaseState.SUSPENDED, CaseState.CLOSED, CaseState.VOIDED)
        # Deadlines around NOW: red, yellow and green among the lit cases.
        due = NOW + timedelta(hours=(i % 5) - 2) if lit else None
        cases.append(
            Case.objects.create(
                number=f"E0101202603{i:06d}",
                kind=classes[i % 4].kind,
                category=classes[i % 4],
                area=grid,
                state=state,
                description="测试",
                lat=GRID_POINT[0],
                lng=GRID_POINT[1],
                source=sources[i % 3],
                department=departments[i % 3],
                step="handle" if lit else "",
                step_deadline=due,
                step_yellow_at=due - timedelta(hours=1, minutes=30) if due else None,
                created_at=created,
                updated_at=created,
            )
        )
    return cases


def _light(case: Case) -> str | None:
    return selectors.case_light(case, now=NOW)


def _expected(world, user, filters: CaseFilters) -> list[int]:
    """The cases ``user`` may see under ``filters``, newest first, worked out in Python."""
    from accounts.scopes import scope_prefixes

    prefixes = scope_prefixes(user, "cases.view_case")
    start = (
        datetime.combine(filters.created_from, datetime.min.time(), tzinfo=TZ)
        if filters.created_from
        else None
    )
    end = (
        datetime.combine(filters.created_to + timedelta(days=1), datetime.min.time(), tzinfo=TZ)
        if filters.created_to
        else None
    )
    found = []
    for case in Case.objects.select_related("area", "category", "department"):
        code = case.area.code
        if prefixes is not None and not any(code.startswith(p) for p in prefixes):
            continue
        if filters.states and case.state not in filters.states:
            continue
        if filters.kind and case.kind != filters.kind:
            continue
        if filters.category and not case.category.code.startswith(filters.category):
            continue
        if filters.area and not code.startswith(filters.area):
            continue
        if filters.department and (
            case.department is None or case.department.code != filters.department
        ):
            continue
        if filters.sources and case.source not in filters.sources:
            continue
        if filters.lights and _light(case) not in filters.lights:
            continue
        if start and case.created_at < start or end and case.created_at >= end:
            continue
        found.append(case)
    found.sort(key=lambda c: (c.created_at, c.pk), reverse=True)
    return [c.pk for c in found]


def _walk(user, filters: CaseFilters, limit: int) -> list[int]:
    """Every page of the list, following the cursors; the ids in the order shown."""
    seen, cursor = [], None
    for _ in range(100):
        rows, cursor = case_page(
            queryset=case_list(user=user, filters=filters, now=NOW), cursor=cursor, limit=limit
        )
        assert len(rows) <= limit
        seen += [r.pk for r in rows]
        if cursor is None:
            return seen
        assert len(rows) == limit
    raise AssertionError("the cursors never ended")


FILTERS = [
    CaseFilters(),
    CaseFilters(states=[CaseState.CLOSED]),
    CaseFilters(states=[CaseState.DISPATCHED, CaseState.ACCEPTED, CaseState.CLOSED]),
    CaseFilters(kind=Kind.COMPONENT),
    CaseFilters(category="01"),
    CaseFilters(category="0201"),
    CaseFilters(category="99"),
    CaseFilters(area="110105001001"),
    CaseFilters(area="11010500100102"),
    CaseFilters(area="110105001002", states=[CaseState.REPORTED, CaseState.CLOSED]),
    CaseFilters(department="SAN"),
    CaseFilters(department="SAN", states=[CaseState.DISPATCHED, CaseState.ACCEPTED]),
    CaseFilters(department="NOPE"),
    CaseFilters(sources=[Source.HOTLINE]),
    CaseFilters(lights=["red"]),
    CaseFilters(lights=["yellow", "green"]),
    CaseFilters(created_from=date(2026, 3, 15), created_to=date(2026, 3, 18)),
]


@pytest.mark.parametrize("username", ["dispatcher", "worker", "pair", "community", "far_worker"])
def test_every_page_of_every_filter_is_what_the_scope_and_filter_say(world, username):
    _make_cases(world)
    user = world[username]
    for filters, limit in itertools.product(FILTERS, (5, 50)):
        want = _expected(world, user, filters)
        assert _walk(user, filters, limit) == want, (filters, limit)
    # Someone's list holds something (the comparison above is not between empties).
    assert _expected(world, user, CaseFilters())


def test_a_superuser_sees_every_case_in_order(world):
    cases = _make_cases(world, 20)
    root = type(world["admin"]).objects.create_superuser(username="root", password="x")
    assert _walk(root, CaseFilters(), 6) == [
        c.pk for c in sorted(cases, key=lambda c: (c.created_at, c.pk), reverse=True)
    ]
    assert _walk(root, CaseFilters(area="11010500100101"), 6) == _expected(
        world, root, CaseFilters(area="11010500100101")
    )


def test_a_page_is_one_query_whatever_the_filters(world, django_assert_num_queries):
    _make_cases(world, 30)
    for username in ("dispatcher", "pair"):
        user = world[username]
        filters = CaseFilters(category="01", department="SAN", area="110105001001")
        case_page(queryset=case_list(user=user, filters=filters, now=NOW), limit=3)  # the grants
        _rows, cursor = case_page(queryset=case_list(user=user, now=NOW), limit=3)
        with django_assert_num_queries(1):
            case_page(queryset=case_list(user=user, filters=filters, now=NOW), limit=3)
        with django_assert_num_queries(1):
            rows, _next = case_page(queryset=case_list(user=user, now=NOW), cursor=cursor, limit=3)
        with django_assert_num_queries(0):
            # What a list row shows is loaded with it.
            shown = [
                (c.number, c.state, c.category.name, c.area.name, c.area.level, _light(c))
                for c in rows
            ]
            shown += [c.department.name for c in rows if c.department_id]
        assert shown


def test_a_list_row_never_loads_the_reporters_contact(world):
    case_report(
        actor=world["clerk"],
        category=world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="路灯不亮",
        source="hotline",
        reporter_name="张三",
        reporter_phone="13912345678",
    )
    [row], _next = case_page(queryset=case_list(user=world["dispatcher"]), limit=10)
    deferred = row.get_deferred_fields()
    assert {"reporter_name", "reporter_phone", "reporter_email", "public_token"} <= deferred
    assert "geometry" in row.area.get_deferred_fields()


# --- the grid's code on the case ----------------------------------------------------------------


def test_a_case_carries_its_grids_code_however_it_is_saved(world):
    grid, other = world.city.grids[0], world.city.grids[4]  # far_worker's grid
    reported = case_report(
        actor=world["worker"],
        category=world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="垃圾",
        source="grid_worker",
    )
    assert reported.area_code == grid.code
    assert Case.objects.get(pk=reported.pk).area_code == grid.code
    # Saved with the grid's id only: the code is read once.
    bare = Case(
        number="E0101202603990001",
        kind=Kind.EVENT,
        category=world.garbage,
        area_id=other.pk,
        description="x",
        lat=0,
        lng=0,
        source=Source.API,
    )
    bare.save()
    assert Case.objects.get(pk=bare.pk).area_code == other.code
    # Moved to another grid with update_fields: the code follows.
    moved = Case.objects.get(pk=reported.pk)
    moved.area = other
    moved.save(update_fields=["area"])
    assert Case.objects.get(pk=reported.pk).area_code == other.code
    assert reported.pk in [c.pk for c in case_list(user=world["far_worker"])]
    assert reported.pk not in [c.pk for c in case_list(user=world["worker"])]


def test_a_repartition_keeps_the_grids_codes_so_the_cases_stay_where_they_were(world):
    community = world.city.communities[0]
    reported = case_report(
        actor=world["worker"],
        category=world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="垃圾",
        source="grid_worker",
    )
    grid = reported.area
    plan = partition_community(community=community, n_grids=6)
    assert grid.code in plan.codes
    grids_partition_accept(community=community, plan=plan)
    # Reused codes are updated in place: the case's grid row and code are unchanged.
    again = Case.objects.select_related("area").get(pk=reported.pk)
    assert (again.area_id, again.area_code, again.area.code) == (grid.pk, grid.code, grid.code)
    assert not Case.objects.exclude(area_code__in=Area.objects.values("code")).exists()
    for username in ("worker", "dispatcher"):
        assert reported.pk in [c.pk for c in case_list(user=world[username])]
    assert reported.pk not in [c.pk for c in case_list(user=world["far_worker"])]


def test_the_migration_copies_every_grids_code(world):
    cases = _make_cases(world, 12)
    Case.objects.update(area_code="")
    migration = importlib.import_module("cases.migrations.0008_list_indexes")
    migration.copy_grid_codes(apps, None)
    for case in cases:
        stored = Case.objects.select_related("area").get(pk=case.pk)
        assert stored.area_code == stored.area.code != ""


# --- the way SQLite reads a page -----------------------------------------------------------------


def _subquery_plan(sql: str) -> tuple[str, bool]:
    """SQLite's plan of a page's key subquery: the index it reads, and whether it sorts."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql)
        rows = cursor.fetchall()
    children: dict[int, list] = {}
    for node, parent, _unused, detail in rows:
        children.setdefault(parent, []).append((node, detail))
    subquery = next(node for node, _p, _u, detail in rows if detail.startswith("LIST SUBQUERY"))
    inside, stack = [], [subquery]
    while stack:
        for node, detail in children.get(stack.pop(), []):
            inside.append((node, detail))
            stack.append(node)
    details = [detail for _node, detail in sorted(inside)]
    read = next(d for d in details if d.startswith(("SCAN", "SEARCH")) and "cases_case" in d)
    return read, any("TEMP B-TREE" in d for d in details)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own plans")
@pytest.mark.parametrize(
    "username, filters, index, sorts",
    [
        ("dispatcher", CaseFilters(), "cases_case_created_id", False),
        ("dispatcher", CaseFilters(states=[CaseState.CLOSED]), "cases_case_state_created", False),
        ("dispatcher", CaseFilters(area="110105001001"), "cases_case_created_id", False),
        ("worker", CaseFilters(), "cases_case_area_created", False),
        # Several values (a department is a subquery of ids too): each value's newest
        # cases in index order, merged by a sort that stops with the page.
        ("dispatcher", CaseFilters(department="SAN"), "cases_case_dept_created", True),
        ("dispatcher", CaseFilters(lights=["red"]), "cases_case_state_created", True),
        ("pair", CaseFilters(), "cases_case_area_created", True),
        (
            "dispatcher",
            CaseFilters(department="SAN", states=[CaseState.DISPATCHED, CaseState.ACCEPTED]),
            "cases_case_dept_state_created",
            True,
        ),
    ],
)
def test_sqlite_reads_a_page_from_an_index_in_list_order(world, username, filters, index, sorts):
    _make_cases(world, 12)
    with CaptureQueriesContext(connection) as queries:
        case_page(queryset=case_list(user=world[username], filters=filters, now=NOW), limit=5)
    read, sorted_keys = _subquery_plan(queries.captured_queries[-1]["sql"])
    assert index in read, read
    assert sorted_keys == sorts, read


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own plans")
def test_sqlite_starts_a_deeper_page_at_the_cursor_not_at_the_newest_case(world):
    cases = _make_cases(world, 12)
    after = sorted(cases, key=lambda c: (c.created_at, c.pk))[5]
    keys = (
        case_list(user=world["dispatcher"], now=NOW)
        .filter(selectors.before_key(after.created_at, after.pk))
        .values("pk")[:6]
    )
    sql, params = keys.query.sql_with_params()
    with connection.cursor() as cursor:
        # Bound parameters, as the page runs: SQLite finds no range in the OR alone.
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = [row[3] for row in cursor.fetchall()]
    assert any("cases_case_created_id (created_at<?)" in step for step in plan), plan
