"""The audit log: who did what to which object, when, from where, with what outcome.

Services call :func:`audit_log` inside their own transaction, so an entry is
written exactly when the change it records is. Request context (IP, request
id) comes from the current request when there is one.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from .models import AuditEntry


def _actor_fields(actor) -> dict[str, Any]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return {"actor_id": None, "actor_username": getattr(actor, "username", "") or ""}
    return {"actor_id": actor.pk, "actor_username": actor.get_username()}


def audit_log(
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
) -> AuditEntry:
    """Append one entry. ``obj`` fills object type, id and repr when given."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    return AuditEntry.objects.create(
        **_actor_fields(actor),
        role=role,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:200],
        before=before,
        after=after,
        purpose=purpose,
        outcome=outcome,
        detail=detail,
        ip=ip,
        request_id=request_id,
    )
