"""POST service request: a client's report enters the same loop as any other report."""

import pytest
from django.utils import timezone

from accounts.models import AuditEntry
from cases.models import Case, CaseEvent, CaseState, Source, Urgency
from cases.selectors import case_list
from cases.testing import OTHER_GRID_POINT
from open311.models import ApiKey, RequestToken
from open311.services import api_key_create, api_key_revoke
from portal.models import Blocked

from .conftest import BASE, errors_of, parse, post_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_a_posted_request_becomes_a_residents_case(client, world, api_key):
    response = post_request(
        client,
        api_key,
        address_string="建国门外大街1号",
        **{"attribute[URGENCY]": "urgent", "attribute[LOCATION_DETAIL]": "东门 旁边"},
        device_id="device-123",
        account_id="acct-9",
        media_url="https://photos.example.com/p/1.jpg",
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    (answer,) = parse(response)
    assert list(answer) == ["service_request_id", "service_notice", "account_id"]
    case = Case.objects.get(number=answer["service_request_id"])
    assert answer["account_id"] == "acct-9"
    assert "within" in answer["service_notice"]

    assert case.source == Source.OPEN311
    assert case.category == world.garbage
    assert case.state == CaseState.REPORTED
    assert case.urgency == Urgency.URGENT
    assert case.area == world.grid
    assert case.description == "小区门口垃圾没人清"
    assert case.address == "建国门外大街1号, 东门 旁边"
    assert case.reporter_email == "zhang.san@example.com"
    assert case.reporter_phone == "13900001111"
    assert case.reporter_name == "张三"  # family name first for a Chinese name
    assert case.reporter is None and case.created_by is None
    assert case.public_token  # a resident's case: the resident rates it before it closes
    assert case.deadline is not None

    (event,) = CaseEvent.objects.filter(case=case)
    assert event.action == "report" and event.role == "resident"
    assert event.data["client"] == "Street app"
    assert event.data["api_key"] == api_key.prefix
    assert event.data["media_url"] == "https://photos.example.com/p/1.jpg"
    # Neither the device nor the client's account id is kept: they identify a person.
    assert "device-123" not in str(event.data) and "acct-9" not in str(event.data)


def test_the_case_shows_in_the_staff_case_list_and_intake(client, world, api_key):
    number = parse(post_request(client, api_key))[0]["service_request_id"]
    for username in ("clerk", "lead", "dispatcher", "worker"):
        numbers = [c.number for c in case_list(user=world[username])]
        assert number in numbers, username
    assert number not in [c.number for c in case_list(user=world["far_worker"])]


def test_post_answers_in_xml(client, world, api_key):
    response = post_request(client, api_key, fmt="xml", account_id="")
    assert response.status_code == 200
    root = parse(response)
    assert root.tag == "service_requests"
    (request,) = root
    assert request.tag == "request"
    assert [c.tag for c in request] == ["service_request_id", "service_notice", "account_id"]
    assert Case.objects.filter(number=request.findtext("service_request_id")).exists()
    assert request.find("account_id").text is None  # <account_id/>


def test_the_key_may_come_as_a_header(client, world, api_key):
    response = post_request(client, api_key, header=True)
    assert response.status_code == 200
    assert Case.objects.filter(source=Source.OPEN311).count() == 1


def test_the_key_may_come_in_the_query_string(client, world, api_key):
    from .conftest import report_data

    response = client.post(f"{BASE}/requests.json?api_key={api_key.secret}", report_data())
    assert response.status_code == 200


def test_two_different_keys_are_refused(client, world, api_key):
    _other, secret = api_key_create(actor=None, name="Other", jurisdiction=world.city.district)
    from .conftest import report_data

    response = client.post(
        f"{BASE}/requests.json",
        {**report_data(), "api_key": api_key.secret},
        HTTP_X_API_KEY=secret,
    )
    assert response.status_code == 403
    assert errors_of(response) == [(403, "Two different API keys were sent.")]
    assert not Case.objects.exists()


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_post_without_a_key_is_403(client, world, fmt):
    response = post_request(client, None, fmt=fmt)
    assert response.status_code == 403
    assert errors_of(response) == [(403, "api_key was not provided.")]
    assert not Case.objects.exists()
    entry = AuditEntry.objects.get(action="open311.post")
    assert entry.outcome == AuditEntry.Outcome.DENIED
    assert entry.detail["reason"] == "missing"


@pytest.mark.parametrize(
    "secret", ["nonsense", "o311_" + "x" * 43, "o311_short", "o311_" + "y" * 200]
)
def test_an_unknown_key_is_403(client, world, api_key, secret):
    response = post_request(client, secret)
    assert response.status_code == 403
    assert errors_of(response) == [(403, "Invalid api_key.")]
    assert not Case.objects.exists()
    entry = AuditEntry.objects.get(action="open311.post")
    assert entry.outcome == AuditEntry.Outcome.DENIED
    assert entry.detail["reason"] == "unknown"
    assert entry.detail["prefix"] == secret[:12]
    assert secret not in str(entry.detail) or len(secret) <= 12


def test_a_key_with_the_right_prefix_but_wrong_secret_is_403(client, world, api_key):
    forged = api_key.secret[:12] + "A" * (len(api_key.secret) - 12)
    response = post_request(client, forged)
    assert response.status_code == 403
    assert errors_of(response) == [(403, "Invalid api_key.")]


def test_a_revoked_key_is_403(client, world, api_key):
    api_key_revoke(key=api_key, actor=None)
    response = post_request(client, api_key, fmt="xml")
    assert response.status_code == 403
    assert errors_of(response) == [(403, "This api_key has been revoked.")]
    assert not Case.objects.exists()
    entry = AuditEntry.objects.get(action="open311.post")
    assert entry.object_id == str(api_key.pk)
    assert entry.detail["reason"] == "revoked"


def test_a_key_posts_only_inside_its_jurisdiction(client, world):
    _key, secret = api_key_create(
        actor=None, name="Community 1 app", jurisdiction=world.city.communities[0]
    )
    inside = post_request(client, secret)
    assert inside.status_code == 200
    outside = post_request(client, secret, lat=OTHER_GRID_POINT[0], long=OTHER_GRID_POINT[1])
    assert outside.status_code == 403
    assert errors_of(outside) == [(403, "This api_key may post only inside 社区1.")]
    assert Case.objects.count() == 1
    assert AuditEntry.objects.get(action="open311.post", outcome="denied").detail["reason"] == (
        "outside_jurisdiction"
    )


def test_every_use_of_a_key_is_audited_and_marks_it_used(client, world, api_key):
    assert api_key.last_used_at is None
    number = parse(post_request(client, api_key))[0]["service_request_id"]
    entry = AuditEntry.objects.get(action="open311.post")
    assert entry.outcome == AuditEntry.Outcome.SUCCESS
    assert entry.object_type == "open311.apikey"
    assert entry.object_id == str(api_key.pk)
    assert entry.actor_username == "open311:Street app"
    assert entry.detail == {
        "prefix": api_key.prefix,
        "status": 200,
        "method": "POST",
        "path": "/open311/v2/requests.json",
        "case": number,
    }
    assert entry.ip == "127.0.0.1"
    # The secret is never written anywhere in the log.
    for logged in AuditEntry.objects.all():
        assert api_key.secret not in str(logged.detail) + str(logged.after) + str(logged.before)
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None

    bad = post_request(client, api_key, service_code="E9999")
    assert bad.status_code == 404
    failed = AuditEntry.objects.filter(action="open311.post").latest("id")
    assert failed.outcome == AuditEntry.Outcome.FAILURE
    assert failed.detail["status"] == 404


# --- 400s and 404s -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_missing_service_code_is_400(client, world, api_key, fmt):
    response = post_request(client, api_key, fmt=fmt, service_code=None)
    assert response.status_code == 400
    assert errors_of(response) == [(400, "service_code was not provided.")]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_code_is_404(client, world, api_key, fmt):
    response = post_request(client, api_key, fmt=fmt, service_code="E9999")
    assert response.status_code == 404
    assert errors_of(response) == [(404, "service_code E9999 was not found.")]


def test_an_address_without_a_point_is_400_since_nothing_is_geocoded(client, world, api_key):
    response = post_request(client, api_key, lat=None, long=None, address_string="建国门外大街1号")
    assert response.status_code == 400
    ((code, description),) = errors_of(response)
    assert code == 400
    assert description.startswith("long: Send the point as lat and long (WGS-84)")
    assert "does not look up an address_string" in description
    response = post_request(client, api_key, lat=None, long=None, address_id="545483")
    assert response.status_code == 400
    assert not Case.objects.exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"lat": None}, "lat: Send lat and long together."),
        ({"long": "east"}, "lat and long are decimal degrees (WGS-84)."),
        ({"lat": "91"}, "lat and long are decimal degrees (WGS-84)."),
        ({"lat": "10", "long": "10"}, "lat, long: This point lies outside every grid."),
        ({"attribute[URGENCY]": "emergency"}, "attribute[URGENCY]: Choose normal, urgent."),
        (
            {"attribute[COLOUR]": "red"},
            "attribute[COLOUR]: This service has no attribute COLOUR.",
        ),
        (
            {"attribute[URGENCY][]": "urgent"},
            "attribute[URGENCY]: This attribute takes one value.",
        ),
        (
            {"attribute[LOCATION_DETAIL]": "x" * 201},
            "attribute[LOCATION_DETAIL]: At most 200 characters.",
        ),
        ({"description": "x" * 4001}, "description: A description has at most 4000 characters."),
        ({"email": "not-an-address"}, "email: Enter a valid e-mail address."),
        (
            {"phone": "call me maybe"},
            "phone: Enter a phone number: digits, spaces, +, - and brackets.",
        ),
        (
            {"media_url": "file:///etc/passwd"},
            "media_url is an http or https URL of at most 500 characters.",
        ),
        (
            {"media_url": "http://169.254.169.254/" + "a" * 500},
            "media_url is an http or https URL of at most 500 characters.",
        ),
        (
            {"first_name": "x" * 60, "last_name": "y" * 60},
            "first_name and last_name take at most 100 characters together.",
        ),
        ({"account_id": "a" * 101}, "account_id has at most 100 characters."),
        ({"description": "bad\x00byte"}, "description: Null characters are not allowed."),
    ],
)
def test_bad_input_is_400_naming_the_parameter(client, world, api_key, extra, expected):
    response = post_request(client, api_key, **extra)
    assert response.status_code == 400, response.content
    assert expected in [d for _c, d in errors_of(response)]
    assert not Case.objects.exists()


def test_several_problems_come_back_together(client, world, api_key):
    response = post_request(
        client, api_key, fmt="xml", email="bad", phone="??", **{"attribute[URGENCY]": "soon"}
    )
    assert response.status_code == 400
    descriptions = [d for _c, d in errors_of(response)]
    assert len(descriptions) == 3
    assert {d.split(":")[0] for d in descriptions} == {"attribute[URGENCY]", "email", "phone"}


def test_a_post_must_be_form_encoded(client, world, api_key):
    response = client.post(
        f"{BASE}/requests.json",
        data='{"service_code": "E0101"}',
        content_type="application/json",
        HTTP_X_API_KEY=api_key.secret,
    )
    assert response.status_code == 400
    assert errors_of(response) == [(400, "Send the request as application/x-www-form-urlencoded.")]


def test_files_are_not_accepted(client, world, api_key):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from .conftest import report_data

    data = {**report_data(), "api_key": api_key.secret}
    data["media"] = SimpleUploadedFile("a.jpg", b"\xff\xd8\xff", content_type="image/jpeg")
    response = client.post(f"{BASE}/requests.json", data)
    assert response.status_code == 400
    assert not Case.objects.exists()


def test_without_description_the_service_name_stands_in(client, world, api_key):
    response = post_request(client, api_key, description=None)
    assert response.status_code == 200
    case = Case.objects.get()
    assert case.description == "暴露垃圾"


def test_a_non_public_class_cannot_be_posted(client, world, api_key):
    world.garbage.is_public = False
    world.garbage.save()
    response = post_request(client, api_key)
    assert response.status_code == 404


# --- abuse ----------------------------------------------------------------------------------


def test_a_blocked_sender_is_403(client, world, api_key):
    Blocked.objects.create(kind="email", value="zhang.san@example.com", reason="spam")
    response = post_request(client, api_key)
    assert response.status_code == 403
    assert errors_of(response) == [(403, "Reports from this sender are not accepted.")]
    assert not Case.objects.exists()
    entry = AuditEntry.objects.get(action="open311.post")
    assert entry.detail["reason"] == "blocked"


def test_a_blocked_address_is_403(client, world, api_key):
    Blocked.objects.create(kind="ip", value="127.0.0.0/8", reason="flood")
    assert post_request(client, api_key).status_code == 403


def test_each_key_has_its_own_rate_limit(client, world):
    key, secret = api_key_create(
        actor=None, name="Slow app", jurisdiction=world.city.district, requests_per_minute=2
    )
    _other, other_secret = api_key_create(
        actor=None, name="Other app", jurisdiction=world.city.district
    )
    assert post_request(client, secret).status_code == 200
    assert post_request(client, secret).status_code == 200
    limited = post_request(client, secret, fmt="xml")
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    ((code, description),) = errors_of(limited)
    assert code == 429 and description.startswith("Too many requests.")
    assert Case.objects.count() == 2
    assert post_request(client, other_secret).status_code == 200
    entry = AuditEntry.objects.filter(action="open311.post").get(outcome="denied")
    assert entry.object_id == str(key.pk)
    assert entry.detail["reason"] == "rate_limited"
    assert entry.detail["status"] == 429


def test_public_write_limits_per_address_apply(client, world, api_key, settings):
    # Open311 posts have limits of their own (a client relays many residents).
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (100, 3600), "account": (100, 3600), "burst": (100, 60)},
        "PUBLIC_RATE_LIMITS_BY_SCOPE": {"open311.post": {"burst": (1, 60)}},
    }
    assert post_request(client, api_key).status_code == 200
    limited = post_request(client, api_key)
    assert limited.status_code == 429
    assert limited["Retry-After"]
    assert Case.objects.count() == 1


# --- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_token_of_a_post_gives_its_request_id(client, world, api_key, fmt):
    response = post_request(client, api_key)
    number = parse(response)[0]["service_request_id"]
    token = response["X-Open311-Token"]
    assert RequestToken.objects.get(token=token).case.number == number
    found = client.get(f"{BASE}/tokens/{token}.{fmt}")
    assert found.status_code == 200
    body = parse(found)
    if fmt == "json":
        assert body == [{"service_request_id": number, "token": token}]
    else:
        assert body.tag == "service_requests"
        (request,) = body
        assert [(c.tag, c.text) for c in request] == [
            ("service_request_id", number),
            ("token", token),
        ]


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("token", ["nope", "a" * 32, "x" * 70])
def test_an_unknown_token_is_404(client, world, fmt, token):
    response = client.get(f"{BASE}/tokens/{token}.{fmt}")
    assert response.status_code == 404
    assert errors_of(response) == [(404, "This token was not found.")]


def test_a_failed_post_leaves_nothing_behind(client, world, api_key):
    post_request(client, api_key, lat="10", long="10")
    assert not Case.objects.exists()
    assert not RequestToken.objects.exists()
    assert not AuditEntry.objects.filter(action="case.report").exists()


def test_revoking_is_immediate_and_keeps_the_key_row(client, world, api_key):
    assert post_request(client, api_key).status_code == 200
    api_key_revoke(key=api_key, actor=None)
    assert post_request(client, api_key).status_code == 403
    key = ApiKey.objects.get(pk=api_key.pk)
    assert key.revoked_at is not None and key.revoked_at <= timezone.now()


def test_clients_post_without_a_csrf_token(world, api_key):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post_request(strict, api_key).status_code == 200
    # The key pages are ordinary forms: they keep their CSRF check.
    from accounts.testing import verified_login

    verified_login(strict, world["admin"])
    assert strict.post("/open311/v2/keys/", {"name": "x"}).status_code == 403


def test_a_flood_of_bad_keys_is_limited_and_does_not_flood_the_log(client, world, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "OPEN311_READ_LIMIT": (3, 60)}
    statuses = [post_request(client, "o311_guessing").status_code for _ in range(6)]
    assert statuses == [403, 403, 403, 429, 429, 429]
    assert AuditEntry.objects.filter(action="open311.post").count() == 3
    # Another address is not held back.
    other = client.post(
        f"{BASE}/requests.json", {"api_key": "o311_guessing"}, REMOTE_ADDR="192.0.2.9"
    )
    assert other.status_code == 403
