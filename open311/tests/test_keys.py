"""Client API keys: created by admins (pages, command), stored hashed, revocable, audited."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEntry
from accounts.testing import user_with_role, verified_login
from core.errors import DomainError
from geo.models import AreaLevel
from geo.testing import make_area
from open311.models import ApiKey
from open311.services import api_key_authenticate, api_key_create, api_key_revoke

from .conftest import post_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

KEYS_URL = "/open311/v2/keys/"


@pytest.fixture
def other_district(world):
    return make_area(code="110106", level=AreaLevel.DISTRICT, name="丰台区")


def test_a_key_is_stored_as_a_hash_and_shown_once(world):
    key, secret = api_key_create(
        actor=world["admin"], name="Mobile app", jurisdiction=world.city.district
    )
    assert secret.startswith("o311_") and len(secret) == 5 + 43
    assert key.prefix == secret[:12]
    assert key.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert secret not in str(stored)
    assert key.created_by == world["admin"]
    assert key.requests_per_minute == 60
    entry = AuditEntry.objects.get(action="open311.key_create")
    assert entry.actor_id == world["admin"].pk
    assert entry.after["prefix"] == key.prefix
    assert secret not in str(entry.after)
    assert api_key_authenticate(secret) == key


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"requests_per_minute": 10_001}, "requests_per_minute"),
        ({"requests_per_minute": True}, "requests_per_minute"),
        ({"contact": "c" * 201}, "contact"),
        ({"jurisdiction": None}, "jurisdiction"),
    ],
)
def test_bad_key_fields_are_refused(world, fields, field):
    values = {"name": "App", "jurisdiction": world.city.district, **fields}
    with pytest.raises(DomainError) as caught:
        api_key_create(actor=None, **values)
    assert field in caught.value.errors
    assert not ApiKey.objects.exists()


def test_a_key_for_an_area_outside_the_admins_scope_is_refused(world, other_district):
    with pytest.raises(DomainError) as caught:
        api_key_create(actor=world["admin"], name="App", jurisdiction=other_district)
    assert caught.value.errors["jurisdiction"] == ["This area is outside the areas you manage."]


def test_revoking_is_audited_and_idempotent(world, api_key):
    api_key_revoke(key=api_key, actor=world["admin"])
    api_key_revoke(key=api_key, actor=world["admin"])
    (entry,) = AuditEntry.objects.filter(action="open311.key_revoke")
    assert entry.before["revoked_at"] is None and entry.after["revoked_at"]


# --- the pages -----------------------------------------------------------------------------


def test_the_page_lists_the_keys_in_the_admins_areas(client, world, api_key, other_district):
    api_key_create(actor=None, name="Fengtai app", jurisdiction=other_district)
    verified_login(client, world["admin"])
    response = client.get(KEYS_URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Street app" in page and api_key.prefix in page
    assert "Fengtai app" not in page
    assert api_key.secret not in page
    assert response["Cache-Control"].startswith("max-age=0")


def test_the_pages_need_the_permissions(client, world, api_key):
    assert client.get(KEYS_URL).status_code == 302  # sign in first
    client.force_login(world["worker"])
    assert client.get(KEYS_URL).status_code == 403
    assert client.post(KEYS_URL, {"name": "x"}).status_code == 403
    assert client.post(f"{KEYS_URL}{api_key.pk}/revoke/").status_code == 403
    viewer = user_with_role(
        "viewer", "key_viewer", world.city.district, permissions=["open311.view_apikey"]
    )
    client.force_login(viewer)
    assert client.get(KEYS_URL).status_code == 200
    response = client.post(
        KEYS_URL, {"name": "x", "jurisdiction": "110105", "requests_per_minute": "60"}
    )
    assert response.status_code == 403
    assert ApiKey.objects.count() == 1


def test_an_admin_creates_a_key_and_sees_it_once(client, world):
    verified_login(client, world["admin"])
    response = client.post(
        KEYS_URL,
        {
            "name": "City app",
            "jurisdiction": world.city.street.code,
            "requests_per_minute": "30",
            "contact": "app team",
        },
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(name="City app")
    secret = response.context["created"]["secret"]
    assert secret in response.content.decode()
    assert key.jurisdiction == world.city.street
    assert key.requests_per_minute == 30
    assert key.contact == "app team"
    assert secret not in client.get(KEYS_URL).content.decode()
    # The key works.
    assert post_request(client, secret).status_code == 200


@pytest.mark.parametrize(
    ("jurisdiction", "message"),
    [
        ("999999", "No area has this code."),
        ("110106", "This area is outside the areas you manage."),
    ],
)
def test_a_key_form_with_a_bad_area_is_400(client, world, other_district, jurisdiction, message):
    verified_login(client, world["admin"])
    response = client.post(
        KEYS_URL, {"name": "App", "jurisdiction": jurisdiction, "requests_per_minute": "60"}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiKey.objects.exists()


def test_an_admin_revokes_a_key(client, world, api_key, other_district):
    foreign, _secret = api_key_create(actor=None, name="Fengtai app", jurisdiction=other_district)
    verified_login(client, world["admin"])
    url = f"{KEYS_URL}{api_key.pk}/revoke/"
    assert client.get(url).status_code == 200
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == KEYS_URL
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert post_request(client, api_key).status_code == 403
    # A key outside the admin's areas is not there for her.
    assert client.get(f"{KEYS_URL}{foreign.pk}/revoke/").status_code == 404
    assert client.post(f"{KEYS_URL}{foreign.pk}/revoke/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


# --- the command ----------------------------------------------------------------------------


def test_the_command_creates_lists_and_revokes(world):
    out, err = StringIO(), StringIO()
    call_command(
        "open311_key",
        "create",
        "--name",
        "Hotline bridge",
        "--jurisdiction",
        "110105",
        "--requests-per-minute",
        "120",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip()
    key = ApiKey.objects.get(name="Hotline bridge")
    assert key.prefix == secret[:12] and key.requests_per_minute == 120
    assert api_key_authenticate(secret) == key
    assert key.prefix in err.getvalue()

    listing = StringIO()
    call_command("open311_key", "list", stdout=listing)
    assert key.prefix in listing.getvalue() and "active" in listing.getvalue()
    assert secret not in listing.getvalue()

    call_command("open311_key", "revoke", key.prefix, stdout=StringIO())
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEntry.objects.filter(action="open311.key_revoke", object_id=str(key.pk)).exists()


def test_the_command_refuses_bad_input(world):
    with pytest.raises(CommandError, match="no area has the code"):
        call_command("open311_key", "create", "--name", "x", "--jurisdiction", "999999")
    with pytest.raises(CommandError, match="requests_per_minute"):
        call_command(
            "open311_key",
            "create",
            "--name",
            "x",
            "--jurisdiction",
            "110105",
            "--requests-per-minute",
            "0",
        )
    with pytest.raises(CommandError, match="no key starts with"):
        call_command("open311_key", "revoke", "o311_nothing")
    assert not ApiKey.objects.exists()
