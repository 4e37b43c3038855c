"""Realistic cases in every state of the workflow, written in bulk.

For demonstrations, load tests and benchmarks: each generated case carries
the timeline the services would have written for it — the transition table's
path to its state (cases.workflow), taken by staff who hold the roles over its
grid (and for its department), at increasing times in working hours, with the
deadlines of the real work calendar and the class's time limits, the yellow
moment of cases.sla, the overdue sweep's marks where a deadline passed, the
task assignee, postponements and supervision — numbered like real reports
(cases.services.case_number, the daily counters brought up to date so that a
later report takes the next serial).

Everything is decided up front from the seed (when each case is reported,
where, what, and the state it has reached now), then built and written in
batches, each batch one transaction. While a batch is built every instant is
an integer (microseconds since 1970 UTC) and the working-time arithmetic goes
through the work calendar compiled for the run (core.calendar.CompiledCalendar:
the calendar's own answers, to the microsecond, from a table), and the rows
come out as the database takes them: SQLite gets one ``executemany`` per
table, PostgreSQL ``COPY``. With ``workers`` > 1 the batches are built in
forked processes, each writing its own batches in order while the others build.

Nothing here is reachable from a request: the ``generate_cases`` command,
the demo seeding (cases.demo) and the benchmarks call it.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import math
import multiprocessing
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter

import numpy as np
import shapely
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Department, Membership
from accounts.scopes import subtree_prefix
from core.calendar import CompiledCalendar, from_us, to_us
from core.errors import DomainError
from geo.demo import GIVEN_NAMES, SURNAMES
from geo.geometry import degrees_per_metre
from geo.models import Area, AreaLevel, Building, GridStaff

from . import workflow
from .models import (
    Case,
    CaseEvent,
    CaseNotice,
    CaseState,
    Category,
    Kind,
    Source,
    Step,
    TimeLimit,
    Urgency,
)
from .selectors import route_departments
from .sla import _yellow_ratio
from .workflow import Action
from .writes import next_daily_serial

S = CaseState
A = Action

STATES = tuple(S.values)
OPEN_TARGETS = (
    S.REPORTED,
    S.VERIFYING,
    S.FILED,
    S.DISPATCHED,
    S.ACCEPTED,
    S.HANDLED,
    S.CHECKING,
    S.ESCALATED,
    S.SUSPENDED,
    S.RATING,
)
FINISHED_TARGETS = (S.CLOSED, S.VOIDED, S.MERGED)
SWEPT = frozenset(workflow.OPEN_STATES - {S.SUSPENDED})
LIT = SWEPT

DEFAULT_BATCH = 5000


class GenerationError(DomainError):
    """The database lacks what cases need (grids, classes, a department)."""


# --- the mix of states ---------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    """How the generated cases are spread in time and over the workflow.

    A case ``age`` days old is still open with probability
    ``open_floor + (open_peak - open_floor) * exp(-age / open_decay_days)``;
    ``recent_share`` of the cases are reported in the last ``recent_days``.
    """

    open_peak: float = 0.95
    open_decay_days: float = 1.5
    open_floor: float = 0.02
    recent_share: float = 0.0
    recent_days: float = 7.0


# A year of a city's cases: nearly all finished, a backlog of a few per cent.
REALISTIC = Mix()
# A demo: many open cases, so that every queue has something in it.
DEMO = Mix(open_peak=0.95, open_decay_days=12, open_floor=0.12, recent_share=0.4, recent_days=10)

# Among open cases, young ones (weights at age 0) and old ones (the backlog).
OPEN_YOUNG = {
    S.REPORTED: 14,
    S.VERIFYING: 6,
    S.FILED: 8,
    S.DISPATCHED: 10,
    S.ACCEPTED: 22,
    S.HANDLED: 10,
    S.CHECKING: 6,
    S.ESCALATED: 3,
    S.SUSPENDED: 1,
    S.RATING: 4,
}
OPEN_OLD = {
    S.REPORTED: 2,
    S.VERIFYING: 2,
    S.FILED: 6,
    S.DISPATCHED: 10,
    S.ACCEPTED: 36,
    S.HANDLED: 6,
    S.CHECKING: 2,
    S.ESCALATED: 10,
    S.SUSPENDED: 26,
    S.RATING: 1,
}
FINISHED = {S.CLOSED: 86, S.VOIDED: 9, S.MERGED: 5}

URGENCY_WEIGHTS = {Urgency.NORMAL: 0.88, Urgency.URGENT: 0.10, Urgency.EMERGENCY: 0.02}
SOURCE_WEIGHTS = {
    Source.GRID_WORKER: 0.58,
    Source.HOTLINE: 0.28,
    Source.PORTAL: 0.09,
    Source.API: 0.04,
    Source.OPEN311: 0.01,
}

# Who usually takes an action, among the roles the table allows: the first of
# these with someone in reach acts; then anyone the table allows.
PREFERRED_ROLES = {
    "report": ("grid_worker", "intake_clerk", "dispatcher", "shift_lead"),
    # a report taken at the desk: a call, the portal, another system
    "report_desk": ("intake_clerk", "dispatcher", "shift_lead", "grid_worker"),
    A.VERIFY_REQUEST: ("intake_clerk",),
    A.FILE: ("shift_lead",),
    A.VOID: ("intake_clerk", "shift_lead"),
    A.MERGE: ("intake_clerk",),
    A.ESCALATE: ("intake_clerk", "dispatcher", "grid_worker"),
    A.DISPATCH: ("dispatcher",),
    A.ACCEPT: ("handler",),
    A.SEND_BACK: ("department_head", "handler"),
    A.HANDLE: ("handler",),
    A.CHECK_PASS: ("grid_worker",),
    A.CHECK_FAIL: ("grid_worker",),
    A.CLOSE: ("shift_lead",),
    A.SUSPEND: ("shift_lead", "leader"),
    A.RESUME: ("shift_lead", "leader"),
    A.REOPEN: ("leader", "shift_lead"),
    A.POSTPONE_REQUEST: ("department_head", "handler"),
    A.POSTPONE_APPROVE: ("shift_lead", "leader"),
    A.POSTPONE_REJECT: ("shift_lead", "leader"),
    A.SUPERVISE: ("leader",),
    A.RETURN_VISIT: ("shift_lead",),
}

NOTES = {
    A.VOID: [
        "经核实不属于受理范围",
        "现场核实无此问题",
        "上报信息不全，无法核实",
        "属于私人区域，不予立案",
    ],
    A.SEND_BACK: [
        "不属于本部门职责，请重新派遣",
        "地址不准确，请核实后重新派遣",
        "需先由街道协调处理",
    ],
    A.CHECK_FAIL: ["现场仍有残留，需重新处置", "问题未彻底解决", "处置结果不符合结案标准"],
    A.SUSPEND: ["涉及历史遗留问题，需多部门协调", "等待专项资金审批", "需待周边施工结束后处理"],
    A.REOPEN: ["市民反映问题复发", "复查发现处置不到位"],
    A.POSTPONE_REQUEST: [
        "需采购配件，申请延期",
        "工程量较大，需延长处置时间",
        "受天气影响无法施工",
    ],
    A.POSTPONE_REJECT: ["延期理由不充分，请按期完成", "问题影响较大，须按时处置"],
    A.MERGE: ["与已受理案件重复", "同一问题重复上报"],
    A.RATE_UNSATISFIED: ["问题没有解决", "处理不彻底，还有残留"],
}
OPTIONAL_NOTES = {
    A.FILE: ["符合立案条件", "情况属实，予以立案"],
    A.HANDLE: ["已处置完毕", "已安排人员现场处理完成", "已清理完毕，现场恢复正常"],
    A.HANDLE_ON_SPOT: ["已现场处置", "发现后当场处理完毕"],
    A.CHECK_PASS: ["现场核查通过", "核查属实，已处置到位"],
    A.CLOSE: ["处置到位，予以结案"],
    A.VERIFY_CONFIRM: ["现场核实情况属实"],
    A.SUPERVISE: ["请加快处置进度", "市民多次反映，请优先办理"],
}
DETAILS = [
    "影响行人通行",
    "周边居民多次反映",
    "请尽快处理",
    "已拍照取证",
    "现场情况较为严重",
    "存在安全隐患",
    "影响市容环境",
    "夜间尤为明显",
]


# --- what the database holds ---------------------------------------------------------


@dataclass
class Grid:
    id: int
    code: str
    name: str
    community: str
    shape: object  # prepared shapely geometry
    bounds: tuple[float, float, float, float]
    weight: float
    buildings: list[tuple[str, float, float]] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)  # user ids, as services.grid_staff
    leaders: list[int] = field(default_factory=list)
    has_worker: bool = False  # someone may verify and handle on the spot
    checkers: int = 0  # people who may check: an on-the-spot handler needs another


@dataclass
class Class:
    id: int
    code: str
    kind: str
    name: str
    parent_id: int | None
    window_hours: int
    radius_m: int
    is_public: bool
    # (step, urgency) → TimeLimit, the minor class's own else its major class's.
    limits: dict
    weight: float = 1.0


@dataclass(frozen=True)
class Hold:
    """One active membership: who holds which role where (and for which department)."""

    user_id: int
    username: str
    role: str
    needs_department: bool
    prefix: str
    area_code: str
    level: int
    department_id: int | None


@dataclass
class Context:
    """Everything a batch is built from, read once (no query while building)."""

    now: datetime
    calendar: object
    yellow_ratio: float
    tz: object
    grids: list[Grid]
    classes: list[Class]
    holds: list[Hold]
    usernames: dict[int, str]
    departments: dict[int, tuple[str, str]]  # id → (code, subtree prefix)
    dept_staffed: set[int]
    routed: dict[tuple[int, int], int | None] = field(default_factory=dict)
    superuser: tuple[int, str] | None = None
    retention_days: int = 180
    rating_days: int = 7
    reopen_days: int = 7
    notices: bool = True
    # The work calendar compiled for the run's period (generate_cases sets it).
    compiled: CompiledCalendar | None = None
    _reach: dict = field(default_factory=dict)

    def department_for(self, class_index: int, grid_index: int) -> int | None:
        """route_departments' answer, else a department serving the grid (one with staff first)."""
        grid, cls = self.grids[grid_index], self.classes[class_index]
        routed = self.routed.get((cls.id, grid.id))
        if routed is not None:
            return routed
        serving = self.serving(grid.code)
        if not serving:
            return None
        staffed = [d for d in serving if d in self.dept_staffed] or serving
        return staffed[(cls.parent_id or cls.id) % len(staffed)]

    def serving(self, grid_code: str) -> list[int]:
        key = ("serving", grid_code)
        found = self._reach.get(key)
        if found is None:
            found = sorted(
                pk
                for pk, (_code, prefix) in self.departments.items()
                if grid_code.startswith(prefix)
            )
            self._reach[key] = found
        return found

    def residents_over(self, grid_code: str) -> list[tuple[int, str]]:
        """(id, username) of the residents registered where the grid is."""
        key = ("residents", grid_code)
        found = self._reach.get(key)
        if found is None:
            found = sorted(
                {
                    (h.user_id, h.username)
                    for h in self.holds_over(grid_code)
                    if h.role == "resident"
                }
            )
            self._reach[key] = found
        return found

    def holds_over(self, grid_code: str) -> list[Hold]:
        """The memberships whose subtree holds the grid."""
        key = ("holds", grid_code)
        found = self._reach.get(key)
        if found is None:
            found = [h for h in self.holds if grid_code.startswith(h.prefix)]
            self._reach[key] = found
        return found

    def actors(self, *, roles, grid: Grid, department_id, escalated_level) -> list[tuple]:
        """(user id, username, role) of everyone ``acting_role`` would let act, the role as it
        names it; grouped by the preference tier of ``roles`` (a tuple of role sets)."""
        key = (roles, grid.code, department_id, escalated_level)
        found = self._reach.get(key)
        if found is not None:
            return found
        allowed = frozenset().union(*roles)
        eligible: dict[int, list[Hold]] = defaultdict(list)
        for h in self.holds_over(grid.code):
            if h.role not in allowed:
                continue
            if h.needs_department and h.department_id != department_id:
                continue
            if escalated_level is not None and h.level > escalated_level:
                continue
            eligible[h.user_id].append(h)
        tiers = []
        for tier in roles:
            people = []
            for user_id, holds in sorted(eligible.items()):
                if not any(h.role in tier for h in holds):
                    continue
                # The role acting_role names: the first by (role, area code).
                first = min(holds, key=lambda h: (h.role, h.area_code))
                people.append((user_id, holds[0].username, first.role))
            if people:
                tiers.append(people)
        self._reach[key] = tiers
        return tiers


def _role_tiers(action: str, allowed: frozenset[str]) -> tuple[frozenset[str], ...]:
    preferred = [r for r in PREFERRED_ROLES.get(action, ()) if r in allowed]
    tiers = tuple(frozenset({r}) for r in preferred)
    return (*tiers, allowed)


def load_context(
    *, now: datetime | None = None, area_prefix: str = "", notices: bool = True
) -> Context:
    """Read grids, classes, limits, staff, departments and routing once."""
    from core.calendar_store import work_calendar

    now = now or timezone.now()
    grid_rows = Area.objects.filter(level=AreaLevel.GRID, geometry__isnull=False)
    if area_prefix:
        grid_rows = grid_rows.filter(code__startswith=area_prefix)
    grid_rows = list(
        grid_rows.order_by("code").values_list(
            "id", "code", "name", "parent__name", "geometry", "households", "population"
        )
    )
    if not grid_rows:
        raise GenerationError(
            _("There is no grid with a boundary: load or import a city first (seed_demo).")
        )
    shapes = shapely.from_wkb([bytes(r[4]) for r in grid_rows])
    shapely.prepare(shapes)
    bounds = shapely.bounds(shapes)
    grids = [
        Grid(
            id=r[0],
            code=r[1],
            name=r[2],
            community=r[3] or "",
            shape=shapes[i],
            bounds=tuple(float(v) for v in bounds[i]),
            weight=float(r[5] or 0) * 3 + float(r[6] or 0) + 60.0,
        )
        for i, r in enumerate(grid_rows)
    ]
    by_id = {g.id: g for g in grids}
    for grid_id, name, lng, lat in Building.objects.filter(grid_id__in=by_id).values_list(
        "grid_id", "name", "lng", "lat"
    ):
        by_id[grid_id].buildings.append((name, lng, lat))
    for area_id, user_id, role in (
        GridStaff.objects.filter(area_id__in=by_id, user__is_active=True)
        .order_by("user_id")
        .values_list("area_id", "user_id", "role")
        .distinct()
    ):
        grid = by_id[area_id]
        (grid.leaders if role == GridStaff.Role.LEADER else grid.workers).append(user_id)

    minors = list(
        Category.objects.filter(parent__isnull=False, is_active=True).order_by("kind", "code")
    )
    if not minors:
        raise GenerationError(
            _("There is no active minor class: load the categories first (seed_categories).")
        )
    class_ids = {c.pk for c in minors} | {c.parent_id for c in minors}
    own: dict[int, dict] = defaultdict(dict)
    for limit in TimeLimit.objects.filter(category_id__in=class_ids):
        own[limit.category_id][(limit.step, limit.urgency)] = limit
    classes = []
    for c in minors:
        limits = {}
        for step in Step.values:
            for urgency in Urgency.values:
                key = (step, urgency)
                limits[key] = own[c.pk].get(key) or own[c.parent_id].get(key)
        classes.append(
            Class(
                id=c.pk,
                code=c.code,
                kind=c.kind,
                name=c.name,
                parent_id=c.parent_id,
                window_hours=c.duplicate_window_hours,
                is_public=bool(getattr(c, "is_public", False)),
                radius_m=c.duplicate_radius_m,
                limits=limits,
            )
        )

    holds = [
        Hold(
            user_id=r[0],
            username=r[1],
            role=r[2],
            needs_department=r[3],
            prefix=subtree_prefix(r[4], r[5]),
            area_code=r[4],
            level=r[5],
            department_id=r[6],
        )
        for r in Membership.objects.filter(is_active=True, user__is_active=True).values_list(
            "user_id",
            "user__username",
            "role__code",
            "role__needs_department",
            "area__code",
            "area__level",
            "department_id",
        )
    ]
    worker_prefixes = {h.prefix for h in holds if h.role == "grid_worker"}
    for grid in grids:
        grid.has_worker = bool(grid.workers) or any(
            grid.code.startswith(p) for p in worker_prefixes
        )
        grid.checkers = len(
            {
                h.user_id
                for h in holds
                if h.role in workflow.CHECKING and grid.code.startswith(h.prefix)
            }
        )
    user_model = get_user_model()
    staff_ids = {h.user_id for h in holds} | {u for g in grids for u in g.workers + g.leaders}
    usernames = dict(
        user_model.objects.filter(pk__in=staff_ids).values_list("pk", user_model.USERNAME_FIELD)
    )
    superuser = (
        user_model.objects.filter(is_superuser=True, is_active=True)
        .order_by("pk")
        .values_list("pk", user_model.USERNAME_FIELD)
        .first()
    )
    departments = {
        pk: (code, subtree_prefix(area_code, level))
        for pk, code, area_code, level in Department.objects.filter(is_active=True).values_list(
            "pk", "code", "area__code", "area__level"
        )
    }
    if not any(g.code.startswith(prefix) for _c, prefix in departments.values() for g in grids[:1]):
        raise GenerationError(
            _("No active department serves the grids: cases could not be dispatched.")
        )
    staffed = {h.department_id for h in holds if h.needs_department and h.department_id}
    return Context(
        now=now,
        calendar=work_calendar(),
        yellow_ratio=_yellow_ratio(),
        tz=timezone.get_default_timezone(),
        grids=grids,
        classes=classes,
        holds=holds,
        usernames=usernames,
        departments=departments,
        dept_staffed=staffed,
        superuser=tuple(superuser) if superuser else None,
        retention_days=int(settings.CIVICGRID.get("REPORTER_RETENTION_DAYS", 180)),
        reopen_days=int(settings.CIVICGRID.get("CASE_REOPEN_DAYS", 7)),
        rating_days=int(settings.CIVICGRID.get("RATING_DAYS", 7)),
        notices=notices,
    )


@dataclass(frozen=True, slots=True)
class _RoutingProbe:
    """A stand-in for a case carrying what the router reads: a key, the class, the grid
    (a thousand times cheaper to make than an unsaved Case, for each class and grid)."""

    pk: int
    category: Category
    area: Area

    @property
    def category_id(self) -> int:
        return self.category.pk


def _route(ctx: Context, pairs: set[tuple[int, int]]) -> None:
    """Fill ``ctx.routed`` for (class index, grid index) pairs through route_departments."""
    wanted = [
        (ci, gi) for ci, gi in pairs if (ctx.classes[ci].id, ctx.grids[gi].id) not in ctx.routed
    ]
    if not wanted:
        return
    categories = {
        c.pk: c for c in Category.objects.filter(pk__in={ctx.classes[ci].id for ci, _g in wanted})
    }
    areas = {
        a.pk: a
        for a in Area.objects.filter(pk__in={ctx.grids[gi].id for _c, gi in wanted}).defer(
            "geometry"
        )
    }
    for start in range(0, len(wanted), 20_000):
        chunk = wanted[start : start + 20_000]
        probes = [
            _RoutingProbe(i, categories[ctx.classes[ci].id], areas[ctx.grids[gi].id])
            for i, (ci, gi) in enumerate(chunk)
        ]
        answer = route_departments(probes)
        for i, (ci, gi) in enumerate(chunk):
            department = answer.get(i)
            ctx.routed[(ctx.classes[ci].id, ctx.grids[gi].id)] = (
                department.pk if department is not None else None
            )


# --- the plan: when, where, what, which state -----------------------------------------


@dataclass
class Plan:
    created: np.ndarray  # epoch seconds, sorted
    grid: np.ndarray  # index into ctx.grids
    cls: np.ndarray  # index into ctx.classes
    urgency: np.ndarray  # index into Urgency.values
    source: np.ndarray  # index into SOURCES
    target: np.ndarray  # index into STATES
    seed: int

    def __len__(self) -> int:
        return len(self.created)


URGENCIES = tuple(URGENCY_WEIGHTS)
SOURCES = tuple(SOURCE_WEIGHTS)


def _local_midnights(ctx: Context, first: date, days: int) -> np.ndarray:
    out = np.empty(days, dtype=np.float64)
    for i in range(days):
        day = first + timedelta(days=i)
        out[i] = datetime(day.year, day.month, day.day, tzinfo=ctx.tz).timestamp()
    return out


def make_plan(
    ctx: Context,
    *,
    count: int,
    days: float,
    seed: int,
    mix: Mix = REALISTIC,
    grid_boost: dict[str, float] | None = None,
    ensure: list[tuple[set[str] | None, str, int]] | None = None,
) -> Plan:
    """Decide every case's report time, grid, class, urgency, source and target state.

    ``ensure`` lists (grid codes or None for any, state, n): at least ``n``
    cases in those grids reach that state (the youngest cases are moved).
    """
    rng = np.random.default_rng(seed)
    now = ctx.now.timestamp()
    span = max(float(days), 1 / 24) * 86400.0
    recent = min(span, mix.recent_days * 86400.0)
    n_recent = int(round(count * mix.recent_share))
    # Days back, then a local time of day: the working day's peaks, some at any hour.
    want = int(count * 1.6) + 64
    created = np.empty(0)
    local_now = ctx.now.astimezone(ctx.tz)
    first_day = (local_now - timedelta(seconds=span)).date() - timedelta(days=1)
    n_days = (local_now.date() - first_day).days + 2
    midnights = _local_midnights(ctx, first_day, n_days)
    weekdays = np.array([(first_day + timedelta(days=i)).weekday() for i in range(n_days)])
    while len(created) < count:
        back = np.concatenate(
            [
                rng.uniform(0, span, max(want - n_recent * 2, 16)),
                rng.uniform(0, recent, n_recent * 2),
            ]
        )
        rng.shuffle(back)
        base = now - back
        day = np.searchsorted(midnights, base, side="right") - 1
        which = rng.uniform(size=len(base))
        tod = np.where(
            which < 0.42,
            rng.normal(10.3, 1.4, len(base)),
            np.where(which < 0.8, rng.normal(15.3, 1.5, len(base)), rng.uniform(0, 24, len(base))),
        )
        tod = np.clip(tod, 0, 23.999) * 3600
        moment = midnights[day] + tod
        keep = (moment < now - 60) & (moment > now - span)
        weekend = weekdays[day] >= 5
        keep &= ~weekend | (rng.uniform(size=len(base)) < 0.6)
        created = np.concatenate([created, moment[keep]])
    # Keep the recent share as drawn: a random subset of all candidates.
    created = np.sort(rng.choice(created, size=count, replace=False))

    weights = np.array([g.weight for g in ctx.grids])
    if grid_boost:
        for i, g in enumerate(ctx.grids):
            weights[i] *= grid_boost.get(g.code, 1.0)
    grid = rng.choice(len(ctx.grids), size=count, p=weights / weights.sum())

    # Class frequencies: a seeded Zipf over the classes, events twice as common.
    order = rng.permutation(len(ctx.classes))
    class_w = np.empty(len(ctx.classes))
    class_w[order] = 1.0 / (np.arange(len(ctx.classes)) + 1.5) ** 0.9
    class_w *= np.array([2.0 if c.kind == Kind.EVENT else 1.0 for c in ctx.classes])
    cls = rng.choice(len(ctx.classes), size=count, p=class_w / class_w.sum())
    urgency = rng.choice(len(URGENCIES), size=count, p=list(URGENCY_WEIGHTS.values()))
    source = rng.choice(len(SOURCES), size=count, p=list(SOURCE_WEIGHTS.values()))

    age = (now - created) / 86400.0
    p_open = mix.open_floor + (mix.open_peak - mix.open_floor) * np.exp(-age / mix.open_decay_days)
    is_open = rng.uniform(size=count) < p_open
    youth = np.exp(-age / max(mix.open_decay_days, 0.5))
    open_states = list(OPEN_YOUNG)
    young = np.array([OPEN_YOUNG[s] for s in open_states], dtype=float)
    old = np.array([OPEN_OLD[s] for s in open_states], dtype=float)
    w = youth[:, None] * young[None, :] + (1 - youth[:, None]) * old[None, :]
    w /= w.sum(axis=1, keepdims=True)
    pick = (rng.uniform(size=count)[:, None] > np.cumsum(w, axis=1)).sum(axis=1)
    pick = np.minimum(pick, len(open_states) - 1)
    index = {s: i for i, s in enumerate(STATES)}
    open_idx = np.array([index[s] for s in open_states])[pick]
    fin = list(FINISHED)
    fin_idx = rng.choice(
        [index[s] for s in fin], size=count, p=np.array(list(FINISHED.values())) / 100
    )
    target = np.where(is_open, open_idx, fin_idx)

    # Every state at least once when there are enough cases: the youngest take
    # the missing open states, random older ones the missing finished states.
    # (Verifying needs a grid with a grid worker, a passed check someone who checks.)
    fixed = np.zeros(count, dtype=bool)
    if count >= len(STATES):
        staffed = {g.code for g in ctx.grids if g.has_worker}
        checked = {g.code for g in ctx.grids if g.checkers}
        for state in STATES:
            codes = None
            if state == S.VERIFYING:
                codes = staffed
            elif state in (S.CHECKING, S.RATING, S.CLOSED):
                codes = checked
            if codes != set():
                _ensure(ctx, rng, target, grid, created, fixed, codes, index[state], 1)
    for codes, state, n in ensure or ():
        _ensure(ctx, rng, target, grid, created, fixed, codes, index[state], n)
    # Only a resident's report waits for the resident's rating (回访).
    rating = np.flatnonzero(target == index[S.RATING])
    public = [i for i, c in enumerate(ctx.classes) if c.is_public]
    if len(rating):
        if public:
            cls[rating] = rng.choice(public, size=len(rating))
            source[rating] = SOURCES.index(Source.PORTAL)
        else:
            target[rating] = index[S.CHECKING]
    return Plan(created, grid, cls, urgency, source, target, seed)


def _ensure(ctx, rng, target, grid, created, fixed, codes, state: int, n: int) -> None:
    """At least ``n`` cases in the grids ``codes`` (any grid: None) reach ``state``."""
    inside = np.ones(len(target), dtype=bool)
    if codes:
        wanted = [i for i, g in enumerate(ctx.grids) if g.code in codes]
        if not wanted:
            return
        inside = np.isin(grid, wanted)
    have = int(((target == state) & inside).sum())
    if have >= n:
        return
    finished = {STATES.index(s) for s in FINISHED_TARGETS}
    # The youngest first (the plan is in order of reporting), or at random; walked
    # lazily, as a few cases are enough.
    if state in finished:
        order = (int(i) for i in rng.permutation(len(target)))
    else:
        order = iter(range(len(target) - 1, -1, -1))
    for i in order:
        if have >= n:
            break
        if target[i] == state or fixed[i]:
            continue
        fixed[i] = True
        if not inside[i]:
            grid[i] = wanted[int(rng.integers(len(wanted)))]
            inside[i] = True
        target[i] = state
        have += 1


# --- one case's story ------------------------------------------------------------------


def _path(
    target: str, rnd: random.Random, *, has_worker: bool, public: bool = False, on_spot: bool = True
) -> list[str]:
    """The actions after the report that lead to ``target``, side paths drawn at random.

    Without a grid worker in reach nobody verifies or handles on the spot: a
    case meant to be verifying stays reported.
    """
    acts: list[str] = []
    at = [S.REPORTED, ""]  # the state, and where a suspended case resumes

    def go(action: str) -> None:
        acts.append(action)
        to = workflow.TRANSITIONS[(at[0], action)].to
        if action == A.SUSPEND:
            at[1] = at[0]
        at[0] = at[1] if to == workflow.PREVIOUS else to

    if target == S.VERIFYING and not has_worker:
        target = S.REPORTED
    if target == S.RATING and not public:
        target = S.CHECKING
    _path_to(
        S.CHECKING if target == S.RATING else target,
        rnd,
        go,
        lambda: at[0],
        acts,
        has_worker,
        on_spot and has_worker,
    )
    if public and A.CLOSE in acts:
        # A resident's case is closed by the resident's rating, not by the shift lead.
        acts[:] = acts[: acts.index(A.CLOSE)]
        at[0] = S.CHECKING
        go(A.RETURN_VISIT)
        if rnd.random() < 0.06:
            for action in (A.RATE_UNSATISFIED, A.DISPATCH, A.ACCEPT, A.HANDLE, A.CHECK_PASS):
                go(action)
            go(A.RETURN_VISIT)
        go(A.RATE_SATISFIED)
    elif public and target == S.RATING:
        go(A.RETURN_VISIT)
    # 督办 on a few open cases; it leaves the case where it is.
    supervisable = (at[0], A.SUPERVISE) in workflow.TRANSITIONS and target != S.SUSPENDED
    if supervisable and rnd.random() < 0.08:
        go(A.SUPERVISE)
    return acts


def _path_to(target, rnd, go, state, acts, has_worker, on_spot) -> None:
    if target == S.VERIFYING:
        go(A.VERIFY_REQUEST)
        return
    if has_worker and rnd.random() < 0.18:
        go(A.VERIFY_REQUEST)
        go(A.VERIFY_CONFIRM)
    if target == S.REPORTED:
        return
    if target == S.MERGED:
        if has_worker and rnd.random() < 0.3:
            go(A.VERIFY_REQUEST)
        go(A.MERGE)
        return
    if target == S.VOIDED:
        r = rnd.random()
        if r < 0.2 and has_worker:
            go(A.VERIFY_REQUEST)
        elif r < 0.35:
            go(A.FILE)
        elif r < 0.45:
            go(A.ESCALATE)
        go(A.VOID)
        return
    if target == S.ESCALATED:
        for _i in range(1 + (rnd.random() < 0.25) + (rnd.random() < 0.1)):
            go(A.ESCALATE)
        return
    if target in (S.HANDLED, S.CHECKING, S.CLOSED) and on_spot and rnd.random() < 0.15:
        go(A.HANDLE_ON_SPOT)
        if target == S.HANDLED:
            return
        go(A.CHECK_PASS)
        if target == S.CHECKING:
            return
        go(A.CLOSE)
        return
    if rnd.random() < 0.06:
        go(A.ESCALATE)
        if rnd.random() < 0.3:
            go(A.ESCALATE)
        go(A.FILE if rnd.random() < 0.5 else A.DISPATCH)
    else:
        go(A.FILE)
    if target == S.FILED:
        if state() == S.DISPATCHED:
            go(A.SEND_BACK)
        elif rnd.random() < 0.12:
            go(A.DISPATCH)
            go(A.SEND_BACK)
        return
    if target == S.SUSPENDED and state() == S.FILED and rnd.random() < 0.3:
        go(A.SUSPEND)
        return
    if state() == S.FILED:
        go(A.DISPATCH)
    for _i in range(2):
        if rnd.random() < 0.07:
            go(A.SEND_BACK)
            go(A.DISPATCH)
    if rnd.random() < 0.04:
        go(A.DISPATCH)  # re-routed before signature
    if target == S.DISPATCHED:
        if rnd.random() < 0.1:
            go(A.POSTPONE_REQUEST)
            if rnd.random() < 0.5:
                go(A.POSTPONE_APPROVE if rnd.random() < 0.7 else A.POSTPONE_REJECT)
        return
    if target == S.SUSPENDED and rnd.random() < 0.4:
        go(A.SUSPEND)
        return
    go(A.ACCEPT)
    if target == S.CLOSED:
        if rnd.random() < 0.03:
            go(A.SUPERVISE)
        if rnd.random() < 0.02:
            go(A.SUSPEND)
            go(A.RESUME)
    if rnd.random() < 0.07:
        go(A.POSTPONE_REQUEST)
        if target != S.ACCEPTED or rnd.random() < 0.6:
            go(A.POSTPONE_APPROVE if rnd.random() < 0.7 else A.POSTPONE_REJECT)
    if target == S.SUSPENDED:
        if acts[-1] == A.POSTPONE_REQUEST:
            go(A.POSTPONE_APPROVE)
        go(A.SUSPEND)
        return
    if target == S.ACCEPTED:
        if rnd.random() < 0.12 and acts[-1] != A.POSTPONE_REQUEST:
            go(A.HANDLE)
            go(A.CHECK_FAIL)
        return
    if acts[-1] == A.POSTPONE_REQUEST:
        go(A.POSTPONE_APPROVE)
    go(A.HANDLE)
    for _i in range(2):
        if rnd.random() < 0.07:
            go(A.CHECK_FAIL)
            go(A.HANDLE)
    if target == S.HANDLED:
        return
    go(A.CHECK_PASS)
    if target == S.CHECKING:
        return
    go(A.CLOSE)
    if rnd.random() < 0.01:
        for action in (A.REOPEN, A.DISPATCH, A.ACCEPT, A.HANDLE, A.CHECK_PASS, A.CLOSE):
            go(action)


def _states_along(actions: list[str]) -> list[str]:
    """The state before each action, and the final one, following the table."""
    states = [S.REPORTED]
    suspended_from = ""
    for action in actions:
        state = states[-1]
        to = workflow.TRANSITIONS[(state, action)].to
        if action == A.SUSPEND:
            suspended_from = state
        if to == workflow.PREVIOUS:
            to = suspended_from
        states.append(to)
    return states


def _restarts_clock(action: str) -> bool:
    return action not in workflow.KEEPS_CLOCK_ACTIONS and action not in (A.SUSPEND, A.RESUME)


# --- instants ----------------------------------------------------------------------------
# While a batch is built every instant is an integer: microseconds since 1970 UTC
# (core.calendar.to_us). The compiled calendar does the working-time arithmetic on
# them and gives the work calendar's answers to the microsecond, so the deadlines
# equal what the services compute from the stored times.

US = 1_000_000
DAY_US = 86_400 * US
_EPOCH_NAIVE = datetime(1970, 1, 1)


# "HH:MM:SS" at each second of a day.
_CLOCK = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


def _datetime_adapter(vendor: str) -> Callable[[int | None], object]:
    """Microseconds → the value a DateTimeField column takes on this database.

    SQLite stores an aware datetime as ``str()`` of it in naive UTC (the
    microseconds only when there are some); PostgreSQL's COPY reads the same
    text with "+00". Written here from a day and a second of the day, a few
    times faster than through a datetime.
    """
    days: dict[int, str] = {}
    suffix = "+00" if vendor == "postgresql" else ""
    if vendor not in ("sqlite", "postgresql"):
        ops = connection.ops

        def adapt(us):
            return None if us is None else ops.adapt_datetimefield_value(from_us(us))

        return adapt

    # A deadline is written once per timeline entry while its step runs: kept.
    known: dict[int, str] = {}

    def adapt(us, _clock=_CLOCK, _days=days, _suffix=suffix, _known=known):
        if us is None:
            return None
        text = _known.get(us)
        if text is not None:
            return text
        seconds, micro = divmod(us, US)
        day, second = divmod(seconds, 86_400)
        prefix = _days.get(day)
        if prefix is None:
            prefix = _days[day] = f"{_EPOCH_NAIVE + timedelta(days=day):%Y-%m-%d} "
        if micro:
            text = _known[us] = f"{prefix}{_clock[second]}.{micro:06d}{_suffix}"
        else:
            text = _known[us] = f"{prefix}{_clock[second]}{_suffix}"
        return text

    return adapt


def _iso(us: int) -> str:
    """As ``datetime.isoformat()`` of the instant in UTC (what the services put in data)."""
    return from_us(us).isoformat()


@dataclass
class Built:
    """One batch, ready to write: each case's row (without id, number and duplicate of),
    its timeline's and notices' rows (without the case), written as they are."""

    first: int
    cases: list[tuple] = field(default_factory=list)
    # (local date of the report, kind, class code) per case: its number.
    numbering: list[tuple[date, str, str]] = field(default_factory=list)
    events: list[list[tuple]] = field(default_factory=list)
    notices: list[list[tuple]] = field(default_factory=list)
    # (case index, merged-into case index, the merge entry's index, its data,
    # the report's data when it names the duplicate) within the batch.
    merges: list[tuple] = field(default_factory=list)
    # (case index, bytes drawn for its tracking link's secret) of residents' cases.
    tokens: list[tuple[int, bytes]] = field(default_factory=list)
    states: Counter = field(default_factory=Counter)


class _Story:
    """A case's fields as the services leave them, and its timeline, action by action."""

    __slots__ = (
        "b", "ctx", "cal", "grid", "rnd", "limits", "main", "events", "notices", "f", "yellow_due"
    )  # fmt: skip

    def __init__(self, builder: _Builder, cls: Class, grid: Grid, urgency: str):
        self.b, self.ctx, self.cal = builder, builder.ctx, builder.cal
        self.grid, self.rnd = grid, builder.rnd
        self.limits, self.main = builder.limits(cls, urgency)
        self.events: list[list] = []
        self.notices: list[list] = []
        self.f: dict = {}
        # (start, deadline) of the running step whose yellow moment is still to be
        # worked out: only the last step's is kept, and a resumed one's is moved.
        self.yellow_due: tuple[int, int] | None = None

    # deadlines, as services._step_fields, _overall_deadline and sla.yellow_from set them
    def _deadline(self, step: str, start: int) -> int | None:
        limit = self.limits.get(step)
        if limit is None:
            return None
        if limit[0]:
            return self.cal.add_working_days_us(start, limit[1])
        return self.cal.add_working_hours_us(start, limit[1])

    def _yellow(self, start: int, deadline: int) -> int:
        cal = self.cal
        allowed = cal.working_seconds_between_us(start, deadline)
        if allowed <= 0:
            return start
        return min(
            deadline, cal.add_working_hours_us(start, self.ctx.yellow_ratio * allowed / 3600)
        )

    def _resumed(self, deadline: int | None, paused_at: int, now: int) -> int | None:
        # services._resumed
        if deadline is None:
            return None
        left = self.cal.working_seconds_between_us(paused_at, deadline)
        if left <= 0:
            return deadline
        return self.cal.add_working_hours_us(now, left / 3600)

    def settle_yellow(self) -> None:
        """The running step's yellow moment, as sla.yellow_from sets it."""
        if self.yellow_due is not None:
            self.f["step_yellow_at"] = self._yellow(*self.yellow_due)
            self.yellow_due = None

    def _step_fields(self, state: str, start: int) -> None:
        f = self.f
        step = STATE_STEP.get(state, "")
        deadline = self._deadline(step, start) if step else None
        f["step"] = step
        f["step_started_at"] = start if step else None
        f["step_deadline"] = deadline
        f["step_yellow_at"] = None
        self.yellow_due = (start, deadline) if deadline is not None else None
        f["step_overdue"] = False

    def _overall(self, start: int) -> int | None:
        if not self.main:
            return None
        cal, moment = self.cal, start
        for in_days, amount in self.main:
            if in_days:
                moment = cal.add_working_days_us(moment, amount)
            else:
                moment = cal.add_working_hours_us(moment, amount)
        return moment

    # the overdue sweep, between two moments
    def sweep_until(self, until: int, *, inclusive: bool) -> None:
        f = self.f
        while f["state"] in SWEPT:
            step_due = None if f["step_overdue"] else f["step_deadline"]
            all_due = None if f["overdue"] else f["deadline"]
            if step_due is None:
                if all_due is None:
                    return
                due = all_due
            elif all_due is None or step_due <= all_due:
                due = step_due
            else:
                due = all_due
            last = self.events[-1][0]
            at = (due if due > last else last) + int(self.rnd.uniform(1, 60) * US)
            if inclusive:
                if due > until:
                    return
                at = min(at, until)
            elif at >= until:
                return
            marked_step = step_due is not None and step_due <= at
            marked_all = all_due is not None and all_due <= at
            if not (marked_step or marked_all):
                return
            f["step_overdue"] = f["step_overdue"] or marked_step
            f["overdue"] = f["overdue"] or marked_all
            data = {"step": f["step"], "step_overdue": marked_step, "overall_overdue": marked_all}
            state = f["state"]
            self.events.append(
                [at, None, "", "", "overdue", state, state, "", f["step_deadline"], data]
            )

    def report(self, at: int, actor: tuple, source: str, suggested: int | None) -> None:
        f = self.f
        f.update(
            state=S.REPORTED,
            version=1,
            level=AreaLevel.GRID,
            department_id=None,
            deadline=self._overall(at),
            overdue=False,
            suspended_from="",
            suspended_at=None,
            assignee_id=None,
            handled_on_spot_by_id=None,
            postpone_until=None,
            postpone_count=0,
            supervise_count=0,
            supervised_at=None,
            rework_count=0,
            send_back_count=0,
            satisfaction="",
            unsatisfied_count=0,
            closed_at=None,
            created_at=at,
            updated_at=at,
        )
        self._step_fields(S.REPORTED, at)
        data = {"source": source, "grid": self.grid.code}
        if suggested is not None:
            data["suggested_department"] = self.ctx.departments[suggested][0]
        self.events.append(
            [
                at,
                actor[0],
                actor[1],
                actor[2],
                "report",
                "",
                S.REPORTED,
                "",
                f["step_deadline"],
                data,
            ]
        )

    def act(self, action: str, at: int, actor: tuple, note: str = "", given=None) -> None:
        """Take ``action``; ``given`` is its input: the department (dispatch), the time
        asked for (postpone_request)."""
        f, ctx = self.f, self.ctx
        self.sweep_until(at, inclusive=False)
        from_state = f["state"]
        transition = TRANSITIONS[(from_state, action)]
        to_state = f["suspended_from"] if transition.to == PREVIOUS else transition.to
        f["state"] = to_state
        f["updated_at"] = at
        data: dict = {}
        if action == A.RESUME:
            paused = f["suspended_at"]
            self.settle_yellow()
            for name in ("step_deadline", "step_yellow_at", "deadline"):
                f[name] = self._resumed(f[name], paused, at)
            f["suspended_from"], f["suspended_at"] = "", None
        elif action == A.SUSPEND:
            f["suspended_from"], f["suspended_at"] = from_state, at
        elif action not in KEEPS_CLOCK:
            self._step_fields(to_state, at)

        if action == A.DISPATCH:
            f["department_id"] = given
            data["department"] = ctx.departments[given][0]
        elif action == A.SEND_BACK:
            old = f["department_id"]
            f["department_id"] = None
            f["send_back_count"] += 1
            data["department"] = ctx.departments[old][0] if old else None
        elif action == A.CHECK_FAIL:
            f["rework_count"] += 1
        elif action == A.MERGE:
            data["merged_into"] = None  # the number, once the batch is numbered
        elif action == A.ESCALATE:
            f["level"] -= 1
            data["level"] = f["level"]
        elif action == A.CLOSE:
            f["closed_at"] = at
        elif action == A.REOPEN:
            f["closed_at"] = None
        elif action == A.POSTPONE_REQUEST:
            f["postpone_until"] = given
            data["until"] = _iso(given)
        elif action == A.POSTPONE_APPROVE:
            granted = f["postpone_until"]
            f["postpone_until"] = None
            f["postpone_count"] += 1
            f["step_deadline"] = granted
            f["step_yellow_at"] = None
            self.yellow_due = (f["step_started_at"] or at, granted)
            f["step_overdue"] = granted <= at
            if f["deadline"] is None or f["deadline"] < granted:
                f["deadline"] = granted
            data["until"] = _iso(granted)
        elif action == A.POSTPONE_REJECT:
            data["until"] = _iso(f["postpone_until"])
            f["postpone_until"] = None
        elif action == A.SUPERVISE:
            f["supervise_count"] += 1
            f["supervised_at"] = at
        elif action == A.HANDLE_ON_SPOT:
            f["handled_on_spot_by_id"] = actor[0]
        elif action == A.RATE_SATISFIED:
            f["satisfaction"] = "default" if actor[2] == "system" else "satisfied"
            f["closed_at"] = at
            data["satisfaction"] = f["satisfaction"]
            if actor[2] == "system":
                data["rating_days"] = ctx.rating_days
        elif action == A.RATE_UNSATISFIED:
            old = f["department_id"]
            f["satisfaction"] = "unsatisfied"
            f["unsatisfied_count"] += 1
            f["department_id"] = None
            data["department"] = ctx.departments[old][0] if old else None

        if to_state == S.VERIFYING:
            f["assignee_id"] = self.b.task_assignee(self.grid, None)
        elif to_state == S.HANDLED:
            on_spot = actor[0] if action == A.HANDLE_ON_SPOT else f["handled_on_spot_by_id"]
            f["assignee_id"] = self.b.task_assignee(self.grid, on_spot)
        elif to_state != from_state:
            f["assignee_id"] = None
        if to_state in (S.VERIFYING, S.HANDLED) and f["assignee_id"] is not None:
            data["assignee"] = ctx.usernames.get(f["assignee_id"], "")
        f["version"] += 1
        self.events.append(
            [at, actor[0], actor[1], actor[2], action, from_state, to_state, note,
             f["step_deadline"], data]
        )  # fmt: skip
        if ctx.notices and (action in NOTIFYING or to_state in TASK_STATES):
            self._notify(action, at, actor)

    def _notify(self, action: str, at: int, actor: tuple) -> None:
        f, b = self.f, self.b
        texts = b.texts
        if action == A.SUPERVISE:
            recipients = b.department_staff(f["department_id"]) or b.scope_staff(
                DISPATCHING, self.grid
            )
            text = texts["supervised"] % {"number": "{number}", "leader": actor[1]}
            self._send(recipients, CaseNotice.Kind.SUPERVISED, text, at)
        elif action == A.POSTPONE_REQUEST:
            self._send(
                b.scope_staff(APPROVING_STAFF, self.grid),
                CaseNotice.Kind.POSTPONE,
                texts["postpone_request"],
                at,
            )
        elif action in (A.POSTPONE_APPROVE, A.POSTPONE_REJECT):
            text = texts["granted" if action == A.POSTPONE_APPROVE else "refused"]
            self._send(b.department_staff(f["department_id"]), CaseNotice.Kind.POSTPONE, text, at)
        if f["assignee_id"] is not None and f["state"] in (S.VERIFYING, S.HANDLED):
            text = texts["verify" if f["state"] == S.VERIFYING else "check"]
            self._send([f["assignee_id"]], CaseNotice.Kind.TASK, text, at)

    def _send(self, recipients, kind: str, text: str, at: int) -> None:
        for user_id in recipients:
            # read_at is decided once the story ends
            self.notices.append([user_id, kind, text, at, None])


TRANSITIONS = workflow.TRANSITIONS
PREVIOUS = workflow.PREVIOUS
STATE_STEP = workflow.STATE_STEP
KEEPS_CLOCK = workflow.KEEPS_CLOCK_ACTIONS
DISPATCHING = frozenset(workflow.DISPATCHING)
APPROVING_STAFF = frozenset(workflow.APPROVING - {"leader"})
# Actions that tell someone, and states whose task is given to someone.
NOTIFYING = frozenset({A.SUPERVISE, A.POSTPONE_REQUEST, A.POSTPONE_APPROVE, A.POSTPONE_REJECT})
TASK_STATES = frozenset({S.VERIFYING, S.HANDLED})


def _notice_texts() -> dict[str, str]:
    """The notices' wording in the active language, "{number}" standing for the number."""
    number = {"number": "{number}"}
    return {
        # The leader's name is put in per notice.
        "supervised": _("Case %(number)s is supervised by %(leader)s."),
        "postpone_request": _("The department asks for more time on case %(number)s.") % number,
        "granted": _("More time on case %(number)s was granted.") % number,
        "refused": _("More time on case %(number)s was refused.") % number,
        "verify": _("Verify case %(number)s on site.") % number,
        "check": _("Check case %(number)s on site.") % number,
    }


def _token(secret: bytes, case_id: int) -> str:
    """A tracking link's secret, shaped as secrets.token_urlsafe(24) makes one: from bytes
    drawn from the seed and the case's id, so that another run with the same seed (and
    other ids) gives other secrets."""
    digest = hashlib.blake2b(secret + case_id.to_bytes(8, "big"), digest_size=24).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- building a batch ----------------------------------------------------------------


def _lognormal(rnd: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rnd.gauss(0.0, sigma))


# Most steps end well before their limit; a few run late (and a few stall).
STEP_MEDIAN, STEP_SIGMA = 0.28, 0.7


def _limit_seconds(ctx: Context, cls: Class, step: str, urgency: str) -> float:
    """The working seconds a step of the class may take (two hours without a limit)."""
    key = ("limit", cls.id, step, urgency)
    found = ctx._reach.get(key)
    if found is None:
        found = ctx._reach[key] = _step_seconds(ctx, cls, step, urgency)
    return found


def _step_seconds(ctx: Context, cls: Class, step: str, urgency: str) -> float:
    limit = cls.limits.get((step, urgency)) if step else None
    if limit is None:
        return 2 * 3600.0
    if limit.unit == TimeLimit.Unit.WORKING_DAYS:
        return float(limit.amount) * ctx.calendar.day_seconds + ctx.calendar.day_seconds / 2
    return float(limit.amount) * 3600.0


def _delay(ctx: Context, rnd: random.Random, action: str, cls: Class, state: str, urgency: str):
    """Working seconds before ``action`` is taken, from the step running in ``state``."""
    if action == A.RESUME:
        return rnd.uniform(2, 25) * ctx.calendar.day_seconds
    if action == A.REOPEN:
        return rnd.uniform(0.1, 1.5) * ctx.calendar.day_seconds
    limit = _limit_seconds(ctx, cls, STATE_STEP.get(state, ""), urgency)
    if action == A.ACCEPT:
        return limit * min(_lognormal(rnd, 0.06, 0.8), 2.0)
    if action in (A.POSTPONE_REQUEST, A.POSTPONE_APPROVE, A.POSTPONE_REJECT, A.SUPERVISE):
        return limit * min(_lognormal(rnd, 0.15, 0.7), 1.5)
    if action in (A.VOID, A.MERGE) and state in (S.REPORTED, S.VERIFYING):
        return limit * min(_lognormal(rnd, 0.3, 0.8), 4.0)
    stall = 8.0 if rnd.random() < 0.02 else 1.0
    return limit * min(_lognormal(rnd, STEP_MEDIAN, STEP_SIGMA) * stall, 40.0)


LIGHT_WEIGHTS_YOUNG = (("green", 0.55), ("yellow", 0.2), ("red", 0.25))
LIGHT_WEIGHTS_OLD = (("green", 0.12), ("yellow", 0.05), ("red", 0.83))


def _times(
    b: _Builder,
    created: int,
    actions: list[str],
    states: list[str],
    cls: Class,
    urgency: str,
) -> list[int]:
    """When each action is taken: in working time, all before now.

    An open case's current step is placed so that its light is green, yellow
    or red as drawn; everything before it fits between the report and that.
    """
    ctx, cal, now, rnd = b.ctx, b.cal, b.now, b.rnd
    n = len(actions)
    if n == 0:
        return []
    delays = [_delay(ctx, rnd, a, cls, states[i], urgency) for i, a in enumerate(actions)]
    final = states[-1]
    end = now - int(rnd.uniform(60, 1800) * US)
    if end <= created:
        end = created + int((now - created) * 0.9)
    # The index of the action that started the current step's clock.
    k = None
    if final in LIT:
        for i in range(n - 1, -1, -1):
            if _restarts_clock(actions[i]):
                k = i
                break
            if actions[i] in (A.SUSPEND, A.RESUME):
                break
    if k is not None:
        age_days = (now - created) / DAY_US
        weights = LIGHT_WEIGHTS_YOUNG if age_days < 3 else LIGHT_WEIGHTS_OLD
        light = rnd.choices([w[0] for w in weights], [w[1] for w in weights])[0]
        span = _limit_seconds(ctx, cls, STATE_STEP.get(states[k + 1], ""), urgency)
        if light == "green":
            elapsed = span * rnd.uniform(0.03, ctx.yellow_ratio * 0.95)
        elif light == "yellow":
            elapsed = span * rnd.uniform(ctx.yellow_ratio + 0.02, 0.97)
        else:
            elapsed = span * (1.05 + _lognormal(rnd, 0.6, 1.2))
        available = cal.working_seconds_between_us(created, end)
        if elapsed < available * 0.97:
            start = cal.working_before_us(end, elapsed)
            head = _fit(cal, rnd, created, start, delays[: k + 1], exact_end=True)
            if head is not None:
                tail = _spread(cal, rnd, start, end, delays[k + 1 :])
                if tail is not None:
                    return head + tail
    times = _fit(cal, rnd, created, end, delays, exact_end=False)
    if times is None:
        # Too little time (a report minutes ago): spread over the wall clock.
        gaps = sorted(rnd.uniform(0.05, 0.95) for _i in range(n))
        times = [created + int((end - created) * g) for g in gaps]
    return times


def _fit(cal, rnd, start: int, end: int, delays: list[float], *, exact_end: bool):
    """Times after ``start`` separated by ``delays`` in working time, all before ``end``
    (the last exactly at ``end`` with ``exact_end``); scaled down to fit; None if they cannot."""
    total = sum(delays)
    available = cal.working_seconds_between_us(start, end)
    if available < 60 * len(delays):
        return None
    if exact_end or total > available * 0.98:
        scale = available * (1.0 if exact_end else rnd.uniform(0.5, 0.95)) / total
        delays = [d * scale for d in delays]
    add = cal.add_working_hours_us
    times, t = [], start
    for d in delays:
        t = add(t, d / 3600)
        times.append(t)
    if exact_end:
        times[-1] = end
    floor = start
    for i, t in enumerate(times):
        floor += US
        if t < floor:
            times[i] = floor
        else:
            floor = t
    if times[-1] > end:
        return None
    return times


def _spread(cal, rnd, start: int, end: int, delays: list[float]):
    """Times of the actions that keep the clock, between the step's start and ``end``."""
    if not delays:
        return []
    available = cal.working_seconds_between_us(start, end)
    total = sum(delays)
    if total > available * 0.95:
        if available < 60 * len(delays):
            return None
        delays = [d * available * rnd.uniform(0.5, 0.95) / total for d in delays]
    add = cal.add_working_hours_us
    times, t = [], start
    for d in delays:
        t = max(add(t, d / 3600), t + US)
        times.append(t)
    return times if times[-1] < end else None


# Model columns that hold an instant (written from microseconds).
def _datetime_columns(model) -> frozenset[str]:
    return frozenset(
        f.attname for f in model._meta.concrete_fields if f.get_internal_type() == "DateTimeField"
    )


class _Builder:
    """Builds the cases of one batch from the plan (no query: everything is in ``ctx``)."""

    def __init__(self, ctx: Context, plan: Plan, lo: int, hi: int):
        self.ctx, self.plan, self.lo, self.hi = ctx, plan, lo, hi
        self.rnd = random.Random(plan.seed * 1_000_003 + lo)
        self.np = np.random.default_rng([plan.seed, lo])
        self.built = Built(first=lo)
        self.cal = ctx.compiled or _compile_calendar(ctx, plan)
        self.now = to_us(ctx.now)
        self.texts = _notice_texts()
        self.dt = _datetime_adapter(connection.vendor)
        names = CASE_COLUMNS[3:]
        self.case_values = itemgetter(*names)
        instants = _datetime_columns(Case)
        self.case_instants = [i for i, name in enumerate(names) if name in instants]
        # Per grid, the batch's earlier cases: (index in batch, class id, created, final time, lat, lng).
        self.recent: dict[int, list] = defaultdict(list)
        self._limits: dict = {}
        # Who may act and who is told, per grid: kept in the context from batch to batch.
        self._actors: dict = ctx._reach.setdefault("builder_actors", {})
        self._staff: dict = ctx._reach.setdefault("builder_staff", {})

    def limits(self, cls: Class, urgency: str) -> tuple[dict, list]:
        """The class's limits for ``urgency``: step → (in working days?, amount), and those
        of the main path's steps in order (the overall deadline)."""
        key = (cls.id, urgency)
        found = self._limits.get(key)
        if found is None:
            own = {}
            for step in Step.values:
                limit = cls.limits.get((step, urgency))
                if limit is not None:
                    days = limit.unit == TimeLimit.Unit.WORKING_DAYS
                    own[step] = (days, int(limit.amount) if days else float(limit.amount))
            main = [own[step] for step in workflow.MAIN_PATH_STEPS if step in own]
            found = self._limits[key] = (own, main)
        return found

    # actors
    def actor(self, action, state, grid, department, level, *, prefer=None, exclude=None) -> tuple:
        escalated = level if state == S.ESCALATED else None
        key = (action, state, grid.id, department, escalated)
        tiers = self._actors.get(key)
        if tiers is None:
            allowed = (
                workflow.REPORT_ROLES
                if action.startswith("report")
                else TRANSITIONS[(state, action)].roles
            )
            tiers = self._actors[key] = self.ctx.actors(
                roles=_role_tiers(action, allowed),
                grid=grid,
                department_id=department,
                escalated_level=escalated,
            )
        for people in tiers:
            choices = people if exclude is None else [p for p in people if p[0] != exclude]
            if prefer is not None:
                for p in choices:
                    if p[0] == prefer:
                        return p
            if choices:
                return choices[self.rnd.randrange(len(choices))]
        superuser = self.ctx.superuser
        if superuser is not None and superuser[0] != exclude:
            return (superuser[0], superuser[1], "superuser")
        return (None, "", "")

    def task_assignee(self, grid: Grid, exclude_id: int | None) -> int | None:
        """Who gets the verify or check task, as services do: the grid's worker."""
        key = ("task", grid.id, exclude_id)
        if key in self._staff:
            return self._staff[key]
        workers = [w for w in grid.workers if w != exclude_id]
        if not workers and not grid.workers:
            workers = self._holders("grid_worker", grid, exclude_id)
        if not workers and exclude_id is not None:
            workers = [w for w in grid.leaders if w != exclude_id] or self._holders(
                "grid_leader", grid, exclude_id
            )
        found = self._staff[key] = workers[0] if workers else None
        return found

    def _holders(self, role: str, grid: Grid, exclude_id: int | None) -> list[int]:
        return sorted(
            {
                h.user_id
                for h in self.ctx.holds
                if h.role == role and grid.code.startswith(h.prefix) and h.user_id != exclude_id
            }
        )

    def department_staff(self, department: int | None) -> list[int]:
        if department is None:
            return []
        key = ("department", department)
        found = self._staff.get(key)
        if found is None:
            found = self._staff[key] = sorted(
                {
                    h.user_id
                    for h in self.ctx.holds
                    if h.department_id == department and h.role in workflow.DEPARTMENT
                }
            )
        return found

    def scope_staff(self, roles: frozenset[str], grid: Grid) -> list[int]:
        key = ("scope", roles, grid.id)
        found = self._staff.get(key)
        if found is None:
            found = self._staff[key] = sorted(
                {h.user_id for h in self.ctx.holds_over(grid.code) if h.role in roles}
            )
        return found

    def points(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """A point inside its grid for every case of the batch (near a building when one is)."""
        plan, lo, hi = self.plan, self.lo, self.hi
        n = hi - lo
        lat = np.empty(n)
        lng = np.empty(n)
        place = [""] * n
        rng = self.np
        by_grid: dict[int, list[int]] = defaultdict(list)
        for i, g in enumerate(plan.grid[lo:hi].tolist()):
            by_grid[g].append(i)
        for g, idx in by_grid.items():
            grid = self.ctx.grids[g]
            m = len(idx)
            xs = np.full(m, np.nan)
            ys = np.full(m, np.nan)
            names = [""] * m
            if grid.buildings:
                near = rng.uniform(size=m) < 0.65
                pick = rng.integers(len(grid.buildings), size=m)
                d_lng, d_lat = degrees_per_metre(grid.bounds[1])
                bx = np.array([grid.buildings[p][1] for p in pick]) + rng.normal(0, 12, m) * d_lng
                by = np.array([grid.buildings[p][2] for p in pick]) + rng.normal(0, 12, m) * d_lat
                inside = near & shapely.contains_xy(grid.shape, bx, by)
                xs[inside], ys[inside] = bx[inside], by[inside]
                for j in np.flatnonzero(inside).tolist():
                    names[j] = grid.buildings[pick[j]][0]
            missing = np.flatnonzero(np.isnan(xs))
            x0, y0, x1, y1 = grid.bounds
            tries = 0
            while len(missing) and tries < 200:
                tries += 1
                k = len(missing) * 3 + 8
                cx = rng.uniform(x0, x1, k)
                cy = rng.uniform(y0, y1, k)
                ok = np.flatnonzero(shapely.contains_xy(grid.shape, cx, cy))[: len(missing)]
                xs[missing[: len(ok)]] = cx[ok]
                ys[missing[: len(ok)]] = cy[ok]
                missing = missing[len(ok) :]
            if len(missing):
                centre = shapely.point_on_surface(grid.shape)
                xs[missing], ys[missing] = centre.x, centre.y
            for j, i in enumerate(idx):
                lng[i], lat[i], place[i] = xs[j], ys[j], names[j]
        return lat, lng, place

    def build(self) -> Built:
        plan, lo, hi = self.plan, self.lo, self.hi
        lat, lng, place = self.points()
        created = np.round(plan.created[lo:hi] * 1e6).astype(np.int64).tolist()
        grids = plan.grid[lo:hi].tolist()
        classes = plan.cls[lo:hi].tolist()
        urgencies = plan.urgency[lo:hi].tolist()
        sources = plan.source[lo:hi].tolist()
        targets = plan.target[lo:hi].tolist()
        lats, lngs = lat.tolist(), lng.tolist()
        for i in range(hi - lo):
            self.one(
                i,
                created=created[i],
                grid_index=grids[i],
                class_index=classes[i],
                urgency=URGENCIES[urgencies[i]],
                source=SOURCES[sources[i]],
                target=STATES[targets[i]],
                lat=lats[i],
                lng=lngs[i],
                place=place[i],
            )
        return self.built

    def _rating_window(self, actions, times, states):
        """Nobody rates after the rating period: the sweep closes the case as satisfied
        by default once it ran out; a resident's rating comes within it."""
        days = self.ctx.rating_days * DAY_US
        for k, action in enumerate(actions):
            if action != A.RETURN_VISIT:
                continue
            asked = times[k]
            due = asked + days + int(self.rnd.uniform(1, 60) * US)
            if k + 1 < len(actions):
                if times[k + 1] - asked >= days:
                    # Rated by the system at the end of the period, and nothing after it.
                    return (
                        [*actions[: k + 1], A.RATE_SATISFIED],
                        [*times[: k + 1], due],
                        [*states[: k + 2], S.CLOSED],
                    )
            elif due < self.now:
                return [*actions, A.RATE_SATISFIED], [*times, due], [*states, S.CLOSED]
        return actions, times, states

    def _merge_target(self, grid: Grid, class_id, at: int, created: int):
        """An earlier case still open at ``at``: in the same grid (the same class first),
        else in the same community, else (a sparse batch) in the same district."""
        best = None
        for key in (grid.code, grid.code[:12], grid.code[:6]):
            for item in reversed(self.recent[key]):
                index, cid, t0, final_at, *_ = item
                if t0 >= created or (final_at is not None and final_at <= at):
                    continue
                if cid == class_id and key == grid.code:
                    return item
                best = best or item
            if best is not None:
                return best
        return None

    def one(self, i, *, created, grid_index, class_index, urgency, source, target, lat, lng, place):
        ctx, rnd = self.ctx, self.rnd
        grid, cls = ctx.grids[grid_index], ctx.classes[class_index]
        public = source in (Source.PORTAL, Source.OPEN311)
        if public and not cls.is_public:
            # Residents cannot report this class: it came in by phone.
            source, public = Source.HOTLINE, False
        actions = _path(
            target, rnd, has_worker=grid.has_worker, public=public, on_spot=grid.checkers >= 2
        )
        department = ctx.department_for(class_index, grid_index)
        if department is None:
            # Nobody to send it to: it stops where a dispatcher would have to choose.
            while actions and A.DISPATCH in actions:
                actions = actions[: actions.index(A.DISPATCH)]
        states = _states_along(actions)
        times = _times(self, created, actions, states, cls, urgency)
        if public:
            actions, times, states = self._rating_window(actions, times, states)
        if A.REOPEN in actions:
            k = actions.index(A.REOPEN)
            if times[k] - times[k - 1] > ctx.reopen_days * DAY_US:
                # Too late to reopen (a long holiday in between): it stays closed.
                actions, times, states = actions[:k], times[:k], states[: k + 1]

        merge_into = None
        nearby = False
        if actions and actions[-1] == A.MERGE:
            merge_into = self._merge_target(grid, cls.id, times[-1], created)
            if merge_into is None:
                actions[-1] = A.VOID
                states = _states_along(actions)
            else:
                # A duplicate is reported near what it duplicates.
                d_lng, d_lat = degrees_per_metre(merge_into[4])
                r = min(cls.radius_m, 60) * 0.6
                x = merge_into[5] + rnd.uniform(-r, r) * d_lng
                y = merge_into[4] + rnd.uniform(-r, r) * d_lat
                if shapely.contains_xy(grid.shape, x, y):
                    lat, lng, nearby = y, x, True

        story = _Story(self, cls, grid, urgency)
        reporter_role_prefer = None
        if source == Source.GRID_WORKER and grid.workers:
            reporter_role_prefer = grid.workers[rnd.randrange(len(grid.workers))]
        if public:
            # A resident signed in, or someone who only keeps the tracking link.
            residents = ctx.residents_over(grid.code)
            actor = (None, "", "resident")
            if residents and rnd.random() < 0.5:
                actor = (*residents[rnd.randrange(len(residents))], "resident")
        else:
            actor = self.actor(
                "report" if source == Source.GRID_WORKER else "report_desk",
                S.REPORTED,
                grid,
                None,
                AreaLevel.GRID,
                prefer=reporter_role_prefer,
            )
        if source == Source.GRID_WORKER and actor[2] != "grid_worker":
            source = Source.HOTLINE
        story.report(created, actor, source, ctx.routed.get((cls.id, grid.id)))
        reporter_id = actor[0] if source == Source.GRID_WORKER or public else None
        chosen_department = department
        merge_data_event = None
        f = story.f
        rating_us = ctx.rating_days * DAY_US
        for action, at, state in zip(actions, times, states, strict=False):
            given = None
            prefer = exclude = None
            if action == A.DISPATCH:
                if f["send_back_count"] and rnd.random() < 0.6:
                    others = [d for d in ctx.serving(grid.code) if d != chosen_department]
                    staffed = [d for d in others if d in ctx.dept_staffed] or others
                    if staffed:
                        chosen_department = staffed[rnd.randrange(len(staffed))]
                given = chosen_department
            elif action == A.POSTPONE_REQUEST:
                base = f["step_deadline"] or at
                given = self.cal.add_working_days_us(max(base, at), rnd.randint(1, 5))
            elif action in (A.VERIFY_CONFIRM, A.CHECK_PASS, A.CHECK_FAIL):
                prefer = f["assignee_id"]
                exclude = f["handled_on_spot_by_id"]
            if action in (A.RATE_SATISFIED, A.RATE_UNSATISFIED):
                system = action == A.RATE_SATISFIED and at - story.events[-1][0] >= rating_us
                who = (None, "", "system") if system else (actor[0], actor[1], "resident")
            else:
                who = self.actor(
                    action, state, grid, f["department_id"], f["level"], prefer=prefer,
                    exclude=exclude,
                )  # fmt: skip
                if who[0] is None:
                    # Nobody may take the next step here: the case waits where it is.
                    break
            note = ""
            if action in NOTES:
                note = rnd.choice(NOTES[action])
            elif action in OPTIONAL_NOTES and rnd.random() < 0.35:
                note = rnd.choice(OPTIONAL_NOTES[action])
            story.act(action, at, who, note, given)
            if action == A.MERGE:
                merge_data_event = len(story.events) - 1
        final_state = f["state"]
        story.sweep_until(self.now, inclusive=True)
        story.settle_yellow()

        events = story.events
        final_at = None
        if final_state in workflow.FINAL_STATES:
            final_at = next(e[0] for e in reversed(events) if e[6] == final_state)
        # Reporter's contact: asked for on the hotline and the portal; erased after retention.
        name = phone = email = ""
        if source in (Source.HOTLINE, Source.PORTAL, Source.OPEN311, Source.API):
            surname = SURNAMES[rnd.randrange(len(SURNAMES))]
            given = GIVEN_NAMES[rnd.randrange(len(GIVEN_NAMES))]
            name = surname[0] + given[0]
            phone = f"1{rnd.choice('3589')}{rnd.randrange(10**9):09d}"
            if source != Source.HOTLINE and rnd.random() < 0.5:
                email = f"{surname[1]}.{given[1]}{rnd.randrange(100)}@example.com"
        purged_at = None
        if final_at is not None:
            purge = final_at + ctx.retention_days * DAY_US + int(rnd.uniform(60, 5400) * US)
            if purge <= self.now:
                name = phone = email = ""
                purged_at = purge
        address = (
            f"{grid.community}{place}附近"
            if place
            else f"{grid.community}{grid.name}{rnd.randint(1, 199)}号"
        )
        description = f"{place or grid.name}发现{cls.name}，{rnd.choice(DETAILS)}。"
        f.update(
            kind=cls.kind,
            category_id=cls.id,
            urgency=urgency,
            area_id=grid.id,
            area_code=grid.code,
            description=description,
            lat=lat,
            lng=lng,
            address=address,
            source=source,
            reporter_id=reporter_id,
            reporter_name=name,
            reporter_phone=phone,
            reporter_email=email,
            created_by_id=actor[0],
            idempotency_key="",
            public_token="",  # made once the case has its id (write_batch)
            reporter_purged_at=purged_at,
        )
        # The rows as written: instants as the database takes them, data as JSON.
        dt = self.dt
        row = list(self.case_values(f))
        for k in self.case_instants:
            row[k] = dt(row[k])
        b = self.built
        if public:
            b.tokens.append((i, rnd.randbytes(24)))
        b.cases.append(tuple(row))
        b.numbering.append((self.cal.local_date_us(created), cls.kind, cls.code))
        dumps = json.dumps
        b.events.append(
            [(dt(e[0]), *e[1:8], dt(e[8]), dumps(e[9]) if e[9] else "{}") for e in events]
        )  # fmt: skip
        # Notices: read before the next step for a done task, some still unread.
        notices = []
        for user_id, kind, text, sent, _read in story.notices:
            read_at = None
            later = [e[0] for e in events if e[0] > sent and e[1] is not None]
            if later:
                read_at = sent + int((min(later) - sent) * rnd.uniform(0.05, 0.9))
            elif rnd.random() < 0.35:
                read_at = sent + int((self.now - sent) * rnd.uniform(0.05, 0.9))
            notices.append((user_id, kind, text, dt(sent), dt(read_at)))
        b.notices.append(notices)
        b.states[str(final_state)] += 1
        if merge_into is not None and merge_data_event is not None:
            within = created - merge_into[2] <= cls.window_hours * 3600 * US
            duplicates = events[0][9] if nearby and within and merge_into[1] == cls.id else None
            b.merges.append(
                (i, merge_into[0], merge_data_event, events[merge_data_event][9], duplicates)
            )
        for key in (grid.code, grid.code[:12], grid.code[:6]):
            self.recent[key].append((i, cls.id, created, final_at, lat, lng))
            if len(self.recent[key]) > 40:
                del self.recent[key][:10]


def _compile_calendar(ctx: Context, plan: Plan):
    """The work calendar compiled for the plan's reports up to a year after now."""
    first = float(plan.created[0]) if len(plan) else ctx.now.timestamp()
    start = datetime.fromtimestamp(first, tz=UTC) - timedelta(days=2)
    return ctx.calendar.compiled(start, ctx.now + timedelta(days=400))


# --- writing -------------------------------------------------------------------------


# SQLite's page cache while writing, in KiB: the hot pages of two dozen indexes of a
# million cases (the default two megabytes would read them back again and again).
SQLITE_CACHE_KIB = 262_144


def write_batch(built: Built, ctx: Context) -> tuple[int, int, int]:
    """Write one batch in one transaction; (cases, events, notices) written."""
    from .services import case_number

    outermost = not connection.in_atomic_block
    with transaction.atomic():
        unchecked = _begin_batch(outermost=outermost)
        wanted: dict[tuple[date, str], list[int]] = defaultdict(list)
        for i, (day, kind, _code) in enumerate(built.numbering):
            wanted[(day, kind)].append(i)
        numbers = [""] * len(built.cases)
        for (day, kind), indexes in sorted(wanted.items()):
            first = next_daily_serial(day=day, kind=kind, count=len(indexes)) - len(indexes) + 1
            for serial, i in enumerate(indexes, start=first):
                code = built.numbering[i][2]
                numbers[i] = case_number(kind=kind, category_code=code, day=day, serial=serial)
        ids = _reserve_ids(Case, len(built.cases))
        merged_into = {}
        events = built.events
        for i, target, event_index, data, duplicates in built.merges:
            merged_into[i] = ids[target]
            data["merged_into"] = numbers[target]
            story = events[i]
            story[event_index] = (*story[event_index][:9], json.dumps(data))
            if duplicates is not None:
                duplicates["duplicates"] = [numbers[target]]
                story[0] = (*story[0][:9], json.dumps(duplicates))
        case_rows = [
            (ids[i], numbers[i], merged_into.get(i), *row) for i, row in enumerate(built.cases)
        ]
        for i, secret in built.tokens:
            row = list(case_rows[i])
            row[TOKEN_COLUMN] = _token(secret, ids[i])
            case_rows[i] = tuple(row)
        event_rows = [(ids[i], *entry) for i, story in enumerate(events) for entry in story]
        notice_rows = [
            (user_id, ids[i], kind, text.replace("{number}", numbers[i]), at, read_at)
            for i, rows in enumerate(built.notices)
            for user_id, kind, text, at, read_at in rows
        ]
        tables = [
            (_writer(Case, CASE_COLUMNS), case_rows),
            (_writer(CaseEvent, EVENT_COLUMNS), event_rows),
            (_writer(CaseNotice, NOTICE_COLUMNS), notice_rows),
        ]
        if unchecked:
            _hold_references(tables)
        for writer, rows in tables:
            writer.write(rows)
    return len(case_rows), len(event_rows), len(notice_rows)


def _begin_batch(*, outermost: bool) -> bool:
    """Settings for the batch's transaction; True when the foreign keys are left unchecked.

    SQLite gets a larger page cache. On PostgreSQL every row written would queue
    one check per foreign key for the commit (a third of the write); when the
    batch is a transaction of its own (the setting lasts until the outermost
    transaction ends, so never inside a caller's), the role may do so and no
    trigger of CivicGrid's own fires on insert into these tables, the
    transaction turns them off (``session_replication_role`` replica, for this
    transaction only) and :func:`_hold_references` does their work once for the
    whole batch instead.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        elif connection.vendor == "postgresql" and outermost and _may_skip_checks(cursor):
            cursor.execute("SET LOCAL session_replication_role = replica")
            return True
    return False


def _may_skip_checks(cursor) -> bool:
    key = (connection.alias, connection.settings_dict.get("NAME"))
    found = _SKIP_CHECKS.get(key)
    if found is None:
        tables = [m._meta.db_table for m in (Case, CaseEvent, CaseNotice)]
        # tgtype & 4: fires on INSERT; the foreign keys' own triggers are internal.
        cursor.execute(
            "SELECT current_setting('is_superuser') = 'on' AND NOT EXISTS ("
            " SELECT 1 FROM pg_trigger WHERE tgrelid = ANY(%s::regclass[])"
            " AND NOT tgisinternal AND tgtype & 4 <> 0)",
            [tables],
        )
        found = _SKIP_CHECKS[key] = bool(cursor.fetchone()[0])
    return found


_SKIP_CHECKS: dict = {}


def _hold_references(tables: list[tuple[_Writer, list[tuple]]]) -> None:
    """What the foreign key checks would do, once per batch: lock each grid, class,
    department and person the rows refer to as a check locks it (FOR KEY SHARE, so
    that nobody removes it before the commit), and refuse if one is gone. The cases
    the timelines, notices and duplicates refer to are the batch's own."""
    wanted: dict[tuple[str, str], set] = defaultdict(set)
    for writer, rows in tables:
        for position, table, column in writer.references:
            wanted[(table, column)].update(row[position] for row in rows)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for (table, column), ids in sorted(wanted.items()):
            ids.discard(None)
            if not ids:
                continue
            cursor.execute(
                f"SELECT {quote(column)} FROM {quote(table)} WHERE {quote(column)} = ANY(%s) "
                "FOR KEY SHARE",
                [sorted(ids)],
            )
            if len(cursor.fetchall()) != len(ids):
                raise GenerationError(
                    _(
                        "A grid, class, department or person the cases refer to was removed "
                        "while they were being generated: generate them again."
                    )
                )


def _reserve_ids(model, n: int) -> list[int]:
    """``n`` new primary keys of ``model``, taken inside the writing transaction.

    PostgreSQL hands them out from the table's sequence, so a report written
    meanwhile takes another; SQLite's transaction holds the database's write
    lock (BEGIN IMMEDIATE), so the next ones after the highest ever used are free.
    """
    if n == 0:
        return []
    table = model._meta.db_table
    column = model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, column, n],
            )
            return sorted(row[0] for row in cursor.fetchall())
        quote = connection.ops.quote_name
        cursor.execute(f"SELECT COALESCE(MAX({quote(column)}), 0) FROM {quote(table)}")
        top = cursor.fetchone()[0]
        if connection.vendor == "sqlite":
            # AUTOINCREMENT never gives out an id again, even one whose row is gone.
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            top = max(top, row[0] if row else 0)
    return list(range(top + 1, top + n + 1))


# The columns of a case as the stories hold them (after id, number and merged_into).
CASE_COLUMNS = (
    "id", "number", "merged_into_id", "kind", "category_id", "urgency", "area_id", "area_code", "level",
    "state", "version", "description", "lat", "lng", "address", "source", "reporter_id",
    "reporter_name", "reporter_phone", "reporter_email", "created_by_id", "idempotency_key",
    "department_id", "step", "step_started_at", "step_deadline", "step_yellow_at", "deadline",
    "step_overdue", "overdue", "suspended_from", "suspended_at", "assignee_id",
    "handled_on_spot_by_id", "postpone_until", "postpone_count", "supervise_count",
    "supervised_at", "public_token", "satisfaction", "unsatisfied_count", "reporter_purged_at", "rework_count", "send_back_count", "closed_at",
    "created_at", "updated_at",
)  # fmt: skip


# The columns of a timeline entry and of a notice, in the order the stories hold them.
EVENT_COLUMNS = (
    "case_id",
    "at",
    "actor_id",
    "actor_username",
    "role",
    "action",
    "from_state",
    "to_state",
    "note",
    "deadline",
    "data",
)
NOTICE_COLUMNS = ("recipient_id", "case_id", "kind", "text", "created_at", "read_at")
TOKEN_COLUMN = CASE_COLUMNS.index("public_token")


class _Writer:
    """Appends rows of one model: COPY on PostgreSQL, one multi-row ``executemany``
    INSERT elsewhere.

    The timeline entries and notices are nine rows in ten of a generation;
    ``bulk_create`` spends most of its time compiling every value of every
    row through the fields, so the builder makes the rows the way the fields
    would adapt them (instants as the backend stores them, JSON as text) and
    they are sent as they are. Columns not given take the field's default, so
    a field added to the model later is filled as bulk_create would fill it.
    The cases themselves go the same way, with their ids reserved first
    (:func:`_reserve_ids`) so that their timelines can name them.
    """

    def __init__(self, model, given: tuple[str, ...]):
        fields = [f for f in model._meta.concrete_fields if f.attname in given or not f.primary_key]
        by_name = {f.attname: f for f in fields}
        missing = [f for f in fields if f.attname not in given]
        self.defaults = tuple(f.get_db_prep_save(f.get_default(), connection) for f in missing)
        columns = [by_name[name].column for name in given] + [f.column for f in missing]
        # (position, table, column) of each foreign key given, but those to cases.
        self.references = [
            (i, f.related_model._meta.db_table, f.target_field.column)
            for i, f in enumerate(by_name[name] for name in given)
            if f.is_relation and f.related_model is not Case
        ]
        quote = connection.ops.quote_name
        table, names = quote(model._meta.db_table), ", ".join(quote(c) for c in columns)
        self.copy = connection.vendor == "postgresql"
        if self.copy:
            self.sql = f"COPY {table} ({names}) FROM STDIN"
        else:
            self.sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"

    def write(self, rows: list[tuple], chunk: int = 10_000) -> None:
        defaults = self.defaults
        with connection.cursor() as cursor:
            if self.copy:
                # psycopg's COPY, on the connection's cursor (inside its transaction).
                with cursor.cursor.copy(self.sql) as copy:
                    write_row = copy.write_row
                    for row in rows:
                        write_row((*row, *defaults) if defaults else row)
                return
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                if defaults:
                    part = [(*row, *defaults) for row in part]
                cursor.executemany(self.sql, part)


def _writer(model, given: tuple[str, ...]) -> _Writer:
    key = (connection.alias, connection.vendor, model, given)
    found = _WRITERS.get(key)
    if found is None:
        found = _WRITERS[key] = _Writer(model, given)
    return found


_WRITERS: dict = {}


# --- the whole run -------------------------------------------------------------------


@dataclass
class Result:
    cases: int = 0
    events: int = 0
    notices: int = 0
    seconds: float = 0.0
    states: Counter = field(default_factory=Counter)
    first_id: int | None = None

    @property
    def cases_per_second(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0

    @property
    def rows_per_second(self) -> float:
        rows = self.cases + self.events + self.notices
        return rows / self.seconds if self.seconds else 0.0


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a batch is built and written: a batch is a
    few hundred thousand young objects without a cycle among them, and walking them over
    and over costs a tenth of the time. Switched back on (if it was) after the batch."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _batch(ctx: Context, plan: Plan, lo: int, hi: int, turn=None) -> tuple:
    """Build cases ``lo:hi`` of the plan and write them (after ``turn``, a context
    manager that waits for this batch's turn, if given); (cases, events, notices, states)."""
    with _collector_paused():
        built = _Builder(ctx, plan, lo, hi).build()
        if turn is None:
            return (*write_batch(built, ctx), dict(built.states))
        with turn:
            return (*write_batch(built, ctx), dict(built.states))


_WORKER: dict = {}


def _worker_init(ctx, plan, turn, cond):
    _WORKER.update(ctx=ctx, plan=plan, turn=turn, cond=cond)


@contextmanager
def _turn(number: int) -> Iterator[None]:
    """Wait until batch ``number`` may write (the batches before it are written), and
    hand the turn on to the next one after it."""
    turn, cond = _WORKER["turn"], _WORKER["cond"]
    with cond:
        while turn.value != number:
            cond.wait()
    try:
        yield
    finally:
        with cond:
            turn.value = number + 1
            cond.notify_all()


def _worker_batch(job: tuple[int, int, int]):
    """In a forked process: build batch ``number``, then write it when its turn comes."""
    number, lo, hi = job
    return _batch(_WORKER["ctx"], _WORKER["plan"], lo, hi, turn=_turn(number))


def generate_cases(
    *,
    count: int,
    days: float = 365,
    seed: int = 1,
    batch: int = DEFAULT_BATCH,
    workers: int = 1,
    now: datetime | None = None,
    mix: Mix = REALISTIC,
    area_prefix: str = "",
    grid_boost: dict[str, float] | None = None,
    ensure: list[tuple[set[str] | None, str, int]] | None = None,
    notices: bool = True,
    progress: Callable[[int, int, int], None] | None = None,
    ctx: Context | None = None,
) -> Result:
    """Generate ``count`` cases reported over the last ``days`` days; see the module doc.

    ``workers`` > 1 builds and writes batches in that many forked processes
    (each batch is still one transaction, written in order); it needs to run
    outside any transaction. ``progress(cases, events, notices)`` is called
    after each batch with that batch's counts.
    """
    if count < 0:
        raise GenerationError(_("The number of cases cannot be negative."))
    if batch < 1:
        raise GenerationError(_("A batch holds at least one case."))
    if days <= 0:
        raise GenerationError(_("Cases are spread over at least part of a day."))
    started = time.perf_counter()
    ctx = ctx or load_context(now=now, area_prefix=area_prefix, notices=notices)
    plan = make_plan(
        ctx, count=count, days=days, seed=seed, mix=mix, grid_boost=grid_boost, ensure=ensure
    )
    _route(ctx, set(zip(plan.cls.tolist(), plan.grid.tolist(), strict=True)))
    ctx.compiled = _compile_calendar(ctx, plan)
    result = Result()
    jobs = [(n, lo, min(lo + batch, count)) for n, lo in enumerate(range(0, count, batch))]

    def done(cases: int, events: int, notices: int, states: dict) -> None:
        result.cases += cases
        result.events += events
        result.notices += notices
        result.states.update(states)
        if progress is not None:
            progress(cases, events, notices)

    parallel = workers > 1 and len(jobs) > 1 and not connection.in_atomic_block
    if parallel:
        # Children open their own connections; none may inherit an open one.
        connections.close_all()
        mp = multiprocessing.get_context("fork")
        turn, cond = mp.Value("i", 0), mp.Condition()
        with mp.Pool(workers, initializer=_worker_init, initargs=(ctx, plan, turn, cond)) as pool:
            for cases, events, notes, states in pool.imap(_worker_batch, jobs):
                done(cases, events, notes, states)
    else:
        for _number, lo, hi in jobs:
            done(*_batch(ctx, plan, lo, hi))
    result.seconds = time.perf_counter() - started
    return result
