"""The map page and the server-rendered pieces of its sidebar (htmx partials)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.db.models.functions import Substr
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.scopes import area_in_scope, scope_prefixes

from .models import Area, AreaLevel, Building, GridStaff
from .selectors import area_ancestors

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
class Totals:
    households: int = 0
    population: int = 0
    grids: int = 0


@dataclass
class Row:
    """An area in a list, with the totals of the grids below it."""

    area: Area
    totals: Totals
    bar: int = 0  # households as a percentage of the largest sibling's


def _visible(user):
    """The areas the user may see: the subtrees where a role lets them view areas.

    Without their boundaries: the page's script draws those from the GeoJSON API.
    """
    return Area.objects.restrict(user, "view").defer("geometry")


def _area_or_404(user, code: str) -> Area:
    # Out of scope answers like absent: a 404 either way.
    area = _visible(user).select_related("parent").filter(code=code).first()
    if area is None:
        raise Http404(_("No area has the code %(code)s.") % {"code": code})
    return area


def _roots(user) -> list[Area]:
    """The highest areas the user may see: the tree's roots, or the tops of their scope."""
    visible = _visible(user)
    if scope_prefixes(user, "geo.view_area") is None:  # sees everything
        return list(visible.filter(parent__isnull=True).order_by("code"))
    top = visible.filter(Q(parent__isnull=True) | ~Q(parent__in=visible.values("id")))
    return list(top.order_by("code"))


def _grid_totals(user, areas: list[Area]) -> dict[str, Totals]:
    """Households, people and grid count under each area, summed from its grids.

    One grouped query per code length (a grid's code starts with the codes of
    everything above it), so a district of fifty thousand grids costs the
    database a range scan, not the page fifty thousand rows.
    """
    totals = {a.code: Totals() for a in areas}
    by_prefix: dict[int, dict[str, str]] = {}
    for a in areas:
        if a.level == AreaLevel.GRID:
            totals[a.code] = Totals(a.households, a.population, 1)
        else:
            # A city's code is its 4-digit prefix padded with 00.
            prefix = a.code[:4] if a.level == AreaLevel.CITY else a.code
            by_prefix.setdefault(len(prefix), {})[prefix] = a.code
    grids = _visible(user).grids()
    for length, codes in by_prefix.items():
        rows = (
            grids.filter(code__startswith=_common_prefix(list(codes)))
            .annotate(prefix=Substr("code", 1, length))
            .filter(prefix__in=list(codes))
            .values("prefix")
            .annotate(households_sum=Sum("households"), people_sum=Sum("population"), n=Count("id"))
            .order_by()
        )
        for row in rows:
            totals[codes[row["prefix"]]] = Totals(
                row["households_sum"] or 0, row["people_sum"] or 0, row["n"]
            )
    return totals


def _common_prefix(codes: list[str]) -> str:
    first, last = min(codes), max(codes)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _rows(user, areas: list[Area]) -> list[Row]:
    totals = _grid_totals(user, areas)
    rows = [Row(area=a, totals=totals[a.code]) for a in areas]
    top = max((r.totals.households for r in rows), default=0)
    for r in rows:
        r.bar = round(100 * r.totals.households / top) if top else 0
    return rows


def _card_context(user, area: Area) -> dict:
    totals = _grid_totals(user, [area])[area.code]
    # Staff and buildings are shown where the user's role lets her see them,
    # which need not be everywhere she may see the areas.
    staff_visible = GridStaff.objects.restrict(user, "view")
    staff = []
    if area.level == AreaLevel.GRID:
        staff = list(
            staff_visible.filter(area=area)
            .select_related("user")
            .order_by("-role", "user__username")  # leader first, then workers
        )
    elif area.level == AreaLevel.COMMUNITY:
        # A community's grid leaders (one person usually leads all its grids).
        seen = set()
        for s in (
            staff_visible.filter(area__parent=area, role=GridStaff.Role.LEADER)
            .select_related("user")
            .order_by("user__username")
        ):
            if s.user_id not in seen:
                seen.add(s.user_id)
                staff.append(s)
    buildings = []
    if area.level == AreaLevel.GRID:
        buildings = list(Building.objects.restrict(user, "view").filter(grid=area).order_by("name"))
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
        roots = _roots(user)
        return {
            "area": None,
            "ancestors": [],
            "rows": _rows(user, roots),
            "rows_heading": _("Areas"),
        }
    children = list(_visible(user).filter(parent=area).order_by("code"))
    child_level = AreaLevel(area.level + 1) if area.level < AreaLevel.GRID else None
    ancestors = area_ancestors(area)
    # Above a user's scope the path is shown but cannot be opened.
    openable = set(
        _visible(user).filter(code__in=[a.code for a in ancestors]).values_list("code", flat=True)
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
        roots = _roots(request.user)
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
