from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from cases.demo import remove_cases, seed_demo_cases
from core.errors import DomainError
from geo.demo import DEMO_SEED, seed_demo_city
from geo.models import Area
from portal.demo import seed_demo_resident


class Command(BaseCommand):
    help = (
        "Load the demo city (云溪区, a fictional district: 3 streets, about 10 communities, "
        "about 300 grids, buildings, grid staff, departments, one demo account per role and a "
        "few hundred cases in every state), "
        "deterministic from --seed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=DEMO_SEED, help=f"default {DEMO_SEED}")
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing (and succeed) when the database already holds areas",
        )
        group.add_argument(
            "--force",
            action="store_true",
            help=(
                "remove every case, area, building, grid assignment, department, membership "
                "and field-staff user first"
            ),
        )

    def handle(self, *args, seed: int, if_empty: bool, force: bool, **options):
        # Checked before generating, so `make run` on a loaded database is instant.
        existing = Area.objects.count()
        if existing and if_empty:
            self.stdout.write(f"The database already holds {existing} areas; demo city not loaded.")
            return
        if existing and not force:
            raise CommandError(
                f"The database already holds {existing} areas. Use --force to replace them "
                "with the demo city, or --if-empty to leave them."
            )
        try:
            with transaction.atomic():
                if force:
                    remove_cases()
                result = seed_demo_city(seed=seed, force=force)
                cases = seed_demo_cases(seed=seed) if result.created else None
                if result.created:
                    seed_demo_resident()
        except DomainError as exc:
            raise CommandError(
                f"The demo city was not loaded, nothing was written: {exc}"
            ) from None
        if not result.created:
            raise CommandError(
                f"The database already holds {result.existing_areas} areas; nothing was written."
            )
        replaced = f" (replacing {result.existing_areas} areas)" if result.existing_areas else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo city loaded from seed {seed}{replaced}: {result.areas} areas of which "
                f"{result.grids} grids, {result.buildings} buildings, {result.people} grid staff, "
                f"{result.departments} departments, {result.memberships} memberships, "
                f"{len(result.accounts)} new demo accounts (manage.py demo_logins lists them), "
                f"{cases.cases} cases with {cases.events} timeline entries."
            )
        )
