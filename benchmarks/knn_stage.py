"""The kNN graph stage's own overhead: the Beam stage against ScaNN alone, on the same vectors.

One process, three timings on ``--n`` seeded clustered unit vectors (``--dim``, default 384):

1. **core**: ``LoadedIndex.build`` over every row, then ``search`` of every row (what the stage
   does with one partition: ScaNN build, search, exact re-scoring, per-row lists);
2. **null job**: a FnApiRunner job that generates the same vectors in the pipeline and counts
   them (start-up and generation);
3. **stage job**: the same job with :class:`transforms.knn_graph.NeighbourGraph` in between.

Overhead of the stage = stage job − null job − core (after a warm-up of each at 1000 rows, so
that imports and ScaNN's op loading are not counted). The stage job runs first, so the process's
peak RSS right after it (``stage_job_peak_rss_bytes``) is the stage's. ``--partition_rows``,
``--brute_force_max_rows`` and ``--shuffle_dir`` set the stage's :class:`NeighbourConfig`
(``auto``: a temporary directory, as the pipeline's ``--knn_shuffle_dir auto`` on FnApiRunner),
e.g. the 1M layout scaled down by 10: ``--n 300000 --partition_rows 30000
--brute_force_max_rows 10000 --shuffle_dir auto``; the core timing is always one index. Usage::

    python benchmarks/knn_stage.py --n 100000 [--dim 384] [--partition_rows R]
        [--brute_force_max_rows B] [--shuffle_dir DIR|auto] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import finish  # noqa: E402

CHUNK = 1000  # vectors generated per input element
CLUSTERS = 50


def chunk_rows(chunk: int, dim: int) -> list[tuple[str, np.ndarray]]:
    """Seeded rows ``(id, unit vector)`` of input element ``chunk`` (clustered)."""
    centres = np.random.default_rng(0).normal(size=(CLUSTERS, dim)) * 2
    rng = np.random.default_rng(chunk + 1)
    x = (centres[rng.integers(0, CLUSTERS, CHUNK)] + rng.normal(size=(CHUNK, dim))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return [(f"doc-{chunk * CHUNK + i:09d}", x[i]) for i in range(CHUNK)]


def time_core(n: int, dim: int) -> dict[str, float]:
    """ScaNN build and search of every row, without Beam."""
    from transforms.neighbours import LoadedIndex, NeighbourConfig, search

    rows = [row for chunk in range(n // CHUNK) for row in chunk_rows(chunk, dim)]
    ids, vectors = [r[0] for r in rows], np.stack([r[1] for r in rows])
    config = NeighbourConfig()
    start = time.perf_counter()
    index = LoadedIndex.build(ids, vectors, config)
    built = time.perf_counter()
    results = search(index, ids, vectors, config.num_neighbours, config.query_batch_size)
    done = time.perf_counter()
    assert len(results) == len(ids)
    return {"core_build_s": built - start, "core_search_s": done - built}


def time_job(n: int, dim: int, config: Any = None) -> float:
    """Wall time of a FnApiRunner job: generate → (graph with ``config``, if any) → count."""
    import apache_beam as beam

    from transforms.knn_graph import NeighbourGraph

    start = time.perf_counter()
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        rows = pipeline | beam.Create(range(n // CHUNK)) | beam.FlatMap(chunk_rows, dim)
        if config is not None:
            rows = rows | NeighbourGraph(config)
        _ = rows | beam.combiners.Count.Globally()
    return time.perf_counter() - start


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The three timings and the overhead."""
    from transforms.neighbours import NeighbourConfig

    load_start = os.getloadavg()[0]
    shuffle_dir = tempfile.mkdtemp(prefix="knn-stage-") if args.shuffle_dir == "auto" else args.shuffle_dir
    config = NeighbourConfig(
        partition_rows=args.partition_rows, brute_force_max_rows=args.brute_force_max_rows, shuffle_dir=shuffle_dir
    )
    time_core(CHUNK, args.dim), time_job(CHUNK, args.dim, config)  # warm-up: imports, ScaNN ops
    stage_s = time_job(args.n, args.dim, config)
    stage_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.shuffle_dir == "auto":
        shutil.rmtree(shuffle_dir, ignore_errors=True)
    core = time_core(args.n, args.dim)
    null_s = time_job(args.n, args.dim)
    core_s = core["core_build_s"] + core["core_search_s"]
    return {
        "n": args.n,
        "dim": args.dim,
        "partition_rows": args.partition_rows,
        "brute_force_max_rows": args.brute_force_max_rows,
        "shuffle_dir": args.shuffle_dir,
        "stage_job_peak_rss_bytes": stage_peak,
        **core,
        "null_job_s": null_s,
        "stage_job_s": stage_s,
        "stage_overhead_s": stage_s - null_s - core_s,
        "stage_overhead_ms_per_doc": 1000.0 * (stage_s - null_s - core_s) / args.n,
        "load_average_1m_start": load_start,
        "load_average_1m_end": os.getloadavg()[0],
    }


def _default_config() -> Any:
    from transforms.neighbours import NeighbourConfig

    return NeighbourConfig()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and prints its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="rows (a multiple of 1000)")
    parser.add_argument("--dim", type=int, default=384)
    defaults = _default_config()
    parser.add_argument("--partition_rows", type=int, default=defaults.partition_rows)
    parser.add_argument("--brute_force_max_rows", type=int, default=defaults.brute_force_max_rows)
    parser.add_argument("--shuffle_dir", default="", help="'' (Beam's shuffle), a directory, or auto")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if args.n < CHUNK or args.n % CHUNK:
        parser.error(f"--n {args.n} must be a positive multiple of {CHUNK}; pass e.g. --n 100000")
    figures = measure(args)
    print(
        f"n={figures['n']} d={figures['dim']}: ScaNN build {figures['core_build_s']:.1f} s + search "
        f"{figures['core_search_s']:.1f} s; null job {figures['null_job_s']:.1f} s, stage job "
        f"{figures['stage_job_s']:.1f} s: overhead {figures['stage_overhead_s']:.1f} s "
        f"({figures['stage_overhead_ms_per_doc']:.3f} ms/doc); stage job peak RSS "
        f"{figures['stage_job_peak_rss_bytes'] / 2**30:.2f} GiB; load {figures['load_average_1m_start']:.1f} "
        f"→ {figures['load_average_1m_end']:.1f}"
    )
    finish(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
