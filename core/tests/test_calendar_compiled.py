"""The compiled calendar (WorkCalendar.compiled) gives the calendar's own answers."""

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.calendar import CompiledCalendar, WorkCalendar, china_year_rules, from_us, to_us

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def at(y, m, d, hh=0, mm=0, ss=0, us=0, tz=SH):
    return datetime(y, m, d, hh, mm, ss, us, tzinfo=tz)


def _china():
    # The holidays package's days off and swapped working days, and a city's own.
    return WorkCalendar(
        tz=SH,
        rules_for_year=china_year_rules,
        overrides={date(2026, 11, 25): False, date(2026, 11, 28): True, date(2027, 2, 1): False},
    )


CALENDARS = {
    "china": _china,
    "six days, one period": lambda: WorkCalendar(tz=SH, periods=[("09:00", "17:00")], weekend=[6]),
    "night shift to midnight": lambda: WorkCalendar(
        tz=SH, periods=[("00:00", "02:00"), ("13:00", "15:30"), ("22:00", "24:00")]
    ),
    # Summer time starts and ends inside a working period.
    "berlin, a switch at work": lambda: WorkCalendar(
        tz=BERLIN, periods=[("01:30", "04:00"), ("08:00", "12:00")]
    ),
}

# Moments the arithmetic turns on: period edges, lunch, midnight, Friday evening.
EDGES = [(0, 0), (8, 30), (12, 0), (13, 30), (17, 30), (19, 0), (23, 59), (2, 0), (2, 30)]


def _moments(rnd, n, *, first=date(2025, 12, 1), days=500, tz=SH):
    out = []
    for _ in range(n):
        day = first + timedelta(days=rnd.randrange(days))
        roll = rnd.random()
        if roll < 0.3:
            hh, mm = rnd.choice(EDGES)
            moment = datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz)
        else:
            moment = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(
                microseconds=rnd.randrange(86_400 * 10**6)
            )
            if roll < 0.45:
                moment = moment.replace(microsecond=0)
        out.append(moment if rnd.random() < 0.5 else moment.astimezone(UTC))
    return out


def _hours(rnd):
    return rnd.choice(
        [
            rnd.uniform(0, 400),
            rnd.uniform(0, 3),
            float(rnd.randint(1, 80)),
            rnd.randint(1, 80),
            rnd.choice([0.25, 0.5, 2, 3.5, 7.5, 24.0, 1e-6, 120.75]),
        ]
    )


@pytest.mark.parametrize("name", sorted(CALENDARS))
def test_compiled_gives_the_calendars_answers(name):
    calendar = CALENDARS[name]()
    compiled = calendar.compiled(date(2025, 6, 1), date(2027, 6, 30))
    assert isinstance(compiled, CompiledCalendar)
    assert (compiled.first_year, compiled.last_year) == (2025, 2027)
    tz = calendar.tz
    rnd = random.Random(name)
    # From half a year before the table to a year after it: the edges fall back.
    moments = _moments(rnd, 2500, first=date(2024, 7, 1), days=365 * 4, tz=tz)
    for start in moments:
        hours = _hours(rnd)
        expected = calendar.add_working_hours(start, hours)
        got = compiled.add_working_hours(start, hours)
        assert got == expected, (start, hours, got, expected)
        assert got.tzinfo == start.tzinfo
        end = start + timedelta(
            microseconds=rnd.randrange(-40 * 86_400 * 10**6, 40 * 86_400 * 10**6)
        )
        assert compiled.working_seconds_between(start, end) == calendar.working_seconds_between(
            start, end
        ), (start, end)
        # A deadline's yellow moment: the share of the working time between them.
        allowed = calendar.working_seconds_between(start, expected)
        if allowed > 0:
            assert compiled.add_working_hours(start, 0.75 * allowed / 3600) == (
                calendar.add_working_hours(start, 0.75 * allowed / 3600)
            )
        days = rnd.randint(1, 30)
        assert compiled.add_working_days(start, days) == calendar.add_working_days(start, days)
        assert compiled.local_date_us(to_us(start)) == start.astimezone(tz).date()


def test_holidays_swapped_days_and_friday_evenings():
    calendar = _china()
    compiled = calendar.compiled(at(2026, 1, 1), at(2027, 12, 31))
    cases = [
        (at(2026, 11, 20, 19, 0), 2, at(2026, 11, 23, 10, 30)),  # Friday evening → Monday
        (at(2026, 11, 27, 19, 0), 2, at(2026, 11, 28, 10, 30)),  # a city's own working Saturday
        (at(2026, 9, 30, 16, 0), 4, at(2026, 10, 8, 11, 0)),  # National Day week
        (at(2026, 10, 9, 17, 0), 1, at(2026, 10, 10, 9, 0)),  # a swapped Saturday
        (at(2026, 12, 31, 16, 0), 8, at(2027, 1, 4, 16, 30)),  # over the year's end
        (at(2026, 11, 24, 17, 0), 1, at(2026, 11, 26, 9, 0)),  # a city's own day off
        (at(2026, 11, 23, 10, 0), 2, at(2026, 11, 23, 12, 0)),  # ends at noon, not 13:30
    ]
    for start, hours, deadline in cases:
        assert compiled.add_working_hours(start, hours) == deadline
        assert compiled.working_seconds_between(start, deadline) == hours * 3600
    assert compiled.add_working_days(at(2026, 9, 30, 16, 0), 3) == at(2026, 10, 10, 17, 30)
    assert compiled.add_working_days(at(2026, 12, 30, 9, 0), 2) == at(2027, 1, 4, 17, 30)
    # The working Saturday counts whole, the Sunday not at all.
    assert compiled.working_seconds_between(at(2026, 11, 28, 8), at(2026, 11, 29, 18)) == 7.5 * 3600
    # The microseconds count inside a period only, as the calendar counts them.
    inside = at(2026, 11, 23, 9, 0, 0, 250_000)
    assert compiled.working_seconds_between(at(2026, 11, 23, 9), inside) == 0.25
    assert (
        compiled.working_seconds_between(at(2026, 11, 23, 12), at(2026, 11, 23, 12, 0, 0, 1)) == 0
    )


def test_microsecond_api_and_round_trip():
    calendar = _china()
    compiled = calendar.compiled(date(2026, 1, 1), date(2026, 12, 31))
    start = at(2026, 11, 20, 19, 0, 0, 123_456)  # a Friday evening
    us = to_us(start)
    assert from_us(us) == start and from_us(us).tzinfo is UTC
    assert from_us(us, SH).tzinfo is SH
    deadline = compiled.add_working_hours_us(us, 2)
    assert from_us(deadline) == calendar.add_working_hours(start, 2)
    assert compiled.working_seconds_between_us(us, deadline) == 2 * 3600
    assert compiled.working_seconds_between_us(deadline, us) == -2 * 3600
    assert from_us(compiled.add_working_days_us(us, 1)) == at(2026, 11, 23, 17, 30)
    assert compiled.add_working_hours_us(us, 0) == us


def test_working_before_is_the_inverse_of_adding():
    calendar = _china()
    compiled = calendar.compiled(date(2025, 1, 1), date(2027, 12, 31))
    rnd = random.Random(5)
    for end in _moments(rnd, 1500, first=date(2026, 1, 1), days=700):
        seconds = rnd.uniform(1, 90 * 27_000)
        start = compiled.working_before_us(to_us(end), seconds)
        assert calendar.working_seconds_between(from_us(start), end) == pytest.approx(
            seconds, abs=1e-5
        )
        # The earliest such moment: a working second earlier counts one more.
        earlier = compiled.working_before_us(to_us(end), seconds + 1)
        assert earlier < start
    assert compiled.working_before_us(123, 0) == 123


def test_bad_arguments_are_refused_as_by_the_calendar():
    compiled = _china().compiled(date(2026, 1, 1), date(2026, 12, 31))
    with pytest.raises(ValueError, match="aware"):
        compiled.add_working_hours(datetime(2026, 11, 23, 9, 0), 1)
    with pytest.raises(ValueError, match="aware"):
        compiled.working_seconds_between(datetime(2026, 11, 23, 9), at(2026, 11, 23, 10))
    with pytest.raises(ValueError):
        compiled.add_working_hours(at(2026, 11, 23, 9, 0), -1)
    with pytest.raises(ValueError):
        compiled.add_working_days(at(2026, 11, 23, 9, 0), 0)
    with pytest.raises(ValueError):
        compiled.add_working_days(at(2026, 11, 23, 9, 0), 1.5)
    start = at(2026, 11, 23, 9, 0)
    assert compiled.add_working_hours(start, 0) is start
    with pytest.raises(ValueError):
        CompiledCalendar(WorkCalendar(tz=SH), 2026, 2025)
    # Given either way round, the table spans the years between.
    assert WorkCalendar(tz=SH).compiled(date(2026, 5, 1), date(2025, 5, 1)).first_year == 2025
    # A calendar without working days refuses instead of looping, compiled or not.
    idle = WorkCalendar(tz=SH, weekend=range(7)).compiled(date(2026, 1, 1), date(2026, 12, 31))
    with pytest.raises(ValueError, match="no working time"):
        idle.add_working_hours(at(2026, 11, 23, 9), 1)


def test_a_switch_to_summer_time_is_left_to_the_calendar():
    calendar = CALENDARS["berlin, a switch at work"]()
    compiled = calendar.compiled(date(2026, 1, 1), date(2026, 12, 31))
    # 29 March 2026: 02:00 does not exist; the calendar's answer all the same.
    start = at(2026, 3, 27, 3, 0, tz=BERLIN)
    for hours in (0.5, 1, 2.5, 3, 6.5, 13):
        assert compiled.add_working_hours(start, hours) == calendar.add_working_hours(start, hours)
    spring = at(2026, 3, 29, 1, 45, tz=BERLIN)
    later = at(2026, 3, 30, 9, 0, tz=BERLIN)
    assert compiled.working_seconds_between(spring, later) == calendar.working_seconds_between(
        spring, later
    )
