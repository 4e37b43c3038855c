"""Reads of the area tree, for the API, the map page and other apps.

Functions that take a ``user`` answer only with what that user may see (the
areas where a role grants ``geo.view_area``, see :mod:`accounts.scopes`); an
area outside that scope is reported exactly like an absent one.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet, Sum
from django.db.models.functions import Substr
from django.utils.translation import gettext as _

from accounts.scopes import restrict_queryset, scope_prefixes, scope_test
from core.errors import DomainError, NotFound

from .models import Area, AreaLevel, Building, GridStaff

VIEW_AREA = "geo.view_area"
VIEW_GRIDSTAFF = "geo.view_gridstaff"


def parse_level(level: AreaLevel | int | str | None) -> AreaLevel | None:
    """``"grid"``, ``5`` or ``AreaLevel.GRID`` → ``AreaLevel.GRID``; None stays None."""
    if level is None or level == "":
        return None
    if isinstance(level, str) and not level.strip().isdigit():
        try:
            return AreaLevel.from_slug(level)
        except KeyError:
            pass
    else:
        try:
            return AreaLevel(int(level))
        except ValueError:
            pass
    message = _("Unknown level %(level)r: use one of %(levels)s.") % {
        "level": level,
        "levels": ", ".join(lv.slug for lv in AreaLevel),
    }
    raise DomainError(message, errors={"level": [message]})


def areas_visible(user, action: str = "view") -> QuerySet[Area]:
    """The areas ``user`` may ``action`` (``Area.objects.restrict(user, action)``)."""
    return Area.objects.restrict(user, action)


def area_get(*, code: str, user=None, action: str = "view") -> Area:
    """The area with ``code``; with ``user``, only if she may ``action`` it.

    Absent and out of scope raise the same NotFound (HTTP 404). Without a user
    (commands, services already past their checks) every area is reachable.
    """
    qs = Area.objects.all() if user is None else areas_visible(user, action)
    try:
        return qs.select_related("parent").get(code=str(code).strip())
    except Area.DoesNotExist:
        raise NotFound(
            _("No area has the code %(code)s.") % {"code": code}, errors={"code": [_("Not found.")]}
        ) from None


def area_frame_get(*, code: str, user) -> Area:
    """The area to narrow an answer to (``under=``): one ``user`` may see, or one above them.

    Above her scope an area only frames the answer, which still holds only
    what she may see: a grid worker's map asks for her grid's community and
    gets her grids. She knows those areas already (they are her grids'
    parent and ancestors); any other area answers NotFound, like an absent one.
    """
    not_found = NotFound(
        _("No area has the code %(code)s.") % {"code": code}, errors={"code": [_("Not found.")]}
    )
    area = Area.objects.select_related("parent").filter(code=str(code).strip()).first()
    if area is None:
        raise not_found
    prefixes = scope_prefixes(user, VIEW_AREA)
    if prefixes is None:
        return area
    own = area.subtree_prefix
    inside = any(area.code.startswith(p) for p in prefixes)
    above = any(p.startswith(own) for p in prefixes)
    if not (inside or above):
        raise not_found
    return area


def _resolve(area: Area | str | None, user=None) -> Area | None:
    if area is None or isinstance(area, Area):
        return area
    return area_get(code=area, user=user)


def area_list(
    *,
    user=None,
    level: AreaLevel | int | str | None = None,
    parent: Area | str | None = None,
    q: str | None = None,
) -> QuerySet[Area]:
    """Areas by code, without their boundaries (``has_boundary`` tells whether one exists).

    ``user``: only the areas she may see. ``parent`` (an area or a code)
    narrows to its children; ``q`` matches a code prefix or a part of the
    Chinese or English name.
    """
    base = Area.objects.all() if user is None else areas_visible(user)
    qs = (
        base.select_related("parent")
        .defer("geometry", "parent__geometry")
        .annotate(
            has_boundary=ExpressionWrapper(Q(geometry__isnull=False), output_field=BooleanField())
        )
        .order_by("code")
    )
    level = parse_level(level)
    if level is not None:
        qs = qs.filter(level=level)
    if isinstance(parent, Area):
        qs = qs.filter(parent=parent)
    elif parent is not None:
        qs = qs.filter(parent__code=str(parent).strip())
    q = (q or "").strip()
    if q:
        match = Q(name__icontains=q) | Q(name_en__icontains=q)
        if q.isdigit():
            match |= Q(code__startswith=q)
        qs = qs.filter(match)
    return qs


def area_ancestors(area: Area, *, user=None) -> list[Area]:
    """The chain above ``area``, from the top of the tree down to its parent.

    With ``user``, only the links she may see (those inside her scope).
    """
    # Ancestors' codes are prefixes of the area's code, so one query fetches
    # them all; the chain itself follows parent ids, the source of truth.
    prefixes = {area.code[:n] for n in (4, 6, 9, 12) if n < len(area.code)}
    prefixes |= {p + "00" for p in prefixes if len(p) == 4}
    found = {a.id: a for a in Area.objects.filter(code__in=prefixes).defer("geometry").order_by()}
    chain: list[Area] = []
    parent_id = area.parent_id
    seen = set()
    while parent_id is not None and parent_id not in seen:
        seen.add(parent_id)
        parent = found.get(parent_id)
        if parent is None:
            parent = Area.objects.defer("geometry").get(pk=parent_id)
        chain.append(parent)
        parent_id = parent.parent_id
    chain.reverse()
    if user is not None:
        inside = scope_test(user, VIEW_AREA)
        chain = [a for a in chain if inside(a.code)]
    return chain


def area_children(area: Area, *, user=None) -> QuerySet[Area]:
    base = Area.objects.all() if user is None else areas_visible(user)
    return base.filter(parent=area).defer("geometry").order_by("code")


def area_staff(area: Area, *, user=None) -> list[GridStaff]:
    """The area's grid staff; with ``user``, only if her role lets her see grid staff there."""
    qs = GridStaff.objects.filter(area=area)
    if user is not None:
        qs = restrict_queryset(qs, user, "view")
    return list(qs.select_related("user").order_by("role", "user__username"))


def _tops(qs: QuerySet[Area]) -> QuerySet[Area]:
    """Areas of ``qs`` whose parent is not in ``qs``: the tree roots, or the tops of a scope."""
    return qs.filter(Q(parent__isnull=True) | ~Q(parent__in=qs.values("id")))


def area_tree(*, root: Area | str | None = None, depth: int | None = None, user=None) -> list[dict]:
    """Nested ``{code, name, name_en, level, children}`` from ``root`` (or from every
    area without a parent) down ``depth`` levels (all when None), built from one
    query without a query per node.

    With ``user`` only the areas she may see: ``root`` must be one of them
    (NotFound otherwise), and without a root the tree starts at the tops of her
    scope (a grid worker's tree is her grids).
    """
    root = _resolve(root, user)
    base_qs = Area.objects.all() if user is None else areas_visible(user)
    everything = user is None or scope_prefixes(user, VIEW_AREA) is None
    if root is not None:
        qs = base_qs.subtree(root)
        deepest = None if depth is None else root.level + max(depth, 0)
    else:
        qs = base_qs
        deepest = None
        if depth is not None:
            tops = base_qs.filter(parent__isnull=True) if everything else _tops(base_qs)
            levels = list(tops.order_by().values_list("level", flat=True).distinct())
            # Roots may sit at different levels (a grid here, a community there):
            # a coarse cut by level here, the exact depth below each root in the loop.
            deepest = max(levels) + max(depth, 0) if levels else None
    if deepest is not None:
        qs = qs.filter(level__lte=deepest)
    nodes: dict[int, dict] = {}
    depths: dict[int, int] = {}
    seen: set[int] = set()
    roots: list[dict] = []
    # Parents come before their children because a child's level is higher.
    for pk, parent_id, code, name, name_en, level in qs.order_by("level", "code").values_list(
        "id", "parent_id", "code", "name", "name_en", "level"
    ):
        if root is not None:
            is_root = pk == root.pk
        else:
            # Everything shown: the tree's own roots. A scope: whatever has no
            # visible parent starts a tree of its own.
            is_root = parent_id is None if everything else parent_id not in seen
        seen.add(pk)
        node = {
            "code": code,
            "name": name,
            "name_en": name_en,
            "level": AreaLevel(level).slug,
            "children": [],
        }
        if is_root:
            depths[pk] = 0
            roots.append(node)
        elif parent_id in nodes:
            depths[pk] = depths[parent_id] + 1
            if depth is not None and depths[pk] > max(depth, 0):
                continue
            nodes[parent_id]["children"].append(node)
        else:
            continue
        nodes[pk] = node
    return roots


def area_children_count(area: Area, *, user=None) -> int:
    return area_children(area, user=user).count()


def area_counts_by_level(*, user=None) -> dict[str, int]:
    base = Area.objects.all() if user is None else areas_visible(user)
    rows = base.values("level").annotate(n=Count("id")).order_by("level")
    return {AreaLevel(r["level"]).slug: r["n"] for r in rows}


def topology_problems(*, user, root: Area | None = None, tolerance_m2: float = 1.0) -> list:
    """Topology problems the user may see: those whose parent and areas are all in her scope.

    ``root`` comes from :func:`area_frame_get`: one she may see, or one above
    her scope. A root she may see is checked whole; otherwise each top of her
    scope (under the root, if any) is checked, so what lies outside it is not
    even read. A city-wide reader without a root gets the whole tree.
    """
    from .topology import check_topology

    everywhere = scope_prefixes(user, VIEW_AREA) is None
    inside = scope_test(user, VIEW_AREA)
    if root is not None and inside(root.code):
        problems = check_topology(root=root, tolerance_m2=tolerance_m2)
    elif root is None and everywhere:
        problems = check_topology(tolerance_m2=tolerance_m2)
    else:
        tops = _tops(areas_visible(user))
        if root is not None:
            tops = tops.subtree(root)
        problems = []
        for top in tops.defer("geometry").order_by("code"):
            problems += check_topology(root=top, tolerance_m2=tolerance_m2)
    # Siblings at the top of the tree have no parent: only a city-wide reader sees them.
    return [
        p
        for p in problems
        if (inside(p.parent_code) if p.parent_code is not None else everywhere)
        and all(inside(code) for code in p.codes)
    ]


def area_roots(*, user) -> list[Area]:
    """The highest areas ``user`` may see: the tree's roots, or the tops of her scope."""
    visible = areas_visible(user).defer("geometry")
    if scope_prefixes(user, VIEW_AREA) is None:  # sees everything
        return list(visible.filter(parent__isnull=True).order_by("code"))
    return list(_tops(visible).order_by("code"))


@dataclass
class Totals:
    households: int = 0
    population: int = 0
    grids: int = 0


def area_grid_totals(*, user, areas: list[Area]) -> dict[str, Totals]:
    """Households, people and grid count under each area, summed from the grids
    ``user`` may see.

    One grouped query per code length (a grid's code starts with the codes of
    everything above it), so a district of fifty thousand grids costs the
    database a range scan, not the caller fifty thousand rows.
    """
    totals = {a.code: Totals() for a in areas}
    by_prefix: dict[int, dict[str, str]] = {}
    for a in areas:
        if a.level == AreaLevel.GRID:
            totals[a.code] = Totals(a.households, a.population, 1)
        else:
            by_prefix.setdefault(len(a.subtree_prefix), {})[a.subtree_prefix] = a.code
    grids = areas_visible(user).grids()
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


def area_card_people(*, area: Area, user) -> tuple[list[GridStaff], list[Building]]:
    """The staff and buildings an area's card shows, where ``user``'s role lets her
    see them (which need not be everywhere she may see the areas).

    A grid shows its own staff (leader first) and buildings; a community shows
    its grid leaders, each once (one person usually leads all its grids).
    """
    staff_visible = restrict_queryset(GridStaff.objects.select_related("user"), user, "view")
    staff: list[GridStaff] = []
    buildings: list[Building] = []
    if area.level == AreaLevel.GRID:
        staff = list(staff_visible.filter(area=area).order_by("-role", "user__username"))
        buildings = list(Building.objects.restrict(user, "view").filter(grid=area).order_by("name"))
    elif area.level == AreaLevel.COMMUNITY:
        seen = set()
        for s in staff_visible.filter(area__parent=area, role=GridStaff.Role.LEADER).order_by(
            "user__username"
        ):
            if s.user_id not in seen:
                seen.add(s.user_id)
                staff.append(s)
    return staff, buildings
