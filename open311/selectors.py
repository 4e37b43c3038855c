"""Reads behind the Open311 GeoReport v2 endpoint: jurisdictions, services, requests.

Everything a client reads is public: the service list is the classes
residents may report, and service requests are
:func:`cases.selectors.public_cases` — never the reporter, never a staff
member, never the free-text description (it may name or reach a person),
a coarse point for a sensitive class, and only photos staff approved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import F, Max, OuterRef, Q, QuerySet, Subquery
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.scopes import restrict_queryset
from cases import workflow
from cases.models import Case, CaseEvent, CasePhoto, CaseState, Category, Kind, TimeLimit, Urgency
from cases.models import Step as CaseStep
from cases.selectors import (
    DEFAULT_CLOSE_LABEL,
    PUBLIC_STEPS,
    public_cases,
    public_location,
)
from core.errors import DomainError, NotFound
from geo.models import Area

from .formats import w3c
from .models import ApiKey, RequestToken

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
KIND_LETTERS = {Kind.EVENT: "E", Kind.COMPONENT: "C"}
LETTER_KINDS = {letter: kind for kind, letter in KIND_LETTERS.items()}
SERVICE_CODE_RE = re.compile(r"^([EC])(\d{4})$")
# Service request ids are case numbers: E0101202611290007.
REQUEST_ID_RE = re.compile(r"^[EC]\d{4,20}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# The attributes of every service definition (attribute[CODE]=value in a POST).
ATTRIBUTE_URGENCY = "URGENCY"
ATTRIBUTE_LOCATION = "LOCATION_DETAIL"
LOCATION_DETAIL_MAX = 200
# Open311 is for problems that are not emergencies: a client may ask for urgent, no more.
OFFERED_URGENCIES = (Urgency.NORMAL, Urgency.URGENT)

# GET requests: the spec's default window and volume; page_size may ask for less.
WINDOW_DAYS = 90
MAX_PAGE_SIZE = 1000
MAX_REQUEST_IDS = 1000


def param(params, name: str) -> str:
    """A parameter as text, stripped; the spec treats an empty one as absent."""
    value = params.get(name)
    return value.strip() if isinstance(value, str) else ""


def localized_name(obj) -> str:
    """``name_en`` in English when there is one, else ``name``."""
    english = getattr(obj, "name_en", "")
    if english and (translation.get_language() or "").startswith("en"):
        return english
    return obj.name


# --- jurisdictions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Jurisdiction:
    """The jurisdiction a call is about: a configured id and its area, or (with no
    jurisdiction configured) every area."""

    id: str = ""
    area: Area | None = None

    def contains(self, area_code: str) -> bool:
        return self.area is None or area_code.startswith(self.area.subtree_prefix)

    def q(self, path: str = "area") -> Q:
        if self.area is None:
            return Q()
        return Q(**{f"{path}__code__startswith": self.area.subtree_prefix})


def configured_jurisdictions() -> dict[str, str]:
    """``CIVICGRID["OPEN311_JURISDICTIONS"]``: jurisdiction_id → area code."""
    return dict(settings.CIVICGRID.get("OPEN311_JURISDICTIONS") or {})


def jurisdiction_for(raw: str) -> Jurisdiction:
    """The jurisdiction a ``jurisdiction_id`` names, as the spec says: required when the
    endpoint serves several, optional when it serves one; an unknown one is 404."""
    configured = configured_jurisdictions()
    raw = (raw or "").strip()
    if not raw:
        if not configured:
            return Jurisdiction()
        if len(configured) > 1:
            message = _(
                "jurisdiction_id was not provided: this endpoint serves several "
                "jurisdictions (%(ids)s)."
            ) % {"ids": ", ".join(sorted(configured))}
            raise DomainError(message, errors={"jurisdiction_id": [message]})
        raw = next(iter(configured))
    code = configured.get(raw)
    area = Area.objects.filter(code=code).first() if code else None
    if area is None:
        message = _("jurisdiction_id %(id)s was not found.") % {"id": raw[:100]}
        raise NotFound(message, errors={"jurisdiction_id": [message]})
    return Jurisdiction(id=raw, area=area)


# --- API keys --------------------------------------------------------------------------


def api_key_by_prefix(prefix: str) -> ApiKey | None:
    return ApiKey.objects.select_related("jurisdiction").filter(prefix=prefix).first()


def api_keys_visible(user, action: str = "view") -> QuerySet[ApiKey]:
    """The keys whose jurisdiction lies in ``user``'s scope for ``open311.<action>_apikey``."""
    qs = ApiKey.objects.select_related("jurisdiction", "created_by")
    return restrict_queryset(qs, user, action).order_by(
        F("revoked_at").asc(nulls_first=True), "name", "pk"
    )


# --- services ----------------------------------------------------------------------------


def service_code(category: Category) -> str:
    """A class's service code: its kind letter and its 4-digit code (E0101, C0101).

    Stable as long as the class is, and unique (the same code exists under both kinds)."""
    return f"{KIND_LETTERS[category.kind]}{category.code}"


def service_categories() -> QuerySet[Category]:
    """The classes residents may report: active, public minor classes of active majors."""
    return (
        Category.objects.filter(
            is_active=True,
            is_public=True,
            parent__isnull=False,
            parent__is_active=True,
        )
        .select_related("parent")
        .order_by("kind", "parent__sort_order", "parent__code", "sort_order", "code")
    )


def category_for_code(code: str, *, reportable: bool = True) -> Category | None:
    """The class behind a service code; with ``reportable``, only one on the service list."""
    match = SERVICE_CODE_RE.match(code or "")
    if match is None:
        return None
    qs = service_categories() if reportable else Category.objects.select_related("parent")
    return qs.filter(kind=LETTER_KINDS[match[1]], code=match[2], parent__isnull=False).first()


def _keywords(category: Category) -> str:
    words: list[str] = []
    for word in (
        category.name,
        category.name_en,
        category.parent.name,
        category.parent.name_en,
    ):
        word = (word or "").replace(",", " ").strip()
        if word and word not in words:
            words.append(word)
    return ", ".join(words)


def service_list() -> list[dict]:
    """GET services: one entry per class residents may report. One query."""
    return [
        {
            "service_code": service_code(c),
            "service_name": localized_name(c),
            "description": c.resident_help or c.parent.resident_help or localized_name(c),
            "metadata": True,
            "type": "realtime",
            "keywords": _keywords(c),
            "group": localized_name(c.parent),
        }
        for c in service_categories()
    ]


def service_attributes() -> list[dict]:
    """The attributes every service takes: how urgent, and where exactly."""
    return [
        {
            "variable": True,
            "code": ATTRIBUTE_URGENCY,
            "datatype": "singlevaluelist",
            "required": False,
            "datatype_description": _("Normal when not given."),
            "order": 1,
            "description": _(
                "How urgent is it? Choose urgent only when people, traffic or property are "
                "at risk now. For an emergency, call the emergency number instead."
            ),
            "values": [{"key": u.value, "name": capfirst(str(u.label))} for u in OFFERED_URGENCIES],
        },
        {
            "variable": True,
            "code": ATTRIBUTE_LOCATION,
            "datatype": "string",
            "required": False,
            "datatype_description": _("At most %(count)d characters, one line.")
            % {"count": LOCATION_DETAIL_MAX},
            "order": 2,
            "description": _(
                "Where exactly: the building, entrance or floor, or a landmark nearby."
            ),
            "values": [],
        },
    ]


def service_definition(category: Category) -> dict:
    return {"service_code": service_code(category), "attributes": service_attributes()}


def changeset() -> str:
    """When the service list or a definition last changed (the latest class change)."""
    latest = Category.objects.aggregate(latest=Max("updated_at"))["latest"]
    return w3c(latest) or "1970-01-01T00:00:00+00:00"


# --- service notices (the handling time limit) ----------------------------------------------


def _limit_text(limit: TimeLimit) -> str:
    if limit.unit == TimeLimit.Unit.WORKING_DAYS:
        days = int(limit.amount)
        return ngettext("%(count)d working day", "%(count)d working days", days) % {"count": days}
    amount = limit.amount.normalize()
    text = f"{amount:f}"
    return ngettext(
        "%(amount)s working hour", "%(amount)s working hours", 1 if amount == 1 else 2
    ) % {"amount": text}


def handling_notices(pairs) -> dict[tuple[int, str], str]:
    """For each (class, urgency): what the city undertakes — its handling time limit
    (the class's own, else its major class's). One query."""
    pairs = {(c.pk, c.parent_id, urgency) for c, urgency in pairs}
    if not pairs:
        return {}
    ids = {pk for pk, _p, _u in pairs} | {p for _pk, p, _u in pairs if p}
    limits = {
        (limit.category_id, limit.urgency): limit
        for limit in TimeLimit.objects.filter(category__in=ids, step=CaseStep.HANDLE)
    }
    notices = {}
    for pk, parent_id, urgency in pairs:
        limit = limits.get((pk, urgency)) or limits.get((parent_id, urgency))
        if limit is not None:
            notices[(pk, urgency)] = _(
                "The responsible department handles it within %(limit)s of being sent it."
            ) % {"limit": _limit_text(limit)}
    return notices


# --- service requests ----------------------------------------------------------------------


@dataclass
class RequestFilters:
    """GET requests: what the list is narrowed to (see :func:`parse_request_filters`)."""

    ids: list[str] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    statuses: list[str] = field(default_factory=list)
    page: int = 1
    page_size: int = MAX_PAGE_SIZE


def _many(raw: str) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))


def _moment(raw: str, *, end: bool) -> datetime | None:
    """A W3C date-time (the spec's form, e.g. 2010-01-01T00:00:00Z); a time without an
    offset, or a date alone, is read in local time (a date as the start of its day, or
    for ``end`` the start of the next)."""
    raw = raw.strip()
    try:
        day = parse_date(raw) if len(raw) == 10 else None
        moment = None if day else parse_datetime(raw)
    except ValueError:
        return None
    if day is not None:
        if end:
            day += timedelta(days=1)
        moment = datetime.combine(day, time.min)
    if moment is None:
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def parse_request_filters(params, *, now: datetime | None = None) -> RequestFilters:
    """GET requests' arguments, as the spec has them (400 naming each bad one):

    ``service_request_id`` (comma-separated; overrides every other argument but the
    jurisdiction), ``service_code`` (comma-separated), ``start_date`` / ``end_date``
    (W3C date-times; the window defaults to the most recent 90 days and may not span
    more), ``status`` (``open``, ``closed``, comma-separated) and the ``page`` /
    ``page_size`` extension (page_size 1–1000, default 1000).
    """
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    filters = RequestFilters()

    ids = _many(param(params, "service_request_id"))
    if ids:
        if len(ids) > MAX_REQUEST_IDS:
            errors["service_request_id"] = [
                _("Ask for at most %(count)d service_request_id at once.")
                % {"count": MAX_REQUEST_IDS}
            ]
        filters.ids = [i for i in ids if REQUEST_ID_RE.match(i)]
        if errors:
            raise DomainError(_("The query is not valid."), errors=errors)
        return filters

    codes = _many(param(params, "service_code"))
    if codes:
        found = {}
        for code in codes:
            category = category_for_code(code, reportable=False)
            if category is None or not category.is_public:
                errors.setdefault("service_code", []).append(
                    _("service_code %(code)s was not found.") % {"code": code[:20]}
                )
            else:
                found[category.pk] = category
        filters.categories = list(found.values())

    statuses = _many(param(params, "status").lower())
    unknown = [s for s in statuses if s not in ("open", "closed")]
    if unknown:
        errors["status"] = [
            _("Unknown status %(values)s: give open, closed or both.")
            % {"values": ", ".join(unknown)[:100]}
        ]
    filters.statuses = statuses

    window = timedelta(days=WINDOW_DAYS)
    start = end = None
    for name in ("start_date", "end_date"):
        raw = param(params, name)
        if not raw:
            continue
        moment = _moment(raw, end=name == "end_date")
        if moment is None:
            errors[name] = [
                _("Give %(name)s as a W3C date-time, e.g. 2026-01-01T00:00:00+08:00.")
                % {"name": name}
            ]
        elif name == "start_date":
            start = moment
        else:
            end = moment
    if start is not None and end is not None:
        if end < start:
            errors["end_date"] = [_("end_date is earlier than start_date.")]
        elif end - start > window:
            errors["end_date"] = [
                _("start_date and end_date may not span more than %(days)d days.")
                % {"days": WINDOW_DAYS}
            ]
    elif start is not None:
        end = start + window
    elif end is not None:
        start = end - window
    else:
        start, end = now - window, now
    filters.start, filters.end = start, end

    for name, low, high, default in (
        ("page", 1, 1_000_000, 1),
        ("page_size", 1, MAX_PAGE_SIZE, MAX_PAGE_SIZE),
    ):
        raw = param(params, name)
        if not raw:
            setattr(filters, name, default)
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not low <= value <= high:
            errors[name] = [
                _("Give %(name)s as a whole number from %(low)d to %(high)d.")
                % {"name": name, "low": low, "high": high}
            ]
        setattr(filters, name, value)

    if errors:
        raise DomainError(_("The query is not valid."), errors=errors)
    return filters


def _requests(jurisdiction: Jurisdiction) -> QuerySet[Case]:
    return public_cases().filter(jurisdiction.q())


def request_page(*, jurisdiction: Jurisdiction, filters: RequestFilters) -> list[Case]:
    """One page of the public service requests of ``jurisdiction``, newest first."""
    qs = _requests(jurisdiction)
    if filters.ids:
        return list(qs.filter(number__in=filters.ids).order_by("-created_at", "-id"))
    if filters.categories:
        qs = qs.filter(category__in=filters.categories)
    if filters.statuses and set(filters.statuses) != {"open", "closed"}:
        if "closed" in filters.statuses:
            qs = qs.filter(state=CaseState.CLOSED)
        else:
            qs = qs.filter(state__in=workflow.OPEN_STATES)
    qs = qs.filter(created_at__gte=filters.start, created_at__lte=filters.end)
    first = (filters.page - 1) * filters.page_size
    return list(qs.order_by("-created_at", "-id")[first : first + filters.page_size])


def request_by_id(*, jurisdiction: Jurisdiction, number: str) -> Case | None:
    if not REQUEST_ID_RE.match(number or ""):
        return None
    return _requests(jurisdiction).filter(number=number).first()


def token_for(*, jurisdiction: Jurisdiction, token: str) -> RequestToken | None:
    if not TOKEN_RE.match(token or ""):
        return None
    return (
        RequestToken.objects.select_related("case")
        .filter(jurisdiction.q("case__area"), token=token)
        .first()
    )


def _status_notes(cases: list[Case]) -> dict[int, str]:
    """Each case's latest public step, in public words (what its timeline shows
    a resident). Two queries for any number of cases."""
    if not cases:
        return {}
    latest = (
        CaseEvent.objects.filter(case=OuterRef("pk"), action__in=list(PUBLIC_STEPS))
        .order_by("-at", "-id")
        .values("id")[:1]
    )
    event_ids = dict(
        Case.objects.filter(pk__in=[c.pk for c in cases])
        .annotate(last_public=Subquery(latest))
        .values_list("pk", "last_public")
    )
    events = CaseEvent.objects.filter(pk__in=[e for e in event_ids.values() if e]).values_list(
        "case_id", "action", "role"
    )
    notes = {}
    for case_id, action, role in events:
        label = PUBLIC_STEPS[action]
        if action == workflow.Action.RATE_SATISFIED and role == "system":
            label = DEFAULT_CLOSE_LABEL
        notes[case_id] = str(label)
    return notes


def _photo_urls(cases: list[Case], build_url) -> dict[int, str]:
    """The first photo staff approved for each case, on the portal. One query."""
    try:
        reverse("portal:photo", args=[1, "full"])
    except NoReverseMatch:  # a deployment without the portal's photo route
        return {}
    urls: dict[int, str] = {}
    rows = (
        CasePhoto.objects.filter(case__in=[c.pk for c in cases], is_public=True)
        .order_by("case_id", "created_at", "id")
        .values_list("case_id", "pk")
    )
    for case_id, pk in rows:
        if case_id not in urls:
            urls[case_id] = build_url(reverse("portal:photo", args=[pk, "full"]))
    return urls


def request_rows(cases: list[Case], *, build_url) -> list[dict]:
    """The spec's service request fields for each case, in the spec's order.

    ``description`` is always empty: a reporter's words may name or reach a person,
    and nobody approves them for the public. ``address`` is left out for a sensitive
    class, whose point is coarse. ``build_url`` makes a path absolute. A fixed number
    of queries for any number of cases.
    """
    notes = _status_notes(cases)
    notices = handling_notices((c.category, c.urgency) for c in cases)
    photos = _photo_urls(cases, build_url) if cases else {}
    rows = []
    for case in cases:
        lat, lng = public_location(case)
        closed = case.state == CaseState.CLOSED
        rows.append(
            {
                "service_request_id": case.number,
                "status": "closed" if closed else "open",
                "status_notes": notes.get(case.pk),
                "service_name": localized_name(case.category),
                "service_code": service_code(case.category),
                "description": None,
                "agency_responsible": (
                    localized_name(case.department) if case.department_id else None
                ),
                "service_notice": notices.get((case.category_id, case.urgency)),
                "requested_datetime": w3c(case.created_at),
                "updated_datetime": w3c(
                    case.closed_at if closed and case.closed_at else case.updated_at
                ),
                "expected_datetime": w3c(case.deadline),
                "address": None if case.category.is_sensitive else (case.address or None),
                "address_id": None,
                "zipcode": None,
                "lat": lat,
                "long": lng,
                "media_url": photos.get(case.pk),
            }
        )
    return rows
