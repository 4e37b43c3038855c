"""The map page and the server-rendered pieces of its sidebar (htmx partials)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.scopes import area_in_scope
from core.errors import NotFound

from .models import Area, AreaLevel
from .selectors import (
    Totals,
    area_ancestors,
    area_card_people,
    area_children,
    area_get,
    area_grid_totals,
    area_roots,
    areas_visible,
)

PARTITION_AREA = "geo.partition_area"

# Stands in for an area code in URL templates handed to the page's script.
CODE_PLACEHOLDER = "00000000000000"

CHILD_HEADINGS = {
    AreaLevel.CITY: gettext_lazy("Cities"),
    AreaLevel.DISTRICT: gettext_lazy("Districts"),
    AreaLevel.STREET: gettext_lazy("Streets"),
    AreaLevel.COMMUNITY: gettext_lazy("Communities"),
    AreaLevel.GRID: gettext_lazy("Grids"),
}


@dataclass
class Row:
    """An area in a list, with the totals of the grids below it."""

    area: Area
    totals: Totals
    bar: int = 0  # households as a percentage of the largest sibling's


def _area_or_404(user, code: str) -> Area:
    # Out of scope answers like absent: a 404 either way.
    try:
        return area_get(code=code, user=user)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _rows(user, areas: list[Area]) -> list[Row]:
    totals = area_grid_totals(user=user, areas=areas)
    rows = [Row(area=a, totals=totals[a.code]) for a in areas]
    top = max((r.totals.households for r in rows), default=0)
    for r in rows:
        r.bar = round(100 * r.totals.households / top) if top else 0
    return rows


def _card_context(user, area: Area) -> dict:
    totals = area_grid_totals(user=user, areas=[area])[area.code]
    staff, buildings = area_card_people(area=area, user=user)
    return {
        "area": area,
        "totals": totals,
        "staff": staff,
        "buildings": buildings,
        "area_km2": (area.area_m2 or 0) / 1e6,
        "is_grid": area.level == AreaLevel.GRID,
    }


def _panel_context(request: HttpRequest, area: Area | None) -> dict:
    user = request.user
    if area is None:
        roots = area_roots(user=user)
        return {
            "area": None,
            "ancestors": [],
            "rows": _rows(user, roots),
            "rows_heading": _("Areas"),
        }
    children = list(area_children(area, user=user))
    child_level = AreaLevel(area.level + 1) if area.level < AreaLevel.GRID else None
    ancestors = area_ancestors(area)
    # Above a user's scope the path is shown but cannot be opened.
    openable = set(
        areas_visible(user)
        .filter(code__in=[a.code for a in ancestors])
        .values_list("code", flat=True)
    )
    context = {
        **_card_context(user, area),
        "ancestors": [(a, a.code in openable) for a in ancestors],
        "rows": _rows(user, children),
        "rows_heading": CHILD_HEADINGS[child_level] if child_level else "",
        "can_partition": area.level == AreaLevel.COMMUNITY
        and area_in_scope(user, PARTITION_AREA, area.code),
    }
    return context


def _map_config(request: HttpRequest) -> dict:
    def url_template(name: str) -> str:
        return reverse(name, args=[CODE_PLACEHOLDER])

    return {
        "placeholder": CODE_PLACEHOLDER,
        "urls": {
            "list": reverse("areas-list"),
            "geojson": reverse("areas-geojson"),
            "topology": reverse("topology"),
            "partition": url_template("areas-partition"),
            "panel": url_template("geo:area-panel"),
            "rootPanel": reverse("geo:root-panel"),
            "card": url_template("geo:area-card"),
            "map": reverse("geo:map"),
        },
        "tiles": {
            "url": settings.CIVICGRID["MAP_TILE_URL"],
            "attribution": settings.CIVICGRID["MAP_TILE_ATTRIBUTION"],
        },
        "levels": {level.slug: str(level.label) for level in AreaLevel},
        "isStaff": bool(request.user.is_staff),
        "strings": {
            "searchEmpty": _("No area matches."),
            "searchFailed": _("Search failed. Try again."),
            "loadFailed": _("Could not load the map data."),
            "householdsCount": _("%(count)s households"),
            "peopleCount": _("%(count)s people"),
            "topologyNone": _("No topology problems here."),
            "topologyCount": _("Topology problems: %(count)s"),
            "overlap": _("Overlap"),
            "gap": _("Gap"),
            "outside": _("Outside parent"),
            "areaM2": _("%(area)s m²"),
            "codes": _("Areas"),
            "previewing": _("Computing a preview…"),
            "previewReady": _(
                "Preview of %(count)s grids. Accept it to replace the current grids."
            ),
            "accepting": _("Writing the new grids…"),
            "accepted": _("The new grids are in place."),
            "partitionFailed": _("The partition was refused."),
            "spreadMin": _("min"),
            "spreadMedian": _("median"),
            "spreadMax": _("max"),
            "spreadTotal": _("total"),
        },
    }


@login_required
def map_page(request: HttpRequest) -> HttpResponse:
    """The map with the area tree; ``?area=CODE`` opens at that area, ``?area=`` at the top."""
    code = request.GET.get("area", "").strip()
    area = _area_or_404(request.user, code) if code else None
    if "area" not in request.GET:
        roots = area_roots(user=request.user)
        # One root (a single district, say): start inside it rather than above it.
        if len(roots) == 1:
            area = roots[0]
    return render(
        request,
        "geo/map.html",
        {
            **_panel_context(request, area),
            "map_config": _map_config(request),
            "initial_code": area.code if area else "",
        },
    )


@login_required
def area_panel(request: HttpRequest, code: str | None = None) -> HttpResponse:
    """The sidebar for one area (breadcrumb, card, children), or for the roots."""
    area = _area_or_404(request.user, code) if code else None
    return render(request, "geo/_panel.html", _panel_context(request, area))


@login_required
def area_card(request: HttpRequest, code: str) -> HttpResponse:
    """An area's card: code, names, staff, households, people, area."""
    area = _area_or_404(request.user, code)
    return render(request, "geo/_card.html", _card_context(request.user, area))
