from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from core.ratelimit import RateLimited
from portal.abuse import Refused, guard_public_write, is_blocked, normalise_phone
from portal.models import Blocked

pytestmark = pytest.mark.django_db


def test_phone_numbers_are_compared_by_their_digits():
    assert normalise_phone("+86 139-0000-1111") == "13900001111"
    assert normalise_phone("0086 13900001111") == "13900001111"
    assert normalise_phone("010-12345678") == "01012345678"


def test_blocklist_by_email_phone_address_and_network():
    Blocked.objects.create(kind="email", value="spam@example.com", reason="spam")
    Blocked.objects.create(kind="phone", value="13900001111", reason="abuse")
    Blocked.objects.create(kind="ip", value="203.0.113.0/24", reason="flood")
    Blocked.objects.create(
        kind="ip", value="198.51.100.7", reason="old", expires_at=timezone.now() - timedelta(1)
    )
    assert is_blocked(email="SPAM@example.com ")
    assert is_blocked(phone="+86 139 0000 1111")
    assert is_blocked(ip="203.0.113.99")
    assert not is_blocked(ip="198.51.100.7")  # expired
    assert not is_blocked(email="ok@example.com", phone="13800000000", ip="192.0.2.1")


def test_guard_refuses_the_blocked_and_limits_the_rest(settings):
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PUBLIC_RATE_LIMITS": {"ip": (3, 3600), "account": (30, 3600), "burst": (10, 60)},
    }
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.10")
    Blocked.objects.create(kind="email", value="bad@example.com", reason="spam")
    with pytest.raises(Refused):
        guard_public_write(request, "test", email="bad@example.com")
    for _ in range(3):
        guard_public_write(request, "test")
    with pytest.raises(RateLimited) as caught:
        guard_public_write(request, "test")
    assert caught.value.retry_after > 0
    guard_public_write(request, "other")  # another kind of write counts apart
