"""Postponement with approval, supervision, named tasks, duplicate suggestions, retention."""

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AuditEntry
from cases.models import Case, CaseNotice, CaseState
from cases.selectors import case_actions_for, case_duplicates, distance_m
from cases.services import (
    InvalidTransition,
    case_report,
    case_transition,
    cases_purge_reporter_data,
)
from cases.testing import GRID_POINT, make_case_world, member, refreshed
from cases.workflow import Action
from core.errors import DomainError
from geo.models import GridStaff

S = CaseState


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def report(world, *, actor=None, lat=GRID_POINT[0], lng=GRID_POINT[1], **extra) -> Case:
    fields = {
        "actor": actor or world["worker"],
        "category": world.garbage,
        "lat": lat,
        "lng": lng,
        "description": "垃圾堆在路边",
        "source": "grid_worker",
    }
    fields.update(extra)
    return case_report(**fields)


def act(action, case, actor, **extra) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action=action, actor=actor, **extra
    )


def accepted(world) -> Case:
    case = act(Action.FILE, report(world), world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    return act(Action.ACCEPT, case, world["handler"])


# --- postponement (延期) ----------------------------------------------------------------


def test_postponement_asked_then_approved_moves_the_deadlines(world):
    case = accepted(world)
    old_due = case.step_deadline
    until = old_due + timedelta(days=5)
    asked = act(Action.POSTPONE_REQUEST, case, world["handler"], note="需要调配机械", until=until)
    assert asked.state == S.ACCEPTED
    assert asked.postpone_until == until
    assert asked.step_deadline == old_due  # nothing moves before the approval
    # The shift leads over the grid hear of it; the handler cannot decide his own request.
    assert CaseNotice.objects.filter(recipient=world["lead"], case=case, kind="postpone").exists()
    assert Action.POSTPONE_APPROVE not in case_actions_for(case=asked, user=world["handler"])
    assert Action.POSTPONE_REQUEST not in case_actions_for(case=asked, user=world["handler"])
    with pytest.raises(InvalidTransition):
        act(Action.POSTPONE_REQUEST, asked, world["handler"], note="再要", until=until)

    granted = act(Action.POSTPONE_APPROVE, asked, world["lead"])
    assert granted.step_deadline == until
    assert granted.deadline >= until
    assert granted.step_yellow_at < until
    assert (granted.postpone_until, granted.postpone_count) == (None, 1)
    assert not granted.step_overdue
    # The department hears of the decision.
    assert CaseNotice.objects.filter(
        recipient=world["handler"], case=case, kind="postpone"
    ).exists()
    entry = granted.events.order_by("-id").first()
    assert (entry.action, entry.data["until"]) == ("postpone_approve", until.isoformat())


def test_postponement_refused_keeps_the_deadline(world):
    case = accepted(world)
    until = case.step_deadline + timedelta(days=2)
    asked = act(Action.POSTPONE_REQUEST, case, world["head"], note="雨天", until=until)
    with pytest.raises(DomainError) as caught:
        act(Action.POSTPONE_REJECT, asked, world["leader"])  # a refusal needs its reason
    assert "note" in caught.value.errors
    refused = act(Action.POSTPONE_REJECT, asked, world["leader"], note="可以按时完成")
    assert refused.step_deadline == case.step_deadline
    assert (refused.postpone_until, refused.postpone_count) == (None, 0)
    with pytest.raises(InvalidTransition):
        act(Action.POSTPONE_APPROVE, refused, world["lead"])  # nothing pending


@pytest.mark.parametrize("until_days", [None, -1, 0])
def test_postponement_must_end_after_the_current_deadline(world, until_days):
    case = accepted(world)
    until = None if until_days is None else case.step_deadline + timedelta(days=until_days)
    with pytest.raises(DomainError) as caught:
        act(Action.POSTPONE_REQUEST, case, world["handler"], note="理由", until=until)
    assert "until" in caught.value.errors
    assert refreshed(case).version == case.version


# --- supervision (督办) -----------------------------------------------------------------


def test_supervision_raises_the_case_and_tells_the_department(world):
    case = accepted(world)
    due = case.step_deadline
    supervised = act(Action.SUPERVISE, case, world["leader"], note="尽快处理")
    assert supervised.state == S.ACCEPTED
    assert supervised.step_deadline == due  # the clock does not move
    assert supervised.supervise_count == 1 and supervised.supervised_at is not None
    told = set(
        CaseNotice.objects.filter(case=case, kind="supervised").values_list(
            "recipient__username", flat=True
        )
    )
    assert told == {"handler", "head"}
    again = act(Action.SUPERVISE, supervised, world["leader"])
    assert again.supervise_count == 2


def test_supervising_a_case_with_no_department_tells_the_dispatchers(world):
    case = act(Action.FILE, report(world), world["lead"])
    act(Action.SUPERVISE, case, world["leader"])
    told = set(CaseNotice.objects.filter(case=case).values_list("recipient__username", flat=True))
    assert told == {"dispatcher", "lead"}


# --- tasks that name a grid worker ----------------------------------------------------------


def test_verification_names_the_grids_own_worker(world):
    staffed = member("patrol", "grid_worker", world.city.street)
    GridStaff.objects.create(area=world.grid, user=staffed, role="worker")
    case = act(
        Action.VERIFY_REQUEST, report(world, actor=world["clerk"], source="hotline"), world["clerk"]
    )
    assert case.assignee == staffed  # the named grid staff before anyone holding the role
    assert CaseNotice.objects.filter(recipient=staffed, case=case, kind="task").exists()
    confirmed = act(Action.VERIFY_CONFIRM, case, world["worker"], note="属实")
    assert confirmed.assignee is None


def test_verification_can_name_another_worker_of_the_grid_only(world):
    case = report(world, actor=world["clerk"], source="hotline")
    with pytest.raises(DomainError) as caught:
        act(Action.VERIFY_REQUEST, case, world["clerk"], assignee=world["far_worker"])
    assert "assignee" in caught.value.errors
    named = act(Action.VERIFY_REQUEST, case, world["clerk"], assignee=world["worker"])
    assert named.assignee == world["worker"]


def test_the_check_task_names_the_grid_worker(world):
    case = accepted(world)
    handled = act(Action.HANDLE, case, world["handler"], note="已清运")
    assert handled.assignee == world["worker"]
    assert CaseNotice.objects.filter(recipient=world["worker"], case=case).exists()
    failed = act(Action.CHECK_FAIL, handled, world["worker"], note="仍有残留")
    assert failed.assignee is None and failed.rework_count == 1


# --- duplicates -----------------------------------------------------------------------------


def test_a_report_near_an_open_case_of_its_class_suggests_it(world):
    first = report(world)
    # About 22 m north: inside the default 50 m radius.
    near = report(world, lat=GRID_POINT[0] + 0.0002)
    assert distance_m(first.lat, first.lng, near.lat, near.lng) == pytest.approx(22.2, abs=0.5)
    found = case_duplicates(near)
    assert [d.number for d in found] == [first.number]
    assert found[0].distance_m == pytest.approx(22.2, abs=0.5)
    assert found[0].age_hours >= 0
    assert near.events.get(action="report").data["duplicates"] == [first.number]


def test_duplicates_are_the_same_class_open_near_and_recent(world):
    far = report(world, lat=GRID_POINT[0] + 0.002)  # ~220 m
    other_class = report(world, category=world.manhole)
    closed = report(world)
    Case.objects.filter(pk=closed.pk).update(state=S.VOIDED)
    old = report(world)
    Case.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=4))
    new = report(world)
    numbers = {d.number for d in case_duplicates(new)}
    assert numbers.isdisjoint({far.number, other_class.number, closed.number, old.number})
    # Once filed, a case no longer asks about duplicates.
    filed = act(Action.FILE, new, world["lead"])
    assert case_duplicates(filed) == []


# --- retention of the reporter's contact -------------------------------------------------------


def test_reporters_contact_is_erased_after_the_retention_period(world, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "REPORTER_RETENTION_DAYS": 30}
    contact = {"reporter_name": "张三", "reporter_phone": "13800000000", "reporter_email": "z@x.cn"}
    finished = report(world, actor=world["clerk"], source="hotline", **contact)
    finished = act(Action.VOID, finished, world["clerk"], note="无效")
    still_open = report(world, actor=world["clerk"], source="hotline", **contact)
    with time_machine.travel(timezone.now() + timedelta(days=29)):
        assert cases_purge_reporter_data() == 0
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        assert cases_purge_reporter_data() == 1
        assert cases_purge_reporter_data() == 0  # each case once
        call_command("purge_reporter_data", verbosity=0)
    gone = refreshed(finished)
    assert (gone.reporter_name, gone.reporter_phone, gone.reporter_email) == ("", "", "")
    assert gone.reporter_purged_at is not None
    kept = refreshed(still_open)
    assert kept.reporter_phone == "13800000000" and kept.reporter_purged_at is None
    entry = AuditEntry.objects.get(action="case.reporter_purge")
    assert finished.number in entry.after["cases"]
    assert "张三" not in str(entry.after)
