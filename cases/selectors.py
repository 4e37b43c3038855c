"""Reads of categories, time limits and routing."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from accounts.models import Department
from geo.models import CODE_LENGTH, Area, AreaLevel

from .models import Category, Kind, RoutingRule, Step, TimeLimit, Urgency


def ancestor_codes(area: Area) -> list[str]:
    """The codes of ``area`` and of every area above it, read from the code alone.

    Codes nest (geo.models.code_problem): a grid's code starts with its
    community's, street's and district's; a city's is the district's first
    four digits padded with ``00``.
    """
    codes = []
    for level in range(int(area.level), int(AreaLevel.CITY) - 1, -1):
        if level == AreaLevel.CITY:
            codes.append(area.code[:4] + "00")
        else:
            codes.append(area.code[: CODE_LENGTH[AreaLevel(level)]])
    return codes


def route_department(*, category: Category, area: Area) -> Department | None:
    """The department cases of ``category`` in ``area`` go to; None when no rule applies.

    Precedence: the rule on the deepest area that contains ``area`` wins; among
    rules on the same area, a rule on the minor class beats one on its major
    class, which beats one with no class. Inactive rules and inactive
    departments are skipped. One query.
    """
    classes = [category.pk]
    if category.parent_id is not None:
        classes.append(category.parent_id)
    rule = (
        RoutingRule.objects.filter(
            is_active=True,
            department__is_active=True,
            area__code__in=ancestor_codes(area),
            area__level__lte=area.level,
        )
        .filter(Q(category__in=classes) | Q(category__isnull=True))
        .annotate(
            class_rank=Case(
                When(category=category.pk, then=Value(2)),
                When(category__isnull=True, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .select_related("department")
        .order_by("-area__level", "-class_rank")
        .first()
    )
    return rule.department if rule else None


def time_limit_for(
    *, category: Category, step: str, urgency: str = Urgency.NORMAL
) -> TimeLimit | None:
    """The limit for ``step`` at ``urgency``: the minor class's own, else its major class's.

    None means the step has no limit. One query.
    """
    classes = [category.pk]
    if category.parent_id is not None:
        classes.append(category.parent_id)
    limits = TimeLimit.objects.filter(category__in=classes, step=step, urgency=urgency)
    by_class = {limit.category_id: limit for limit in limits}
    return by_class.get(category.pk) or by_class.get(category.parent_id)


def step_deadline(
    *, category: Category, step: str, urgency: str, start: datetime, calendar=None
) -> datetime | None:
    """When ``step`` started at ``start`` is due, in working time; None without a limit."""
    limit = time_limit_for(category=category, step=step, urgency=urgency)
    if limit is None:
        return None
    if calendar is None:
        from core.calendar_store import work_calendar

        calendar = work_calendar()
    return limit.deadline_from(start, calendar)


def category_tree(*, kind: str | None = None, include_inactive: bool = False) -> list[Category]:
    """Major classes in order, each with ``.minors`` (a list) attached. Two queries."""
    qs: QuerySet[Category] = Category.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    if not include_inactive:
        qs = qs.filter(is_active=True)
    rows = list(qs.order_by("kind", "sort_order", "code"))
    majors = [c for c in rows if c.parent_id is None]
    by_id = {c.pk: c for c in majors}
    for major in majors:
        major.minors = []
    for c in rows:
        if c.parent_id in by_id:
            by_id[c.parent_id].minors.append(c)
    return majors


def category_by_code(*, kind: str, code: str) -> Category | None:
    return Category.objects.select_related("parent").filter(kind=kind, code=code).first()


__all__ = [
    "Kind",
    "Step",
    "ancestor_codes",
    "category_by_code",
    "category_tree",
    "route_department",
    "step_deadline",
    "time_limit_for",
]
