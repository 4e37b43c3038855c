from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEntry, User
from cases import services
from cases.models import Case, CaseEvent, CaseEventIsAppendOnly, CaseState
from cases.selectors import case_actions_for
from cases.services import (
    CaseActionDenied,
    CaseConflict,
    InvalidTransition,
    case_accept,
    case_check_fail,
    case_check_pass,
    case_close,
    case_dispatch,
    case_file,
    case_handle,
    case_report,
    case_send_back,
    case_transition,
)
from cases.testing import GRID_POINT, OTHER_GRID_POINT, make_case_world, member, refreshed
from cases.workflow import PREVIOUS, TRANSITIONS, Action, all_actions
from core.errors import DomainError

S = CaseState


@pytest.fixture
def world(small_city):
    return make_case_world(small_city)


def report(world, *, actor=None, point=GRID_POINT, **extra) -> Case:
    fields = {
        "actor": actor or world["worker"],
        "category": world.garbage,
        "lat": point[0],
        "lng": point[1],
        "description": "垃圾堆在路边",
        "source": "grid_worker",
    }
    fields.update(extra)
    return case_report(**fields)


def act(action, case, actor, **extra) -> Case:
    return case_transition(
        case_id=case.pk, expected_version=case.version, action=action, actor=actor, **extra
    )


# Actions on a resident's report (it has a tracking secret).
RESIDENT_ACTIONS = {
    Action.RETURN_VISIT,
    Action.RATE_SATISFIED,
    Action.RATE_UNSATISFIED,
    Action.WITHDRAW,
}


def put_in_state(world, state: str, action: str = "") -> Case:
    """A reported case placed straight into ``state``, with what that state implies
    (and, for deciding on a postponement, a pending request)."""
    case = report(world)
    fields = {"state": state}
    if action in (Action.POSTPONE_APPROVE, Action.POSTPONE_REJECT):
        fields["postpone_until"] = timezone.now() + timedelta(days=30)
    if action in RESIDENT_ACTIONS:
        fields.update(public_token=f"token-{case.pk}", reporter=None, source="portal")
    if state in (S.DISPATCHED, S.ACCEPTED, S.HANDLED, S.CHECKING):
        fields["department"] = world.sanitation
    if state == S.SUSPENDED:
        fields.update(suspended_from=S.FILED, suspended_at=timezone.now())
    if state == S.CLOSED:
        fields["closed_at"] = timezone.now()
    Case.objects.filter(pk=case.pk).update(**fields)
    return refreshed(case)


def inputs_for(world, action: str) -> dict:
    extra = {"note": "理由"}
    if action == Action.DISPATCH:
        extra["department"] = world.sanitation
    if action == Action.MERGE:
        extra["merge_into"] = report(world)
    if action == Action.POSTPONE_REQUEST:
        extra["until"] = timezone.now() + timedelta(days=30)
    return extra


# --- the report -----------------------------------------------------------------------


def test_report_locates_routes_numbers_and_starts_the_clock(world):
    from cases.models import RoutingRule

    RoutingRule.objects.create(area=world.city.district, department=world.sanitation)
    case = report(world, reporter_name="张三", reporter_phone="13800000000")
    assert case.state == S.REPORTED and case.version == 1
    assert case.area == world.grid and case.level == 5
    assert case.reporter == world["worker"] and case.created_by == world["worker"]
    assert case.department is None  # routing only suggests; the dispatcher decides
    assert case.step == "file"
    assert case.step_started_at <= case.step_deadline <= case.deadline
    [event] = case.events.all()
    assert event.action == "report" and event.to_state == S.REPORTED
    assert event.data == {
        "source": "grid_worker",
        "grid": world.grid.code,
        "suggested_department": "SAN",
    }
    assert event.deadline == case.step_deadline
    assert "张三" not in str(event.data) and "138" not in str(event.data)
    assert AuditEntry.objects.filter(action="case.report", object_id=str(case.pk)).exists()


def test_report_outside_every_grid_is_a_field_error(world):
    with pytest.raises(DomainError) as caught:
        report(world, point=(39.99, 116.50))
    assert set(caught.value.errors) == {"lat", "lng"}
    assert not Case.objects.exists()


def test_report_needs_a_minor_class_and_valid_fields(world):
    with pytest.raises(DomainError) as caught:
        report(world, category=world.garbage.parent, source="fax", description=" ")
    assert set(caught.value.errors) == {"category", "source", "description"}


def test_report_needs_a_reporting_role_over_the_point(world):
    with pytest.raises(CaseActionDenied):
        report(world, actor=world["handler"])
    with pytest.raises(CaseActionDenied):
        report(world, actor=world["worker"], point=OTHER_GRID_POINT)
    assert not Case.objects.exists()


def test_a_retried_report_returns_the_first_case(world):
    first = report(world, idempotency_key="abc-1")
    again = report(world, idempotency_key="abc-1", description="something else")
    assert again.pk == first.pk
    assert Case.objects.count() == 1
    # The key belongs to its actor: another clerk's same key is another report.
    other = report(world, actor=world["clerk"], source="hotline", idempotency_key="abc-1")
    assert other.pk != first.pk
    assert report(world).pk not in (first.pk, other.pk)  # no key: always a new case


# --- the main path and the timeline -------------------------------------------------------


def test_main_path_with_send_back_and_rework(world):
    case = report(world)
    case = case_file(case_id=case.pk, expected_version=case.version, actor=world["lead"])
    assert (case.state, case.step, case.version) == (S.FILED, "dispatch", 2)
    case = case_dispatch(
        case_id=case.pk,
        expected_version=case.version,
        actor=world["dispatcher"],
        department=world.parks,
    )
    assert case.department == world.parks
    case = case_send_back(
        case_id=case.pk,
        expected_version=case.version,
        actor=world["parks_handler"],
        note="不属于园林",
    )
    assert (case.state, case.department, case.send_back_count) == (S.FILED, None, 1)
    case = case_dispatch(
        case_id=case.pk,
        expected_version=case.version,
        actor=world["dispatcher"],
        department=world.sanitation,
    )
    handle_deadline = case.step_deadline
    assert case.step == "handle"
    case = case_accept(case_id=case.pk, expected_version=case.version, actor=world["handler"])
    assert case.state == S.ACCEPTED
    assert case.step_deadline == handle_deadline  # signing does not restart the clock
    case = case_handle(case_id=case.pk, expected_version=case.version, actor=world["handler"])
    assert (case.state, case.step) == (S.HANDLED, "check")
    case = case_check_fail(
        case_id=case.pk, expected_version=case.version, actor=world["worker"], note="还有垃圾"
    )
    assert (case.state, case.step, case.rework_count) == (S.ACCEPTED, "handle", 1)
    case = case_handle(case_id=case.pk, expected_version=case.version, actor=world["head"])
    case = case_check_pass(case_id=case.pk, expected_version=case.version, actor=world["worker"])
    assert (case.state, case.step) == (S.CHECKING, "close")
    case = case_close(case_id=case.pk, expected_version=case.version, actor=world["lead"])
    assert case.state == S.CLOSED and case.step == "" and case.step_deadline is None
    assert case.closed_at is not None and case.version == 11

    events = list(case.events.order_by("at", "id"))
    assert [(e.action, e.from_state, e.to_state) for e in events] == [
        ("report", "", S.REPORTED),
        ("file", S.REPORTED, S.FILED),
        ("dispatch", S.FILED, S.DISPATCHED),
        ("send_back", S.DISPATCHED, S.FILED),
        ("dispatch", S.FILED, S.DISPATCHED),
        ("accept", S.DISPATCHED, S.ACCEPTED),
        ("handle", S.ACCEPTED, S.HANDLED),
        ("check_fail", S.HANDLED, S.ACCEPTED),
        ("handle", S.ACCEPTED, S.HANDLED),
        ("check_pass", S.HANDLED, S.CHECKING),
        ("close", S.CHECKING, S.CLOSED),
    ]
    assert [e.actor_username for e in events] == [
        "worker", "lead", "dispatcher", "parks_handler", "dispatcher", "handler",
        "handler", "worker", "head", "worker", "lead",
    ]  # fmt: skip
    assert [e.role for e in events][:4] == ["grid_worker", "shift_lead", "dispatcher", "handler"]
    assert events[3].note == "不属于园林" and events[3].data == {"department": "PARKS"}
    assert events[4].data == {"department": "SAN"}
    audited = AuditEntry.objects.filter(object_type="cases.case", object_id=str(case.pk))
    assert audited.count() == len(events)

    # The timeline cannot be rewritten through the ORM.
    first = events[0]
    first.note = "rewritten"
    with pytest.raises(CaseEventIsAppendOnly):
        first.save()
    with pytest.raises(CaseEventIsAppendOnly):
        first.delete()
    with pytest.raises(CaseEventIsAppendOnly):
        CaseEvent.objects.filter(case=case).update(note="x")
    with pytest.raises(CaseEventIsAppendOnly):
        CaseEvent.objects.filter(case=case).delete()
    assert CaseEvent.objects.get(pk=first.pk).note == ""


def test_handle_on_spot_still_goes_through_the_check_by_someone_else(world):
    case = act(Action.HANDLE_ON_SPOT, report(world), world["worker"], note="已清理")
    assert (case.state, case.step) == (S.HANDLED, "check")
    # The worker who handled it does not check it; the grid leader is named instead.
    assert case.handled_on_spot_by == world["worker"]
    assert case.assignee == world["gridlead"]
    assert Action.CHECK_PASS not in case_actions_for(case=case, user=world["worker"])
    with pytest.raises(InvalidTransition):
        act(Action.CHECK_PASS, case, world["worker"])
    assert refreshed(case).version == case.version
    case = act(Action.CHECK_PASS, case, world["gridlead"])
    assert act(Action.CLOSE, case, world["lead"]).state == S.CLOSED


def test_verify_then_file(world):
    case = act(
        Action.VERIFY_REQUEST, report(world, actor=world["clerk"], source="hotline"), world["clerk"]
    )
    assert (case.state, case.step) == (S.VERIFYING, "verify")
    case = act(Action.VERIFY_CONFIRM, case, world["worker"], note="属实")
    assert case.state == S.REPORTED
    assert act(Action.FILE, case, world["lead"]).state == S.FILED


def test_escalation_climbs_one_level_at_a_time_and_stops_at_the_district(world):
    case = act(Action.ESCALATE, report(world), world["worker"])
    assert (case.state, case.level) == (S.ESCALATED, 4)
    # Once escalated past the grid, a grid-level membership no longer reaches it.
    with pytest.raises(CaseActionDenied):
        act(Action.ESCALATE, case, world["worker"])
    case = act(Action.ESCALATE, case, world["lead"])
    assert case.level == 3
    case = act(Action.ESCALATE, case, world["dispatcher"])
    assert case.level == 2
    with pytest.raises(DomainError) as caught:
        act(Action.ESCALATE, case, User.objects.create_superuser("root"))
    assert "action" in caught.value.errors
    # Now only district staff act on it: the street's dispatcher no longer reaches it.
    with pytest.raises(CaseActionDenied):
        act(Action.DISPATCH, case, world["dispatcher"], department=world.sanitation)
    center = member("center", "dispatcher", world.city.district)
    dispatched = act(Action.DISPATCH, case, center, department=world.sanitation)
    assert dispatched.state == S.DISPATCHED


def test_suspend_pauses_the_clock_and_resume_returns_where_it_was(world, settings):
    case = act(Action.FILE, report(world), world["lead"])
    case = act(Action.SUSPEND, case, world["leader"], note="等待审批")
    assert case.state == S.SUSPENDED and case.suspended_from == S.FILED
    due = case.step_deadline
    # Pretend the case was parked for a long time: the deadline moves by that much working time.
    Case.objects.filter(pk=case.pk).update(suspended_at=case.suspended_at - timedelta(days=30))
    case = act(Action.RESUME, refreshed(case), world["leader"])
    assert case.state == S.FILED and case.suspended_from == "" and case.suspended_at is None
    assert case.step_deadline > due


def test_reopen_only_within_the_window(world, settings):
    settings.CIVICGRID = {**settings.CIVICGRID, "CASE_REOPEN_DAYS": 3}
    case = put_in_state(world, S.CLOSED)
    assert act(Action.REOPEN, case, world["lead"], note="又有了").state == S.FILED
    old = put_in_state(world, S.CLOSED)
    Case.objects.filter(pk=old.pk).update(closed_at=timezone.now() - timedelta(days=4))
    with pytest.raises(DomainError):
        act(Action.REOPEN, refreshed(old), world["lead"], note="又有了")


def test_merge_needs_an_open_other_case(world):
    case = report(world)
    with pytest.raises(DomainError) as caught:
        act(Action.MERGE, case, world["clerk"], merge_into=case)
    assert "merge_into" in caught.value.errors
    closed = put_in_state(world, S.CLOSED)
    with pytest.raises(DomainError):
        act(Action.MERGE, case, world["clerk"], merge_into=closed)
    target = report(world)
    merged = act(Action.MERGE, case, world["clerk"], merge_into=target)
    assert merged.state == S.MERGED and merged.merged_into == target


def test_reasons_and_departments_are_required(world):
    case = act(Action.FILE, report(world), world["lead"])
    with pytest.raises(DomainError) as caught:
        act(Action.DISPATCH, case, world["dispatcher"])
    assert "department" in caught.value.errors
    with pytest.raises(DomainError) as caught:
        act(Action.VOID, case, world["lead"])
    assert "note" in caught.value.errors
    assert refreshed(case).version == case.version  # nothing written


# --- every transition, allowed and refused by state ---------------------------------------

STATES = list(S.values)
ACTIONS = sorted(all_actions())


@pytest.mark.parametrize("state", STATES)
def test_every_action_from_every_state(world, state):
    root = User.objects.create_superuser("root")
    for action in ACTIONS:
        case = put_in_state(world, state, action)
        allowed = TRANSITIONS.get((state, action))
        if allowed is None:
            with pytest.raises(InvalidTransition):
                act(action, case, root, **inputs_for(world, action))
            assert refreshed(case).version == case.version
            continue
        after = act(action, case, root, **inputs_for(world, action))
        expected = case.suspended_from if allowed.to == PREVIOUS else allowed.to
        assert after.state == expected, (state, action)
        assert after.version == case.version + 1
        assert after.events.order_by("-id").first().action == action


def test_every_state_has_a_way_on_unless_final():
    from cases.workflow import FINAL_STATES, actions_from

    for state in STATES:
        if state in FINAL_STATES and state != S.CLOSED:
            assert actions_from(state) == []
        else:
            assert actions_from(state), state


# --- refused by role and by scope ------------------------------------------------------------

IN_REACH = [
    "worker",
    "gridlead",
    "clerk",
    "lead",
    "dispatcher",
    "handler",
    "head",
    "leader",
    "admin",
]
FROM_STATE = {}
for (_state, _action), _t in TRANSITIONS.items():
    FROM_STATE.setdefault(_action, _state)


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_by_every_role(world, action):
    state = FROM_STATE[action]
    allowed_roles = TRANSITIONS[(state, action)].roles
    for username in IN_REACH:
        user = world[username]
        role = user.memberships.get().role.code
        case = put_in_state(world, state, action)
        if role in allowed_roles:
            after = act(action, case, user, **inputs_for(world, action))
            assert after.version == case.version + 1, (action, role)
            assert after.events.order_by("-id").first().role == role
        else:
            with pytest.raises(CaseActionDenied):
                act(action, case, user, **inputs_for(world, action))
            assert refreshed(case).version == case.version, (action, role)


def test_refused_outside_the_scope(world):
    filed = act(Action.FILE, report(world), world["lead"])
    with pytest.raises(CaseActionDenied) as caught:
        act(Action.DISPATCH, filed, world["far_dispatcher"], department=world.sanitation)
    assert caught.value.status_code == 403
    dispatched = act(Action.DISPATCH, filed, world["dispatcher"], department=world.sanitation)
    with pytest.raises(CaseActionDenied):
        act(Action.ACCEPT, dispatched, world["parks_handler"])  # another department
    handled = put_in_state(world, S.HANDLED)
    with pytest.raises(CaseActionDenied):
        act(Action.CHECK_PASS, handled, world["far_worker"])  # another grid
    with pytest.raises(CaseActionDenied):
        act(Action.CHECK_PASS, handled, None)
    inactive = world["worker"]
    inactive.is_active = False
    inactive.save()
    with pytest.raises(CaseActionDenied):
        act(Action.CHECK_PASS, handled, inactive)


def test_a_department_outside_the_case_area_is_refused(world):
    from accounts.models import Department

    elsewhere = Department.objects.create(code="FAR", name="远方", area=world.other_street)
    filed = act(Action.FILE, report(world), world["lead"])
    with pytest.raises(DomainError) as caught:
        act(Action.DISPATCH, filed, world["dispatcher"], department=elsewhere)
    assert "department" in caught.value.errors


# --- stale callers -------------------------------------------------------------------------------


def test_a_stale_version_gets_a_conflict_with_the_current_state(world):
    case = report(world)
    act(Action.FILE, case, world["lead"])
    with pytest.raises(CaseConflict) as caught:
        act(Action.VOID, case, world["lead"], note="重复")  # still holds version 1
    assert caught.value.status_code == 409
    assert (caught.value.state, caught.value.version) == (S.FILED, 2)
    assert refreshed(case).state == S.FILED
    assert case.events.count() == 2


def test_an_unknown_case_or_action(world):
    with pytest.raises(services.NotFound):
        case_transition(case_id=999999, expected_version=1, action="file", actor=world["lead"])
    case = report(world)
    with pytest.raises(InvalidTransition):
        act("teleport", case, world["lead"])


def test_postgresql_refuses_to_rewrite_the_timeline(world):
    from django.db import DatabaseError, connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("the database trigger exists on PostgreSQL only")
    case = report(world)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE cases_caseevent SET note = 'x' WHERE case_id = %s", [case.pk])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM cases_caseevent WHERE case_id = %s", [case.pk])
    assert case.events.count() == 1
