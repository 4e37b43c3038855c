"""The cases API: report, list, detail and actions, with their HTTP preconditions."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Role, User
from cases.models import Case, CaseState
from cases.services import case_report
from cases.testing import API_REPORT, GRID_POINT, OTHER_GRID_POINT, make_case_world

URL = "/api/v1/cases"


@pytest.fixture
def world(small_city):
    # The built-in roles of the case loop grant cases.view_case (accounts/roles.py).
    return make_case_world(small_city)


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def report(world, *, actor=None, point=GRID_POINT, **extra) -> Case:
    return case_report(
        actor=actor or world["worker"],
        category=world.garbage,
        lat=point[0],
        lng=point[1],
        description=extra.pop("description", "路边垃圾"),
        source=extra.pop("source", "grid_worker"),
        **extra,
    )


REPORT = {
    **API_REPORT,
    "reporter_name": "张三",
    "reporter_phone": "13912345678",
}


# --- report -------------------------------------------------------------------------------


def test_report_then_a_retry_with_the_same_key_returns_the_first_case(world):
    api = client_for(world["worker"])
    first = api.post(URL, REPORT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["state"] == "reported" and body["area"] == world.grid.code
    assert body["source"] == "api" and body["version"] == 1
    assert first["ETag"] == '"1"'
    assert first["Location"] == f"{URL}/{body['number']}"
    assert [e["action"] for e in body["timeline"]] == ["report"]
    assert "13912345678" not in first.content.decode() and "张三" not in first.content.decode()

    again = api.post(
        URL, {**REPORT, "description": "另一次"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert again.status_code == 200
    assert again.json()["number"] == body["number"]
    assert Case.objects.count() == 1
    # Without a key every POST is a new report.
    assert api.post(URL, REPORT, format="json").status_code == 201
    assert Case.objects.count() == 2


def test_report_errors_name_their_fields(world):
    api = client_for(world["worker"])
    outside = api.post(URL, {**REPORT, "lat": 39.99, "lng": 116.50}, format="json")
    assert outside.status_code == 400
    assert set(outside.json()["errors"]) == {"lat", "lng"}
    bad = api.post(
        URL, {"kind": "rumour", "category": "9", "lat": 500, "description": ""}, format="json"
    )
    assert bad.status_code == 400
    assert {"kind", "category", "lat", "lng", "description"} <= set(bad.json()["errors"])
    unknown = api.post(URL, {**REPORT, "category": "0199"}, format="json")
    assert unknown.status_code == 400 and "category" in unknown.json()["errors"]
    # A point in a grid the worker does not work.
    elsewhere = {**REPORT, "lat": OTHER_GRID_POINT[0], "lng": OTHER_GRID_POINT[1]}
    assert api.post(URL, elsewhere, format="json").status_code == 403
    assert not Case.objects.exists()


# --- list ---------------------------------------------------------------------------------


def test_list_pages_by_cursor_newest_first_without_personal_data(world):
    cases = [report(world, reporter_phone="13912345678") for _ in range(5)]
    api = client_for(world["lead"])
    seen, cursor = [], None
    for expected in (2, 2, 1):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get(URL, query)
        assert page.status_code == 200
        body = page.json()
        assert len(body["results"]) == expected
        assert "13912345678" not in page.content.decode()
        assert "reporter_phone" not in body["results"][0]
        seen += [row["number"] for row in body["results"]]
        cursor = body["next_cursor"]
    assert cursor is None
    assert seen == [c.number for c in reversed(cases)]
    # A case reported meanwhile does not shift the pages already handed out.
    first = api.get(URL, {"limit": 2}).json()
    report(world)
    second = api.get(URL, {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [r["number"] for r in second["results"]] == seen[2:4]


def test_list_filters(world):
    filed = report(world)
    filed.refresh_from_db()
    Case.objects.filter(pk=filed.pk).update(state=CaseState.FILED, department=world.sanitation)
    late = report(world)
    past = timezone.now() - timedelta(minutes=1)
    Case.objects.filter(pk=late.pk).update(step_deadline=past, step_yellow_at=past)
    warned = report(world)
    Case.objects.filter(pk=warned.pk).update(step_yellow_at=past)
    fresh = report(world, source="hotline", actor=world["clerk"])
    api = client_for(world["lead"])

    def numbers(**query):
        response = api.get(URL, query)
        assert response.status_code == 200, response.content
        return {row["number"] for row in response.json()["results"]}

    assert numbers(state="filed") == {filed.number}
    assert numbers(state="filed,reported") == {
        filed.number,
        late.number,
        warned.number,
        fresh.number,
    }
    assert numbers(department="SAN") == {filed.number}
    assert numbers(source="hotline") == {fresh.number}
    assert numbers(light="red") == {late.number}
    assert numbers(light="yellow") == {warned.number}
    assert numbers(light="green") == {filed.number, fresh.number}
    assert numbers(category="01", kind="event") == numbers()
    assert numbers(category="02") == set()
    assert numbers(area=world.city.communities[0].code) == numbers()
    assert numbers(area=world.city.communities[1].code) == set()
    today = timezone.localdate().isoformat()
    assert len(numbers(created_from=today, created_to=today)) == 4
    assert numbers(created_to=(timezone.localdate() - timedelta(days=1)).isoformat()) == set()
    rows = {r["number"]: r for r in api.get(URL).json()["results"]}
    assert rows[late.number]["light"] == "red" and rows[warned.number]["light"] == "yellow"


def test_list_is_limited_to_the_callers_scope(world):
    mine = report(world)
    theirs = report(world, actor=world["far_worker"], point=OTHER_GRID_POINT)
    assert {r["number"] for r in client_for(world["worker"]).get(URL).json()["results"]} == {
        mine.number
    }
    assert client_for(world["far_dispatcher"]).get(URL).json()["results"] == []
    # The district's leader sees both; without cases.view_case, nothing at all.
    leader = client_for(world["leader"])
    assert {r["number"] for r in leader.get(URL).json()["results"]} == {mine.number, theirs.number}
    view_case = Permission.objects.get(content_type__app_label="cases", codename="view_case")
    Role.objects.get(code="leader").permissions.remove(view_case)
    assert client_for(User.objects.get(pk=world["leader"].pk)).get(URL).json()["results"] == []
    # A superuser sees every case.
    root = User.objects.create_superuser(username="root", password=None)
    everything = {r["number"] for r in client_for(root).get(URL).json()["results"]}
    assert everything == {mine.number, theirs.number}


# --- detail and actions --------------------------------------------------------------------


def detail_url(case) -> str:
    return f"{URL}/{case.number}"


def action_url(case, action: str) -> str:
    return f"{URL}/{case.number}/actions/{action}"


def test_detail_has_timeline_light_actions_and_an_etag(world):
    case = report(world)
    response = client_for(world["lead"]).get(detail_url(case))
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    body = response.json()
    assert body["light"] == "green" and body["timeline"][0]["actor"] == "worker"
    assert {"file", "void", "verify_request", "merge", "escalate"} <= set(body["actions"])
    assert "handle_on_spot" not in body["actions"]
    worker_actions = client_for(world["worker"]).get(detail_url(case)).json()["actions"]
    assert set(worker_actions) == {"escalate", "handle_on_spot"}
    assert client_for(world["handler"]).get(detail_url(case)).json()["actions"] == []


def test_an_action_with_if_match_moves_the_case_and_answers_the_new_etag(world):
    case = report(world)
    filed = client_for(world["lead"]).post(
        action_url(case, "file"), {"note": "属实"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert filed.status_code == 200, filed.content
    assert filed["ETag"] == '"2"' and filed.json()["state"] == "filed"
    dispatched = client_for(world["dispatcher"]).post(
        action_url(case, "dispatch"), {"department": "SAN", "version": 2}, format="json"
    )
    assert dispatched.status_code == 200, dispatched.content
    body = dispatched.json()
    assert body["state"] == "dispatched" and body["department"] == "SAN"
    assert [e["action"] for e in body["timeline"]] == ["report", "file", "dispatch"]


def test_a_stale_if_match_gets_409_with_the_current_state(world):
    case = report(world)
    lead = client_for(world["lead"])
    assert (
        lead.post(action_url(case, "file"), {}, format="json", HTTP_IF_MATCH='"1"').status_code
        == 200
    )
    stale = lead.post(
        action_url(case, "void"), {"note": "重复"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert stale.status_code == 409
    body = stale.json()
    assert body["state"] == "filed" and body["version"] == 2 and body["code"] == "conflict"
    assert stale["ETag"] == '"2"'
    assert Case.objects.get(pk=case.pk).state == CaseState.FILED


def test_an_action_without_a_precondition_gets_428(world):
    case = report(world)
    response = client_for(world["lead"]).post(action_url(case, "file"), {}, format="json")
    assert response.status_code == 428
    assert "If-Match" in response.json()["errors"]
    assert Case.objects.get(pk=case.pk).version == 1


def test_refusals_from_the_workflow(world):
    case = report(world)
    worker = client_for(world["worker"])
    assert (
        worker.post(action_url(case, "file"), {}, format="json", HTTP_IF_MATCH='"1"').status_code
        == 403
    )
    lead = client_for(world["lead"])
    closing = lead.post(action_url(case, "close"), {}, format="json", HTTP_IF_MATCH='"1"')
    assert closing.status_code == 400 and closing.json()["code"] == "invalid_transition"
    voiding = lead.post(action_url(case, "void"), {}, format="json", HTTP_IF_MATCH='"1"')
    assert voiding.status_code == 400 and "note" in voiding.json()["errors"]
    assert Case.objects.get(pk=case.pk).version == 1


def test_a_case_out_of_scope_answers_404_like_an_absent_one(world):
    case = report(world)
    far = client_for(world["far_dispatcher"])
    assert far.get(detail_url(case)).status_code == 404
    assert far.get(f"{URL}/E0101209912310001").status_code == 404
    acted = far.post(
        action_url(case, "dispatch"), {"department": "SAN"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert acted.status_code == 404
    assert Case.objects.get(pk=case.pk).version == 1


def test_garbage_input_never_answers_5xx(world):
    case = report(world)
    lead = client_for(world["lead"])
    gets = [
        {"cursor": "!!!"},
        {"cursor": "eyJhIjoxfQ"},
        {"cursor": "WyJub3QgYSBkYXRlIiwgMV0"},
        {"limit": "abc"},
        {"limit": "0"},
        {"limit": "100000"},
        {"state": "nope"},
        {"light": "purple"},
        {"kind": "x"},
        {"category": "abc"},
        {"area": "1" * 40},
        {"created_from": "2026-13-45"},
        {"created_to": "yesterday"},
        {"source": "\x00"},
    ]
    for query in gets:
        response = lead.get(URL, query)
        assert response.status_code == 400, (query, response.status_code)
    posts = [
        (URL, "not json", {}),
        (URL, json.dumps([1, 2]), {}),
        (URL, json.dumps({**REPORT, "lat": "north"}), {}),
        (URL, json.dumps({**REPORT, "lat": float("1e999")}), {}),
        (URL, json.dumps(REPORT), {"HTTP_IDEMPOTENCY_KEY": "k" * 500}),
        (action_url(case, "file"), json.dumps({}), {"HTTP_IF_MATCH": "garbage"}),
        (action_url(case, "file"), json.dumps({}), {"HTTP_IF_MATCH": "*"}),
        (action_url(case, "file"), json.dumps({"version": "x"}), {}),
        (action_url(case, "file"), json.dumps({"version": 1}), {"HTTP_IF_MATCH": '"2"'}),
        (action_url(case, "file"), json.dumps([]), {"HTTP_IF_MATCH": '"1"'}),
        (action_url(case, "rm -rf"), json.dumps({}), {"HTTP_IF_MATCH": '"1"'}),
        (
            action_url(case, "dispatch"),
            json.dumps({"department": "NOPE"}),
            {"HTTP_IF_MATCH": '"1"'},
        ),
        (action_url(case, "merge"), json.dumps({"merge_into": "X"}), {"HTTP_IF_MATCH": '"1"'}),
        (f"{URL}/{'9' * 300}/actions/file", json.dumps({}), {"HTTP_IF_MATCH": '"1"'}),
    ]
    for url, data, headers in posts:
        response = lead.post(url, data, content_type="application/json", **headers)
        assert 400 <= response.status_code < 500, (url, data, headers, response.status_code)
    assert Case.objects.get(pk=case.pk).version == 1
    assert Case.objects.count() == 1
