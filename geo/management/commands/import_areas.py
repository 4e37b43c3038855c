"""``manage.py import_areas FILE [--crs wgs84|gcj02|bd09] [--dry-run] [--repair]``."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from geo.crs import CRS_CHOICES
from geo.importer import AreaImportError, areas_import, read_file


class Command(BaseCommand):
    help = (
        "Import areas from a GeoJSON FeatureCollection (.geojson/.json) or a CSV division "
        "list (.csv). Every problem is listed and nothing is written unless the whole file is good."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="a .geojson/.json FeatureCollection or a .csv list")
        parser.add_argument(
            "--crs",
            choices=CRS_CHOICES,
            default="wgs84",
            help="coordinate system of the file: wgs84 (GPS), gcj02 (AMap, Tencent), bd09 (Baidu)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="check and report, write nothing"
        )
        parser.add_argument(
            "--repair",
            action="store_true",
            help="fix invalid (self-intersecting) boundaries and report the area each gained or lost",
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            report = areas_import(
                records=read_file(path),
                crs=options["crs"],
                repair=options["repair"],
                dry_run=options["dry_run"],
                progress=True,
                source_name=path.name,
            )
        except AreaImportError as exc:
            lines = [f"{path.name}: {message}" for message in exc.messages]
            raise CommandError(f"{exc.message}\n" + "\n".join(lines), returncode=1) from None
        except DomainError as exc:
            raise CommandError(f"{path.name}: {exc.message}") from None
        self.stdout.write("\n".join(report.lines()))
