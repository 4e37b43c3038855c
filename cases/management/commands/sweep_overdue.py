"""Mark overdue cases once (the worker does it every minute; see cases.tasks)."""

from django.core.management.base import BaseCommand

from cases.services import cases_sweep_overdue


class Command(BaseCommand):
    help = "Mark open cases whose step deadline or overall deadline has passed."

    def handle(self, *args, **options):
        marked = cases_sweep_overdue()
        if options["verbosity"]:
            self.stdout.write(f"{marked} case(s) marked overdue.")
