"""Shared plumbing for the benchmarks: timing, and one results file.

Every benchmark reports CivicGrid's figure beside a reference measured in the
same run on the same machine, and their ratio (CivicGrid ÷ reference, lower is
better), because a bare time on a shared, noisy machine means little.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
DATA = ROOT / "bench" / ".data"

_rows: list[dict] = []


def setup_django() -> None:
    """Configure Django for a benchmark process (its own SQLite file unless DATABASE_URL)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "civicgrid.settings")
    DATA.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("DATABASE_URL"):
        os.environ.setdefault("SQLITE_PATH", str(DATA / "bench.sqlite3"))
    import django

    django.setup()


def best_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Seconds per call of ``fn``: the best of ``repeat`` rounds of ``number`` calls.

    The minimum is the figure least disturbed by the other tenants of a noisy
    machine; both sides of a ratio are measured the same way.
    """
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def interleaved(
    a: Callable[[], object], b: Callable[[], object], *, rounds: int = 7, number: int = 1
):
    """Best seconds per call of ``a`` and of ``b``, measured in alternating rounds
    so that a burst of load on the machine hits both alike."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(best_of(a, repeat=1, number=number))
        tb.append(best_of(b, repeat=1, number=number))
    return min(ta), min(tb)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def record(
    name: str,
    *,
    value: float,
    unit: str,
    reference: float,
    reference_name: str,
    goal: float | None = None,
    note: str = "",
) -> dict:
    """Keep one result; ``ratio`` is value ÷ reference (both per operation)."""
    row = {
        "name": name,
        "value": value,
        "unit": unit,
        "reference": reference,
        "reference_name": reference_name,
        "ratio": value / reference if reference else None,
        "goal": goal,
        "note": note,
    }
    _rows.append(row)
    ratio = f"{row['ratio']:.2f}×" if row["ratio"] is not None else "-"
    goal_txt = f" (goal ≤ {goal}×)" if goal else ""
    print(
        f"  {name}: {value:.6g} {unit} vs {reference_name} {reference:.6g} {unit} → {ratio}{goal_txt}",
        flush=True,
    )
    return row


def rows() -> list[dict]:
    return list(_rows)


def write_results(new_rows: list[dict]) -> None:
    """Merge into bench/results.json by name (later benchmarks add to the file)."""
    existing: dict[str, dict] = {}
    if RESULTS.exists():
        try:
            existing = {r["name"]: r for r in json.loads(RESULTS.read_text())["results"]}
        except (ValueError, KeyError, TypeError):
            existing = {}
    for row in new_rows:
        existing[row["name"]] = row
    RESULTS.write_text(
        json.dumps({"results": list(existing.values())}, ensure_ascii=False, indent=2) + "\n"
    )


def print_table(table_rows: list[dict]) -> None:
    header = (
        f"{'benchmark':<48} {'value':>12} {'reference':>12} {'unit':<10} {'ratio':>7} {'goal':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in table_rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        goal = f"{r['goal']:g}" if r.get("goal") else ""
        print(
            f"{r['name']:<48} {r['value']:>12.4g} {r['reference']:>12.4g} {r['unit']:<10} {ratio:>7} {goal:>6}"
        )
