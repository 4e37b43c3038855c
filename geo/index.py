"""Point → grid lookup: an in-process STRtree over every unit grid's boundary.

Border rule
    Boundaries are closed sets. A point belongs to every grid whose closed
    boundary it intersects, and among those it goes to the grid with the
    **lowest code**. So a point on an edge shared by two grids, or on a corner
    shared by four, is answered with the lowest of their codes, and a point on
    the outer boundary of the covered region still belongs to its one grid. A
    point in no grid is answered with :data:`OUTSIDE` (``outside=True``).

    The grids are put into the tree in code order, so "lowest code" is simply
    the lowest tree position among the hits.

Freshness across processes
    Every write to the areas bumps the "areas" version counter (``geo.versioning``). Each
    process keeps its index with the version it was built from and, before
    answering, re-reads the version at most every
    ``CIVICGRID["GEO_INDEX_MAX_STALENESS"]`` seconds (one single-row query);
    when it changed, the index is rebuilt from the database. A change made by
    any process therefore reaches every process within that time. One thread
    rebuilds under a lock while the others keep answering from the old index
    until the new one is swapped in.

    The check compares versions for equality. An index built inside a
    transaction that changed areas and was then rolled back is replaced at the
    next check, unless a later change has by then committed the very same
    version number: so do not locate inside a transaction that writes areas
    and may roll back. Tests roll the database (and the counter) back after
    each test, so the test set-up calls :func:`invalidate_local`.
"""

from __future__ import annotations

import gc
import logging
import math
import operator
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from time import monotonic

import numpy as np
import shapely
from django.conf import settings
from django.core.signals import setting_changed
from django.db.models import BinaryField, Case, Value, When
from django.dispatch import receiver
from django.utils.translation import gettext as _

from core.errors import DomainError

from .crs import CRS_CHOICES, check_crs, to_wgs84, to_wgs84_many
from .models import Area, AreaLevel
from .versioning import current_area_version

log = logging.getLogger(__name__)

WGS84 = "wgs84"
__all__ = [
    "CRS_CHOICES",
    "OUTSIDE",
    "AreaRef",
    "GridIndex",
    "Location",
    "get_index",
    "install_index",
    "invalidate_local",
    "load_index",
    "locate",
    "locate_many",
    "locate_many_indices",
    "to_wgs84_arrays",
    "to_wgs84_point",
]

_GRID = int(AreaLevel.GRID)
_NO_HIT = np.iinfo(np.int64).max
# Bulk queries run in slices so that the temporary point objects of a huge
# batch stay small in memory.
_CHUNK = 200_000
# Bound once: the single-point path looks them up on every call.
_points = shapely.points
_array = np.array


@dataclass(frozen=True, slots=True)
class AreaRef:
    code: str
    name: str
    name_en: str
    level: int

    def as_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "name_en": self.name_en}


@dataclass(frozen=True, slots=True)
class Location:
    """Where a point is: its grid and the grid's ancestors (all None when outside)."""

    grid: AreaRef | None = None
    community: AreaRef | None = None
    street: AreaRef | None = None
    district: AreaRef | None = None
    city: AreaRef | None = None

    @property
    def outside(self) -> bool:
        return self.grid is None

    def as_dict(self) -> dict:
        def ref(r: AreaRef | None):
            return None if r is None else r.as_dict()

        return {
            "outside": self.grid is None,
            "grid": ref(self.grid),
            "community": ref(self.community),
            "street": ref(self.street),
            "district": ref(self.district),
            "city": ref(self.city),
        }


OUTSIDE = Location()


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while a few hundred thousand objects are made.

    Each geometry and row is a new container object; without the pause the
    collector runs over the whole growing heap again and again, which nearly
    doubles the build time of a large index.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class GridIndex:
    """The grids' boundaries in an STRtree, in code order, with each grid's chain.

    Built only by :meth:`from_rows` (which the database loader uses too), so a
    benchmark or a test that builds one from generated rows exercises the same
    code as production. A grid's :class:`Location` is made the first time a
    point lands in it and then reused, so building stays at C speed.
    """

    __slots__ = (
        "version",
        "geometries",
        "_locations",
        "tree",
        "_query",
        "_grid_rows",
        "_parents",
        "_codes",
        "_names",
        "_names_en",
        "_levels",
        "_row_of",
        "_chains",
    )

    def __init__(self, *, version: int, geometries: np.ndarray, grid_rows: list[int], columns):
        self.version = version
        self.geometries = geometries
        self.tree = shapely.STRtree(geometries)
        self._query = self.tree.query
        # Row (in ``columns``) of the grid at each tree position.
        self._grid_rows = grid_rows
        ids, self._parents, self._codes, self._names, self._names_en, self._levels = columns
        self._row_of = dict(zip(ids, range(len(ids)), strict=True))
        self._chains: dict[int | None, tuple] = {}
        # Position p's Location once made; position -1 (outside) is the extra
        # last element, so any position array maps straight to locations.
        self._locations: list[Location | None] = [None] * len(geometries) + [OUTSIDE]

    def __len__(self) -> int:
        return len(self.geometries)

    # --- building ------------------------------------------------------------

    @classmethod
    def from_rows(cls, rows: Iterable[tuple], *, version: int) -> GridIndex:
        """Build from ``(id, parent_id, code, name, name_en, level, wkb)`` rows ordered by code.

        ``wkb`` is the boundary of a grid and None for any other row (or for a
        grid without a boundary, which cannot be located into).
        """
        with _gc_paused():
            rows = rows if isinstance(rows, list) else list(rows)
            levels = [r[5] for r in rows]
            raw = [r[6] for r in rows]
            # psycopg hands bytea over as memoryview; from_wkb wants bytes.
            # One driver gives one type, so looking at one value is enough.
            if type(next((w for w in raw if w is not None), b"")) is not bytes:
                raw = [None if w is None else bytes(w) for w in raw]
            wkbs = np.empty(len(rows), dtype=object)
            wkbs[:] = raw
            del raw
            is_grid = (np.array(levels, dtype=np.int64) == _GRID) & (wkbs != None)  # noqa: E711
            grid_rows = np.flatnonzero(is_grid)
            # The border rule needs the tree in code order. The database sorts
            # by its collation; Python's string order is the one that counts.
            grid_codes = [rows[i][2] for i in grid_rows.tolist()]
            if not all(map(operator.le, grid_codes, grid_codes[1:])):
                grid_rows = grid_rows[np.argsort(np.array(grid_codes), kind="stable")]
            del grid_codes
            geoms = shapely.from_wkb(wkbs[grid_rows], on_invalid="ignore")
            del wkbs
            kind = shapely.get_type_id(geoms)
            usable = ((kind == 3) | (kind == 6)) & ~shapely.is_empty(geoms)
            if not usable.all():
                dropped = [rows[i][2] for i in grid_rows[~usable].tolist()]
                log.warning(
                    "point-to-grid index: %d grid(s) without a usable boundary left out: %s",
                    len(dropped),
                    ", ".join(dropped[:20]),
                )
                geoms, grid_rows = geoms[usable], grid_rows[usable]
            columns = (
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
                levels,
            )
            return cls(
                version=version, geometries=geoms, grid_rows=grid_rows.tolist(), columns=columns
            )

    def _ref(self, row: int) -> AreaRef:
        return AreaRef(
            self._codes[row], self._names[row], self._names_en[row] or "", self._levels[row]
        )

    def _chain_above(self, parent_id: int | None) -> tuple:
        """(community, street, district, city) above a grid; shared by its siblings."""
        found = self._chains.get(parent_id)
        if found is None:
            slots: dict[int, AreaRef] = {}
            current, steps = parent_id, 0
            # ``steps`` guards against a (corrupt) cycle in the parent links.
            while current is not None and current in self._row_of and steps < 8:
                row = self._row_of[current]
                slots.setdefault(self._levels[row], self._ref(row))
                current = self._parents[row]
                steps += 1
            found = self._chains[parent_id] = (
                slots.get(AreaLevel.COMMUNITY),
                slots.get(AreaLevel.STREET),
                slots.get(AreaLevel.DISTRICT),
                slots.get(AreaLevel.CITY),
            )
        return found

    def location(self, position: int) -> Location:
        """The :class:`Location` at a tree position (-1: :data:`OUTSIDE`)."""
        found = self._locations[position]
        if found is None:
            row = self._grid_rows[position]
            # Two threads may both make it; they make equal objects, and the
            # list store is atomic.
            found = self._locations[position] = Location(
                self._ref(row), *self._chain_above(self._parents[row])
            )
        return found

    # --- lookup -------------------------------------------------------------------

    def position(self, lng: float, lat: float) -> int:
        """Tree position of the grid holding the WGS-84 point, or -1 (no validation)."""
        hits = self._query(_points(_array((lng, lat))), predicate="intersects")
        n = len(hits)
        if n == 1:
            return hits.item()
        return int(hits.min()) if n else -1

    def location_xy(self, lng: float, lat: float) -> Location:
        """The :class:`Location` of a WGS-84 point (no validation, no freshness check)."""
        p = self.position(lng, lat)
        if p < 0:
            return OUTSIDE
        found = self._locations[p]
        return found if found is not None else self.location(p)

    def positions(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Tree position per WGS-84 point (-1 outside), by the border rule; vectorised."""
        lng = np.asarray(lng, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        n = lng.shape[0]
        best = np.full(n, _NO_HIT, dtype=np.int64)
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            points = shapely.points(lng[start:stop], lat[start:stop])
            which, hit = self._query(points, predicate="intersects")
            # Several hits for one point (a border) → the lowest position wins.
            np.minimum.at(best, which + start, hit)
        best[best == _NO_HIT] = -1
        return best

    def locations_at(self, positions: np.ndarray) -> list[Location]:
        """:meth:`location` of each position, in order."""
        locations, make = self._locations, self.location
        out = []
        for p in positions.tolist():
            found = locations[p]
            out.append(found if found is not None else make(p))
        return out


# --- loading from the database ------------------------------------------------


def area_rows():
    """Every area as ``(id, parent_id, code, name, name_en, level, wkb)`` in code order.

    One query; only grids bring their boundary along (a district's would be
    large and is not needed).
    """
    grid_boundary = Case(
        When(level=_GRID, then="geometry"), default=Value(None), output_field=BinaryField()
    )
    return Area.objects.order_by("code").values_list(
        "id", "parent_id", "code", "name", "name_en", "level", grid_boundary
    )


def load_index() -> GridIndex:
    # The version is read before the rows: a change committed in between then
    # shows up as a newer version at the next check instead of being missed.
    version = current_area_version()
    with _gc_paused():
        rows = list(area_rows())
    return GridIndex.from_rows(rows, version=version)


# --- the process's index ----------------------------------------------------------

_lock = threading.Lock()
_index: GridIndex | None = None
_next_check = 0.0  # monotonic time of the next version check
_staleness: float | None = None


def _max_staleness() -> float:
    global _staleness
    if _staleness is None:
        _staleness = float(settings.CIVICGRID.get("GEO_INDEX_MAX_STALENESS", 1.0))
    return _staleness


@receiver(setting_changed)
def _settings_changed(*, setting, **kwargs):
    global _staleness, _next_check
    if setting == "CIVICGRID":
        _staleness = None
        _next_check = 0.0


def _refresh() -> GridIndex:
    """Check the version (and rebuild) unless another thread is already doing it."""
    global _index, _next_check
    index = _index
    if index is not None:
        if not _lock.acquire(blocking=False):
            return index  # being refreshed: answer from the index we have
    else:
        _lock.acquire()
    try:
        index = _index
        if index is not None and monotonic() < _next_check:
            return index
        version = current_area_version()
        if index is None or index.version != version:
            index = load_index()
            _index = index
        _next_check = monotonic() + _max_staleness()
        return index
    finally:
        _lock.release()


def get_index() -> GridIndex:
    """This process's index, checked against the areas' version when a check is due."""
    index = _index
    if index is not None and monotonic() < _next_check:
        return index
    return _refresh()


def install_index(index: GridIndex) -> None:
    """Make ``index`` this process's index (a warm start from rows at hand).

    It is kept only while ``index.version`` matches the database's: the next
    due check replaces it otherwise.
    """
    global _index, _next_check
    with _lock:
        _index = index
        _next_check = monotonic() + _max_staleness()


def invalidate_local() -> None:
    """Forget this process's index; the next lookup rebuilds it."""
    global _index, _next_check
    with _lock:
        _index = None
        _next_check = 0.0


# --- input checking and coordinate systems -------------------------------------------


def _coordinate_message(field: str) -> str:
    if field == "lat":
        return _("Latitude must be a number between -90 and 90.")
    return _("Longitude must be a number between -180 and 180.")


def _unknown_crs_message(crs) -> str:
    return _("Unknown coordinate system “%(crs)s”; use one of %(choices)s.") % {
        "crs": crs,
        "choices": ", ".join(CRS_CHOICES),
    }


def _crs_name(crs) -> str:
    try:
        return check_crs(crs)
    except (TypeError, ValueError, AttributeError):
        message = _unknown_crs_message(crs)
        raise DomainError(message, errors={"crs": [message]}) from None


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _bad_point(lat: float, lng: float, crs) -> DomainError:
    """Every problem of a point at once, keyed by field."""
    errors: dict[str, list[str]] = {}
    if not -90.0 <= lat <= 90.0:
        errors["lat"] = [_coordinate_message("lat")]
    if not -180.0 <= lng <= 180.0:
        errors["lng"] = [_coordinate_message("lng")]
    try:
        _crs_name(crs)
    except DomainError as exc:
        errors.update(exc.errors)
    return DomainError(next(iter(errors.values()))[0], errors=errors)


def to_wgs84_point(lat, lng, crs: str = WGS84) -> tuple[float, float]:
    """Check a point and bring it to WGS-84: ``(lat, lng)`` → ``(lat, lng)``.

    Numbers and numeric strings are taken; anything else, a non-finite value
    or one out of range is a DomainError naming the field (``lat``, ``lng``,
    ``crs``).
    """
    lat = _as_float(lat)
    lng = _as_float(lng)
    # NaN fails every comparison, so this also refuses non-finite numbers.
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        raise _bad_point(lat, lng, crs)
    if crs != WGS84:
        name = _crs_name(crs)
        if name != WGS84:
            lng, lat = to_wgs84(lng, lat, name)
    return lat, lng


def to_wgs84_arrays(
    lats, lngs, crs: str = WGS84, *, field: str = "points"
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`to_wgs84_point`; errors name the index of each bad point."""
    try:
        lat = np.asarray(lats, dtype=np.float64)
        lng = np.asarray(lngs, dtype=np.float64)
    except (TypeError, ValueError):
        message = _("Coordinates must be numbers.")
        raise DomainError(message, errors={field: [message]}) from None
    if lat.ndim != 1 or lat.shape != lng.shape:
        message = _("Give as many latitudes as longitudes.")
        raise DomainError(message, errors={field: [message]})
    bad_lat = ~((lat >= -90.0) & (lat <= 90.0))
    bad_lng = ~((lng >= -180.0) & (lng <= 180.0))
    if bad_lat.any() or bad_lng.any():
        errors: dict[str, list[str]] = {}
        for i in np.flatnonzero(bad_lat | bad_lng)[:20].tolist():
            if bad_lat[i]:
                errors[f"{field}[{i}].lat"] = [_coordinate_message("lat")]
            if bad_lng[i]:
                errors[f"{field}[{i}].lng"] = [_coordinate_message("lng")]
        first = next(iter(errors))
        raise DomainError(_("Point %(where)s is out of range.") % {"where": first}, errors=errors)
    if crs != WGS84:
        name = _crs_name(crs)
        if name != WGS84:
            lng, lat = to_wgs84_many(lng, lat, name)
            lng = np.asarray(lng, dtype=np.float64)
            lat = np.asarray(lat, dtype=np.float64)
    return lat, lng


# --- lookups ----------------------------------------------------------------------


def locate(lat, lng, crs: str = WGS84) -> Location:
    """The grid → community → street → district of one point (see the border rule above).

    Raises DomainError (field ``lat``, ``lng`` or ``crs``) for bad input.
    """
    # Every report and GPS fix comes through here, so the checks of
    # to_wgs84_point and the lookup of GridIndex.location_xy are written out
    # inline: a Python call or two is a measurable share of one tree query.
    try:
        lat = float(lat)
        lng = float(lng)
    except (TypeError, ValueError, OverflowError):
        lat, lng = _as_float(lat), _as_float(lng)
    # NaN fails every comparison, so this also refuses non-finite numbers.
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        raise _bad_point(lat, lng, crs)
    if crs != WGS84:
        name = _crs_name(crs)
        if name != WGS84:
            lng, lat = to_wgs84(lng, lat, name)
    index = _index
    if index is None or monotonic() >= _next_check:
        index = _refresh()
    hits = index._query(_points(_array((lng, lat))), predicate="intersects")
    n = len(hits)
    if n == 1:
        p = hits.item()
    elif n:
        p = int(hits.min())
    else:
        return OUTSIDE
    found = index._locations[p]
    return found if found is not None else index.location(p)


def locate_many(lats, lngs, crs: str = WGS84) -> list[Location]:
    """:func:`locate` for many points at once, in input order, through one index snapshot."""
    lat, lng = to_wgs84_arrays(lats, lngs, crs)
    index = get_index()
    return index.locations_at(index.positions(lng, lat))


def locate_many_indices(
    lng: np.ndarray, lat: np.ndarray, *, index: GridIndex | None = None
) -> np.ndarray:
    """Tree positions (-1 outside) for WGS-84 coordinate arrays.

    The low-level batch path: positions refer to ``index`` (by default the
    process's current index, :func:`get_index`); ``index.location(p)`` is the
    :class:`Location` of position ``p``, and ``-1`` maps to :data:`OUTSIDE`.
    """
    lat, lng = to_wgs84_arrays(lat, lng)
    if index is None:
        index = get_index()
    return index.positions(lng, lat)
