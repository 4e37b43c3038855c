"""Who may do the security-sensitive things: read the audit log, skip two-factor.

Decided from memberships (role codes and the permissions roles carry), so it
works before any role is seeded and keeps working when an admin edits roles.
"""

from __future__ import annotations

from django.db.models import Q

from .models import Membership

ADMIN_ROLE = "admin"
AUDITOR_ROLE = "auditor"


def _active_memberships(user):
    return Membership.objects.filter(user=user, is_active=True)


def _role_has_perm(perm: str) -> Q:
    app_label, codename = perm.split(".", 1)
    return Q(
        role__permissions__content_type__app_label=app_label,
        role__permissions__codename=codename,
    )


def _usable(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_admin(user) -> bool:
    """A superuser, or someone holding the admin role anywhere."""
    if not _usable(user):
        return False
    if user.is_superuser:
        return True
    return _active_memberships(user).filter(role__code=ADMIN_ROLE).exists()


def can_view_audit(user) -> bool:
    """Auditors and admins read the audit log; nobody else does."""
    if not _usable(user):
        return False
    if user.is_superuser:
        return True
    return (
        _active_memberships(user)
        .filter(
            Q(role__code__in=(AUDITOR_ROLE, ADMIN_ROLE))
            | _role_has_perm("accounts.view_auditentry")
        )
        .exists()
    )


def can_export_audit(user) -> bool:
    """Exporting is reading in bulk: the same people, or a role granted the export permission."""
    if not _usable(user):
        return False
    if can_view_audit(user):
        return True
    return _active_memberships(user).filter(_role_has_perm("accounts.export_auditentry")).exists()
