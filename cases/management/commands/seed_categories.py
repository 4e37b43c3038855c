"""python manage.py seed_categories"""

from django.core.management.base import BaseCommand

from cases.taxonomy import seed_categories


class Command(BaseCommand):
    help = (
        "Add the standard event and component categories with their criteria and time "
        "limits. Only what is missing is added; classes and limits that exist are left as "
        "they are, so it is safe to run again."
    )

    def handle(self, *args, **options):
        counts = seed_categories()
        self.stdout.write(
            f"{counts['categories']} categories and {counts['time_limits']} time limits added"
        )
