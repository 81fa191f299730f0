"""Cost of running LFs under a time budget (``--lf_timeout_s``) against running them inline.

Applies the bundled YouTube demo LFs to the demo comments with
:class:`transforms.core.lf_guard.GuardedLFs`: without the budget (``--lf_timeout_s 0``,
``inline``), with it one row per hand-off to the helper thread (``budget``: the apply stage
before batching) and with it in batches of :data:`transforms.apply_lfs.BATCH_ROWS` rows per
hand-off (``budget_batched``: the apply stage now), and prints the time per row of each and the
overheads against ``inline``.

    python -m benchmarks.lf_guard [--repeats 3] [--json benchmarks/results/lf_guard.json]
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import sys
import time

from benchmarks.results_io import write_json
from transforms.apply_lfs import BATCH_ROWS
from transforms.core.document import lf_row
from transforms.core.lf_guard import GuardedLFs
from transforms.labeling_functions import load_lf_set

DEMO = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "youtube_spam")


def _rows() -> list:
    rows = []
    for path in sorted(glob.glob(os.path.join(DEMO, "data", "*.csv"))):
        with open(path, encoding="utf-8", newline="") as handle:
            for record in csv.DictReader(handle):
                fields = {k: v for k, v in record.items() if k not in ("COMMENT_ID", "CONTENT")}
                rows.append(lf_row({"id": record["COMMENT_ID"], "text": record["CONTENT"],
                                    "fields": fields}))  # fmt: skip
    return rows


def _seconds_per_row(guards: dict, rows: list, repeats: int) -> dict:
    """The best time per row of each ``(guard, rows per hand-off)``; they take turns (same load)."""
    best = {name: float("inf") for name in guards}
    for _ in range(repeats):
        for name, (guard, batch) in guards.items():
            started = time.perf_counter()
            for start in range(0, len(rows), batch):
                guard.apply_rows(rows[start : start + batch])
            best[name] = min(best[name], (time.perf_counter() - started) / len(rows))
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    lf_set = load_lf_set(os.path.join(DEMO, "labeling_functions.py"))
    rows = _rows()
    cardinality = len(lf_set.class_names) or 2
    guards = {
        "inline": (GuardedLFs(lf_set.lfs, cardinality, 0), BATCH_ROWS),
        "budget": (GuardedLFs(lf_set.lfs, cardinality, 10.0), 1),
        "budget_batched": (GuardedLFs(lf_set.lfs, cardinality, 10.0), BATCH_ROWS),
    }
    best = _seconds_per_row(guards, rows, args.repeats)
    for guard, _ in guards.values():
        guard.close()
    figures = {"rows": len(rows), "lfs": len(lf_set.lfs), "batch_rows": BATCH_ROWS}
    figures.update({f"{name}_us_per_row": round(t * 1e6, 1) for name, t in best.items()})
    for name in ("budget", "budget_batched"):
        figures[f"{name}_overhead_us_per_row"] = round(figures[f"{name}_us_per_row"] - figures["inline_us_per_row"], 1)
    for name, value in figures.items():
        print(f"{name}: {value}")
    print("reproduce: python -m benchmarks.lf_guard " + " ".join(sys.argv[1:]))
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
