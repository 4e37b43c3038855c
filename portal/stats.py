"""Public statistics of the portal: how many cases, how fast they close.

Only counts and durations over cases of classes residents may see
(``Category.is_public``), grouped by major class and by street: nothing that
names a person or a single case. Each period's figures are computed with a few
aggregate queries plus one pass over (class, street, created, closed) rows of
the period's closed cases, and kept in the cache for a few minutes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Q
from django.utils import timezone, translation

from cases import workflow
from cases.models import Case, CaseState, Category
from geo.models import Area, AreaLevel

# Periods a reader may choose (days); the first is the default.
PERIODS = (30, 90, 365)
CACHE_SECONDS = 300
# A code's first 9 digits: the county (6) and the street (3).
STREET_CODE_LENGTH = 9
# Closed cases read per period at most (the newest), so a huge city stays cheap.
MAX_CLOSED_ROWS = 50_000


@dataclass
class Group:
    key: str
    label: str
    closed: int = 0
    median_hours: float | None = None


@dataclass
class PublicStats:
    period_days: int
    reported: int
    closed: int
    open_now: int
    reported_30: int
    closed_30: int
    reported_90: int
    closed_90: int
    median_hours: float | None
    by_category: list[Group] = field(default_factory=list)
    by_street: list[Group] = field(default_factory=list)
    computed_at: datetime | None = None


def parse_period(raw) -> int:
    try:
        days = int(raw)
    except (TypeError, ValueError):
        return PERIODS[0]
    return days if days in PERIODS else PERIODS[0]


def _localized(name: str, name_en: str) -> str:
    if name_en and (translation.get_language() or "").startswith("en"):
        return name_en
    return name


def _median_hours(durations: list[float]) -> float | None:
    return round(statistics.median(durations) / 3600, 1) if durations else None


def public_stats(*, period_days: int, now: datetime | None = None) -> PublicStats:
    """The figures for the last ``period_days`` days (cached per period and language)."""
    language = translation.get_language() or ""
    key = f"portal:stats:{period_days}:{language}"
    if now is None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    result = _compute(period_days=period_days, now=now or timezone.now())
    if now is None:
        cache.set(key, result, CACHE_SECONDS)
    return result


def _compute(*, period_days: int, now: datetime) -> PublicStats:
    public = Case.objects.filter(category__is_public=True)
    since = {days: now - timedelta(days=days) for days in {30, 90, period_days}}
    counts = public.aggregate(
        open_now=Count("pk", filter=Q(state__in=workflow.OPEN_STATES)),
        **{
            f"reported_{days}": Count("pk", filter=Q(created_at__gte=start))
            for days, start in since.items()
        },
        **{
            f"closed_{days}": Count("pk", filter=Q(state=CaseState.CLOSED, closed_at__gte=start))
            for days, start in since.items()
        },
    )
    rows = (
        public.filter(state=CaseState.CLOSED, closed_at__gte=since[period_days])
        .order_by("-closed_at")
        .values_list("category__parent_id", "area__code", "created_at", "closed_at")[
            :MAX_CLOSED_ROWS
        ]
    )
    by_major: dict[int, list[float]] = defaultdict(list)
    by_street: dict[str, list[float]] = defaultdict(list)
    everything: list[float] = []
    for major_id, area_code, created_at, closed_at in rows:
        seconds = max(0.0, (closed_at - created_at).total_seconds())
        everything.append(seconds)
        by_major[major_id].append(seconds)
        by_street[area_code[:STREET_CODE_LENGTH]].append(seconds)
    majors = {
        pk: (kind, code, _localized(name, name_en))
        for pk, kind, code, name, name_en in Category.objects.filter(
            pk__in=list(by_major)
        ).values_list("pk", "kind", "code", "name", "name_en")
    }
    kinds = dict(Category._meta.get_field("kind").choices)
    streets = {
        code: _localized(name, name_en)
        for code, name, name_en in Area.objects.filter(
            level=AreaLevel.STREET, code__in=list(by_street)
        ).values_list("code", "name", "name_en")
    }
    category_groups = []
    for major_id, durations in by_major.items():
        kind, code, name = majors.get(major_id, ("", "", ""))
        label = f"{kinds.get(kind, '')} · {name}" if kind else name
        category_groups.append(
            Group(
                key=f"{kind}-{code}",
                label=str(label),
                closed=len(durations),
                median_hours=_median_hours(durations),
            )
        )
    category_groups.sort(key=lambda g: g.key)
    street_groups = [
        Group(
            key=code,
            label=streets.get(code, code),
            closed=len(durations),
            median_hours=_median_hours(durations),
        )
        for code, durations in by_street.items()
    ]
    street_groups.sort(key=lambda g: g.key)
    return PublicStats(
        period_days=period_days,
        reported=counts[f"reported_{period_days}"],
        closed=counts[f"closed_{period_days}"],
        open_now=counts["open_now"],
        reported_30=counts["reported_30"],
        closed_30=counts["closed_30"],
        reported_90=counts["reported_90"],
        closed_90=counts["closed_90"],
        median_hours=_median_hours(everything),
        by_category=category_groups,
        by_street=street_groups,
        computed_at=now,
    )
