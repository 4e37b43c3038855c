import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditEntry, User
from accounts.tokens import token_authenticate, token_create, token_revoke
from core.errors import DomainError, NotFound

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
TOKENS_URL = "/api/v1/tokens"


@pytest.fixture
def alice(db):
    return User.objects.create_user(username="alice", password="correct horse battery")


def bearer(key: str, scheme: str = "Bearer") -> APIClient:
    # English, so the messages can be compared (the default language is Chinese).
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return api


def test_create_returns_the_key_and_stores_only_its_hash(alice):
    token, key = token_create(user=alice, name="reporting script")
    assert key.startswith("cg_") and len(key) == 3 + 43
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert token.prefix == key[:10]
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert key not in {str(v) for v in stored.values()}
    assert token.expires_at - token.created_at == timedelta(days=90)
    entry = AuditEntry.objects.get(action="token_create")
    assert entry.actor_id == alice.pk and entry.object_id == str(token.pk)
    assert key not in str(entry.after)


def test_two_keys_are_never_the_same(alice):
    keys = {token_create(user=alice, name=f"t{i}")[1] for i in range(5)}
    assert len(keys) == 5


@pytest.mark.parametrize("days", [0, 366, -1, "soon", None, True])
def test_lifetime_outside_1_to_365_days_is_refused(alice, days):
    with pytest.raises(DomainError) as caught:
        token_create(user=alice, name="x", expires_in_days=days)
    assert "expires_in_days" in caught.value.errors
    assert not ApiToken.objects.exists()


def test_a_name_is_required(alice):
    with pytest.raises(DomainError) as caught:
        token_create(user=alice, name="   ")
    assert "name" in caught.value.errors


@pytest.mark.parametrize("days", [1, 365])
def test_lifetime_bounds_are_accepted(alice, days):
    token, _key = token_create(user=alice, name="x", expires_in_days=days)
    assert token.expires_at - token.created_at == timedelta(days=days)


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer"])
def test_a_token_authenticates_api_requests(alice, scheme):
    token, key = token_create(user=alice, name="cli")
    response = bearer(key, scheme).get(TOKENS_URL)
    assert response.status_code == 200
    assert [t["id"] for t in response.json()] == [token.pk]
    assert "key" not in response.json()[0]


def test_an_unknown_key_is_a_401_with_a_bearer_challenge(db):
    response = bearer("cg_" + "x" * 43).get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid API token."
    assert response["WWW-Authenticate"].startswith("Bearer")
    entry = AuditEntry.objects.get(action="token_use")
    assert entry.outcome == "failure" and entry.detail["reason"] == "unknown"


def test_no_credentials_is_a_401_and_basic_auth_is_not_accepted(alice):
    assert APIClient().get(TOKENS_URL).status_code == 401
    basic = APIClient()
    basic.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5")
    assert basic.get(TOKENS_URL).status_code == 401


def test_a_malformed_header_is_a_401(alice):
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.credentials(HTTP_AUTHORIZATION="Bearer")
    response = api.get(TOKENS_URL)
    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["detail"]


def test_an_expired_token_is_refused(alice):
    with time_machine.travel(T0, tick=False):
        _token, key = token_create(user=alice, name="short", expires_in_days=1)
    with time_machine.travel(T0 + timedelta(days=1) - timedelta(seconds=1), tick=False):
        assert bearer(key).get(TOKENS_URL).status_code == 200
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        response = bearer(key).get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json()["detail"] == "This API token has expired."


def test_a_revoked_token_is_refused_at_once(alice):
    with time_machine.travel(T0, tick=False):
        token, key = token_create(user=alice, name="ci")
        assert bearer(key).get(TOKENS_URL).status_code == 200
        token_revoke(token=token, actor=alice)
        response = bearer(key).get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json()["detail"] == "This API token has been revoked."
    token.refresh_from_db()
    assert token.revoked_at == T0
    revoke = AuditEntry.objects.get(action="token_revoke")
    assert revoke.before["revoked_at"] is None and revoke.after["revoked_at"] is not None


def test_revoking_twice_changes_nothing_and_others_cannot_revoke(alice):
    token, _key = token_create(user=alice, name="ci")
    mallory = User.objects.create_user(username="mallory", password=None)
    with pytest.raises(NotFound):
        token_revoke(token=token, actor=mallory)
    first = token_revoke(token=token, actor=alice).revoked_at
    assert token_revoke(token=token, actor=alice).revoked_at == first
    assert AuditEntry.objects.filter(action="token_revoke").count() == 1


def test_a_disabled_account_cannot_use_its_token(alice):
    _token, key = token_create(user=alice, name="ci")
    alice.is_active = False
    alice.save()
    assert bearer(key).get(TOKENS_URL).status_code == 401


def test_last_used_is_written_at_most_once_a_minute(alice):
    with time_machine.travel(T0, tick=False):
        token, key = token_create(user=alice, name="poller")
    for seconds, expected in [(0, 0), (30, 0), (59, 0), (61, 61), (90, 61), (125, 125)]:
        with time_machine.travel(T0 + timedelta(seconds=seconds), tick=False):
            assert bearer(key).get(TOKENS_URL).status_code == 200
        token.refresh_from_db()
        assert token.last_used_at == T0 + timedelta(seconds=expected), seconds


def test_each_use_is_audited_and_costs_three_queries_at_most(alice):
    token, key = token_create(user=alice, name="poller")
    token_authenticate(key)  # the first use also sets last_used_at
    with CaptureQueriesContext(connection) as queries:
        token_authenticate(key, detail={"method": "GET", "path": "/api/v1/x"})
    # one SELECT, one conditional UPDATE that matches nothing, one INSERT
    assert len(queries) <= 3, [q["sql"] for q in queries]
    uses = AuditEntry.objects.filter(action="token_use", outcome="success")
    assert uses.count() == 2
    assert uses.first().detail == {"method": "GET", "path": "/api/v1/x"}
    assert uses.first().object_id == str(token.pk)


def test_api_create_shows_the_key_once(alice, client):
    client.force_login(alice)
    response = client.post(
        TOKENS_URL, {"name": "sync", "expires_in_days": 30}, content_type="application/json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith("cg_") and body["prefix"] == body["key"][:10]
    assert "no-store" in response["Cache-Control"]
    listing = client.get(TOKENS_URL).json()
    assert body["key"] not in str(listing)
    assert bearer(body["key"]).get(TOKENS_URL).status_code == 200


def test_api_create_validates(alice, client):
    client.force_login(alice)
    response = client.post(
        TOKENS_URL, {"name": "sync", "expires_in_days": 400}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "expires_in_days" in response.json()
    assert not ApiToken.objects.exists()


def test_a_token_cannot_mint_more_tokens(alice):
    _token, key = token_create(user=alice, name="leaked")
    response = bearer(key).post(TOKENS_URL, {"name": "more"}, format="json")
    assert response.status_code == 403
    assert ApiToken.objects.count() == 1
    denied = AuditEntry.objects.get(action="permission_denied")
    assert denied.actor_id == alice.pk and denied.outcome == "denied"


def test_api_revoke_and_someone_elses_token_is_absent(alice):
    token, key = token_create(user=alice, name="a")
    other, other_key = token_create(
        user=User.objects.create_user(username="bob", password=None), name="b"
    )
    api = bearer(key)
    assert api.post(f"{TOKENS_URL}/{other.pk}/revoke").status_code == 404
    assert api.delete(f"{TOKENS_URL}/{other.pk}").status_code == 404
    assert bearer(other_key).get(TOKENS_URL).status_code == 200
    response = api.post(f"{TOKENS_URL}/{token.pk}/revoke")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert api.get(TOKENS_URL).status_code == 401


def test_api_delete_revokes(alice):
    token, key = token_create(user=alice, name="a")
    _spare, spare_key = token_create(user=alice, name="spare")
    assert bearer(spare_key).delete(f"{TOKENS_URL}/{token.pk}").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert bearer(key).get(TOKENS_URL).status_code == 401


def test_web_page_shows_the_new_key_once_then_only_its_prefix(alice, client):
    client.force_login(alice)
    url = reverse("account_tokens")
    response = client.post(url, {"name": "laptop", "expires_in_days": 7})
    assert response.status_code == 200
    token = ApiToken.objects.get()
    key = response.context["created"]["key"]
    assert key.encode() in response.content
    assert "no-store" in response["Cache-Control"]
    again = client.get(url)
    assert key.encode() not in again.content
    assert token.prefix.encode() in again.content


def test_web_form_errors_and_revoke(alice, client):
    client.force_login(alice)
    url = reverse("account_tokens")
    response = client.post(url, {"name": "x", "expires_in_days": 0})
    assert response.status_code == 200 and response.context["form"].errors
    token, key = token_create(user=alice, name="old")
    response = client.post(reverse("account_token_revoke", args=[token.pk]))
    assert response.status_code == 302
    assert bearer(key).get(TOKENS_URL).status_code == 401
    bob = User.objects.create_user(username="bob", password=None)
    bobs, _k = token_create(user=bob, name="bob's")
    assert client.post(reverse("account_token_revoke", args=[bobs.pk])).status_code == 404


# --- a token's use travels with the request's own write ------------------------------------


def test_a_use_is_written_when_the_request_ends_stamped_with_the_request(alice):
    _token, key = token_create(user=alice, name="poller")
    response = bearer(key).get(TOKENS_URL)
    assert response.status_code == 200
    use = AuditEntry.objects.get(action="token_use")
    assert use.request_id == response["X-Request-ID"] and use.actor_id == alice.pk


def test_a_use_is_written_even_when_the_request_fails(alice):
    from accounts import audit

    _token, key = token_create(user=alice, name="poller")
    with audit.holding(), pytest.raises(RuntimeError):
        token_authenticate(key)
        assert not AuditEntry.objects.filter(action="token_use").exists()  # held
        raise RuntimeError("the view failed")
    assert AuditEntry.objects.filter(action="token_use").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_writer_takes_held_uses_only_for_a_transaction_of_its_own():
    from django.db import transaction

    from accounts import audit

    alice = User.objects.create_user("alice2", password="correct horse battery")
    _token, key = token_create(user=alice, name="poller")
    with audit.holding():
        token_authenticate(key)
        with transaction.atomic():
            # Inside a caller's transaction they could be undone with it: not taken.
            assert audit.take_held() == []
        taken = audit.take_held()
        assert [e.action for e in taken] == ["token_use"]
        assert audit.take_held() == []  # taken once
        audit.hold_again(taken)  # the writer failed: written when the block ends
    assert AuditEntry.objects.filter(action="token_use").count() == 1


def test_outside_a_request_a_use_is_written_at_once(alice):
    _token, key = token_create(user=alice, name="script")
    token_authenticate(key)
    assert AuditEntry.objects.filter(action="token_use").count() == 1
