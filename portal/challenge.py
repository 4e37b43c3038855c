"""A proof-of-work challenge for anonymous portal reports, with no third-party service.

The server issues a signed, expiring challenge: a random nonce and a difficulty
(``bits``). The browser (static/js/challenge.js, Web Crypto) looks for a
counter such that ``sha256("<challenge>:<counter>")`` starts with ``bits`` zero
bits and posts the challenge with the counter. The server checks the
signature, the age, the hash and that the nonce was not used before (a used
nonce is remembered in the cache until the challenge would have expired).

A solution costs a browser about ``2 ** bits`` hashes (a second or two at 16
bits) and the server one hash; a flood of reports costs the sender that much
each, on top of the rate limits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.utils.translation import gettext as _

SALT = "portal.challenge"
DEFAULT_BITS = 16
DEFAULT_TTL = 900
MAX_BITS = 32
MAX_COUNTER_DIGITS = 16
MAX_CHALLENGE_LENGTH = 300


class ChallengeFailed(Exception):
    """The posted challenge or its solution is refused; the message says why."""


@dataclass(frozen=True)
class Challenge:
    token: str  # the signed challenge the browser hashes and posts back
    bits: int
    ttl: int  # seconds it stays valid


def difficulty() -> int:
    bits = int(settings.CIVICGRID.get("PORTAL_CHALLENGE_BITS", DEFAULT_BITS))
    return max(0, min(bits, MAX_BITS))


def lifetime() -> int:
    return max(30, int(settings.CIVICGRID.get("PORTAL_CHALLENGE_TTL", DEFAULT_TTL)))


def issue() -> Challenge:
    """A fresh challenge at the configured difficulty."""
    bits = difficulty()
    token = signing.dumps({"n": secrets.token_urlsafe(16), "b": bits}, salt=SALT, compress=False)
    return Challenge(token=token, bits=bits, ttl=lifetime())


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solves(token: str, counter: str, bits: int) -> bool:
    digest = hashlib.sha256(f"{token}:{counter}".encode()).digest()
    return leading_zero_bits(digest) >= bits


def _used_key(nonce: str) -> str:
    return f"portal:challenge:used:{nonce}"


def verify(token: str, counter: str) -> None:
    """Accept a solved challenge once; ChallengeFailed otherwise.

    Refused: a missing or garbled challenge, a forged or altered one (bad
    signature), an expired one, one easier than the configured difficulty, a
    counter that does not solve it, and a challenge already used.
    """
    token = (token or "").strip()
    counter = (counter or "").strip()
    if not token or not counter:
        raise ChallengeFailed(
            _(
                "The anti-robot check is missing. Anonymous reports need JavaScript; "
                "turn it on, or sign in."
            )
        )
    if len(token) > MAX_CHALLENGE_LENGTH or not (
        counter.isascii() and counter.isdigit() and len(counter) <= MAX_COUNTER_DIGITS
    ):
        raise ChallengeFailed(_("The anti-robot check is not valid. Please send the form again."))
    try:
        payload = signing.loads(token, salt=SALT, max_age=lifetime())
    except signing.SignatureExpired as exc:
        raise ChallengeFailed(
            _("The anti-robot check has expired. Please send the form again.")
        ) from exc
    except signing.BadSignature as exc:
        raise ChallengeFailed(
            _("The anti-robot check is not valid. Please send the form again.")
        ) from exc
    nonce = payload.get("n") if isinstance(payload, dict) else None
    bits = payload.get("b") if isinstance(payload, dict) else None
    if not isinstance(nonce, str) or not nonce or not isinstance(bits, int):
        raise ChallengeFailed(_("The anti-robot check is not valid. Please send the form again."))
    # A challenge issued before the difficulty was raised is not accepted any more.
    if bits < difficulty() or not solves(token, counter, bits):
        raise ChallengeFailed(_("The anti-robot check failed. Please send the form again."))
    # add() is atomic in every cache backend: of two posts of one challenge, one wins.
    if not cache.add(_used_key(nonce), 1, timeout=lifetime() + 60):
        raise ChallengeFailed(
            _("This anti-robot check was already used. Please send the form again.")
        )


def solve(token: str, bits: int, *, limit: int = 1 << 26) -> str:
    """Find a counter for ``token`` (what the browser does; for tests and scripts)."""
    for counter in range(limit):
        if solves(token, str(counter), bits):
            return str(counter)
    raise ValueError("no solution within the limit")
