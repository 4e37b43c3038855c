"""Sign-in events into the audit log: sign-in, failed sign-in, lockout, sign-out."""

from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .audit import audit_log
from .models import AuditEntry, Membership


def _roles_of(user) -> str:
    codes = (
        Membership.objects.filter(user=user, is_active=True)
        .values_list("role__code", flat=True)
        .distinct()
    )
    return ",".join(sorted(codes))


def _attempted_username(credentials: dict | None) -> str:
    return str((credentials or {}).get("username") or "")[:150]


@receiver(user_logged_in, dispatch_uid="accounts.audit.login")
def audit_login(sender, request, user, **kwargs):
    audit_log(actor=user, action="login", role=_roles_of(user))


@receiver(user_login_failed, dispatch_uid="accounts.audit.login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    audit_log(
        actor=None,
        actor_username=_attempted_username(credentials),
        action="login_failed",
        outcome=AuditEntry.Outcome.FAILURE,
    )


@receiver(user_locked_out, dispatch_uid="accounts.audit.lockout")
def audit_lockout(sender, request, username, ip_address, **kwargs):
    audit_log(
        actor=None,
        actor_username=str(username or "")[:150],
        action="lockout",
        outcome=AuditEntry.Outcome.DENIED,
        ip=ip_address,
    )


@receiver(user_logged_out, dispatch_uid="accounts.audit.logout")
def audit_logout(sender, request, user, **kwargs):
    # ``user`` is None when the session had already expired: nothing to record.
    if user is not None:
        audit_log(actor=user, action="logout")
