"""Fixed-window rate limits kept in the cache (Redis in production, shared by every
process; process memory on one machine).

A limit is a number of hits per window for one key, e.g. ``("portal.report",
"ip", "203.0.113.7")``. :func:`hit` counts one hit and answers whether it is
allowed and, if not, after how many seconds the window ends (the
``Retry-After`` a 429 carries). Public writes check both the client's address
and, when signed in, the account.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.utils.translation import gettext as _

from .errors import DomainError


class RateLimited(DomainError):
    """Too many requests (HTTP 429); ``retry_after`` is in seconds."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int, message: str | None = None):
        message = message or _("Too many requests. Try again in %(seconds)s seconds.") % {
            "seconds": retry_after
        }
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    """``count`` hits per ``seconds``."""

    count: int
    seconds: int


def _cache_key(scope: str, who: str, window_start: int) -> str:
    digest = hashlib.sha256(who.encode()).hexdigest()[:32]
    return f"rl:{scope}:{digest}:{window_start}"


def hit(scope: str, who: str, limit: Limit, *, now: float | None = None) -> int:
    """Count one hit of ``who`` in ``scope``; 0 when allowed, else the seconds to wait."""
    now = time.time() if now is None else now
    window_start = int(now // limit.seconds) * limit.seconds
    key = _cache_key(scope, who, window_start)
    # add() creates the counter only if absent, so concurrent first hits do not reset it.
    cache.add(key, 0, timeout=limit.seconds + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this is the window's first hit
        cache.set(key, 1, timeout=limit.seconds + 1)
        count = 1
    if count <= limit.count:
        return 0
    return max(1, int(window_start + limit.seconds - now + 0.999))


def check(scope: str, limits: dict[str, tuple[str, Limit]]) -> None:
    """Count a hit against each ``name -> (who, limit)``; RateLimited with the longest
    wait when any is exceeded. An empty ``who`` (e.g. no account) is skipped."""
    wait = 0
    for name, (who, limit) in limits.items():
        if who:
            wait = max(wait, hit(f"{scope}:{name}", who, limit))
    if wait:
        raise RateLimited(wait)
