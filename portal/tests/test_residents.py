"""Resident accounts on the portal: sign-up, sign-in, my reports, withdraw, export, erase."""

from __future__ import annotations

import json

import pytest
from django.conf import settings as project_settings
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from accounts.models import AuditEntry, Membership, User
from cases.models import Case, CaseEvent, CaseState
from cases.services import case_file
from cases.testing import make_case_world
from core.errors import DomainError
from portal import services
from portal.models import Blocked, ResidentLogin, Suggestion

from .resident_helpers import (
    PASSWORD,
    english_client,
    make_resident,
    public_report,
    signed_in,
)

pytestmark = pytest.mark.django_db

SIGNUP = "portal:account_signup"
LOGIN = "portal:account_login"


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


@pytest.fixture
def tight_limits(settings):
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (3, 3600), "account": (30, 3600), "burst": (10, 60)},
    }


def signup(client, identifier, password=PASSWORD, again=None):
    return client.post(
        reverse(SIGNUP),
        {"identifier": identifier, "password": password, "password_again": again or password},
    )


def login(client, identifier, password=PASSWORD):
    return client.post(reverse(LOGIN), {"identifier": identifier, "password": password})


def is_signed_in(client) -> bool:
    return SESSION_KEY in client.session


# --- sign up, sign in, sign out --------------------------------------------------------------


def test_sign_up_with_a_phone_opens_a_resident_account_without_roles(db):
    client = english_client()
    response = signup(client, "+86 139-1234-0001")
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:account")
    user = User.objects.get(phone="13912340001")
    assert user.is_resident and user.is_active
    # The username carries no contact detail: it goes into timelines and the audit log.
    assert user.username.startswith("r-") and "13912340001" not in user.username
    assert user.email == ""
    assert not Membership.objects.filter(user=user).exists()
    assert ResidentLogin.objects.get(user=user).value == "13912340001"
    assert is_signed_in(client)
    page = client.get(reverse("portal:account"))
    assert page.status_code == 200
    assert "13912340001" in page.content.decode()
    entry = AuditEntry.objects.get(action="resident.signup")
    assert "13912340001" not in json.dumps(entry.after) and entry.actor_id == user.pk


def test_sign_in_and_out_with_an_email_address(db):
    user = make_resident(email="Li.Hua@Example.org")
    assert user.email == "li.hua@example.org"
    client = english_client()
    assert login(client, "wrong@example.org").status_code == 400
    wrong = login(client, "LI.HUA@example.org", "not the password")
    assert wrong.status_code == 400
    assert b"is not correct" in wrong.content
    assert not is_signed_in(client)
    response = login(client, " LI.HUA@example.org ")
    assert response.status_code == 302 and response["Location"] == reverse("portal:account")
    assert is_signed_in(client)
    assert AuditEntry.objects.filter(action="login", actor_id=user.pk).exists()
    # What an unknown sign-in typed is not written to the log.
    failed = AuditEntry.objects.filter(action="login_failed")
    assert failed.count() == 2
    assert not any("wrong@example.org" in e.actor_username for e in failed)
    out = client.post(reverse("portal:account_logout"))
    assert out.status_code == 302
    assert not is_signed_in(client)


def test_sign_in_goes_back_only_to_portal_pages(db):
    make_resident(phone="13912340002")
    client = english_client()
    response = client.post(
        reverse(LOGIN) + "?next=https://evil.example/",
        {"identifier": "13912340002", "password": PASSWORD},
    )
    assert response["Location"] == reverse("portal:account")
    client.logout()
    response = client.post(
        reverse(LOGIN),
        {"identifier": "13912340002", "password": PASSWORD, "next": "/portal/suggestions/"},
    )
    assert response["Location"] == "/portal/suggestions/"


def test_staff_cannot_sign_in_on_the_portal(world):
    clerk = world["clerk"]
    clerk.email = "clerk@example.org"
    clerk.set_password(PASSWORD)
    clerk.save()
    client = english_client()
    response = client.post(reverse(LOGIN), {"identifier": "clerk", "password": PASSWORD})
    assert response.status_code == 400
    response = login(client, "clerk@example.org")
    assert response.status_code == 400
    assert not is_signed_in(client)


def test_failed_portal_sign_ins_lock_out_like_the_staff_sign_in(db):
    make_resident(phone="13912340003")
    client = english_client()
    for _attempt in range(project_settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "13912340003", "wrong password").status_code == 400
    assert login(client, "13912340003", "wrong password").status_code == 429
    # Locked: even the right password is refused now.
    assert login(client, "13912340003").status_code == 429
    assert not is_signed_in(client)
    assert AuditEntry.objects.filter(action="lockout").exists()
    # Another address is not locked out.
    assert login(english_client("192.0.2.50"), "13912340003").status_code == 302


def test_a_second_account_with_the_same_phone_or_email_is_refused(db):
    make_resident(phone="13912340004")
    make_resident(email="wang@example.org")
    client = english_client()
    response = signup(client, "0086 139 1234 0004")
    assert response.status_code == 400
    assert b"already exists" in response.content
    response = signup(client, "WANG@example.org")
    assert response.status_code == 400
    assert User.objects.filter(is_resident=True).count() == 2
    with pytest.raises(DomainError):
        services.resident_signup(phone="139-1234-0004", password=PASSWORD)


@pytest.mark.parametrize(
    ("identifier", "password", "again", "field_text"),
    [
        ("13912340005", "short", None, b"too short"),
        ("13912340005", "1234567890123", None, b"entirely numeric"),
        ("13912340005", PASSWORD, PASSWORD + "x", b"The two passwords differ"),
        ("010-12345678", PASSWORD, None, b"mainland mobile number"),
        ("not-an-address@", PASSWORD, None, b"valid e-mail"),
        ("", PASSWORD, None, b"required"),
    ],
)
def test_sign_up_refuses_bad_input_with_field_errors(db, identifier, password, again, field_text):
    response = signup(english_client(), identifier, password, again)
    assert response.status_code == 400
    assert field_text in response.content
    assert not User.objects.filter(is_resident=True).exists()


def test_sign_up_is_rate_limited_per_address_with_retry_after(db, tight_limits):
    client = english_client("198.51.100.9")
    for n in range(3):
        assert signup(client, f"1391234010{n}").status_code == 302
        client.logout()
    refused = signup(client, "13912340109")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert b"data-refusal" in refused.content
    assert not User.objects.filter(phone="13912340109").exists()
    # Another address has its own counter.
    assert signup(english_client("198.51.100.10"), "13912340109").status_code == 302


def test_sign_up_from_a_blocked_phone_email_or_address_is_refused(db):
    Blocked.objects.create(kind="phone", value="13912340006", reason="abuse")
    Blocked.objects.create(kind="email", value="spam@example.org", reason="spam")
    Blocked.objects.create(kind="ip", value="203.0.113.0/24", reason="flood")
    assert signup(english_client(), "+86 13912340006").status_code == 403
    assert signup(english_client(), "Spam@Example.org").status_code == 403
    assert signup(english_client("203.0.113.8"), "13912340007").status_code == 403
    assert not User.objects.filter(is_resident=True).exists()
    assert signup(english_client(), "13912340007").status_code == 302


def test_resident_pages_need_a_resident(world):
    client = english_client()
    response = client.get(reverse("portal:account"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse(LOGIN))
    staff = signed_in(world["clerk"])
    assert staff.get(reverse("portal:account")).status_code == 403
    assert staff.get(reverse("portal:account_export")).status_code == 403


def test_residents_get_nothing_of_the_staff_pages(world):
    resident = make_resident(phone="13912340008")
    own = public_report(world, resident=resident)
    client = signed_in(resident)
    assert client.get(reverse("portal:moderation")).status_code == 403
    assert client.get(reverse("cases:intake")).status_code == 403
    assert client.get(reverse("cases:detail", args=[own.number])).status_code == 404
    # The case API answers only what the caller's roles reach: nothing, not even her own.
    listing = client.get("/api/v1/cases")
    assert listing.status_code in (200, 403)
    assert own.number not in listing.content.decode()


# --- my reports, withdraw ---------------------------------------------------------------------


def test_my_reports_lists_only_mine(world):
    mine = make_resident(phone="13912340010")
    theirs = make_resident(phone="13912340011")
    case = public_report(world, resident=mine, reporter_name="李华")
    other = public_report(world, resident=theirs, reporter_name="王芳")
    anonymous = public_report(world)
    Suggestion.objects.create(
        kind="question", title="When is the market open?", text="…", resident=mine
    )
    Suggestion.objects.create(
        kind="question", title="Someone else's question", text="…", resident=theirs
    )
    page = signed_in(mine).get(reverse("portal:account"))
    assert page.status_code == 200
    html = page.content.decode()
    assert case.number in html
    assert other.number not in html and anonymous.number not in html
    assert "When is the market open?" in html
    assert "Someone else&#x27;s question" not in html and "Someone else's question" not in html
    assert "王芳" not in html


def test_my_reports_link_to_their_tracking_pages(world):
    mine = make_resident(phone="13912340012")
    case = public_report(world, resident=mine)
    html = signed_in(mine).get(reverse("portal:account")).content.decode()
    assert reverse("portal:track", kwargs={"token": case.public_token}) in html


def test_withdraw_my_unfiled_report(world):
    mine = make_resident(phone="13912340013")
    case = public_report(world, resident=mine)
    client = signed_in(mine)
    response = client.post(
        reverse("portal:account_withdraw", args=[case.number]),
        {"version": case.version, "reason": "fixed itself"},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.state == CaseState.VOIDED
    event = CaseEvent.objects.filter(case=case).order_by("-id").first()
    assert event.action == "withdraw" and event.role == "resident" and event.actor_id == mine.pk


def test_withdraw_refuses_others_reports_and_filed_ones(world):
    mine = make_resident(phone="13912340014")
    theirs = make_resident(phone="13912340015")
    other = public_report(world, resident=theirs)
    client = signed_in(mine)
    response = client.post(
        reverse("portal:account_withdraw", args=[other.number]), {"version": other.version}
    )
    assert response.status_code == 404
    other.refresh_from_db()
    assert other.state == CaseState.REPORTED

    filed = public_report(world, resident=mine)
    filed = case_file(case_id=filed.pk, expected_version=filed.version, actor=world["lead"])
    response = client.post(
        reverse("portal:account_withdraw", args=[filed.number]), {"version": filed.version}
    )
    assert response.status_code == 302
    filed.refresh_from_db()
    assert filed.state == CaseState.FILED
    page = client.get(reverse("portal:account"))
    assert b"cannot be given this action" in page.content


# --- my data ------------------------------------------------------------------------------------


def test_export_holds_all_of_mine_and_nothing_of_others(world):
    mine = make_resident(email="me@example.org")
    theirs = make_resident(email="them@example.org")
    case = public_report(
        world,
        resident=mine,
        description="Broken bench near gate 3",
        reporter_name="李华",
        reporter_phone="13912340020",
    )
    other = public_report(
        world, resident=theirs, description="Their description", reporter_name="王芳"
    )
    services.suggestion_submit(
        kind="suggestion",
        title="More benches",
        text="Please add benches",
        contact_phone="13912340021",
        resident=mine,
    )
    services.suggestion_submit(
        kind="suggestion",
        title="Their idea",
        text="…",
        contact_phone="13912340022",
        resident=theirs,
    )
    client = signed_in(mine)
    assert client.get(reverse("portal:account_export")).status_code == 200
    response = client.post(reverse("portal:account_export"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["account"]["email"] == "me@example.org"
    [report] = data["reports"]
    assert report["number"] == case.number
    assert report["description"] == "Broken bench near gate 3"
    assert report["reporter_name"] == "李华" and report["reporter_phone"] == "13912340020"
    assert [step["action"] for step in report["timeline"]] == ["report"]
    [suggestion] = data["suggestions"]
    assert suggestion["title"] == "More benches" and suggestion["contact_phone"] == "13912340021"
    body = response.content.decode()
    for foreign in (other.number, "Their description", "王芳", "them@example.org", "13912340022"):
        assert foreign not in body
    entry = AuditEntry.objects.get(action="personal_data_export", actor_id=mine.pk)
    assert entry.object_id == str(mine.pk)
    assert entry.detail == {"reports": 1, "suggestions": 1}


def test_erasure_anonymises_my_reports_and_closes_the_account(world):
    mine = make_resident(phone="13912340030")
    case = public_report(
        world,
        resident=mine,
        reporter_name="李华",
        reporter_phone="13912340030",
        reporter_email="li@example.org",
    )
    suggestion = services.suggestion_submit(
        kind="question",
        title="Opening hours",
        text="When?",
        contact_email="li@example.org",
        resident=mine,
    )
    cases_before = Case.objects.count()
    client = signed_in(mine)
    assert client.get(reverse("portal:account_erase")).status_code == 200
    wrong = client.post(reverse("portal:account_erase"), {"password": "nope", "confirm": "on"})
    assert wrong.status_code == 400
    assert b"not correct" in wrong.content
    unconfirmed = client.post(reverse("portal:account_erase"), {"password": PASSWORD})
    assert unconfirmed.status_code == 400
    mine.refresh_from_db()
    assert mine.is_active and mine.phone == "13912340030"

    response = client.post(reverse("portal:account_erase"), {"password": PASSWORD, "confirm": "on"})
    assert response.status_code == 302
    assert not is_signed_in(client)
    # The case stays, and still counts.
    assert Case.objects.count() == cases_before
    case.refresh_from_db()
    assert case.state == CaseState.REPORTED and case.category_id == world.garbage.pk
    assert case.reporter_id is None and case.created_by_id is None
    assert (case.reporter_name, case.reporter_phone, case.reporter_email) == ("", "", "")
    assert case.public_token == ""
    assert Case.objects.filter(category=world.garbage, area=world.grid).count() == 1
    suggestion.refresh_from_db()
    assert suggestion.resident_id is None
    assert (suggestion.contact_email, suggestion.contact_phone) == ("", "")
    mine.refresh_from_db()
    assert not mine.is_active and not mine.has_usable_password()
    assert mine.username.startswith("erased-")
    assert (mine.email, mine.phone, mine.display_name) == ("", "", "")
    assert not ResidentLogin.objects.filter(user=mine).exists()
    assert AuditEntry.objects.filter(action="resident.erase", actor_id=mine.pk).exists()
    assert AuditEntry.objects.filter(action="case.reporter_erase").exists()
    # Nothing can sign in as her any more; her phone is free for a new account.
    assert login(english_client(), "13912340030").status_code == 400
    assert signup(english_client("192.0.2.77"), "13912340030").status_code == 302


def test_a_resident_signed_in_lands_on_her_account_not_the_staff_map():
    resident = make_resident(email="home@example.com")
    response = signed_in(resident).get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:account")
