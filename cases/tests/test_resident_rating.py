"""A resident's report: the resident rates the result; the loop closes only then."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import AuditEntry, User
from cases.models import Case, CaseState, Satisfaction
from cases.services import (
    CaseActionDenied,
    InvalidTransition,
    case_rate,
    case_report_result,
    case_transition,
    case_withdraw,
    cases_close_unrated,
    cases_erase_reporter,
    cases_sweep_overdue,
)
from cases.testing import GRID_POINT, make_case_world, refreshed
from cases.workflow import Action
from core.errors import DomainError

S = CaseState


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def public_report(world, *, actor=None, **extra) -> Case:
    fields = {
        "actor": actor,
        "category": world.garbage,
        "lat": GRID_POINT[0],
        "lng": GRID_POINT[1],
        "description": "小区门口垃圾没人清",
        "source": "portal",
        "reporter_phone": "13900001111",
        "public": True,
    }
    fields.update(extra)
    case, created = case_report_result(**fields)
    assert created
    return case


def act(action, case, actor, **extra) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action=action, actor=actor, **extra
    )


def to_checking(world, case) -> Case:
    case = act(Action.FILE, case, world["lead"])
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    case = act(Action.ACCEPT, case, world["handler"])
    case = act(Action.HANDLE, case, world["handler"], note="已清运")
    return act(Action.CHECK_PASS, case, world["worker"])


def test_an_anonymous_resident_reports_without_a_role_and_gets_a_tracking_secret(world):
    case = public_report(world)
    assert case.state == S.REPORTED and case.source == "portal"
    assert len(case.public_token) >= 32
    assert case.created_by is None and case.reporter is None
    first = case.events.get()
    assert (first.role, first.actor_username) == ("resident", "")


def test_a_public_report_needs_a_public_class_and_a_public_source(world):
    world.garbage.is_public = False
    world.garbage.save()
    with pytest.raises(DomainError) as caught:
        public_report(world)
    assert "category" in caught.value.errors
    world.garbage.is_public = True
    world.garbage.save()
    with pytest.raises(DomainError) as caught:
        public_report(world, source="hotline")
    assert "source" in caught.value.errors


def test_satisfied_closes_the_case(world):
    case = to_checking(world, public_report(world))
    # The shift lead cannot close a resident's case; she asks the resident instead.
    with pytest.raises(InvalidTransition):
        act(Action.CLOSE, case, world["lead"])
    case = act(Action.RETURN_VISIT, case, world["lead"])
    assert case.state == S.RATING and case.step_deadline is None
    closed = case_rate(
        case_id=case.pk, expected_version=case.version, satisfied=True, token=case.public_token
    )
    assert closed.state == S.CLOSED and closed.satisfaction == Satisfaction.SATISFIED
    assert closed.closed_at is not None
    assert closed.events.order_by("-id").first().role == "resident"


def test_unsatisfied_goes_back_to_dispatch_and_escalates_after_the_limit(world, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "UNSATISFIED_ESCALATE_AFTER": 2}
    case = to_checking(world, public_report(world))
    case = act(Action.RETURN_VISIT, case, world["lead"])
    with pytest.raises(DomainError) as caught:  # unsatisfied needs a reason
        case_rate(
            case_id=case.pk, expected_version=case.version, satisfied=False, token=case.public_token
        )
    assert "note" in caught.value.errors
    case = case_rate(
        case_id=case.pk,
        expected_version=case.version,
        satisfied=False,
        reason="还是很脏",
        token=case.public_token,
    )
    assert (case.state, case.unsatisfied_count, case.department) == (S.FILED, 1, None)
    assert case.satisfaction == Satisfaction.UNSATISFIED
    case = to_checking_from_filed(world, case)
    case = act(Action.RETURN_VISIT, case, world["lead"])
    case = case_rate(
        case_id=case.pk,
        expected_version=case.version,
        satisfied=False,
        reason="依旧",
        token=case.public_token,
    )
    # The second unsatisfied round also sends it one level up, by the system.
    assert (case.state, case.unsatisfied_count, case.level) == (S.ESCALATED, 2, 4)
    last = case.events.order_by("-id").first()
    assert (last.action, last.role, last.actor_username) == ("escalate", "system", "")


def to_checking_from_filed(world, case) -> Case:
    case = act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    case = act(Action.ACCEPT, case, world["handler"])
    case = act(Action.HANDLE, case, world["handler"], note="再次清运")
    return act(Action.CHECK_PASS, case, world["worker"])


def test_a_wrong_token_or_staff_cannot_rate(world):
    case = act(Action.RETURN_VISIT, to_checking(world, public_report(world)), world["lead"])
    with pytest.raises(CaseActionDenied):
        case_rate(case_id=case.pk, expected_version=case.version, satisfied=True, token="guess")
    with pytest.raises(CaseActionDenied):
        case_rate(
            case_id=case.pk, expected_version=case.version, satisfied=True, actor=world["lead"]
        )
    assert refreshed(case).state == S.RATING


def test_a_signed_in_resident_rates_and_withdraws_her_own_reports(world):
    resident = User.objects.create_user("r1", is_resident=True)
    mine = public_report(world, actor=resident)
    assert mine.reporter == resident and mine.created_by == resident
    other = public_report(world, actor=User.objects.create_user("r2", is_resident=True))
    with pytest.raises(CaseActionDenied):
        case_withdraw(case_id=other.pk, expected_version=other.version, actor=resident)
    withdrawn = case_withdraw(case_id=mine.pk, expected_version=mine.version, actor=resident)
    assert withdrawn.state == S.VOIDED
    filed = act(Action.FILE, public_report(world, actor=resident), world["lead"])
    with pytest.raises(InvalidTransition):  # too late once filed
        case_withdraw(case_id=filed.pk, expected_version=filed.version, actor=resident)


def test_no_answer_closes_as_satisfied_by_default_and_is_not_overdue(world, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "RATING_DAYS": 7}
    case = act(Action.RETURN_VISIT, to_checking(world, public_report(world)), world["lead"])
    with time_machine.travel(timezone.now() + timedelta(days=6)):
        assert cases_close_unrated() == 0
    with time_machine.travel(timezone.now() + timedelta(days=40)):
        assert cases_sweep_overdue() == 0  # waiting for the resident is nobody's delay
        assert cases_close_unrated() == 1
    closed = refreshed(case)
    assert (closed.state, closed.satisfaction) == (S.CLOSED, Satisfaction.DEFAULT)
    assert closed.events.order_by("-id").first().role == "system"


def test_erasure_anonymises_the_cases_but_keeps_them(world):
    resident = User.objects.create_user("r3", is_resident=True)
    case = public_report(world, actor=resident, reporter_name="李四", reporter_email="l@x.cn")
    assert cases_erase_reporter(user=resident) == 1
    gone = refreshed(case)
    assert gone.reporter is None and gone.created_by is None
    assert (gone.reporter_name, gone.reporter_phone, gone.reporter_email) == ("", "", "")
    assert gone.public_token == "" and gone.reporter_purged_at is not None
    assert gone.state == S.REPORTED and gone.events.count() == 1
    assert AuditEntry.objects.filter(action="case.reporter_erase").exists()
    # Without a resident to ask, staff close it as any other case.
    checking = to_checking(world, gone)
    assert act(Action.CLOSE, checking, world["lead"]).state == S.CLOSED


# --- what the public sees ---------------------------------------------------------------


def test_the_public_timeline_names_no_person_and_no_note(world):
    from cases.selectors import case_by_token, public_timeline

    case = public_report(world, reporter_name="王五")
    case = act(Action.FILE, case, world["lead"], note="王五的电话13900001111")
    act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    entries = public_timeline(case)
    assert [e.action for e in entries] == ["report", "file", "dispatch"]
    assert entries[-1].department == world.sanitation.name
    text = repr(entries)
    for secret in ("王五", "13900001111", "lead", "dispatcher"):
        assert secret not in text
    assert case_by_token(case.public_token) == case
    assert case_by_token("x" * 65) is None and case_by_token("") is None


def test_public_cases_and_coarse_locations(world):
    from cases.selectors import public_cases, public_location

    open_case = public_report(world, lat=GRID_POINT[0] + 0.0013, lng=GRID_POINT[1] + 0.0011)
    voided = act(Action.VOID, public_report(world), world["clerk"], note="重复")
    old = public_report(world)
    Case.objects.filter(pk=old.pk).update(
        state=S.CLOSED, closed_at=timezone.now() - timedelta(days=60)
    )
    shown = set(public_cases().values_list("pk", flat=True))
    assert open_case.pk in shown and voided.pk not in shown and old.pk not in shown
    assert public_location(open_case) == (open_case.lat, open_case.lng)
    world.garbage.is_sensitive = True
    world.garbage.save()
    lat, lng = public_location(refreshed(open_case))
    assert (lat, lng) != (open_case.lat, open_case.lng)
    assert abs(lat - open_case.lat) <= 0.0025 and abs(lng - open_case.lng) <= 0.0025
