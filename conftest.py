import os

import pytest

# Playwright's sync API runs an event loop in the test thread; Django refuses
# ORM calls from such a thread unless told it is safe, which it is in tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def small_city(db):
    from geo.testing import make_small_city

    return make_small_city()


@pytest.fixture(autouse=True)
def _fresh_grid_index(settings):
    """Every test starts without a point-to-grid index and sees area changes at once.

    A rolled-back test database repeats version numbers, so an index kept from
    an earlier test could pass for current.
    """
    from geo.index import invalidate_local

    settings.CIVICGRID = {**settings.CIVICGRID, "GEO_INDEX_MAX_STALENESS": 0}
    invalidate_local()


# --- Sign-in security (accounts): fast hashing, verified admin sessions -------------


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Argon2 is slow on purpose; tests that only need *a* password use MD5.

    A test that checks the production hashers asks for ``real_password_hashers``.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def real_password_hashers(settings, _fast_password_hashing):
    from civicgrid import settings as project_settings

    settings.PASSWORD_HASHERS = list(project_settings.PASSWORD_HASHERS)


@pytest.fixture
def admin_client(client, admin_user):
    """pytest-django's admin_client, past the two-factor step admins must take."""
    from accounts.testing import verified_login

    return verified_login(client, admin_user)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Settings and other values cached in process memory do not outlive a test
    whose database writes were rolled back."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
