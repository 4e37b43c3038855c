"""Erase reporters' contact details past the retention period (the worker does it every minute)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from cases.services import cases_purge_reporter_data


class Command(BaseCommand):
    help = (
        "Erase the reporter's name, phone and e-mail of cases finished more than "
        "CIVICGRID['REPORTER_RETENTION_DAYS'] days ago."
    )

    def handle(self, *args, **options):
        erased = cases_purge_reporter_data()
        if options["verbosity"]:
            days = settings.CIVICGRID.get("REPORTER_RETENTION_DAYS")
            self.stdout.write(
                f"{erased} finished case(s) past the {days}-day retention period erased."
            )
