"""The work calendar: which days are working days, and arithmetic in working time.

Everything here is plain Python: no ORM, no settings. ``core.calendar_store``
builds a ``WorkCalendar`` from the settings, the ``holidays`` package and the
overrides an admin loaded, and caches it per process.

Rules (see docs/cases.md):

- A working day is a weekday that is not a public holiday or a day off, or a
  weekend day that has been swapped into a working day (调休). An override for
  the date decides over all of that.
- Every working day has the same working periods (by default 08:30–12:00 and
  13:30–17:30, local time). Time outside them does not count.
- ``add_working_hours`` counts working time from ``start``; the deadline is the
  earliest instant at which that much working time has passed (a limit that
  runs out exactly at 12:00 ends at 12:00, not at 13:30).
- ``add_working_days``: as with periods set in days by Chinese law, the day on
  which the clock starts is not counted, and the period ends at the close of
  business of its last day: N working days from any moment of day D end at the
  end of the last working period of the N-th working day after D.

Each year is turned into a table once (working day flags and a running count
of working days), so arithmetic is a few binary searches, never a walk over
minutes or days. ``WorkCalendar.compiled(start, end)`` goes further for bulk
work (generating a million cases): a ``CompiledCalendar`` of the years between
answers the same three questions with the same results, on instants given as
integer microseconds, from lists instead of time zone conversions.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

__all__ = [
    "CompiledCalendar",
    "WorkCalendar",
    "YearRules",
    "china_year_rules",
    "from_us",
    "parse_periods",
    "substituted_workday",
    "to_us",
]

DEFAULT_WORK_HOURS = (("08:30", "12:00"), ("13:30", "17:30"))
DEFAULT_WEEKEND = frozenset({5, 6})  # Saturday, Sunday (date.weekday())


@dataclass(frozen=True)
class YearRules:
    """What a holiday source knows about one year."""

    days_off: frozenset[date]  # public holidays and days off given for swapped days
    working_days: frozenset[date]  # weekend days worked in exchange (调休)


# --- the holidays package -------------------------------------------------------

# The package names each swapped day off after the day worked in its place:
# "Day off (substituted from 09/20/2026)" in English, "休息日（由 2026-09-20 调休）"
# in Chinese. core/tests/test_calendar.py fails when either spelling changes.
_SUBSTITUTED = (
    (re.compile(r"substituted from (\d{2})/(\d{2})/(\d{4})"), (3, 1, 2)),
    (re.compile(r"由\s*(\d{4})-(\d{2})-(\d{2})\s*调休"), (1, 2, 3)),
)


def substituted_workday(name: str) -> date | None:
    """The working day named in a day off's name ("... substituted from D"), or None."""
    for pattern, (y, m, d) in _SUBSTITUTED:
        match = pattern.search(name)
        if match:
            return date(int(match.group(y)), int(match.group(m)), int(match.group(d)))
    return None


def china_year_rules(year: int, *, language: str = "en_US") -> YearRules:
    """Public holidays and swapped working days of mainland China for ``year``."""
    import holidays

    table = holidays.China(years=[year], language=language)
    days_off: set[date] = set()
    working: set[date] = set()
    for day, names in table.items():
        days_off.add(day)
        for name in names.split("; "):
            worked = substituted_workday(name)
            if worked is not None:
                working.add(worked)
    # A day worked in exchange for a day off in another year (late December for
    # an early January holiday) is named in that other year's table.
    neighbour = holidays.China(years=[year + 1], language=language)
    for names in neighbour.values():
        for name in names.split("; "):
            worked = substituted_workday(name)
            if worked is not None and worked.year == year:
                working.add(worked)
    return YearRules(days_off=frozenset(days_off), working_days=frozenset(working))


# --- working periods ---------------------------------------------------------------


def _seconds(text: str) -> int:
    try:
        hours, minutes = text.strip().split(":")
        value = int(hours) * 3600 + int(minutes) * 60
    except (AttributeError, ValueError):
        raise ValueError(f"a time of day is HH:MM, got {text!r}") from None
    if not 0 <= value <= 24 * 3600:
        raise ValueError(f"a time of day is between 00:00 and 24:00, got {text!r}")
    return value


def parse_periods(periods: Iterable[Iterable[str]]) -> tuple[tuple[int, int], ...]:
    """``[("08:30", "12:00"), ...]`` → seconds after midnight, checked for order."""
    result: list[tuple[int, int]] = []
    for pair in periods:
        start, end = (_seconds(v) for v in pair)
        if end <= start:
            raise ValueError(f"a working period must end after it starts: {tuple(pair)!r}")
        if result and start < result[-1][1]:
            raise ValueError("working periods must be in order and must not overlap")
        result.append((start, end))
    if not result:
        raise ValueError("at least one working period is needed")
    return tuple(result)


# --- the calendar ---------------------------------------------------------------------


@dataclass
class _Year:
    first: date
    working: list[bool]  # one per day of the year
    # count[i]: working days before day i; count[len] is the year's total.
    count: list[int]

    def index(self, day: date) -> int:
        return (day - self.first).days


class WorkCalendar:
    """Working days and working time in one time zone.

    ``rules_for_year`` gives the holidays of a year (``china_year_rules`` in
    production); ``overrides`` maps a date to True (working) or False (day off)
    and wins over everything else.
    """

    def __init__(
        self,
        *,
        tz: tzinfo,
        periods: Iterable[Iterable[str]] = DEFAULT_WORK_HOURS,
        weekend: Iterable[int] = DEFAULT_WEEKEND,
        rules_for_year: Callable[[int], YearRules] | None = None,
        overrides: Mapping[date, bool] | None = None,
    ):
        self.tz = tz
        self.periods = parse_periods(periods)
        self.weekend = frozenset(weekend)
        self.day_seconds = sum(end - start for start, end in self.periods)
        self._rules_for_year = rules_for_year
        self.overrides = dict(overrides or {})
        self._years: dict[int, _Year] = {}
        self._period_starts = [start for start, _ in self.periods]
        # Working seconds of a day before each period starts.
        self._before: list[int] = []
        done = 0
        for start, end in self.periods:
            self._before.append(done)
            done += end - start

    # -- days --------------------------------------------------------------------

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is not None:
            return table
        rules = self._rules_for_year(year) if self._rules_for_year else None
        first = date(year, 1, 1)
        length = (date(year + 1, 1, 1) - first).days
        working: list[bool] = []
        count = [0]
        for i in range(length):
            day = first + timedelta(days=i)
            if day in self.overrides:
                flag = self.overrides[day]
            elif rules is not None and day in rules.working_days:
                flag = True
            elif rules is not None and day in rules.days_off:
                flag = False
            else:
                flag = day.weekday() not in self.weekend
            working.append(flag)
            count.append(count[-1] + flag)
        table = self._years[year] = _Year(first=first, working=working, count=count)
        return table

    def is_working_day(self, day: date) -> bool:
        if isinstance(day, datetime):
            day = self.local(day).date()
        table = self._year(day.year)
        return table.working[table.index(day)]

    def working_days_in(self, year: int) -> int:
        return self._year(year).count[-1]

    # -- instants <-> working positions ---------------------------------------------

    def local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("working time needs an aware datetime")
        return moment.astimezone(self.tz)

    def _seconds_into_day(self, tod: int) -> int:
        """Working seconds of a working day that have passed at ``tod`` seconds after midnight."""
        i = bisect_right(self._period_starts, tod) - 1
        if i < 0:
            return 0
        start, end = self.periods[i]
        return self._before[i] + min(tod, end) - start

    def _position(self, moment: datetime) -> tuple[int, float]:
        """(year, working seconds of that year passed at ``moment``)."""
        local = self.local(moment)
        day = local.date()
        table = self._year(day.year)
        i = table.index(day)
        passed = table.count[i] * self.day_seconds
        if table.working[i]:
            tod = local.hour * 3600 + local.minute * 60 + local.second
            passed += self._seconds_into_day(tod)
            # Sub-second precision inside a period counts too.
            start_i = bisect_right(self._period_starts, tod) - 1
            if start_i >= 0 and tod < self.periods[start_i][1]:
                passed += local.microsecond / 1e6
        return day.year, passed

    def _year_seconds(self, year: int) -> int:
        return self._year(year).count[-1] * self.day_seconds

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        """Working seconds from ``a`` to ``b``; negative when ``b`` is before ``a``."""
        if b < a:
            return -self.working_seconds_between(b, a)
        year_a, pos_a = self._position(a)
        year_b, pos_b = self._position(b)
        total = pos_b - pos_a
        for year in range(year_a, year_b):
            total += self._year_seconds(year)
        return total

    def _instant(self, year: int, seconds: float) -> datetime:
        """The earliest instant at which ``seconds`` working seconds of ``year`` have passed.

        ``0 < seconds <= the year's working seconds``.
        """
        table = self._year(year)
        whole_days, rest = divmod(seconds, self.day_seconds)
        if rest == 0:
            # Exactly the end of a working day: the close of that day.
            target_count, rest = int(whole_days), float(self.day_seconds)
        else:
            target_count = int(whole_days) + 1
        # The working day on which the running count reaches target_count.
        i = bisect_left(table.count, target_count) - 1
        day = table.first + timedelta(days=i)
        p = bisect_left(self._before, rest) - 1
        start, _end = self.periods[p]
        tod = start + (rest - self._before[p])
        midnight = datetime.combine(day, time(0), tzinfo=self.tz)
        return midnight + timedelta(seconds=tod)

    # -- deadlines -------------------------------------------------------------------

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment ``hours`` working hours after ``start`` have passed."""
        if hours < 0:
            raise ValueError("working hours to add must not be negative")
        if hours == 0:
            return start
        year, passed = self._position(start)
        target = passed + hours * 3600
        while target > self._year_seconds(year):
            target -= self._year_seconds(year)
            year += 1
            self._guard(year, start)
        return self._instant(year, target).astimezone(start.tzinfo)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The close of business of the ``days``-th working day after ``start``'s day."""
        if days < 1 or int(days) != days:
            raise ValueError("working days to add must be a whole number of at least 1")
        day = self.local(start).date()
        table = self._year(day.year)
        target = table.count[table.index(day) + 1] + int(days)
        year = day.year
        while target > table.count[-1]:
            target -= table.count[-1]
            year += 1
            self._guard(year, start)
            table = self._year(year)
        i = bisect_left(table.count, target) - 1
        close = datetime.combine(table.first + timedelta(days=i), time(0), tzinfo=self.tz)
        return (close + timedelta(seconds=self.periods[-1][1])).astimezone(start.tzinfo)

    def _guard(self, year: int, start: datetime) -> None:
        # A calendar without any working day (every day overridden off) would
        # otherwise look for a deadline forever.
        if year > start.year + 10:
            raise ValueError("no working time within ten years of the start")

    # -- a compiled table for many computations over a known period --------------------

    def compiled(self, start: date | datetime, end: date | datetime) -> CompiledCalendar:
        """The same arithmetic as a table of the local days from ``start``'s year to
        ``end``'s year: see :class:`CompiledCalendar`."""
        first = start.astimezone(self.tz).date() if isinstance(start, datetime) else start
        last = end.astimezone(self.tz).date() if isinstance(end, datetime) else end
        return CompiledCalendar(self, min(first, last).year, max(first, last).year)


# --- instants as integers -------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_US_PER_S = 1_000_000
_DAY_US = 86_400 * _US_PER_S


def to_us(moment: datetime) -> int:
    """An aware datetime as whole microseconds since 1970-01-01 UTC (exact)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("working time needs an aware datetime")
    return (moment - _EPOCH) // _ONE_US


def from_us(us: int, tz: tzinfo | None = UTC) -> datetime:
    """The aware datetime ``us`` microseconds after 1970-01-01 UTC, in ``tz``."""
    moment = _EPOCH + timedelta(microseconds=us)
    return moment if tz is None or tz is UTC else moment.astimezone(tz)


class CompiledCalendar:
    """A :class:`WorkCalendar`'s arithmetic for the local days of a few whole years.

    Built once (when each local day begins, the working seconds of its year
    before it, whether it is worked, which day is a year's n-th working day,
    and the working seconds passed at each second of a working day), it answers
    ``add_working_hours``, ``working_seconds_between`` and ``add_working_days``
    with a few list lookups instead of time zone conversions and searches, and
    gives exactly the calendar's answers: the same positions in the year, the
    same float operations in the same order, the same rounding to the
    microsecond. The ``*_us`` methods take and return instants as integer
    microseconds since 1970 UTC (:func:`to_us`, :func:`from_us`), for callers
    that compute millions of deadlines.

    A moment outside the compiled years, or on a day whose UTC offset changes
    (a daylight saving switch), is handed to the calendar itself.
    """

    def __init__(self, calendar: WorkCalendar, first_year: int, last_year: int):
        if last_year < first_year:
            raise ValueError("the last year of a compiled calendar comes after its first")
        self.calendar = calendar
        self.tz = calendar.tz
        self.periods = calendar.periods
        self.day_seconds = calendar.day_seconds
        self.first_year, self.last_year = first_year, last_year
        self._starts = list(calendar._period_starts)
        self._before = list(calendar._before)
        self._close = calendar.periods[-1][1] * _US_PER_S
        # At each second of a working day: the working seconds passed, and whether
        # the second lies inside a period (where its fraction counts too).
        self._into = [calendar._seconds_into_day(tod) for tod in range(86_400)]
        self._inside = [False] * 86_400
        for start, end in self.periods:
            for tod in range(start, min(end, 86_400)):
                self._inside[tod] = True
        self._year_seconds: dict[int, int] = {}
        self._year_counts: dict[int, list[int]] = {}
        self._year_index: dict[int, int] = {}  # the index of the year's 1 January
        # Per year, the index of its n-th working day at [n] (nothing at [0]).
        self._nth: dict[int, list[int]] = {}
        midnights: list[int] = []
        dates: list[date] = []
        # (midnight, year, working seconds of the year before the day, worked?) per
        # day, None for a day whose UTC offset changes.
        days: list[tuple | None] = []
        tz, hour = self.tz, timedelta(hours=1)
        for year in range(first_year, last_year + 1):
            table = calendar._year(year)
            self._year_seconds[year] = table.count[-1] * self.day_seconds
            self._year_counts[year] = table.count
            first_index = self._year_index[year] = len(midnights)
            nth = [first_index - 1]
            for i, flag in enumerate(table.working):
                day = table.first + timedelta(days=i)
                local = datetime.combine(day, time(0), tzinfo=tz)
                nxt = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
                offset = local.utcoffset()
                # One offset all day long, and a day of 24 hours: local time is
                # the instant plus that offset, so a time of day is a subtraction.
                even = nxt.utcoffset() == offset and (nxt - local) == timedelta(days=1)
                if even:
                    moment = local.astimezone(UTC)
                    for _h in range(24):
                        if moment.astimezone(tz).utcoffset() != offset:
                            even = False
                            break
                        moment += hour
                midnight = to_us(local)
                midnights.append(midnight)
                dates.append(day)
                days.append(
                    (midnight, year, table.count[i] * self.day_seconds, flag) if even else None
                )
                if flag:
                    nth.append(first_index + i)
            self._nth[year] = nth
        last = date(last_year + 1, 1, 1)
        midnights.append(to_us(datetime.combine(last, time(0), tzinfo=tz)))
        self._midnights, self._days, self._n = midnights, days, len(days)
        self._dates = dates
        self._lo, self._hi = midnights[0], midnights[-1]
        # Days of exactly 24 hours throughout: a day's index is a division.
        self._fixed = all(days) and all(
            b - a == _DAY_US for a, b in zip(midnights, midnights[1:], strict=False)
        )
        self._last: tuple = (None, None)

    # -- positions ------------------------------------------------------------------------

    def _index(self, us: int) -> int:
        """The index of the local day ``us`` falls on; -1 outside the compiled years."""
        if self._fixed:
            i = (us - self._lo) // _DAY_US
            return i if 0 <= i < len(self._days) else -1
        if self._lo <= us < self._hi:
            return bisect_right(self._midnights, us) - 1
        return -1

    def _day(self, us: int) -> tuple | None:
        i = self._index(us)
        return self._days[i] if i >= 0 else None

    def _position(self, us: int) -> tuple[int, int | float]:
        """As WorkCalendar._position: (year, working seconds of that year passed)."""
        last = self._last
        if last[0] == us:
            return last[1]
        if self._fixed:
            i = (us - self._lo) // _DAY_US
            day = self._days[i] if 0 <= i < self._n else None
        else:
            day = self._day(us)
        if day is None:
            found = self.calendar._position(from_us(us))
        else:
            midnight, year, base, working = day
            if working:
                tod, micro = divmod(us - midnight, _US_PER_S)
                if self._inside[tod]:
                    found = (year, base + self._into[tod] + micro / 1e6)
                else:
                    found = (year, base + self._into[tod])
            else:
                found = (year, base)
        self._last = (us, found)
        return found

    def _year_total(self, year: int) -> int:
        found = self._year_seconds.get(year)
        return found if found is not None else self.calendar._year_seconds(year)

    def _instant(self, year: int, seconds: int | float) -> int:
        """As WorkCalendar._instant, in microseconds."""
        nth = self._nth.get(year)
        if nth is not None:
            whole_days, rest = divmod(seconds, self.day_seconds)
            if rest == 0:
                target_count, rest = int(whole_days), float(self.day_seconds)
            else:
                target_count = int(whole_days) + 1
            if 0 < target_count < len(nth):
                day = self._days[nth[target_count]]
                if day is not None:
                    before = self._before
                    p = bisect_left(before, rest) - 1
                    tod = self._starts[p] + (rest - before[p])
                    # timedelta(seconds=tod), in microseconds
                    if tod.__class__ is int:
                        return day[0] + tod * _US_PER_S
                    whole = int(tod)
                    return day[0] + whole * _US_PER_S + round((tod - whole) * 1e6)
        return to_us(self.calendar._instant(year, seconds))

    # -- the arithmetic on microseconds -------------------------------------------------------

    def working_seconds_between_us(self, a: int, b: int) -> int | float:
        """As WorkCalendar.working_seconds_between, for instants in microseconds."""
        if b < a:
            return -self.working_seconds_between_us(b, a)
        year_a, pos_a = self._position(a)
        year_b, pos_b = self._position(b)
        total = pos_b - pos_a
        if year_a != year_b:
            for year in range(year_a, year_b):
                total += self._year_total(year)
        return total

    def add_working_hours_us(self, start: int, hours: float) -> int:
        """As WorkCalendar.add_working_hours, for an instant in microseconds."""
        if hours < 0:
            raise ValueError("working hours to add must not be negative")
        if hours == 0:
            return start
        year, passed = self._position(start)
        target = passed + hours * 3600
        total = self._year_seconds.get(year)
        if total is None or target > total:
            while target > self._year_total(year):
                target -= self._year_total(year)
                year += 1
                if year > self.last_year:
                    return to_us(self.calendar.add_working_hours(from_us(start), hours))
        return self._instant(year, target)

    def add_working_days_us(self, start: int, days: int) -> int:
        """As WorkCalendar.add_working_days, for an instant in microseconds."""
        if days < 1 or int(days) != days:
            raise ValueError("working days to add must be a whole number of at least 1")
        i = self._index(start)
        day = self._days[i] if i >= 0 else None
        if day is not None:
            year = day[1]
            counts = self._year_counts[year]
            target = counts[i - self._year_index[year] + 1] + int(days)
            while target > counts[-1]:
                target -= counts[-1]
                year += 1
                counts = self._year_counts.get(year)
                if counts is None:
                    break
            else:
                close = self._days[self._nth[year][target]]
                if close is not None:
                    return close[0] + self._close
        return to_us(self.calendar.add_working_days(from_us(start), days))

    def working_before_us(self, end: int, seconds: float) -> int:
        """The earliest instant from which ``seconds`` of working time pass until ``end``
        (``end`` itself for nothing): the inverse of ``add_working_hours_us``."""
        if seconds <= 0:
            return end
        year, passed = self._position(end)
        target = passed - seconds
        while target <= 0:
            year -= 1
            if year < self.first_year - 10:
                raise ValueError("no working time within ten years before the end")
            target += self._year_total(year)
        return self._instant(year, target)

    def local_date_us(self, us: int) -> date:
        """The local date of an instant in microseconds."""
        i = self._index(us)
        if i >= 0 and self._days[i] is not None:
            return self._dates[i]
        return from_us(us, self.tz).date()

    # -- the calendar's own signatures ------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        return self.calendar.is_working_day(day)

    def working_seconds_between(self, a: datetime, b: datetime) -> int | float:
        return self.working_seconds_between_us(to_us(a), to_us(b))

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        if hours < 0:
            raise ValueError("working hours to add must not be negative")
        if hours == 0:
            return start
        return from_us(self.add_working_hours_us(to_us(start), hours), start.tzinfo)

    def add_working_days(self, start: datetime, days: int) -> datetime:
        return from_us(self.add_working_days_us(to_us(start), days), start.tzinfo)
