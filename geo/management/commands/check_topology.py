"""``manage.py check_topology [CODE] [--tolerance-m2 M2] [--geojson FILE]``.

Exits 0 when the tree (or the subtree under CODE) is clean and with an error
status when it has problems, so scripts and CI can rely on it.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from core.errors import DomainError
from geo.selectors import area_get
from geo.topology import check_topology, problems_feature_collection, summarize


class Command(BaseCommand):
    help = _(
        "Check the area tree for overlapping siblings, gaps in a parent's coverage and "
        "children outside their parent; exits with an error status when there are any."
    )

    def add_arguments(self, parser):
        parser.add_argument("code", nargs="?", help=_("check only this area and those below it"))
        parser.add_argument(
            "--tolerance-m2",
            type=float,
            default=1.0,
            metavar="M2",
            help=_("ignore problems of at most this many square metres (default 1)"),
        )
        parser.add_argument(
            "--geojson", metavar="FILE", help=_("write the problems as a GeoJSON FeatureCollection")
        )

    def handle(self, *args, **options):
        code = options["code"]
        tolerance = options["tolerance_m2"]
        if not tolerance >= 0:
            raise CommandError(_("--tolerance-m2 must be a number of square metres, at least 0."))
        try:
            root = area_get(code=code) if code else None
        except DomainError as exc:
            raise CommandError(exc.message) from None
        problems = check_topology(root=root, tolerance_m2=tolerance)

        if options["geojson"]:
            path = Path(options["geojson"])
            try:
                path.write_text(
                    json.dumps(problems_feature_collection(problems), ensure_ascii=False),
                    encoding="utf-8",
                )
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}") from None
            self.stdout.write(_("Problems written to %(path)s") % {"path": path})

        where = code or _("the whole tree")
        if not problems:
            self.stdout.write(
                self.style.SUCCESS(_("No topology problems under %(where)s.") % {"where": where})
            )
            return
        kind_names = {"overlap": _("overlap"), "gap": _("gap"), "outside": _("outside")}
        rows = [
            (
                kind_names[p.kind],
                f"{p.area_m2:,.1f}",
                p.parent_code or "-",
                " ".join(p.codes) or "-",
            )
            for p in problems
        ]
        header = (_("kind"), _("area (m²)"), _("parent"), _("areas"))
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(3)]
        self.stdout.write(
            f"{header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  {header[2]:<{widths[2]}}  {header[3]}"
        )
        for kind, area, parent, codes in rows:
            self.stdout.write(
                f"{kind:<{widths[0]}}  {area:>{widths[1]}}  {parent:<{widths[2]}}  {codes}"
            )
        counts = summarize(problems)
        details = ", ".join(f"{counts[k]} {kind_names[k]}" for k in counts if counts[k])
        raise CommandError(
            ngettext(
                "%(n)d topology problem under %(where)s (%(details)s).",
                "%(n)d topology problems under %(where)s (%(details)s).",
                len(problems),
            )
            % {"n": len(problems), "where": where, "details": details}
        )
