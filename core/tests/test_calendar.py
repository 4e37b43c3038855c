from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import holidays
import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone, translation

from accounts.models import AuditEntry
from core.calendar import (
    WorkCalendar,
    YearRules,
    china_year_rules,
    parse_periods,
    substituted_workday,
)
from core.calendar_store import invalidate_calendar, work_calendar
from core.models import CalendarOverride

SH = ZoneInfo("Asia/Shanghai")
HOUR = 3600


def at(y, m, d, hh=0, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=SH)


@pytest.fixture(scope="module")
def cal():
    return WorkCalendar(tz=SH, rules_for_year=china_year_rules)


# --- the holidays package's spelling -----------------------------------------------------

# Weekend days worked in 2026 in exchange for days off (State Council notice for 2026).
SWAPPED_2026 = {
    date(2026, 1, 4),
    date(2026, 2, 14),
    date(2026, 2, 28),
    date(2026, 5, 9),
    date(2026, 9, 20),
    date(2026, 10, 10),
}


@pytest.mark.parametrize("language", ["en_US", "zh_CN"])
def test_package_names_substituted_days_as_we_parse_them(language):
    """Fails when the holidays package changes how it names a swapped day off."""
    table = holidays.China(years=[2026], language=language)
    found = {substituted_workday(name) for name in table.values()} - {None}
    assert found == SWAPPED_2026
    assert china_year_rules(2026, language=language).working_days == SWAPPED_2026


def test_substituted_spellings():
    assert substituted_workday("Day off (substituted from 09/20/2026)") == date(2026, 9, 20)
    assert substituted_workday("休息日（由 2026-10-10 调休）") == date(2026, 10, 10)
    assert substituted_workday("National Day") is None


def test_year_rules_agree_with_the_package_own_workday_list():
    rules = china_year_rules(2026)
    package = holidays.China(years=[2026])
    assert {d for d in package.weekend_workdays if d.year == 2026} == set(rules.working_days)


# --- days ---------------------------------------------------------------------------------


def test_national_day_week_2026(cal):
    for day in range(1, 8):
        assert not cal.is_working_day(date(2026, 10, day)), f"Oct {day} is a day off"
    assert cal.is_working_day(date(2026, 9, 30))
    assert cal.is_working_day(date(2026, 10, 8))
    # Swapped working days around it: a Sunday and a Saturday.
    assert date(2026, 9, 20).weekday() == 6 and cal.is_working_day(date(2026, 9, 20))
    assert date(2026, 10, 10).weekday() == 5 and cal.is_working_day(date(2026, 10, 10))
    assert not cal.is_working_day(date(2026, 10, 11))  # an ordinary Sunday


def test_ordinary_weekend_and_weekday(cal):
    assert cal.is_working_day(date(2026, 11, 27))  # Friday
    assert not cal.is_working_day(date(2026, 11, 28))
    assert not cal.is_working_day(date(2026, 11, 29))


# --- working hours ------------------------------------------------------------------------


def test_friday_evening_report_counts_from_monday_morning(cal):
    friday_evening = at(2026, 11, 27, 19, 0)
    assert cal.add_working_hours(friday_evening, 2) == at(2026, 11, 30, 10, 30)
    assert cal.add_working_days(friday_evening, 1) == at(2026, 11, 30, 17, 30)


@time_machine.travel(datetime(2026, 11, 27, 11, 0, tzinfo=UTC))  # Friday 19:00 in Shanghai
def test_report_made_now_on_friday_evening(cal):
    deadline = cal.add_working_hours(timezone.now(), 4)
    # 3.5 h on Monday morning, half an hour after lunch.
    assert deadline == at(2026, 11, 30, 14, 0)


def test_lunch_break_is_skipped(cal):
    assert cal.add_working_hours(at(2026, 11, 23, 11, 0), 2) == at(2026, 11, 23, 14, 30)


def test_limit_ending_at_noon_ends_at_noon(cal):
    assert cal.add_working_hours(at(2026, 11, 23, 10, 0), 2) == at(2026, 11, 23, 12, 0)
    assert cal.add_working_hours(at(2026, 11, 23, 8, 30), 7.5) == at(2026, 11, 23, 17, 30)


def test_report_during_lunch_starts_at_half_past_one(cal):
    assert cal.add_working_hours(at(2026, 11, 23, 12, 40), 0.5) == at(2026, 11, 23, 14, 0)


def test_hours_spanning_several_days(cal):
    # Monday 09:00: 7 h left that day, 7.5 h Tuesday, 5.5 h on Wednesday.
    assert cal.add_working_hours(at(2026, 11, 23, 9, 0), 20) == at(2026, 11, 25, 15, 30)


def test_hours_across_the_national_day_holiday(cal):
    # 1.5 h left on Sep 30, nothing Oct 1-7, 2.5 h on Oct 8.
    assert cal.add_working_hours(at(2026, 9, 30, 16, 0), 4) == at(2026, 10, 8, 11, 0)


def test_swapped_saturday_is_worked(cal):
    # Friday Oct 9, 17:00 + 1 h: half an hour that day, half an hour on Saturday Oct 10.
    assert cal.add_working_hours(at(2026, 10, 9, 17, 0), 1) == at(2026, 10, 10, 9, 0)
    assert cal.add_working_days(at(2026, 10, 9, 10, 0), 1) == at(2026, 10, 10, 17, 30)


def test_hours_across_new_year(cal):
    # 1.5 h on Dec 31; Jan 1 2027 a holiday, then the weekend; 6.5 h on Monday Jan 4.
    assert cal.add_working_hours(at(2026, 12, 31, 16, 0), 8) == at(2027, 1, 4, 16, 30)


def test_utc_in_utc_out(cal):
    start = at(2026, 11, 23, 11, 0).astimezone(UTC)
    deadline = cal.add_working_hours(start, 2)
    assert deadline.tzinfo == UTC
    assert deadline == at(2026, 11, 23, 14, 30)


def test_bad_arguments(cal):
    with pytest.raises(ValueError, match="aware"):
        cal.add_working_hours(datetime(2026, 11, 23, 9, 0), 1)
    with pytest.raises(ValueError):
        cal.add_working_hours(at(2026, 11, 23, 9, 0), -1)
    with pytest.raises(ValueError):
        cal.add_working_days(at(2026, 11, 23, 9, 0), 0)
    start = at(2026, 11, 23, 9, 0)
    assert cal.add_working_hours(start, 0) == start


# --- working days ---------------------------------------------------------------------


def test_days_end_at_close_of_business_and_skip_the_start_day(cal):
    assert cal.add_working_days(at(2026, 11, 23, 8, 0), 1) == at(2026, 11, 24, 17, 30)
    assert cal.add_working_days(at(2026, 11, 23, 17, 0), 3) == at(2026, 11, 26, 17, 30)


def test_days_across_a_holiday(cal):
    assert cal.add_working_days(at(2026, 9, 29, 10, 0), 1) == at(2026, 9, 30, 17, 30)
    assert cal.add_working_days(at(2026, 9, 30, 16, 0), 2) == at(2026, 10, 9, 17, 30)
    # The swapped Saturday Oct 10 counts as the third.
    assert cal.add_working_days(at(2026, 9, 30, 16, 0), 3) == at(2026, 10, 10, 17, 30)


def test_days_across_the_year_end(cal):
    assert cal.add_working_days(at(2026, 12, 30, 9, 0), 2) == at(2027, 1, 4, 17, 30)


# --- elapsed working time --------------------------------------------------------------


def test_working_seconds_between(cal):
    a, b = at(2026, 11, 27, 17, 0), at(2026, 11, 30, 9, 0)  # Friday → Monday
    assert cal.working_seconds_between(a, b) == HOUR
    assert cal.working_seconds_between(b, a) == -HOUR
    assert cal.working_seconds_between(a, a) == 0
    # Entirely outside working time.
    assert cal.working_seconds_between(at(2026, 11, 28, 9), at(2026, 11, 29, 18)) == 0
    assert cal.working_seconds_between(at(2026, 11, 23, 12, 0), at(2026, 11, 23, 13, 30)) == 0
    # A full working day, and a week with a holiday.
    assert cal.working_seconds_between(at(2026, 11, 23), at(2026, 11, 24)) == 7.5 * HOUR
    assert cal.working_seconds_between(at(2026, 9, 28), at(2026, 10, 12)) == 6 * 7.5 * HOUR


def test_between_is_the_inverse_of_adding(cal):
    starts = [at(2026, 9, 30, 16, 0), at(2026, 11, 27, 19, 0), at(2026, 12, 31, 11, 15)]
    for start in starts:
        for hours in (0.25, 1, 3.5, 7.5, 40, 300):
            end = cal.add_working_hours(start, hours)
            assert cal.working_seconds_between(start, end) == pytest.approx(hours * HOUR)


# --- configuration and overrides --------------------------------------------------------


def test_custom_periods_and_weekend():
    six_days = WorkCalendar(tz=SH, periods=[("09:00", "17:00")], weekend=[6])
    assert six_days.is_working_day(date(2026, 11, 28))  # Saturday
    assert six_days.add_working_hours(at(2026, 11, 28, 16, 0), 2) == at(2026, 11, 30, 10, 0)


def test_periods_are_checked():
    with pytest.raises(ValueError):
        parse_periods([("12:00", "08:30")])
    with pytest.raises(ValueError):
        parse_periods([("08:30", "12:00"), ("11:00", "13:00")])
    with pytest.raises(ValueError):
        parse_periods([("8h", "12:00")])
    with pytest.raises(ValueError):
        parse_periods([])


def test_overrides_win_over_package_and_weekend():
    cal = WorkCalendar(
        tz=SH,
        rules_for_year=china_year_rules,
        overrides={date(2026, 11, 25): False, date(2026, 11, 28): True, date(2026, 10, 5): True},
    )
    assert not cal.is_working_day(date(2026, 11, 25))
    assert cal.is_working_day(date(2026, 11, 28))
    assert cal.is_working_day(date(2026, 10, 5))
    # Tuesday 17:00 + 1 h skips the Wednesday off.
    assert cal.add_working_hours(at(2026, 11, 24, 17, 0), 1) == at(2026, 11, 26, 9, 0)


def test_a_year_the_source_does_not_hold_is_weekends_only():
    cal = WorkCalendar(tz=SH, rules_for_year=lambda year: YearRules(frozenset(), frozenset()))
    assert cal.is_working_day(date(2026, 10, 1))


def test_a_calendar_without_working_days_refuses_instead_of_looping():
    cal = WorkCalendar(tz=SH, weekend=range(7))
    with pytest.raises(ValueError, match="no working time"):
        cal.add_working_hours(at(2026, 11, 23, 9), 1)


@pytest.mark.django_db
def test_load_calendar_csv_makes_days_off_and_working_days(tmp_path):
    invalidate_calendar()
    assert work_calendar().is_working_day(date(2026, 11, 25))
    path = tmp_path / "city.csv"
    path.write_text(
        "date,is_working,note\n2026-11-25,false,City founding day\n2026-11-28,true,Make-up day\n",
        encoding="utf-8",
    )
    call_command("load_calendar", str(path))
    calendar = work_calendar()
    assert not calendar.is_working_day(date(2026, 11, 25))
    assert calendar.is_working_day(date(2026, 11, 28))
    assert CalendarOverride.objects.get(date=date(2026, 11, 25)).note == "City founding day"
    assert AuditEntry.objects.filter(action="calendar.load").exists()
    # Loading again replaces by date.
    path.write_text("2026-11-25,true,moved\n", encoding="utf-8")
    call_command("load_calendar", str(path))
    assert work_calendar().is_working_day(date(2026, 11, 25))
    assert CalendarOverride.objects.count() == 2


@pytest.mark.django_db
def test_load_calendar_json_for_a_year_the_package_lacks(tmp_path):
    path = tmp_path / "2031.json"
    path.write_text(
        '[{"date": "2031-10-01", "is_working": false, "note": "National Day"},'
        ' {"date": "2031-09-28", "is_working": true}]',
        encoding="utf-8",
    )
    call_command("load_calendar", str(path))
    calendar = work_calendar()
    assert not calendar.is_working_day(date(2031, 10, 1))
    assert calendar.is_working_day(date(2031, 9, 28))


@pytest.mark.django_db
def test_load_calendar_bad_lines_are_named_and_nothing_is_written(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "2026-11-25,false,ok\n2026-13-01,false,bad month\n2026-11-26,maybe\n2026-11-25,true\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError) as info, translation.override("en"):
        call_command("load_calendar", str(path))
    message = str(info.value)
    assert "line 2" in message and "2026-13-01" in message
    assert "line 3" in message and "maybe" in message
    assert "line 4" in message and "already given at line 1" in message
    assert "line 1:" not in message
    assert not CalendarOverride.objects.exists()
    with pytest.raises(CommandError, match="no such file"):
        call_command("load_calendar", str(tmp_path / "missing.csv"))


@pytest.mark.django_db
def test_settings_shape_the_loaded_calendar(settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "WORK_HOURS": [("09:00", "17:00")]}
    assert work_calendar().add_working_hours(at(2026, 11, 23, 16, 0), 2) == at(2026, 11, 24, 10, 0)
