"""Writes of the residents' portal: resident accounts (sign-up, export, erasure),
suggestions and questions, and the staff's moderation (photos, suggestions, the
blocklist). Each is one keyword-only function owning its transaction and
writing its audit entry; none puts a resident's contact into the audit log.

Public writes are also guarded against abuse by the view that calls them
(:func:`portal.abuse.guard_public_write`, which needs the request).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import PERSONAL_DATA_EXPORT, audit_log
from accounts.models import User
from accounts.scopes import scope_prefixes
from cases.models import CasePhoto
from cases.services import cases_erase_reporter
from core.errors import DomainError, NotFound
from geo.models import Area

from . import selectors
from .abuse import normalise_email, normalise_phone
from .models import Blocked, BlockedKind, ResidentLogin, Suggestion

# A mainland mobile number: 11 digits starting 13–19.
MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
TITLE_MAX = 200
TEXT_MAX = 5000
ANSWER_MAX = 5000


def _fail(field: str, message: str) -> DomainError:
    return DomainError(message, errors={field: [message]})


def mainland_mobile(value: str) -> str:
    """The 11-digit mobile number, or a DomainError on field ``phone``."""
    digits = normalise_phone(value)
    if not MAINLAND_MOBILE.match(digits):
        raise _fail("phone", _("Enter a mainland mobile number (11 digits starting with 1)."))
    return digits


def valid_email(value: str, field: str = "email") -> str:
    value = normalise_email(value)
    try:
        validate_email(value)
    except ValidationError:
        raise _fail(field, _("Enter a valid e-mail address.")) from None
    return value


# --- resident accounts ---------------------------------------------------------------------


def resident_signup(*, email: str = "", phone: str = "", password: str) -> User:
    """Open a resident account that signs in with ``email`` or ``phone`` (one of them)
    and ``password`` (Django's password validators). The username is random, so that
    no contact detail is written into timelines or the audit log."""
    email, phone = (email or "").strip(), (phone or "").strip()
    if bool(email) == bool(phone):
        message = _("Give an e-mail address or a mobile number.")
        raise DomainError(message, errors={"identifier": [message]})
    if email:
        kind, value = ResidentLogin.Kind.EMAIL, valid_email(email)
    else:
        kind, value = ResidentLogin.Kind.PHONE, mainland_mobile(phone)
    user = User(
        username=f"r-{secrets.token_hex(8)}",
        is_resident=True,
        email=value if kind == ResidentLogin.Kind.EMAIL else "",
        phone=value if kind == ResidentLogin.Kind.PHONE else "",
    )
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise DomainError(
            _("Choose another password."), errors={"password": list(exc.messages)}
        ) from None
    user.set_password(password)
    taken = _("An account with this e-mail address or phone number already exists.")
    if ResidentLogin.objects.filter(kind=kind, value=value).exists():
        raise DomainError(taken, errors={"identifier": [taken]})
    try:
        with transaction.atomic():
            user.save()
            ResidentLogin.objects.create(user=user, kind=kind, value=value)
            audit_log(actor=user, action="resident.signup", obj=user, after={"signs_in_with": kind})
    except IntegrityError:
        # Another sign-up with the same e-mail or phone won the race.
        raise DomainError(taken, errors={"identifier": [taken]}) from None
    return user


def resident_export(*, user) -> dict:
    """All of the resident's data (see selectors.resident_data); the export is audited."""
    if not getattr(user, "is_resident", False):
        raise PermissionDenied("not a resident account")
    data = selectors.resident_data(user=user)
    audit_log(
        actor=user,
        action=PERSONAL_DATA_EXPORT,
        obj=user,
        purpose="the resident downloads her own data",
        detail={"reports": len(data["reports"]), "suggestions": len(data["suggestions"])},
    )
    return {"exported_at": timezone.now().isoformat(), **data}


def resident_erase(*, user, password: str) -> int:
    """Erase the resident's personal data, confirmed with her password: her reports keep
    their statistics but lose every link to her (cases.services.cases_erase_reporter),
    her suggestions lose their author and contact, and the account is anonymised and
    closed (it can never sign in again). How many reports were anonymised."""
    if not getattr(user, "is_resident", False):
        raise PermissionDenied("not a resident account")
    if not password or not user.check_password(password):
        raise _fail("password", _("The password is not correct."))
    with transaction.atomic():
        cases = cases_erase_reporter(user=user)
        suggestions = Suggestion.objects.filter(resident=user).update(
            resident=None, contact_email="", contact_phone=""
        )
        ResidentLogin.objects.filter(user=user).delete()
        user.username = f"erased-{secrets.token_hex(8)}"
        user.email = ""
        user.phone = ""
        user.first_name = ""
        user.last_name = ""
        user.display_name = ""
        user.is_active = False
        user.set_unusable_password()
        user.save()
        audit_log(
            actor=user,
            action="resident.erase",
            obj=user,
            after={"cases": cases, "suggestions": suggestions},
        )
    return cases


# --- suggestions -----------------------------------------------------------------------------


def suggestions_purge_contacts(*, now: datetime | None = None) -> int:
    """Erase the sender's e-mail and phone of suggestions and questions answered (or
    rejected) more than ``REPORTER_RETENTION_DAYS`` ago — the period a reporter's
    contact is kept; how many were erased. Run by the minute sweep."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.CIVICGRID.get("REPORTER_RETENTION_DAYS", 180))
    with_contact = ~Q(contact_email="") | ~Q(contact_phone="")
    done = Q(status=Suggestion.Status.ANSWERED, answered_at__lt=cutoff) | Q(
        status=Suggestion.Status.REJECTED, created_at__lt=cutoff
    )
    with transaction.atomic():
        ids = list(Suggestion.objects.filter(with_contact & done).values_list("pk", flat=True))
        if not ids:
            return 0
        Suggestion.objects.filter(pk__in=ids).update(contact_email="", contact_phone="")
        audit_log(
            actor=None,
            action="suggestion.contact_purge",
            object_type="portal.suggestion",
            after={"suggestions": ids},
        )
    return len(ids)


def suggestion_submit(
    *,
    kind: str,
    title: str,
    text: str,
    area: Area | None = None,
    contact_email: str = "",
    contact_phone: str = "",
    resident=None,
) -> Suggestion:
    """Record a resident's suggestion or question; it gets the secret of its private
    link, where its author reads the answer."""
    errors: dict[str, list[str]] = {}
    title, text = (title or "").strip(), (text or "").strip()
    if kind not in Suggestion.Kind.values:
        errors["kind"] = [_("Choose a suggestion or a question.")]
    if not title:
        errors["title"] = [_("Give a title.")]
    elif len(title) > TITLE_MAX:
        errors["title"] = [_("A title has at most %(n)s characters.") % {"n": TITLE_MAX}]
    if not text:
        errors["text"] = [_("Write your suggestion or question.")]
    elif len(text) > TEXT_MAX:
        errors["text"] = [_("At most %(n)s characters.") % {"n": TEXT_MAX}]
    email, phone = (contact_email or "").strip(), (contact_phone or "").strip()
    try:
        email = valid_email(email, "contact_email") if email else ""
    except DomainError as exc:
        errors.update(exc.errors)
    try:
        phone = mainland_mobile(phone) if phone else ""
    except DomainError as exc:
        errors["contact_phone"] = exc.errors["phone"]
    if errors:
        raise DomainError(_("The suggestion is not valid."), errors=errors)
    if resident is not None and not getattr(resident, "is_authenticated", False):
        resident = None
    if resident is not None and not resident.is_resident:
        resident = None  # staff do not file suggestions under their own account
    with transaction.atomic():
        suggestion = Suggestion.objects.create(
            kind=kind,
            title=title,
            text=text,
            area=area,
            contact_email=email,
            contact_phone=phone,
            resident=resident,
            public_token=secrets.token_urlsafe(24),
        )
        audit_log(
            actor=resident,
            action="suggestion.submit",
            obj=suggestion,
            role="resident",
            after={"kind": kind, "area": area.code if area else None},
        )
    return suggestion


def _suggestion_for_change(*, suggestion_id: int, actor) -> Suggestion:
    """The suggestion, if ``actor`` may see it (else NotFound) and change it (else 403)."""
    found = selectors.staff_suggestions(user=actor).filter(pk=suggestion_id).first()
    if found is None:
        raise NotFound(_("No such suggestion."))
    if not selectors.staff_suggestions(user=actor, action="change").filter(pk=found.pk).exists():
        raise PermissionDenied(f"no portal.change_suggestion over suggestion {found.pk}")
    return found


def suggestion_answer(
    *, suggestion_id: int, actor, answer: str, publish: bool = False
) -> Suggestion:
    """Answer a suggestion or question (again, to correct an answer), and publish it or
    not. A rejected one is not answered."""
    answer = (answer or "").strip()
    if not answer:
        raise _fail("answer", _("Write the answer."))
    if len(answer) > ANSWER_MAX:
        raise _fail("answer", _("At most %(n)s characters.") % {"n": ANSWER_MAX})
    with transaction.atomic():
        suggestion = _suggestion_for_change(suggestion_id=suggestion_id, actor=actor)
        if suggestion.status == Suggestion.Status.REJECTED:
            raise _fail("answer", _("This suggestion was rejected; it is not answered."))
        before = {"status": suggestion.status, "published": suggestion.is_published}
        suggestion.status = Suggestion.Status.ANSWERED
        suggestion.answer = answer
        suggestion.answered_by_id = actor.pk
        suggestion.answered_at = timezone.now()
        suggestion.is_published = bool(publish)
        suggestion.save(
            update_fields=["status", "answer", "answered_by_id", "answered_at", "is_published"]
        )
        audit_log(
            actor=actor,
            action="suggestion.answer",
            obj=suggestion,
            before=before,
            after={"status": suggestion.status, "published": suggestion.is_published},
        )
    return suggestion


def suggestion_publish(*, suggestion_id: int, actor, published: bool) -> Suggestion:
    """Publish an answered suggestion with its answer, or take it off the public list."""
    with transaction.atomic():
        suggestion = _suggestion_for_change(suggestion_id=suggestion_id, actor=actor)
        if published and suggestion.status != Suggestion.Status.ANSWERED:
            raise _fail("published", _("Only an answered suggestion can be published."))
        before = suggestion.is_published
        suggestion.is_published = bool(published)
        suggestion.save(update_fields=["is_published"])
        audit_log(
            actor=actor,
            action="suggestion.publish" if published else "suggestion.unpublish",
            obj=suggestion,
            before={"published": before},
            after={"published": suggestion.is_published},
        )
    return suggestion


def suggestion_reject(*, suggestion_id: int, actor, reason: str = "") -> Suggestion:
    """Reject a suggestion (spam, abuse, off-topic): it is never published."""
    reason = (reason or "").strip()[:300]
    with transaction.atomic():
        suggestion = _suggestion_for_change(suggestion_id=suggestion_id, actor=actor)
        before = {"status": suggestion.status, "published": suggestion.is_published}
        suggestion.status = Suggestion.Status.REJECTED
        suggestion.is_published = False
        suggestion.answered_by_id = actor.pk
        suggestion.answered_at = timezone.now()
        suggestion.save(update_fields=["status", "is_published", "answered_by_id", "answered_at"])
        audit_log(
            actor=actor,
            action="suggestion.reject",
            obj=suggestion,
            before=before,
            after={"status": suggestion.status, "reason": reason},
        )
    return suggestion


# --- photo moderation --------------------------------------------------------------------------


def photo_review(*, photo_id: int, actor, approve: bool) -> CasePhoto:
    """Approve a photo of a resident's case for the public, or keep it private; either
    way it leaves the queue. A later decision replaces the earlier one."""
    with transaction.atomic():
        photo = selectors.staff_photos(user=actor).filter(pk=photo_id).first()
        if photo is None:
            raise NotFound(_("No such photo."))
        before = {"public": photo.is_public, "reviewed": photo.reviewed_at is not None}
        photo.is_public = bool(approve)
        photo.reviewed_at = timezone.now()
        photo.reviewed_by_id = actor.pk
        photo.save(update_fields=["is_public", "reviewed_at", "reviewed_by_id"])
        audit_log(
            actor=actor,
            action="photo.approve" if approve else "photo.keep_private",
            obj=photo,
            object_repr=f"{photo.case.number} photo {photo.pk}",
            before=before,
            after={"public": photo.is_public, "case": photo.case.number},
        )
    return photo


# --- the blocklist -----------------------------------------------------------------------------


def _require(actor, perm: str) -> None:
    prefixes = scope_prefixes(actor, perm)
    if prefixes is not None and not prefixes:
        raise PermissionDenied(f"missing permission {perm}")


def normalised_block_value(kind: str, value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise _fail("value", _("Give what to block."))
    if kind == BlockedKind.EMAIL:
        return valid_email(value, "value")
    if kind == BlockedKind.PHONE:
        digits = normalise_phone(value)
        if not 5 <= len(digits) <= 20:
            raise _fail("value", _("Enter a phone number."))
        return digits
    if kind == BlockedKind.IP:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _fail(
                "value", _("Enter an IP address or a network such as 203.0.113.0/24.")
            ) from None
        if network.num_addresses == 1:
            return str(network.network_address)
        return str(network)
    raise _fail("kind", _("Choose what kind of sender to block."))


def blocked_add(
    *, actor, kind: str, value: str, reason: str, expires_at: datetime | None = None
) -> Blocked:
    """Put an e-mail, phone, address or network on the blocklist, with a reason and
    optionally until when."""
    _require(actor, selectors.BLOCKLIST_ADD)
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if kind not in BlockedKind.values:
        errors["kind"] = [_("Choose what kind of sender to block.")]
    else:
        try:
            value = normalised_block_value(kind, value)
        except DomainError as exc:
            errors.update(exc.errors)
    if not reason:
        errors["reason"] = [_("Say why.")]
    elif len(reason) > 300:
        errors["reason"] = [_("At most %(n)s characters.") % {"n": 300}]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = [_("The end must lie in the future.")]
    if errors:
        raise DomainError(_("The entry is not valid."), errors=errors)
    exists = _("This sender is already on the blocklist.")
    if Blocked.objects.filter(kind=kind, value=value).exists():
        raise _fail("value", exists)
    try:
        with transaction.atomic():
            entry = Blocked.objects.create(
                kind=kind, value=value, reason=reason, created_by=actor, expires_at=expires_at
            )
            # The value itself may be personal data (an e-mail, a phone): the log names
            # the entry and its kind, not what it blocks.
            audit_log(
                actor=actor,
                action="blocked.add",
                obj=entry,
                object_repr=f"{kind} #{entry.pk}",
                after={
                    "kind": kind,
                    "reason": reason,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
    except IntegrityError:
        raise _fail("value", exists) from None
    return entry


def blocked_remove(*, actor, blocked_id: int) -> None:
    """Take an entry off the blocklist."""
    _require(actor, selectors.BLOCKLIST_DELETE)
    with transaction.atomic():
        entry = Blocked.objects.filter(pk=blocked_id).first()
        if entry is None:
            raise NotFound(_("No such entry."))
        audit_log(
            actor=actor,
            action="blocked.remove",
            obj=entry,
            object_repr=f"{entry.kind} #{entry.pk}",
            before={"kind": entry.kind, "reason": entry.reason},
        )
        entry.delete()
