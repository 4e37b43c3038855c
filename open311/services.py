"""Writes behind Open311: client API keys, their use, and posted service requests.

A key looks like ``o311_`` followed by 43 URL-safe characters (256 random
bits). Only its SHA-256 is stored, with its first 12 characters in clear
(``prefix``) to find it and tell keys apart; it is shown once, at creation.

A service request posted through Open311 is a resident's report like one
from the portal: :func:`cases.services.case_report_result` with
``public=True`` and ``source="open311"``, so it enters the same loop (intake,
filing, dispatch …) with the client named in its first timeline entry.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_log
from accounts.models import AuditEntry
from accounts.scopes import area_in_scope
from cases.models import Case, Source, Urgency
from cases.services import case_report_result
from core.errors import DomainError, NotFound
from geo.index import locate
from geo.models import Area

from .models import ApiKey, RequestToken
from .selectors import (
    ATTRIBUTE_LOCATION,
    ATTRIBUTE_URGENCY,
    LOCATION_DETAIL_MAX,
    OFFERED_URGENCIES,
    Jurisdiction,
    api_key_by_prefix,
    category_for_code,
    handling_notices,
    param,
)

KEY_PREFIX = "o311_"
PREFIX_LENGTH = 12
DEFAULT_REQUESTS_PER_MINUTE = 60
MAX_REQUESTS_PER_MINUTE = 10_000
# last_used_at is a hint for people; the audit log is the record of every use.
LAST_USED_RESOLUTION = timedelta(minutes=1)
ADD_PERMISSION = "open311.add_apikey"

# Limits of what a client may post (the spec's 4,000 characters for a description;
# the case record's own field sizes for the rest).
DESCRIPTION_MAX = 4000
ADDRESS_MAX = 300
NAME_MAX = 100
PHONE_RE = re.compile(r"^[0-9+()\- ]{3,32}$")
EMAIL_MAX = 254
MEDIA_URL_MAX = 500
ACCOUNT_ID_MAX = 100
_ATTRIBUTE_RE = re.compile(r"^attribute\[([^\[\]]{1,50})\](\[\])?$")
_CJK_RE = re.compile(r"[\u3400-\u9fff]")


class KeyRefused(DomainError):
    """A missing, unknown or revoked API key, or one used outside its jurisdiction (403)."""

    status_code = 403
    code = "api_key"

    def __init__(self, message: str, *, reason: str, key: ApiKey | None = None):
        super().__init__(message)
        self.reason = reason
        self.key = key


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _snapshot(key: ApiKey) -> dict:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "jurisdiction": key.jurisdiction.code,
        "requests_per_minute": key.requests_per_minute,
        "contact": key.contact,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


# --- keys ------------------------------------------------------------------------------------


def api_key_create(
    *,
    actor,
    name: str,
    jurisdiction: Area | None,
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE,
    contact: str = "",
) -> tuple[ApiKey, str]:
    """Create a client's key; ``(key, secret)``. The secret is never stored.

    ``actor`` None is the command line; a person needs ``open311.add_apikey`` over
    the jurisdiction.
    """
    name = (name or "").strip()
    contact = (contact or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Name the client application.")]
    elif len(name) > 100:
        errors["name"] = [_("The name can be at most 100 characters long.")]
    if len(contact) > 200:
        errors["contact"] = [_("The contact can be at most 200 characters long.")]
    if not isinstance(jurisdiction, Area):
        errors["jurisdiction"] = [_("Choose the area the key may post into.")]
    elif actor is not None and not area_in_scope(actor, ADD_PERMISSION, jurisdiction.code):
        errors["jurisdiction"] = [_("This area is outside the areas you manage.")]
    try:
        rate = int(requests_per_minute)
    except (TypeError, ValueError):
        rate = 0
    if isinstance(requests_per_minute, bool) or not 1 <= rate <= MAX_REQUESTS_PER_MINUTE:
        errors["requests_per_minute"] = [
            _("Allow from 1 to %(max)d requests per minute.") % {"max": MAX_REQUESTS_PER_MINUTE}
        ]
    if errors:
        raise DomainError(_("The API key could not be created."), errors=errors)

    for _attempt in range(3):
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    name=name,
                    jurisdiction=jurisdiction,
                    prefix=secret[:PREFIX_LENGTH],
                    key_hash=hash_key(secret),
                    requests_per_minute=rate,
                    contact=contact,
                    created_by=actor if getattr(actor, "is_authenticated", False) else None,
                )
                audit_log(actor=actor, action="open311.key_create", obj=key, after=_snapshot(key))
        except IntegrityError:  # the prefix is taken (about one chance in 10^12): again
            continue
        return key, secret
    raise RuntimeError("could not find a free API key prefix")


def api_key_revoke(*, key: ApiKey, actor) -> ApiKey:
    """Revoke a key at once; revoking it again changes nothing."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().select_related("jurisdiction").get(pk=key.pk)
        if key.revoked_at is not None:
            return key
        before = _snapshot(key)
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_log(
            actor=actor,
            action="open311.key_revoke",
            obj=key,
            before=before,
            after=_snapshot(key),
        )
    return key


def api_key_authenticate(secret: str) -> ApiKey:
    """The live key for a presented secret, or :class:`KeyRefused` saying why."""
    secret = (secret or "").strip()
    if not secret:
        raise KeyRefused(_("api_key was not provided."), reason="missing")
    key = None
    if secret.startswith(KEY_PREFIX) and len(secret) <= 100:
        key = api_key_by_prefix(secret[:PREFIX_LENGTH])
    if key is None or not secrets.compare_digest(key.key_hash, hash_key(secret)):
        raise KeyRefused(_("Invalid api_key."), reason="unknown")
    if key.revoked_at is not None:
        raise KeyRefused(_("This api_key has been revoked."), reason="revoked", key=key)
    now = timezone.now()
    ApiKey.objects.filter(pk=key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    return key


def audit_key_use(
    *,
    endpoint: str,
    key: ApiKey | None,
    presented: str,
    status: int,
    method: str,
    path: str,
    detail: dict | None = None,
) -> None:
    """One audit entry per use of a key (``open311.<endpoint>``): which key (its prefix,
    never the secret), the answer's status and the outcome."""
    if 200 <= status < 300:
        outcome = AuditEntry.Outcome.SUCCESS
    elif status in (403, 429):
        outcome = AuditEntry.Outcome.DENIED
    else:
        outcome = AuditEntry.Outcome.FAILURE
    audit_log(
        actor=None,
        actor_username=f"open311:{key.name}"[:150] if key is not None else "",
        action=f"open311.{endpoint}",
        obj=key,
        object_type="" if key is not None else ApiKey._meta.label_lower,
        outcome=outcome,
        detail={
            "prefix": key.prefix if key is not None else (presented or "")[:PREFIX_LENGTH],
            "status": status,
            "method": method,
            "path": path[:500],
            **(detail or {}),
        },
    )


# --- posting a service request ---------------------------------------------------------


@dataclass
class CreatedRequest:
    case: Case
    token: str
    service_notice: str | None
    account_id: str | None


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _attributes(params) -> tuple[dict[str, str], dict[str, list[str]]]:
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    keys = params.keys() if hasattr(params, "keys") else []
    for name in keys:
        match = _ATTRIBUTE_RE.match(name)
        if match is None:
            if name.startswith("attribute"):
                errors.setdefault("attribute", []).append(
                    _("Send attributes as attribute[CODE]=value.")
                )
            continue
        code, many = match[1], match[2]
        given = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
        field = f"attribute[{code}]"
        if code not in (ATTRIBUTE_URGENCY, ATTRIBUTE_LOCATION):
            errors.setdefault(field, []).append(
                _("This service has no attribute %(code)s.") % {"code": code}
            )
        elif many or len(given) > 1:
            errors.setdefault(field, []).append(_("This attribute takes one value."))
        else:
            values[code] = (given[0] or "").strip()
    return values, errors


def _reporter_name(first: str, last: str) -> str:
    if first and last and _CJK_RE.search(first + last):
        return last + first  # 张 + 三: family name first, no space
    return " ".join(part for part in (first, last) if part)


def _parse(params) -> tuple[dict, dict[str, list[str]]]:
    """The report's fields from a POST's form parameters, and the problems found."""
    attributes, errors = _attributes(params)

    def problem(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    for name in params:
        if any("\x00" in value for value in params.getlist(name)):
            problem(name[:60], _("Null characters are not allowed."))
    if errors:
        return {}, errors

    fields: dict = {}
    code = param(params, "service_code")
    if not code:
        problem("service_code", _("service_code was not provided."))
    else:
        category = category_for_code(code)
        if category is None:
            message = _("service_code %(code)s was not found.") % {"code": code[:20]}
            raise NotFound(message, errors={"service_code": [message]})
        fields["category"] = category

    lat, lng = param(params, "lat"), param(params, "long")
    if not lat and not lng:
        problem(
            "long" if param(params, "address_string") or param(params, "address_id") else "lat",
            _(
                "Send the point as lat and long (WGS-84): CivicGrid does not look up an "
                "address_string or address_id."
            ),
        )
    elif not lat or not lng:
        problem("lat" if not lat else "long", _("Send lat and long together."))
    else:
        try:
            fields["lat"], fields["lng"] = float(lat), float(lng)
        except ValueError:
            problem("lat", _("lat and long are decimal degrees (WGS-84)."))
        else:
            if not (-90 <= fields["lat"] <= 90 and -180 <= fields["lng"] <= 180):
                problem("lat", _("lat and long are decimal degrees (WGS-84)."))

    urgency = attributes.get(ATTRIBUTE_URGENCY) or Urgency.NORMAL
    if urgency not in OFFERED_URGENCIES:
        problem(
            f"attribute[{ATTRIBUTE_URGENCY}]",
            _("Choose %(values)s.") % {"values": ", ".join(OFFERED_URGENCIES)},
        )
    fields["urgency"] = urgency

    detail = _one_line(attributes.get(ATTRIBUTE_LOCATION, ""))
    if len(detail) > LOCATION_DETAIL_MAX:
        problem(
            f"attribute[{ATTRIBUTE_LOCATION}]",
            _("At most %(count)d characters.") % {"count": LOCATION_DETAIL_MAX},
        )
    address = ", ".join(p for p in (_one_line(param(params, "address_string")), detail) if p)
    if len(address) > ADDRESS_MAX:
        problem(
            "address_string",
            _("The address and its detail take at most %(count)d characters.")
            % {"count": ADDRESS_MAX},
        )
    fields["address"] = address

    description = param(params, "description")
    if len(description) > DESCRIPTION_MAX:
        problem(
            "description",
            _("A description has at most %(count)d characters.") % {"count": DESCRIPTION_MAX},
        )
    fields["description"] = description

    email = param(params, "email")
    if email:
        try:
            if len(email) > EMAIL_MAX:
                raise ValidationError("too long")
            validate_email(email)
        except ValidationError:
            problem("email", _("Enter a valid e-mail address."))
    fields["reporter_email"] = email
    phone = _one_line(param(params, "phone"))
    if phone and not PHONE_RE.match(phone):
        problem("phone", _("Enter a phone number: digits, spaces, +, - and brackets."))
    fields["reporter_phone"] = phone
    name = _reporter_name(
        _one_line(param(params, "first_name")), _one_line(param(params, "last_name"))
    )
    if len(name) > NAME_MAX:
        problem(
            "first_name",
            _("first_name and last_name take at most %(count)d characters together.")
            % {"count": NAME_MAX},
        )
    fields["reporter_name"] = name

    media_url = param(params, "media_url")
    if media_url:
        try:
            if len(media_url) > MEDIA_URL_MAX:
                raise ValidationError("too long")
            URLValidator(schemes=["http", "https"])(media_url)
        except ValidationError:
            problem(
                "media_url",
                _("media_url is an http or https URL of at most %(count)d characters.")
                % {"count": MEDIA_URL_MAX},
            )
    fields["media_url"] = media_url

    account_id = param(params, "account_id")
    if len(account_id) > ACCOUNT_ID_MAX:
        problem(
            "account_id",
            _("account_id has at most %(count)d characters.") % {"count": ACCOUNT_ID_MAX},
        )
    fields["account_id"] = account_id or None
    return fields, errors


def _overlap(a: Area, b: Area) -> bool:
    """Whether one area's subtree holds the other."""
    return a.code.startswith(b.subtree_prefix) or b.code.startswith(a.subtree_prefix)


def request_create(
    *, api_key: ApiKey, jurisdiction: Jurisdiction, params, method: str = "POST", path: str = ""
) -> CreatedRequest:
    """Post a service request: a resident's report through ``api_key``'s client.

    Refusals: 404 an unknown service_code; 403 a point (or a jurisdiction) outside
    the key's jurisdiction; 400 anything else wrong, each problem named by the
    Open311 parameter it concerns. The case, its token and the audit entry of this
    use of the key are written in one transaction.
    """
    if jurisdiction.area is not None and not _overlap(jurisdiction.area, api_key.jurisdiction):
        raise KeyRefused(
            _("This api_key is for another jurisdiction."), reason="jurisdiction", key=api_key
        )
    fields, errors = _parse(params)
    if errors:
        raise DomainError(_("The service request is not valid."), errors=errors)
    where = locate(fields["lat"], fields["lng"])
    if where.outside:
        message = _("This point lies outside every grid.")
        raise DomainError(message, errors={"lat": [message], "long": [message]})
    if not jurisdiction.contains(where.grid.code):
        message = _("This point lies outside jurisdiction %(id)s.") % {"id": jurisdiction.id}
        raise DomainError(message, errors={"lat": [message], "long": [message]})
    if not where.grid.code.startswith(api_key.jurisdiction.subtree_prefix):
        raise KeyRefused(
            _("This api_key may post only inside %(area)s.") % {"area": api_key.jurisdiction.name},
            reason="outside_jurisdiction",
            key=api_key,
        )
    category = fields["category"]
    event_data = {"client": api_key.name, "api_key": api_key.prefix}
    if jurisdiction.id:
        event_data["jurisdiction_id"] = jurisdiction.id
    if fields["media_url"]:
        # Kept as text for staff; CivicGrid never fetches it.
        event_data["media_url"] = fields["media_url"]
    token = secrets.token_urlsafe(24)
    with transaction.atomic():
        case, _created = case_report_result(
            actor=None,
            public=True,
            source=Source.OPEN311,
            category=category,
            urgency=fields["urgency"],
            lat=fields["lat"],
            lng=fields["lng"],
            description=fields["description"] or category.name,
            address=fields["address"],
            reporter_name=fields["reporter_name"],
            reporter_phone=fields["reporter_phone"],
            reporter_email=fields["reporter_email"],
            event_data=event_data,
        )
        RequestToken.objects.create(token=token, case=case, api_key=api_key)
        audit_key_use(
            endpoint="post",
            key=api_key,
            presented="",
            status=200,
            method=method,
            path=path,
            detail={"case": case.number},
        )
    notice = handling_notices([(category, case.urgency)]).get((category.pk, case.urgency))
    return CreatedRequest(
        case=case, token=token, service_notice=notice, account_id=fields["account_id"]
    )
