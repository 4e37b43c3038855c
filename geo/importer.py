"""Importing the area tree from GeoJSON boundary files and CSV division lists.

The import is all or nothing: every record is checked first, every problem is
collected (up to :data:`MAX_PROBLEMS`) and reported with the feature index or
CSV line it came from, and only a clean file is written, in one transaction.
Re-importing updates areas in place by code; an area whose values are the same
is left untouched, so importing the same file twice changes nothing.

Every step is linear in the number of records: lookups go through dicts, the
database is read and written in fixed-size batches, and the containment check
tests each child once against its prepared parent.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from accounts.audit import audit_log
from core.errors import DomainError

from . import geometry as geo
from .crs import (
    CHINA_MAX_LAT,
    CHINA_MAX_LNG,
    CHINA_MIN_LAT,
    CHINA_MIN_LNG,
    check_crs,
    in_china,
    transform_geometry,
)
from .models import LEVEL_BY_SLUG, Area, AreaLevel, code_problem
from .versioning import bump_area_version

MAX_PROBLEMS = 50
# A child may stick out of its parent by this share of its own area (or by
# OUTSIDE_MIN_M2, whichever is larger) before the import refuses it: boundary
# files of different origin rarely share their edges to the last centimetre.
OUTSIDE_TOLERANCE = 0.005
OUTSIDE_MIN_M2 = 1.0
# Files with at least this many records show a progress bar (when asked to).
PROGRESS_THRESHOLD = 2000
BATCH_SIZE = 500
# SQLite allows 32766 parameters per statement; stay far below it.
_LOOKUP_CHUNK = 900

REQUIRED_PROPERTIES = ("code", "name", "level")
CRS_LABELS = {"wgs84": "WGS-84", "gcj02": "GCJ-02", "bd09": "BD-09"}
CSV_COLUMNS = ("code", "name", "level", "parent_code")
CSV_OPTIONAL_COLUMNS = ("name_en", "households", "population")
NAME_MAX = Area._meta.get_field("name").max_length
NAME_EN_MAX = Area._meta.get_field("name_en").max_length
# PositiveIntegerField holds up to 2**31 - 1 on every backend.
COUNT_MAX = 2_147_483_647

_UPDATE_FIELDS = [
    "level",
    "parent",
    "name",
    "name_en",
    "geometry",
    "min_lng",
    "min_lat",
    "max_lng",
    "max_lat",
    "area_m2",
    "households",
    "population",
    "updated_at",
]


# --- records and problems --------------------------------------------------------


@dataclass
class AreaRecord:
    """One area as read from a file, before any checking.

    Values are kept as they were given (a code may arrive as a JSON number, a
    household count as CSV text); :func:`areas_import` checks and converts them.
    ``where`` names the origin for messages: ``"feature 12"`` (0-based) or
    ``"line 7"`` (1-based, the header is line 1).
    """

    where: str
    index: int
    code: Any = None
    name: Any = None
    level: Any = None
    parent_code: Any = None
    name_en: Any = None
    households: Any = None
    population: Any = None
    geometry: Any = None
    missing: tuple[str, ...] = ()
    # A structural fault found while reading (a feature that is not a Feature …).
    fault: str | None = None

    @property
    def code_text(self) -> str | None:
        return _text(self.code) or None


@dataclass(frozen=True)
class Problem:
    where: str
    code: str | None
    reason: str
    order: int = -1

    def __str__(self) -> str:
        if self.code:
            return _("%(where)s (code %(code)s): %(reason)s") % {
                "where": self.where,
                "code": self.code,
                "reason": self.reason,
            }
        return _("%(where)s: %(reason)s") % {"where": self.where, "reason": self.reason}

    def as_dict(self) -> dict:
        return {"where": self.where, "code": self.code, "reason": self.reason}


class AreaImportError(DomainError):
    """The file was refused; ``problems`` says where and why. Nothing was written."""

    code = "import_refused"

    def __init__(self, problems: Sequence[Problem], *, source_name: str = ""):
        ordered = sorted(problems, key=lambda p: p.order)
        self.total = len(ordered)
        self.problems = list(ordered[:MAX_PROBLEMS])
        self.source_name = source_name
        messages = [str(p) for p in self.problems]
        if self.total > len(self.problems):
            messages.append(
                _("… and %(count)d more problems") % {"count": self.total - len(self.problems)}
            )
        message = ngettext(
            "%(source)s: the import was refused (%(count)d problem); nothing was written.",
            "%(source)s: the import was refused (%(count)d problems); nothing was written.",
            self.total,
        )
        super().__init__(
            message % {"source": source_name or _("the file"), "count": self.total},
            errors={"file": messages},
        )

    @property
    def messages(self) -> list[str]:
        return self.errors["file"]

    def __str__(self) -> str:
        return "\n".join([self.message, *self.messages])


class AreaImportOutsideScope(AreaImportError):
    """Some areas of the file lie outside the importer's scope: refused (HTTP 403, audited)."""

    status_code = 403
    code = "outside_scope"


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, record: AreaRecord | None, reason: str, *, code: str | None = None) -> None:
        if record is None:
            self.items.append(Problem(_("file"), code, reason, -1))
        else:
            self.items.append(Problem(record.where, code or record.code_text, reason, record.index))

    def __bool__(self) -> bool:
        return bool(self.items)


# --- the report --------------------------------------------------------------------


@dataclass(frozen=True)
class RepairedFeature:
    """A boundary that ``repair`` changed.

    ``area_before_m2`` is the area the file's rings enclose counted by their
    winding (the two lobes of a figure-eight ring cancel out), ``area_after_m2``
    the area of the repaired boundary.
    """

    where: str
    code: str
    reason: str
    area_before_m2: float
    area_after_m2: float

    @property
    def gained_m2(self) -> float:
        return max(0.0, self.area_after_m2 - self.area_before_m2)

    @property
    def lost_m2(self) -> float:
        return max(0.0, self.area_before_m2 - self.area_after_m2)

    def __str__(self) -> str:
        return _(
            "%(where)s (code %(code)s) repaired (%(reason)s): gained %(gained).1f m², "
            "lost %(lost).1f m²"
        ) % {
            "where": self.where,
            "code": self.code,
            "reason": self.reason,
            "gained": self.gained_m2,
            "lost": self.lost_m2,
        }


@dataclass
class ImportReport:
    source_name: str = ""
    crs: str = "wgs84"
    dry_run: bool = False
    created: Counter = field(default_factory=Counter)
    updated: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)
    repaired: list[RepairedFeature] = field(default_factory=list)
    # Codes written, for the audit entry (the counts above are what people read).
    created_codes: list[str] = field(default_factory=list)
    updated_codes: list[str] = field(default_factory=list)

    @property
    def total_created(self) -> int:
        return sum(self.created.values())

    @property
    def total_updated(self) -> int:
        return sum(self.updated.values())

    @property
    def total_unchanged(self) -> int:
        return sum(self.unchanged.values())

    @property
    def changed(self) -> bool:
        return bool(self.total_created or self.total_updated)

    @property
    def written(self) -> bool:
        return self.changed and not self.dry_run

    def lines(self) -> list[str]:
        head = (
            _("Dry run of %(source)s: nothing was written.") if self.dry_run else _("%(source)s:")
        )
        out = [head % {"source": self.source_name or _("import")}]
        for level in AreaLevel:
            slug = level.slug
            if self.created[slug] or self.updated[slug] or self.unchanged[slug]:
                out.append(
                    _(
                        "  %(level)s: %(created)d created, %(updated)d updated, %(unchanged)d unchanged"
                    )
                    % {
                        "level": str(level.label),
                        "created": self.created[slug],
                        "updated": self.updated[slug],
                        "unchanged": self.unchanged[slug],
                    }
                )
        out.append(
            _("  total: %(created)d created, %(updated)d updated, %(unchanged)d unchanged")
            % {
                "created": self.total_created,
                "updated": self.total_updated,
                "unchanged": self.total_unchanged,
            }
        )
        if self.repaired:
            out.append(_("  %(count)d boundaries repaired:") % {"count": len(self.repaired)})
            out.extend(f"    {item}" for item in self.repaired)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def as_dict(self) -> dict:
        levels = [lv.slug for lv in AreaLevel]
        return {
            "source": self.source_name,
            "crs": self.crs,
            "dry_run": self.dry_run,
            "written": self.written,
            "created": {lv: self.created[lv] for lv in levels if self.created[lv]},
            "updated": {lv: self.updated[lv] for lv in levels if self.updated[lv]},
            "unchanged": {lv: self.unchanged[lv] for lv in levels if self.unchanged[lv]},
            "totals": {
                "created": self.total_created,
                "updated": self.total_updated,
                "unchanged": self.total_unchanged,
            },
            "repaired": [
                {
                    "where": r.where,
                    "code": r.code,
                    "reason": r.reason,
                    "area_before_m2": r.area_before_m2,
                    "area_after_m2": r.area_after_m2,
                    "gained_m2": r.gained_m2,
                    "lost_m2": r.lost_m2,
                }
                for r in self.repaired
            ],
            "lines": self.lines(),
        }


# --- reading files -------------------------------------------------------------------


def _read_text(path_or_fileobj, source_name: str) -> str:
    """The whole input as text: UTF-8, with or without a byte-order mark."""
    if isinstance(path_or_fileobj, (str, Path)):
        try:
            data: str | bytes = Path(path_or_fileobj).read_bytes()
        except OSError as exc:
            raise AreaImportError(
                [
                    Problem(
                        _("file"), None, _("cannot be read: %(error)s") % {"error": exc.strerror}
                    )
                ],
                source_name=source_name,
            ) from None
    else:
        data = path_or_fileobj.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise AreaImportError(
                [
                    Problem(
                        _("file"),
                        None,
                        _(
                            "is not UTF-8 text (byte %(pos)d); save it as UTF-8, "
                            "for instance from GBK"
                        )
                        % {"pos": exc.start},
                    )
                ],
                source_name=source_name,
            ) from None
    data = data.removeprefix("\ufeff")
    if not data.strip():
        raise AreaImportError([Problem(_("file"), None, _("is empty"))], source_name=source_name)
    return data


def _source_name(path_or_fileobj) -> str:
    if isinstance(path_or_fileobj, (str, Path)):
        return Path(path_or_fileobj).name
    return Path(getattr(path_or_fileobj, "name", "") or "").name


def records_from_feature_collection(fc: Any, *, source_name: str = "") -> list[AreaRecord]:
    """The records of a parsed GeoJSON FeatureCollection (one per feature, 0-based)."""
    if not isinstance(fc, dict) or fc.get("type") != "FeatureCollection":
        found = fc.get("type") if isinstance(fc, dict) else type(fc).__name__
        raise AreaImportError(
            [
                Problem(
                    _("file"),
                    None,
                    _("is not a GeoJSON FeatureCollection (found %(found)s)")
                    % {"found": found or _("an object without a type")},
                )
            ],
            source_name=source_name,
        )
    features = fc.get("features")
    if not isinstance(features, list):
        raise AreaImportError(
            [Problem(_("file"), None, _("the FeatureCollection has no list of features"))],
            source_name=source_name,
        )
    records = []
    for index, feature in enumerate(features):
        where = _("feature %(index)d") % {"index": index}
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            records.append(AreaRecord(where, index, fault=_("is not a GeoJSON Feature")))
            continue
        props = feature.get("properties")
        if not isinstance(props, dict):
            props = {}
        records.append(
            AreaRecord(
                where,
                index,
                code=props.get("code"),
                name=props.get("name"),
                level=props.get("level"),
                parent_code=props.get("parent_code"),
                name_en=props.get("name_en"),
                households=props.get("households"),
                population=props.get("population"),
                geometry=feature.get("geometry"),
                missing=tuple(key for key in REQUIRED_PROPERTIES if props.get(key) in (None, "")),
            )
        )
    return records


def read_geojson(path_or_fileobj, *, source_name: str | None = None) -> list[AreaRecord]:
    """Read a GeoJSON FeatureCollection file (a path or an open file, text or binary)."""
    name = source_name if source_name is not None else _source_name(path_or_fileobj)
    text = _read_text(path_or_fileobj, name)
    try:
        fc = json.loads(text)
    except ValueError as exc:
        raise AreaImportError(
            [Problem(_("file"), None, _("is not valid JSON: %(error)s") % {"error": exc})],
            source_name=name,
        ) from None
    return records_from_feature_collection(fc, source_name=name)


def read_csv(path_or_fileobj, *, source_name: str | None = None) -> list[AreaRecord]:
    """Read a division list: ``code,name,level,parent_code`` (+ name_en, households, population).

    Lines are numbered as an editor shows them, the header being line 1.
    """
    name = source_name if source_name is not None else _source_name(path_or_fileobj)
    text = _read_text(path_or_fileobj, name)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise AreaImportError(
            [Problem(_("line 1"), None, _("has no CSV header: %(error)s") % {"error": exc})],
            source_name=name,
        ) from None
    columns = [h.strip().lower() for h in header]
    lacking = [c for c in CSV_COLUMNS if c not in columns]
    if lacking:
        raise AreaImportError(
            [
                Problem(
                    _("line 1"),
                    None,
                    _("the header lacks %(columns)s (it needs %(needed)s)")
                    % {"columns": ", ".join(lacking), "needed": ",".join(CSV_COLUMNS)},
                    0,
                )
            ],
            source_name=name,
        )
    position = {c: columns.index(c) for c in (*CSV_COLUMNS, *CSV_OPTIONAL_COLUMNS) if c in columns}
    records = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            values = {c: (row[i].strip() if i < len(row) else "") for c, i in position.items()}
            records.append(
                AreaRecord(
                    _("line %(line)d") % {"line": line},
                    line,
                    code=values["code"],
                    name=values["name"],
                    level=values["level"],
                    parent_code=values["parent_code"],
                    name_en=values.get("name_en") or None,
                    households=values.get("households") or None,
                    population=values.get("population") or None,
                    missing=tuple(k for k in REQUIRED_PROPERTIES if not values[k]),
                )
            )
    except csv.Error as exc:
        raise AreaImportError(
            [
                Problem(
                    _("line %(line)d") % {"line": reader.line_num},
                    None,
                    _("is not valid CSV: %(error)s") % {"error": exc},
                    reader.line_num,
                )
            ],
            source_name=name,
        ) from None
    return records


def read_file(path_or_fileobj, *, source_name: str | None = None) -> list[AreaRecord]:
    """Read by extension: ``.csv`` is a division list, ``.geojson``/``.json`` a
    FeatureCollection; anything else is sniffed (JSON starts with ``{``)."""
    name = source_name if source_name is not None else _source_name(path_or_fileobj)
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return read_csv(path_or_fileobj, source_name=name)
    if suffix in (".geojson", ".json"):
        return read_geojson(path_or_fileobj, source_name=name)
    text = _read_text(path_or_fileobj, name)
    if text.lstrip().startswith(("{", "[")):
        return read_geojson(io.StringIO(text), source_name=name)
    return read_csv(io.StringIO(text), source_name=name)


# --- checking one record ---------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _parse_level(value: Any) -> AreaLevel | None:
    if isinstance(value, bool):
        return None
    text = _text(value).lower()
    if text.isdigit():
        number = int(text)
        return AreaLevel(number) if number in AreaLevel.values else None
    return LEVEL_BY_SLUG.get(text)


def _parse_count(value: Any) -> int | None | str:
    """A household or people count: int, None when absent, or the reason it is bad."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return _("is not a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            return _("is not a whole number")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            return _("is not a whole number")
        value = int(text)
    if not isinstance(value, int):
        return _("is not a whole number")
    if value < 0 or value > COUNT_MAX:
        return _("is out of range")
    return value


@dataclass
class _Row:
    """A record that passed the per-record checks, with converted values."""

    record: AreaRecord
    code: str
    level: AreaLevel
    parent_code: str | None
    name: str
    name_en: str | None
    households: int | None
    population: int | None
    geom: BaseGeometry | None = None
    measured: geo.Measured | None = None


def _check_fields(record: AreaRecord, problems: _Problems) -> _Row | None:
    if record.fault:
        problems.add(record, record.fault)
        return None
    ok = True
    blank = {k for k in REQUIRED_PROPERTIES if not _text(getattr(record, k))}
    missing = [k for k in REQUIRED_PROPERTIES if k in blank or k in record.missing]
    if missing:
        problems.add(
            record,
            _("missing required properties: %(names)s") % {"names": ", ".join(missing)},
        )
        ok = False
    code = _text(record.code)
    level = _parse_level(record.level) if record.level not in (None, "") else None
    if record.level not in (None, "") and level is None:
        problems.add(
            record,
            _("unknown level %(level)r: use one of %(levels)s")
            % {"level": _text(record.level), "levels": ", ".join(LEVEL_BY_SLUG)},
        )
        ok = False
    if code and not code.isdigit():
        problems.add(record, _("the code must be digits only"))
        ok = False
    name = _text(record.name)
    if len(name) > NAME_MAX:
        problems.add(record, _("the name is longer than %(max)d characters") % {"max": NAME_MAX})
        ok = False
    name_en = None if record.name_en is None else _text(record.name_en)
    if name_en and len(name_en) > NAME_EN_MAX:
        problems.add(
            record,
            _("the English name is longer than %(max)d characters") % {"max": NAME_EN_MAX},
        )
        ok = False
    counts = {}
    for key in ("households", "population"):
        parsed = _parse_count(getattr(record, key))
        if isinstance(parsed, str):
            problems.add(
                record,
                _("%(field)s %(reason)s: %(value)r")
                % {"field": key, "reason": parsed, "value": getattr(record, key)},
            )
            ok = False
        counts[key] = parsed
    if not ok:
        return None
    return _Row(
        record=record,
        code=code,
        level=level,
        parent_code=_text(record.parent_code) or None,
        name=name,
        name_en=name_en,
        households=counts["households"],
        population=counts["population"],
    )


def _outside_china(geom: BaseGeometry) -> bool:
    coords = shapely.get_coordinates(geom)
    return not bool(in_china(coords[:, 0], coords[:, 1]).all())


def _canonical(geom: BaseGeometry) -> BaseGeometry:
    """Flatten to 2D, snap to the storage grid, then one vertex order and winding
    (RFC 7946: the outer ring counter-clockwise), so the same shape always has the
    same WKB."""
    snapped = geo.normalize(shapely.force_2d(geom))
    return shapely.orient_polygons(shapely.normalize(snapped), exterior_cw=False)


def _check_geometries(
    rows: list[_Row], *, crs: str, repair: bool, problems: _Problems, report: ImportReport, bar
) -> list[_Row]:
    """Parse, convert, validate (and repair) and measure every boundary.

    Parsing and measuring go one feature at a time; the CRS conversion runs
    once over every coordinate of the file (the iterative inverse is vectorised).
    """
    parsed: list[_Row] = []
    shapes: list[BaseGeometry] = []
    kept: list[_Row] = []
    for row in rows:
        if row.record.geometry is None:
            kept.append(row)
            bar.update(1)
            continue
        try:
            geom = geo.parse_geometry(row.record.geometry)
        except geo.GeometryError as exc:
            problems.add(row.record, str(exc))
            bar.update(1)
            continue
        if crs != "wgs84" and _outside_china(geom):
            problems.add(
                row.record,
                _(
                    "coordinates lie outside China (lng %(min_lng)s–%(max_lng)s, "
                    "lat %(min_lat)s–%(max_lat)s), where %(crs)s is not defined: is the file "
                    "in WGS-84, or are longitude and latitude swapped?"
                )
                % {
                    "min_lng": CHINA_MIN_LNG,
                    "max_lng": CHINA_MAX_LNG,
                    "min_lat": CHINA_MIN_LAT,
                    "max_lat": CHINA_MAX_LAT,
                    "crs": CRS_LABELS[crs],
                },
            )
            bar.update(1)
            continue
        parsed.append(row)
        shapes.append(geom)
    if shapes:
        converted = transform_geometry(np.array(shapes, dtype=object), crs)
        valid = shapely.is_valid(converted)
    else:
        converted, valid = [], []
    for row, geom, is_valid in zip(parsed, converted, valid, strict=True):
        bar.update(1)
        if not is_valid:
            reason = shapely.is_valid_reason(geom)
            if not repair:
                problems.add(
                    row.record,
                    _(
                        "the boundary is invalid (%(reason)s); run the import with --repair to fix it"
                    )
                    % {"reason": reason},
                )
                continue
            before = geo.geodesic_area_m2(geom)
            try:
                geom = geo.repair(geom)
            except (geo.GeometryError, shapely.errors.GEOSException) as exc:
                problems.add(
                    row.record,
                    _("the boundary cannot be repaired: %(error)s") % {"error": exc},
                )
                continue
            try:
                geom = _canonical(geom)
            except (geo.GeometryError, shapely.errors.GEOSException) as exc:
                problems.add(row.record, str(exc))
                continue
            report.repaired.append(
                RepairedFeature(
                    row.record.where, row.code, reason, before, geo.geodesic_area_m2(geom)
                )
            )
        else:
            try:
                geom = _canonical(geom)
            except (geo.GeometryError, shapely.errors.GEOSException) as exc:
                problems.add(row.record, str(exc))
                continue
        row.geom = geom
        row.measured = geo.measure(geom)
        kept.append(row)
    return kept


# --- the database side ---------------------------------------------------------------------


@dataclass
class _Stored:
    id: int
    code: str
    level: int
    parent_id: int | None
    parent_code: str | None
    name: str
    name_en: str
    households: int
    population: int
    geometry: bytes | None
    min_lng: float | None
    min_lat: float | None
    max_lng: float | None
    max_lat: float | None
    area_m2: float | None

    @property
    def shape(self) -> BaseGeometry | None:
        return geo.from_wkb(self.geometry) if self.geometry else None


_STORED_FIELDS = (
    "id",
    "code",
    "level",
    "parent_id",
    "parent__code",
    "name",
    "name_en",
    "households",
    "population",
    "geometry",
    "min_lng",
    "min_lat",
    "max_lng",
    "max_lat",
    "area_m2",
)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stored(rows) -> _Stored:
    values = list(rows)
    if values[9] is not None:
        values[9] = bytes(values[9])
    return _Stored(*values)


def _load_stored(codes: Iterable[str]) -> dict[str, _Stored]:
    found: dict[str, _Stored] = {}
    for chunk in _chunks(sorted(set(codes)), _LOOKUP_CHUNK):
        for values in Area.objects.filter(code__in=chunk).values_list(*_STORED_FIELDS):
            stored = _stored(values)
            found[stored.code] = stored
    return found


def _load_children(parent_ids: Iterable[int]) -> list[_Stored]:
    children: list[_Stored] = []
    for chunk in _chunks(sorted(set(parent_ids)), _LOOKUP_CHUNK):
        children.extend(
            _stored(v)
            for v in Area.objects.filter(parent_id__in=chunk, geometry__isnull=False).values_list(
                *_STORED_FIELDS
            )
        )
    return children


# --- checking the tree -------------------------------------------------------------------------


def _check_tree(
    rows: list[_Row],
    level_by_code: dict[str, AreaLevel],
    stored: dict[str, _Stored],
    problems: _Problems,
) -> list[_Row]:
    kept = []
    for row in rows:
        record = row.record
        stored_self = stored.get(row.code)
        if stored_self is not None and stored_self.level != row.level:
            problems.add(
                record,
                _("the area exists as a %(stored)s; it cannot become a %(level)s")
                % {"stored": AreaLevel(stored_self.level).slug, "level": row.level.slug},
            )
            continue
        parent_level = None
        if row.parent_code is not None:
            if row.parent_code in level_by_code:
                parent_level = level_by_code[row.parent_code]
            elif row.parent_code in stored:
                parent_level = AreaLevel(stored[row.parent_code].level)
            else:
                problems.add(
                    record,
                    _("unknown parent %(parent)s: it is neither in the file nor in the database")
                    % {"parent": row.parent_code},
                )
                continue
        problem = code_problem(row.code, row.level, row.parent_code, parent_level)
        if problem:
            problems.add(record, problem)
            continue
        kept.append(row)
    return kept


def _outside_m2(children: list[BaseGeometry], parents: list[BaseGeometry]) -> np.ndarray:
    """Area (m²) of each child outside its parent; 0 where the parent contains it."""
    child_arr = np.array(children, dtype=object)
    parent_arr = np.array(parents, dtype=object)
    # A prepared parent answers "contains" fast; only the few children that
    # are not plainly inside are cut and measured.
    inside = shapely.contains(parent_arr, child_arr)
    outside = np.zeros(len(children))
    todo = np.flatnonzero(~inside)
    if len(todo):
        cut = shapely.difference(child_arr[todo], parent_arr[todo], grid_size=geo.GRID_SIZE)
        outside[todo] = [geo.geodesic_area_m2(g) for g in cut]
    return outside


def _outside_limit(area_m2: float, tolerance: float) -> float:
    return max(OUTSIDE_MIN_M2, tolerance * area_m2)


def _check_containment(
    rows: list[_Row],
    row_by_code: dict[str, _Row],
    stored: dict[str, _Stored],
    problems: _Problems,
    tolerance: float,
) -> None:
    """Report children outside their parent beyond the tolerance.

    Two kinds of pairs are checked: each child in the file against its parent
    (from the file, or the stored boundary), and each stored child not in the
    file against a parent whose boundary the file replaces.
    """
    parent_shapes: dict[str, BaseGeometry] = {}

    def parent_shape(code: str) -> BaseGeometry | None:
        if code not in parent_shapes:
            row = row_by_code.get(code)
            shape = row.geom if row is not None and row.geom is not None else None
            if shape is None and code in stored:
                shape = stored[code].shape
            if shape is not None:
                shapely.prepare(shape)
            parent_shapes[code] = shape
        return parent_shapes[code]

    pairs: list[tuple[_Row, BaseGeometry]] = []
    for row in rows:
        if row.geom is None or row.parent_code is None:
            continue
        shape = parent_shape(row.parent_code)
        if shape is not None:
            pairs.append((row, shape))
    if pairs:
        outside = _outside_m2([r.geom for r, _p in pairs], [p for _r, p in pairs])
        for (row, _shape), out_m2 in zip(pairs, outside, strict=True):
            if out_m2 > _outside_limit(row.measured.area_m2, tolerance):
                problems.add(
                    row.record,
                    _(
                        "lies %(out).0f m² (%(share).1f%% of its area) outside its parent "
                        "%(parent)s; the tolerance is %(limit).0f m²"
                    )
                    % {
                        "out": out_m2,
                        "share": 100 * out_m2 / max(row.measured.area_m2, 1e-9),
                        "parent": row.parent_code,
                        "limit": _outside_limit(row.measured.area_m2, tolerance),
                    },
                )

    # Stored children of a parent whose boundary changes must still fit in it.
    reshaped = {
        stored[row.code].id: row
        for row in rows
        if row.geom is not None
        and row.code in stored
        and stored[row.code].geometry != row.measured.wkb
    }
    if reshaped:
        others = [c for c in _load_children(reshaped) if c.code not in row_by_code]
        if others:
            parents = [reshaped[c.parent_id] for c in others]
            outside = _outside_m2(
                [c.shape for c in others], [parent_shape(p.code) for p in parents]
            )
            for child, parent, out_m2 in zip(others, parents, outside, strict=True):
                limit = _outside_limit(child.area_m2 or 0.0, tolerance)
                if out_m2 > limit:
                    problems.add(
                        parent.record,
                        _(
                            "the new boundary leaves %(out).0f m² of the stored %(level)s "
                            "%(child)s (not in this file) outside; the tolerance is %(limit).0f m²"
                        )
                        % {
                            "out": out_m2,
                            "level": AreaLevel(child.level).slug,
                            "child": child.code,
                            "limit": limit,
                        },
                    )


# --- planning and writing ----------------------------------------------------------------------


def _same_shape(old: bytes | None, new: bytes) -> bool:
    if old == new:
        return True
    if old is None:
        return False
    # The stored WKB may come from elsewhere (the demo city, an older import)
    # with another vertex order; compare the shapes in canonical form.
    return bool(
        shapely.equals_exact(
            shapely.normalize(geo.from_wkb(old)), shapely.normalize(geo.from_wkb(new)), 0.0
        )
    )


def _values(row: _Row, old: _Stored | None) -> dict:
    """The stored values after this import: given values win, absent ones are kept."""
    values = {
        "code": row.code,
        "level": int(row.level),
        "name": row.name,
        "name_en": row.name_en if row.name_en is not None else (old.name_en if old else ""),
        "households": row.households
        if row.households is not None
        else (old.households if old else 0),
        "population": row.population
        if row.population is not None
        else (old.population if old else 0),
    }
    m = row.measured
    if m is not None:
        values.update(m.as_fields())
    elif old is not None:
        # A record without a boundary (a division list) never erases one.
        values.update({f: getattr(old, f) for f in geo.BOUNDARY_FIELDS})
    else:
        values.update(dict.fromkeys(geo.BOUNDARY_FIELDS))
    return values


def _unchanged(row: _Row, old: _Stored, values: dict) -> bool:
    return (
        old.level == values["level"]
        and old.parent_code == row.parent_code
        and old.name == values["name"]
        and old.name_en == values["name_en"]
        and old.households == values["households"]
        and old.population == values["population"]
        and (row.measured is None or _same_shape(old.geometry, row.measured.wkb))
    )


def _write(rows: list[_Row], stored: dict[str, _Stored], report: ImportReport, bar) -> None:
    id_by_code = {code: s.id for code, s in stored.items()}
    now = timezone.now()
    by_level: dict[int, list[_Row]] = {}
    for row in rows:
        by_level.setdefault(int(row.level), []).append(row)
    for level in sorted(by_level):
        slug = AreaLevel(level).slug
        creates: list[Area] = []
        updates: list[Area] = []
        for row in by_level[level]:
            old = stored.get(row.code)
            values = _values(row, old)
            if old is not None and _unchanged(row, old, values):
                report.unchanged[slug] += 1
                continue
            parent_id = id_by_code[row.parent_code] if row.parent_code else None
            if old is None:
                report.created[slug] += 1
                report.created_codes.append(row.code)
                if not report.dry_run:
                    creates.append(Area(parent_id=parent_id, **values))
            else:
                report.updated[slug] += 1
                report.updated_codes.append(row.code)
                if not report.dry_run:
                    updates.append(Area(pk=old.id, parent_id=parent_id, updated_at=now, **values))
        if report.dry_run:
            # Codes of areas the dry run would create still resolve for their children.
            id_by_code.update(
                {row.code: -1 for row in by_level[level] if row.code not in id_by_code}
            )
            continue
        for chunk in _chunks(creates, BATCH_SIZE):
            Area.objects.bulk_create(chunk)
            bar.update(len(chunk))
        missing = [a.code for a in creates if a.pk is None]
        if missing:  # a backend that does not return ids from a bulk insert
            id_by_code.update(_ids_by_code(missing))
        id_by_code.update({a.code: a.pk for a in creates if a.pk is not None})
        for chunk in _chunks(updates, BATCH_SIZE):
            Area.objects.bulk_update(chunk, _UPDATE_FIELDS)
            bar.update(len(chunk))
        bar.update(len(by_level[level]) - len(creates) - len(updates))


def _ids_by_code(codes: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(codes, _LOOKUP_CHUNK):
        found.update(Area.objects.filter(code__in=chunk).values_list("code", "id"))
    return found


# --- the use cases --------------------------------------------------------------------------------


def areas_import(
    *,
    records: Sequence[AreaRecord],
    crs: str = "wgs84",
    repair: bool = False,
    dry_run: bool = False,
    progress: bool = False,
    source_name: str = "",
    tolerance: float = OUTSIDE_TOLERANCE,
    scope: Sequence[str] | None = None,
    actor=None,
) -> ImportReport:
    """Check every record, then create or update the areas in one transaction.

    ``scope``: the area-code prefixes the importer may write (her
    ``geo.import_area`` grants); every record's code must start with one, or the
    whole file is refused with :class:`AreaImportOutsideScope` naming each such
    record, before anything else is looked up. None: no limit (superusers,
    commands).

    Refuses the whole file with :class:`AreaImportError` when any record is bad:
    missing properties, unknown level, bad code, unknown parent, duplicate code,
    a boundary that is not a (valid) Polygon/MultiPolygon, coordinates outside
    the range of ``crs``, or a child outside its parent by more than
    ``max(OUTSIDE_MIN_M2, tolerance × the child's area)`` (0.5 % by default).

    ``repair`` fixes invalid boundaries (make_valid, polygonal part kept) and
    lists each in the report with the area gained or lost. ``dry_run`` checks
    and reports without writing. Records may come in any order (parents after
    children); a record without a boundary keeps the one stored.

    A written import is one audit entry by ``actor`` (None: the system) with the
    codes it created and updated, in the same transaction as the write.
    """
    try:
        crs = check_crs(crs)
    except ValueError as exc:
        raise DomainError(str(exc), errors={"crs": [str(exc)]}) from None
    report = ImportReport(source_name=source_name, crs=crs, dry_run=dry_run)
    problems = _Problems()
    if not records:
        problems.add(None, _("holds no areas"))
        raise AreaImportError(problems.items, source_name=source_name)

    show = progress and len(records) >= PROGRESS_THRESHOLD
    atomic = nullcontext() if dry_run else transaction.atomic()
    with (
        atomic,
        tqdm(
            total=2 * len(records),
            disable=not show,
            file=sys.stderr,
            unit="area",
            desc=source_name or "import",
        ) as bar,
    ):
        if scope is not None:
            _check_scope(records, tuple(scope), source_name)
        rows: list[_Row] = []
        first_seen: dict[str, AreaRecord] = {}
        level_by_code: dict[str, AreaLevel] = {}
        for record in records:
            code = record.code_text
            if code is not None:
                if code in first_seen:
                    problems.add(
                        record,
                        _("duplicate code %(code)s: already used by %(first)s")
                        % {"code": code, "first": first_seen[code].where},
                    )
                    continue
                first_seen[code] = record
                # Known as a parent even if the record itself is refused, so
                # its children are not reported as orphans too.
                level = _parse_level(record.level)
                if level is not None:
                    level_by_code[code] = level
            row = _check_fields(record, problems)
            if row is not None:
                rows.append(row)
        bar.update(len(records) - len(rows))

        rows = _check_geometries(
            rows, crs=crs, repair=repair, problems=problems, report=report, bar=bar
        )
        wanted = {r.code for r in rows}
        wanted.update(r.parent_code for r in rows if r.parent_code)
        stored = _load_stored(wanted)
        rows = _check_tree(rows, level_by_code, stored, problems)
        row_by_code = {r.code: r for r in rows}
        _check_containment(rows, row_by_code, stored, problems, tolerance)
        if problems:
            raise AreaImportError(problems.items, source_name=source_name)

        rows.sort(key=lambda r: (r.level, r.code))
        _write(rows, stored, report, bar)
        if report.written:
            bump_area_version()
            _audit_import(report, actor)
    return report


# An import may touch tens of thousands of areas: the audit entry names them
# up to this many and counts the rest.
AUDIT_CODES_LIMIT = 1000


def _audit_import(report: ImportReport, actor) -> None:
    def listed(codes: list[str]) -> dict:
        return {"codes": codes[:AUDIT_CODES_LIMIT], "count": len(codes)}

    audit_log(
        actor=actor,
        action="area.import",
        object_type=Area._meta.label_lower,
        object_repr=(report.source_name or "import")[:200],
        after={"created": listed(report.created_codes), "updated": listed(report.updated_codes)},
        detail={
            "crs": report.crs,
            "repaired": [r.code for r in report.repaired],
            "totals": {"created": report.total_created, "updated": report.total_updated},
        },
    )


def _check_scope(records: Sequence[AreaRecord], prefixes: tuple[str, ...], source_name) -> None:
    # Checked first and alone: the later checks read stored areas, and their
    # messages must not tell an importer about areas outside her scope.
    problems = _Problems()
    for record in records:
        code = record.code_text
        if code is None:
            continue
        if not code.startswith(prefixes):
            problems.add(record, _("is outside the areas you may import"))
    if problems:
        raise AreaImportOutsideScope(problems.items, source_name=source_name)


def import_feature_collection(
    fc: dict,
    *,
    crs: str = "wgs84",
    repair: bool = False,
    dry_run: bool = False,
    tolerance: float = OUTSIDE_TOLERANCE,
    progress: bool = False,
    source_name: str = "",
    actor=None,
) -> ImportReport:
    """Import a parsed GeoJSON FeatureCollection (see :func:`areas_import`)."""
    records = records_from_feature_collection(fc, source_name=source_name)
    return areas_import(
        records=records,
        crs=crs,
        repair=repair,
        dry_run=dry_run,
        progress=progress,
        source_name=source_name,
        tolerance=tolerance,
        actor=actor,
    )


__all__ = [
    "AreaImportError",
    "AreaImportOutsideScope",
    "AreaRecord",
    "ImportReport",
    "Problem",
    "RepairedFeature",
    "areas_import",
    "import_feature_collection",
    "read_csv",
    "read_file",
    "read_geojson",
    "records_from_feature_collection",
]
