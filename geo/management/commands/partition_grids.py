"""``manage.py partition_grids CODE (--households-per-grid N | --grids N) [--dry-run]
[--preview FILE] [--seed N]`` — cut a community into unit grids (划分网格)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from core.errors import DomainError
from geo.models import Area, AreaLevel
from geo.partition import partition_community
from geo.selectors import area_get
from geo.services import grids_partition_accept


class Command(BaseCommand):
    help = _(
        "Cut a community into contiguous, compact unit grids balanced on the households of "
        "its buildings; prints the spread, writes a GeoJSON preview and, unless --dry-run, "
        "replaces the community's grids."
    )

    def add_arguments(self, parser):
        parser.add_argument("code", help=_("the community's 12-digit code"))
        parser.add_argument(
            "--households-per-grid", type=int, metavar="N", help=_("about N households per grid")
        )
        parser.add_argument("--grids", type=int, metavar="N", help=_("exactly N grids"))
        parser.add_argument(
            "--seed", type=int, default=0, help=_("another seed gives another layout (default 0)")
        )
        parser.add_argument(
            "--dry-run", action="store_true", help=_("show the plan, write nothing but the preview")
        )
        parser.add_argument(
            "--preview",
            metavar="FILE",
            help=_("where to write the GeoJSON preview (default var/partition-CODE.geojson)"),
        )

    def handle(self, *args, **options):
        code = options["code"]
        try:
            community = area_get(code=code)
            plan = partition_community(
                community=community,
                n_grids=options["grids"],
                households_per_grid=options["households_per_grid"],
                seed=options["seed"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None

        path = Path(
            options["preview"] or Path(settings.VAR_DIR) / f"partition-{community.code}.geojson"
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps(plan.feature_collection(), ensure_ascii=False), encoding="utf-8"
            )
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from None

        self._print_plan(plan)
        self.stdout.write(_("Preview written to %(path)s") % {"path": path})
        if options["dry_run"]:
            self.stdout.write(_("Dry run: no grids were written."))
            return

        before = set(
            Area.objects.filter(parent=community, level=AreaLevel.GRID).values_list(
                "code", flat=True
            )
        )
        try:
            grids = grids_partition_accept(community=community, plan=plan)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        after = {grid.code for grid in grids}
        self.stdout.write(
            self.style.SUCCESS(
                _(
                    "Community %(code)s now has %(n)d grids: %(created)d created, "
                    "%(updated)d updated, %(removed)d removed."
                )
                % {
                    "code": community.code,
                    "n": len(grids),
                    "created": len(after - before),
                    "updated": len(after & before),
                    "removed": len(before - after),
                }
            )
        )

    def _print_plan(self, plan) -> None:
        header = (_("grid"), _("households"), _("people"))
        self.stdout.write(f"{header[0]:<16}{header[1]:>12}{header[2]:>10}")
        for code, households, people in zip(
            plan.codes, plan.households, plan.population, strict=True
        ):
            self.stdout.write(f"{code:<16}{households:>12}{people:>10}")
        spread = plan.spread
        self.stdout.write(
            _(
                "%(grids)d grids, %(buildings)d buildings, %(total)s households; households per "
                "grid: min %(min)s / median %(median)s / max %(max)s"
            )
            % {**spread, "buildings": plan.buildings}
        )
