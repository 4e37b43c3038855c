"""The work calendar of this installation: built from settings, the ``holidays``
package and the stored overrides, cached per process, and the override writes.

Every process keeps one ``WorkCalendar``. It is rebuilt when the settings that
shape it change, or when the overrides' version counter moved; the counter is
read at most every ``CIVICGRID["CALENDAR_MAX_STALENESS"]`` seconds (one
single-row query), so an override loaded anywhere reaches every process within
that time. The process that loads overrides sees them at once.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from time import monotonic
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from .calendar import DEFAULT_WEEKEND, DEFAULT_WORK_HOURS, WorkCalendar, YearRules, china_year_rules
from .errors import DomainError
from .models import CalendarOverride
from .versioning import bump_version, current_version

_lock = threading.Lock()
_state: dict = {"key": None, "calendar": None, "checked": 0.0, "config": None}


@lru_cache(maxsize=64)
def _china(year: int) -> YearRules:
    # The package's data for a year never changes within a process.
    return china_year_rules(year)


def _config() -> tuple:
    conf = getattr(settings, "CIVICGRID", {})
    hours = tuple(tuple(p) for p in conf.get("WORK_HOURS", DEFAULT_WORK_HOURS))
    weekend = tuple(sorted(conf.get("WEEKEND", DEFAULT_WEEKEND)))
    return settings.TIME_ZONE, hours, weekend


CALENDAR = "calendar"


def calendar_version() -> int:
    return current_version(CALENDAR)


def _bump_version() -> None:
    bump_version(CALENDAR)


def build_calendar() -> WorkCalendar:
    """A fresh calendar from the settings and every stored override."""
    tz_name, hours, weekend = _config()
    overrides = dict(CalendarOverride.objects.values_list("date", "is_working_day"))
    return WorkCalendar(
        tz=ZoneInfo(tz_name),
        periods=hours,
        weekend=weekend,
        rules_for_year=_china,
        overrides=overrides,
    )


def work_calendar() -> WorkCalendar:
    """This process's calendar, rebuilt when it may be stale."""
    conf = getattr(settings, "CIVICGRID", {})
    staleness = float(conf.get("CALENDAR_MAX_STALENESS", 1.0))
    now = monotonic()
    config = _config()
    current = _state["calendar"]
    if current is not None and _state["config"] == config and now - _state["checked"] < staleness:
        return current
    version = calendar_version()
    with _lock:
        # Another thread may have rebuilt it while this one waited for the lock.
        if _state["calendar"] is None or _state["key"] != (config, version):
            _state["calendar"] = build_calendar()
            _state["key"] = (config, version)
        _state["config"] = config
        _state["checked"] = now
        return _state["calendar"]


def invalidate_calendar() -> None:
    """Forget this process's calendar (the next use rebuilds it)."""
    with _lock:
        _state.update(key=None, calendar=None, checked=0.0, config=None)


# --- overrides -----------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideRow:
    date: date
    is_working_day: bool
    note: str = ""


_TRUE = {"1", "true", "yes", "y", "working", "work", "是", "上班"}
_FALSE = {"0", "false", "no", "n", "off", "holiday", "否", "休息"}


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(_("is_working must be true or false, got %(value)r") % {"value": value})


def _day(value) -> date:
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(_("date must be YYYY-MM-DD, got %(value)r") % {"value": value}) from None


def parse_overrides(text: str, *, name: str = "file") -> list[OverrideRow]:
    """Rows of a CSV (``date,is_working,note``; header optional) or JSON override file.

    JSON is a list of ``{"date": ..., "is_working": ..., "note": ...}`` objects.
    Every bad line is named; a file with any bad line yields nothing.
    """
    stripped = text.lstrip("\ufeff").strip()
    problems: list[str] = []
    rows: list[OverrideRow] = []
    seen: dict[date, str] = {}

    def take(where: str, raw_date, raw_flag, note) -> None:
        try:
            day = _day(raw_date)
            flag = _flag(raw_flag)
        except ValueError as exc:
            problems.append(f"{name}, {where}: {exc}")
            return
        note = "" if note is None else str(note).strip()
        if len(note) > 200:
            problems.append(f"{name}, {where}: " + _("the note is longer than 200 characters"))
            return
        if day in seen:
            problems.append(
                f"{name}, {where}: "
                + _("%(date)s is already given at %(where)s") % {"date": day, "where": seen[day]}
            )
            return
        seen[day] = where
        rows.append(OverrideRow(day, flag, note))

    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DomainError(
                f"{name}: " + _("not valid JSON (%(error)s)") % {"error": exc}
            ) from None
        if not isinstance(data, list):
            raise DomainError(f"{name}: " + _("JSON must be a list of objects"))
        for i, item in enumerate(data):
            where = _("item %(index)d") % {"index": i}
            if not isinstance(item, dict) or "date" not in item or "is_working" not in item:
                problems.append(f"{name}, {where}: " + _("needs date and is_working"))
                continue
            take(where, item["date"], item["is_working"], item.get("note"))
    else:
        for lineno, record in enumerate(csv.reader(io.StringIO(stripped)), start=1):
            if not record or all(not cell.strip() for cell in record):
                continue
            if lineno == 1 and record[0].strip().lower() == "date":
                continue
            where = _("line %(line)d") % {"line": lineno}
            if len(record) not in (2, 3):
                problems.append(
                    f"{name}, {where}: "
                    + _("expected date,is_working[,note], got %(count)d fields")
                    % {"count": len(record)}
                )
                continue
            take(where, record[0], record[1], record[2] if len(record) == 3 else "")
    if problems:
        raise DomainError(
            _("The override file has errors; nothing was written."),
            errors={"file": problems},
        )
    if not rows:
        raise DomainError(f"{name}: " + _("no overrides in the file"))
    return rows


def calendar_overrides_load(*, rows: list[OverrideRow], actor=None, source: str = "") -> dict:
    """Store ``rows`` (insert or replace per date) in one transaction; audited."""
    from accounts.audit import audit_log

    created = updated = unchanged = 0
    with transaction.atomic():
        existing = {
            o.date: o
            for o in CalendarOverride.objects.select_for_update().filter(
                date__in=[r.date for r in rows]
            )
        }
        for row in rows:
            current = existing.get(row.date)
            if current is None:
                CalendarOverride.objects.create(
                    date=row.date, is_working_day=row.is_working_day, note=row.note
                )
                created += 1
            elif current.is_working_day != row.is_working_day or current.note != row.note:
                current.is_working_day = row.is_working_day
                current.note = row.note
                current.save(update_fields=["is_working_day", "note", "updated_at"])
                updated += 1
            else:
                unchanged += 1
        if created or updated:
            _bump_version()
        summary = {"created": created, "updated": updated, "unchanged": unchanged}
        audit_log(
            actor=actor,
            action="calendar.load",
            object_type="core.calendaroverride",
            object_repr=source[:200],
            after=summary,
            detail={"dates": [r.date.isoformat() for r in rows][:500]},
        )
        transaction.on_commit(invalidate_calendar)
    invalidate_calendar()
    return summary


def calendar_overrides_load_file(*, path: Path, actor=None) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DomainError(f"{path}: " + _("not UTF-8 text")) from None
    rows = parse_overrides(text, name=str(path))
    return calendar_overrides_load(rows=rows, actor=actor, source=str(path))
