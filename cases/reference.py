"""The reference data every report reads, kept in process memory: the classes, their
time limits, the routing rules and the grids' rows.

A report reads its class, the class's limit for each step of the main path, the
routing rules above its grid and its grid's row. These change seldom (the admin
pages, the seed commands, an area import), so each process keeps one copy and
checks it against the ``cases.rules`` version counter (core.versioning) at most
every ``CIVICGRID["RULES_MAX_STALENESS"]`` seconds (default 1; one single-row
query).

Freshness
    Every save or delete of a class, a time limit, a routing rule or a department
    bumps that counter in the writer's transaction (the receivers at the end of this
    module) and forgets this process's copy at once and again on commit: the writing
    process sees its change immediately, every other one within the staleness. A
    bulk write that sends no model signals (``bulk_create``, ``QuerySet.update``)
    calls :func:`rules_changed` itself; should one not, the copy is rebuilt anyway
    once it is ``CIVICGRID["RULES_MAX_AGE"]`` seconds old (default 300). The copy
    is also tied to the point-to-grid index (geo.index): when the areas' version
    moves the index is rebuilt, and the copy (which holds area codes and grid rows)
    with it.

Transactions
    The copy is read and built only outside a transaction. Inside one, the caller
    may have changed the rules itself, or may still roll back, so the lookups answer
    from the database, as that transaction sees it (one query each).

Each lookup hands out fresh model instances, never the shared copy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from time import monotonic

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Department
from core.versioning import bump_version, current_version
from geo.models import Area

from .models import Category, RoutingRule, TimeLimit

RULES = "cases.rules"

_CATEGORY_FIELDS = tuple(f.attname for f in Category._meta.concrete_fields)
_LIMIT_FIELDS = ("id", "category_id", "step", "urgency", "amount", "unit")
_DEPARTMENT_FIELDS = tuple(f.attname for f in Department._meta.concrete_fields)
# A grid's row without its boundary: a report needs its id, code, level and names.
_AREA_FIELDS = ("id", "code", "level", "parent_id", "name", "name_en")


@dataclass
class Rules:
    """One process's copy (see the module docstring); never handed out itself."""

    version: int
    index: object  # the geo index this copy was built beside
    built: float  # monotonic time of the build
    # (kind, code) → the class's values in _CATEGORY_FIELDS order; and id → the same
    categories: dict[tuple[str, str], tuple]
    categories_by_id: dict[int, tuple]
    # category id → (step, urgency) → the TimeLimit's values in _LIMIT_FIELDS order
    limits: dict[int, dict[tuple[str, str], tuple]]
    # area code → [(level, category id or None, department values)] of its active rules
    routes: dict[str, list[tuple[int, int | None, tuple]]]
    # grid code → its row in _AREA_FIELDS order, filled as reports come in
    grids: dict[str, tuple] = field(default_factory=dict)


_lock = threading.Lock()
_state: dict = {"rules": None, "checked": 0.0, "staleness": None, "max_age": None}


def rules_version() -> int:
    return current_version(RULES)


def rules_changed() -> None:
    """Say that classes, limits, routing rules or departments changed: bumps the counter
    inside the caller's transaction, and forgets this process's copy now and on commit."""
    bump_version(RULES)
    invalidate_rules()
    transaction.on_commit(invalidate_rules)


def invalidate_rules() -> None:
    """Forget this process's copy (the next lookup outside a transaction rebuilds it)."""
    with _lock:
        _state.update(rules=None, checked=0.0)


def _staleness() -> float:
    staleness = _state["staleness"]
    if staleness is None:
        conf = getattr(settings, "CIVICGRID", {})
        staleness = _state["staleness"] = float(conf.get("RULES_MAX_STALENESS", 1.0))
        _state["max_age"] = float(conf.get("RULES_MAX_AGE", 300.0))
    return staleness


@receiver(setting_changed)
def _settings_changed(*, setting, **kwargs) -> None:
    if setting == "CIVICGRID":
        _state.update(staleness=None, max_age=None, checked=0.0)


def _load(version: int, index, now: float) -> Rules:
    categories = list(Category.objects.values_list(*_CATEGORY_FIELDS))
    kind_at, code_at = _CATEGORY_FIELDS.index("kind"), _CATEGORY_FIELDS.index("code")
    limits: dict[int, dict] = {}
    for row in TimeLimit.objects.values_list(*_LIMIT_FIELDS):
        limits.setdefault(row[1], {})[(row[2], row[3])] = row
    routes: dict[str, list] = {}
    rules = (
        RoutingRule.objects.filter(is_active=True, department__is_active=True)
        .select_related("department", "area")
        .order_by("pk")
    )
    for rule in rules:
        department = tuple(getattr(rule.department, name) for name in _DEPARTMENT_FIELDS)
        routes.setdefault(rule.area.code, []).append(
            (int(rule.area.level), rule.category_id, department)
        )
    return Rules(
        version=version,
        index=index,
        built=now,
        categories={(row[kind_at], row[code_at]): row for row in categories},
        categories_by_id={row[0]: row for row in categories},
        limits=limits,
        routes=routes,
    )


def current_rules() -> Rules | None:
    """This process's copy, checked or rebuilt when due; None inside a transaction."""
    if connection.in_atomic_block:
        return None
    from geo.index import get_index

    index = get_index()
    staleness = _staleness()
    rules = _state["rules"]
    now = monotonic()
    if rules is not None and rules.index is index and now - _state["checked"] < staleness:
        return rules
    # Read the version before the rows: a change committed in between shows up as a
    # newer version at the next check instead of being missed.
    version = rules_version()
    with _lock:
        rules = _state["rules"]
        if (
            rules is None
            or rules.version != version
            or rules.index is not index
            or now - rules.built > _state["max_age"]
        ):
            rules = _load(version, index, now)
            _state["rules"] = rules
        _state["checked"] = now
        return rules


# --- lookups ------------------------------------------------------------------------


def category(*, kind: str, code: str) -> Category | None:
    """The class of ``kind`` with ``code``, its major class attached; None when there is
    none. No query with a current copy, else one."""
    rules = current_rules()
    if rules is None:
        return Category.objects.select_related("parent").filter(kind=kind, code=code).first()
    row = rules.categories.get((kind, code))
    if row is None:
        return None
    found = Category.from_db(DEFAULT_DB_ALIAS, _CATEGORY_FIELDS, row)
    parent_id = found.parent_id
    parent_row = rules.categories_by_id.get(parent_id) if parent_id is not None else None
    found.parent = (
        Category.from_db(DEFAULT_DB_ALIAS, _CATEGORY_FIELDS, parent_row) if parent_row else None
    )
    return found


def _time_limit(row: tuple) -> TimeLimit:
    return TimeLimit.from_db(DEFAULT_DB_ALIAS, _LIMIT_FIELDS, row)


def step_limits(*, category: Category, urgency: str) -> dict[str, TimeLimit]:
    """Step → the limit at ``urgency`` for ``category``: the minor class's own, else its
    major class's; a step without a limit is absent. No query with a current copy, else one."""
    classes = [category.pk]
    if category.parent_id is not None:
        classes.append(category.parent_id)
    rules = current_rules()
    if rules is None:
        rows = TimeLimit.objects.filter(category__in=classes, urgency=urgency).values_list(
            *_LIMIT_FIELDS
        )
        found: dict[str, tuple] = {}
        for row in rows:
            # The minor class's own limit wins over its major class's.
            if row[1] == category.pk or row[2] not in found:
                found[row[2]] = row
        return {step: _time_limit(row) for step, row in found.items()}
    out = {}
    # The major class's first, so that the minor class's own overwrite them.
    for class_id in reversed(classes):
        for (step, at_urgency), row in rules.limits.get(class_id, {}).items():
            if at_urgency == urgency:
                out[step] = row
    return {step: _time_limit(row) for step, row in out.items()}


def time_limit(rules: Rules, *, category: Category, step: str, urgency: str) -> TimeLimit | None:
    """The limit of one step from the copy ``rules``; None without one."""
    row = rules.limits.get(category.pk, {}).get((step, urgency))
    if row is None and category.parent_id is not None:
        row = rules.limits.get(category.parent_id, {}).get((step, urgency))
    return _time_limit(row) if row is not None else None


def routed_department(
    rules: Rules, *, category: Category, codes: list[str], level: int
) -> Department | None:
    """From the copy ``rules``: the department of the most specific active rule on
    ``codes`` (an area's own code and its ancestors'), as
    cases.selectors.route_department decides: the deepest area first, then the minor
    class, its major class, no class."""
    best, best_key = None, None
    for code in codes:
        for rule_level, category_id, department in rules.routes.get(code, ()):
            if rule_level > level:
                continue
            if category_id is None:
                rank = 0
            elif category_id == category.pk:
                rank = 2
            elif category_id == category.parent_id:
                rank = 1
            else:
                continue
            key = (rule_level, rank)
            if best_key is None or key > best_key:
                best, best_key = department, key
    if best is None:
        return None
    return Department.from_db(DEFAULT_DB_ALIAS, _DEPARTMENT_FIELDS, best)


def grid_area(code: str) -> Area:
    """The area row of the grid ``code`` (its boundary left out); Area.DoesNotExist when
    there is none. From the copy outside a transaction, else one query."""
    rules = current_rules()
    row = rules.grids.get(code) if rules is not None else None
    if row is None:
        row = Area.objects.filter(code=code).values_list(*_AREA_FIELDS).first()
        if row is None:
            raise Area.DoesNotExist(f"no area {code}")
        if rules is not None:
            rules.grids[code] = row
    return Area.from_db(DEFAULT_DB_ALIAS, _AREA_FIELDS, row)


# --- what changes the copy ------------------------------------------------------------


def _changed(sender, **kwargs) -> None:
    if kwargs.get("raw"):
        return  # loaddata: nothing is saved through the application
    rules_changed()


for _model in (Category, TimeLimit, RoutingRule, Department):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"cases.reference.save.{_model}")
    post_delete.connect(_changed, sender=_model, dispatch_uid=f"cases.reference.delete.{_model}")
del _model
