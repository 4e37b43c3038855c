"""The dispatch console and the case search: scope, groups, dispatch forms, filters, map."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse

from accounts.models import Department, User
from cases import selectors
from cases.models import Case, CaseState, RoutingRule
from cases.selectors import case_actions_for, route_department, route_departments
from cases.services import (
    case_close,
    case_dispatch,
    case_escalate,
    case_file,
    case_report,
    case_transition,
    case_void,
)
from cases.testing import GRID_POINT, OTHER_GRID_POINT, make_case_world, refreshed

TZ = ZoneInfo("Asia/Shanghai")
# A Monday that is a working day; the work hours start at 08:30.
MONDAY = datetime(2026, 3, 2, tzinfo=TZ)
CONSOLE = "/cases/console/"
GEOJSON = "/cases/console/cases.geojson"
SEARCH = "/cases/search/"


def at(hour: int, minute: int = 0) -> datetime:
    return MONDAY.replace(hour=hour, minute=minute)


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def report(world, *, actor=None, point=GRID_POINT, category=None, **extra) -> Case:
    return case_report(
        actor=actor or world["worker"],
        category=category or world.garbage,
        lat=point[0],
        lng=point[1],
        description=extra.pop("description", "垃圾堆在路边"),
        source=extra.pop("source", "grid_worker"),
        **extra,
    )


def file(world, case: Case) -> Case:
    return case_file(case_id=case.pk, expected_version=case.version, actor=world["lead"])


def supervise(world, case: Case) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action="supervise", actor=world["leader"]
    )


def signed_in(client, user: User):
    client.force_login(user)
    return client


def section(body: str, group: str) -> str:
    """The HTML of one console group's section ('' when the group is not shown)."""
    match = re.search(
        rf'<section class="console-group[^"]*" id="group-{group}">(.*?)</section>', body, re.S
    )
    return match.group(1) if match else ""


def lit_world(world) -> dict[str, Case]:
    """At 10:00 on MONDAY: a red, a yellow and a green report, a supervised green one and a
    filed one. The intake step (file) allows one working hour; yellow from 80 %."""
    cases = {}
    with time_machine.travel(at(8, 45), tick=False):
        cases["red"] = report(world, address="红灯路1号")  # due 09:45
    with time_machine.travel(at(9, 10), tick=False):
        cases["yellow"] = report(world)  # due 10:10, yellow from 09:58
    with time_machine.travel(at(9, 40), tick=False):
        cases["supervised"] = supervise(world, report(world))  # due 10:40: green
    with time_machine.travel(at(9, 50), tick=False):
        cases["green"] = report(world)  # due 10:50
        cases["filed"] = file(world, report(world))  # dispatch due 10:50
    return cases


# --- the console --------------------------------------------------------------------------


def test_console_groups_open_cases_supervised_first_then_by_light(world, client):
    cases = lit_world(world)
    with time_machine.travel(at(10), tick=False):
        response = signed_in(client, world["dispatcher"]).get(CONSOLE)
    assert response.status_code == 200
    body = response.content.decode()
    assert cases["supervised"].number in section(body, "supervised")
    assert cases["red"].number in section(body, "red")
    assert cases["yellow"].number in section(body, "yellow")
    green = section(body, "green")
    assert cases["green"].number in green and cases["filed"].number in green
    # Each case is in one group only, and the groups come in this order.
    assert cases["supervised"].number not in green
    positions = [body.index(f'id="group-{g}"') for g in ("supervised", "red", "yellow", "green")]
    assert positions == sorted(positions)
    assert 'id="group-unlit"' not in body  # empty groups are left out
    assert "红灯路1号" in body
    # The page carries the map and its configuration.
    assert 'id="console-map"' in body and 'id="console-map-config"' in body
    assert "vendor/leaflet/leaflet.js" in body and "js/console_map.js" in body


def test_console_leaves_finished_cases_out(world, client):
    filed = file(world, report(world))
    gone = case_void(
        case_id=filed.pk, expected_version=filed.version, actor=world["lead"], note="重复"
    )
    still = report(world)
    body = signed_in(client, world["dispatcher"]).get(CONSOLE).content.decode()
    assert gone.state == CaseState.VOIDED and gone.number not in body
    assert still.number in body
    # Asking the console for finished cases is a field error, not a silent empty list.
    response = client.get(CONSOLE, {"state": "closed"})
    assert response.status_code == 400
    assert 'id="error-state"' in response.content.decode()


def test_outsiders_see_neither_list_nor_map_of_another_community(world, client):
    ours = report(world)
    theirs = report(world, actor=world["far_worker"], point=OTHER_GRID_POINT)
    signed_in(client, world["far_worker"])
    body = client.get(CONSOLE).content.decode()
    assert theirs.number in body and ours.number not in body
    numbers = {f["properties"]["number"] for f in client.get(GEOJSON).json()["features"]}
    assert numbers == {theirs.number}
    # Nothing of community 1 in the filters either: its department, its areas.
    assert world.city.communities[0].code not in body
    body = client.get(SEARCH).content.decode()
    assert theirs.number in body and ours.number not in body

    # A dispatcher of another street sees nothing at all.
    signed_in(client, world["far_dispatcher"])
    assert ours.number not in client.get(CONSOLE).content.decode()
    assert client.get(GEOJSON).json()["features"] == []


def test_people_who_read_no_case_are_refused(world, client):
    nobody = User.objects.create_user(username="nobody")
    signed_in(client, nobody)
    for url in (CONSOLE, GEOJSON, SEARCH, "/cases/search/export.csv"):
        assert client.get(url).status_code == 403, url
    client.logout()
    assert client.get(CONSOLE).status_code == 302  # to the sign-in page


def test_console_department_filter_names_no_department_of_another_community(world, client):
    community_2 = world.city.communities[1]
    Department.objects.create(code="C2WS", name="社区二工作站", area=community_2)
    body = signed_in(client, world["worker"]).get(CONSOLE).content.decode()
    assert "社区二工作站" not in body
    assert world.sanitation.name in body  # the district's bureau serves the worker's grid
    body = signed_in(client, world["far_worker"]).get(CONSOLE).content.decode()
    assert "社区二工作站" in body


# --- dispatch -------------------------------------------------------------------------------


def test_dispatch_form_preselects_the_routed_department(world, client):
    RoutingRule.objects.create(
        category=world.garbage, area=world.city.district, department=world.parks
    )
    case = file(world, report(world))
    assert route_department(category=case.category, area=case.area) == world.parks
    signed_in(client, world["dispatcher"])
    body = client.get(CONSOLE, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    form = re.search(rf'<form id="dispatch-{case.number}".*?</form>', body, re.S).group(0)
    assert f'action="/cases/{case.number}/act/dispatch/"' in form
    assert f'name="version" value="{case.version}"' in form
    assert 'name="department"' in form and 'data-action="dispatch"' in form
    options = dict(re.findall(r'<option value="(\d*)"([^>]*)>', form))
    assert set(options) == {"", str(world.parks.pk), str(world.sanitation.pk)}
    assert (
        "selected" in options[str(world.parks.pk)] and "data-routed" in options[str(world.parks.pk)]
    )
    assert "selected" not in options[str(world.sanitation.pk)]
    assert "园林 (routed)" in form

    # Without a rule nothing is chosen for the dispatcher.
    RoutingRule.objects.all().delete()
    body = client.get(CONSOLE).content.decode()
    form = re.search(rf'<form id="dispatch-{case.number}".*?</form>', body, re.S).group(0)
    assert "data-routed" not in form and '<option value="" selected>' in form


def test_dispatch_form_only_where_the_user_may_dispatch(world, client):
    filed = file(world, report(world))
    reported = report(world)
    escalated = case_escalate(case_id=reported.pk, expected_version=1, actor=world["worker"])
    dispatched = case_dispatch(
        case_id=file(world, report(world)).pk,
        expected_version=2,
        actor=world["dispatcher"],
        department=world.sanitation,
    )
    for username, may in (
        ("dispatcher", True),
        ("lead", True),
        ("leader", False),
        ("worker", False),
    ):
        user = world[username]
        body = signed_in(client, user).get(CONSOLE).content.decode()
        for case in (filed, escalated):
            assert (f'id="dispatch-{case.number}"' in body) is may, (username, case.state)
            # The console offers the form exactly where the transition table allows it.
            assert ("dispatch" in case_actions_for(case=refreshed(case), user=user)) is may
        assert f'id="dispatch-{dispatched.number}"' not in body
        assert f'id="dispatch-{filed.number}-result"' in body or not may


def test_route_departments_agrees_with_route_department(world):
    district, street = world.city.district, world.city.street
    community_1 = world.city.communities[0]
    water = Department.objects.create(code="WATER", name="水务", area=district)
    RoutingRule.objects.create(category=None, area=district, department=world.sanitation)
    RoutingRule.objects.create(category=world.manhole.parent, area=district, department=water)
    RoutingRule.objects.create(category=world.garbage, area=community_1, department=world.parks)
    RoutingRule.objects.create(category=None, area=street, department=water, is_active=False)
    cases = [
        report(world),
        report(world, category=world.manhole),
        report(world, actor=world["far_worker"], point=OTHER_GRID_POINT),
        report(world, actor=world["far_worker"], point=OTHER_GRID_POINT, category=world.manhole),
    ]
    cases = list(
        Case.objects.select_related("category", "area").filter(pk__in=[c.pk for c in cases])
    )
    batch = route_departments(cases)
    expected = {c.pk: route_department(category=c.category, area=c.area) for c in cases}
    assert batch == expected
    assert set(expected.values()) == {world.parks, water, world.sanitation}


# --- filters ------------------------------------------------------------------------------------


def test_filters_narrow_the_list_and_the_map_alike(world, client):
    cases = lit_world(world)
    theirs = report(world, actor=world["far_worker"], point=OTHER_GRID_POINT)
    manhole = report(world, category=world.manhole)
    signed_in(client, world["dispatcher"])

    def listed(query) -> set[str]:
        body = client.get(CONSOLE, query, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="console-list")
        assert body.status_code == 200
        return set(
            re.findall(r'<li class="caserow[^"]*" id="case-([EC]\d+)"', body.content.decode())
        )

    def mapped(query) -> set[str]:
        features = client.get(GEOJSON, query).json()["features"]
        return {f["properties"]["number"] for f in features}

    with time_machine.travel(at(10), tick=False):
        for query, expected in (
            ({"light": "red"}, {cases["red"].number}),
            ({"light": "red,yellow"}, {cases["red"].number, cases["yellow"].number}),
            ({"state": "filed"}, {cases["filed"].number}),
            ({"area": world.city.communities[1].code}, {theirs.number}),
            ({"kind": "component"}, {manhole.number}),
            ({"category": "01", "kind": "component"}, {manhole.number}),
        ):
            assert listed(query) == expected, query
            assert mapped(query) == expected, query
        # A filter of the htmx list answers only the list.
        partial = client.get(
            CONSOLE, {"light": "red"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="console-list"
        )
        assert b"<html" not in partial.content and b"console-map-config" not in partial.content


@pytest.mark.parametrize(
    "query, fields",
    [
        ({"state": "bogus"}, {"state"}),
        ({"light": "blue"}, {"light"}),
        ({"created_from": "2026-13-45"}, {"created_from"}),
        ({"area": "abc", "category": "123456"}, {"area", "category"}),
        ({"source": "pigeon", "kind": "rumour"}, {"source", "kind"}),
    ],
)
def test_bad_filter_values_answer_400_naming_the_fields(world, client, query, fields):
    signed_in(client, world["dispatcher"])
    page = client.get(CONSOLE, query)
    assert page.status_code == 400
    body = page.content.decode()
    for name in fields:
        assert f'id="error-{name}"' in body
    partial = client.get(CONSOLE, query, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="console-list")
    assert partial.status_code == 400
    # The list is swapped in without its form: it names each field itself.
    errors = re.search(r'id="console-filter-errors">(.*?)</div>', partial.content.decode(), re.S)
    assert errors and errors.group(1).count("<li>") == len(fields)
    geojson = client.get(GEOJSON, query)
    assert geojson.status_code == 400 and set(geojson.json()["errors"]) == fields
    search = client.get(SEARCH, query)
    assert search.status_code == 400
    assert all(f'id="error-{name}"' in search.content.decode() for name in fields)


def test_bad_cursor_and_group_answer_400(world, client):
    signed_in(client, world["dispatcher"])
    assert client.get(CONSOLE, {"group": "purple"}).status_code == 400
    assert client.get(CONSOLE, {"group": "red", "cursor": "!!"}).status_code == 400
    assert client.get(SEARCH, {"cursor": "not-a-cursor"}).status_code == 400
    assert client.get(SEARCH, {"limit": "0"}).status_code == 400


def test_console_groups_page_by_keyset(world, client, monkeypatch):
    monkeypatch.setattr(selectors, "CONSOLE_PAGE", 2)
    # Five at one instant: the pages must be cut by id, not by time alone.
    with time_machine.travel(at(9, 50), tick=False):
        made = [report(world) for _ in range(5)]
    signed_in(client, world["dispatcher"])
    with time_machine.travel(at(10), tick=False):
        body = client.get(CONSOLE).content.decode()
        seen = re.findall(r'id="case-([EC]\d+)"', section(body, "green"))
        more = re.search(r'hx-get="([^"]+)"', section(body, "green"))
        while more:
            page = client.get(more.group(1).replace("&amp;", "&"), HTTP_HX_REQUEST="true")
            assert page.status_code == 200
            text = page.content.decode()
            seen += re.findall(r'id="case-([EC]\d+)"', text)
            more = re.search(r'hx-get="([^"]+)"', text)
    assert seen == [c.number for c in reversed(made)]


# --- the map -----------------------------------------------------------------------------------


def test_geojson_keeps_to_the_box(world, client):
    ours = report(world)
    theirs = report(world, actor=world["far_worker"], point=OTHER_GRID_POINT)
    signed_in(client, world["dispatcher"])
    everything = client.get(GEOJSON).json()
    assert {f["properties"]["number"] for f in everything["features"]} == {
        ours.number,
        theirs.number,
    }
    west = client.get(GEOJSON, {"bbox": "116.40,39.90,116.415,39.92"}).json()
    assert [f["properties"]["number"] for f in west["features"]] == [ours.number]
    feature = west["features"][0]
    assert feature["geometry"] == {"type": "Point", "coordinates": [GRID_POINT[1], GRID_POINT[0]]}
    assert feature["properties"]["kind"] == "case" and feature["properties"]["category"] == "0101"
    assert "reporter" not in str(feature)
    for bad in ("1,2,3", "116.5,39.9,116.4,39.95", "a,b,c,d", "nan,1,2,3"):
        response = client.get(GEOJSON, {"bbox": bad})
        assert response.status_code == 400 and "bbox" in response.json()["errors"], bad


def test_geojson_clusters_past_its_cap(world, client, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "CONSOLE_MAP_MAX_POINTS": 4}
    with time_machine.travel(at(8, 45), tick=False):
        late = report(world)
    with time_machine.travel(at(9, 50), tick=False):
        for _ in range(5):
            report(world)
        report(world, actor=world["far_worker"], point=OTHER_GRID_POINT)
    signed_in(client, world["dispatcher"])
    with time_machine.travel(at(10), tick=False):
        body = client.get(GEOJSON, {"bbox": "116.39,39.89,116.45,39.95"}).json()
    assert body["clustered"] is True and body["limit"] == 4
    assert 0 < len(body["features"]) <= 4
    assert all(f["properties"]["kind"] == "cluster" for f in body["features"])
    assert sum(f["properties"]["count"] for f in body["features"]) == 7
    # The cluster holding the overdue case shows red, the worst light in it.
    lights = {f["properties"]["light"] for f in body["features"]}
    assert "red" in lights
    assert late.number not in str(body)


def test_console_and_map_cost_a_bounded_number_of_queries(
    world, client, django_assert_max_num_queries
):
    RoutingRule.objects.create(category=None, area=world.city.district, department=world.sanitation)
    signed_in(client, world["dispatcher"])

    def make(n):
        with time_machine.travel(at(9), tick=False):
            for i in range(n):
                case = report(world)
                if i % 2:
                    file(world, case)

    make(4)
    with time_machine.travel(at(9, 5), tick=False):
        client.get(CONSOLE)  # warm the session and the caches
        with django_assert_max_num_queries(20):
            assert client.get(CONSOLE).status_code == 200
    make(20)
    with time_machine.travel(at(9, 5), tick=False):
        with django_assert_max_num_queries(20):
            body = client.get(CONSOLE).content.decode()
        assert body.count('data-action="dispatch"') == 12
        with django_assert_max_num_queries(8):
            assert len(client.get(GEOJSON).json()["features"]) == 24
        # 13: the page's navigation asks once which case pages the user may use.
        with django_assert_max_num_queries(13):
            assert client.get(SEARCH).status_code == 200


# --- search ------------------------------------------------------------------------------------


def test_search_finds_every_state_page_by_page(world, client):
    filed = file(world, report(world))
    voided = case_void(
        case_id=filed.pk, expected_version=filed.version, actor=world["lead"], note="误报"
    )
    made = [report(world) for _ in range(4)]
    signed_in(client, world["dispatcher"])
    body = client.get(SEARCH).content.decode()
    assert voided.number in body and all(c.number in body for c in made)

    seen, url, pages = [], SEARCH + "?limit=2", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        text = response.content.decode()
        seen += re.findall(r'<tr id="row-([EC]\d+)"', text)
        found = re.search(r'<a href="([^"]+)" rel="next"', text)
        url = SEARCH + found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert pages == 3
    assert seen == [c.number for c in reversed([voided, *made])]


def test_search_filters_and_export_links_carry_the_query(world, client):
    voided = case_void(
        case_id=(c := report(world)).pk,
        expected_version=c.version,
        actor=world["lead"],
        note="误报",
    )
    kept = report(world)
    signed_in(client, world["dispatcher"])
    response = client.get(SEARCH, {"state": "voided", "area": world.city.communities[0].code})
    body = response.content.decode()
    assert voided.number in body and kept.number not in body
    query = f"state=voided&amp;area={world.city.communities[0].code}"
    assert f'href="/cases/search/export.csv?{query}"' in body
    assert f'href="/cases/search/export.xlsx?{query}"' in body
    # The checked state stays checked.
    assert re.search(r'value="voided" checked', body)


def test_closed_cases_are_found_by_the_search(world, client):
    case = file(world, report(world))
    case = case_dispatch(
        case_id=case.pk,
        expected_version=case.version,
        actor=world["dispatcher"],
        department=world.sanitation,
    )
    from cases.services import case_accept, case_check_pass, case_handle

    case = case_accept(case_id=case.pk, expected_version=case.version, actor=world["handler"])
    case = case_handle(case_id=case.pk, expected_version=case.version, actor=world["handler"])
    case = case_check_pass(case_id=case.pk, expected_version=case.version, actor=world["worker"])
    case = case_close(case_id=case.pk, expected_version=case.version, actor=world["lead"])
    signed_in(client, world["dispatcher"])
    assert case.number in client.get(SEARCH, {"state": "closed"}).content.decode()
    assert case.number not in client.get(CONSOLE).content.decode()


def test_the_routes_are_where_the_project_says(world):
    assert reverse("cases:console") == CONSOLE
    assert reverse("cases:console-geojson") == GEOJSON
    assert reverse("cases:search") == SEARCH
    assert reverse("cases:export", args=["csv"]) == "/cases/search/export.csv"


def test_the_dispatch_form_sends_the_case_to_the_chosen_department(world, client):
    RoutingRule.objects.create(
        category=world.garbage, area=world.city.district, department=world.parks
    )
    case = file(world, report(world))
    signed_in(client, world["dispatcher"])
    body = client.get(CONSOLE, {"state": "filed"}).content.decode()
    form = re.search(rf'<form id="dispatch-{case.number}".*?</form>', body, re.S).group(0)
    action = re.search(r'action="([^"]+)"', form).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
    routed = re.search(r'<option value="(\d+)" selected data-routed', form).group(1)
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    assert fields["next"] == "/cases/console/?state=filed"

    # What the form posts: the routed department, the version read, back to the console.
    response = client.post(action, {**fields, "department": routed}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/cases/console/?state=filed"
    dispatched = refreshed(case)
    assert dispatched.state == CaseState.DISPATCHED and dispatched.department == world.parks

    # The same form again is stale: 409, and nothing changes.
    stale = client.post(action, {**fields, "department": routed}, HTTP_HX_REQUEST="true")
    assert stale.status_code == 409
    assert refreshed(case).version == dispatched.version
