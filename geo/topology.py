"""Topology checks of the area tree: overlaps, gaps and children outside their parent.

For every parent in a subtree whose children have boundaries:

- **overlap** — two siblings whose interiors share area;
- **gap** — a part of the parent that no child covers (each separate part of
  the uncovered area is its own problem);
- **outside** — the part of a child that lies outside its parent.

Areas are geodesic square metres (:func:`geo.geometry.geodesic_area_m2`);
anything not larger than ``tolerance_m2`` is rounding, not a problem. Siblings
are paired through an STRtree and each parent's coverage is one union, so a
district of a few hundred grids is checked in a fraction of a second.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from .geometry import geodesic_area_m2, to_geojson
from .models import Area

ProblemKind = Literal["overlap", "gap", "outside"]
KINDS: tuple[ProblemKind, ...] = ("overlap", "gap", "outside")

# Square metres per square degree of latitude, for a quick planar estimate
# before the exact geodesic area is computed.
_M2_PER_DEG2 = 111_320.0**2


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    area_m2: float
    geometry: BaseGeometry  # WGS-84 longitude/latitude
    # The areas involved: the two siblings of an overlap, the child outside its
    # parent, the children along a gap.
    codes: tuple[str, ...]
    parent_code: str | None  # None for siblings at the top of the tree

    def as_feature(self) -> dict:
        return {
            "type": "Feature",
            "geometry": to_geojson(self.geometry),
            "properties": {
                "kind": self.kind,
                "area_m2": round(self.area_m2, 2),
                "codes": list(self.codes),
                "parent_code": self.parent_code,
            },
        }


def check_topology(*, root: Area | None = None, tolerance_m2: float = 1.0) -> list[Problem]:
    """The topology problems under ``root`` (the whole tree when None), largest first per kind.

    Areas without a boundary are left out: a parent without one is checked
    only for overlaps between its children.
    """
    if not math.isfinite(tolerance_m2) or tolerance_m2 < 0:
        raise ValueError("the tolerance must be a number of square metres, at least 0")
    qs = Area.objects.all() if root is None else Area.objects.subtree(root)
    rows = list(qs.order_by("code").values_list("id", "code", "parent_id", "geometry"))
    has_shape = np.array([r[3] is not None for r in rows], dtype=bool)
    shapes = np.full(len(rows), None, dtype=object)
    if has_shape.any():
        shapes[has_shape] = shapely.from_wkb([bytes(r[3]) for r in rows if r[3] is not None])
        invalid = has_shape & ~shapely.is_valid(shapes)
        if invalid.any():
            # A broken boundary is still checked, as its valid reading.
            shapes[invalid] = shapely.make_valid(shapes[invalid])
    index = {r[0]: i for i, r in enumerate(rows)}
    codes = [r[1] for r in rows]
    children: dict[int | None, list[int]] = defaultdict(list)
    for i, (_pk, _code, parent_id, _wkb) in enumerate(rows):
        # Siblings are compared only when their parent is in the subtree (or
        # at the top of the whole tree): the root's siblings are not our business.
        if has_shape[i] and (parent_id in index or (root is None and parent_id is None)):
            children[parent_id].append(i)

    problems: list[Problem] = []
    for parent_id, kids in children.items():
        parent = index.get(parent_id) if parent_id is not None else None
        parent_code = codes[parent] if parent is not None else None
        kid_shapes = shapes[kids]
        kid_codes = [codes[k] for k in kids]
        problems += _overlaps(kid_shapes, kid_codes, parent_code, tolerance_m2)
        if parent is not None and has_shape[parent]:
            problems += _gaps(shapes[parent], kid_shapes, kid_codes, parent_code, tolerance_m2)
            problems += _outside(shapes[parent], kid_shapes, kid_codes, parent_code, tolerance_m2)
    order = {kind: i for i, kind in enumerate(KINDS)}
    problems.sort(key=lambda p: (p.parent_code or "", order[p.kind], -p.area_m2, p.codes))
    return problems


def problems_feature_collection(problems: list[Problem]) -> dict:
    """A GeoJSON FeatureCollection of the problems (properties: kind, area_m2, codes, parent_code)."""
    return {"type": "FeatureCollection", "features": [p.as_feature() for p in problems]}


def summarize(problems: list[Problem]) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for p in problems:
        counts[p.kind] += 1
    return counts


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    """The polygonal part of an overlay result (lines and points where shapes touch dropped)."""
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and g.area > 0]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _measured(geom: BaseGeometry | None, tolerance_m2: float) -> float | None:
    """The geodesic area of ``geom`` when it is above the tolerance, else None."""
    if geom is None:
        return None
    # Cheap planar estimate first: rounding specks are the common case.
    lat = (geom.bounds[1] + geom.bounds[3]) / 2
    rough = geom.area * _M2_PER_DEG2 * math.cos(math.radians(lat))
    if rough <= tolerance_m2 * 0.5:
        return None
    area = geodesic_area_m2(geom)
    return area if area > tolerance_m2 else None


def _overlaps(shapes, codes, parent_code, tolerance_m2) -> list[Problem]:
    if len(shapes) < 2:
        return []
    tree = shapely.STRtree(shapes)
    left, right = tree.query(shapes, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return []
    # Neighbours that only share a border are the rule, not a problem.
    touching = shapely.touches(shapes[left], shapes[right])
    left, right = left[~touching], right[~touching]
    found = []
    for i, j, shared in zip(
        left, right, shapely.intersection(shapes[left], shapes[right]), strict=True
    ):
        geom = _polygonal(shared)
        area = _measured(geom, tolerance_m2)
        if area is not None:
            found.append(Problem("overlap", area, geom, (codes[i], codes[j]), parent_code))
    return found


def _gaps(parent, shapes, codes, parent_code, tolerance_m2) -> list[Problem]:
    covered = shapely.union_all(shapes)
    uncovered = shapely.difference(parent, covered)
    tree = shapely.STRtree(shapes)
    found = []
    for piece in shapely.get_parts(uncovered):
        if piece.geom_type != "Polygon":
            continue
        area = _measured(piece, tolerance_m2)
        if area is not None:
            # The children along the gap, so the report says where to look.
            along = sorted(codes[i] for i in tree.query(piece, predicate="intersects"))
            found.append(Problem("gap", area, piece, tuple(along), parent_code))
    return found


def _outside(parent, shapes, codes, parent_code, tolerance_m2) -> list[Problem]:
    shapely.prepare(parent)
    inside = shapely.covers(parent, shapes)
    found = []
    candidates = np.flatnonzero(~inside)
    if not len(candidates):
        return found
    for i, beyond in zip(candidates, shapely.difference(shapes[candidates], parent), strict=True):
        geom = _polygonal(beyond)
        area = _measured(geom, tolerance_m2)
        if area is not None:
            found.append(Problem("outside", area, geom, (codes[i],), parent_code))
    return found
