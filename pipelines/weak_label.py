"""The weak-labeling job: ``run(argv)`` = parse → preflight → ``build_pipeline`` → run.

    python -m pipelines.weak_label --input 'corpus/*.parquet' --output out/ \\
        --labeling_functions my_lfs.py --runner=FnApiRunner

Preflight (:mod:`pipelines.plan`) checks everything that can be checked before a worker starts
and fails with a message that names the bad value and the fix; ``RunPlan`` and ``preflight`` are
re-exported here. A run holds a lock on its ``--output`` (:mod:`pipelines.output_guard`); a
failure after preflight is one line, with the traceback in ``_staging-<run>/epoxy-beam.log``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.console import run_failure_line, set_verbose
from pipelines.options import parse_options
from pipelines.output_guard import OutputLock
from pipelines.outputs import write_outputs
from pipelines.plan import RunPlan, preflight
from pipelines.runners import IN_PROCESS_RUNNERS, knn_shuffle_dir, resolve_runner_name
from pipelines.summary import format_summary
from transforms.apply_lfs import LF_FAILURES_TAG, VOTES_TAG, ApplyLFs
from transforms.cache import CachePlan, EmbedWithCache, GraphWithCache
from transforms.cache_write import WriteCache
from transforms.coders import use_array_coder
from transforms.core.artifacts import text_hash
from transforms.core.lfs import lf_fingerprint
from transforms.core.votes import USER_INTERRUPT
from transforms.dead_letter import DEAD_LETTER_TAG
from transforms.documents import AttachGold, JoinRecords, embed_input
from transforms.embed import EmbedTexts
from transforms.exact_fallback import ExactFallback
from transforms.extend import NearestVoters
from transforms.io import DOCUMENTS_TAG, ReadCorpus
from transforms.knn_graph import NeighbourGraph
from transforms.knn_shuffle import remove_directory
from transforms.label import FitLabeler, LabelDocuments
from transforms.modality import EmbedNonText
from transforms.neighbours import NeighbourConfig

__all__ = ["RunFailed", "RunPlan", "build_pipeline", "main", "preflight", "run"]

RUN_LOG = "epoxy-beam.log"  # the traceback of a failed run, in its staging directory


def cache_plan(plan: RunPlan, neighbour_config: NeighbourConfig) -> CachePlan | None:
    """The ``--cache_dir`` entries usable by this run (``None`` without a cache)."""
    if not plan.options.cache_dir:
        return None
    return CachePlan.resolve(
        plan.options.cache_dir,
        plan.run_id,
        plan.model_fingerprint,
        plan.embedding_dim,
        neighbour_config,
        plan.options.num_shards,
        precision=plan.options.embed_precision,
    )


def snapshot_metadata(plan: RunPlan) -> dict[str, Any]:
    """What the ``iterate`` session needs besides the tables: options, LFs, classes, config."""
    return {
        "options": dataclasses.asdict(plan.options),
        "lf_names": list(plan.lf_names),
        "lf_spec": plan.lf_set.spec if plan.lf_set else "",
        "lf_source": plan.lf_set.source if plan.lf_set else "",  # data, for display only
        # iterate reuses a cached vote column only for an LF of the same fingerprint.
        "lf_fingerprints": {lf.name: lf_fingerprint(lf) for lf in plan.lf_set.lfs} if plan.lf_set else {},
        "class_names": list(plan.class_names),
        "labeler_config": dataclasses.asdict(plan.labeler_config()),
    }


def neighbour_config(plan: RunPlan, shuffle_dir: str = "") -> NeighbourConfig:
    """The kNN graph's configuration from the options (``shuffle_dir``: :func:`knn_shuffle_dir`)."""
    opts = plan.options
    return NeighbourConfig(
        num_neighbours=opts.num_neighbours,
        partition_rows=opts.partition_rows,
        spill=opts.spill,
        shuffle_dir=shuffle_dir,
    )


@dataclasses.dataclass(frozen=True)
class Indexed:
    """What the embed-and-index step gives the rest of the job.

    Attributes:
        docs: The documents that got a vector (a non-text stage dead-letters the others).
        embeddings: ``(id, unit vector)`` of every document in ``docs``.
        neighbours: ``(id, (neighbour ids, similarities))``: the kNN graph.
        embedded: One element per document the model (or vector field) embedded (counted).
        dead_letters: The step's dead letters (non-text rows without a usable vector).
        cache_hits: ``(id, vector)`` taken from the cache, ``None`` without a cache.
        cache_entries: With a cache, what :class:`WriteCache` stores: ``new`` ``(hash,
            vector)`` and ``hashes`` ``(id, content hash)``; ``None`` without a cache.
    """

    docs: beam.PCollection
    embeddings: beam.PCollection
    neighbours: beam.PCollection
    embedded: beam.PCollection
    dead_letters: tuple[beam.PCollection, ...] = ()
    cache_hits: beam.PCollection | None = None
    cache_entries: dict[str, beam.PCollection] | None = None


def embed_and_index(
    docs: beam.PCollection, plan: RunPlan, cache: CachePlan | None, config: NeighbourConfig
) -> Indexed:
    """Embeds the documents of any modality (through the cache when there is one) and builds
    the kNN graph with ``config`` (reusing the cached one's rows that are still valid)."""
    dead: tuple[beam.PCollection, ...] = ()
    if plan.modality.non_text:
        embedded = docs | "EmbedNonText" >> EmbedNonText(plan.modality)
        docs, dead = embedded["documents"], (embedded[DEAD_LETTER_TAG],)
    else:
        texts = docs | "EmbedInput" >> beam.Map(embed_input)
        embed_config = plan.embed_config()
        if cache is None:
            embeddings = texts | "Embed" >> EmbedTexts(embed_config)
            neighbours = embeddings | "Neighbours" >> NeighbourGraph(config)
            return Indexed(docs, embeddings, neighbours, embedded=embeddings)
        embedded = dict(texts | "EmbedWithCache" >> EmbedWithCache(embed_config, cache))
        embedded["hashes"] = texts | "TextHashes" >> beam.MapTuple(
            lambda doc_id, text: (doc_id, text_hash(text))
        )
    if cache is None:
        neighbours = embedded["embeddings"] | "Neighbours" >> NeighbourGraph(config)
    else:
        graph_inputs = {"embeddings": embedded["embeddings"], "hashes": embedded["hashes"]}
        neighbours = graph_inputs | "NeighboursWithCache" >> GraphWithCache(cache)
    return Indexed(
        docs,
        embedded["embeddings"],
        neighbours,
        embedded=embedded["embedded"],
        dead_letters=dead,
        cache_hits=None if cache is None else embedded["hits"],
        cache_entries=None if cache is None else {"new": embedded["new"], "hashes": embedded["hashes"]},
    )


def build_pipeline(pipeline: beam.Pipeline, plan: RunPlan) -> None:
    """Adds every stage of the job to ``pipeline``."""
    use_array_coder()  # per-document NumPy arrays cross stages as raw bytes, not pickles
    corpus, docs, dead_letters = _read_documents(pipeline, plan)
    all_docs = docs  # every document read, also those a non-text stage dead-letters (row counts)
    config = neighbour_config(plan, knn_shuffle_dir(plan.options.knn_shuffle_dir, pipeline.runner, plan.run_id))
    cache = cache_plan(plan, config)
    for problem in cache.problems if cache is not None else ():
        print(f"epoxy-beam: warning: {problem}", file=sys.stderr)
    indexed = embed_and_index(docs, plan, cache, config)
    docs, embeddings, neighbours = indexed.docs, indexed.embeddings, indexed.neighbours
    dead_letters.extend(indexed.dead_letters)
    applied = docs | "ApplyLFs" >> ApplyLFs(plan.vote_source())
    dead_letters.append(applied[DEAD_LETTER_TAG])
    if cache is not None:
        _ = {
            **indexed.cache_entries,
            "hits": indexed.cache_hits,
            "embedded": indexed.embedded,
            "graph": neighbours,
            "docs": docs,
            "votes": applied[VOTES_TAG],
        } | "WriteCache" >> WriteCache(cache, plan.lf_names, snapshot_metadata(plan))
    nearest = _nearest_voters(plan, neighbours, applied[VOTES_TAG], embeddings)
    joined = {
        "docs": docs,
        "votes": applied[VOTES_TAG],
        "nearest": nearest,
        "embeddings": embeddings,
    } | "JoinRecords" >> JoinRecords(len(plan.lf_names))
    dead_letters.append(joined[DEAD_LETTER_TAG])
    records = joined["records"]

    fit = records | "Fit" >> FitLabeler(plan.lf_names, plan.labeler_config())
    labels = records | "Label" >> LabelDocuments(fit["fitted"], plan.class_names)
    write_outputs(
        plan,
        labels=labels,
        dead_letters=tuple(dead_letters) | "AllDeadLetters" >> beam.Flatten(),
        lf_failures=applied[LF_FAILURES_TAG],
        docs=all_docs,
        fit=fit,
        embedded=indexed.embedded,
        embedding_cache_hits=indexed.cache_hits,
        cache_warnings=() if cache is None else cache.problems,
        stages={
            "read": corpus[DOCUMENTS_TAG],
            "embed": embeddings,
            "neighbours": neighbours,
            "apply_lfs": applied[VOTES_TAG],
            "join": records,
            "fit": fit["fitted"],
            "label": labels,
        },
    )


def _read_documents(pipeline: beam.Pipeline, plan: RunPlan) -> tuple[Any, beam.PCollection, list[beam.PCollection]]:
    """Reads the corpus and the dev set, and attaches the dev labels to the documents.

    Returns:
        ``(corpus read, documents with gold labels and splits, the reads' dead letters)``.
    """
    corpus = pipeline | "ReadCorpus" >> ReadCorpus(plan.corpus_source())
    dead_letters = [corpus[DEAD_LETTER_TAG]]
    dev_docs = None
    dev = plan.dev_source()
    if dev is not None:
        dev_read = pipeline | "ReadDev" >> ReadCorpus(dev)
        dead_letters.append(dev_read[DEAD_LETTER_TAG])
        dev_docs = dev_read[DOCUMENTS_TAG]
    docs = corpus[DOCUMENTS_TAG] | "AttachGold" >> AttachGold(dev_docs, plan.options.holdout_fraction)
    return corpus, docs, dead_letters


def _nearest_voters(
    plan: RunPlan, neighbours: beam.PCollection, votes: beam.PCollection, embeddings: beam.PCollection
) -> beam.PCollection:
    """Each document's nearest voters from the graph, exact for small LFs with ``--fallback_max_voters``."""
    nearest = {"neighbours": neighbours, "votes": votes} | NearestVoters()
    if plan.options.fallback_max_voters > 0:
        nearest = {"nearest": nearest, "votes": votes, "embeddings": embeddings} | (
            "ExactFallback" >> ExactFallback(len(plan.lf_names), plan.options.fallback_max_voters)
        )
    return nearest


def run(argv: Sequence[str] | None = None, wait: bool = True) -> Any:
    """Parses ``argv``, runs preflight, builds and runs the pipeline.

    Args:
        argv: Command-line arguments; unknown ``--flags`` are Beam pipeline options.
        wait: Wait for the pipeline to finish (``False`` for Flex Template launches).

    Returns:
        The pipeline result.

    Raises:
        ValueError: From preflight, naming the bad value and the fix.
        RunFailed: When the pipeline fails; its message is one line, and the traceback is in
            the log file it names (under the staging directory).
    """
    options, beam_args = parse_options(argv)
    set_verbose(options.verbose)
    plan = preflight(options)
    lock = OutputLock(options.output, plan.run_id).acquire()
    pipeline = None
    try:
        pipeline = beam.Pipeline(options=PipelineOptions(resolve_runner_name(beam_args), save_main_session=False))
        build_pipeline(pipeline, plan)
        result = pipeline.run()
        if wait:
            result.wait_until_finish()
    except Exception as error:  # noqa: BLE001 - any run-time failure becomes one line + a log.
        log_path = FileSystems.join(plan.staging_dir, RUN_LOG)
        raise RunFailed(run_failure_line(error, log_path), log_path) from error
    finally:
        lock.release()  # without wait, the lock covers the launch only (remote outputs: none)
        if pipeline is not None and (wait or isinstance(pipeline.runner, IN_PROCESS_RUNNERS)):
            # Each kNN join removes its own files; this removes the run's directory (and what a
            # failed run left). A launched remote job (no wait) may still be reading it.
            remove_directory(knn_shuffle_dir(options.knn_shuffle_dir, pipeline.runner, plan.run_id))
    if wait:
        with FileSystems.open(FileSystems.join(options.output, "summary.json")) as handle:
            print(format_summary(json.load(handle), options.output))
    return result


class RunFailed(RuntimeError):
    """A run that failed after preflight; ``log_path`` holds the full traceback."""

    def __init__(self, line: str, log_path: str) -> None:
        super().__init__(line)
        self.log_path = log_path


def _interrupt(signum: int, frame: Any) -> None:
    """SIGINT: marks the interrupt as the user's (LFs then do not swallow it) and stops."""
    USER_INTERRUPT.set()
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: a preflight error prints one line and exits 2, a failed run 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    signal.signal(signal.SIGINT, _interrupt)
    try:
        run(sys.argv[1:] if argv is None else argv)
    except ValueError as error:
        print(f"epoxy-beam: error: {error}", file=sys.stderr)
        return 2
    except RunFailed as error:
        print(str(error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("epoxy-beam: interrupted; nothing was committed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
