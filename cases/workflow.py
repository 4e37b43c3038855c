"""The case workflow: every state, every action, who may take it — in one table.

``TRANSITIONS[(state, action)]`` is the state the action leads to and the
roles (accounts.roles codes) that may take it. A role is held over an area
subtree by a membership; the actor needs a membership with one of the roles
whose subtree holds the case's grid, and for a role that acts for a
department (handler, department head), that department must be the case's.
Superusers may take any action the table allows from the state.

What the states mean:

- reported: a new report, awaiting the intake (核实 or 立案);
- verifying: a grid worker has been asked to verify it on site (核实);
- filed: a case (立案), awaiting dispatch;
- dispatched: sent to a department, awaiting its signature (签收) or return (回退);
- accepted: the department works it (处置);
- handled: the department's feedback (反馈) is in; the grid worker checks on site (核查);
- checking: the check passed; the shift lead reviews it for closing (结案), or, for a
  resident's report, asks the resident (回访);
- rating: awaiting the resident's rating: satisfied closes it, unsatisfied sends it
  back to dispatch (不满意再分流); no answer in time closes it as satisfied by default;
- escalated: passed one level up (grid → community → street → district), awaiting that level;
- suspended: parked (挂账) with its clock paused; resume returns it where it was;
- closed, voided, merged: finished (closed may be reopened for a while).

Every transition is a service in cases.services; none writes ``state`` by other means.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import FINAL_STATES as _FINAL_STATES
from .models import OPEN_STATES as _OPEN_STATES
from .models import CaseState as S
from .models import Step


class Action:
    VERIFY_REQUEST = "verify_request"
    VERIFY_CONFIRM = "verify_confirm"
    FILE = "file"
    VOID = "void"
    MERGE = "merge"
    DISPATCH = "dispatch"
    ACCEPT = "accept"
    SEND_BACK = "send_back"
    HANDLE = "handle"
    CHECK_PASS = "check_pass"
    CHECK_FAIL = "check_fail"
    CLOSE = "close"
    ESCALATE = "escalate"
    SUSPEND = "suspend"
    RESUME = "resume"
    REOPEN = "reopen"
    HANDLE_ON_SPOT = "handle_on_spot"
    POSTPONE_REQUEST = "postpone_request"
    POSTPONE_APPROVE = "postpone_approve"
    POSTPONE_REJECT = "postpone_reject"
    SUPERVISE = "supervise"
    RETURN_VISIT = "return_visit"
    RATE_SATISFIED = "rate_satisfied"
    RATE_UNSATISFIED = "rate_unsatisfied"
    WITHDRAW = "withdraw"


# Who reports (cases.services.case_report); not a transition, but checked the same way.
REPORT_ROLES = frozenset({"grid_worker", "intake_clerk", "shift_lead", "dispatcher"})

# ``to`` of a resume: the state the case was suspended from.
PREVIOUS = "previous"

INTAKE = frozenset({"intake_clerk", "shift_lead"})
FILING = frozenset({"shift_lead"})
DISPATCHING = frozenset({"dispatcher", "shift_lead"})
DEPARTMENT = frozenset({"handler", "department_head"})
CHECKING = frozenset({"grid_worker", "grid_leader"})
APPROVING = frozenset({"shift_lead", "leader"})
# The reporter of a resident's case (signed in, or holding its tracking link).
RESIDENT = frozenset({"resident"})
CLOSING = frozenset({"shift_lead"})
SUPERVISING = frozenset({"shift_lead", "leader", "admin"})
ESCALATING = frozenset({"grid_worker", "intake_clerk", "shift_lead", "dispatcher"})


@dataclass(frozen=True)
class Transition:
    to: str
    roles: frozenset[str]


def _t(to: str, *role_sets: frozenset[str]) -> Transition:
    return Transition(to=to, roles=frozenset().union(*role_sets))


A = Action
TRANSITIONS: dict[tuple[str, str], Transition] = {
    # intake
    (S.REPORTED, A.VERIFY_REQUEST): _t(S.VERIFYING, INTAKE),
    (S.REPORTED, A.FILE): _t(S.FILED, FILING),
    (S.REPORTED, A.VOID): _t(S.VOIDED, INTAKE, {"admin"}),
    (S.REPORTED, A.MERGE): _t(S.MERGED, INTAKE),
    (S.REPORTED, A.ESCALATE): _t(S.ESCALATED, ESCALATING),
    (S.REPORTED, A.HANDLE_ON_SPOT): _t(S.HANDLED, {"grid_worker"}),
    (S.VERIFYING, A.VERIFY_CONFIRM): _t(S.REPORTED, {"grid_worker"}),
    (S.VERIFYING, A.VOID): _t(S.VOIDED, INTAKE, {"admin"}),
    (S.VERIFYING, A.MERGE): _t(S.MERGED, INTAKE),
    # an upper level resolves it itself or dispatches it
    (S.ESCALATED, A.FILE): _t(S.FILED, FILING),
    (S.ESCALATED, A.DISPATCH): _t(S.DISPATCHED, DISPATCHING),
    (S.ESCALATED, A.VOID): _t(S.VOIDED, INTAKE, {"admin"}),
    (S.ESCALATED, A.ESCALATE): _t(S.ESCALATED, ESCALATING),
    # dispatch
    (S.FILED, A.DISPATCH): _t(S.DISPATCHED, DISPATCHING),
    (S.FILED, A.VOID): _t(S.VOIDED, FILING, {"admin"}),
    (S.FILED, A.ESCALATE): _t(S.ESCALATED, DISPATCHING),
    (S.FILED, A.SUSPEND): _t(S.SUSPENDED, SUPERVISING),
    (S.DISPATCHED, A.DISPATCH): _t(S.DISPATCHED, DISPATCHING),  # re-routed before signature
    (S.DISPATCHED, A.ACCEPT): _t(S.ACCEPTED, DEPARTMENT),
    (S.DISPATCHED, A.SEND_BACK): _t(S.FILED, DEPARTMENT),
    (S.DISPATCHED, A.SUSPEND): _t(S.SUSPENDED, SUPERVISING),
    # handling and the check
    (S.ACCEPTED, A.HANDLE): _t(S.HANDLED, DEPARTMENT),
    (S.ACCEPTED, A.SUSPEND): _t(S.SUSPENDED, SUPERVISING),
    (S.HANDLED, A.CHECK_PASS): _t(S.CHECKING, CHECKING),
    (S.HANDLED, A.CHECK_FAIL): _t(S.ACCEPTED, CHECKING),
    (S.CHECKING, A.CLOSE): _t(S.CLOSED, CLOSING),
    # a resident's case: the resident decides (回访)
    (S.CHECKING, A.RETURN_VISIT): _t(S.RATING, CLOSING),
    (S.RATING, A.RATE_SATISFIED): _t(S.CLOSED, RESIDENT),
    (S.RATING, A.RATE_UNSATISFIED): _t(S.FILED, RESIDENT),
    (S.REPORTED, A.WITHDRAW): _t(S.VOIDED, RESIDENT),
    (S.VERIFYING, A.WITHDRAW): _t(S.VOIDED, RESIDENT),
    # side paths
    (S.SUSPENDED, A.RESUME): _t(PREVIOUS, SUPERVISING),
    (S.CLOSED, A.REOPEN): _t(S.FILED, SUPERVISING),
    # more time for the department (延期): asked for, then approved or refused
    (S.DISPATCHED, A.POSTPONE_REQUEST): _t(S.DISPATCHED, DEPARTMENT),
    (S.ACCEPTED, A.POSTPONE_REQUEST): _t(S.ACCEPTED, DEPARTMENT),
    (S.DISPATCHED, A.POSTPONE_APPROVE): _t(S.DISPATCHED, APPROVING),
    (S.ACCEPTED, A.POSTPONE_APPROVE): _t(S.ACCEPTED, APPROVING),
    (S.DISPATCHED, A.POSTPONE_REJECT): _t(S.DISPATCHED, APPROVING),
    (S.ACCEPTED, A.POSTPONE_REJECT): _t(S.ACCEPTED, APPROVING),
}

# 督办: a leader may supervise any open case that is not parked; it stays where it is.
for _state in (
    S.REPORTED,
    S.VERIFYING,
    S.FILED,
    S.DISPATCHED,
    S.ACCEPTED,
    S.HANDLED,
    S.CHECKING,
    S.ESCALATED,
):
    TRANSITIONS[(_state, A.SUPERVISE)] = _t(_state, {"leader"})
del _state

# The step a case is in while in a state; its deadline comes from the class's time limit.
STATE_STEP: dict[str, str] = {
    S.REPORTED: Step.FILE,
    S.VERIFYING: Step.VERIFY,
    S.ESCALATED: Step.FILE,
    S.FILED: Step.DISPATCH,
    S.DISPATCHED: Step.HANDLE,
    S.ACCEPTED: Step.HANDLE,
    S.HANDLED: Step.CHECK,
    S.CHECKING: Step.CLOSE,
}

# Actions after which the step's clock keeps running rather than restarting:
# signing for a case does not give the department more time to handle it, and
# asking for time, refusing it or supervising moves no deadline (approving a
# postponement sets the asked one).
KEEPS_CLOCK_ACTIONS = frozenset(
    {A.ACCEPT, A.POSTPONE_REQUEST, A.POSTPONE_APPROVE, A.POSTPONE_REJECT, A.SUPERVISE}
)

# Actions whose note is the reason and so may not be empty.
NEEDS_NOTE = frozenset(
    {
        A.VOID,
        A.SEND_BACK,
        A.CHECK_FAIL,
        A.SUSPEND,
        A.REOPEN,
        A.POSTPONE_REQUEST,
        A.POSTPONE_REJECT,
        A.RATE_UNSATISFIED,
    }
)

# What an action takes besides a note, for forms and the API:
# "department" (dispatch), "merge_into" (a case number), "until" (a date and
# time), "assignee" (a grid worker's username; the grid's own when empty),
# "photos" (up to MAX_PHOTOS images).
ACTION_INPUTS: dict[str, tuple[str, ...]] = {
    A.DISPATCH: ("department",),
    A.MERGE: ("merge_into",),
    A.POSTPONE_REQUEST: ("until",),
    A.VERIFY_REQUEST: ("assignee",),
    A.VERIFY_CONFIRM: ("photos",),
    A.HANDLE: ("photos",),
    A.HANDLE_ON_SPOT: ("photos",),
    A.CHECK_PASS: ("photos",),
    A.CHECK_FAIL: ("photos",),
}
# Photos per step (and per report).
MAX_PHOTOS = 9

FINAL_STATES, OPEN_STATES = _FINAL_STATES, _OPEN_STATES  # ended; open (cases.models)

# The steps of a case's whole life, in order: the overall deadline chains their limits.
MAIN_PATH_STEPS = (Step.FILE, Step.DISPATCH, Step.HANDLE, Step.CHECK, Step.CLOSE)


def transition_for(state: str, action: str) -> Transition | None:
    return TRANSITIONS.get((state, action))


def actions_from(state: str) -> list[str]:
    """The actions the table allows from ``state``, in table order."""
    return [action for (s, action) in TRANSITIONS if s == state]


def all_actions() -> set[str]:
    return {action for (_, action) in TRANSITIONS}
