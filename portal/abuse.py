"""What keeps abuse out of public writes: the blocklist and the rate limits.

Every public write (a portal report, a suggestion, a rating, an Open311 POST)
calls :func:`guard_public_write` before it writes anything.
"""

from __future__ import annotations

import ipaddress
import re

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.middleware import client_ip
from core.errors import DomainError
from core.ratelimit import Limit, check

from .models import Blocked, BlockedKind

# Hits per window for every public write, per client address and per account.
DEFAULT_LIMITS = {"ip": (20, 3600), "account": (30, 3600), "burst": (5, 60)}


class Refused(DomainError):
    """A blocked sender (HTTP 403). The message does not say which entry matched."""

    status_code = 403
    code = "blocked"


def normalise_email(value: str) -> str:
    return (value or "").strip().lower()


def normalise_phone(value: str) -> str:
    """Digits only, without a leading +86 / 0086 country code."""
    digits = re.sub(r"\D", "", value or "")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            return digits[len(prefix) :]
    return digits


def is_blocked(*, email: str = "", phone: str = "", ip: str | None = None) -> bool:
    """Whether any of the sender's e-mail, phone or address is on the blocklist now."""
    now = timezone.now()
    live = Blocked.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    wanted = Q(pk__in=[])
    if email:
        wanted |= Q(kind=BlockedKind.EMAIL, value=normalise_email(email))
    if phone and normalise_phone(phone):
        wanted |= Q(kind=BlockedKind.PHONE, value=normalise_phone(phone))
    if live.filter(wanted).exists():
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for value in live.filter(kind=BlockedKind.IP).values_list("value", flat=True):
        try:
            if address in ipaddress.ip_network(value, strict=False):
                return True
        except ValueError:
            continue
    return False


def _limits(scope: str) -> dict[str, Limit]:
    """The limits of one kind of write: ``PUBLIC_RATE_LIMITS`` overridden by the
    scope's own entry in ``PUBLIC_RATE_LIMITS_BY_SCOPE`` (an Open311 client relays
    many residents from one address, say)."""
    configured = {
        **DEFAULT_LIMITS,
        **settings.CIVICGRID.get("PUBLIC_RATE_LIMITS", {}),
        **settings.CIVICGRID.get("PUBLIC_RATE_LIMITS_BY_SCOPE", {}).get(scope, {}),
    }
    return {name: Limit(*configured[name]) for name in DEFAULT_LIMITS}


def guard_public_write(request, scope: str, *, email: str = "", phone: str = "") -> None:
    """Refuse a public write from a blocked sender (403) or over its rate limit (429).

    ``scope`` names the kind of write ("portal.report", "open311.post" …); each
    has its own counters. Limits come from ``CIVICGRID["PUBLIC_RATE_LIMITS"]``.
    """
    ip = getattr(request, "client_ip", None) or client_ip(request) or ""
    if is_blocked(email=email, phone=phone, ip=ip):
        raise Refused(_("Reports from this sender are not accepted."))
    user = getattr(request, "user", None)
    account = str(user.pk) if user is not None and user.is_authenticated else ""
    limits = _limits(scope)
    check(
        scope,
        {
            "ip": (ip, limits["ip"]),
            "burst": (ip, limits["burst"]),
            "account": (account, limits["account"]),
        },
    )
