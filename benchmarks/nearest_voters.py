"""The nearest-voters join (``transforms.extend.NearestVoters``) alone, on the FnApiRunner.

A seeded graph of ``--n`` documents × ``--k`` neighbours and ``--lfs`` vote columns (each vote
cast with probability ``--vote_rate``) is generated *inside* the pipeline (a ``Create`` of chunk
numbers and a ``FlatMap``), so that no ``Create`` of the data is timed; the stage's cost is the
wall time of the pipeline with the stage minus the same pipeline with the stage replaced by a
``Flatten`` of its inputs (both end in a count), the best of ``--repeats`` runs each.

To time another commit, copy this file into that worktree's ``benchmarks/`` and run it there.

Usage::

    python benchmarks/nearest_voters.py [--n 100000] [--k 20] [--lfs 12] [--repeats 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Iterator, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import finish  # noqa: E402

CHUNKS = 10


def rows(chunk: int, n: int, k: int, lfs: int, vote_rate: float, graph: bool) -> Iterator[Any]:
    """Chunk ``chunk`` of the graph rows (``graph``) or of the vote rows."""
    rng = np.random.default_rng([chunk, int(graph)])
    for i in range(chunk * n // CHUNKS, (chunk + 1) * n // CHUNKS):
        if graph:
            neighbours = [f"doc{j:09d}" for j in rng.integers(0, n, k)]
            yield f"doc{i:09d}", (neighbours, np.sort(rng.random(k).astype(np.float32))[::-1].copy())
        else:
            votes = np.where(rng.random(lfs) < vote_rate, rng.integers(0, 4, lfs), -1).astype(np.int8)
            yield f"doc{i:09d}", votes


def run_once(args: argparse.Namespace, with_stage: bool) -> tuple[float, int]:
    """``(wall seconds, output rows)`` of one pipeline."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter

    from transforms.extend import NearestVoters

    start = time.perf_counter()
    pipeline = beam.Pipeline(runner="FnApiRunner")
    inputs = {
        name: pipeline
        | f"Chunks_{name}" >> beam.Create(range(CHUNKS))
        | f"Rows_{name}" >> beam.FlatMap(rows, args.n, args.k, args.lfs, args.vote_rate, name == "neighbours")
        for name in ("neighbours", "votes")
    }
    out = inputs | NearestVoters() if with_stage else tuple(inputs.values()) | beam.Flatten()
    _ = (
        out
        | beam.combiners.Count.Globally()
        | beam.Map(lambda count: Metrics.counter("benchmark", "rows_out").inc(count))
    )
    result = pipeline.run()
    result.wait_until_finish()
    wall = time.perf_counter() - start
    counters = result.metrics().query(MetricsFilter().with_name("rows_out"))["counters"]
    return wall, sum(counter.committed for counter in counters)


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the stage's seconds and ms/doc (and writes ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--lfs", type=int, default=12)
    parser.add_argument("--vote_rate", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    null_s = min(run_once(args, with_stage=False)[0] for _ in range(args.repeats))
    stage_runs = [run_once(args, with_stage=True) for _ in range(args.repeats)]
    stage_s, documents_out = min(stage_runs)
    figures: dict[str, Any] = {
        "n": args.n, "k": args.k, "lfs": args.lfs, "vote_rate": args.vote_rate, "repeats": args.repeats,
        "null_pipeline_s": null_s, "stage_pipeline_s": stage_s, "stage_s": stage_s - null_s,
        "stage_ms_per_doc": (stage_s - null_s) / args.n * 1e3, "documents_out": documents_out,
        "load_average_1m_start": load_start, "load_average_1m_end": os.getloadavg()[0],
    }  # fmt: skip
    print(
        f"n={args.n} k={args.k} lfs={args.lfs}: pipeline with NearestVoters {stage_s:.2f} s, without "
        f"{null_s:.2f} s: the stage {stage_s - null_s:.2f} s = {figures['stage_ms_per_doc']:.3f} ms/doc "
        f"({documents_out} documents with a nearest voter); load {load_start:.1f} -> {figures['load_average_1m_end']:.1f}"
    )
    finish(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
