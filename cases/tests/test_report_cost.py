"""What a report costs (queries), and the process's copy of the reference data it reads.

The copy (cases.reference) is read only outside a transaction, so the tests that
watch it at work run in transactional tests (``transaction=True``): the usual
test wraps everything in a transaction, where every lookup asks the database.
"""

import math
import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import AuditEntry, Membership, Role
from accounts.tokens import token_create
from cases import reference
from cases.models import Case, Kind, RoutingRule, Step, TimeLimit, Urgency
from cases.selectors import (
    METRES_PER_DEGREE,
    category_by_code,
    duplicate_candidates,
    membership_rows,
    route_department,
    time_limit_for,
)
from cases.services import case_report
from cases.testing import API_REPORT, GRID_POINT, make_case_world
from core.versioning import bump_version
from geo.versioning import bump_area_version

URL = "/api/v1/cases"
REPORT = API_REPORT


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def bearer(user) -> APIClient:
    _token, key = token_create(user=user, name="reporting script")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def warm(settings, **extra) -> None:
    """Copies that stay current for the length of a test unless a change says otherwise."""
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "GEO_INDEX_MAX_STALENESS": 3600,
        "RULES_MAX_STALENESS": 3600,
        "CALENDAR_MAX_STALENESS": 3600,
        **extra,
    }


# --- the report over the API ------------------------------------------------------------


def test_a_report_costs_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    """Inside the test's transaction every lookup asks the database: the upper bound."""
    api = bearer(world["worker"])
    assert api.post(URL, REPORT, format="json").status_code == 201  # first use of the token
    # The token and its audited use; the class, the areas' version (the point-to-grid
    # index is checked on every locate in tests), the grid, the memberships, the
    # routing, the duplicates, the limits of every step in one query; the savepoint,
    # the serial, the case, its timeline entry, its audit entry, the release; at most
    # one calendar version check. Nothing is read back.
    with django_assert_max_num_queries(16):
        response = api.post(URL, {**REPORT, "description": "又一堆"}, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.django_db(transaction=True)
def test_with_warm_copies_a_report_costs_few_queries(small_city, settings):
    world = make_case_world(small_city)
    warm(settings)
    api = bearer(world["worker"])
    assert api.post(URL, REPORT, format="json").status_code == 201  # warms every copy
    with CaptureQueriesContext(connection) as queries:
        response = api.post(URL, {**REPORT, "description": "又一堆"}, format="json")
    assert response.status_code == 201, response.content
    sql = [q["sql"] for q in queries.captured_queries]
    reads = [s for s in sql if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 3, sql  # the token, the memberships, the duplicates
    # (An executemany shows as "N times: INSERT …".)
    writes = [s for s in sql if re.match(r"(\d+ times: )?(INSERT|UPDATE|WITH)", s.lstrip())]
    if connection.vendor == "postgresql":
        # One statement writes it all: the serial, the case, its timeline entry, its audit
        # entry and the token's use, which the request held for it (cases.writes).
        assert len(writes) == 1 and len(sql) == 4, sql
        assert writes[0].startswith("WITH") and writes[0].count("INSERT INTO") == 5, sql
    else:
        # One transaction: the serial, the case, its timeline entry, its audit entry and
        # the token's use; BEGIN and COMMIT where the driver shows them.
        assert len(writes) == 5 and len(sql) <= 10, sql
        assert 'INSERT INTO "accounts_auditentry"' in writes[-1], sql
    assert AuditEntry.objects.filter(action="token_use").count() == 2
    assert AuditEntry.objects.filter(action="case.report").count() == 2
    for table in ("cases_category", "cases_timelimit", "cases_routingrule", "geo_area"):
        assert not any(f'FROM "{table}"' in s for s in reads), (table, sql)


def test_the_answer_to_a_report_is_the_case_as_the_detail_shows_it(world):
    api = bearer(world["worker"])
    earlier = api.post(URL, REPORT, format="json").json()
    created = api.post(URL, {**REPORT, "description": "旁边又一堆"}, format="json")
    assert created.status_code == 201
    detail = api.get(created["Location"])
    assert detail.status_code == 200
    assert created["ETag"] == detail["ETag"]
    body = created.json()
    assert body == detail.json()
    # The duplicate noted in the timeline entry is the one the answer lists.
    assert [d["number"] for d in body["duplicates"]] == [earlier["number"]]
    assert body["timeline"][0]["action"] == "report"
    assert "file" not in body["actions"]  # a grid worker cannot file
    assert "escalate" in body["actions"]


def test_a_retried_report_answers_the_first_case_from_the_database(world):
    api = bearer(world["worker"])
    first = api.post(URL, REPORT, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    again = api.post(URL, REPORT, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert Case.objects.count() == 1


# --- memberships and duplicates, written out as SQL -------------------------------------


def test_membership_rows_read_what_the_orm_would(world):
    lead = world["lead"]
    Membership.objects.create(
        user=lead,
        role=Role.objects.get(code="handler"),
        area=world.city.district,
        department=world.sanitation,
    )
    Membership.objects.create(
        user=lead, role=Role.objects.get(code="dispatcher"), area=world.grid, is_active=False
    )
    expected = Membership.objects.filter(user=lead, is_active=True).values_list(
        "role__code", "role__needs_department", "area__code", "area__level", "department_id"
    )
    assert sorted(membership_rows(lead)) == sorted(expected)
    assert all(isinstance(row[1], bool) for row in membership_rows(lead))
    assert membership_rows(None) == []


def test_duplicates_are_the_nearest_open_cases_whatever_their_number(world):
    lat, lng = GRID_POINT
    radius = world.garbage.duplicate_radius_m
    metres = [2 * i + 1 for i in range(radius // 2)]  # 1, 3, 5 … metres east
    for far in reversed(metres):
        case_report(
            actor=world["worker"],
            category=world.garbage,
            lat=lat,
            lng=lng + far / (METRES_PER_DEGREE * math.cos(math.radians(lat))),
            description=f"{far} m",
            source="grid_worker",
        )
    found = duplicate_candidates(category=world.garbage, lat=lat, lng=lng)
    assert [d.description for d in found] == [f"{m} m" for m in metres[:10]]
    assert all(abs(d.distance_m - m) < 0.2 for d, m in zip(found, metres, strict=False))
    # The case asking is left out of its own duplicates.
    nearest = Case.objects.get(description="1 m")
    found = duplicate_candidates(category=world.garbage, lat=lat, lng=lng, exclude_pk=nearest.pk)
    assert found[0].description == "3 m"


# --- the copy of time limits, classes, routing rules and grids --------------------------


@pytest.mark.django_db(transaction=True)
def test_the_copy_of_time_limits_follows_every_change(small_city, settings):
    world = make_case_world(small_city)
    warm(settings)
    garbage = world.garbage
    inherited = time_limit_for(category=garbage, step=Step.FILE)
    assert inherited.category_id == garbage.parent_id
    with CaptureQueriesContext(connection) as queries:
        assert time_limit_for(category=garbage, step=Step.FILE) == inherited
        assert reference.step_limits(category=garbage, urgency=Urgency.NORMAL)[Step.FILE] == (
            inherited
        )
    assert len(queries) == 0  # from the copy

    # Saved through the ORM in this process: seen at once.
    own = TimeLimit.objects.create(
        category=garbage, step=Step.FILE, urgency=Urgency.NORMAL, amount=3, unit="working_hours"
    )
    assert time_limit_for(category=garbage, step=Step.FILE) == own
    # Changed by a bulk write (no signal): the copy holds until someone says so …
    TimeLimit.objects.filter(pk=own.pk).update(amount=5)
    assert time_limit_for(category=garbage, step=Step.FILE).amount == 3
    # … as another process does by bumping the counter; seen at the next check.
    bump_version(reference.RULES)
    warm(settings, RULES_MAX_STALENESS=0)
    assert time_limit_for(category=garbage, step=Step.FILE).amount == 5
    # Inside a transaction the database answers, with what that transaction sees.
    with transaction.atomic():
        TimeLimit.objects.filter(pk=own.pk).update(amount=7)
        assert time_limit_for(category=garbage, step=Step.FILE).amount == 7
        transaction.set_rollback(True)
    assert time_limit_for(category=garbage, step=Step.FILE).amount == 5
    # A bulk write nobody announced is seen once the copy is RULES_MAX_AGE old.
    TimeLimit.objects.filter(pk=own.pk).update(amount=9)
    assert time_limit_for(category=garbage, step=Step.FILE).amount == 5
    warm(settings, RULES_MAX_STALENESS=0, RULES_MAX_AGE=0)
    assert time_limit_for(category=garbage, step=Step.FILE).amount == 9
    own.delete()
    assert time_limit_for(category=garbage, step=Step.FILE) == inherited


@pytest.mark.django_db(transaction=True)
def test_the_copy_of_routing_rules_and_classes_follows_every_change(small_city, settings):
    world = make_case_world(small_city)
    warm(settings)
    garbage, district = world.garbage, world.city.district
    assert route_department(category=garbage, area=world.grid) is None
    fallback = RoutingRule.objects.create(area=district, department=world.sanitation)
    assert route_department(category=garbage, area=world.grid) == world.sanitation
    # A rule on the major class beats the fallback on the same area.
    major = RoutingRule.objects.create(
        category=garbage.parent, area=district, department=world.parks
    )
    assert route_department(category=garbage, area=world.grid) == world.parks
    with CaptureQueriesContext(connection) as queries:
        routed = route_department(category=garbage, area=world.grid)
    assert (routed, len(queries)) == (world.parks, 0)
    # A department closed, a rule switched off, a rule removed: each seen at once.
    world.parks.is_active = False
    world.parks.save()
    assert route_department(category=garbage, area=world.grid) == world.sanitation
    fallback.is_active = False
    fallback.save()
    assert route_department(category=garbage, area=world.grid) is None
    major.delete()
    fallback.delete()
    assert route_department(category=garbage, area=world.grid) is None

    garbage.name = "暴露垃圾（本市）"
    garbage.save()
    found = category_by_code(kind=Kind.EVENT, code="0101")
    assert (found.name, found.parent.code) == ("暴露垃圾（本市）", "01")
    assert category_by_code(kind=Kind.EVENT, code="0199") is None


@pytest.mark.django_db(transaction=True)
def test_the_copy_follows_the_areas(small_city, settings):
    world = make_case_world(small_city)
    warm(settings)
    grid = world.grid
    assert reference.grid_area(grid.code).name == grid.name
    type(grid).objects.filter(pk=grid.pk).update(name="新的网格名")
    bump_area_version()  # as every write to the areas does
    warm(settings, GEO_INDEX_MAX_STALENESS=0)
    assert reference.grid_area(grid.code).name == "新的网格名"
    with pytest.raises(type(grid).DoesNotExist):
        reference.grid_area("99999999999999")


# --- the duplicate check's index ---------------------------------------------------------


def test_the_duplicate_check_reads_the_open_cases_near_the_point_from_their_index(world):
    """The states are written into the query as the partial index names them, so the
    database sees that cases_case_open_nearby applies (a parameter would hide it)."""
    from datetime import timedelta

    from django.utils import timezone

    from cases.selectors import _duplicates_sql

    api = bearer(world["worker"])
    for _ in range(3):
        assert api.post(URL, REPORT, format="json").status_code == 201
    now, lat, lng = timezone.now(), GRID_POINT[0], GRID_POINT[1]
    adapt = connection.ops.adapt_datetimefield_value
    params = [world.garbage.pk, adapt(now - timedelta(hours=72)), adapt(now)]
    params += [lat - 0.001, lat + 0.001, lng - 0.001, lng + 0.001, lat, lat, lng, lng, 1.0, 20]
    sql = _duplicates_sql(excluding=False)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql.replace("%s", "?"), params)
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "cases_case_open_nearby" in plan, plan
    assert [d.number for d in duplicate_candidates(category=world.garbage, lat=lat, lng=lng)]
