"""``manage.py export_areas [--level grid] [--under CODE] [--output FILE]``."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from geo.exporter import iter_feature_collection
from geo.models import AreaLevel
from geo.selectors import area_get, parse_level


class Command(BaseCommand):
    help = (
        "Export areas as a GeoJSON FeatureCollection (WGS-84) that import_areas reads back "
        "to the same tree."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--level", choices=[lv.slug for lv in AreaLevel], help="only areas of this level"
        )
        parser.add_argument("--under", metavar="CODE", help="only this area and those below it")
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="write to FILE instead of standard output"
        )

    def handle(self, *args, **options):
        try:
            level = parse_level(options["level"])
            under = area_get(code=options["under"]) if options["under"] else None
        except DomainError as exc:
            raise CommandError(exc.message) from None
        chunks = iter_feature_collection(level=level, under=under)
        if options["output"]:
            path = Path(options["output"])
            try:
                with path.open("w", encoding="utf-8") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}") from None
            self.stderr.write(f"written: {path}")
        else:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
