"""Chinese map coordinates (GCJ-02, BD-09) to WGS-84 and back.

GCJ-02 is the offset every map published in mainland China must use (AMap,
Tencent); BD-09 is Baidu's second offset on top of it. Both are defined only
inside a rough box around China: points outside it are left as they are, which
is what the published conversions do.

The forward conversions are closed formulas. Their inverses are not, so a GCJ-02
or BD-09 point is turned back by iterating the forward formula until it lands on
the input (fixed-point iteration converges fast because the offset is a smooth,
slowly varying function of position): the error is below 1e-9 degrees, far
under the 0.5 m that the usual one-step approximation can be off by.

Every function takes scalars or numpy arrays; the ``*_many`` form is the one to
use for whole geometries.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

CRS_CHOICES = ("wgs84", "gcj02", "bd09")

# Krasovsky 1940 ellipsoid, as the GCJ-02 formula defines it.
_A = 6378245.0
_EE = 0.00669342162296594323
_BD_FACTOR = np.pi * 3000.0 / 180.0

# The box in which the offsets apply.
CHINA_MIN_LNG, CHINA_MAX_LNG = 72.004, 137.8347
CHINA_MIN_LAT, CHINA_MAX_LAT = 0.8293, 55.8271

# Iterations stop when every point moved less than this (degrees).
_INVERSE_TOLERANCE = 1e-10
_INVERSE_MAX_ITERATIONS = 30


def in_china(lng, lat):
    """True where the GCJ-02 offset applies (element-wise for arrays)."""
    lng = np.asarray(lng, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (
        (lng >= CHINA_MIN_LNG)
        & (lng <= CHINA_MAX_LNG)
        & (lat >= CHINA_MIN_LAT)
        & (lat <= CHINA_MAX_LAT)
    )


def _offset_lat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _offset_lng(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _gcj02_delta(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The GCJ-02 offset (degrees) at a WGS-84 point, ignoring the China box."""
    x, y = lng - 105.0, lat - 35.0
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = _offset_lat(x, y) * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    d_lng = _offset_lng(x, y) * 180.0 / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return d_lng, d_lat


def _arrays(lng, lat) -> tuple[np.ndarray, np.ndarray, bool]:
    scalar = np.ndim(lng) == 0 and np.ndim(lat) == 0
    lng_a = np.array(lng, dtype=float, ndmin=1)
    lat_a = np.array(lat, dtype=float, ndmin=1)
    lng_a, lat_a = np.broadcast_arrays(lng_a, lat_a)
    return lng_a.astype(float, copy=True), lat_a.astype(float, copy=True), scalar


def _result(lng: np.ndarray, lat: np.ndarray, scalar: bool):
    if scalar:
        return float(lng[0]), float(lat[0])
    return lng, lat


# --- forward ----------------------------------------------------------------------


def _wgs84_to_gcj02(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inside = in_china(lng, lat)
    d_lng, d_lat = _gcj02_delta(lng, lat)
    return np.where(inside, lng + d_lng, lng), np.where(inside, lat + d_lat, lat)


def _gcj02_to_bd09(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inside = in_china(lng, lat)
    z = np.hypot(lng, lat) + 0.00002 * np.sin(lat * _BD_FACTOR)
    theta = np.arctan2(lat, lng) + 0.000003 * np.cos(lng * _BD_FACTOR)
    bd_lng = z * np.cos(theta) + 0.0065
    bd_lat = z * np.sin(theta) + 0.006
    return np.where(inside, bd_lng, lng), np.where(inside, bd_lat, lat)


def wgs84_to_gcj02(lng, lat):
    """WGS-84 → GCJ-02 (scalars → a tuple of floats, arrays → a tuple of arrays)."""
    a, b, scalar = _arrays(lng, lat)
    return _result(*_wgs84_to_gcj02(a, b), scalar)


def gcj02_to_bd09(lng, lat):
    """GCJ-02 → BD-09."""
    a, b, scalar = _arrays(lng, lat)
    return _result(*_gcj02_to_bd09(a, b), scalar)


def wgs84_to_bd09(lng, lat):
    """WGS-84 → BD-09 (through GCJ-02)."""
    a, b, scalar = _arrays(lng, lat)
    return _result(*_gcj02_to_bd09(*_wgs84_to_gcj02(a, b)), scalar)


# --- inverse ----------------------------------------------------------------------


def _invert(forward, lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve forward(p) = (lng, lat) for p by fixed-point iteration.

    Starting from the target itself, each step moves the guess by the distance
    its image still misses the target; only points inside the China box are
    moved, so the rest come back unchanged.
    """
    inside = in_china(lng, lat)
    if not inside.any():
        return lng.copy(), lat.copy()
    t_lng, t_lat = lng[inside], lat[inside]
    g_lng, g_lat = t_lng.copy(), t_lat.copy()
    for _ in range(_INVERSE_MAX_ITERATIONS):
        f_lng, f_lat = forward(g_lng, g_lat)
        e_lng, e_lat = f_lng - t_lng, f_lat - t_lat
        g_lng -= e_lng
        g_lat -= e_lat
        if max(np.abs(e_lng).max(), np.abs(e_lat).max()) < _INVERSE_TOLERANCE:
            break
    out_lng, out_lat = lng.copy(), lat.copy()
    out_lng[inside], out_lat[inside] = g_lng, g_lat
    return out_lng, out_lat


def _raw_wgs84_to_gcj02(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Inside the iteration the guess may stray over the edge of the box; the
    # offset must keep applying there or the iteration would not converge.
    d_lng, d_lat = _gcj02_delta(lng, lat)
    return lng + d_lng, lat + d_lat


def _raw_gcj02_to_bd09(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.hypot(lng, lat) + 0.00002 * np.sin(lat * _BD_FACTOR)
    theta = np.arctan2(lat, lng) + 0.000003 * np.cos(lng * _BD_FACTOR)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _gcj02_to_wgs84(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _invert(_raw_wgs84_to_gcj02, lng, lat)


def _bd09_to_gcj02(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _invert(_raw_gcj02_to_bd09, lng, lat)


def gcj02_to_wgs84(lng, lat):
    """GCJ-02 → WGS-84, exact to 1e-9 degrees."""
    a, b, scalar = _arrays(lng, lat)
    return _result(*_gcj02_to_wgs84(a, b), scalar)


def bd09_to_gcj02(lng, lat):
    """BD-09 → GCJ-02, exact to 1e-9 degrees."""
    a, b, scalar = _arrays(lng, lat)
    return _result(*_bd09_to_gcj02(a, b), scalar)


def bd09_to_wgs84(lng, lat):
    """BD-09 → WGS-84 (through GCJ-02)."""
    a, b, scalar = _arrays(lng, lat)
    return _result(*_gcj02_to_wgs84(*_bd09_to_gcj02(a, b)), scalar)


# --- the interface the rest of CivicGrid uses ---------------------------------------


def check_crs(crs: str) -> str:
    """The canonical name of ``crs``; ValueError for one CivicGrid does not take."""
    name = (crs or "").strip().lower().replace("-", "").replace("_", "")
    if name not in CRS_CHOICES:
        raise ValueError(f"unknown coordinate system {crs!r}: use one of {', '.join(CRS_CHOICES)}")
    return name


def to_wgs84_many(lng: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert arrays of ``crs`` coordinates to WGS-84 (new arrays, inputs untouched)."""
    crs = check_crs(crs)
    a, b, _scalar = _arrays(lng, lat)
    if crs == "gcj02":
        return _gcj02_to_wgs84(a, b)
    if crs == "bd09":
        return _gcj02_to_wgs84(*_bd09_to_gcj02(a, b))
    return a, b


def to_wgs84(lng: float, lat: float, crs: str) -> tuple[float, float]:
    """Convert one ``crs`` point to WGS-84."""
    out_lng, out_lat = to_wgs84_many(np.asarray([lng]), np.asarray([lat]), crs)
    return float(out_lng[0]), float(out_lat[0])


def transform_geometry(geom: BaseGeometry, crs: str) -> BaseGeometry:
    """Every coordinate of ``geom`` (or of an array of geometries) from ``crs`` to WGS-84."""
    crs = check_crs(crs)
    if crs == "wgs84":
        return geom

    def convert(coords: np.ndarray) -> np.ndarray:
        if len(coords) == 0:
            return coords
        lng, lat = to_wgs84_many(coords[:, 0], coords[:, 1], crs)
        return np.column_stack([lng, lat])

    return shapely.transform(geom, convert)
