from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from accounts.models import AuditEntry, User
from accounts.testing import user_with_role
from accounts.tokens import token_create

PASSWORD = "Wd7!correct-horse"
T0 = datetime(2025, 3, 1, 8, 0, 5, tzinfo=UTC)
SETUP = "/accounts/security/two-factor/setup/"
VERIFY = "/accounts/security/two-factor/verify/"


def code_for(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def wrong_code_for(device: TOTPDevice) -> str:
    """A code the device rejects now (not that of this or either neighbouring time step)."""
    device.refresh_from_db()
    near = {
        totp(device.bin_key, device.step, device.t0, device.digits, device.drift + d)
        for d in (-1, 0, 1)
    }
    return f"{next(n for n in range(10**6) if n not in near):06d}"


def sign_in(username: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.fixture
def root(db):
    return User.objects.create_superuser(username="root", password=PASSWORD)


@pytest.fixture
def role_admin(small_city):
    return user_with_role("ada", "admin", small_city.district, password=PASSWORD)


@pytest.fixture
def staff(db):
    return User.objects.create_user(username="sam", password=PASSWORD, is_staff=True)


def confirmed_device_for(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


@pytest.mark.parametrize("who", ["root", "role_admin"])
def test_an_admin_without_a_device_is_sent_to_setup_from_every_page(who, request):
    request.getfixturevalue(who)
    username = {"root": "root", "role_admin": "ada"}[who]
    client = sign_in(username)
    for path in ["/", "/geo/map/", "/admin/", "/audit/", "/accounts/security/tokens/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(SETUP), path
    assert client.get(SETUP).status_code == 200
    api = client.get("/api/v1/tokens")
    assert api.status_code == 403 and api.json()["code"] == "two_factor_required"
    # Signing out and the stylesheet stay reachable.
    assert client.get("/static/css/civicgrid.css").status_code != 302
    assert client.post(reverse("logout")).status_code == 302
    assert SESSION_KEY not in client.session


def test_setup_confirms_with_a_real_code_and_then_lets_the_admin_in(root):
    with time_machine.travel(T0, tick=False):
        client = sign_in("root")
        page = client.get(SETUP + "?next=/audit/")
        assert page.status_code == 200
        assert b"<svg" in page.content and b"qrline" in page.content
        device = TOTPDevice.objects.get(user=root)
        assert not device.confirmed
        assert "otpauth://totp/CivicGrid%3Aroot" in device.config_url
        wrong = client.post(SETUP, {"code": wrong_code_for(device), "next": "/audit/"})
        assert wrong.status_code == 200 and wrong.context["form"].errors
        throttled = client.post(SETUP, {"code": code_for(device), "next": "/audit/"})
        assert b"Wait a few seconds" in throttled.content
    with time_machine.travel(T0 + timedelta(seconds=2), tick=False):
        response = client.post(SETUP, {"code": code_for(device), "next": "/audit/"})
        assert response.status_code == 302 and response["Location"] == "/audit/"
        assert client.get("/audit/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    outcomes = list(
        AuditEntry.objects.filter(action="two_factor_enable").values_list("outcome", flat=True)
    )
    assert sorted(outcomes) == ["failure", "success"]


def test_reloading_setup_keeps_the_same_secret(root):
    client = sign_in("root")
    first = client.get(SETUP).context["secret"]
    assert client.get(SETUP).context["secret"] == first
    assert TOTPDevice.objects.filter(user=root).count() == 1


def test_an_admin_with_a_device_must_pass_the_verify_step(role_admin):
    device = confirmed_device_for(role_admin)
    with time_machine.travel(T0, tick=False):
        client = sign_in("ada")
        response = client.get("/geo/map/")
        assert response.status_code == 302
        assert response["Location"] == VERIFY + "?next=%2Fgeo%2Fmap%2F"
        # Not even the setup page: a password alone must not enrol a new phone.
        assert client.get(SETUP)["Location"].startswith(VERIFY)
        wrong = client.post(VERIFY, {"code": wrong_code_for(device), "next": "/geo/map/"})
        assert wrong.status_code == 200
        assert b"That code is not right" in wrong.content
        assert client.get("/audit/").status_code == 302
    with time_machine.travel(T0 + timedelta(seconds=2), tick=False):
        good = client.post(VERIFY, {"code": code_for(device), "next": "/geo/map/"})
        assert good.status_code == 302 and good["Location"] == "/geo/map/"
        assert client.get("/audit/").status_code == 200
    verify = AuditEntry.objects.filter(action="two_factor_verify")
    assert sorted(verify.values_list("outcome", flat=True)) == ["failure", "success"]


def test_a_code_cannot_be_used_twice(root):
    device = confirmed_device_for(root)
    with time_machine.travel(T0, tick=False):
        first = sign_in("root")
        code = code_for(device)
        assert first.post(VERIFY, {"code": code}).status_code == 302
        second = sign_in("root")
        assert second.post(VERIFY, {"code": code}).status_code == 200
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        assert second.post(VERIFY, {"code": code_for(device)}).status_code == 302


def test_verify_does_not_redirect_off_site(root):
    device = confirmed_device_for(root)
    with time_machine.travel(T0, tick=False):
        client = sign_in("root")
        response = client.post(VERIFY, {"code": code_for(device), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_staff_without_two_factor_are_not_held(staff):
    client = sign_in("sam")
    assert client.get("/accounts/security/").status_code == 200
    assert client.get("/api/v1/tokens").status_code == 200


def test_staff_may_turn_two_factor_on_and_then_must_verify(staff):
    with time_machine.travel(T0, tick=False):
        client = sign_in("sam")
        client.get(SETUP)
        device = TOTPDevice.objects.get(user=staff)
        assert client.post(SETUP, {"code": code_for(device)}).status_code == 302
        page = client.get("/accounts/security/")
        assert page.status_code == 200 and page.context["device"] == device
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        later = sign_in("sam")
        assert later.get("/accounts/security/")["Location"].startswith(VERIFY)
        assert later.post(VERIFY, {"code": code_for(device)}).status_code == 302
        # Staff may switch it off again.
        assert later.post(reverse("account_2fa_disable")).status_code == 302
    assert not TOTPDevice.objects.filter(user=staff).exists()
    assert AuditEntry.objects.filter(action="two_factor_disable", actor_id=staff.pk).exists()
    assert sign_in("sam").get("/accounts/security/").status_code == 200


def test_admins_cannot_switch_two_factor_off(root):
    device = confirmed_device_for(root)
    with time_machine.travel(T0, tick=False):
        client = sign_in("root")
        client.post(VERIFY, {"code": code_for(device)})
        client.post(reverse("account_2fa_disable"))
    assert TOTPDevice.objects.filter(user=root, confirmed=True).exists()


def test_moving_to_a_new_phone_replaces_the_old_device(root):
    old = confirmed_device_for(root)
    with time_machine.travel(T0, tick=False):
        client = sign_in("root")
        client.post(VERIFY, {"code": code_for(old)})
        client.get(SETUP)
        new = TOTPDevice.objects.get(user=root, confirmed=False)
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        assert client.post(SETUP, {"code": code_for(new)}).status_code == 302
    assert list(TOTPDevice.objects.filter(user=root)) == [new]


def test_api_tokens_are_not_held_by_the_two_factor_step(root):
    confirmed_device_for(root)
    _token, key = token_create(user=root, name="ops")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/tokens").status_code == 200
    assert api.get("/api/v1/audit").status_code == 200
