"""Reads of the area tree, for the API, the map page and other apps."""

from __future__ import annotations

from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet
from django.utils.translation import gettext as _

from core.errors import DomainError, NotFound

from .models import Area, AreaLevel, GridStaff


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


def area_get(*, code: str) -> Area:
    try:
        return Area.objects.select_related("parent").get(code=str(code).strip())
    except Area.DoesNotExist:
        raise NotFound(
            _("No area has the code %(code)s.") % {"code": code}, errors={"code": [_("Not found.")]}
        ) from None


def _resolve(area: Area | str | None) -> Area | None:
    if area is None or isinstance(area, Area):
        return area
    return area_get(code=area)


def area_list(
    *,
    level: AreaLevel | int | str | None = None,
    parent: Area | str | None = None,
    q: str | None = None,
) -> QuerySet[Area]:
    """Areas by code, without their boundaries (``has_boundary`` tells whether one exists).

    ``parent`` (an area or a code) narrows to its children; ``q`` matches a code
    prefix or a part of the Chinese or English name.
    """
    qs = (
        Area.objects.select_related("parent")
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


def area_ancestors(area: Area) -> list[Area]:
    """The chain above ``area``, from the top of the tree down to its parent."""
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
    return chain


def area_children(area: Area) -> QuerySet[Area]:
    return area.children.defer("geometry").order_by("code")


def area_staff(area: Area) -> list[GridStaff]:
    return list(area.staff.select_related("user").order_by("role", "user__username"))


def area_tree(*, root: Area | str | None = None, depth: int | None = None) -> list[dict]:
    """Nested ``{code, name, name_en, level, children}`` from ``root`` (or from every
    area without a parent) down ``depth`` levels (all when None), built from one
    query without a query per node."""
    root = _resolve(root)
    if root is not None:
        qs = Area.objects.subtree(root)
        base = root.level
    else:
        qs = Area.objects.all()
        base = (
            Area.objects.filter(parent__isnull=True)
            .order_by("level")
            .values_list("level", flat=True)
            .first()
        )
    if depth is not None and base is not None:
        qs = qs.filter(level__lte=base + max(depth, 0))
    nodes: dict[int, dict] = {}
    roots: list[dict] = []
    # Parents come before their children because a child's level is higher.
    for pk, parent_id, code, name, name_en, level in qs.order_by("level", "code").values_list(
        "id", "parent_id", "code", "name", "name_en", "level"
    ):
        node = {
            "code": code,
            "name": name,
            "name_en": name_en,
            "level": AreaLevel(level).slug,
            "children": [],
        }
        nodes[pk] = node
        if (root is not None and pk == root.pk) or (root is None and parent_id is None):
            roots.append(node)
        elif parent_id in nodes:
            nodes[parent_id]["children"].append(node)
    return roots


def area_children_count(area: Area) -> int:
    return Area.objects.filter(parent=area).count()


def area_counts_by_level() -> dict[str, int]:
    rows = Area.objects.values("level").annotate(n=Count("id")).order_by("level")
    return {AreaLevel(r["level"]).slug: r["n"] for r in rows}
