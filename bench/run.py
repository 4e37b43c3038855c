"""``make bench``: run every benchmark module in bench/, print one table, write results.json.

Each module named ``bench_*.py`` defines ``run() -> None`` and reports through
``bench.common.record``. ``python bench/run.py locate`` runs only the modules
whose name contains ``locate``. The modules now: bench_import, bench_locate,
bench_ingest (report ingest over HTTP, a few minutes) and bench_case_list
(case list over generated cases; ``--cases N`` for fewer than 1,000,000,
e.g. ``python bench/run.py case_list --cases 100000``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import common  # noqa: E402


def main(argv: list[str]) -> int:
    common.setup_django()
    wanted = argv[1:]
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if wanted:
        modules = [m for m in modules if any(w in m for w in wanted)]
    for name in modules:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        module.run()
    results = common.rows()
    common.write_results(results)
    common.print_table(results)
    print(f"\nwritten: {common.RESULTS.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
