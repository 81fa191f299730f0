"""The run summary (``summary.json``): a pure function of the run's small singletons.

Its schema is documented in README.md ("Outputs", from docs/report.md);
:data:`SUMMARY_SCHEMA_VERSION` changes with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from pipelines.rendering import CONSOLE_LFS, failures_line, lf_table_text, percent
from transforms.core.analysis import lf_table
from transforms.core.diagnostics import (
    GAINED,
    VOTED,
    ConfidenceHistogram,
    pairwise_overlap_conflict,
    threshold_sweep,
)
from transforms.core.labeler import FitSample, FittedLabeler, fit_label_model
from transforms.core.label_models import majority_vote_model
from transforms.core.metrics import accuracy, confusion_matrix, macro_f1
from transforms.core.statistics import LabelStatistics
from transforms.documents import ORIGIN_CORPUS, ORIGIN_DEV, ORIGIN_MERGED
from transforms.io import read_stage

SUMMARY_SCHEMA_VERSION = 2


@dataclasses.dataclass(frozen=True)
class RunCounts:
    """Row accounting of one run.

    Every row read ends in the labels or in the dead letter, except that a dev row whose id is a
    corpus row's labels that document instead of adding one. The run is committed only when
    ``labelled + dead_letter == input + dev_input - dev_rows_merged``.

    Attributes:
        documents_by_origin: Documents after reading, de-duplication and the dev join, by
            origin: ``corpus``, ``dev`` (a dev row not in the corpus) and ``corpus+dev`` (a
            corpus row labelled by a dev row).
        labelled: Rows of the labels table.
        dead_letters: ``{"<stage>/<cause>": rows}`` of dead-lettered input rows; stage ``read``
            holds corpus rows and ``read_dev`` dev rows rejected while reading.
        lf_failures: ``{lf_name: rows the LF raised on or returned an invalid value for}``.
        lf_failure_samples: ``{lf_name: ids}`` of the sampled failures, smallest first.
    """

    documents_by_origin: Mapping[str, int]
    labelled: int
    dead_letters: Mapping[str, int]
    lf_failures: Mapping[str, int]
    lf_failure_samples: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)

    def _read_dead_letters(self, split: str) -> int:
        prefix = read_stage(split) + "/"
        return sum(rows for name, rows in self.dead_letters.items() if name.startswith(prefix))

    @property
    def documents(self) -> int:
        """Documents after reading, de-duplication and the dev join."""
        return sum(self.documents_by_origin.values())

    @property
    def dev_rows_merged(self) -> int:
        """Dev rows whose id is a corpus document's: they label it and add no document."""
        return self.documents_by_origin.get(ORIGIN_MERGED, 0)

    @property
    def input_rows(self) -> int:
        """Corpus rows read: corpus documents plus corpus rows rejected while reading."""
        corpus = self.documents_by_origin.get(ORIGIN_CORPUS, 0) + self.dev_rows_merged
        return corpus + self._read_dead_letters("corpus")

    @property
    def dev_rows(self) -> int:
        """Dev rows read: dev documents, merged dev rows and dev rows rejected while reading."""
        dev = self.documents_by_origin.get(ORIGIN_DEV, 0) + self.dev_rows_merged
        return dev + self._read_dead_letters("dev")

    @property
    def dead_letter_rows(self) -> int:
        """Input rows in the dead letter (LF failure samples are not rows)."""
        return int(sum(self.dead_letters.values()))

    @property
    def accounted(self) -> bool:
        """Whether every row read is in the labels or the dead letter.

        >>> RunCounts({"corpus": 8, "corpus+dev": 2, "dev": 1}, 10, {"read/empty_text": 1,
        ...           "read_dev/duplicate_id": 1, "apply_lfs/bad_votes": 1}, {}).accounted
        True
        """
        rows_read = self.input_rows + self.dev_rows - self.dev_rows_merged
        return self.labelled + self.dead_letter_rows == rows_read

    def accounting_line(self) -> str:
        """The identity in words, for the console and the failure message."""
        verdict = "every row accounted for" if self.accounted else "ROW ACCOUNTING FAILED"
        line = (
            f"{verdict}: {self.labelled} labelled + {self.dead_letter_rows} dead-lettered "
            f"{'=' if self.accounted else '!='} {self.input_rows} corpus rows"
        )
        if self.dev_rows:
            line += (
                f" + {self.dev_rows} dev rows - {self.dev_rows_merged} dev rows merged into "
                "corpus documents"
            )
        return line


def _metrics(gold: np.ndarray, predicted: np.ndarray, cardinality: int) -> dict[str, Any]:
    return {
        "accuracy": accuracy(gold, predicted),
        "macro_f1": macro_f1(gold, predicted, cardinality),
        "rows": int(gold.size),
        "confusion_matrix": confusion_matrix(gold, predicted, cardinality).tolist(),
    }


def gold_metrics(
    eval_rows: Sequence[Mapping[str, Any]],
    fitted: FittedLabeler,
    baseline: Any,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics on the dev rows per split (``tune``, ``holdout``) and method.

    Methods: ``majority_vote`` (raw votes), ``label_model`` (the label model fitted without
    extension), ``label_model_extended`` (the fitted label model on extended votes) and
    ``epoxy`` (the final labels). Each has ``accuracy``, ``macro_f1``, ``rows`` and
    ``confusion_matrix`` (``[k][k]``, row = gold class, column = predicted class).
    """
    k = fitted.cardinality
    mv = majority_vote_model(len(fitted.lf_names), k)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split in ("tune", "holdout"):
        rows = [row for row in eval_rows if row["split"] == split]
        if not rows:
            continue
        gold = np.array([row["gold"] for row in rows], dtype=np.int64)
        votes = np.array([row["votes"] for row in rows], dtype=np.int8)
        extended = np.array([row["extended_votes"] for row in rows], dtype=np.int8)
        predictions = {
            "majority_vote": mv.predict_proba(votes).argmax(axis=1),
            "label_model": baseline.predict_proba(votes).argmax(axis=1),
            "label_model_extended": fitted.label_model.predict_proba(extended).argmax(axis=1),
            "epoxy": np.array([row["label"] for row in rows], dtype=np.int64),
        }
        out[split] = {name: _metrics(gold, pred, k) for name, pred in predictions.items()}
    return out


def summary_lf_table(
    fitted: FittedLabeler,
    raw: LabelStatistics,
    extended: LabelStatistics,
    eval_rows: Sequence[Mapping[str, Any]],
    lf_failures: Mapping[str, int],
) -> list[dict[str, Any]]:
    """The run's :func:`~transforms.core.analysis.lf_table` (dev rows: every split's)."""
    m = len(fitted.lf_names)
    return lf_table(
        fitted.lf_names, raw, extended, label_model=fitted.label_model, thresholds=fitted.thresholds,
        gold_votes=np.array([row["votes"] for row in eval_rows], np.int8).reshape(len(eval_rows), m),
        gold=np.array([row["gold"] for row in eval_rows], np.int64), failures=lf_failures,
    )  # fmt: skip


def lf_pairs(fitted: FittedLabeler, raw: LabelStatistics) -> dict[str, Any]:
    """The LF × LF ``overlap`` and ``conflict`` matrices (shares of all documents)."""
    overlap, conflict = pairwise_overlap_conflict(raw)
    return {
        "lfs": list(fitted.lf_names),
        "overlap": np.round(overlap, 6).tolist(),
        "conflict": np.round(conflict, 6).tolist(),
    }


def examples_by_lf(
    lf_names: Sequence[str], examples: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Groups example entries (``lf`` index, ``kind``, ...) as ``{lf_name: {voted, gained}}``."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {VOTED: [], GAINED: []} for name in lf_names
    }
    for entry in examples:
        item = {key: value for key, value in entry.items() if key not in ("lf", "kind")}
        out[lf_names[entry["lf"]]][entry["kind"]].append(item)
    return out


def row_counts(
    counts: RunCounts,
    raw_stats: LabelStatistics,
    extended_stats: LabelStatistics,
    embedding: Mapping[str, int] | None,
) -> dict[str, Any]:
    """``summary.json``'s ``rows``: what was read, labelled and dead-lettered, and covered."""
    return {
        "input": counts.input_rows,
        "dev_input": counts.dev_rows,
        "dev_rows_merged": counts.dev_rows_merged,
        "documents": counts.documents,
        "labelled": counts.labelled,
        "dead_letter": counts.dead_letter_rows,
        "dead_letter_by_cause": dict(sorted(counts.dead_letters.items())),
        "accounted": counts.accounted,
        "accounting": counts.accounting_line(),
        "covered": int(extended_stats.covered),
        "covered_before_extension": int(raw_stats.covered),
        **dict(embedding or {}),
    }


def build_summary(
    *,
    options: Mapping[str, Any],
    class_names: Sequence[str],
    counts: RunCounts,
    fitted: FittedLabeler,
    sample: FitSample,
    raw_stats: LabelStatistics,
    extended_stats: LabelStatistics,
    eval_rows: Sequence[Mapping[str, Any]],
    model_fingerprint: str,
    confidence: ConfidenceHistogram | None = None,
    examples: Sequence[Mapping[str, Any]] = (),
    run: Mapping[str, Any] | None = None,
    embedding: Mapping[str, int] | None = None,
    stages: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Assembles ``summary.json``.

    Args:
        embedding: ``{"embedded": rows run through the model, "embedding_cache_hits": rows
            whose embedding came from the cache}``, added to ``rows``.
        confidence: The labels' confidence histogram, when gathered.
        examples: Example entries with texts (see :mod:`transforms.report_inputs`).
        run: Facts about the run itself (``runner``, ``wall_seconds``, ...), shown as given.
        stages: Per-stage ``{stage, rows, first_s, done_s}`` (:mod:`transforms.stage_stats`).
    """
    no_extension = np.full(len(fitted.lf_names), np.inf, np.float32)
    baseline = fit_label_model(raw_stats, sample, no_extension, fitted.config)
    eval_rows = sorted(eval_rows, key=lambda row: row["id"])
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "options": dict(options),
        "model_fingerprint": model_fingerprint,
        "run": dict(run or {}),
        "class_names": list(class_names),
        "rows": row_counts(counts, raw_stats, extended_stats, embedding),
        "coverage": {
            "before_extension": raw_stats.covered / max(raw_stats.n, 1),
            "after_extension": extended_stats.covered / max(extended_stats.n, 1),
        },
        "label_model": {
            "kind": fitted.label_model.kind,
            "class_balance": fitted.label_model.class_balance.tolist(),
            "end_model": fitted.end_model is not None,
            "lf_exceptions": lf_exception_names(fitted),
            **end_model_choices(fitted),
        },
        "lfs": [
            {**row, "failure_sample_ids": list(counts.lf_failure_samples.get(row["lf"], ()))}
            for row in summary_lf_table(fitted, raw_stats, extended_stats, eval_rows, counts.lf_failures)
        ],
        "metrics": gold_metrics(eval_rows, fitted, baseline),
        "lf_pairs": lf_pairs(fitted, raw_stats),
        "threshold_sweep": threshold_sweep(sample, fitted.thresholds, fitted.config)
        if fitted.config.extension
        else None,
        "confidence": None if confidence is None else confidence.to_dict(),
        "examples": examples_by_lf(fitted.lf_names, examples),
        "stages": [dict(stage) for stage in stages],
    }


def lf_exception_names(fitted: FittedLabeler) -> list[dict[str, str]]:
    """The label model's exception pairs by LF name: ``exception`` silences ``broad`` where it
    votes (:mod:`transforms.core.lf_exceptions`)."""
    pairs = fitted.label_model.exceptions
    names = fitted.lf_names
    return [] if pairs is None else [{"exception": names[a], "broad": names[b]} for a, b in pairs.tolist()]


def format_summary(summary: Mapping[str, Any], output: str) -> str:
    """A short human-readable digest of ``summary.json`` for the console (:mod:`pipelines.rendering`)."""
    rows = summary["rows"]
    coverage = summary["coverage"]
    causes = ", ".join(f"{k}: {v}" for k, v in rows["dead_letter_by_cause"].items()) or "none"
    lines = [
        f"epoxy-beam: {rows['labelled']} documents labelled, {rows['dead_letter']} rows in the "
        f"dead letter ({causes})",
        f"  {rows['accounting']}",
        f"  LF coverage: {percent(coverage['before_extension'])} of documents before extension, "
        f"{percent(coverage['after_extension'])} after",
    ]
    lines += ["  " + line for line in lf_table_text(summary["lfs"], CONSOLE_LFS).splitlines()]
    failures = failures_line(summary["lfs"], "; samples in errors/")
    lines += [f"  {failures}"] if failures else []
    exceptions = summary["label_model"].get("lf_exceptions")
    if exceptions:
        pairs = "; ".join(f"{pair['exception']} over {pair['broad']}" for pair in exceptions)
        lines.append(f"  LF exceptions (the narrow LF's vote wins where both vote): {pairs}")
    for split, methods in summary["metrics"].items():
        figures = ", ".join(f"{name} {m['accuracy']:.3f}" for name, m in methods.items())
        rows_in_split = next(iter(methods.values()))["rows"]
        lines.append(f"  accuracy on {split} dev rows (n={rows_in_split}): {figures}")
    if summary.get("stages"):
        lines.append(
            "  stages (rows, done at s since start): "
            + ", ".join(f"{s['stage']} {s['rows']} ({s['done_s']})" for s in summary["stages"])
        )
    lines.append(
        f"  outputs: {output}/labels/, {output}/errors/, {output}/summary.json, "
        f"{output}/report.html"
    )
    return "\n".join(lines)


def end_model_choices(fitted: FittedLabeler) -> dict[str, Any]:
    """The fit's gold-row choices: the task metric, the end model's recipe (``gold_weight``:
    how its training counted the tuning rows, ``"inf"`` = them alone), ``α`` and class offsets."""
    end = fitted.end_model
    if end is None:
        return {"metric": fitted.config.metric}
    return {
        "metric": fitted.config.metric,
        "end_model_gold_weight": "inf" if np.isinf(end.gold_weight) else end.gold_weight,
        "end_model_weight": end.weight,
        "class_offsets": None if end.offsets is None else end.offsets.tolist(),
    }
