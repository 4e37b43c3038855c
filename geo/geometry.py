"""Boundary geometry: parsing, validation, repair, measurement.

Everything here works on shapely geometries in WGS-84 longitude/latitude and
knows nothing of Django, so the importer, the partitioner, the topology
checker and the demo city share one set of rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

# Coordinates are kept to 1e-7 degrees (about 1 cm): enough for any boundary,
# and it makes the shared edges of neighbouring grids bit-identical.
GRID_SIZE = 1e-7
POLYGONAL = ("Polygon", "MultiPolygon")

_GEOD = Geod(ellps="WGS84")


class GeometryError(ValueError):
    """A boundary that cannot be used, with the reason in words."""


def parse_geometry(obj) -> BaseGeometry:
    """A GeoJSON geometry object (dict or JSON text) → shapely geometry.

    Checks the type (Polygon or MultiPolygon) and that every coordinate lies in
    the WGS-84 range. Validity is checked separately (see :func:`problems`)
    because an invalid boundary may still be repaired.
    """
    if obj is None:
        raise GeometryError("the feature has no geometry")
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise GeometryError(f"the geometry is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise GeometryError("the geometry is not a GeoJSON object")
    gtype = obj.get("type")
    if gtype not in POLYGONAL:
        raise GeometryError(
            f"the geometry is a {gtype or 'thing without a type'}, not a Polygon or MultiPolygon"
        )
    try:
        geom = shapely.from_geojson(json.dumps(obj))
    except (shapely.errors.GEOSException, ValueError) as exc:
        raise GeometryError(f"the geometry cannot be read: {exc}") from None
    if geom.is_empty:
        raise GeometryError("the geometry is empty")
    check_wgs84_range(geom)
    return geom


def check_wgs84_range(geom: BaseGeometry) -> None:
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise GeometryError("the geometry has coordinates that are not numbers")
    lng, lat = coords[:, 0], coords[:, 1]
    if (np.abs(lng) > 180).any() or (np.abs(lat) > 90).any():
        raise GeometryError(
            "coordinates are outside the longitude/latitude range: is the file in a projected CRS? "
            "CivicGrid takes WGS-84, GCJ-02 or BD-09 degrees"
        )


def invalid_reason(geom: BaseGeometry) -> str | None:
    """Why the geometry is invalid (self-intersection, bad ring …), or None."""
    if geom.is_valid:
        return None
    return shapely.is_valid_reason(geom)


def repair(geom: BaseGeometry) -> BaseGeometry:
    """make_valid, keeping only the polygonal part (a bow-tie becomes two triangles)."""
    fixed = shapely.make_valid(geom)
    if fixed.geom_type == "GeometryCollection":
        parts = [g for g in fixed.geoms if g.geom_type in POLYGONAL]
        fixed = shapely.union_all(parts) if parts else shapely.Polygon()
    if fixed.geom_type not in POLYGONAL or fixed.is_empty:
        raise GeometryError("the geometry has no area left after repair")
    return fixed


def normalize(geom: BaseGeometry) -> BaseGeometry:
    """Snap to the storage precision; the result is valid and polygonal."""
    snapped = shapely.set_precision(geom, GRID_SIZE)
    if snapped.geom_type not in POLYGONAL:
        # A sliver may collapse on snapping; keep what has area.
        snapped = repair(snapped)
    return snapped


def geodesic_area_m2(geom: BaseGeometry | None) -> float:
    """Area on the WGS-84 ellipsoid in square metres."""
    if geom is None or geom.is_empty:
        return 0.0
    # The geodesic sum is signed by ring winding: without a common orientation
    # the parts of a MultiPolygon wound in opposite senses would cancel out.
    area, _perimeter = _GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))
    return abs(area)


def to_geojson(geom: BaseGeometry) -> dict:
    """A GeoJSON geometry dict with coordinates at the storage precision."""
    return json.loads(shapely.to_geojson(geom))


def to_wkb(geom: BaseGeometry) -> bytes:
    return shapely.to_wkb(geom)


def from_wkb(data) -> BaseGeometry:
    return shapely.from_wkb(bytes(data))


# The Area fields that hold a boundary and what is measured from it.
BOUNDARY_FIELDS = ("geometry", "min_lng", "min_lat", "max_lng", "max_lat", "area_m2")


@dataclass(frozen=True)
class Measured:
    """What is stored beside a boundary."""

    wkb: bytes
    min_lng: float
    min_lat: float
    max_lng: float
    max_lat: float
    area_m2: float

    def as_fields(self) -> dict:
        """The values of :data:`BOUNDARY_FIELDS`, ready for a model or an update()."""
        return {
            "geometry": self.wkb,
            "min_lng": self.min_lng,
            "min_lat": self.min_lat,
            "max_lng": self.max_lng,
            "max_lat": self.max_lat,
            "area_m2": self.area_m2,
        }


def measure(geom: BaseGeometry) -> Measured:
    min_lng, min_lat, max_lng, max_lat = geom.bounds
    return Measured(
        wkb=to_wkb(geom),
        min_lng=min_lng,
        min_lat=min_lat,
        max_lng=max_lng,
        max_lat=max_lat,
        area_m2=geodesic_area_m2(geom),
    )


def degrees_per_metre(lat: float) -> tuple[float, float]:
    """How many degrees of longitude and latitude one metre is at ``lat``."""
    dlat = 1 / 111_320.0
    dlng = dlat / max(np.cos(np.radians(lat)), 1e-6)
    return dlng, dlat
