"""The dispatch console and the case search, with their exports (staff pages).

- ``console_page``: the open cases of the user's scope, grouped — supervised
  (督办) first, then red, yellow and green, then those without a running
  clock — with a map, filters that reload the list through htmx, and, where
  the user may dispatch a filed or escalated case, an inline dispatch form
  with the routed department chosen. ``?group=…&cursor=…`` answers the next
  page of one group (keyset pages of ``selectors.case_page``).
- ``console_geojson``: the same cases inside the map's ``bbox`` as GeoJSON
  points, clustered on the server past ``CIVICGRID["CONSOLE_MAP_MAX_POINTS"]``.
- ``search_page``: every state, every filter of the API list, keyset pages,
  and the links that export what the filter shows.
- ``search_export``: that list as CSV or XLSX (cases.export); another
  format is a 404.

All reads go through cases.selectors, so a case outside the user's scope is
never listed, mapped or exported; a bad filter answers 400 with the errors
beside their fields. The dispatch form posts to ``cases:act``, which decides.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Min
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.scopes import has_permission
from core.errors import DomainError
from geo.selectors import areas_visible

from . import export, selectors, workflow
from .models import Case, CaseState, Kind, Source

VIEW_CASE = "cases.view_case"
# Stands in for a case number in URL templates handed to the map script.
NUMBER_PLACEHOLDER = "E0000000000000000"
# Query parameters that are not filters (kept out of export links and the map's requests).
NOT_FILTERS = {"cursor", "limit", "group", "bbox"}
MULTI = ("state", "light", "source")
SINGLE = ("kind", "category", "area", "department", "created_from", "created_to")
FORM_FIELDS = frozenset(MULTI + SINGLE)

FIELD_LABELS = {
    "state": gettext_lazy("State"),
    "light": gettext_lazy("Light"),
    "source": gettext_lazy("Source"),
    "kind": gettext_lazy("Kind"),
    "category": gettext_lazy("Class"),
    "area": gettext_lazy("Area (code)"),
    "department": gettext_lazy("Department"),
    "created_from": gettext_lazy("Reported from"),
    "created_to": gettext_lazy("Reported to"),
}

GROUP_TITLES = {
    "supervised": gettext_lazy("Supervised"),
    "red": pgettext_lazy("console group", "Overdue"),
    "yellow": pgettext_lazy("console group", "Due soon"),
    "green": pgettext_lazy("console group", "On time"),
    "unlit": pgettext_lazy("console group", "No running time limit"),
}
# The same words as the case pages' light badge.
LIGHT_LABELS = {
    "red": pgettext_lazy("light", "overdue"),
    "yellow": pgettext_lazy("light", "due soon"),
    "green": pgettext_lazy("light", "on time"),
}


def _require_case_reader(user) -> None:
    """403 for a signed-in person who may read no case anywhere."""
    if not has_permission(user, VIEW_CASE):
        raise PermissionDenied(_("You may not read cases."))


def _values(params, name: str) -> list[str]:
    return [v.strip() for raw in params.getlist(name) for v in raw.split(",") if v.strip()]


def filter_query(params) -> str:
    """The filters of a query string, without paging: for export links and the map."""
    pairs = [(k, v) for k, values in params.lists() if k not in NOT_FILTERS for v in values if v]
    return urlencode(pairs)


def _labelled(majors: list) -> list:
    """Give each class of the tree a ``label`` in the language of the page."""
    english = (translation.get_language() or "").startswith("en")
    for major in majors:
        for category in (major, *major.minors):
            category.label = (english and category.name_en) or category.name
    return majors


def _filter_context(request: HttpRequest, *, states: list[str], errors: dict) -> dict:
    """What the filter form shows: the values as typed (bad ones too), choices, errors."""
    params = request.GET
    user = request.user
    chosen = {name: _values(params, name) for name in MULTI}
    typed = {name: (params.get(name) or "").strip() for name in SINGLE}
    return {
        "chosen": chosen,
        "typed": typed,
        "errors": errors,
        # Errors of what the form has no field for (a cursor, a limit, a group, a box).
        "other_errors": [m for k, ms in errors.items() if k not in FORM_FIELDS for m in ms],
        # Every error with the name of its field, for a list swapped in without its form.
        "error_items": [
            (FIELD_LABELS.get(k, k), " ".join(str(m) for m in ms)) for k, ms in errors.items()
        ],
        "state_choices": [(s, CaseState(s).label) for s in states],
        "kind_choices": Kind.choices,
        "light_choices": [(light, LIGHT_LABELS[light]) for light in selectors.LIGHTS[::-1]],
        "source_choices": Source.choices,
        "categories": _labelled(selectors.category_tree(include_inactive=True)),
        "departments": selectors.departments_for_filter(user),
        "areas": selectors.areas_for_filter(user),
        "filter_query": filter_query(params),
    }


def _label_row(case: Case, *, now) -> None:
    """The row's light, and its class and grid named in the language of the page."""
    english = (translation.get_language() or "").startswith("en")
    case.light = selectors.case_light(case, now=now)
    case.light_label = LIGHT_LABELS.get(case.light, "")
    case.category_label = (english and case.category.name_en) or case.category.name
    case.area_label = (english and case.area.name_en) or case.area.name
    if case.department_id:
        case.department_label = (english and case.department.name_en) or case.department.name
    else:
        case.department_label = ""


def _annotate_rows(rows: list[Case], *, user, now, state: dict) -> list[Case]:
    """Give each case its light and, where the user may dispatch it, its dispatch form.

    ``state`` carries what one request loads once (the dispatch test, the
    active departments), so more groups cost no more queries.
    """
    if "may_dispatch" not in state:
        state["may_dispatch"] = selectors.dispatch_test(user)
    may_dispatch = state["may_dispatch"]
    dispatchable = [c for c in rows if c.state in selectors.DISPATCH_STATES and may_dispatch(c)]
    routed = selectors.route_departments(dispatchable) if dispatchable else {}
    if dispatchable and "departments" not in state:
        state["departments"] = selectors.active_departments()
    for case in rows:
        _label_row(case, now=now)
        case.dispatch = None
    for case in dispatchable:
        choices = selectors.departments_serving(case.area, state["departments"])
        routed_department = routed.get(case.pk)
        if routed_department not in choices:
            # A rule naming a department that does not serve the area chooses nothing.
            routed_department = None
        case.dispatch = {
            "departments": choices,
            "routed": routed_department,
            "routed_id": routed_department.pk if routed_department else None,
        }
    return rows


def _next_url(request: HttpRequest) -> str:
    query = filter_query(request.GET)
    return reverse("cases:console") + (f"?{query}" if query else "")


def _group_page(request, *, base, group: str, cursor: str | None, now, state: dict) -> dict:
    queryset = base.filter(selectors.console_group_q(group, now))
    rows, next_cursor = selectors.case_page(
        queryset=queryset, cursor=cursor, limit=selectors.CONSOLE_PAGE
    )
    _annotate_rows(rows, user=request.user, now=now, state=state)
    more = None
    if next_cursor:
        query = request.GET.copy()
        query["group"] = group
        query["cursor"] = next_cursor
        more = reverse("cases:console") + "?" + query.urlencode()
    return {"key": group, "title": GROUP_TITLES[group], "rows": rows, "more": more}


def _scope_bounds(user) -> list[float] | None:
    """[west, south, east, north] of the areas the user may see: where the map opens."""
    box = (
        areas_visible(user)
        .filter(min_lat__isnull=False)
        .aggregate(w=Min("min_lng"), s=Min("min_lat"), e=Max("max_lng"), n=Max("max_lat"))
    )
    if box["w"] is None:
        return None
    return [box["w"], box["s"], box["e"], box["n"]]


def _map_config(request: HttpRequest) -> dict:
    return {
        "geojson": reverse("cases:console-geojson"),
        "detail": reverse("cases:detail", args=[NUMBER_PLACEHOLDER]),
        "placeholder": NUMBER_PLACEHOLDER,
        "bounds": _scope_bounds(request.user),
        "tiles": {
            "url": settings.CIVICGRID["MAP_TILE_URL"],
            "attribution": settings.CIVICGRID["MAP_TILE_ATTRIBUTION"],
        },
        "language": request.LANGUAGE_CODE if hasattr(request, "LANGUAGE_CODE") else "",
        "states": {s: str(label) for s, label in CaseState.choices},
        "lights": {k: str(v) for k, v in LIGHT_LABELS.items()},
        "strings": {
            "loadFailed": _("Could not load the cases for the map."),
            "clustered": _(
                "Too many cases to show one by one: zoom in. Each circle counts the cases near it."
            ),
            "shown": _("%(count)s cases in view"),
            "none": _("No case in view."),
            "open": _("Open the case"),
            "supervised": _("Supervised"),
            "cases": _("%(count)s cases"),
            "zoomIn": _("Zoom in"),
        },
    }


@login_required
@never_cache
@require_GET
def console_page(request: HttpRequest) -> HttpResponse:
    """The dispatch console; with htmx, only the list (or one group's next page)."""
    user = request.user
    _require_case_reader(user)
    now = timezone.now()
    open_states = sorted(workflow.OPEN_STATES, key=CaseState.values.index)
    htmx = getattr(request, "htmx", None)
    group = request.GET.get("group", "").strip()
    try:
        filters = selectors.console_filters(request.GET)
        base = selectors.case_list(user=user, filters=filters, now=now)
        if group:
            if group not in selectors.CONSOLE_GROUPS:
                raise DomainError(_("Unknown group."), errors={"group": [_("Unknown group.")]})
            page = _group_page(
                request,
                base=base,
                group=group,
                cursor=request.GET.get("cursor") or None,
                now=now,
                state={},
            )
            return render(
                request,
                "cases/console_rows.html",
                {"group": page, "next_url": _next_url(request)},
            )
        counts = selectors.console_group_counts(queryset=base, now=now)
        shared: dict = {}
        groups = [
            {
                **_group_page(request, base=base, group=g, cursor=None, now=now, state=shared),
                "count": counts[g],
            }
            if counts[g]
            else {"key": g, "title": GROUP_TITLES[g], "rows": [], "more": None, "count": 0}
            for g in selectors.CONSOLE_GROUPS
        ]
        errors: dict = {}
        status = 200
    except DomainError as error:
        groups, counts, errors, status = [], {}, error.errors, 400
    context = {
        **_filter_context(request, states=open_states, errors=errors),
        "groups": groups,
        "total": sum(counts.values()) if counts else 0,
        "next_url": _next_url(request),
    }
    if htmx and htmx.target == "console-list":
        return render(request, "cases/console_list.html", context, status=status)
    context["map_config"] = _map_config(request)
    return render(request, "cases/console.html", context, status=status)


def _json_error(error: DomainError) -> JsonResponse:
    body = {"detail": error.message, "code": error.code, "errors": error.errors}
    return JsonResponse(body, status=error.status_code)


@login_required
@never_cache
@require_GET
def console_geojson(request: HttpRequest) -> JsonResponse:
    """The console's open cases inside ``?bbox=w,s,e,n`` (and its filters) as GeoJSON.

    At most ``CIVICGRID["CONSOLE_MAP_MAX_POINTS"]`` features: one per case up
    to that many, else server-side clusters (``properties.kind == "cluster"``).
    """
    _require_case_reader(request.user)
    now = timezone.now()
    try:
        filters = selectors.console_filters(request.GET)
        bbox = selectors.parse_bbox(request.GET.get("bbox"))
    except DomainError as error:
        return _json_error(error)
    queryset = selectors.case_list(user=request.user, filters=filters, now=now)
    body = selectors.case_map_features(queryset=queryset, bbox=bbox, now=now)
    body["limit"] = selectors.map_max_points()
    return JsonResponse(body, json_dumps_params={"ensure_ascii": False})


@login_required
@never_cache
@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    """Every case the user may see, in every state, filtered like the API list."""
    user = request.user
    _require_case_reader(user)
    now = timezone.now()
    rows, next_cursor, errors, status = [], None, {}, 200
    try:
        filters = selectors.parse_case_filters(request.GET)
        limit = selectors.page_limit(request.GET.get("limit"))
        queryset = selectors.case_list(user=user, filters=filters, now=now)
        rows, next_cursor = selectors.case_page(
            queryset=queryset, cursor=request.GET.get("cursor") or None, limit=limit
        )
    except DomainError as error:
        errors, status = error.errors, 400
    for case in rows:
        _label_row(case, now=now)
    next_url = None
    if next_cursor:
        query = request.GET.copy()
        query["cursor"] = next_cursor
        next_url = "?" + query.urlencode()
    context = {
        **_filter_context(request, states=list(CaseState.values), errors=errors),
        "rows": rows,
        "next_url": next_url,
        "paged": bool(request.GET.get("cursor")),
        "first_url": "?" + filter_query(request.GET) if request.GET else "?",
    }
    return render(request, "cases/search.html", context, status=status)


@login_required
@never_cache
@require_GET
def search_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """What the search shows, as ``export.csv`` or ``export.xlsx``; audited."""
    if fmt not in export.FORMATS:
        raise Http404("unknown export format")
    user = request.user
    _require_case_reader(user)
    try:
        filters = selectors.parse_case_filters(request.GET)
    except DomainError as error:
        context = {
            **_filter_context(request, states=list(CaseState.values), errors=error.errors),
            "rows": [],
            "next_url": None,
            "paged": False,
            "first_url": "?",
        }
        return render(request, "cases/search.html", context, status=400)
    return export.case_export_response(user=user, fmt=fmt, filters=filters)
