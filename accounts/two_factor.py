"""Two-factor sign-in with TOTP: setting up a device, verifying a session, turning it off.

Optional for staff, required for admins (:func:`accounts.permissions.is_admin`).
A session counts as verified once django-otp has stored the device that
verified it (``request.user.is_verified()``).
"""

from __future__ import annotations

from base64 import b32encode
from dataclasses import dataclass

import django_otp
import segno
from django.db import transaction
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.errors import DomainError

from .audit import audit_log
from .models import AuditEntry
from .permissions import is_admin

DEVICE_NAME = "default"


@dataclass(frozen=True)
class TwoFactorState:
    required: bool
    has_device: bool
    verified: bool

    @property
    def satisfied(self) -> bool:
        """May this session go anywhere? Verified, or two-factor neither on nor required."""
        return self.verified or (not self.has_device and not self.required)


def confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("-id").first()


def two_factor_required(user) -> bool:
    return is_admin(user)


def session_is_verified(request) -> bool:
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified and is_verified())


def two_factor_state(request) -> TwoFactorState:
    user = request.user
    if session_is_verified(request):
        # The cheap path for every page after verification: no further queries.
        return TwoFactorState(required=False, has_device=True, verified=True)
    has_device = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    required = False if has_device else two_factor_required(user)
    return TwoFactorState(required=required, has_device=has_device, verified=False)


def pending_device(*, user) -> TOTPDevice:
    """The unconfirmed device being set up, created on first call.

    Reused while unconfirmed so that reloading the setup page keeps showing
    the same QR code the person may already have scanned.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    return device


def qr_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// URL as an inline SVG QR code (no image request, no network)."""
    return segno.make(device.config_url, error="m").svg_inline(
        scale=5, dark="#12324f", omitsize=False
    )


def secret_for_manual_entry(device: TOTPDevice) -> str:
    """The shared secret in base32, grouped by four, for apps that cannot scan."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _clean_code(code: str) -> str:
    code = (code or "").replace(" ", "").strip()
    if not code.isdigit() or len(code) not in (6, 8):
        raise DomainError(
            _("Enter the 6-digit code shown by your authenticator app."),
            errors={"code": [_("Enter the 6-digit code shown by your authenticator app.")]},
        )
    return code


def _refuse_while_throttled(device: TOTPDevice) -> None:
    # django-otp doubles the wait after each wrong code (1 s, 2 s, 4 s …);
    # say so rather than calling a right code wrong.
    allowed, _extra = device.verify_is_allowed()
    if not allowed:
        message = _("Too many wrong codes in a row. Wait a few seconds and try again.")
        raise DomainError(message, errors={"code": [message]})


def _wrong_code(user, device: TOTPDevice, action: str, message: str) -> DomainError:
    """Audit a wrong code as a failed ``action``; the error to raise says what to do next."""
    audit_log(
        actor=user,
        action=action,
        obj=device,
        outcome=AuditEntry.Outcome.FAILURE,
        detail={"reason": "wrong code"},
    )
    return DomainError(message, errors={"code": [_("That code is not right.")]})


def two_factor_confirm(*, request, device: TOTPDevice, code: str) -> TOTPDevice:
    """Confirm a pending device with a code from it; it replaces any older device.

    The session that confirmed counts as verified by the new device.
    """
    user = request.user
    code = _clean_code(code)
    if device.user_id != user.pk or device.confirmed:
        raise DomainError(_("This setup has expired. Start again."))
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        _refuse_while_throttled(device)
        if not device.verify_token(code):
            # Throttling state must survive, so the failure is recorded after
            # this block rather than rolled back with it.
            ok = False
        else:
            ok = True
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            replaced = list(
                TOTPDevice.objects.filter(user=user)
                .exclude(pk=device.pk)
                .values_list("pk", flat=True)
            )
            TOTPDevice.objects.filter(pk__in=replaced).delete()
            audit_log(
                actor=user,
                action="two_factor_enable",
                obj=device,
                after={"device": device.name, "replaced": len(replaced)},
            )
    if not ok:
        raise _wrong_code(
            user,
            device,
            "two_factor_enable",
            _("That code is not right. Check the time on your phone and try the next code."),
        )
    django_otp.login(request, device)
    request.session.cycle_key()
    return device


def two_factor_verify(*, request, code: str) -> TOTPDevice:
    """Verify this session with a code from the user's device (the step after the password)."""
    user = request.user
    code = _clean_code(code)
    device = confirmed_device(user)
    if device is None:
        raise DomainError(_("Two-factor sign-in is not set up for this account."))
    _refuse_while_throttled(device)
    verified = django_otp.verify_token(user, device.persistent_id, code)
    if verified is None:
        raise _wrong_code(
            user,
            device,
            "two_factor_verify",
            _("That code is not right. Wait for the next code and try again."),
        )
    # A new session key once the second factor is in, as Django does after the first.
    request.session.cycle_key()
    django_otp.login(request, verified)
    audit_log(actor=user, action="two_factor_verify", obj=verified)
    return verified


def two_factor_disable(*, request) -> None:
    """Turn two-factor off for the signed-in user, if it is not required of them."""
    user = request.user
    if two_factor_required(user):
        raise DomainError(_("Administrators must keep two-factor sign-in switched on."))
    with transaction.atomic():
        count, _unused = TOTPDevice.objects.filter(user=user).delete()
        audit_log(
            actor=user,
            action="two_factor_disable",
            object_type=TOTPDevice._meta.label_lower,
            object_repr=str(user),
            before={"devices": count},
            after={"devices": 0},
        )
