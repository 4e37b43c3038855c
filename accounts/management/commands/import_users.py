"""python manage.py import_users FILE [--dry-run] [--actor USERNAME]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.importing import ImportReport, users_import
from accounts.models import User
from core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Import users and memberships from a CSV (UTF-8) or Excel .xlsx file with the columns "
        "username, display_name, email, phone, role, area_code, department_code. "
        "Everything is checked first; with any bad row nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="a .csv or .xlsx file")
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would change, write nothing"
        )
        parser.add_argument(
            "--actor",
            help="username the audit log records as the importer (default: the system)",
        )

    def handle(self, *args, file: str, dry_run: bool, actor: str | None, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        acting = None
        if actor:
            acting = User.objects.filter(username=actor, is_active=True).first()
            if acting is None:
                raise CommandError(f"--actor {actor}: no active user with that username")
        try:
            with path.open("rb") as handle:
                report = users_import(
                    file=handle, filename=path.name, actor=acting, dry_run=dry_run
                )
        except DomainError as exc:
            raise CommandError(f"{file}: {exc.message}") from exc
        if report.errors:
            lines = "\n".join(f"{file}: line {e.line}: {e.message}" for e in report.errors)
            raise CommandError(
                f"{file}: {len(report.errors)} problem(s), nothing was written\n{lines}"
            )
        self._print(report)

    def _print(self, report: ImportReport) -> None:
        out = self.stdout
        for change in report.users_created:
            values = ", ".join(f"{k}={v}" for k, v in change.fields.items())
            out.write(f"line {change.line}: create user {change.username} {values}".rstrip())
        for change in report.users_updated:
            values = ", ".join(
                f"{k}: {old!r} -> {new!r}" for k, (old, new) in change.fields.items()
            )
            out.write(f"line {change.line}: update user {change.username}: {values}")
        for verb, items in (
            ("add", report.memberships_added),
            ("reactivate", report.memberships_reactivated),
        ):
            for m in items:
                where = f"{m.area}" + (f" / {m.department}" if m.department else "")
                out.write(f"line {m.line}: {verb} membership {m.username} {m.role} @ {where}")
        counts = report.counts()
        summary = (
            f"{counts['rows']} rows: {counts['users_created']} users created, "
            f"{counts['users_updated']} updated, {counts['users_unchanged']} unchanged; "
            f"{counts['memberships_added']} memberships added, "
            f"{counts['memberships_reactivated']} reactivated, "
            f"{counts['memberships_unchanged']} unchanged"
        )
        if report.dry_run:
            out.write(self.style.WARNING(f"Dry run, nothing written. {summary}"))
        else:
            out.write(self.style.SUCCESS(f"Imported. {summary}"))
