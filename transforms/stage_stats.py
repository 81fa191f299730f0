"""Per-stage row counts and timings, gathered in the data so that every runner reports them.

For each named stage output, every element increments the Beam counter ``stage/<name>/rows``
(runners that collect metrics, e.g. Dataflow, show it live) and is stamped with the wall time
it passed; a global combine keeps ``(rows, first, last)``. Beam's DaskRunner collects no metrics,
so ``summary.json`` takes its figures from these combines, not from counters. When a stage's
combine finishes, one log line says so (``stage embed: 20000 rows, first at 3.1 s, done at
80.4 s``): on a local runner the console shows the stages in the order they end.

Times are seconds since the pipeline was built, measured where the elements pass (the worker's
clock). Stages are fused and stream into each other, so ``first``/``done`` say when a stage's
output started and finished flowing; the gap between consecutive ``done`` times is where the
critical path spent its time.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.dead_letter import METRICS_NAMESPACE

_LOGGER = logging.getLogger(__name__)


class StageClockFn(beam.CombineFn):
    """Stamps → ``{"rows", "first", "last"}`` (``first``/``last`` ``None`` for no rows)."""

    def create_accumulator(self) -> tuple[int, float, float]:
        return 0, float("inf"), float("-inf")

    def add_input(self, accumulator: tuple, stamp: float) -> tuple:
        rows, first, last = accumulator
        return rows + 1, min(first, stamp), max(last, stamp)

    def merge_accumulators(self, accumulators) -> tuple:
        rows, first, last = 0, float("inf"), float("-inf")
        for more, earliest, latest in accumulators:
            rows, first, last = rows + more, min(first, earliest), max(last, latest)
        return rows, first, last

    def extract_output(self, accumulator: tuple) -> dict[str, Any]:
        rows, first, last = accumulator
        if not rows:
            return {"rows": 0, "first": None, "last": None}
        return {"rows": rows, "first": first, "last": last}


def stage_entry(clock: Mapping[str, Any], name: str, built_at: float) -> dict[str, Any]:
    """One stage's summary entry; logs the stage's end line.

    >>> stage_entry({"rows": 2, "first": 101.0, "last": 103.5}, "embed", 100.0)["done_s"]
    3.5
    """
    def since(stamp: float | None) -> float | None:
        return None if stamp is None else round(stamp - built_at, 3)

    entry = {
        "stage": name,
        "rows": int(clock["rows"]),
        "first_s": since(clock["first"]),
        "done_s": since(clock["last"]),
    }
    _LOGGER.info(
        "stage %s: %d rows, first at %s s, done at %s s",
        name, entry["rows"], entry["first_s"], entry["done_s"],
    )  # fmt: skip
    return entry


class _Stamp(beam.DoFn):
    def __init__(self, name: str):
        self._name = name
        self._rows = Metrics.counter(METRICS_NAMESPACE, f"stage/{name}/rows")

    def process(self, _element: Any):
        self._rows.inc()
        yield time.time()


class StageStats(beam.PTransform):
    """``{stage name: PCollection}`` → one list of stage entries, in the dict's order."""

    def __init__(self, built_at: float):
        super().__init__()
        self._built_at = built_at

    def expand(self, stages: Mapping[str, beam.PCollection]) -> beam.PCollection:
        built_at = self._built_at
        order = {name: i for i, name in enumerate(stages)}
        entries = [
            pcoll
            | f"Stamp_{name}" >> beam.ParDo(_Stamp(name))
            | f"Clock_{name}" >> beam.CombineGlobally(StageClockFn())
            | f"Entry_{name}" >> beam.Map(stage_entry, name, built_at)
            for name, pcoll in stages.items()
        ]
        return (
            tuple(entries)
            | "AllStages" >> beam.Flatten()
            | "StageList" >> beam.combiners.ToList()
            | "StageOrder" >> beam.Map(lambda found: sorted(found, key=lambda e: order[e["stage"]]))
        )
