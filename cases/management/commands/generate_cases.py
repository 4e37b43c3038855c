"""``manage.py generate_cases``: realistic cases with their timelines, in bulk (cases.generate)."""

from __future__ import annotations

import os
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from cases.generate import DEFAULT_BATCH, GenerationError, generate_cases


class Command(BaseCommand):
    help = (
        "Generate realistic cases in every state of the workflow, each with its timeline, in "
        "the grids and classes already in the database (load a city first, e.g. seed_demo). "
        "Deterministic from --seed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=1_000_000, help="default 1,000,000")
        parser.add_argument(
            "--days", type=float, default=365, help="spread over the last D days (default 365)"
        )
        parser.add_argument("--seed", type=int, default=1, help="default 1")
        parser.add_argument(
            "--batch",
            type=int,
            default=DEFAULT_BATCH,
            help=f"cases per transaction (default {DEFAULT_BATCH})",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=min(2, os.cpu_count() or 1),
            help="processes building and writing batches (default: 2, or 1 on one core)",
        )
        parser.add_argument(
            "--area", default="", help="only grids whose code starts with this (default: all)"
        )
        parser.add_argument(
            "--no-notices", action="store_true", help="write no notices (task, supervision …)"
        )

    def handle(self, *args, count, days, seed, batch, workers, area, no_notices, **options):
        problems = []
        if count < 1:
            problems.append(f"--count must be at least 1, not {count}")
        if not days > 0:
            problems.append(f"--days must be more than 0, not {days:g}")
        if batch < 1:
            problems.append(f"--batch must be at least 1, not {batch}")
        if workers < 1:
            problems.append(f"--workers must be at least 1, not {workers}")
        if area and (not area.isdigit() or len(area) > 14):
            problems.append(f"--area is a code prefix of up to 14 digits, not {area!r}")
        if problems:
            raise CommandError("; ".join(problems))
        bar = tqdm(
            total=count,
            unit="case",
            unit_scale=True,
            disable=options.get("verbosity", 1) < 1,
            file=self.stderr._out,
        )

        started, rows = time.perf_counter(), [0]

        def progress(cases: int, events: int, notices: int) -> None:
            rows[0] += cases + events + notices
            elapsed = time.perf_counter() - started
            bar.set_postfix_str(f"{rows[0] / elapsed:,.0f} rows/s", refresh=False)
            bar.update(cases)

        try:
            result = generate_cases(
                count=count,
                days=days,
                seed=seed,
                batch=batch,
                workers=workers,
                area_prefix=area,
                notices=not no_notices,
                progress=progress,
            )
        except GenerationError as exc:
            raise CommandError(f"No cases were generated: {exc}") from None
        finally:
            bar.close()
        states = ", ".join(f"{state} {n:,}" for state, n in sorted(result.states.items()))
        self.stdout.write(
            self.style.SUCCESS(
                f"Generated {result.cases:,} cases with {result.events:,} timeline entries and "
                f"{result.notices:,} notices in {result.seconds:.1f} s: "
                f"{result.cases_per_second:,.0f} cases/s, "
                f"{result.events / result.seconds if result.seconds else 0:,.0f} timeline "
                f"entries/s, {result.rows_per_second:,.0f} rows/s."
            )
        )
        self.stdout.write(f"States: {states}.")
