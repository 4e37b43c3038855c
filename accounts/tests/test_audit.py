import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.audit import audit_log, audit_personal_data_access
from accounts.middleware import request_context
from accounts.models import AuditEntry, AuditLogIsAppendOnly, User
from accounts.permissions import can_view_audit
from accounts.testing import user_with_role, verified_login
from core.errors import DomainError

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def auditor(small_city):
    return user_with_role("audrey", "auditor", small_city.district)


@pytest.fixture
def worker(small_city):
    return user_with_role("wang", "grid_worker", small_city.grids[0])


@pytest.fixture
def log(db):
    """A small log with known entries, at known times."""
    rows = [
        ("alice", "login", "success", "", "", T0),
        ("alice", "area_update", "success", "geo.area", "17", T0 + timedelta(hours=1)),
        ("bob", "area_update", "success", "geo.area", "18", T0 + timedelta(hours=2)),
        ("", "login_failed", "failure", "", "", T0 + timedelta(hours=3)),
        ("bob", "permission_denied", "denied", "", "", T0 + timedelta(days=1)),
    ]
    for username, action, outcome, object_type, object_id, at in rows:
        AuditEntry.objects.create(
            actor_username=username,
            action=action,
            outcome=outcome,
            object_type=object_type,
            object_id=object_id,
            at=at,
            before={"name": "Old"} if action == "area_update" else None,
            after={"name": "New"} if action == "area_update" else None,
        )


def web(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    return verified_login(client, user)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- Request context ---------------------------------------------------------------


def test_every_response_carries_a_request_id(client, db):
    response = client.get(reverse("login"))
    rid = response["X-Request-ID"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    assert client.get(reverse("login"))["X-Request-ID"] != rid


@pytest.mark.parametrize(
    "incoming, kept",
    [
        ("req-2025-03-01.abc:42", True),
        ("has spaces in it", False),
        ("x" * 65, False),
        ("short", False),
        ("<script>alert(1)</script>", False),
    ],
)
def test_a_valid_incoming_request_id_is_honoured(client, db, incoming, kept):
    response = client.get(reverse("login"), HTTP_X_REQUEST_ID=incoming)
    assert (response["X-Request-ID"] == incoming) is kept


def test_entries_written_during_a_request_carry_its_id_and_address(db):
    User.objects.create_user(username="alice", password="Wd7!correct-horse")
    client = Client(REMOTE_ADDR="198.51.100.4")
    response = client.post(
        reverse("login"),
        {"username": "alice", "password": "Wd7!correct-horse"},
        HTTP_X_REQUEST_ID="trace-0001-login",
    )
    assert response["X-Request-ID"] == "trace-0001-login"
    entry = AuditEntry.objects.get(action="login")
    assert entry.request_id == "trace-0001-login" and entry.ip == "198.51.100.4"


def _denied_ip(client_kwargs: dict, worker) -> str:
    client = Client(**client_kwargs)
    client.force_login(worker)
    assert client.get("/audit/").status_code == 403
    return AuditEntry.objects.filter(action="permission_denied").latest("id").ip


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(worker, settings):
    spoof = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "10.9.9.9"}
    assert _denied_ip(spoof, worker) == "203.0.113.9"
    settings.CIVICGRID = {**settings.CIVICGRID, "TRUSTED_PROXIES": ["10.0.0.0/24"]}
    via_proxy = {
        "REMOTE_ADDR": "10.0.0.2",
        "HTTP_X_FORWARDED_FOR": "1.2.3.4, 203.0.113.9, 10.0.0.3",
    }
    # Read from the right: 10.0.0.3 is our proxy, 203.0.113.9 the client; 1.2.3.4 it made up.
    assert _denied_ip(via_proxy, worker) == "203.0.113.9"
    assert _denied_ip(spoof, worker) == "203.0.113.9"


def test_entries_outside_a_request_can_be_given_a_context(db):
    assert audit_log(actor=None, action="nightly_job").request_id == ""
    with request_context(request_id="job-nightly-01"):
        entry = audit_log(actor=None, action="nightly_job")
    assert entry.request_id == "job-nightly-01" and entry.ip is None
    explicit = audit_log(actor=None, action="x", ip="192.0.2.1", request_id="given-id-1")
    assert (explicit.ip, explicit.request_id) == ("192.0.2.1", "given-id-1")


# --- Permission denials --------------------------------------------------------------


def test_web_permission_denials_are_audited(worker):
    client = Client()
    client.force_login(worker)
    assert client.get("/audit/").status_code == 403
    entry = AuditEntry.objects.get(action="permission_denied")
    assert entry.actor_id == worker.pk and entry.outcome == "denied"
    assert entry.detail["path"] == "/audit/" and entry.detail["method"] == "GET"


def test_api_permission_denials_are_audited(worker):
    response = api(worker).get("/api/v1/audit")
    assert response.status_code == 403
    entry = AuditEntry.objects.get(action="permission_denied")
    assert entry.actor_id == worker.pk and entry.detail["path"] == "/api/v1/audit"


def test_anonymous_visitors_are_sent_to_sign_in_not_logged_as_denials(db):
    response = Client().get("/audit/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert APIClient().get("/api/v1/audit").status_code == 401
    assert not AuditEntry.objects.filter(action="permission_denied").exists()


# --- Who reads the log ------------------------------------------------------------


def test_auditors_admins_and_role_permissions_may_read_nobody_else(small_city, worker, auditor):
    area = small_city.district
    admin_member = user_with_role("ada", "admin", area)
    granted = user_with_role("gus", "compliance", area, permissions=["accounts.view_auditentry"])
    root = User.objects.create_superuser(username="root", password=None)
    inactive = user_with_role("ina", "auditor", small_city.street)
    inactive.memberships.update(is_active=False)
    for user in (auditor, admin_member, granted, root):
        assert can_view_audit(user), user
        assert web(user).get("/audit/").status_code == 200, user
        assert api(user).get("/api/v1/audit").status_code == 200, user
    for user in (worker, inactive):
        assert not can_view_audit(user)
        assert web(user).get("/audit/").status_code == 403
        assert api(user).get("/api/v1/audit").status_code == 403


def test_the_log_cannot_be_changed_through_the_api(auditor, log):
    entry = AuditEntry.objects.first()
    client = api(auditor)
    assert client.post("/api/v1/audit", {"action": "x"}).status_code == 405
    assert client.put(f"/api/v1/audit/{entry.pk}", {"action": "x"}).status_code == 405
    assert client.delete(f"/api/v1/audit/{entry.pk}").status_code == 405


# --- Filters ------------------------------------------------------------------------


FILTER_CASES = [
    ({}, ["login", "area_update", "area_update", "login_failed", "permission_denied"]),
    ({"person": "alice"}, ["login", "area_update"]),
    ({"person": "ALICE", "action": "area_update"}, ["area_update"]),
    ({"object_type": "geo.area"}, ["area_update", "area_update"]),
    ({"object_type": "geo.area", "object_id": "18"}, ["area_update"]),
    ({"outcome": "failure"}, ["login_failed"]),
    (
        {"since": "2025-03-01T09:30:00Z", "until": "2025-03-02T00:00:00Z"},
        ["area_update", "login_failed"],
    ),
    ({"since": "2025-03-02T00:00:00Z"}, ["permission_denied"]),
]


@pytest.mark.parametrize("params, actions", FILTER_CASES)
def test_api_filters(auditor, log, params, actions):
    response = api(auditor).get("/api/v1/audit", params)
    assert response.status_code == 200
    assert sorted(e["action"] for e in response.json()["results"]) == sorted(actions)


@pytest.mark.parametrize("params, actions", FILTER_CASES)
def test_web_filters(auditor, log, params, actions):
    response = web(auditor).get("/audit/", params)
    assert response.status_code == 200
    # Leave out the auditor's own sign-in, written just now by the test client.
    shown = [e.action for e in response.context["page"].object_list if e.actor_id != auditor.pk]
    assert sorted(shown) == sorted(actions)


def test_person_filter_takes_a_user_id_too(auditor, log):
    AuditEntry.objects.create(actor_id=4242, actor_username="zed", action="login")
    results = api(auditor).get("/api/v1/audit", {"person": "4242"}).json()["results"]
    assert [e["actor_username"] for e in results] == ["zed"]


def test_a_bad_filter_is_a_400_not_a_500(auditor, log):
    response = api(auditor).get("/api/v1/audit", {"since": "yesterday-ish"})
    assert response.status_code == 400 and "since" in response.json()
    page = web(auditor).get("/audit/", {"since": "yesterday-ish"})
    assert page.status_code == 200 and page.context["filterset"].errors


def test_the_local_time_filter_uses_the_city_time_zone(auditor, log):
    # 17:30 in Shanghai is 09:30 UTC.
    response = web(auditor).get(
        "/audit/", {"since": "2025-03-01T17:30", "until": "2025-03-02T08:00"}
    )
    assert sorted(e.action for e in response.context["page"].object_list) == [
        "area_update",
        "login_failed",
    ]


def test_the_detail_page_shows_before_and_after_and_records_the_look(auditor, log):
    entry = AuditEntry.objects.get(object_id="17")
    response = web(auditor).get(reverse("audit:detail", args=[entry.pk]))
    assert response.status_code == 200
    assert response.context["changes"] == [
        {"field": "name", "before": '"Old"', "after": '"New"', "changed": True}
    ]
    look = AuditEntry.objects.get(action="personal_data_view")
    assert look.actor_id == auditor.pk and look.object_id == str(entry.pk)
    assert look.purpose == "audit review"


# --- Export ---------------------------------------------------------------------------


def _rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(body)))


def test_web_export_needs_a_purpose_and_records_it(auditor, log):
    client = web(auditor)
    refused = client.get(reverse("audit:export"), {"action": "area_update"})
    assert refused.status_code == 302 and refused["Location"].startswith("/audit/")
    assert not AuditEntry.objects.filter(action="personal_data_export").exists()
    response = client.get(
        reverse("audit:export"), {"action": "area_update", "purpose": "quarterly review"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = _rows(response)
    assert [r["action"] for r in rows] == ["area_update", "area_update"]
    assert rows[0]["after"] == '{"name": "New"}'
    assert rows[-1]["at_utc"] == "2025-03-01T09:00:00+00:00"
    export = AuditEntry.objects.get(action="personal_data_export")
    assert export.purpose == "quarterly review" and export.actor_id == auditor.pk
    assert export.detail["filters"] == {"action": "area_update"}
    assert "ip" in export.detail["fields"]


def test_api_export_by_format_or_path(auditor, log):
    client = api(auditor)
    assert client.get("/api/v1/audit", {"format": "csv"}).status_code == 400
    assert client.get("/api/v1/audit/export.csv").status_code == 400
    by_format = client.get(
        "/api/v1/audit", {"format": "csv", "purpose": "inquiry", "person": "bob"}
    )
    assert by_format.status_code == 200
    assert sorted(r["action"] for r in _rows(by_format)) == ["area_update", "permission_denied"]
    by_path = client.get("/api/v1/audit/export.csv", {"purpose": "inquiry", "outcome": "failure"})
    assert [r["action"] for r in _rows(by_path)] == ["login_failed"]
    assert AuditEntry.objects.filter(action="personal_data_export").count() == 2


def test_export_defuses_spreadsheet_formulas(auditor, db):
    AuditEntry.objects.create(actor_username='=HYPERLINK("http://x")', action="login_failed")
    rows = _rows(api(auditor).get("/api/v1/audit/export.csv", {"purpose": "incident 7"}))
    assert rows[-1]["actor_username"] == '\'=HYPERLINK("http://x")'


def test_workers_cannot_export(worker, log):
    assert api(worker).get("/api/v1/audit/export.csv", {"purpose": "x"}).status_code == 403
    client = Client()
    client.force_login(worker)
    assert client.get(reverse("audit:export"), {"purpose": "x"}).status_code == 403


def test_personal_data_access_needs_a_purpose(auditor):
    with pytest.raises(DomainError) as caught:
        audit_personal_data_access(actor=auditor, obj=auditor, purpose=" ", fields=["phone"])
    assert "purpose" in caught.value.errors
    entry = audit_personal_data_access(
        actor=auditor, obj=auditor, purpose="complaint 12", fields=["phone", "email"]
    )
    assert entry.action == "personal_data_view" and entry.object_type == "accounts.user"
    assert entry.detail == {"fields": ["email", "phone"]}
    export = audit_personal_data_access(
        actor=auditor, obj=User, purpose="complaint 12", fields=["phone"], export=True
    )
    assert export.action == "personal_data_export" and export.object_id == ""


# --- Append-only ------------------------------------------------------------------


def test_the_orm_refuses_to_change_or_delete_entries(db):
    entry = audit_log(actor=None, action="login_failed", actor_username="x")
    entry.action = "login"
    with pytest.raises(AuditLogIsAppendOnly):
        entry.save()
    with pytest.raises(AuditLogIsAppendOnly):
        entry.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(action="login")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.all().delete()
    entry.refresh_from_db()
    assert entry.action == "login_failed"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE accounts_auditentry SET action = 'login' WHERE id = %s",
        "DELETE FROM accounts_auditentry WHERE id = %s",
    ],
)
def test_postgresql_refuses_raw_update_and_delete(db, sql):
    if connection.vendor != "postgresql":
        pytest.skip(
            "the append-only trigger exists on PostgreSQL only; "
            "run with DATABASE_URL=postgres://… to check it"
        )
    entry = audit_log(actor=None, action="login_failed")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [entry.pk])
    assert AuditEntry.objects.filter(pk=entry.pk, action="login_failed").exists()


def test_the_admin_shows_the_log_read_only(admin_client, log):
    model_admin = admin.site._registry[AuditEntry]
    assert admin_client.get("/admin/accounts/auditentry/").status_code == 200
    assert admin_client.get("/admin/accounts/auditentry/add/").status_code == 403
    entry = AuditEntry.objects.first()
    page = admin_client.get(f"/admin/accounts/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.post(f"/admin/accounts/auditentry/{entry.pk}/delete/").status_code == 403
    request = type("R", (), {"user": User(is_superuser=True)})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_templates_know_whether_to_show_the_audit_link(auditor, worker, rf):
    from accounts.context_processors import security

    for user, expected in [(auditor, True), (worker, False)]:
        request = rf.get("/")
        request.user = user
        assert bool(security(request)["can_view_audit"]) is expected
