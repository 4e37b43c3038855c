from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings as project_settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditEntry, User

PASSWORD = "Wd7!correct-horse"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
LIMIT = project_settings.AXES_FAILURE_LIMIT


@pytest.fixture
def alice(db):
    return User.objects.create_user(username="alice", password=PASSWORD)


def english(ip: str = "127.0.0.1") -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE="en", REMOTE_ADDR=ip)


def sign_in(client: Client, password: str, username: str = "alice"):
    return client.post(reverse("login"), {"username": username, "password": password})


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def test_settings_lock_after_five_failures_for_fifteen_minutes():
    assert LIMIT == 5
    assert timedelta(minutes=15) == project_settings.AXES_COOLOFF_TIME
    assert project_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert project_settings.AUTHENTICATION_BACKENDS[0].startswith("axes.backends.")


def test_a_wrong_password_says_so_and_is_audited(alice):
    client = english()
    response = sign_in(client, "wrong")
    assert response.status_code == 200
    assert b"didn't match" in response.content
    assert not signed_in(client)
    entry = AuditEntry.objects.get(action="login_failed")
    assert entry.outcome == "failure"
    assert entry.actor_username == "alice" and entry.actor_id is None
    assert entry.ip == "127.0.0.1" and len(entry.request_id) == 32


def test_repeated_failures_lock_the_account_even_for_the_right_password(alice):
    client = english()
    with time_machine.travel(T0, tick=False):
        for _attempt in range(LIMIT - 1):
            assert sign_in(client, "wrong").status_code == 200
        locked = sign_in(client, "wrong")
        assert locked.status_code == 429
        assert b"Sign-in paused" in locked.content
        assert b"signing in is paused for 15 minutes" in locked.content
        again = sign_in(client, PASSWORD)
    assert again.status_code == 429
    assert not signed_in(client)
    assert AuditEntry.objects.filter(action="login_failed").count() == LIMIT + 1
    lockouts = AuditEntry.objects.filter(action="lockout")
    assert lockouts.exists()
    assert {e.outcome for e in lockouts} == {"denied"}
    assert {e.actor_username for e in lockouts} == {"alice"}
    assert not AuditEntry.objects.filter(action="login").exists()


def test_the_lock_message_is_localized(alice):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    for _attempt in range(LIMIT):
        response = sign_in(client, "wrong")
    assert response.status_code == 429
    assert b'lang="zh-hans"' in response.content


def test_the_lock_lifts_after_the_cool_off(alice):
    client = english()
    with time_machine.travel(T0, tick=False):
        for _attempt in range(LIMIT):
            sign_in(client, "wrong")
    with time_machine.travel(T0 + timedelta(minutes=14), tick=False):
        assert sign_in(client, PASSWORD).status_code == 429
    # That refused try started the 15 minutes again.
    with time_machine.travel(T0 + timedelta(minutes=14 + 16), tick=False):
        response = sign_in(client, PASSWORD)
        assert response.status_code == 302
        assert signed_in(client)
    assert AuditEntry.objects.filter(action="login", actor_id=alice.pk).count() == 1


def test_the_lock_is_per_username_and_address(alice):
    attacker = english("203.0.113.7")
    for _attempt in range(LIMIT):
        sign_in(attacker, "wrong")
    assert sign_in(attacker, PASSWORD).status_code == 429
    colleague = english("198.51.100.20")
    assert sign_in(colleague, PASSWORD).status_code == 302
    assert signed_in(colleague)
    User.objects.create_user(username="bob", password=PASSWORD)
    assert sign_in(attacker, PASSWORD, username="bob").status_code == 302


def test_a_successful_sign_in_resets_the_count(alice):
    client = english()
    for _attempt in range(LIMIT - 1):
        sign_in(client, "wrong")
    assert sign_in(client, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    for _attempt in range(LIMIT - 1):
        assert sign_in(client, "wrong").status_code == 200
    assert sign_in(client, PASSWORD).status_code == 302


def test_sign_in_and_sign_out_are_audited(alice):
    client = english()
    assert sign_in(client, PASSWORD).status_code == 302
    login = AuditEntry.objects.get(action="login")
    assert login.actor_id == alice.pk and login.outcome == "success" and login.ip == "127.0.0.1"
    assert client.post(reverse("logout")).status_code == 302
    assert AuditEntry.objects.get(action="logout").actor_id == alice.pk


def test_passwords_are_hashed_with_argon2(real_password_hashers, db):
    user = User.objects.create_user(username="carol", password=PASSWORD)
    assert user.password.startswith("argon2")
    assert sign_in(english(), PASSWORD, username="carol").status_code == 302


def test_an_old_pbkdf2_hash_still_works_and_is_upgraded(real_password_hashers, db):
    from django.contrib.auth.hashers import make_password

    user = User.objects.create_user(username="dave", password=None)
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save()
    assert sign_in(english(), PASSWORD, username="dave").status_code == 302
    user.refresh_from_db()
    assert user.password.startswith("argon2")


@pytest.mark.parametrize(
    "password, reason",
    [
        ("Sh0rt!pw", "too short"),
        ("password123", "too common"),
        ("4815162342108", "entirely numeric"),
    ],
)
def test_weak_passwords_are_refused(password, reason, db):
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        validate_password(password)
    assert reason in " ".join(caught.value.messages)


def test_a_long_uncommon_password_is_accepted(db):
    validate_password("lantern-quay-8841")
