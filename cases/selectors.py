"""Reads of categories, time limits, routing and cases."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from accounts.models import Department
from core.errors import DomainError
from geo.models import CODE_LENGTH, Area, AreaLevel

from . import workflow
from .models import Case as CaseRecord
from .models import (
    CaseEvent,
    CaseState,
    Category,
    Kind,
    RoutingRule,
    Source,
    TimeLimit,
    Urgency,
)
from .sla import Light, stored_light


def ancestor_codes(area: Area) -> list[str]:
    """The codes of ``area`` and of every area above it, read from the code alone.

    Codes nest (geo.models.code_problem): a grid's code starts with its
    community's, street's and district's; a city's is the district's first
    four digits padded with ``00``.
    """
    codes = []
    for level in range(int(area.level), int(AreaLevel.CITY) - 1, -1):
        if level == AreaLevel.CITY:
            codes.append(area.code[:4] + "00")
        else:
            codes.append(area.code[: CODE_LENGTH[AreaLevel(level)]])
    return codes


def route_department(*, category: Category, area: Area) -> Department | None:
    """The department cases of ``category`` in ``area`` go to; None when no rule applies.

    Precedence: the rule on the deepest area that contains ``area`` wins; among
    rules on the same area, a rule on the minor class beats one on its major
    class, which beats one with no class. Inactive rules and inactive
    departments are skipped. One query.
    """
    classes = [category.pk]
    if category.parent_id is not None:
        classes.append(category.parent_id)
    rule = (
        RoutingRule.objects.filter(
            is_active=True,
            department__is_active=True,
            area__code__in=ancestor_codes(area),
            area__level__lte=area.level,
        )
        .filter(Q(category__in=classes) | Q(category__isnull=True))
        .annotate(
            class_rank=Case(
                When(category=category.pk, then=Value(2)),
                When(category__isnull=True, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .select_related("department")
        .order_by("-area__level", "-class_rank")
        .first()
    )
    return rule.department if rule else None


def time_limit_for(
    *, category: Category, step: str, urgency: str = Urgency.NORMAL
) -> TimeLimit | None:
    """The limit for ``step`` at ``urgency``: the minor class's own, else its major class's.

    None means the step has no limit. One query.
    """
    classes = [category.pk]
    if category.parent_id is not None:
        classes.append(category.parent_id)
    limits = TimeLimit.objects.filter(category__in=classes, step=step, urgency=urgency)
    by_class = {limit.category_id: limit for limit in limits}
    return by_class.get(category.pk) or by_class.get(category.parent_id)


def step_deadline(
    *, category: Category, step: str, urgency: str, start: datetime, calendar=None
) -> datetime | None:
    """When ``step`` started at ``start`` is due, in working time; None without a limit."""
    limit = time_limit_for(category=category, step=step, urgency=urgency)
    if limit is None:
        return None
    if calendar is None:
        from core.calendar_store import work_calendar

        calendar = work_calendar()
    return limit.deadline_from(start, calendar)


def category_tree(*, kind: str | None = None, include_inactive: bool = False) -> list[Category]:
    """Major classes in order, each with ``.minors`` (a list) attached. Two queries."""
    qs: QuerySet[Category] = Category.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    if not include_inactive:
        qs = qs.filter(is_active=True)
    rows = list(qs.order_by("kind", "sort_order", "code"))
    majors = [c for c in rows if c.parent_id is None]
    by_id = {c.pk: c for c in majors}
    for major in majors:
        major.minors = []
    for c in rows:
        if c.parent_id in by_id:
            by_id[c.parent_id].minors.append(c)
    return majors


def category_by_code(*, kind: str, code: str) -> Category | None:
    return Category.objects.select_related("parent").filter(kind=kind, code=code).first()


# --- cases ------------------------------------------------------------------------------

LIGHTS = ("green", "yellow", "red")
# States whose step clock runs: a suspended case's is paused, a finished one has none.
LIT_STATES = sorted(workflow.OPEN_STATES - {CaseState.SUSPENDED})
MAX_PAGE = 200
DEFAULT_PAGE = 50


@dataclass
class CaseFilters:
    """What a case list is narrowed to; every field empty means no narrowing."""

    states: list[str] = field(default_factory=list)
    kind: str = ""
    category: str = ""  # class code prefix: "01" a major class, "0101" a minor one
    area: str = ""  # area code prefix: a grid and everything in a community, street …
    department: str = ""  # department code
    lights: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    created_from: date | None = None  # local dates, both included
    created_to: date | None = None


def _many(params, name: str) -> list[str]:
    """``?state=a&state=b`` and ``?state=a,b`` alike."""
    values = params.getlist(name) if hasattr(params, "getlist") else params.get(name) or []
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values for v in str(value).split(",") if v.strip()]


def _field_error(name: str, message: str) -> DomainError:
    return DomainError(message, errors={name: [message]})


def parse_case_filters(params) -> CaseFilters:
    """Filters from query parameters (a QueryDict or a plain dict); 400 naming each bad one."""
    errors: dict[str, list[str]] = {}
    filters = CaseFilters()

    def choices(name: str, allowed) -> list[str]:
        chosen = _many(params, name)
        unknown = [v for v in chosen if v not in allowed]
        if unknown:
            errors[name] = [
                _("Unknown value(s): %(values)s. Choose from %(allowed)s.")
                % {"values": ", ".join(unknown), "allowed": ", ".join(allowed)}
            ]
        return chosen

    filters.states = choices("state", CaseState.values)
    filters.lights = choices("light", LIGHTS)
    filters.sources = choices("source", Source.values)
    kind = (params.get("kind") or "").strip()
    if kind and kind not in Kind.values:
        errors["kind"] = [_("Unknown kind.")]
    filters.kind = kind
    for name, longest in (("category", 4), ("area", 14)):
        value = (params.get(name) or "").strip()
        if value and (not value.isdigit() or len(value) > longest):
            errors[name] = [
                _("Give a code of up to %(digits)d digits (a prefix).") % {"digits": longest}
            ]
        setattr(filters, name, value)
    filters.department = (params.get("department") or "").strip()[:40]
    for name in ("created_from", "created_to"):
        raw = (params.get(name) or "").strip()
        if not raw:
            continue
        try:
            parsed = parse_date(raw)
        except ValueError:
            parsed = None
        if parsed is None:
            errors[name] = [_("Give a date as YYYY-MM-DD.")]
        setattr(filters, name, parsed)
    if errors:
        raise DomainError(_("The filter is not valid."), errors=errors)
    return filters


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _light_q(light: str, now: datetime) -> Q:
    lit = Q(state__in=LIT_STATES, step_deadline__isnull=False)
    if light == "red":
        return lit & Q(step_deadline__lte=now)
    if light == "yellow":
        return lit & Q(step_deadline__gt=now, step_yellow_at__lte=now)
    return lit & Q(step_deadline__gt=now) & (Q(step_yellow_at__gt=now) | Q(step_yellow_at=None))


def case_list(*, user, filters: CaseFilters | None = None, now: datetime | None = None) -> QuerySet:
    """The cases ``user`` may see, narrowed by ``filters``, newest first (created, id).

    Lights are compared in SQL against the stored step deadline and yellow
    moment (``Case.step_yellow_at``), so they use the indexes; a suspended or
    finished case has no light and is left out by a light filter.
    """
    filters = filters or CaseFilters()
    now = now or timezone.now()
    qs = CaseRecord.objects.restrict(user, "view")
    if filters.states:
        qs = qs.filter(state__in=filters.states)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.category:
        qs = qs.filter(category__code__startswith=filters.category)
    if filters.area:
        qs = qs.filter(area__code__startswith=filters.area)
    if filters.department:
        qs = qs.filter(department__code=filters.department)
    if filters.sources:
        qs = qs.filter(source__in=filters.sources)
    if filters.lights:
        lit = Q()
        for light in filters.lights:
            lit |= _light_q(light, now)
        qs = qs.filter(lit)
    if filters.created_from:
        qs = qs.filter(created_at__gte=_local_midnight(filters.created_from))
    if filters.created_to:
        qs = qs.filter(created_at__lt=_local_midnight(filters.created_to + timedelta(days=1)))
    return qs.select_related("category", "area", "department").order_by("-created_at", "-id")


def encode_cursor(case: CaseRecord) -> str:
    raw = json.dumps([case.created_at.isoformat(), case.pk], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (created_at, id) a cursor points after; 400 on anything we did not hand out."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, pk = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        moment = parse_datetime(created)
        if moment is None or timezone.is_naive(moment) or not isinstance(pk, int):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        message = _("This cursor is not valid; start from the first page.")
        raise _field_error("cursor", message) from None
    return moment, pk


def page_limit(raw) -> int:
    if raw in (None, ""):
        return DEFAULT_PAGE
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise _field_error("limit", _("Give a limit from 1 to %(max)d.") % {"max": MAX_PAGE})
    return limit


def case_page(
    *, queryset: QuerySet, cursor: str | None = None, limit: int = DEFAULT_PAGE
) -> tuple[list[CaseRecord], str | None]:
    """One page of a :func:`case_list` after ``cursor``, and the cursor of the next (or None).

    Keyset pagination on (created_at, id) descending: each page is an index
    range whatever its depth, and a case reported meanwhile never shifts a page.
    """
    if cursor:
        created, pk = decode_cursor(cursor)
        queryset = queryset.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=pk))
    rows = list(queryset[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1])
    return rows, None


def case_light(case: CaseRecord, *, now: datetime | None = None) -> Light | None:
    """The case's light now, as :func:`case_list` filters it; None without a running clock."""
    if case.state not in LIT_STATES or case.step_deadline is None:
        return None
    return stored_light(
        yellow_at=case.step_yellow_at, deadline=case.step_deadline, now=now or timezone.now()
    )


def case_get(*, user, number: str) -> CaseRecord:
    """The case ``number`` if ``user`` may see it; 404 (Http404) otherwise, absent or not."""
    from accounts.scopes import restricted_get_object_or_404

    qs = CaseRecord.objects.select_related("category", "area", "department", "merged_into")
    return restricted_get_object_or_404(qs, user, "view", number=number)


def case_reload(case: CaseRecord) -> CaseRecord:
    """``case`` as stored now, with what its detail shows (the writer just wrote it)."""
    qs = CaseRecord.objects.select_related("category", "area", "department", "merged_into")
    return qs.get(pk=case.pk)


def case_timeline(case: CaseRecord) -> list[CaseEvent]:
    return list(CaseEvent.objects.filter(case=case).order_by("at", "id"))


def case_actions_for(*, case: CaseRecord, user) -> list[str]:
    """The actions ``user`` may take on ``case`` now, in the transition table's order.

    The table decides what the state allows and who may take it (through
    cases.services.acting_role: role, area, department, escalation level);
    an escalation past the district is left out. Reopening's time window and
    an action's input (a department, a reason) are checked when it is taken.
    """
    from .services import CaseActionDenied, acting_role

    allowed = []
    for action in workflow.actions_from(case.state):
        if action == workflow.Action.ESCALATE and case.level <= AreaLevel.DISTRICT:
            continue
        transition = workflow.transition_for(case.state, action)
        try:
            acting_role(actor=user, case=case, area=case.area, roles=transition.roles)
        except CaseActionDenied:
            continue
        allowed.append(action)
    return allowed
