"""Writes of cases: the report, and every workflow transition through one guarded core.

Each transition is one conditional UPDATE on (pk, state, version): of two
callers holding the same version exactly one changes the row; the other gets
:class:`CaseConflict` (HTTP 409) with the state and version it should reload.
The timeline entry and the audit entry are written in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_entry, audit_log
from accounts.models import Department, Membership, User
from accounts.scopes import subtree_prefix
from core.errors import Conflict, DomainError, NotFound
from geo.index import locate
from geo.models import Area, AreaLevel

from . import reference, workflow
from .models import (
    Case,
    CaseEvent,
    CaseNotice,
    CaseState,
    Category,
    Kind,
    Satisfaction,
    Source,
    Urgency,
)
from .photos import photos_atomic
from .selectors import duplicate_candidates, membership_rows, route_department, step_deadline
from .sla import yellow_from
from .workflow import Action
from .writes import write_report

KIND_LETTER = {Kind.EVENT: "E", Kind.COMPONENT: "C"}
# Where residents' reports come from.
PUBLIC_SOURCES = frozenset({Source.PORTAL, Source.OPEN311})
DEFAULT_REOPEN_DAYS = 7


class CaseActionDenied(DomainError):
    """The actor holds no role that may take this action on this case (HTTP 403)."""

    status_code = 403
    code = "permission_denied"


class InvalidTransition(DomainError):
    code = "invalid_transition"


class CaseConflict(Conflict):
    """The case moved on since the caller read it; ``state`` and ``version`` are its current ones."""

    def __init__(self, *, state: str, version: int):
        message = _(
            "This case was changed meanwhile: it is now %(state)s (version %(version)s). "
            "Reload it and try again."
        ) % {"state": CaseState(state).label, "version": version}
        super().__init__(
            message,
            errors={"non_field_errors": [message], "state": [state], "version": [str(version)]},
        )
        self.state = state
        self.version = version


# --- numbers ------------------------------------------------------------------------


def case_number(*, kind: str, category_code: str, day: date, serial: int) -> str:
    """E0101202611290007: kind letter, class code, local date, daily serial."""
    return f"{KIND_LETTER[kind]}{category_code}{day:%Y%m%d}{serial:04d}"


# --- who may act --------------------------------------------------------------------


def acting_role(
    *,
    actor,
    case: Case | None,
    area: Area,
    roles: frozenset[str],
    memberships: list[tuple] | None = None,
) -> str:
    """The code of a role ``actor`` holds over ``area`` among ``roles``, else CaseActionDenied.

    A membership counts when its area subtree holds ``area``; for a role that
    acts for a department, only when that department is the case's; for a
    case escalated upwards, only when the membership sits at the level now
    responsible or above it. Superusers answer ``"superuser"``.

    ``memberships`` are the actor's rows from :func:`membership_rows`, read in
    the same request; without them the memberships are read here (one query).
    """
    if actor is None or not getattr(actor, "is_authenticated", False) or not actor.is_active:
        raise CaseActionDenied(_("Sign in to act on cases."))
    if (
        "resident" in roles
        and case is not None
        and case.public_token
        and case.reporter_id is not None
        and case.reporter_id == actor.pk
    ):
        return "resident"
    if actor.is_superuser:
        return "superuser"
    if memberships is None:
        memberships = membership_rows(actor)
    rows = [row for row in memberships if row[0] in roles]
    # Sorted so that the role named in the timeline does not depend on row order.
    for role, needs_department, code, level, department_id in sorted(
        rows, key=lambda r: (r[0], r[2])
    ):
        if not area.code.startswith(subtree_prefix(code, level)):
            continue
        if case is not None:
            if needs_department and department_id != case.department_id:
                continue
            if case.state == CaseState.ESCALATED and level > case.level:
                continue
        return role
    raise CaseActionDenied(_("You may not do this to this case."))


# --- deadlines ----------------------------------------------------------------------


def _calendar():
    from core.calendar_store import work_calendar

    return work_calendar()


def _step_fields(
    *, category: Category, urgency: str, state: str, start: datetime, calendar, limits=None
):
    """The step fields of a case entering ``state`` at ``start``; ``limits`` as
    cases.reference.step_limits gives them (read here when None)."""
    step = workflow.STATE_STEP.get(state, "")
    deadline = (
        step_deadline(
            category=category,
            step=step,
            urgency=urgency,
            start=start,
            calendar=calendar,
            limits=limits,
        )
        if step
        else None
    )
    return {
        "step": step,
        "step_started_at": start if step else None,
        "step_deadline": deadline,
        "step_yellow_at": (
            yellow_from(started_at=start, deadline=deadline, calendar=calendar)
            if deadline is not None
            else None
        ),
        "step_overdue": False,
    }


def _overall_deadline(*, category: Category, urgency: str, start: datetime, calendar, limits=None):
    """The main path's limits one after another from ``start``; None when no step has one.

    ``limits`` as cases.reference.step_limits gives them (read here when None).
    """
    if limits is None:
        limits = reference.step_limits(category=category, urgency=urgency)
    moment, limited = start, False
    for step in workflow.MAIN_PATH_STEPS:
        due = step_deadline(
            category=category,
            step=step,
            urgency=urgency,
            start=moment,
            calendar=calendar,
            limits=limits,
        )
        if due is not None:
            moment, limited = due, True
    return moment if limited else None


def _resumed(deadline: datetime | None, *, paused_at: datetime, now: datetime, calendar):
    """``deadline`` moved on by the working time that passed while the clock was paused."""
    if deadline is None:
        return None
    left = calendar.working_seconds_between(paused_at, deadline)
    if left <= 0:
        return deadline
    return calendar.add_working_hours(now, left / 3600)


# --- report -------------------------------------------------------------------------


def _report_problems(
    *, category, urgency, source, description, reporter_email, idempotency_key
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(category, Category) or category.parent_id is None:
        errors["category"] = [_("Choose a minor class.")]
    elif not category.is_active:
        errors["category"] = [_("This class is no longer in use.")]
    if urgency not in Urgency.values:
        errors["urgency"] = [_("Unknown urgency.")]
    if source not in Source.values:
        errors["source"] = [_("Unknown source.")]
    if not (description or "").strip():
        errors["description"] = [_("Describe the problem.")]
    if reporter_email:
        try:
            validate_email(reporter_email)
        except ValidationError:
            errors["reporter_email"] = [_("Enter a valid e-mail address.")]
    if idempotency_key is not None and len(idempotency_key) > 100:
        errors["idempotency_key"] = [_("An idempotency key has at most 100 characters.")]
    return errors


@dataclass(frozen=True)
class Reported:
    """What :func:`case_report_result` wrote beside a new case and read on the way."""

    event: CaseEvent  # the report's timeline entry, the case's only one
    photos: list  # the CasePhoto rows stored with it, in order
    duplicates: list  # the open cases it may duplicate (cases.selectors.Duplicate)
    memberships: list[tuple]  # the reporter's, as membership_rows read them (staff only)


def _first_with_key(actor, key: str) -> Case | None:
    if not key or actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return Case.objects.filter(created_by=actor, idempotency_key=key).first()


def case_report(**fields) -> Case:
    """Record a reported problem; the case (the fields of :func:`case_report_result`)."""
    case, _created = case_report_result(**fields)
    return case


def case_report_result(
    *,
    actor,
    category: Category,
    lat,
    lng,
    description: str,
    source: str,
    urgency: str = Urgency.NORMAL,
    address: str = "",
    reporter=None,
    reporter_name: str = "",
    reporter_phone: str = "",
    reporter_email: str = "",
    idempotency_key: str | None = None,
    photos=None,
    public: bool = False,
    event_data: dict | None = None,
) -> tuple[Case, bool]:
    """Record a reported problem: locate its grid, route it, set its deadlines, number it,
    and note the open cases it may duplicate (same class, within the class's radius and
    window) in its first timeline entry; ``photos`` are uploaded files (cases.photos).

    ``public`` marks a resident's report (the portal, Open311): no staff role is
    needed, the actor is the signed-in resident or None, the class must be one
    residents may report, and the case gets the secret of its private tracking
    link (``public_token``); the resident rates the result before it closes.
    ``event_data`` adds to the report's timeline entry (e.g. the Open311 client).

    Answers the case and whether this call created it. A retried call with
    the same ``idempotency_key`` from the same actor answers the case the
    first call made (and False), whatever else it carries. A case this call
    created carries ``reported`` (:class:`Reported`): what the call wrote beside
    it and read on the way, so that the caller can answer without reading it back.
    """
    key = (idempotency_key or "").strip()
    first = _first_with_key(actor, key)
    if first is not None:
        return first, False
    errors = _report_problems(
        category=category,
        urgency=urgency,
        source=source,
        description=description,
        reporter_email=reporter_email,
        idempotency_key=key,
    )
    if public and "category" not in errors and not category.is_public:
        errors["category"] = [_("Residents cannot report this class.")]
    if public and source not in PUBLIC_SOURCES:
        errors["source"] = [_("A resident's report comes from the portal or Open311.")]
    if errors:
        raise DomainError(_("The report is not valid."), errors=errors)
    prepared = _prepared_photos(photos, "report")
    where = locate(lat, lng)
    if where.outside:
        message = _("This point lies outside every grid.")
        raise DomainError(message, errors={"lat": [message], "lng": [message]})
    grid = reference.grid_area(where.grid.code)
    memberships: list[tuple] = []
    if public:
        role = "resident"
        if actor is not None and not getattr(actor, "is_authenticated", False):
            actor = None
        if reporter is None and actor is not None and getattr(actor, "is_resident", False):
            reporter = actor
    else:
        memberships = membership_rows(actor)
        role = acting_role(
            actor=actor,
            case=None,
            area=grid,
            roles=workflow.REPORT_ROLES,
            memberships=memberships,
        )
    if reporter is None and source == Source.GRID_WORKER:
        reporter = actor
    suggested = route_department(category=category, area=grid)
    calendar = _calendar()
    now = timezone.now()
    state = CaseState.REPORTED
    duplicates = duplicate_candidates(category=category, lat=lat, lng=lng, now=now)
    # Everything but the writes is worked out before them: the day's counter stays
    # locked while they run (cases.writes).
    limits = reference.step_limits(category=category, urgency=urgency)
    step_fields = _step_fields(
        category=category, urgency=urgency, state=state, start=now, calendar=calendar, limits=limits
    )
    deadline = _overall_deadline(
        category=category, urgency=urgency, start=now, calendar=calendar, limits=limits
    )
    day = timezone.localdate(now)
    data = {**(event_data or {}), "source": source, "grid": grid.code}
    if suggested is not None:
        data["suggested_department"] = suggested.code
    if duplicates:
        data["duplicates"] = [d.number for d in duplicates]
    case = Case(
        kind=category.kind,
        category=category,
        urgency=urgency,
        area=grid,
        area_code=grid.code,
        level=AreaLevel.GRID,
        state=state,
        description=description.strip(),
        lat=float(lat),
        lng=float(lng),
        address=address.strip(),
        source=source,
        reporter=reporter,
        reporter_name=reporter_name.strip(),
        reporter_phone=reporter_phone.strip(),
        reporter_email=reporter_email.strip(),
        created_by=actor,
        idempotency_key=key,
        public_token=secrets.token_urlsafe(24) if public else "",
        deadline=deadline,
        created_at=now,
        updated_at=now,
        **step_fields,
    )
    event = _event(
        case=case,
        actor=actor,
        role=role,
        action="report",
        from_state="",
        to_state=state,
        note="",
        at=now,
        data=data,
    )
    entry = audit_entry(
        actor=actor,
        action="case.report",
        object_type=Case._meta.label_lower,
        role=role,
        after={"state": state, "version": case.version, **data},
    )
    prefix = case_number(kind=category.kind, category_code=category.code, day=day, serial=0)[:-4]
    try:
        # Photos are stored beside the rows, in one transaction with them; without
        # photos the rows are all there is to write (cases.writes).
        with photos_atomic() if prepared else nullcontext():
            write_report(case=case, event=event, entry=entry, day=day, prefix=prefix)
            stored = (
                _store_photos(
                    case=case, event=event, action="report", prepared=prepared, actor=actor
                )
                if prepared
                else []
            )
    except IntegrityError:
        # A retry that raced its first attempt: the first one's case stands.
        first = _first_with_key(actor, key)
        if first is not None:
            return first, False
        raise
    case.reported = Reported(
        event=event, photos=stored, duplicates=duplicates, memberships=memberships
    )
    return case, True


def _append_event(**fields) -> CaseEvent:
    """Append a timeline entry (the fields of :func:`_event`)."""
    event = _event(**fields)
    event.save(force_insert=True)
    return event


def _event(*, case, actor, role, action, from_state, to_state, note, at, data) -> CaseEvent:
    """A timeline entry, not yet written."""
    return CaseEvent(
        case=case,
        at=at,
        actor_id=actor.pk if actor is not None else None,
        actor_username=actor.get_username() if actor is not None else "",
        role=role,
        action=action,
        from_state=from_state,
        to_state=to_state,
        note=note,
        deadline=case.step_deadline,
        data=data,
    )


# --- transitions --------------------------------------------------------------------


def action_refusal(*, case: Case, action: str, actor) -> str:
    """Why ``action`` cannot be taken on ``case`` by ``actor`` although the table allows
    it from the state and the actor's role; empty when nothing stands in the way.

    One place for the rules the table cannot say: a postponement is asked for
    once at a time and only a pending one is decided; a grid worker who
    handled a case on the spot does not check it too; the district is the top.
    """
    if action == Action.POSTPONE_REQUEST and case.postpone_until is not None:
        return _("More time has already been asked for; wait for the decision.")
    if action in (Action.POSTPONE_APPROVE, Action.POSTPONE_REJECT) and case.postpone_until is None:
        return _("Nobody has asked for more time on this case.")
    if (
        action in (Action.CHECK_PASS, Action.CHECK_FAIL)
        and actor is not None
        and case.handled_on_spot_by_id is not None
        and case.handled_on_spot_by_id == actor.pk
    ):
        return _(
            "You handled this case on the spot; another grid worker or the grid leader checks it."
        )
    if action == Action.ESCALATE and case.level <= AreaLevel.DISTRICT:
        return _("The district center is the highest level; it cannot escalate.")
    if action == Action.CLOSE and case.public_token:
        return _("A resident's case closes when the resident is satisfied: ask for the rating.")
    if action == Action.RETURN_VISIT and not case.public_token:
        return _("Only a resident's case waits for the resident's rating.")
    return ""


def grid_staff(area: Area, *, leaders: bool = False) -> list:
    """The active grid workers of ``area`` (its grid leaders with ``leaders``): its
    named grid staff first, else anyone holding the matching role over it."""
    staff_role, role_code = ("leader", "grid_leader") if leaders else ("worker", "grid_worker")
    named = list(
        User.objects.filter(
            is_active=True, grid_assignments__area=area, grid_assignments__role=staff_role
        )
        .order_by("pk")
        .distinct()
    )
    if named:
        return named
    holders = []
    rows = Membership.objects.filter(
        is_active=True, user__is_active=True, role__code=role_code
    ).select_related("user", "area")
    for membership in rows.order_by("user_id"):
        if area.code.startswith(membership.area.subtree_prefix) and membership.user not in holders:
            holders.append(membership.user)
    return holders


def _task_assignee(case: Case, chosen, *, exclude_id=None):
    """The person a verify or check task names: ``chosen`` (a grid worker of the
    case's grid), else the grid's own worker — or, for a check of a case that
    worker handled on the spot, another worker or the grid leader; None when
    the grid has nobody."""
    workers = [w for w in grid_staff(case.area) if w.pk != exclude_id]
    if chosen is not None:
        if not any(w.pk == chosen.pk for w in workers):
            message = _("%(user)s is not a grid worker of this case's grid.") % {"user": chosen}
            raise DomainError(message, errors={"assignee": [message]})
        return chosen
    if not workers and exclude_id is not None:
        workers = [w for w in grid_staff(case.area, leaders=True) if w.pk != exclude_id]
    return workers[0] if workers else None


def _notify(*, recipients, case: Case, kind: str, text: str, at: datetime) -> None:
    seen, rows = set(), []
    for user in recipients:
        if user is None or user.pk in seen:
            continue
        seen.add(user.pk)
        rows.append(CaseNotice(recipient=user, case=case, kind=kind, text=text, created_at=at))
    CaseNotice.objects.bulk_create(rows)


def _department_staff(case: Case):
    if case.department_id is None:
        return []
    return [
        m.user
        for m in Membership.objects.filter(
            is_active=True,
            user__is_active=True,
            department_id=case.department_id,
            role__code__in=workflow.DEPARTMENT,
        ).select_related("user")
    ]


def _scope_staff(case: Case, roles) -> list:
    rows = Membership.objects.filter(
        is_active=True, user__is_active=True, role__code__in=roles
    ).select_related("user", "area")
    return [m.user for m in rows if case.area.code.startswith(m.area.subtree_prefix)]


def _until(case: Case, until, now: datetime) -> datetime:
    if not isinstance(until, datetime):
        message = _("Say until when the department needs the case.")
        raise DomainError(message, errors={"until": [message]})
    if timezone.is_naive(until):
        until = timezone.make_aware(until)
    if until <= now or (case.step_deadline is not None and until <= case.step_deadline):
        message = _("A postponement ends after the current deadline.")
        raise DomainError(message, errors={"until": [message]})
    return until


def _require_department(case: Case, department) -> Department:
    if not isinstance(department, Department):
        raise DomainError(
            _("Choose the department to send the case to."),
            errors={"department": [_("Choose the department to send the case to.")]},
        )
    if not department.is_active:
        message = _("This department is no longer active.")
        raise DomainError(message, errors={"department": [message]})
    area = department.area
    if not case.area.code.startswith(area.subtree_prefix):
        message = _("This department does not serve the case's area.")
        raise DomainError(message, errors={"department": [message]})
    return department


def _merge_target(case: Case, merge_into) -> Case:
    target_id = merge_into.pk if isinstance(merge_into, Case) else merge_into
    target = Case.objects.filter(pk=target_id).first() if target_id else None
    message = ""
    if target is None:
        message = _("Choose the case this one duplicates.")
    elif target.pk == case.pk:
        message = _("A case cannot duplicate itself.")
    elif target.state not in workflow.OPEN_STATES:
        message = _("A case can only be merged into an open case.")
    if message:
        raise DomainError(message, errors={"merge_into": [message]})
    return target


def case_transition(
    *,
    case_id: int,
    expected_version: int,
    action: str,
    actor,
    note: str = "",
    department: Department | None = None,
    merge_into: Case | int | None = None,
    until: datetime | None = None,
    assignee=None,
    photos=None,
    data: dict | None = None,
    token: str = "",
    system: bool = False,
) -> Case:
    """Take ``action`` on the case as read at ``expected_version``; the updated case.

    ``token`` is a resident's proof of being the reporter (the secret of the
    case's tracking link) when not signed in; ``system`` is CivicGrid acting by
    itself (a rating period that ran out, an escalation after too many
    unsatisfied rounds): no actor, no role check.

    ``until`` is the new deadline a postponement asks for; ``assignee`` the grid
    worker a verification task names (the grid's own when None); ``photos``
    uploaded files (cases.photos checks, cleans and stores them with the
    timeline entry).

    Refusals, in this order: 404 no such case; 403 the actor holds no role for
    the action over the case (CaseActionDenied); 409 the case is no longer at
    ``expected_version`` (CaseConflict, also when a racing caller wins between
    the read and the write); 400 the action is not allowed from the state, or
    its input is wrong.
    """
    note = (note or "").strip()
    prepared = _prepared_photos(photos, action)
    with photos_atomic():
        case = (
            Case.objects.select_related("category", "area", "department").filter(pk=case_id).first()
        )
        if case is None:
            raise NotFound(_("No such case."))
        step = workflow.transition_for(case.state, action)
        if step is None and action not in workflow.all_actions():
            raise InvalidTransition(
                _("Unknown action %(action)s.") % {"action": action},
                errors={"action": [_("Unknown action.")]},
            )
        roles = (
            step.roles
            if step
            else frozenset().union(
                *(t.roles for (_s, a), t in workflow.TRANSITIONS.items() if a == action)
            )
        )
        if system:
            actor, role = None, "system"
        elif token and "resident" in roles:
            if not case.public_token or not secrets.compare_digest(token, case.public_token):
                raise CaseActionDenied(_("This tracking link does not belong to this case."))
            actor = actor if getattr(actor, "is_authenticated", False) else None
            role = "resident"
        else:
            role = acting_role(actor=actor, case=case, area=case.area, roles=roles)
        if case.version != expected_version:
            raise CaseConflict(state=case.state, version=case.version)
        if step is None:
            message = _("A case that is %(state)s cannot be given this action.") % {
                "state": case.get_state_display()
            }
            raise InvalidTransition(message, errors={"action": [message]})
        if action in workflow.NEEDS_NOTE and not note:
            message = _("Give the reason.")
            raise DomainError(message, errors={"note": [message]})
        refusal = action_refusal(case=case, action=action, actor=actor)
        if refusal:
            raise InvalidTransition(refusal, errors={"action": [refusal]})

        now = timezone.now()
        calendar = _calendar()
        from_state = case.state
        to_state = case.suspended_from if step.to == workflow.PREVIOUS else step.to
        changes: dict = {"state": to_state, "updated_at": now}
        event_data = dict(data or {})

        if action == Action.RESUME:
            changes.update(
                suspended_from="",
                suspended_at=None,
                step_deadline=_resumed(
                    case.step_deadline, paused_at=case.suspended_at, now=now, calendar=calendar
                ),
                step_yellow_at=_resumed(
                    case.step_yellow_at, paused_at=case.suspended_at, now=now, calendar=calendar
                ),
                deadline=_resumed(
                    case.deadline, paused_at=case.suspended_at, now=now, calendar=calendar
                ),
            )
        elif action == Action.SUSPEND:
            # The step and its deadline stay as they are; resume moves the deadline on.
            changes.update(suspended_from=from_state, suspended_at=now)
        elif action not in workflow.KEEPS_CLOCK_ACTIONS:
            changes.update(
                _step_fields(
                    category=case.category,
                    urgency=case.urgency,
                    state=to_state,
                    start=now,
                    calendar=calendar,
                )
            )

        if action == Action.DISPATCH:
            chosen = _require_department(case, department)
            changes["department"] = chosen
            event_data["department"] = chosen.code
        elif action == Action.SEND_BACK:
            changes.update(department=None, send_back_count=F("send_back_count") + 1)
            event_data["department"] = case.department.code if case.department else None
        elif action == Action.CHECK_FAIL:
            changes["rework_count"] = F("rework_count") + 1
        elif action == Action.MERGE:
            target = _merge_target(case, merge_into)
            changes["merged_into"] = target
            event_data["merged_into"] = target.number
        elif action == Action.ESCALATE:
            changes["level"] = case.level - 1
            event_data["level"] = case.level - 1
        elif action == Action.CLOSE:
            changes["closed_at"] = now
        elif action == Action.REOPEN:
            days = settings.CIVICGRID.get("CASE_REOPEN_DAYS", DEFAULT_REOPEN_DAYS)
            if case.closed_at is None or now - case.closed_at > timedelta(days=days):
                message = _("A case can be reopened only within %(days)s days of closing.") % {
                    "days": days
                }
                raise DomainError(message, errors={"action": [message]})
            changes["closed_at"] = None
        elif action == Action.POSTPONE_REQUEST:
            asked = _until(case, until, now)
            changes["postpone_until"] = asked
            event_data["until"] = asked.isoformat()
        elif action == Action.POSTPONE_APPROVE:
            granted = case.postpone_until
            changes.update(
                postpone_until=None,
                postpone_count=F("postpone_count") + 1,
                step_deadline=granted,
                step_yellow_at=yellow_from(
                    started_at=case.step_started_at or now, deadline=granted, calendar=calendar
                ),
                step_overdue=granted <= now,
            )
            if case.deadline is None or case.deadline < granted:
                changes["deadline"] = granted
            event_data["until"] = granted.isoformat()
        elif action == Action.POSTPONE_REJECT:
            changes["postpone_until"] = None
            event_data["until"] = case.postpone_until.isoformat()
        elif action == Action.SUPERVISE:
            changes.update(supervise_count=F("supervise_count") + 1, supervised_at=now)
        elif action == Action.RATE_SATISFIED:
            rating = Satisfaction.DEFAULT if system else Satisfaction.SATISFIED
            changes.update(satisfaction=rating, closed_at=now)
            event_data["satisfaction"] = rating
        elif action == Action.RATE_UNSATISFIED:
            changes.update(
                satisfaction=Satisfaction.UNSATISFIED,
                unsatisfied_count=F("unsatisfied_count") + 1,
                department=None,
            )
            event_data["department"] = case.department.code if case.department else None
        elif action == Action.HANDLE_ON_SPOT:
            changes["handled_on_spot_by"] = actor

        # The task the new state opens names one grid worker (核实, 核查).
        if to_state == CaseState.VERIFYING:
            changes["assignee"] = _task_assignee(case, assignee)
            if changes["assignee"] is None:
                message = _("No grid worker serves this case's grid.")
                raise DomainError(message, errors={"assignee": [message]})
        elif to_state == CaseState.HANDLED:
            on_spot = actor.pk if action == Action.HANDLE_ON_SPOT else case.handled_on_spot_by_id
            changes["assignee"] = _task_assignee(case, None, exclude_id=on_spot)
        elif to_state != from_state:
            changes["assignee"] = None
        if changes.get("assignee") is not None:
            event_data["assignee"] = changes["assignee"].get_username()

        updated = Case.objects.filter(
            pk=case.pk, state=from_state, version=expected_version
        ).update(version=F("version") + 1, **changes)
        if not updated:
            current = Case.objects.filter(pk=case.pk).values("state", "version").first()
            raise CaseConflict(state=current["state"], version=current["version"])
        case.refresh_from_db()
        event = _append_event(
            case=case,
            actor=actor,
            role=role,
            action=action,
            from_state=from_state,
            to_state=to_state,
            note=note,
            at=now,
            data=event_data,
        )
        if prepared:
            _store_photos(case=case, event=event, action=action, prepared=prepared, actor=actor)
        _transition_notices(case=case, action=action, actor=actor, now=now)
        audit_log(
            actor=actor,
            action=f"case.{action}",
            obj=case,
            role=role,
            before={"state": from_state, "version": expected_version},
            after={"state": to_state, "version": case.version, **event_data},
        )
    return case


def _transition_notices(*, case: Case, action: str, actor, now: datetime) -> None:
    """The notices a transition sends, in its transaction (so none is ever lost)."""
    if action == Action.SUPERVISE:
        recipients = _department_staff(case) or _scope_staff(case, workflow.DISPATCHING)
        text = _("Case %(number)s is supervised by %(leader)s.") % {
            "number": case.number,
            "leader": actor.get_username(),
        }
        _notify(
            recipients=recipients, case=case, kind=CaseNotice.Kind.SUPERVISED, text=text, at=now
        )
    elif action == Action.POSTPONE_REQUEST:
        text = _("The department asks for more time on case %(number)s.") % {"number": case.number}
        _notify(
            recipients=_scope_staff(case, workflow.APPROVING - {"leader"}),
            case=case,
            kind=CaseNotice.Kind.POSTPONE,
            text=text,
            at=now,
        )
    elif action in (Action.POSTPONE_APPROVE, Action.POSTPONE_REJECT):
        text = (
            _("More time on case %(number)s was granted.")
            if action == Action.POSTPONE_APPROVE
            else _("More time on case %(number)s was refused.")
        ) % {"number": case.number}
        _notify(
            recipients=_department_staff(case),
            case=case,
            kind=CaseNotice.Kind.POSTPONE,
            text=text,
            at=now,
        )
    if case.assignee_id is not None and case.state in (CaseState.VERIFYING, CaseState.HANDLED):
        text = (
            _("Verify case %(number)s on site.")
            if case.state == CaseState.VERIFYING
            else _("Check case %(number)s on site.")
        ) % {"number": case.number}
        _notify(recipients=[case.assignee], case=case, kind=CaseNotice.Kind.TASK, text=text, at=now)


def case_notice_mark_read(*, user, notice_id: int) -> bool:
    """Mark one of the user's notices read; True when this call marked it (another
    person's notice, or one already read, is left alone)."""
    return bool(
        CaseNotice.objects.filter(pk=notice_id, recipient=user, read_at__isnull=True).update(
            read_at=timezone.now()
        )
    )


# --- photos -------------------------------------------------------------------------


def _prepared_photos(photos, action: str):
    """Check and clean uploaded photos before any write (cases.photos)."""
    files = list(photos or [])
    if not files:
        return []
    if action != "report" and "photos" not in workflow.ACTION_INPUTS.get(action, ()):
        message = _("This action takes no photos.")
        raise DomainError(message, errors={"photos": [message]})
    from .photos import prepare_photos

    return prepare_photos(files)


def _store_photos(*, case, event, action, prepared, actor) -> list:
    from .photos import store_photos

    return store_photos(case=case, event=event, action=action, prepared=prepared, actor=actor)


# --- the resident's side --------------------------------------------------------------


def case_rate(
    *,
    case_id: int,
    expected_version: int,
    satisfied: bool,
    reason: str = "",
    actor=None,
    token: str = "",
) -> Case:
    """The resident rates the result (回访): satisfied closes the case; unsatisfied
    (with a reason) sends it back to dispatch for another round, and after
    ``CIVICGRID["UNSATISFIED_ESCALATE_AFTER"]`` such rounds also escalates it one level."""
    action = Action.RATE_SATISFIED if satisfied else Action.RATE_UNSATISFIED
    with transaction.atomic():
        case = case_transition(
            case_id=case_id,
            expected_version=expected_version,
            action=action,
            actor=actor,
            note=reason,
            token=token,
        )
        limit = settings.CIVICGRID.get("UNSATISFIED_ESCALATE_AFTER", 2)
        if not satisfied and case.unsatisfied_count >= limit and case.level > AreaLevel.DISTRICT:
            case = case_transition(
                case_id=case.pk,
                expected_version=case.version,
                action=Action.ESCALATE,
                actor=None,
                system=True,
                data={"reason": "unsatisfied", "rounds": case.unsatisfied_count},
            )
    return case


def case_withdraw(
    *, case_id: int, expected_version: int, actor=None, token: str = "", reason: str = ""
) -> Case:
    """The resident withdraws a report nobody has filed yet."""
    return case_transition(
        case_id=case_id,
        expected_version=expected_version,
        action=Action.WITHDRAW,
        actor=actor,
        note=reason,
        token=token,
    )


def cases_close_unrated(*, now: datetime | None = None) -> int:
    """Close, as satisfied by default, the cases whose resident did not rate them
    within ``CIVICGRID["RATING_DAYS"]``; how many were closed."""
    now = now or timezone.now()
    days = settings.CIVICGRID.get("RATING_DAYS", 7)
    due = Case.objects.filter(
        state=CaseState.RATING, updated_at__lte=now - timedelta(days=days)
    ).values_list("pk", "version")
    closed = 0
    for pk, version in list(due[:SWEEP_BATCH]):
        try:
            case_transition(
                case_id=pk,
                expected_version=version,
                action=Action.RATE_SATISFIED,
                actor=None,
                system=True,
                data={"rating_days": days},
            )
        except CaseConflict:
            continue  # the resident answered, or another sweep closed it, meanwhile
        closed += 1
    return closed


def cases_erase_reporter(*, user) -> int:
    """Erase a resident's link to her reports: no account, name, phone, e-mail or
    tracking secret stays on them; the cases, their timelines and statistics stay.
    How many cases were anonymised."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(Case.objects.filter(reporter=user).values_list("pk", "number"))
        Case.objects.filter(pk__in=[pk for pk, _n in rows]).update(
            reporter=None,
            created_by=None,
            reporter_name="",
            reporter_phone="",
            reporter_email="",
            public_token="",
            idempotency_key="",
            reporter_purged_at=now,
        )
        Case.objects.filter(created_by=user).update(created_by=None, idempotency_key="")
        audit_log(
            actor=user,
            action="case.reporter_erase",
            object_type="cases.case",
            after={"cases": [number for _pk, number in rows]},
        )
    return len(rows)


# One service per use case, all through the guarded core above. The actions
# that take nothing but a note are made alike; a reason the action requires
# (void, send back, failed check, suspend, reopen) is checked by the core.


def _note_action(action: str) -> Callable[..., Case]:
    def run(*, case_id: int, expected_version: int, actor, note: str = "") -> Case:
        return case_transition(
            case_id=case_id,
            expected_version=expected_version,
            action=action,
            actor=actor,
            note=note,
        )

    run.__name__ = run.__qualname__ = f"case_{action}"
    run.__doc__ = f"Apply {action!r} to a case (see cases.workflow)."
    return run


case_verify_request = _note_action(Action.VERIFY_REQUEST)
case_verify_confirm = _note_action(Action.VERIFY_CONFIRM)
case_file = _note_action(Action.FILE)
case_void = _note_action(Action.VOID)
case_accept = _note_action(Action.ACCEPT)
case_send_back = _note_action(Action.SEND_BACK)
case_handle = _note_action(Action.HANDLE)
case_handle_on_spot = _note_action(Action.HANDLE_ON_SPOT)
case_check_pass = _note_action(Action.CHECK_PASS)
case_check_fail = _note_action(Action.CHECK_FAIL)
case_close = _note_action(Action.CLOSE)
case_escalate = _note_action(Action.ESCALATE)
case_suspend = _note_action(Action.SUSPEND)
case_resume = _note_action(Action.RESUME)
case_reopen = _note_action(Action.REOPEN)


def case_merge(
    *, case_id: int, expected_version: int, actor, merge_into: Case | int, note: str = ""
) -> Case:
    return case_transition(
        case_id=case_id,
        expected_version=expected_version,
        action=Action.MERGE,
        actor=actor,
        note=note,
        merge_into=merge_into,
    )


def case_dispatch(
    *, case_id: int, expected_version: int, actor, department: Department, note: str = ""
) -> Case:
    return case_transition(
        case_id=case_id,
        expected_version=expected_version,
        action=Action.DISPATCH,
        actor=actor,
        note=note,
        department=department,
    )


# --- the overdue sweep --------------------------------------------------------------

SWEEP_BATCH = 200

# A suspended case's clock is paused: it cannot run late until it resumes.
# Nor is a case waiting for the resident's rating late: the city's work is done.
SWEPT_STATES = sorted(workflow.OPEN_STATES - {CaseState.SUSPENDED, CaseState.RATING})


def _claim_overdue(pk: int, now: datetime) -> bool:
    """Mark one case's passed deadlines; True when this call marked anything.

    Each flag is set by a conditional UPDATE that also re-checks the deadline,
    so of two sweeps only one changes the row (the other's UPDATE matches
    nothing once the first commits), and a case that moved on meanwhile to a
    new step with a later deadline is left alone.
    """
    row = Case.objects.filter(pk=pk, state__in=SWEPT_STATES)
    step = row.filter(step_overdue=False, step_deadline__lte=now).update(step_overdue=True)
    overall = row.filter(overdue=False, deadline__lte=now).update(overdue=True)
    if not (step or overall):
        return False
    state, current_step, due = (
        Case.objects.filter(pk=pk).values_list("state", "step", "step_deadline").get()
    )
    CaseEvent.objects.create(
        case_id=pk,
        at=now,
        action="overdue",
        from_state=state,
        to_state=state,
        deadline=due,
        data={"step": current_step, "step_overdue": bool(step), "overall_overdue": bool(overall)},
    )
    return True


def cases_sweep_overdue(*, now: datetime | None = None) -> int:
    """Mark the open cases whose step deadline or overall deadline has passed.

    Answers how many cases this sweep marked. ``step_overdue`` is set when the
    current step's deadline passed, ``overdue`` when the overall deadline did;
    each marked case gets one "overdue" timeline entry (no actor: the system),
    written in the transaction that claimed it. Any number of sweeps may run
    at once: each case is counted by exactly one of them. The case's version
    is not bumped — marking is not a transition, so a caller's If-Match stays
    valid.
    """
    now = now or timezone.now()
    due = Q(step_overdue=False, step_deadline__lte=now) | Q(overdue=False, deadline__lte=now)
    ids = list(
        Case.objects.filter(state__in=SWEPT_STATES)
        .filter(due)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    marked = 0
    for start in range(0, len(ids), SWEEP_BATCH):
        with transaction.atomic():
            for pk in ids[start : start + SWEEP_BATCH]:
                marked += _claim_overdue(pk, now)
    return marked


# --- retention of reporters' personal data ------------------------------------------

PURGE_BATCH = 500


def cases_purge_reporter_data(*, now: datetime | None = None, batch: int = PURGE_BATCH) -> int:
    """Erase the reporter's name, phone and e-mail of cases finished (closed, voided,
    merged) more than ``REPORTER_RETENTION_DAYS`` ago; how many cases were erased.

    Every finished case past the period gets ``reporter_purged_at``, contact or
    not, so the next run looks only at newly finished ones. The link to a
    resident's account (``reporter``) is kept: the account holder may see
    their own reports. One audit entry per run names the cases.
    """
    now = now or timezone.now()
    days = settings.CIVICGRID.get("REPORTER_RETENTION_DAYS", 180)
    cutoff = now - timedelta(days=days)
    erased = 0
    while True:
        with transaction.atomic():
            rows = list(
                Case.objects.filter(
                    reporter_purged_at__isnull=True,
                    updated_at__lt=cutoff,
                    state__in=workflow.FINAL_STATES,
                )
                .order_by("updated_at", "pk")
                .values_list("pk", "number")[:batch]
            )
            if not rows:
                return erased
            Case.objects.filter(pk__in=[pk for pk, _n in rows]).update(
                reporter_name="", reporter_phone="", reporter_email="", reporter_purged_at=now
            )
            audit_log(
                actor=None,
                action="case.reporter_purge",
                object_type="cases.case",
                after={"cases": [number for _pk, number in rows], "retention_days": days},
            )
            erased += len(rows)
