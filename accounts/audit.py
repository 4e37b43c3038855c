"""The audit log: who did what to which object, when, from where, with what outcome.

Services call :func:`audit_log` inside their own transaction, so an entry is
written exactly when the change it records is. Request context (IP, request
id) comes from the current request when there is one
(:mod:`accounts.middleware` keeps it in a context variable).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connection, models
from django.utils.translation import gettext as _

from core.errors import DomainError

from .middleware import current_context
from .models import AuditEntry

PERSONAL_DATA_VIEW = "personal_data_view"
PERSONAL_DATA_EXPORT = "personal_data_export"
PERMISSION_DENIED = "permission_denied"


def _actor_fields(actor, actor_username: str = "") -> dict[str, Any]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        username = actor_username or getattr(actor, "username", "") or ""
        return {"actor_id": None, "actor_username": username[:150]}
    return {"actor_id": actor.pk, "actor_username": actor.get_username()}


def audit_log(**fields) -> AuditEntry:
    """Append one entry (the fields of :func:`audit_entry`)."""
    entry = audit_entry(**fields)
    entry.save(force_insert=True)
    return entry


# --- entries that travel with the request's own write ---------------------------------
#
# A request that authenticates with a token records the token's use before it does
# anything else. Written at once, that is a write (a commit, and on SQLite the write
# lock) of its own in every API request. Instead it is held for the length of the
# request: a writer that starts its own transaction may take held entries and write
# them in it (cases.writes does, for a report), and whatever is still held when the
# request ends is written then (RequestContextMiddleware). Outside a request nothing
# is held: the entry is written at once.


def audit_later(**fields) -> AuditEntry:
    """Record an entry (the fields of :func:`audit_entry`) with the request's next own
    write, or when the request ends; at once outside a request."""
    entry = audit_entry(**fields)
    held = _held.get()
    if held is None:
        entry.save(force_insert=True)
    else:
        held.append(entry)
    return entry


def take_held() -> list[AuditEntry]:
    """The entries held so far, for a writer to write in a transaction of its own (a
    top-level one, so that they are never undone with a caller's). A writer that
    fails gives them back with :func:`hold_again`."""
    held = _held.get()
    if not held or connection.in_atomic_block:
        return []
    taken = list(held)
    held.clear()
    return taken


def hold_again(entries: list[AuditEntry]) -> None:
    held = _held.get()
    if held is not None:
        held[:0] = entries


@contextmanager
def holding() -> Iterator[None]:
    """Hold :func:`audit_later` entries for the block (a request) and write what is still
    held when it ends, however it ends: one INSERT."""
    token = _held.set([])
    try:
        yield
    finally:
        held = _held.get()
        _held.reset(token)
        if held:
            AuditEntry.objects.bulk_create(held)


_held: ContextVar[list[AuditEntry] | None] = ContextVar("civicgrid_audit_held", default=None)


def audit_entry(
    *,
    actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict | None = None,
    after: dict | None = None,
    purpose: str = "",
    outcome: str = AuditEntry.Outcome.SUCCESS,
    detail: dict | None = None,
    role: str = "",
    ip: str | None = None,
    request_id: str = "",
    actor_username: str = "",
) -> AuditEntry:
    """One entry, not yet written. ``obj`` fills object type, id and repr when given.

    ``ip`` and ``request_id`` default to those of the request being served.
    ``actor_username`` names someone who is not (yet) a signed-in user, such
    as the username typed into a failed sign-in. A writer that knows the
    object's id only as it writes (cases.writes) fills ``object_id`` and
    ``object_repr`` then.
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    context = current_context()
    if context is not None:
        if ip is None:
            ip = context.ip
        if not request_id:
            request_id = context.request_id
    return AuditEntry(
        **_actor_fields(actor, actor_username),
        role=role[:200],
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:64],
        object_repr=object_repr[:200],
        before=before,
        after=after,
        purpose=purpose[:200],
        outcome=outcome,
        detail=detail,
        ip=ip,
        request_id=request_id[:64],
    )


def audit_personal_data_access(
    *,
    actor,
    obj: models.Model | type[models.Model],
    purpose: str,
    fields: Iterable[str],
    export: bool = False,
    detail: dict | None = None,
) -> AuditEntry:
    """Record that staff looked at (or exported) personal data, and why.

    ``obj`` is the record shown, or the model class for a list or an export
    of many. A purpose is required: the log must say why, not only who.
    """
    purpose = (purpose or "").strip()
    if not purpose:
        raise DomainError(
            _("A purpose is required to view or export personal data."),
            errors={"purpose": [_("Say why you need this personal data.")]},
        )
    if isinstance(obj, type) and issubclass(obj, models.Model):
        target: dict[str, Any] = {"object_type": obj._meta.label_lower}
    else:
        target = {"obj": obj}
    return audit_log(
        actor=actor,
        action=PERSONAL_DATA_EXPORT if export else PERSONAL_DATA_VIEW,
        purpose=purpose,
        detail={"fields": sorted(set(fields)), **(detail or {})},
        **target,
    )


def audit_permission_denied(*, request, reason: str = "") -> AuditEntry:
    """Record that a signed-in (or anonymous) requester was refused an action."""
    user = getattr(request, "user", None)
    return audit_log(
        actor=user,
        action=PERMISSION_DENIED,
        outcome=AuditEntry.Outcome.DENIED,
        detail={"method": request.method, "path": request.path[:500], "reason": reason[:500]},
    )
