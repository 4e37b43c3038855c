import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import transaction

from cases.models import DailyCounter, Kind
from cases.services import case_number, case_report
from cases.testing import GRID_POINT, make_case_world
from cases.writes import next_daily_serial

NUMBER = re.compile(r"^[EC]\d{4}\d{8}\d{4}$")


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def report(world, category=None):
    return case_report(
        actor=world["worker"],
        category=category or world.garbage,
        lat=GRID_POINT[0],
        lng=GRID_POINT[1],
        description="井盖缺失",
        source="grid_worker",
    )


def test_number_format():
    assert (
        case_number(kind=Kind.EVENT, category_code="0101", day=date(2026, 11, 29), serial=7)
        == "E0101202611290007"
    )
    assert (
        case_number(kind=Kind.COMPONENT, category_code="0312", day=date(2026, 1, 2), serial=123)
        == "C0312202601020123"
    )


def test_daily_serials_run_on_per_kind_and_restart_each_local_day(world):
    # 23:30 UTC on 28 November is 07:30 on 29 November in Shanghai.
    with time_machine.travel(datetime(2026, 11, 28, 23, 30, tzinfo=UTC), tick=False):
        events = [report(world) for _ in range(3)]
        component = report(world, category=world.manhole)
    assert [c.number for c in events] == [
        "E0101202611290001",
        "E0101202611290002",
        "E0101202611290003",
    ]
    assert component.number == "C0101202611290001"
    assert all(NUMBER.match(c.number) for c in [*events, component])
    with time_machine.travel(datetime(2026, 11, 29, 16, 0, tzinfo=UTC), tick=False):
        assert report(world).number == "E0101202611300001"  # 00:00 on the 30th locally


def test_a_rolled_back_report_gives_its_serial_back(db):
    day = date(2026, 12, 1)
    with transaction.atomic():
        assert next_daily_serial(day=day, kind=Kind.EVENT) == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        assert next_daily_serial(day=day, kind=Kind.EVENT) == 2
        raise RuntimeError("the report failed after taking its number")
    with transaction.atomic():
        assert next_daily_serial(day=day, kind=Kind.EVENT) == 2
    assert DailyCounter.objects.get(date=day, kind=Kind.EVENT).last == 2


def test_serial_continues_when_the_days_row_already_exists(db):
    day = date(2026, 12, 2)
    DailyCounter.objects.create(date=day, kind=Kind.COMPONENT, last=41)
    with transaction.atomic():
        assert next_daily_serial(day=day, kind=Kind.COMPONENT) == 42
        assert next_daily_serial(day=day, kind=Kind.EVENT) == 1


def test_serials_taken_in_a_block_leave_no_gap(db):
    day = date(2026, 12, 4)
    with transaction.atomic():
        assert next_daily_serial(day=day, kind=Kind.EVENT, count=5) == 5  # 1–5, a new day
        assert next_daily_serial(day=day, kind=Kind.EVENT) == 6
        assert next_daily_serial(day=day, kind=Kind.EVENT, count=3) == 9  # 7–9
    assert DailyCounter.objects.get(date=day, kind=Kind.EVENT).last == 9
