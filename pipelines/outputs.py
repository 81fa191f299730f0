"""The job's outputs: labels, dead letter, summary and model, staged then committed.

Layout under ``--output`` (local outputs reach these paths through ``current``, see
:mod:`pipelines.commit`)::

    labels/part-00000-of-00001.parquet   one row per labelled document, sorted by id
    errors/dead_letter-00000-of-00001.jsonl   every rejected row, with stage, cause and message
    summary.json                          counts, per-LF table, metrics (schema in README.md)
    report.html                           the run report: one self-contained page with plots
    model.json                            the fitted labeler (thresholds, label model, end model)
    _SUCCESS                              written last, by the commit step
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import StandardOptions

from pipelines.commit import publish
from pipelines.report import render_report
from pipelines.summary import RunCounts, build_summary
from transforms.apply_lfs import LF_OUTPUT_CAUSE
from transforms.dead_letter import DeadLetter
from transforms.report_inputs import ResolveExamples, confidence_histogram_fn, histogram_row
from transforms.write import WriteSortedShards, jsonl_bytes, labels_schema, parquet_bytes, write_file
from transforms.stage_stats import StageStats

if TYPE_CHECKING:
    from pipelines.plan import RunPlan

SUMMARY_FAILURE_SAMPLES = 5  # failing row ids per LF in summary.json (errors/ holds up to 20)


def _dead_letter_sort_key(row: Mapping[str, Any]) -> tuple:
    return (row["stage"], row["cause"], row["source"], row["doc_id"], row["message"])


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _summarise(
    plan: "RunPlan",
    *,
    origins: list,
    labelled: int,
    dead_by_cause: list,
    lf_failures: list,
    lf_failure_samples: list,
    eval_rows: list,
    fit: Mapping[str, Any],
    confidence: Any = None,
    examples: Sequence[Mapping[str, Any]] = (),
    run: Mapping[str, Any] | None = None,
    embedded: int = 0,
    embedding_cache_hits: int = 0,
    stages: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    counts = RunCounts(
        documents_by_origin=dict(origins),
        labelled=labelled,
        dead_letters=dict(dead_by_cause),
        lf_failures=dict(lf_failures),
        lf_failure_samples={
            lf: sorted(ids)[:SUMMARY_FAILURE_SAMPLES] for lf, ids in lf_failure_samples
        },
    )
    return build_summary(
        options=dataclasses.asdict(plan.options),
        class_names=plan.class_names,
        counts=counts,
        fitted=fit["fitted"],
        sample=fit["sample"],
        raw_stats=fit["raw_stats"],
        extended_stats=fit["stats"],
        eval_rows=eval_rows,
        model_fingerprint=plan.model_fingerprint,
        confidence=confidence,
        examples=examples,
        run=run,
        embedding={"embedded": embedded, "embedding_cache_hits": embedding_cache_hits},
        stages=stages,
    )


def _run_facts(runner: str, built_at: float) -> dict[str, Any]:
    """What the report says about the run itself, measured when the summary is assembled."""
    return {
        "runner": runner,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(built_at)),
        "wall_seconds": round(time.time() - built_at, 3),
    }


def check_run(
    summary: Mapping[str, Any], max_lf_failure_rate: float, max_dead_letter_rate: float = 1.0
) -> None:
    """Raises ``ValueError`` when the run must not be committed.

    Checks that every input row is accounted for, that at most ``max_dead_letter_rate`` of the
    input rows were dead-lettered, and that no LF failed on more than ``max_lf_failure_rate`` of
    the documents. Nothing is moved into ``--output`` when it raises.
    """
    rows = summary["rows"]
    if not rows["accounted"]:
        raise ValueError(
            f"{rows['accounting']}; nothing was committed. This is a bug, please report it with "
            "summary.json from the staging directory"
        )
    rows_read = max(rows["input"] + rows["dev_input"], 1)
    if rows["dead_letter"] > max_dead_letter_rate * rows_read:
        causes = sorted(rows["dead_letter_by_cause"].items(), key=lambda item: -item[1])
        raise ValueError(
            f"{rows['dead_letter']} of {rows_read} input rows "
            f"({rows['dead_letter'] / rows_read:.1%}) were dead-lettered, more than "
            f"--max_dead_letter_rate={max_dead_letter_rate} (mostly {dict(causes[:3])}); nothing "
            "was committed. See the staged errors/ for each row's cause and fix, fix the input "
            "or options, or raise --max_dead_letter_rate"
        )
    documents = max(rows["documents"], 1)
    failing = [lf for lf in summary["lfs"] if lf["failures"] / documents > max_lf_failure_rate]
    if failing:
        described = ", ".join(
            f"{lf['lf']!r} failed on {lf['failures']} of {documents} documents "
            f"({lf['failures'] / documents:.1%}; e.g. ids {lf['failure_sample_ids'][:3]})"
            for lf in failing
        )
        raise ValueError(
            f"LF failures above --max_lf_failure_rate={max_lf_failure_rate}: {described}; "
            "nothing was committed. See the lf_exception samples (traceback heads) in the staged "
            "errors/, fix the LF, or raise --max_lf_failure_rate"
        )


def commit(paths: Sequence[str], summary: Mapping[str, Any], plan: "RunPlan") -> str:
    """Checks the run, then publishes the staged files as ``--output`` (see pipelines.commit)."""
    check_run(summary, plan.options.max_lf_failure_rate, plan.options.max_dead_letter_rate)
    staging = plan.staging_dir
    relative = [path[len(staging) :].lstrip("/") for path in paths]
    return publish(staging, plan.options.output, plan.run_id, relative)


def write_outputs(
    plan: "RunPlan",
    *,
    docs: beam.PCollection,
    labels: beam.PCollection,
    dead_letters: beam.PCollection,
    lf_failures: beam.PCollection,
    fit: Mapping[str, beam.PCollection],
    embedded: beam.PCollection,
    embedding_cache_hits: beam.PCollection | None = None,
    cache_warnings: Sequence[str] = (),
    stages: Mapping[str, beam.PCollection] | None = None,
) -> beam.PCollection:
    """Writes every output to staging, summarises, and commits; returns the output path.

    Four steps: the tables (labels, dead letters), the summary's inputs, the summary with the
    files made from it (summary.json, report.html, model.json), then the commit.
    ``embedded`` and ``embedding_cache_hits`` hold one element per document embedded by the
    model and per embedding taken from the cache; only their counts are used.
    ``cache_warnings`` (corrupt cache files that were ignored and rebuilt) go into
    ``summary.json`` as ``run.cache_warnings``. ``stages`` names stage outputs whose row counts
    and timings go to ``summary.json`` (``stages``, see :mod:`transforms.stage_stats`); the
    labels write is added as ``write_labels``.
    """
    built_at = time.time()
    label_paths, dead_paths = _write_tables(plan, labels, dead_letters)
    singletons = _summary_inputs(plan, docs, labels, dead_letters, lf_failures, embedded)
    if stages is not None:
        singletons["stages"] = {**stages, "write_labels": label_paths} | "StageStats" >> StageStats(
            built_at
        )
    if embedding_cache_hits is not None:
        singletons["embedding_cache_hits"] = (
            embedding_cache_hits | "CountCacheHits" >> beam.combiners.Count.Globally()
        )
    if "examples" in fit:
        singletons["examples"] = docs | "ResolveExamples" >> ResolveExamples(fit["examples"])
    runner = _runner_name(labels.pipeline)
    run = {"runner": runner, "built_at": built_at, "cache_warnings": cache_warnings}
    summary = _summary(plan, labels.pipeline, singletons, fit, run)
    written = _write_summary_files(plan, summary, fit)
    return (
        (label_paths, dead_paths, *written)
        | "AllWritten" >> beam.Flatten()
        | "GatherWritten" >> beam.combiners.ToList()
        | "Commit"
        >> beam.Map(commit, summary=beam.pvalue.AsSingleton(summary), plan=plan)
    )


def _runner_name(pipeline: beam.Pipeline) -> str:
    return str(pipeline.options.view_as(StandardOptions).runner or "default")


def _write_tables(
    plan: "RunPlan", labels: beam.PCollection, dead_letters: beam.PCollection
) -> tuple[beam.PCollection, beam.PCollection]:
    """Step 1: the labels Parquet shards and the dead-letter JSONL, sorted, in staging."""
    staging = plan.staging_dir
    label_paths = labels | "WriteLabels" >> WriteSortedShards(
        directory=FileSystems.join(staging, "labels"),
        prefix="part",
        suffix="parquet",
        num_shards=plan.options.num_shards,
        serialise=lambda rows: parquet_bytes(rows, labels_schema(plan.class_names)),
        sort_key=lambda row: row["id"],
        shard_key=lambda row: row["id"],
    )
    dead_rows = dead_letters | "DeadLetterRows" >> beam.Map(DeadLetter.to_dict)
    dead_paths = dead_rows | "WriteDeadLetters" >> WriteSortedShards(
        directory=FileSystems.join(staging, "errors"),
        prefix="dead_letter",
        suffix="jsonl",
        num_shards=1,
        serialise=jsonl_bytes,
        sort_key=_dead_letter_sort_key,
        shard_key=lambda row: row["doc_id"] or row["source"],
    )
    return label_paths, dead_paths


def _summary_inputs(
    plan: "RunPlan",
    docs: beam.PCollection,
    labels: beam.PCollection,
    dead_letters: beam.PCollection,
    lf_failures: beam.PCollection,
    embedded: beam.PCollection,
) -> dict[str, beam.PCollection]:
    """Step 2: the singletons the summary is made of (counts, samples, histograms)."""
    input_dead = dead_letters | "InputRowDeadLetters" >> beam.Filter(
        lambda dead: dead.counts_as_input_row
    )
    return {
        "origins": docs
        | "DocumentOrigin" >> beam.Map(lambda doc: doc["origin"])
        | "CountByOrigin" >> beam.combiners.Count.PerElement()
        | "DocumentsByOrigin" >> beam.combiners.ToList(),
        "labelled": labels | "CountLabels" >> beam.combiners.Count.Globally(),
        "embedded": embedded | "CountEmbedded" >> beam.combiners.Count.Globally(),
        "lf_failure_samples": dead_letters
        | "LFFailureSamples"
        >> beam.Filter(lambda dead: bool(dead.lf) and dead.cause != LF_OUTPUT_CAUSE)
        | "SampleIds" >> beam.Map(lambda dead: (dead.lf, dead.doc_id))
        | "SampleIdsPerLF" >> beam.GroupByKey()
        | "SampleIdsList" >> beam.combiners.ToList(),
        "dead_by_cause": input_dead
        | "DeadCause" >> beam.Map(lambda dead: dead.counter_name)
        | "CountByCause" >> beam.combiners.Count.PerElement()
        | "DeadByCause" >> beam.combiners.ToList(),
        "lf_failures": lf_failures
        | "SumFailures" >> beam.CombinePerKey(sum)
        | "FailuresList" >> beam.combiners.ToList(),
        "eval_rows": labels
        | "EvalRows" >> beam.Filter(lambda row: row["gold"] is not None)
        | "GatherEvalRows" >> beam.combiners.ToList(),
        "confidence": labels
        | "HistogramRows" >> beam.Map(histogram_row)
        | "ConfidenceHistogram"
        >> beam.CombineGlobally(confidence_histogram_fn(plan.cardinality)),
    }


def _summary(
    plan: "RunPlan",
    pipeline: beam.Pipeline,
    singletons: Mapping[str, beam.PCollection],
    fit: Mapping[str, beam.PCollection],
    run: Mapping[str, Any],
) -> beam.PCollection:
    """Step 3a: the one summary dict, from the singletons and the fit's outputs.

    ``run`` holds ``runner``, ``built_at`` and ``cache_warnings``; the run's facts (wall time
    included) are taken when the summary is computed, at the end of the run.
    """
    side_inputs = {name: beam.pvalue.AsSingleton(pcoll) for name, pcoll in singletons.items()}
    side_inputs.update(
        {f"fit_{name}": beam.pvalue.AsSingleton(pcoll) for name, pcoll in fit.items()}
    )
    return (
        pipeline
        | "SummarySeed" >> beam.Create([None])
        | "Summarise"
        >> beam.Map(
            lambda _, **values: _summarise(
                plan,
                run={
                    **_run_facts(run["runner"], run["built_at"]),
                    "cache_warnings": list(run["cache_warnings"]),
                },
                fit={name[4:]: v for name, v in values.items() if name.startswith("fit_")},
                **{name: v for name, v in values.items() if not name.startswith("fit_")},
            ),
            **side_inputs,
        )
    )


def _write_summary_files(
    plan: "RunPlan", summary: beam.PCollection, fit: Mapping[str, beam.PCollection]
) -> tuple[beam.PCollection, ...]:
    """Step 3b: summary.json, report.html and model.json in staging; their paths."""
    staging = plan.staging_dir
    summary_path = summary | "WriteSummary" >> beam.Map(
        lambda value: write_file(FileSystems.join(staging, "summary.json"), _json_bytes(value))
    )
    report_path = summary | "WriteReport" >> beam.Map(
        lambda value: write_file(
            FileSystems.join(staging, "report.html"), render_report(value).encode("utf-8")
        )
    )
    model_path = fit["fitted"] | "WriteModel" >> beam.Map(
        lambda fitted: write_file(
            FileSystems.join(staging, "model.json"), _json_bytes(fitted.to_dict())
        )
    )
    return summary_path, report_path, model_path
