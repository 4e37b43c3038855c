"""Exporting areas as a GeoJSON FeatureCollection that re-imports to the same tree.

Features come parents first (by level, then code) with the properties the
importer reads: code, name, name_en, level (slug), parent_code, households,
population, plus area_m2 for readers. An area without a boundary (from a
division list) is exported with ``"geometry": null``, which the importer takes
as "no boundary", so an export round-trips.

The text is produced in chunks straight from the stored WKB (converted to
GeoJSON in bulk by shapely), so a large export never holds the whole document
as Python objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import shapely
from django.db.models import QuerySet

from .models import Area, AreaLevel

CHUNK_SIZE = 2000

_FIELDS = (
    "code",
    "name",
    "name_en",
    "level",
    "parent__code",
    "households",
    "population",
    "area_m2",
    "geometry",
)


def _areas(*, level: AreaLevel | int | None, under: Area | None, queryset: QuerySet | None):
    # ``queryset``: the areas the reader may see (Area.objects.restrict(user, "view")).
    base = Area.objects.all() if queryset is None else queryset
    qs = base if under is None else base.subtree(under)
    if level is not None:
        qs = qs.filter(level=int(level))
    return qs.order_by("level", "code").values_list(*_FIELDS)


def _feature_texts(rows: list[tuple]) -> Iterator[str]:
    wkbs = [bytes(r[8]) if r[8] is not None else None for r in rows]
    geometries = shapely.to_geojson(shapely.from_wkb(wkbs))
    for row, geom_text in zip(rows, geometries, strict=True):
        code, name, name_en, level, parent_code, households, population, area_m2, _wkb = row
        properties = {
            "code": code,
            "name": name,
            "name_en": name_en,
            "level": AreaLevel(level).slug,
            "parent_code": parent_code,
            "households": households,
            "population": population,
            "area_m2": round(area_m2, 1) if area_m2 is not None else None,
        }
        yield (
            f'{{"type":"Feature","id":{json.dumps(code)},'
            f'"geometry":{geom_text if geom_text is not None else "null"},'
            f'"properties":{json.dumps(properties, ensure_ascii=False)}}}'
        )


def iter_feature_collection(
    *,
    level: AreaLevel | int | None = None,
    under: Area | None = None,
    queryset: QuerySet | None = None,
) -> Iterator[str]:
    """The FeatureCollection as pieces of JSON text (join them, or stream them).

    ``queryset`` limits the export to those areas (a reader's scope); all areas when None.
    """
    yield '{"type":"FeatureCollection","features":['
    first = True
    chunk: list[tuple] = []

    def flush() -> Iterator[str]:
        nonlocal first
        if chunk:
            body = ",".join(_feature_texts(chunk))
            yield body if first else "," + body
            first = False
            chunk.clear()

    rows = _areas(level=level, under=under, queryset=queryset)
    for row in rows.iterator(chunk_size=CHUNK_SIZE):
        chunk.append(row)
        if len(chunk) >= CHUNK_SIZE:
            yield from flush()
    yield from flush()
    yield "]}\n"


def areas_feature_collection_text(
    *,
    level: AreaLevel | int | None = None,
    under: Area | None = None,
    queryset: QuerySet | None = None,
) -> str:
    return "".join(iter_feature_collection(level=level, under=under, queryset=queryset))


def areas_feature_collection(
    *, level: AreaLevel | int | None = None, under: Area | None = None
) -> dict:
    """The areas (all, one level, and/or one subtree) as a WGS-84 FeatureCollection."""
    return json.loads(areas_feature_collection_text(level=level, under=under))
