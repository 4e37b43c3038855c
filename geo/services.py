"""Writes to the area tree: one keyword-only function per use case, each owning its transaction."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_log
from accounts.scopes import OutsideScope
from core.errors import DomainError

from .geometry import BOUNDARY_FIELDS, measure, normalize
from .models import Area, AreaLevel, Building, GridStaff, code_problem
from .partition import MAX_GRIDS, PartitionPlan, assign_points, boundary_digest, part_sums
from .versioning import bump_area_version

_MEASURED_FIELDS = [*BOUNDARY_FIELDS, "households", "population"]


def grids_partition_accept(
    *,
    community: Area,
    plan: PartitionPlan,
    actor=None,
    scope: Callable[[str], bool] | None = None,
) -> list[Area]:
    """Replace the grids of ``community`` by those of ``plan``, in one transaction.

    A grid whose code the plan reuses is updated in place, so it keeps its id
    and everything that refers to it (staff, buildings, later cases); new codes
    are created and grids the plan no longer has are deleted. Deleting a grid
    that still has staff is refused, naming them: staff are reassigned by a
    person, never silently. Every building of the community is put in the grid
    that holds it, and each grid's households and people are summed from its
    buildings. Returns the community's grids in code order. The change is one
    audit entry by ``actor`` (None: the system) with the grids before and after.

    ``scope`` (an area code → allowed test, see accounts.scopes.scope_test):
    after the write every grid must still be inside it, or the whole change is
    rolled back with OutsideScope. By construction each grid code extends the
    community's; the check keeps that true if the construction ever changes.
    """
    if community.level != AreaLevel.COMMUNITY:
        message = _("%(code)s is not a community.") % {"code": community.code}
        raise DomainError(message, errors={"code": [message]})
    if plan.community_code != community.code:
        message = _("This plan was made for %(plan)s, not for %(code)s.") % {
            "plan": plan.community_code,
            "code": community.code,
        }
        raise DomainError(message, errors={"code": [message]})
    if not 1 <= len(plan.parts) <= MAX_GRIDS:
        message = _("A community holds 1 to %(max)d grids; the plan has %(n)d.") % {
            "max": MAX_GRIDS,
            "n": len(plan.parts),
        }
        raise DomainError(message, errors={"grids": [message]})
    for code in plan.codes:
        problem = code_problem(code, AreaLevel.GRID, community.code, AreaLevel.COMMUNITY)
        if problem:
            raise DomainError(problem, errors={"code": [problem]})

    with transaction.atomic():
        # Lock the community so two accepts of the same community run one after the other.
        locked = Area.objects.select_for_update().get(pk=community.pk)
        if boundary_digest(locked) != plan.boundary_digest:
            message = _(
                "The boundary of %(code)s changed after this plan was made; make a new plan."
            ) % {"code": community.code}
            raise DomainError(message, errors={"non_field_errors": [message]}, code="stale")
        existing = {
            grid.code: grid
            for grid in Area.objects.select_for_update().filter(
                parent=community, level=AreaLevel.GRID
            )
        }
        planned = set(plan.codes)
        doomed = [grid for code, grid in existing.items() if code not in planned]
        _refuse_removing_staffed(doomed)

        shapes = [normalize(part) for part in plan.parts]
        buildings = list(Building.objects.filter(community=community).order_by("pk"))
        points = np.array([(b.lng, b.lat) for b in buildings], dtype=float).reshape(-1, 2)
        owner = assign_points(shapes, points)
        households = part_sums(
            owner, np.array([b.households for b in buildings], float), len(shapes)
        )
        population = part_sums(
            owner, np.array([b.population for b in buildings], float), len(shapes)
        )

        created, updated = [], []
        for i, code in enumerate(plan.codes):
            grid = existing.get(code) or Area(
                code=code,
                level=AreaLevel.GRID,
                parent=community,
                name=plan.names[i],
                name_en=plan.names_en[i],
            )
            for field, value in measure(shapes[i]).as_fields().items():
                setattr(grid, field, value)
            grid.households = int(households[i])
            grid.population = int(population[i])
            (updated if grid.pk else created).append(grid)
        for grid in created:
            try:
                grid.full_clean(exclude=["geometry"])
            except ValidationError as exc:
                message = _("Grid %(code)s cannot be created: %(reason)s") % {
                    "code": grid.code,
                    "reason": "; ".join(exc.messages),
                }
                raise DomainError(message, errors={"grids": [message]}) from None
        # bulk_update leaves auto_now alone: stamp the updated rows here.
        now = timezone.now()
        for grid in updated:
            grid.updated_at = now
        Area.objects.bulk_create(created)
        Area.objects.bulk_update(updated, _MEASURED_FIELDS + ["updated_at"])

        grid_ids = {grid.code: grid.pk for grid in [*created, *updated]}
        for building, index in zip(buildings, owner, strict=True):
            building.grid_id = grid_ids[plan.codes[index]] if index >= 0 else None
        Building.objects.bulk_update(buildings, ["grid"], batch_size=1000)
        if doomed:
            Area.objects.filter(pk__in=[grid.pk for grid in doomed]).delete()
        if scope is not None:
            outside = [code for code in plan.codes if not scope(code)]
            if outside:
                raise OutsideScope(
                    _("Grids %(codes)s would be outside the areas you may partition.")
                    % {"codes": ", ".join(outside)}
                )
        bump_area_version()
        audit_log(
            actor=actor,
            action="grid.partition",
            obj=community,
            before={"grids": sorted(existing)},
            after={
                "grids": list(plan.codes),
                "households": [int(h) for h in households],
                "created": sorted(grid.code for grid in created),
                "deleted": sorted(grid.code for grid in doomed),
            },
        )
    return list(Area.objects.filter(parent=community, level=AreaLevel.GRID).order_by("code"))


def _refuse_removing_staffed(doomed: list[Area]) -> None:
    staff = list(
        GridStaff.objects.filter(area__in=doomed)
        .select_related("area", "user")
        .order_by("area__code", "role", "user__username")
    )
    if not staff:
        return
    by_grid: dict[str, list[str]] = {}
    for member in staff:
        by_grid.setdefault(member.area.code, []).append(
            f"{member.user} ({member.get_role_display()})"
        )
    names = "; ".join(f"{code}: {', '.join(people)}" for code, people in by_grid.items())
    message = _(
        "These grids would be removed but still have staff: %(names)s. "
        "Reassign the staff first, or cut the community into more grids."
    ) % {"names": names}
    raise DomainError(message, errors={"grids": [message]}, code="staffed")
