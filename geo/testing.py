"""Test helpers for the area tree: a small, exact city of square grids.

Kept in the app (not in tests/) so every app's tests can build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import shapely
from django.db import transaction

from .geometry import measure
from .models import Area, AreaLevel
from .versioning import bump_area_version

# The small city: one district of 4 km × 4 km near Beijing's centre, one street,
# two communities side by side, each cut into a 2 × 2 block of square grids.
ORIGIN_LNG, ORIGIN_LAT = 116.40, 39.90
STEP = 0.02  # degrees per grid side


def box(min_lng: float, min_lat: float, max_lng: float, max_lat: float):
    # Rounded to the storage precision, so neighbours share their edges exactly
    # (116.40 + 0.02 is 116.42000000000002 in floating point).
    return shapely.box(*(round(v, 7) for v in (min_lng, min_lat, max_lng, max_lat)))


def make_area(
    *, code: str, level: AreaLevel, name: str, parent: Area | None = None, geom=None, **extra
) -> Area:
    fields = dict(code=code, level=level, name=name, parent=parent, **extra)
    if geom is not None:
        fields.update(measure(geom).as_fields())
    return Area.objects.create(**fields)


def reshape_area(code: str, geom, *, bump: bool = True) -> None:
    """Give an area a new boundary the way a bulk write does: update(), then the version.

    ``bump=False`` leaves the version alone, as a write that bypasses the
    services would.
    """
    with transaction.atomic():
        Area.objects.filter(code=code).update(**measure(geom).as_fields())
        if bump:
            bump_area_version()


@dataclass
class SmallCity:
    district: Area
    street: Area
    communities: list[Area]
    grids: list[Area] = field(default_factory=list)

    def grid(self, code: str) -> Area:
        return next(g for g in self.grids if g.code == code)


def make_small_city() -> SmallCity:
    """District 110105 → street 110105001 → communities …001, …002 → 4 grids each.

    Community 001 spans lng 116.40–116.42, community 002 spans 116.42–116.44;
    grid ``…ccc0r`` numbers run row by row from the south-west corner.
    """
    o_lng, o_lat, s = ORIGIN_LNG, ORIGIN_LAT, STEP
    district = make_area(
        code="110105",
        level=AreaLevel.DISTRICT,
        name="朝阳区",
        name_en="Chaoyang",
        geom=box(o_lng, o_lat, o_lng + 2 * s, o_lat + 2 * s),
    )
    street = make_area(
        code="110105001",
        level=AreaLevel.STREET,
        name="建外街道",
        name_en="Jianwai",
        parent=district,
        geom=box(o_lng, o_lat, o_lng + 2 * s, o_lat + 2 * s),
    )
    city = SmallCity(district=district, street=street, communities=[])
    for c in range(2):
        c_lng = o_lng + c * s
        community = make_area(
            code=f"110105001{c + 1:03d}",
            level=AreaLevel.COMMUNITY,
            name=f"社区{c + 1}",
            name_en=f"Community {c + 1}",
            parent=street,
            geom=box(c_lng, o_lat, c_lng + s, o_lat + 2 * s),
        )
        city.communities.append(community)
        half = s / 2
        seq = 0
        for row in range(2):
            for col in range(2):
                seq += 1
                g_lng, g_lat = c_lng + col * half, o_lat + row * s
                city.grids.append(
                    make_area(
                        code=f"{community.code}{seq:02d}",
                        level=AreaLevel.GRID,
                        name=f"{community.name}第{seq}网格",
                        name_en=f"Community {c + 1} grid {seq}",
                        parent=community,
                        geom=box(g_lng, g_lat, g_lng + half, g_lat + s),
                        households=30 + seq,
                        population=90 + 3 * seq,
                    )
                )
    bump_area_version()
    return city
