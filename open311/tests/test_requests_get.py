"""GET service requests and GET one request: public cases only, no person, the spec's fields."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cases.models import Case, CasePhoto, CaseState, Category, Kind
from cases.services import case_rate, case_report_result, case_transition
from cases.testing import GRID_POINT, OTHER_GRID_POINT
from cases.workflow import Action
from open311.formats import w3c

from .conftest import BASE, errors_of, parse, post_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]
PERSONAL = ("zhang.san@example.com", "13900001111", "张三", "小区门口垃圾没人清", "secret-note")


def report(world, *, category=None, point=GRID_POINT, source="portal", actor=None, **extra):
    fields = {
        "actor": actor,
        "category": category or world.garbage,
        "lat": point[0],
        "lng": point[1],
        "description": "小区门口垃圾没人清",
        "source": source,
        "reporter_email": "zhang.san@example.com",
        "reporter_phone": "13900001111",
        "reporter_name": "张三",
        "public": source in ("portal", "open311"),
    }
    fields.update(extra)
    case, _created = case_report_result(**fields)
    return case


def act(action, case, actor, **extra) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action=action, actor=actor, **extra
    )


def one(client, number, fmt="json"):
    response = client.get(f"{BASE}/requests/{number}.{fmt}")
    assert response.status_code == 200, response.content
    body = parse(response)
    if fmt == "json":
        (row,) = body
        return row
    assert body.tag == "service_requests"
    (request,) = body
    assert request.tag == "request"
    return {c.tag: c.text for c in request}


def listed(client, query="", fmt="json") -> list:
    response = client.get(f"{BASE}/requests.{fmt}{query}")
    assert response.status_code == 200, response.content
    return parse(response)


def test_the_list_in_json_carries_the_specs_fields(client, world):
    case = report(world, address="建国门外大街1号")
    (row,) = listed(client)
    assert list(row) == REQUEST_FIELDS
    assert row["service_request_id"] == case.number
    assert row["status"] == "open"
    assert row["status_notes"] == "Report received"
    assert row["service_name"] == "Exposed garbage"
    assert row["service_code"] == "E0101"
    assert row["description"] is None
    assert row["agency_responsible"] is None
    assert row["service_notice"].startswith("The responsible department handles it within")
    assert row["requested_datetime"] == w3c(case.created_at)
    assert row["requested_datetime"].endswith("+08:00")
    assert row["updated_datetime"] == w3c(case.updated_at)
    assert row["expected_datetime"] == w3c(case.deadline)
    assert row["address"] == "建国门外大街1号"
    assert row["address_id"] is None and row["zipcode"] is None
    assert (row["lat"], row["long"]) == GRID_POINT
    assert row["media_url"] is None


def test_the_list_in_xml_carries_the_specs_elements(client, world):
    case = report(world)
    root = listed(client, fmt="xml")
    assert root.tag == "service_requests"
    (request,) = root
    assert request.tag == "request"
    assert [c.tag for c in request] == REQUEST_FIELDS
    assert request.findtext("service_request_id") == case.number
    assert request.findtext("status") == "open"
    assert request.findtext("lat") == str(GRID_POINT[0])
    assert request.findtext("long") == str(GRID_POINT[1])
    assert request.find("description").text is None


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_no_personal_data_is_ever_answered(client, world, api_key, fmt):
    report(world)
    posted = post_request(client, api_key, account_id="acct-9", device_id="dev-1")
    number = parse(posted)[0]["service_request_id"]
    case = Case.objects.get(number=number)
    act(Action.FILE, case, world["lead"], note="secret-note")
    for path in (f"requests.{fmt}", f"requests/{number}.{fmt}"):
        body = client.get(f"{BASE}/{path}").content.decode()
        for text in (*PERSONAL, "acct-9", "dev-1", "lead", case.public_token):
            assert text not in body, (path, text)


def test_a_case_goes_through_the_loop_and_its_request_follows(client, world, api_key):
    """Posted through Open311, worked by staff through the services, read back each step."""
    response = post_request(client, api_key)
    number = parse(response)[0]["service_request_id"]
    case = Case.objects.get(number=number)
    row = one(client, number)
    assert (row["status"], row["status_notes"], row["agency_responsible"]) == (
        "open",
        "Report received",
        None,
    )
    assert row["expected_datetime"] == w3c(case.deadline)

    case = act(Action.FILE, case, world["lead"])
    assert one(client, number)["status_notes"] == "Accepted as a case"
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    row = one(client, number, fmt="xml")
    assert row["status_notes"] == "Sent to the responsible department"
    assert row["agency_responsible"] == "环卫"
    case = act(Action.ACCEPT, case, world["handler"])
    assert one(client, number)["status_notes"] == "The department is working on it"
    case = act(Action.HANDLE, case, world["handler"])
    assert one(client, number)["status_notes"] == "The department reports it handled"
    case = act(Action.CHECK_PASS, case, world["worker"])
    case = act(Action.RETURN_VISIT, case, world["lead"])
    row = one(client, number)
    assert (row["status"], row["status_notes"]) == ("open", "Waiting for your rating")
    assert row["expected_datetime"] == w3c(Case.objects.get(pk=case.pk).deadline)

    case = case_rate(
        case_id=case.pk, expected_version=case.version, satisfied=True, token=case.public_token
    )
    assert case.state == CaseState.CLOSED
    row = one(client, number, fmt="xml")
    assert row["status"] == "closed"
    assert row["status_notes"] == "Closed: the reporter is satisfied"
    assert row["agency_responsible"] == "环卫"
    assert row["updated_datetime"] == w3c(case.closed_at)
    assert [r["service_request_id"] for r in listed(client, "?status=closed")] == [number]
    assert listed(client, "?status=open") == []


def test_a_send_back_clears_the_agency(client, world):
    case = report(world)
    case = act(Action.FILE, case, world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    assert one(client, case.number)["agency_responsible"] == "环卫"
    act(Action.SEND_BACK, case, world["handler"], note="not ours")
    row = one(client, case.number)
    assert row["agency_responsible"] is None
    assert row["status_notes"] == "Being passed to the right department"


def test_only_public_cases_are_listed(client, world):
    shown = report(world)
    staff = report(world, source="grid_worker", actor=world["worker"])
    voided = report(world)
    act(Action.VOID, voided, world["clerk"], note="duplicate")
    hidden_class = report(world, category=world.manhole)
    Category.objects.filter(pk=world.manhole.pk).update(is_public=False)
    numbers = {r["service_request_id"] for r in listed(client)}
    assert numbers == {shown.number, staff.number}
    for case in (voided, hidden_class):
        response = client.get(f"{BASE}/requests/{case.number}.json")
        assert response.status_code == 404
        assert errors_of(response) == [(404, f"service_request_id {case.number} was not found.")]


def test_a_sensitive_class_shows_a_coarse_point_and_no_address(client, world):
    Category.objects.filter(pk=world.garbage.pk).update(is_sensitive=True)
    case = report(world, lat=39.91234, lng=116.40567, address="3号楼2单元")
    row = one(client, case.number)
    assert row["address"] is None
    assert (row["lat"], row["long"]) == (39.91, 116.405)
    assert "3号楼" not in client.get(f"{BASE}/requests.xml").content.decode()


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("number", ["E0101209912310001", "nonsense", "E0101"])
def test_an_unknown_request_is_404(client, world, fmt, number):
    response = client.get(f"{BASE}/requests/{number}.{fmt}")
    assert response.status_code == 404
    assert errors_of(response) == [(404, f"service_request_id {number} was not found.")]


def test_filter_by_request_ids_overrides_the_rest(client, world):
    a, b, c = report(world), report(world), report(world)
    rows = listed(client, f"?service_request_id={a.number},{c.number},E0101000000000000")
    assert [r["service_request_id"] for r in rows] == [c.number, a.number]
    # Overrides the other arguments: status and dates are ignored.
    rows = listed(
        client, f"?service_request_id={b.number}&status=closed&start_date=2001-01-01T00:00:00Z"
    )
    assert [r["service_request_id"] for r in rows] == [b.number]


def test_filter_by_service_code_and_status(client, world):
    garbage = report(world)
    manhole = report(world, category=world.manhole)
    assert [r["service_request_id"] for r in listed(client, "?service_code=C0101")] == [
        manhole.number
    ]
    both = listed(client, "?service_code=C0101,E0101&status=open,closed")
    assert {r["service_request_id"] for r in both} == {garbage.number, manhole.number}
    assert listed(client, "?status=closed") == []


def test_the_window_defaults_to_the_last_90_days(client, world):
    with time_machine.travel(timezone.now() - timedelta(days=100)):
        old = report(world)
    recent = report(world)
    assert [r["service_request_id"] for r in listed(client)] == [recent.number]
    start = w3c(timezone.now() - timedelta(days=120))
    end = w3c(timezone.now() - timedelta(days=60))
    rows = listed(client, "?" + _query(start_date=start, end_date=end))
    assert [r["service_request_id"] for r in rows] == [old.number]
    # A start alone opens a 90-day window from it; an end alone closes one.
    rows = listed(client, "?" + _query(start_date=start))
    assert [r["service_request_id"] for r in rows] == [old.number]
    rows = listed(client, "?" + _query(end_date=w3c(timezone.now() + timedelta(minutes=1))))
    assert [r["service_request_id"] for r in rows] == [recent.number]


def _query(**params) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def test_dates_take_w3c_forms_with_or_without_an_offset(client, world):
    case = report(world)
    day = timezone.localdate(case.created_at)
    for start in (f"{day}T00:00:00+08:00", f"{day}T00:00:00", f"{day}", w3c(case.created_at)):
        rows = listed(client, "?" + _query(start_date=start))
        assert [r["service_request_id"] for r in rows] == [case.number], start
    rows = listed(client, "?" + _query(end_date=f"{day}"))  # the whole of that day
    assert [r["service_request_id"] for r in rows] == [case.number]
    rows = listed(client, "?" + _query(end_date=f"{day - timedelta(days=1)}"))
    assert rows == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            {"start_date": "yesterday"},
            "Give start_date as a W3C date-time, e.g. 2026-01-01T00:00:00+08:00.",
        ),
        (
            {"end_date": "2026-13-01"},
            "Give end_date as a W3C date-time, e.g. 2026-01-01T00:00:00+08:00.",
        ),
        (
            {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
            "start_date and end_date may not span more than 90 days.",
        ),
        (
            {"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"},
            "end_date is earlier than start_date.",
        ),
        ({"status": "pending"}, "Unknown status pending: give open, closed or both."),
        ({"service_code": "E9999"}, "service_code E9999 was not found."),
        ({"page": "0"}, "Give page as a whole number from 1 to 1000000."),
        ({"page_size": "1001"}, "Give page_size as a whole number from 1 to 1000."),
        ({"page_size": "ten"}, "Give page_size as a whole number from 1 to 1000."),
        (
            {"service_request_id": ",".join(f"E0101{i:012d}" for i in range(1001))},
            "Ask for at most 1000 service_request_id at once.",
        ),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_arguments_are_400(client, world, query, expected, fmt):
    response = client.get(f"{BASE}/requests.{fmt}?" + _query(**query))
    assert response.status_code == 400
    descriptions = [d for _c, d in errors_of(response)]
    assert any(d.endswith(expected) for d in descriptions), descriptions


def test_pages_of_the_list(client, world):
    cases = [report(world) for _ in range(5)]
    newest_first = [c.number for c in reversed(cases)]
    assert [r["service_request_id"] for r in listed(client)] == newest_first
    pages = [
        [r["service_request_id"] for r in listed(client, f"?page_size=2&page={page}")]
        for page in (1, 2, 3, 4)
    ]
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:], []]
    assert [r["service_request_id"] for r in listed(client, "?page=2&page_size=3")] == (
        newest_first[3:]
    )


def test_the_list_costs_a_fixed_number_of_queries(client, world):
    for i in range(3):
        case = report(world, category=world.manhole if i % 2 else world.garbage)
        act(Action.FILE, case, world["lead"])
    with CaptureQueriesContext(connection) as few:
        assert len(listed(client)) == 3
    for _ in range(12):
        case = report(world, point=OTHER_GRID_POINT)
        act(Action.FILE, case, world["lead"])
    with CaptureQueriesContext(connection) as many:
        assert len(listed(client)) == 15
    assert len(many) == len(few) <= 8


def test_media_url_is_the_first_approved_photo_on_the_portal(client, world):
    case = report(world)
    common = {
        "case": case,
        "action": "report",
        "content_type": "image/jpeg",
        "width": 10,
        "height": 10,
        "size": 100,
        "sha256": "0" * 64,
    }
    CasePhoto.objects.create(image="a.jpg", thumbnail="a-t.jpg", is_public=False, **common)
    assert one(client, case.number)["media_url"] is None
    approved = CasePhoto.objects.create(
        image="b.jpg", thumbnail="b-t.jpg", is_public=True, **common
    )
    CasePhoto.objects.create(image="c.jpg", thumbnail="c-t.jpg", is_public=True, **common)
    assert one(client, case.number)["media_url"] == (
        f"http://testserver/portal/photos/{approved.pk}/full/"
    )


def test_names_speak_chinese_by_default(client, world, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    case = report(world, category=Category.objects.get(kind=Kind.EVENT, code="0101"))
    response = client.get(f"{BASE}/requests/{case.number}.json", HTTP_ACCEPT_LANGUAGE="zh-hans")
    (row,) = parse(response)
    assert row["service_name"] == "暴露垃圾"
    assert row["service_code"] == "E0101"


def test_reading_with_a_key_is_audited_and_counted(client, world, api_key):
    from accounts.models import AuditEntry

    report(world)
    response = client.get(f"{BASE}/requests.json", HTTP_X_API_KEY=api_key.secret)
    assert response.status_code == 200
    entry = AuditEntry.objects.get(action="open311.requests")
    assert entry.outcome == AuditEntry.Outcome.SUCCESS
    assert entry.detail["prefix"] == api_key.prefix
    assert entry.detail["path"] == "/open311/v2/requests.json"
    bad = client.get(f"{BASE}/requests.xml?api_key=o311_wrong")
    assert bad.status_code == 403
    assert errors_of(bad) == [(403, "Invalid api_key.")]
    # Reading without a key is not a use of a key: nothing to audit.
    client.get(f"{BASE}/requests.json")
    assert AuditEntry.objects.filter(action="open311.requests").count() == 2


def test_reads_without_a_key_are_limited_per_address(client, world, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "OPEN311_READ_LIMIT": (2, 60)}
    assert client.get(f"{BASE}/services.json").status_code == 200
    assert client.get(f"{BASE}/requests.json").status_code == 200
    limited = client.get(f"{BASE}/services.xml")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    ((code, description),) = errors_of(limited)
    assert code == 429 and description.startswith("Too many requests.")
    other = client.get(f"{BASE}/services.xml", REMOTE_ADDR="192.0.2.7")
    assert other.status_code == 200
