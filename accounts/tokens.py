"""Personal API tokens: created and shown once, stored as a SHA-256 hash, expiring, revocable.

A key looks like ``cg_`` followed by 43 URL-safe characters (256 random
bits). Only its hash is kept, so a stolen database does not yield working
keys; the first characters are kept in clear (``prefix``) so a person can tell
their tokens apart.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import DomainError, NotFound

from .audit import audit_later, audit_log
from .models import ApiToken, AuditEntry

KEY_PREFIX = "cg_"
PREFIX_LENGTH = 10
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 365
# last_used_at is a hint for people, not a ledger (the audit log is): writing
# it on every request would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _token_snapshot(token: ApiToken) -> dict:
    return {
        "name": token.name,
        "prefix": token.prefix,
        "expires_at": token.expires_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def token_create(*, user, name: str, expires_in_days: int = DEFAULT_EXPIRY_DAYS):
    """Create a token for ``user``; returns ``(token, key)``. The key is never stored."""
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Give the token a name, such as the script that will use it.")]
    elif len(name) > 100:
        errors["name"] = [_("The name can be at most 100 characters long.")]
    try:
        days = int(expires_in_days)
    except (TypeError, ValueError):
        days = 0
    if isinstance(expires_in_days, bool) or not 1 <= days <= MAX_EXPIRY_DAYS:
        errors["expires_in_days"] = [
            _("A token lives between 1 and %(max)d days.") % {"max": MAX_EXPIRY_DAYS}
        ]
    if errors:
        raise DomainError(_("The token could not be created."), errors=errors)

    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        token = ApiToken(
            user=user,
            name=name,
            prefix=key[:PREFIX_LENGTH],
            key_hash=hash_key(key),
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        token.full_clean()
        token.save()
        audit_log(actor=user, action="token_create", obj=token, after=_token_snapshot(token))
    return token, key


def token_revoke(*, token: ApiToken, actor) -> ApiToken:
    """Revoke a token. Its owner or a superuser may; revoking twice changes nothing."""
    if actor is None or not (actor.pk == token.user_id or actor.is_superuser):
        # Someone else's token is treated as absent, never as "forbidden".
        raise NotFound(_("No such token."))
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            return token
        before = _token_snapshot(token)
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_log(
            actor=actor,
            action="token_revoke",
            obj=token,
            before=before,
            after=_token_snapshot(token),
        )
    return token


def token_list(*, user) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


class TokenRejected(Exception):
    """A presented key is unknown, expired, revoked, or its user is inactive."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.message = message
        self.reason = reason


def token_authenticate(key: str, *, detail: dict | None = None) -> ApiToken:
    """Find the live token for a presented key, or raise :class:`TokenRejected`.

    Each use, accepted or not, is one audit entry (a refused one written at once, an
    accepted one with the request's own write); last_used_at is touched at
    most once a minute, by a conditional UPDATE sent only when the token as read
    is due for one.
    ``detail`` (say, method and path) is stored with the audit entry.
    """
    token = None
    if key.startswith(KEY_PREFIX) and len(key) <= 100:
        token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
    now = timezone.now()
    if token is None:
        rejection = TokenRejected(_("Invalid API token."), "unknown")
    elif token.revoked_at is not None:
        rejection = TokenRejected(_("This API token has been revoked."), "revoked")
    elif token.expires_at <= now:
        rejection = TokenRejected(_("This API token has expired."), "expired")
    elif not token.user.is_active:
        rejection = TokenRejected(_("The account of this API token is disabled."), "inactive")
    else:
        rejection = None

    if rejection is not None:
        audit_log(
            actor=token.user if token else None,
            action="token_use",
            obj=token,
            object_type="" if token else ApiToken._meta.label_lower,
            outcome=AuditEntry.Outcome.FAILURE,
            detail={**(detail or {}), "reason": rejection.reason, "prefix": key[:PREFIX_LENGTH]},
        )
        raise rejection

    due = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at <= due:
        # Conditional, so of several requests at once only one writes it. A token
        # read with a recent last_used_at skips the write: it would match nothing.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=due)
        ).update(last_used_at=now)
    # Written with the request's own write, or when the request ends (audit_later).
    audit_later(actor=token.user, action="token_use", obj=token, detail=detail)
    return token
