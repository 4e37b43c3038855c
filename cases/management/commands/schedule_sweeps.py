"""Start the minute-by-minute overdue sweep on the task queue (idempotent)."""

from django.core.management.base import BaseCommand

from cases.tasks import schedule_next_sweep


class Command(BaseCommand):
    help = (
        "Queue the overdue sweep to run now; each run queues the next a minute later. "
        "Does nothing when a sweep is already waiting in the queue."
    )

    def handle(self, *args, **options):
        queued = schedule_next_sweep(delay=None)
        if options["verbosity"]:
            self.stdout.write(
                "Overdue sweep queued; the task worker (manage.py db_worker) runs it."
                if queued
                else "An overdue sweep is already queued; nothing to do."
            )
