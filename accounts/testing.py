"""Test helpers: signing in the way the application requires, and shared fixtures.

The fixtures reach the test packages through their ``conftest.py``; a module
asks for ``english`` and ``fresh_cache`` with ``pytest.mark.usefixtures``.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.utils import translation


@pytest.fixture
def english(settings):
    # Messages are compared in English, the source language of the catalogue.
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def fresh_cache():
    # Settings are cached; a value cached in one test must not leak into the next.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin(db):
    """A superuser without a usable password, acting in services."""
    from .models import User

    return User.objects.create_superuser(username="root", password=None)


def verified_login(client, user):
    """Sign ``user`` in on a test client with a session that two-factor has verified.

    Admins (superusers, holders of the admin role) are held at the two-factor
    pages until their session is verified; this gives the user a confirmed
    TOTP device and marks the session as verified by it. Works with Django's
    test client and DRF's APIClient.
    """
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def user_with_role(username: str, role_code: str, area, *, permissions=(), password=None):
    """A user holding ``role_code`` over ``area``; the role is created if missing.

    ``permissions`` ("app_label.codename") are added to the role, for tests of
    access decided by a role's permissions rather than its code.
    """
    from django.contrib.auth.models import Permission

    from .models import Membership, Role, User

    role, _created = Role.objects.get_or_create(code=role_code, defaults={"name": role_code})
    for perm in permissions:
        app_label, codename = perm.split(".", 1)
        role.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    user = User.objects.create_user(username=username, password=password)
    Membership.objects.create(user=user, role=role, area=area)
    return user
