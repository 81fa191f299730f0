"""End-to-end pipeline time vs embedding-only time, at corpus scale.

One run writes a seeded corpus of ``--n`` texts (a synthetic four-topic news-like generator by
default, or a WRENCH set repeated and perturbed to ``--n`` with ``--data``), twelve keyword LFs
and a labelled dev set, then

1. runs the real job (``python -m pipelines.weak_label``, in a child process) end to end;
2. embeds the same texts with the same SavedModel in a second child process, with the project's
   own handler (``transforms.embed.TextEmbeddingModelHandler``: RunInference's largest batch,
   length-sorted model calls), nothing else;

and prints the ratio of the two wall times (both include interpreter start, imports and model
load), the non-embedding cost per document ``(end_to_end - embedding_only) / n``, the per-stage
times from ``summary.json`` (``transforms.stage_stats``), the peak RSS of the job's process tree
(sampled with psutil, Dask workers included; else the largest child's ``ru_maxrss``) and the
command that reproduces the run. ``--stand_in_embedder`` swaps the model for a tiny 384-d
hashed-trigram SavedModel (``transforms.models.tiny``), so that the pipeline's own cost can be
measured at large n. ``--runner DaskRunner --dask_workers K`` starts a ``distributed.LocalCluster``
of K single-threaded worker processes and runs the job on it.

Usage::

    python benchmarks/pipeline_scale.py --n 20000 [--stand_in_embedder] [--model DIR]
        [--runner FnApiRunner|DaskRunner] [--dask_workers K] [--data DIR] [--work DIR]
        [--job_args 'FLAGS'] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks.corpus_gen import (  # noqa: E402
    CLASS_NAMES,
    keyword_lf_source,
    synthetic_rows,
    wrench_class_names,
    wrench_rows,
)
from benchmarks.results_io import finish  # noqa: E402

DEV_ROWS = 1000
SAMPLE_SECONDS = 0.25


class TreeMemory:
    """Peak summed RSS of this process's children (recursively), sampled in a thread.

    ``timeline`` holds ``(seconds since start, bytes)`` samples (empty without psutil).
    """

    def __init__(self) -> None:
        self.peak_bytes = 0
        self.timeline: list[tuple[float, int]] = []
        self.how = "psutil tree sampled every 0.25 s"
        self._stop = threading.Event()
        try:
            import psutil

            self._root = psutil.Process()
        except ImportError:
            self._root = None
            self.how = "largest child's ru_maxrss (psutil not installed)"
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        start = time.perf_counter()
        while not self._stop.is_set():
            total = 0
            for child in self._root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, total)
            self.timeline.append((time.perf_counter() - start, total))
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> "TreeMemory":
        if self._root is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._root is not None:
            self._thread.join()
        else:
            self.peak_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def write_inputs(work: str, args: argparse.Namespace) -> dict[str, Any]:
    """Writes the corpus (Parquet), its dev rows (a labelled subset of the corpus, merged by id)
    and the LF file; returns the job's input flags and text stats."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if args.data:
        rows, dev = wrench_rows(args.data, args.n, DEV_ROWS, args.seed)
        flags = ["--votes_field", "votes", "--class_names", ",".join(wrench_class_names(args.data))]
        columns = ("id", "text", "votes")
    else:
        rows = synthetic_rows(args.n, args.seed)
        dev = rows[:DEV_ROWS]
        lfs = os.path.join(work, "keyword_lfs.py")
        with open(lfs, "w", encoding="utf-8") as handle:
            handle.write(keyword_lf_source())
        flags = ["--labeling_functions", lfs, "--class_names", ",".join(CLASS_NAMES)]
        columns = ("id", "text")
    os.makedirs(os.path.join(work, "corpus"), exist_ok=True)
    texts = [row["text"] for row in rows]
    corpus = pa.table({column: [row[column] for row in rows] for column in columns})
    pq.write_table(corpus, os.path.join(work, "corpus", "part-00000.parquet"))
    dev_table = pa.table({"id": [row["id"] for row in dev], "text": [row["text"] for row in dev], "label": [row["label"] for row in dev]})
    pq.write_table(dev_table, os.path.join(work, "dev.parquet"))
    flags = ["--input", os.path.join(work, "corpus", "*.parquet"), "--dev_input", os.path.join(work, "dev.parquet"), *flags]
    return {
        "corpus": os.path.join(work, "corpus", "*.parquet"),
        "flags": flags,
        "mean_text_chars": float(np.mean([len(text) for text in texts])),
    }


def job_argv(inputs: dict[str, Any], model: str, output: str, runner_args: Sequence[str]) -> list[str]:
    """The weak-labeling job's command line for the benchmark corpus."""
    return [
        sys.executable, "-m", "pipelines.weak_label",
        *inputs["flags"],
        "--model", model,
        "--output", output,
        "--overwrite", "true",
        *runner_args,
    ]  # fmt: skip


@contextlib.contextmanager
def runner_args(args: argparse.Namespace) -> Iterator[list[str]]:
    """Beam runner flags; for ``DaskRunner`` a LocalCluster of ``--dask_workers`` processes."""
    if args.runner.lower() != "daskrunner":
        yield [f"--runner={args.runner}"]
        return
    import distributed

    with distributed.LocalCluster(
        n_workers=args.dask_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        yield ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"]


def timed_child(command: Sequence[str]) -> tuple[float, TreeMemory, str]:
    """Runs ``command`` from the repository root; returns (wall s, tree memory, stdout)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))}
    with TreeMemory() as memory:
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return wall, memory, done.stdout


def embed_only(corpus_glob: str, model: str) -> dict[str, float]:
    """Child mode: embeds the corpus texts with the project's handler; returns inner timings."""
    import glob

    import pyarrow.parquet as pq

    from transforms.embed import EmbedConfig

    texts = [t for path in sorted(glob.glob(corpus_glob)) for t in pq.read_table(path).column("text").to_pylist()]
    handler = EmbedConfig(model_path=model).handler()
    start = time.perf_counter()
    loaded = handler.load_model()
    loaded_at = time.perf_counter()
    batch = handler.batch_elements_kwargs()["max_batch_size"]
    rows = sum(len(handler.run_inference(texts[i : i + batch], loaded)) for i in range(0, len(texts), batch))
    done = time.perf_counter()
    assert rows == len(texts)
    return {"model_load_s": loaded_at - start, "embed_compute_s": done - loaded_at}


def stage_figures(summary: dict[str, Any], timeline: Sequence[tuple[float, int]], offset_s: float) -> dict[str, Any]:
    """Flat per-stage keys from ``summary.json``: rows, first/done seconds, and the peak RSS.

    ``stage_<name>_window_peak_rss_bytes`` is the largest sampled RSS between the previous
    stage's ``done`` and this one's (stage times + ``offset_s`` = seconds since the job started):
    where in the run the memory peaks.
    """
    figures: dict[str, Any] = {}
    previous = -offset_s
    for stage in sorted(summary.get("stages", ()), key=lambda stage: stage["done_s"]):
        name = stage["stage"]
        figures[f"stage_{name}_rows"] = stage["rows"]
        figures[f"stage_{name}_first_s"] = stage["first_s"]
        figures[f"stage_{name}_done_s"] = stage["done_s"]
        window = [rss for t, rss in timeline if previous + offset_s < t <= stage["done_s"] + offset_s]
        if window:
            figures[f"stage_{name}_window_peak_rss_bytes"] = max(window)
        previous = stage["done_s"]
    return figures


def stand_in_model(work: str) -> str:
    """The tiny 384-d SavedModel (built once per work directory)."""
    path = os.path.join(work, "stand_in_384")
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        from transforms.models.tiny import build_tiny_text_model

        build_tiny_text_model(path, dim=384)
    return path


def measure(args: argparse.Namespace, work: str) -> dict[str, Any]:
    """Writes the inputs, runs both children and returns the flat figures."""
    model = stand_in_model(work) if args.stand_in_embedder else os.path.abspath(args.model)
    inputs = write_inputs(work, args)
    output = os.path.join(work, "out")
    load_start = os.getloadavg()[0]
    with runner_args(args) as beam_args:
        command = job_argv(inputs, model, output, [*beam_args, *shlex.split(args.job_args)])
        e2e_s, e2e_memory, _ = timed_child(command)
    embed_command = [sys.executable, os.path.abspath(__file__), "--embed_only_child", inputs["corpus"], "--model", model]
    embed_s, embed_memory, embed_out = timed_child(embed_command)
    e2e_rss, embed_rss = e2e_memory.peak_bytes, embed_memory.peak_bytes
    inner = json.loads(embed_out.strip().splitlines()[-1])
    with open(os.path.join(output, "summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    return {
        "n": args.n,
        "corpus": args.data or "synthetic",
        "mean_text_chars": inputs["mean_text_chars"],
        "model": "stand-in tiny 384-d" if args.stand_in_embedder else model,
        "runner": args.runner,
        "dask_workers": args.dask_workers if args.runner.lower() == "daskrunner" else None,
        "end_to_end_s": e2e_s,
        "embedding_only_s": embed_s,
        "embedding_only_model_load_s": inner["model_load_s"],
        "embedding_only_compute_s": inner["embed_compute_s"],
        "ratio_end_to_end_to_embedding": e2e_s / embed_s,
        "non_embedding_ms_per_doc": 1000.0 * (e2e_s - embed_s) / args.n,
        "peak_rss_bytes": e2e_rss,
        "peak_rss_kb_per_doc": e2e_rss / 1024 / args.n,
        "embedding_only_peak_rss_bytes": embed_rss,
        "peak_rss_how": TreeMemory().how,
        "pipeline_wall_s": summary["run"]["wall_seconds"],
        "before_pipeline_s": e2e_s - summary["run"]["wall_seconds"],
        "coverage_before_extension": summary["coverage"]["before_extension"],
        "coverage_after_extension": summary["coverage"]["after_extension"],
        "labelled": summary["rows"]["labelled"],
        "dead_letter": summary["rows"]["dead_letter"],
        **stage_figures(summary, e2e_memory.timeline, e2e_s - summary["run"]["wall_seconds"]),
        "cpu_count": os.cpu_count(),
        "load_average_1m_start": load_start,
        "load_average_1m_end": os.getloadavg()[0],
        "job_command": shlex.join(command),
    }


def report(figures: dict[str, Any]) -> None:
    """Prints the headline figures."""
    print(
        f"n={figures['n']} ({figures['corpus']}, {figures['mean_text_chars']:.0f} chars/text), "
        f"model {figures['model']}, runner {figures['runner']}"
        + (f" with {figures['dask_workers']} workers" if figures["dask_workers"] else "")
    )
    print(
        f"end to end {figures['end_to_end_s']:.1f} s, embedding only {figures['embedding_only_s']:.1f} s "
        f"(model load {figures['embedding_only_model_load_s']:.1f} s, model calls "
        f"{figures['embedding_only_compute_s']:.1f} s): ratio {figures['ratio_end_to_end_to_embedding']:.2f}x, "
        f"non-embedding {figures['non_embedding_ms_per_doc']:.2f} ms/doc"
    )
    print(
        f"peak RSS of the job's process tree {figures['peak_rss_bytes'] / 2**30:.2f} GiB "
        f"({figures['peak_rss_kb_per_doc']:.1f} KiB/doc; {figures['peak_rss_how']}); embedding only "
        f"{figures['embedding_only_peak_rss_bytes'] / 2**30:.2f} GiB"
    )
    print(
        f"  {figures['before_pipeline_s']:.1f} s before the pipeline was built (interpreter, imports, "
        f"preflight), {figures['pipeline_wall_s']:.1f} s from then until summary.json"
    )
    stages = [key[len("stage_") : -len("_done_s")] for key in figures if key.startswith("stage_") and key.endswith("_done_s")]
    for name in stages:
        peak = figures.get(f"stage_{name}_window_peak_rss_bytes")
        print(
            f"  stage {name:<10} {figures[f'stage_{name}_rows']:>8} rows, first at "
            f"{figures[f'stage_{name}_first_s']} s, done at {figures[f'stage_{name}_done_s']} s"
            + ("" if peak is None else f", peak RSS since the stage before {peak / 2**30:.2f} GiB")
        )
    print(f"1-minute load average {figures['load_average_1m_start']:.1f} at start, {figures['load_average_1m_end']:.1f} at end")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="corpus rows")
    parser.add_argument("--stand_in_embedder", action="store_true", help="tiny 384-d SavedModel instead of --model")
    parser.add_argument("--model", default="models/all-MiniLM-L6-v2", help="text-embedding SavedModel dir")
    parser.add_argument("--runner", default="FnApiRunner", help="FnApiRunner, DirectRunner or DaskRunner")
    parser.add_argument("--dask_workers", type=int, default=2, help="LocalCluster worker processes (DaskRunner)")
    parser.add_argument("--data", default="", help="WRENCH dataset dir to repeat/perturb to --n (default: synthetic)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="", help="work directory (default: a temporary one, removed)")
    parser.add_argument("--job_args", default="", help="more flags for the job, e.g. '--knn_shuffle_dir none'")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--embed_only_child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n {args.n} must be >= 1; pass e.g. --n 20000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark (or, internally, the embedding-only child)."""
    args = parse_args(argv)
    if args.embed_only_child:
        print(json.dumps(embed_only(args.embed_only_child, args.model)))
        return 0
    work = args.work or tempfile.mkdtemp(prefix="pipeline_scale_")
    os.makedirs(work, exist_ok=True)  # a --work directory that does not exist yet
    try:
        figures = measure(args, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    report(figures)
    finish(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
