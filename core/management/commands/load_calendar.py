"""python manage.py load_calendar FILE [--actor USERNAME]"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.calendar_store import calendar_overrides_load_file
from core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Load work calendar overrides (a city's own holidays and working days, or a year "
        "the holidays package does not hold yet) from a UTF-8 CSV file with the columns "
        "date,is_working,note or a JSON list of {date, is_working, note}. A date already "
        "stored is replaced. With any bad line nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="a .csv or .json file")
        parser.add_argument(
            "--actor", help="username the audit log records as the loader (default: the system)"
        )

    def handle(self, *args, file: str, actor: str | None, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        acting = None
        if actor:
            acting = get_user_model().objects.filter(username=actor, is_active=True).first()
            if acting is None:
                raise CommandError(f"--actor {actor}: no active user with that username")
        try:
            summary = calendar_overrides_load_file(path=path, actor=acting)
        except DomainError as exc:
            details = [m for msgs in exc.errors.values() for m in msgs if m != exc.message]
            raise CommandError("\n".join([exc.message, *details])) from None
        self.stdout.write(
            f"{path}: {summary['created']} created, {summary['updated']} updated, "
            f"{summary['unchanged']} unchanged"
        )
