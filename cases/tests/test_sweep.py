"""The overdue sweep: what it marks, that it marks once, and its place on the task queue."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from cases import sla
from cases.models import Case, CaseEvent, CaseState
from cases.services import (
    case_file,
    case_report,
    case_suspend,
    case_void,
    cases_sweep_overdue,
)
from cases.tasks import schedule_next_sweep, sweep_overdue_task
from cases.testing import GRID_POINT, make_case_world, refreshed
from core.services import setting_set

# Monday 23 November 2026, 09:00 in Shanghai: a working morning.
MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def report(world, at: datetime, **extra) -> Case:
    with time_machine.travel(at, tick=False):
        return case_report(
            actor=world["worker"],
            category=world.garbage,
            lat=GRID_POINT[0],
            lng=GRID_POINT[1],
            description="垃圾",
            source="grid_worker",
            **extra,
        )


def overdue_events(case=None):
    events = CaseEvent.objects.filter(action="overdue")
    return events.filter(case=case) if case is not None else events


def test_the_sweep_marks_exactly_the_cases_past_their_deadlines(world):
    late = report(world, MONDAY_9)  # filing is due at 10:00
    on_time = report(world, MONDAY_9 + timedelta(minutes=50))  # due at 10:50
    voided = report(world, MONDAY_9)
    parked = report(world, MONDAY_9)
    with time_machine.travel(MONDAY_9 + timedelta(minutes=5), tick=False):
        case_void(case_id=voided.pk, expected_version=1, actor=world["lead"], note="重复")
        filed = case_file(case_id=parked.pk, expected_version=1, actor=world["lead"])
        case_suspend(
            case_id=parked.pk, expected_version=filed.version, actor=world["lead"], note="等待"
        )
    assert late.step_deadline == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)

    with time_machine.travel(MONDAY_9 + timedelta(minutes=90), tick=False):
        assert cases_sweep_overdue() == 1

    late = refreshed(late)
    assert late.step_overdue and not late.overdue  # the overall deadline is days away
    assert late.version == 1  # marking is not a transition: If-Match stays valid
    for other in (on_time, voided, parked):
        assert not refreshed(other).step_overdue, other
    [event] = overdue_events()
    assert event.case_id == late.pk and event.actor_id is None and event.actor_username == ""
    assert event.from_state == event.to_state == CaseState.REPORTED
    assert event.deadline == late.step_deadline
    assert event.data == {"step": "file", "step_overdue": True, "overall_overdue": False}

    # A month on, every clock that runs has passed its overall deadline too.
    a_month_on = MONDAY_9 + timedelta(days=30)
    assert cases_sweep_overdue(now=a_month_on) == 2
    late, on_time = refreshed(late), refreshed(on_time)
    assert late.overdue and on_time.overdue and on_time.step_overdue
    assert overdue_events(late).count() == 2 and overdue_events(on_time).count() == 1
    assert overdue_events(on_time).get().data["overall_overdue"] is True
    # The suspended case's clock is paused, the voided case is finished.
    assert not refreshed(parked).overdue and not refreshed(voided).overdue


def test_a_second_sweep_counts_nothing_again(world):
    cases = [report(world, MONDAY_9) for _ in range(3)]
    later = MONDAY_9 + timedelta(hours=3)
    assert cases_sweep_overdue(now=later) == 3
    assert cases_sweep_overdue(now=later) == 0
    assert cases_sweep_overdue(now=later + timedelta(minutes=1)) == 0
    assert overdue_events().count() == 3
    assert all(refreshed(c).step_overdue for c in cases)


def test_a_new_step_gets_a_new_clock_and_a_new_mark(world):
    case = report(world, MONDAY_9)
    assert cases_sweep_overdue(now=MONDAY_9 + timedelta(hours=2)) == 1
    with time_machine.travel(MONDAY_9 + timedelta(hours=2), tick=False):
        case = case_file(case_id=case.pk, expected_version=1, actor=world["lead"])
    assert not case.step_overdue  # dispatching is due an hour after filing
    assert cases_sweep_overdue(now=MONDAY_9 + timedelta(hours=2, minutes=30)) == 0
    assert cases_sweep_overdue(now=MONDAY_9 + timedelta(hours=4)) == 1
    assert overdue_events(case).count() == 2


def test_the_yellow_moment_is_stored_with_the_deadline(world, admin_user):
    setting_set(key="sla.yellow_ratio", value=0.8, actor=admin_user)
    case = report(world, MONDAY_9)
    # Filing: 1 working hour from 09:00; yellow at 80 % of it.
    assert case.step_yellow_at == MONDAY_9 + timedelta(minutes=48)
    for minutes, expected in ((47, "green"), (48, "yellow"), (60, "red")):
        now = MONDAY_9 + timedelta(minutes=minutes)
        assert (
            sla.light(started_at=case.step_started_at, deadline=case.step_deadline, now=now)
            == expected
            == sla.stored_light(yellow_at=case.step_yellow_at, deadline=case.step_deadline, now=now)
        )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_never_count_a_case_twice(small_city):
    world = make_case_world(small_city)
    cases = [report(world, MONDAY_9) for _ in range(40)]
    now = MONDAY_9 + timedelta(days=30)
    start = threading.Barrier(2)
    counts: list[int] = []
    failures: list[BaseException] = []

    def sweep():
        try:
            start.wait(timeout=30)
            counts.append(cases_sweep_overdue(now=now))
        except BaseException as exc:  # reported below: the test fails on it
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert len(counts) == 2 and sum(counts) == len(cases)
    assert overdue_events().count() == len(cases)
    assert Case.objects.filter(step_overdue=True, overdue=True).count() == len(cases)
    assert set(Case.objects.values_list("version", flat=True)) == {1}


# --- on the task queue ------------------------------------------------------------------------


def queued_sweeps():
    return DBTaskResult.objects.filter(task_path=sweep_overdue_task.module_path)


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_the_sweep_and_the_sweep_queues_the_next(small_city):
    # Transactional: the worker closes and reopens its database connection between tasks.
    world = make_case_world(small_city)
    case = report(world, MONDAY_9)
    call_command("schedule_sweeps", verbosity=0)
    call_command("schedule_sweeps", verbosity=0)  # already queued: no second chain
    assert queued_sweeps().count() == 1

    call_command("db_worker", batch=True, interval=0, startup_delay=False, verbosity=0)

    assert refreshed(case).step_overdue
    assert queued_sweeps().filter(status=TaskResultStatus.SUCCESSFUL).count() == 1
    [successor] = queued_sweeps().filter(status=TaskResultStatus.READY)
    wait = successor.run_after - timezone.now()
    assert timedelta(seconds=50) < wait <= timedelta(seconds=60)
    # The successor is not due yet, so the queue holds one chain.
    assert schedule_next_sweep() is False


def test_the_sweep_command(world, capsys):
    report(world, MONDAY_9)
    call_command("sweep_overdue")
    assert "1 case(s) marked overdue." in capsys.readouterr().out
    call_command("sweep_overdue")
    assert "0 case(s)" in capsys.readouterr().out


def test_an_immediate_backend_never_loops(world, settings):
    # It cannot defer; queuing the successor would run the chain recursively at once.
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    assert schedule_next_sweep() is False
