"""Reads of categories, time limits, routing and cases."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Department, Membership, Role
from core.errors import DomainError
from geo.models import CODE_LENGTH, Area, AreaLevel

from . import reference, workflow
from .models import Case as CaseRecord
from .models import (
    CaseEvent,
    CasePhoto,
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
    departments are skipped. No query with the process's copy of the rules
    (cases.reference, outside a transaction), else one.
    """
    rules = reference.current_rules()
    if rules is not None:
        return reference.routed_department(
            rules, category=category, codes=ancestor_codes(area), level=int(area.level)
        )
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

    None means the step has no limit. No query with the process's copy of the limits
    (cases.reference, outside a transaction), else one.
    """
    rules = reference.current_rules()
    if rules is not None:
        return reference.time_limit(rules, category=category, step=step, urgency=urgency)
    classes = [category.pk]
    if category.parent_id is not None:
        classes.append(category.parent_id)
    limits = TimeLimit.objects.filter(category__in=classes, step=step, urgency=urgency)
    by_class = {limit.category_id: limit for limit in limits}
    return by_class.get(category.pk) or by_class.get(category.parent_id)


def step_deadline(
    *, category: Category, step: str, urgency: str, start: datetime, calendar=None, limits=None
) -> datetime | None:
    """When ``step`` started at ``start`` is due, in working time; None without a limit.

    ``limits`` (step → TimeLimit, as cases.reference.step_limits gives them for the
    class and urgency) spares the lookup when the caller has them at hand.
    """
    if limits is not None:
        limit = limits.get(step)
    else:
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
    """The class, its major class attached. No query with the process's copy of the
    classes (cases.reference, outside a transaction), else one."""
    return reference.category(kind=kind, code=code)


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


# What a list row never reads: the reporter's contact (lists never carry it), the
# secrets, clocks only the case page shows, the classes' criteria, the grids'
# boundaries and measures, and the related rows' own timestamps. Left out of
# the SELECT, they cost neither transfer nor conversion on every row of every
# page. (An export narrows a list further with .only(); none of these is
# among its fields.)
LIST_DEFERRED = (
    "reporter_name",
    "reporter_phone",
    "reporter_email",
    "reporter_purged_at",
    "idempotency_key",
    "public_token",
    "step_started_at",
    "suspended_at",
    "supervised_at",
    "postpone_until",
    "category__filing_criteria",
    "category__closing_criteria",
    "category__resident_help",
    "category__created_at",
    "category__updated_at",
    "area__geometry",
    "area__min_lng",
    "area__min_lat",
    "area__max_lng",
    "area__max_lat",
    "area__area_m2",
    "area__households",
    "area__population",
    "area__created_at",
    "area__updated_at",
    "department__phone",
    "department__created_at",
    "department__updated_at",
)
LIST_RELATED = ("category", "area", "department")


def _selected_prefixes(user, area: str) -> list[str] | None:
    """The area-code prefixes a list of ``user`` narrowed to ``area`` covers; None: all."""
    from accounts.scopes import permission_name, scope_prefixes

    prefixes = scope_prefixes(user, permission_name(CaseRecord, "view"))
    if not area:
        return prefixes
    if prefixes is None:
        return [area]
    # Inside a scope subtree the filter narrows it; a subtree inside the filter stays.
    narrowed = set()
    for prefix in prefixes:
        if area.startswith(prefix):
            narrowed.add(area)
        elif prefix.startswith(area):
            narrowed.add(prefix)
    return sorted(narrowed)


def _grid_codes(prefixes: list[str] | None) -> list[str] | None:
    """The grid codes a list is confined to, when every prefix is a whole grid code.

    Nothing lies below a grid, so its cases are those whose ``area_code`` equals
    it: the database reads each grid's newest cases from (area_code, created_at,
    id) in order, one grid after the other, rather than walking the newest cases
    of the whole city for the few of these grids. Wider prefixes are left to the
    scope's code comparison.
    """
    grid = CODE_LENGTH[AreaLevel.GRID]
    if not prefixes or any(len(p) != grid for p in prefixes):
        return None
    return list(prefixes)


def case_list(*, user, filters: CaseFilters | None = None, now: datetime | None = None) -> QuerySet:
    """The cases ``user`` may see, narrowed by ``filters``, newest first (created, id).

    Lights are compared in SQL against the stored step deadline and yellow
    moment (``Case.step_yellow_at``), so they use the indexes; a suspended or
    finished case has no light and is left out by a light filter.

    Built so that a page costs about the same at a million cases as at a
    thousand: every condition is on the case row (the grid's code is copied
    onto it; a class prefix and a department code become subqueries of ids),
    so that one of the (column, created_at, id) indexes can deliver the newest
    matches in order and :func:`case_page` stops after a page. The rows leave
    out what a list never shows (LIST_DEFERRED).
    """
    filters = filters or CaseFilters()
    now = now or timezone.now()
    qs = CaseRecord.objects.restrict(user, "view")
    if filters.states:
        qs = qs.filter(state__in=filters.states)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.category:
        classes = Category.objects.filter(code__startswith=filters.category)
        qs = qs.filter(category_id__in=classes.values("pk"))
    if filters.area:
        qs = qs.filter(area_code__startswith=filters.area)
    if filters.department:
        departments = Department.objects.filter(code=filters.department)
        qs = qs.filter(department_id__in=departments.values("pk"))
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
    grids = _grid_codes(_selected_prefixes(user, filters.area))
    if grids is not None:
        qs = qs.filter(area_code__in=grids)
    return qs.select_related(*LIST_RELATED).defer(*LIST_DEFERRED).order_by("-created_at", "-id")


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


def before_key(created: datetime, pk: int) -> Q:
    """The cases after (``created``, ``pk``) in the newest-first order.

    The plain ``created <= x`` beside the OR gives the database an index range
    to start from: with the OR alone, SQLite scans from the newest case.
    """
    return Q(created_at__lte=created) & (
        Q(created_at__lt=created) | Q(created_at=created, id__lt=pk)
    )


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
    One query in two steps: a subquery finds the page's keys through
    ``queryset`` (its scope and filters) on the case table alone — joined
    tables would keep SQLite from reading an index in order and stopping, and
    a sort, where one is needed, then carries keys rather than whole rows —
    and the outer query reads those cases by primary key as :func:`case_list`
    reads them.
    """
    if cursor:
        queryset = queryset.filter(before_key(*decode_cursor(cursor)))
    keys = queryset.values("pk")[: limit + 1]
    rows = list(_list_rows().filter(pk__in=keys))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1])
    return rows, None


def _list_rows() -> QuerySet:
    """Cases as a list shows them: with class, grid and department, newest first."""
    return (
        CaseRecord.objects.select_related(*LIST_RELATED)
        .defer(*LIST_DEFERRED)
        .order_by("-created_at", "-id")
    )


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

    qs = CaseRecord.objects.select_related(
        "category", "area", "department", "merged_into", "assignee"
    )
    return restricted_get_object_or_404(qs, user, "view", number=number)


def case_reload(case: CaseRecord) -> CaseRecord:
    """``case`` as stored now, with what its detail shows (the writer just wrote it)."""
    qs = CaseRecord.objects.select_related(
        "category", "area", "department", "merged_into", "assignee"
    )
    return qs.get(pk=case.pk)


def case_timeline(case: CaseRecord) -> list[CaseEvent]:
    return list(CaseEvent.objects.filter(case=case).order_by("at", "id"))


def case_photos(case: CaseRecord) -> list[CasePhoto]:
    """The case's photos in the order they were taken (each names its timeline entry)."""
    return list(CasePhoto.objects.filter(case=case).order_by("created_at", "id"))


# --- who holds which role where ------------------------------------------------------


def membership_rows(actor) -> list[tuple]:
    """The actor's active memberships as cases.services.acting_role weighs them: (role code,
    whether the role acts for a department, area code, area level, department id).

    One query (none for someone who is not an active signed-in user). Read them
    once to decide several actions on the same request.

    Every report and every case page asks, so the query is written out rather
    than built by the ORM each time (building it cost ten times running it); it
    reads what ``Membership.objects.filter(user=actor, is_active=True)
    .values_list("role__code", "role__needs_department", "area__code",
    "area__level", "department_id")`` would.
    """
    if actor is None or not getattr(actor, "is_authenticated", False) or not actor.is_active:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_membership_sql(), [actor.pk, True])
        rows = cursor.fetchall()
    return [(role, bool(needs), code, int(level), dept) for role, needs, code, level, dept in rows]


def _membership_sql() -> str:
    quote = connection.ops.quote_name
    found = _MEMBERSHIP_SQL.get(connection.vendor)
    if found is None:
        member, role, area = Membership._meta, Role._meta, Area._meta

        def column(meta, name: str) -> str:
            return quote(meta.get_field(name).column)

        found = _MEMBERSHIP_SQL[connection.vendor] = (
            f"SELECT r.{column(role, 'code')}, r.{column(role, 'needs_department')}, "
            f"a.{column(area, 'code')}, a.{column(area, 'level')}, "
            f"m.{column(member, 'department')} "
            f"FROM {quote(member.db_table)} m "
            f"INNER JOIN {quote(role.db_table)} r ON r.{quote(role.pk.column)} = "
            f"m.{column(member, 'role')} "
            f"INNER JOIN {quote(area.db_table)} a ON a.{quote(area.pk.column)} = "
            f"m.{column(member, 'area')} "
            f"WHERE m.{column(member, 'user')} = %s AND m.{column(member, 'is_active')} = %s"
        )
    return found


_MEMBERSHIP_SQL: dict[str, str] = {}  # the query per database engine


# --- duplicates -------------------------------------------------------------------

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180
MAX_DUPLICATES = 10


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Duplicate:
    """An open case a report may duplicate, how far from it and how old."""

    pk: int
    number: str
    state: str
    distance_m: float
    age_hours: float
    description: str


def duplicate_candidates(
    *, category: Category, lat, lng, now: datetime | None = None, exclude_pk: int | None = None
) -> list[Duplicate]:
    """Open cases of ``category`` within its duplicate radius of the point, reported
    within its duplicate window before ``now``: nearest first, at most MAX_DUPLICATES.

    The open cases of the class in a band of latitude come from the partial index
    cases_case_open_nearby, longitude and time are checked on its entries, the
    database hands over the nearest few by a flat-earth distance (exact enough to
    rank points this close), and the exact distance decides among them.

    Every report asks, so the query is written out (:func:`_duplicates_sql`)
    rather than built by the ORM each time, which cost several times running it.
    """
    now = now or timezone.now()
    lat, lng = float(lat), float(lng)
    radius = float(category.duplicate_radius_m)
    shrink = max(math.cos(math.radians(lat)), 0.01)  # a degree of longitude, in degrees of latitude
    dlat = radius / METRES_PER_DEGREE
    dlng = radius / (METRES_PER_DEGREE * shrink)
    adapt = connection.ops.adapt_datetimefield_value
    since = now - timedelta(hours=category.duplicate_window_hours)
    params = [
        category.pk,
        adapt(since),
        adapt(now),
        lat - dlat,
        lat + dlat,
        lng - dlng,
        lng + dlng,
    ]
    if exclude_pk is not None:
        params.append(exclude_pk)
    # A few more than wanted: the exact distance may reorder near ties of the flat one.
    params += [lat, lat, lng, lng, shrink * shrink, MAX_DUPLICATES + 2]
    with connection.cursor() as cursor:
        cursor.execute(_duplicates_sql(excluding=exclude_pk is not None), params)
        rows = cursor.fetchall()
    created_col = CaseRecord._meta.get_field("created_at").cached_col
    converters = connection.ops.get_db_converters(created_col)
    found = []
    for pk, number, state, clat, clng, created, description in rows:
        far = distance_m(lat, lng, clat, clng)
        if far <= radius:
            for convert in converters:
                created = convert(created, created_col, connection)
            age = (now - created).total_seconds() / 3600
            found.append(Duplicate(pk, number, state, round(far, 1), round(age, 1), description))
    found.sort(key=lambda d: (d.distance_m, d.age_hours))
    return found[:MAX_DUPLICATES]


DUPLICATE_STATES = sorted(workflow.OPEN_STATES)
_DUPLICATES_SQL: dict[tuple[str, bool], str] = {}


def _duplicates_sql(*, excluding: bool) -> str:
    """The query of :func:`duplicate_candidates` (per database engine, with or without
    a case left out); its parameters are listed there, in order."""
    key = (connection.vendor, excluding)
    found = _DUPLICATES_SQL.get(key)
    if found is None:
        meta, quote = CaseRecord._meta, connection.ops.quote_name
        c = {
            name: quote(meta.get_field(name).column)
            for name in ("id", "number", "state", "lat", "lng", "created_at", "description")
        }
        category = quote(meta.get_field("category").column)
        # Written out as the index cases_case_open_nearby names them: a database uses a
        # partial index only where the query says its condition (and a parameter
        # would hide what it says).
        assert all(state.isidentifier() for state in DUPLICATE_STATES)
        states = ", ".join(f"'{state}'" for state in DUPLICATE_STATES)
        found = _DUPLICATES_SQL[key] = (
            f"SELECT {c['id']}, {c['number']}, {c['state']}, {c['lat']}, {c['lng']}, "
            f"{c['created_at']}, {c['description']} FROM {quote(meta.db_table)} "
            f"WHERE {category} = %s AND {c['state']} IN ({states}) "
            f"AND {c['created_at']} >= %s AND {c['created_at']} <= %s "
            f"AND {c['lat']} BETWEEN %s AND %s AND {c['lng']} BETWEEN %s AND %s "
            + (f"AND {c['id']} <> %s " if excluding else "")
            + f"ORDER BY ({c['lat']} - %s) * ({c['lat']} - %s) "
            f"+ ({c['lng']} - %s) * ({c['lng']} - %s) * %s, {c['created_at']} DESC LIMIT %s"
        )
    return found


def case_duplicates(case: CaseRecord, *, now: datetime | None = None) -> list[Duplicate]:
    """For a report awaiting intake: the open cases it may duplicate (none otherwise)."""
    if case.state not in (CaseState.REPORTED, CaseState.VERIFYING, CaseState.ESCALATED):
        return []
    return duplicate_candidates(
        category=case.category, lat=case.lat, lng=case.lng, now=now, exclude_pk=case.pk
    )


def case_actions_for(*, case: CaseRecord, user, memberships: list | None = None) -> list[str]:
    """The actions ``user`` may take on ``case`` now, in the transition table's order.

    The table decides what the state allows and who may take it (through
    cases.services.acting_role: role, area, department, escalation level);
    actions services.action_refusal rules out (an escalation past the district,
    a second postponement request, a check by who handled it on the spot) are
    left out. Reopening's time window and
    an action's input (a department, a reason) are checked when it is taken.

    The user's memberships are read once for all the actions (one query at most;
    none with ``memberships``, the rows :func:`membership_rows` gave).
    """
    from .services import CaseActionDenied, acting_role, action_refusal

    allowed = []
    for action in workflow.actions_from(case.state):
        if action_refusal(case=case, action=action, actor=user):
            continue
        transition = workflow.transition_for(case.state, action)
        if memberships is None:
            memberships = membership_rows(user)
        try:
            acting_role(
                actor=user,
                case=case,
                area=case.area,
                roles=transition.roles,
                memberships=memberships,
            )
        except CaseActionDenied:
            continue
        allowed.append(action)
    return allowed


# --- console and search -----------------------------------------------------------------
#
# Reads behind the dispatch console, the case search and its exports
# (cases/console.py, cases/export.py, cases/api/export_views.py). Everything
# starts from case_list, so it is restricted to the user's scope and narrowed
# by the same filters as the API list.

# The console's queue: open cases, in groups shown in this order. A supervised
# case (督办) leads whatever its light; the others go by light, red first.
CONSOLE_GROUPS = ("supervised", "red", "yellow", "green", "unlit")
# States a dispatcher sends to a department from (the transition table agrees).
DISPATCH_STATES = (CaseState.FILED, CaseState.ESCALATED)
CONSOLE_PAGE = 25
MAP_MAX_POINTS = 1000  # CIVICGRID["CONSOLE_MAP_MAX_POINTS"] overrides it
MAP_CELLS = 24  # past the cap, the view is cut into MAP_CELLS × MAP_CELLS clusters
EXPORT_MAX_ROWS = 100_000  # CIVICGRID["EXPORT_MAX_ROWS"] overrides it
EXPORT_BATCH = 1000


def console_filters(params) -> CaseFilters:
    """The console's filters: those of :func:`parse_case_filters`, open states only.

    Without a state, every open state; a finished state is refused (the search
    shows finished cases).
    """
    errors: dict[str, list[str]] = {}
    try:
        filters = parse_case_filters(params)
    except DomainError as error:
        errors.update(error.errors)
        filters = None
    finished = [s for s in _many(params, "state") if s in workflow.FINAL_STATES]
    if finished:
        errors.setdefault("state", []).append(
            _("The console shows open cases; find finished ones in the search.")
        )
    if errors:
        raise DomainError(_("The filter is not valid."), errors=errors)
    if not filters.states:
        filters.states = sorted(workflow.OPEN_STATES)
    return filters


def filters_as_dict(filters: CaseFilters) -> dict:
    """The filters that narrow anything, as plain JSON values (for the audit log)."""
    out: dict = {}
    for name, value in vars(filters).items():
        if value in (None, "", []):
            continue
        out[name] = value.isoformat() if isinstance(value, date) else value
    return out


def _lit() -> Q:
    return Q(state__in=LIT_STATES, step_deadline__isnull=False)


def console_group_q(group: str, now: datetime) -> Q:
    """The cases of one console group (see CONSOLE_GROUPS); the groups do not overlap."""
    supervised = Q(supervise_count__gt=0)
    if group == "supervised":
        return supervised
    if group == "unlit":
        return ~supervised & ~_lit()
    if group not in LIGHTS:
        raise _field_error("group", _("Unknown group."))
    return ~supervised & _light_q(group, now)


def console_group_counts(*, queryset: QuerySet, now: datetime) -> dict[str, int]:
    """How many cases of ``queryset`` fall in each console group. One query."""
    from django.db.models import Count

    counts = queryset.order_by().aggregate(
        **{g: Count("pk", filter=console_group_q(g, now)) for g in CONSOLE_GROUPS}
    )
    return {g: counts[g] or 0 for g in CONSOLE_GROUPS}


def _light_rank(now: datetime):
    """3 red, 2 yellow, 1 green, 0 no light: the worst light of a cluster is its Max."""
    lit = {"state__in": LIT_STATES, "step_deadline__isnull": False}
    return Case(
        When(**lit, step_deadline__lte=now, then=Value(3)),
        When(**lit, step_yellow_at__lte=now, then=Value(2)),
        When(**lit, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )


RANK_LIGHT = {3: "red", 2: "yellow", 1: "green", 0: ""}


@dataclass(frozen=True)
class BBox:
    west: float
    south: float
    east: float
    north: float


def parse_bbox(raw: str | None) -> BBox | None:
    """``west,south,east,north`` in WGS-84 degrees; None when not given; 400 when malformed."""
    raw = (raw or "").strip()
    if not raw:
        return None
    message = _("Give the box as west,south,east,north in degrees (west < east, south < north).")
    try:
        west, south, east, north = (float(v) for v in raw.split(","))
    except ValueError:
        raise _field_error("bbox", message) from None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise _field_error("bbox", message)
    # A world-wide view wraps past ±180; clamp rather than refuse.
    west, east = max(west, -180.0), min(east, 180.0)
    south, north = max(south, -90.0), min(north, 90.0)
    if not (west < east and south < north):
        raise _field_error("bbox", message)
    return BBox(west, south, east, north)


def map_max_points() -> int:
    from django.conf import settings

    return int(settings.CIVICGRID.get("CONSOLE_MAP_MAX_POINTS", MAP_MAX_POINTS))


def case_map_features(
    *, queryset: QuerySet, bbox: BBox | None, now: datetime, limit: int | None = None
) -> dict:
    """The cases of ``queryset`` inside ``bbox`` for a map, as GeoJSON features.

    Up to ``limit`` cases come as points (``kind: "case"``: number, light,
    state, class, supervised). Past that the box is cut into a grid of cells
    and each cell with cases comes as one point (``kind: "cluster"``: how many,
    their worst light) at the cases' mean position: two queries at most,
    whatever the number of cases, and never more than ``limit`` features.
    """
    from django.db.models import Avg, Count, F, FloatField, Max, Min
    from django.db.models.functions import Floor

    limit = limit or map_max_points()
    qs = queryset
    if bbox is not None:
        qs = qs.filter(
            lat__gte=bbox.south, lat__lte=bbox.north, lng__gte=bbox.west, lng__lte=bbox.east
        )
    rows = list(
        qs.values_list(
            "number",
            "lat",
            "lng",
            "state",
            "step_deadline",
            "step_yellow_at",
            "supervise_count",
            "category__code",
            "category__name",
            "category__name_en",
        )[: limit + 1]
    )
    if len(rows) <= limit:
        features = []
        for number, lat, lng, state, deadline, yellow, supervised, code, name, name_en in rows:
            light = ""
            if state in LIT_STATES and deadline is not None:
                light = stored_light(yellow_at=yellow, deadline=deadline, now=now)
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [lng, lat]},
                    "properties": {
                        "kind": "case",
                        "number": number,
                        "light": light,
                        "state": state,
                        "supervised": supervised > 0,
                        "category": code,
                        "category_name": name,
                        "category_name_en": name_en,
                    },
                }
            )
        return {"type": "FeatureCollection", "features": features, "clustered": False}

    if bbox is None:
        corners = qs.order_by().aggregate(
            south=Min("lat"), north=Max("lat"), west=Min("lng"), east=Max("lng")
        )
        bbox = BBox(corners["west"], corners["south"], corners["east"], corners["north"])
    cells = max(1, min(MAP_CELLS, math.isqrt(limit)))
    width = max((bbox.east - bbox.west) / cells, 1e-9)
    height = max((bbox.north - bbox.south) / cells, 1e-9)
    grouped = (
        qs.order_by()
        .annotate(
            cx=Floor((F("lng") - Value(bbox.west)) / Value(width), output_field=FloatField()),
            cy=Floor((F("lat") - Value(bbox.south)) / Value(height), output_field=FloatField()),
        )
        .values("cx", "cy")
        .annotate(
            n=Count("pk"),
            lat=Avg("lat"),
            lng=Avg("lng"),
            rank=Max(_light_rank(now)),
            supervised=Max("supervise_count"),
        )
        .order_by("cx", "cy")
    )
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [row["lng"], row["lat"]]},
            "properties": {
                "kind": "cluster",
                "count": row["n"],
                "light": RANK_LIGHT.get(row["rank"], ""),
                "supervised": (row["supervised"] or 0) > 0,
            },
        }
        for row in grouped[:limit]
    ]
    return {"type": "FeatureCollection", "features": features, "clustered": True}


def route_departments(cases) -> dict[int, Department | None]:
    """:func:`route_department` for many cases at once: case pk → department (or None).

    The same precedence (deepest area, then the most specific class; inactive
    rules and departments skipped), decided from one query for the lot rather
    than one per case. Each case needs its category and area loaded.
    """
    cases = list(cases)
    if not cases:
        return {}
    wanted_codes: set[str] = set()
    wanted_classes: set[int] = set()
    plans = []
    for case in cases:
        codes = ancestor_codes(case.area)
        classes = {case.category_id}
        if case.category.parent_id is not None:
            classes.add(case.category.parent_id)
        wanted_codes.update(codes)
        wanted_classes.update(classes)
        plans.append((case, set(codes), classes))
    rules = list(
        RoutingRule.objects.filter(
            is_active=True, department__is_active=True, area__code__in=wanted_codes
        )
        .filter(Q(category__in=wanted_classes) | Q(category__isnull=True))
        .select_related("department", "area")
    )
    routed: dict[int, Department | None] = {}
    for case, codes, classes in plans:
        best, best_key = None, None
        for rule in rules:
            if rule.area.code not in codes or rule.area.level > case.area.level:
                continue
            if rule.category_id is None:
                rank = 0
            elif rule.category_id == case.category_id:
                rank = 2
            elif rule.category_id in classes:
                rank = 1
            else:
                continue
            key = (rule.area.level, rank)
            if best_key is None or key > best_key:
                best, best_key = rule, key
        routed[case.pk] = best.department if best else None
    return routed


def active_departments() -> list[Department]:
    """Every active department with its area, by code: the dispatch choices. One query."""
    return list(Department.objects.filter(is_active=True).select_related("area").order_by("code"))


def departments_serving(area: Area, departments: list[Department]) -> list[Department]:
    """Those of ``departments`` whose area holds ``area`` (where a case there may be sent)."""
    return [d for d in departments if area.code.startswith(d.area.subtree_prefix)]


def departments_for_filter(user) -> list[Department]:
    """Departments a case list of ``user`` can name: those serving an area above, in or
    below the user's case scope (never one working only elsewhere). One query."""
    from accounts.scopes import scope_prefixes

    prefixes = scope_prefixes(user, "cases.view_case")
    departments = list(Department.objects.select_related("area").order_by("-is_active", "code"))
    if prefixes is None:
        return departments
    return [
        d
        for d in departments
        if any(p.startswith(d.area.subtree_prefix) or d.area.code.startswith(p) for p in prefixes)
    ]


def areas_for_filter(user, *, limit: int = 2000) -> list[tuple[str, str]]:
    """(code, name) of the areas down to communities that ``user`` may see, by code."""
    from geo.selectors import areas_visible

    return list(
        areas_visible(user)
        .filter(level__lte=AreaLevel.COMMUNITY)
        .order_by("code")
        .values_list("code", "name")[:limit]
    )


def dispatch_test(user):
    """A ``case -> bool``: may ``user`` dispatch this case now? One query, then none.

    Mirrors cases.services.acting_role for the dispatch transition (the roles
    of the transition table, the area subtree, the department of a role that
    acts for one, the level of an escalated case), so the console offers the
    dispatch form exactly where the service will take it. The service still
    decides when the form is sent.
    """
    from accounts.scopes import subtree_prefix

    roles_by_state = {
        state: workflow.transition_for(state, workflow.Action.DISPATCH).roles
        for state in DISPATCH_STATES
        if workflow.transition_for(state, workflow.Action.DISPATCH) is not None
    }
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return lambda case: False
    if user.is_superuser:
        return lambda case: case.state in roles_by_state
    all_roles = frozenset().union(*roles_by_state.values()) if roles_by_state else frozenset()
    memberships = [
        (role, needs_department, subtree_prefix(code, level), level, department_id)
        for role, needs_department, code, level, department_id in membership_rows(user)
        if role in all_roles
    ]

    def may_dispatch(case) -> bool:
        roles = roles_by_state.get(case.state)
        if not roles:
            return False
        for role, needs_department, prefix, level, department_id in memberships:
            if role not in roles or not case.area.code.startswith(prefix):
                continue
            if needs_department and department_id != case.department_id:
                continue
            if case.state == CaseState.ESCALATED and level > case.level:
                continue
            return True
        return False

    return may_dispatch


def export_max_rows() -> int:
    from django.conf import settings

    return int(settings.CIVICGRID.get("EXPORT_MAX_ROWS", EXPORT_MAX_ROWS))


# What an export reads of a case: never the reporter's contact, nor the free text.
EXPORT_FIELDS = (
    "number",
    "kind",
    "urgency",
    "state",
    "address",
    "source",
    "step_deadline",
    "step_yellow_at",
    "deadline",
    "overdue",
    "rework_count",
    "send_back_count",
    "closed_at",
    "created_at",
    "category__code",
    "category__name",
    "category__name_en",
    "area__code",
    "area__name",
    "area__name_en",
    "department__code",
    "department__name",
    "department__name_en",
)


def case_export_batches(*, queryset: QuerySet, limit: int, batch: int | None = None):
    """The cases of a :func:`case_list` queryset, newest first, in lists of ``batch``,
    at most ``limit`` in all.

    Keyset batches on (created_at, id), like :func:`case_page`: every batch is
    an index range however deep, with its category, area and department joined
    in the same query. Only EXPORT_FIELDS are read.
    """
    batch = batch or EXPORT_BATCH
    qs = queryset.only(*EXPORT_FIELDS).order_by("-created_at", "-id")
    sent, after = 0, None
    while sent < limit:
        page = qs
        if after is not None:
            created, pk = after
            page = page.filter(before_key(created, pk))
        rows = list(page[: min(batch, limit - sent)])
        if not rows:
            return
        yield rows
        sent += len(rows)
        after = (rows[-1].created_at, rows[-1].pk)
        if len(rows) < batch:
            return


# --- staff pages ---
# Reads behind the staff pages (cases/views.py): where a user holds which case
# role, the intake queue, the task lists, and what one case's page shows.

INTAKE_QUEUE_STATES = (CaseState.REPORTED, CaseState.VERIFYING, CaseState.ESCALATED)
INTAKE_QUEUE_ROLES = workflow.INTAKE | workflow.DISPATCHING
# Every staff role that takes part in the case loop: the table's and the reporters'
# (a resident acts on the public portal, not on these pages).
CASE_ROLES = (
    frozenset().union(workflow.REPORT_ROLES, *(t.roles for t in workflow.TRANSITIONS.values()))
    - workflow.RESIDENT
)
# Who may read a reporter's contact: the intake, and the department handling the case.
CONTACT_ROLES = workflow.INTAKE | workflow.DEPARTMENT
ON_SITE_ROLES = frozenset({"grid_worker", "grid_leader"})
TASK_LIMIT = 50
NOTICE_LIMIT = 50
_CASE_ROLES_ATTR = "_civicgrid_case_roles"


@dataclass(frozen=True)
class RoleHold:
    """One active membership of a case role: the subtree it reaches, its department."""

    role: str
    code: str
    prefix: str
    department_id: int | None


def case_role_holds(user) -> list[RoleHold]:
    """The user's active memberships of case roles. One query, cached on the user object."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    cached = getattr(user, _CASE_ROLES_ATTR, None)
    if cached is not None:
        return cached
    from accounts.scopes import subtree_prefix

    holds = [
        RoleHold(
            role=role,
            code=code,
            prefix=subtree_prefix(code, level),
            department_id=department_id,
        )
        for role, _needs, code, level, department_id in membership_rows(user)
        if role in CASE_ROLES
    ]
    setattr(user, _CASE_ROLES_ATTR, holds)
    return holds


def holds_case_role(user, roles) -> bool:
    """Whether ``user`` holds one of ``roles`` anywhere (superusers hold them all)."""
    if user is not None and user.is_authenticated and user.is_active and user.is_superuser:
        return True
    return any(hold.role in roles for hold in case_role_holds(user))


def _held_where(user, roles, *, for_department: bool = False) -> Q | None:
    """Cases inside the subtrees where ``user`` holds one of ``roles`` (for a department
    role, only its department's); ``Q()`` for a superuser, None where she holds none."""
    if user.is_superuser:
        return Q() if not for_department else Q(department__isnull=False)
    where = None
    for hold in case_role_holds(user):
        if hold.role not in roles:
            continue
        q = Q(area_code__startswith=hold.prefix)
        if for_department:
            if hold.department_id is None:
                continue
            q &= Q(department_id=hold.department_id)
        where = q if where is None else where | q
    return where


def _supervised() -> Case:
    """1 for a supervised case (督办), 0 otherwise: sorts supervised cases first."""
    return Case(
        When(supervise_count__gt=0, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )


def _queue_order(qs: QuerySet) -> QuerySet:
    """Supervised (督办) first, then the most urgent, then the oldest."""
    return qs.annotate(
        supervised=_supervised(),
        urgency_rank=Case(
            When(urgency=Urgency.EMERGENCY, then=Value(2)),
            When(urgency=Urgency.URGENT, then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        ),
    ).order_by("-supervised", "-urgency_rank", "created_at", "id")


def intake_queue(*, user, page: int = 1, per_page: int = DEFAULT_PAGE) -> tuple[list, bool]:
    """One page of the cases awaiting intake (reported, verifying, escalated) where ``user``
    holds an intake or dispatching role and may see them; and whether a next page exists.

    Supervised first, then by urgency, then oldest first. Pages are bounded
    (``per_page`` rows, no count query).
    """
    where = _held_where(user, INTAKE_QUEUE_ROLES)
    if where is None:
        return [], False
    qs = (
        CaseRecord.objects.restrict(user, "view")
        .filter(where, state__in=INTAKE_QUEUE_STATES)
        .select_related("category", "area")
    )
    start = (max(page, 1) - 1) * per_page
    rows = list(_queue_order(qs)[start : start + per_page + 1])
    return rows[:per_page], len(rows) > per_page


def duplicate_counts(cases, *, user, now: datetime | None = None) -> dict[int, int]:
    """For each case awaiting intake, how many open cases it may duplicate — as
    :func:`case_duplicates` finds them, counting only cases ``user`` may see. One query."""
    now = now or timezone.now()
    waiting = [c for c in cases if c.state in INTAKE_QUEUE_STATES]
    if not waiting:
        return {}
    where = Q()
    for case in waiting:
        category = case.category
        radius = float(category.duplicate_radius_m)
        dlat = radius / METRES_PER_DEGREE
        dlng = radius / (METRES_PER_DEGREE * max(math.cos(math.radians(case.lat)), 0.01))
        where |= Q(
            category_id=case.category_id,
            created_at__gte=now - timedelta(hours=category.duplicate_window_hours),
            lat__range=(case.lat - dlat, case.lat + dlat),
            lng__range=(case.lng - dlng, case.lng + dlng),
        )
    rows = list(
        CaseRecord.objects.restrict(user, "view")
        .filter(where, state__in=workflow.OPEN_STATES, created_at__lte=now)
        .values_list("pk", "category_id", "lat", "lng", "created_at")[:5000]
    )
    counts = {}
    for case in waiting:
        category = case.category
        since = now - timedelta(hours=category.duplicate_window_hours)
        found = sum(
            1
            for pk, category_id, lat, lng, created in rows
            if pk != case.pk
            and category_id == case.category_id
            and created >= since
            and distance_m(case.lat, case.lng, lat, lng) <= category.duplicate_radius_m
        )
        counts[case.pk] = min(found, MAX_DUPLICATES)
    return counts


@dataclass
class TaskList:
    """One list of the "my tasks" page: its key (what to do) and its cases."""

    key: str
    cases: list = field(default_factory=list)
    more: bool = False


def _task_rows(qs: QuerySet, limit: int) -> tuple[list, bool]:
    from django.db.models import F

    qs = qs.select_related("category", "area", "department").annotate(supervised=_supervised())
    due = F("step_deadline").asc(nulls_last=True)
    rows = list(qs.order_by("-supervised", due, "created_at", "id")[: limit + 1])
    return rows[:limit], len(rows) > limit


def my_task_lists(*, user, now: datetime | None = None, limit: int = TASK_LIMIT) -> list[TaskList]:
    """What waits for ``user``, by what she holds, each list supervised cases first:

    - ``verify`` / ``check``: the cases naming her as the grid worker to verify (核实)
      or check (核查) on site;
    - ``department``: her department's cases to sign for or handle (handlers, heads);
    - ``close``: checked cases to close (shift leads);
    - ``postpone``: pending requests for more time (shift leads, leaders);
    - ``supervise``: supervised or overdue open cases (leaders).

    Only cases she may see; each list at most ``limit`` cases (``more`` says there are
    others). One query per list shown.
    """
    now = now or timezone.now()
    visible = CaseRecord.objects.restrict(user, "view")
    lists: list[TaskList] = []

    def add(key: str, where: Q | None, **filters) -> None:
        if where is None:
            return
        rows, more = _task_rows(visible.filter(where, **filters), limit)
        lists.append(TaskList(key=key, cases=rows, more=more))

    on_site = Q(assignee=user) if holds_case_role(user, ON_SITE_ROLES) else None
    add("verify", on_site, state=CaseState.VERIFYING)
    add("check", on_site, state=CaseState.HANDLED)
    add(
        "department",
        _held_where(user, workflow.DEPARTMENT, for_department=True),
        state__in=(CaseState.DISPATCHED, CaseState.ACCEPTED),
    )
    add("close", _held_where(user, workflow.CLOSING), state=CaseState.CHECKING)
    add(
        "postpone",
        _held_where(user, workflow.APPROVING),
        state__in=(CaseState.DISPATCHED, CaseState.ACCEPTED),
        postpone_until__isnull=False,
    )
    leading = _held_where(user, {"leader"})
    if leading is not None:
        late = (
            Q(supervise_count__gt=0)
            | Q(step_overdue=True)
            | Q(state__in=LIT_STATES, step_deadline__lte=now)
            | Q(deadline__lte=now)
        )
        add("supervise", leading & late, state__in=workflow.OPEN_STATES)
    return lists


def unread_case_notices(*, user, limit: int = NOTICE_LIMIT) -> list:
    """The user's unread notices about cases she may still see, newest first."""
    from .models import CaseNotice

    return list(
        CaseNotice.objects.filter(
            recipient=user,
            read_at__isnull=True,
            case__in=CaseRecord.objects.restrict(user, "view").values("pk"),
        )
        .select_related("case")
        .order_by("-created_at", "-id")[:limit]
    )


def dispatch_departments(case: CaseRecord) -> list[Department]:
    """The active departments serving the case's area (a dispatch may choose them)."""
    return list(
        Department.objects.filter(is_active=True, area__code__in=ancestor_codes(case.area))
        .select_related("area")
        .order_by("area__level", "code")
    )


def visible_duplicates(case: CaseRecord, *, user, now: datetime | None = None) -> list:
    """:func:`case_duplicates`, keeping only the cases ``user`` may see."""
    found = case_duplicates(case, now=now)
    if not found:
        return []
    seen = set(
        CaseRecord.objects.restrict(user, "view")
        .filter(pk__in=[d.pk for d in found])
        .values_list("pk", flat=True)
    )
    return [d for d in found if d.pk in seen]


def role_names(codes) -> dict[str, object]:
    """Roles by code, for naming the role in a timeline entry."""
    from accounts.models import Role

    codes = {c for c in codes if c}
    if not codes:
        return {}
    return {role.code: role for role in Role.objects.filter(code__in=codes)}


def may_see_reporter_contact(*, case: CaseRecord, user) -> bool:
    """Whether ``user`` (who may see the case) holds an intake role over it, or a
    handling role for its department (cases.services.acting_role decides)."""
    from .services import CaseActionDenied, acting_role

    try:
        acting_role(actor=user, case=case, area=case.area, roles=CONTACT_ROLES)
    except CaseActionDenied:
        return False
    return True


# --- the public view of cases (portal, Open311) ------------------------------------
# Nothing here carries a person: no reporter, no staff names, no notes (a note may
# name someone), no photo that staff have not approved.

# Timeline actions a resident sees, with the public wording of each.
PUBLIC_STEPS: dict[str, object] = {
    "report": gettext_lazy("Report received"),
    workflow.Action.VERIFY_REQUEST: gettext_lazy("Being verified on site"),
    workflow.Action.FILE: gettext_lazy("Accepted as a case"),
    workflow.Action.DISPATCH: gettext_lazy("Sent to the responsible department"),
    workflow.Action.ACCEPT: gettext_lazy("The department is working on it"),
    workflow.Action.SEND_BACK: gettext_lazy("Being passed to the right department"),
    workflow.Action.HANDLE: gettext_lazy("The department reports it handled"),
    workflow.Action.HANDLE_ON_SPOT: gettext_lazy("Handled on the spot"),
    workflow.Action.CHECK_PASS: gettext_lazy("Checked on site: done"),
    workflow.Action.CHECK_FAIL: gettext_lazy("Checked on site: more work needed"),
    workflow.Action.ESCALATE: gettext_lazy("Passed to a higher level"),
    workflow.Action.SUSPEND: gettext_lazy("On hold"),
    workflow.Action.RESUME: gettext_lazy("Work resumed"),
    workflow.Action.POSTPONE_APPROVE: gettext_lazy("More time granted to the department"),
    workflow.Action.RETURN_VISIT: gettext_lazy("Waiting for your rating"),
    workflow.Action.RATE_SATISFIED: gettext_lazy("Closed: the reporter is satisfied"),
    workflow.Action.RATE_UNSATISFIED: gettext_lazy("The reporter is not satisfied: another round"),
    workflow.Action.CLOSE: gettext_lazy("Closed"),
    workflow.Action.VOID: gettext_lazy("Not taken up"),
    workflow.Action.MERGE: gettext_lazy("Merged with a report of the same problem"),
    workflow.Action.WITHDRAW: gettext_lazy("Withdrawn by the reporter"),
    workflow.Action.REOPEN: gettext_lazy("Reopened"),
}
DEFAULT_CLOSE_LABEL = gettext_lazy("Closed: no rating given, counted as satisfied")

# Cases closed this recently still show on the public map.
PUBLIC_RECENT_DAYS = 30
# A sensitive class's cases show on public maps snapped to a grid this coarse (degrees).
COARSE_STEP = 0.005


@dataclass(frozen=True)
class PublicEntry:
    at: datetime
    action: str
    label: str
    department: str = ""


def public_timeline(case: CaseRecord) -> list[PublicEntry]:
    """The steps a resident may see, oldest first: when, and what, in public words;
    a dispatch names the department (the agency responsible), never a person."""
    departments = dict(Department.objects.values_list("code", "name"))
    entries = []
    for event in CaseEvent.objects.filter(case=case).order_by("at", "id"):
        if event.action not in PUBLIC_STEPS:
            continue
        label = PUBLIC_STEPS[event.action]
        if event.action == workflow.Action.RATE_SATISFIED and event.role == "system":
            label = DEFAULT_CLOSE_LABEL
        department = ""
        if event.action == workflow.Action.DISPATCH:
            department = departments.get((event.data or {}).get("department"), "")
        entries.append(PublicEntry(event.at, event.action, str(label), department))
    return entries


def public_location(case: CaseRecord) -> tuple[float, float]:
    """Where the public sees the case: exact, or snapped to a coarse grid for a
    sensitive class."""
    if case.category.is_sensitive:
        return (
            round(round(case.lat / COARSE_STEP) * COARSE_STEP, 6),
            round(round(case.lng / COARSE_STEP) * COARSE_STEP, 6),
        )
    return case.lat, case.lng


def public_cases(*, now: datetime | None = None) -> QuerySet:
    """The cases the public may see: open ones and those closed in the last
    PUBLIC_RECENT_DAYS days (not voided, merged or withdrawn), of public classes."""
    now = now or timezone.now()
    recent = now - timedelta(days=PUBLIC_RECENT_DAYS)
    return (
        CaseRecord.objects.filter(category__is_public=True)
        .filter(
            Q(state__in=workflow.OPEN_STATES) | Q(state=CaseState.CLOSED, closed_at__gte=recent)
        )
        .select_related("category", "category__parent", "area", "department")
    )


def public_photos(case: CaseRecord) -> list[CasePhoto]:
    """The case's photos staff approved for the public."""
    return list(CasePhoto.objects.filter(case=case, is_public=True).order_by("created_at", "id"))


def case_by_token(token: str) -> CaseRecord | None:
    """The resident's case behind a private tracking link, or None."""
    token = (token or "").strip()
    if not token or len(token) > 64:
        return None
    return (
        CaseRecord.objects.select_related("category", "area", "department")
        .filter(public_token=token)
        .first()
    )
