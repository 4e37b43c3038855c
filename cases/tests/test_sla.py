from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

from cases.sla import light
from core.calendar import WorkCalendar, china_year_rules
from core.services import setting_set

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def cal():
    return WorkCalendar(tz=SH, rules_for_year=china_year_rules)


def at(*args):
    return datetime(*args, tzinfo=SH)


START = at(2026, 11, 23, 8, 30)  # Monday
DEADLINE = at(2026, 11, 23, 17, 30)  # 7.5 working hours later


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2026, 11, 23, 9, 0), "green"),
        (at(2026, 11, 23, 15, 0), "green"),  # 5 of 7.5 h: 67 %
        (at(2026, 11, 23, 16, 0), "yellow"),  # 6 of 7.5 h: exactly 80 %
        (at(2026, 11, 23, 17, 29), "yellow"),
        (DEADLINE, "red"),
        (at(2026, 11, 24, 9, 0), "red"),
    ],
)
def test_light_by_share_of_working_time(cal, now, expected):
    assert (
        light(started_at=START, deadline=DEADLINE, now=now, yellow_ratio=0.8, calendar=cal)
        == expected
    )


def test_lunch_break_does_not_use_up_time(cal):
    # 08:30 → 13:30 is 3.5 working hours of 7.5 (47 %); 13:45 is 3.75 (50 %).
    assert (
        light(
            started_at=START,
            deadline=DEADLINE,
            now=at(2026, 11, 23, 13, 30),
            yellow_ratio=0.5,
            calendar=cal,
        )
        == "green"
    )
    assert (
        light(
            started_at=START,
            deadline=DEADLINE,
            now=at(2026, 11, 23, 13, 45),
            yellow_ratio=0.5,
            calendar=cal,
        )
        == "yellow"
    )


def test_a_weekend_does_not_turn_a_case_yellow(cal):
    start, deadline = at(2026, 11, 27, 15, 0), at(2026, 11, 30, 17, 0)  # Fri → Mon, 9.5 h
    assert (
        light(
            started_at=start,
            deadline=deadline,
            now=at(2026, 11, 29, 23, 0),
            yellow_ratio=0.8,
            calendar=cal,
        )
        == "green"
    )
    assert (
        light(
            started_at=start,
            deadline=deadline,
            now=at(2026, 11, 30, 16, 0),
            yellow_ratio=0.8,
            calendar=cal,
        )
        == "yellow"
    )


def test_deadline_without_working_time_is_yellow_until_it_passes(cal):
    start = at(2026, 11, 28, 10, 0)  # Saturday
    assert (
        light(
            started_at=start,
            deadline=start + timedelta(hours=2),
            now=start + timedelta(hours=1),
            yellow_ratio=0.8,
            calendar=cal,
        )
        == "yellow"
    )


def test_bad_ratio(cal):
    with pytest.raises(ValueError):
        light(started_at=START, deadline=DEADLINE, now=START, yellow_ratio=1.2, calendar=cal)


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
def test_yellow_line_comes_from_the_setting(admin_user):
    # now: Monday 15:00 in Shanghai, 5 of 7.5 working hours used (67 %).
    now = timezone.now()
    assert light(started_at=START, deadline=DEADLINE, now=now) == "green"
    setting_set(key="sla.yellow_ratio", value=0.6, actor=admin_user)
    assert light(started_at=START, deadline=DEADLINE, now=now) == "yellow"
