"""The demo city's cases: a few hundred in every state, worked by the demo accounts.

Called by ``manage.py seed_demo`` right after the city (geo.demo) is written.
The cases are spread over the last 90 days, more of them recent and open so
that every queue shows something: the grid worker's grids get a good share
(verify and check tasks name her), the district's routing sends the
sanitation classes to the sanitation station (the ``handler`` account) and
everything else to the urban management bureau (``depthead``), and the
intake, dispatch, closing, postponement and supervision lists fill from the
same timelines.
"""

from __future__ import annotations

from django.db import connection, transaction

from accounts.audit import audit_log
from accounts.models import Department
from geo.demo import DEMO_SEED, DEMO_WORKER_USERNAME, DISTRICT_CODE
from geo.models import Area, GridStaff

from .generate import DEMO, Result, generate_cases
from .models import (
    Case,
    CaseEvent,
    CaseNotice,
    CasePhoto,
    CaseState,
    Category,
    Kind,
    RoutingRule,
)

DEMO_CASES = 400
DEMO_DAYS = 90
# Share of the demo's cases in the grid worker's own grids, and in her community.
WORKER_SHARE = 0.15
COMMUNITY_SHARE = 0.15

# The district's routing: (kind, major class code or None for the fallback, department suffix).
DEMO_ROUTING = (
    (Kind.EVENT, "01", "HW"),  # 市容环境 → 环卫所
    (Kind.COMPONENT, "03", "HW"),  # 市容环境设施 → 环卫所
    (None, None, "CG"),  # everything else → 城管局
)


def ensure_demo_routing() -> int:
    """The demo district's routing rules, unless the district already has some; how many made."""
    district = Area.objects.filter(code=DISTRICT_CODE).first()
    if district is None or RoutingRule.objects.filter(area=district).exists():
        return 0
    departments = {
        d.code: d for d in Department.objects.filter(code__startswith=f"{DISTRICT_CODE}-")
    }
    rules = []
    for kind, code, suffix in DEMO_ROUTING:
        department = departments.get(f"{DISTRICT_CODE}-{suffix}")
        if department is None:
            continue
        category = None
        if code is not None:
            category = Category.objects.filter(kind=kind, code=code, parent__isnull=True).first()
            if category is None:
                continue
        rules.append(
            RoutingRule(
                category=category,
                area=district,
                department=department,
                note="demo",
            )
        )
    RoutingRule.objects.bulk_create(rules)
    if rules:
        from .reference import rules_changed

        rules_changed()  # bulk_create sends no save signals
    return len(rules)


def _grid_boost() -> dict[str, float]:
    """Weights that give the demo grid worker's grids and community their share."""
    grids = list(Area.objects.grids().filter(code__startswith=DISTRICT_CODE).values_list("code"))
    total = len(grids)
    own = set(
        GridStaff.objects.filter(
            user__username=DEMO_WORKER_USERNAME, role=GridStaff.Role.WORKER
        ).values_list("area__code", flat=True)
    )
    if not total or not own:
        return {}
    community = {code for (code,) in grids if code[:12] in {c[:12] for c in own}} - own
    rest = total - len(own) - len(community)
    boost = {}
    if own:
        boost.update(dict.fromkeys(own, WORKER_SHARE * rest / len(own) / (1 - WORKER_SHARE)))
    if community:
        share = COMMUNITY_SHARE * rest / len(community) / (1 - COMMUNITY_SHARE)
        boost.update(dict.fromkeys(community, share))
    return boost


def seed_demo_cases(
    *, count: int = DEMO_CASES, seed: int = DEMO_SEED, days: int = DEMO_DAYS, now=None
) -> Result:
    """Write the demo's routing and ``count`` cases with their timelines, in one transaction."""
    with transaction.atomic():
        rules = ensure_demo_routing()
        boost = _grid_boost()
        own = set(
            GridStaff.objects.filter(
                user__username=DEMO_WORKER_USERNAME, role=GridStaff.Role.WORKER
            ).values_list("area__code", flat=True)
        )
        result = generate_cases(
            count=count,
            days=days,
            seed=seed,
            batch=max(count, 1),
            now=now,
            mix=DEMO,
            area_prefix=DISTRICT_CODE,
            grid_boost=boost,
            ensure=[
                (own, CaseState.VERIFYING, 4),
                (own, CaseState.HANDLED, 4),
                (None, CaseState.CHECKING, 6),
                (None, CaseState.ESCALATED, 6),
                (None, CaseState.MERGED, 4),
            ],
        )
        audit_log(
            actor=None,
            action="demo.seed_cases",
            object_type=Case._meta.label_lower,
            detail={
                "seed": seed,
                "cases": result.cases,
                "timeline_entries": result.events,
                "notices": result.notices,
                "routing_rules": rules,
                "states": dict(sorted(result.states.items())),
            },
        )
    return result


def remove_cases() -> int:
    """Remove every case with its timeline, photos' rows and notices, and every routing
    rule; how many cases went.

    For replacing the demo city (``seed_demo --force``): cases and routing
    rules hold on to their areas, so the areas cannot go while they are there. The timeline
    is append-only for the application (and, on PostgreSQL, for anyone but
    the tables' owner), so its rows go with TRUNCATE there — as a whole, like
    a new database — and with a plain DELETE on SQLite.
    """
    count = Case.objects.count()
    if not count:
        RoutingRule.objects.all().delete()
        return 0
    tables = [m._meta.db_table for m in (CasePhoto, CaseNotice, CaseEvent)]
    quote = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(quote(t) for t in [*tables, Case._meta.db_table])
            # Rows written earlier in this transaction leave deferred foreign-key
            # checks pending, and TRUNCATE refuses a table with pending checks:
            # run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # CASCADE: rows of other apps that point at a case (an Open311
            # request's token) go with it.
            cursor.execute(f"TRUNCATE {names} CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {quote(table)}")
            # Duplicates point at the case they were merged into.
            Case.objects.update(merged_into=None)
            Case.objects.all().delete()
        rules = RoutingRule.objects.all().delete()[0]
        audit_log(
            actor=None,
            action="demo.remove_cases",
            object_type=Case._meta.label_lower,
            detail={"cases": count, "routing_rules": rules},
        )
    return count
