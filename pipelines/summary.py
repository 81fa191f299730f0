"""The run summary (``summary.json``): a pure function of the run's small singletons.

Its schema is documented in README.md ("Outputs"); :data:`SUMMARY_SCHEMA_VERSION` changes with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from transforms.core.labeler import FitSample, FittedLabeler, fit_label_model
from transforms.core.label_models import majority_vote_model
from transforms.core.metrics import accuracy, macro_f1
from transforms.core.statistics import LabelStatistics

SUMMARY_SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class RunCounts:
    """Row accounting of one run.

    Attributes:
        documents: Documents after reading, de-duplication and the dev join.
        labelled: Rows of the labels table.
        dead_letters: ``{"<stage>/<cause>": rows}`` of dead-lettered input rows.
        read_dead_letters: Of those, rows rejected while reading (never became documents).
        lf_failures: ``{lf_name: rows the LF raised on or returned an invalid value for}``.
    """

    documents: int
    labelled: int
    dead_letters: Mapping[str, int]
    read_dead_letters: int
    lf_failures: Mapping[str, int]

    @property
    def input_rows(self) -> int:
        """Rows read: documents plus rows rejected while reading."""
        return self.documents + self.read_dead_letters

    @property
    def accounted(self) -> bool:
        """Whether every input row is in the labels or the dead letter."""
        return self.labelled + sum(self.dead_letters.values()) == self.input_rows


def _metrics(gold: np.ndarray, predicted: np.ndarray, cardinality: int) -> dict[str, float]:
    return {
        "accuracy": accuracy(gold, predicted),
        "macro_f1": macro_f1(gold, predicted, cardinality),
        "rows": int(gold.size),
    }


def gold_metrics(
    eval_rows: Sequence[Mapping[str, Any]],
    fitted: FittedLabeler,
    baseline: Any,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics on the dev rows per split (``tune``, ``holdout``) and method.

    Methods: ``majority_vote`` (raw votes), ``label_model`` (the label model fitted without
    extension), ``label_model_extended`` (the fitted label model on extended votes) and
    ``epoxy`` (the final labels).
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


def lf_table(
    fitted: FittedLabeler,
    raw: LabelStatistics,
    extended: LabelStatistics,
    eval_rows: Sequence[Mapping[str, Any]],
    lf_failures: Mapping[str, int],
) -> list[dict[str, Any]]:
    """One row per LF: Snorkel's LFAnalysis columns plus extension and failure figures."""
    n = max(raw.n, 1)
    gold = np.array([row["gold"] for row in eval_rows], dtype=np.int64)
    votes = np.array([row["votes"] for row in eval_rows], dtype=np.int8).reshape(
        len(eval_rows), len(fitted.lf_names)
    )
    rows = []
    for j, name in enumerate(fitted.lf_names):
        voted = votes[:, j] != -1
        correct = int(np.sum(votes[voted, j] == gold[voted]))
        incorrect = int(np.sum(voted)) - correct
        threshold = float(fitted.thresholds[j])
        rows.append(
            {
                "lf": name,
                "polarity": [int(c) for c in np.flatnonzero(raw.class_counts[j])],
                "coverage": float(raw.coverage_counts[j] / n),
                "coverage_extended": float(extended.coverage_counts[j] / n),
                "overlaps": float(raw.overlaps[j] / n),
                "conflicts": float(raw.conflicts[j] / n),
                "correct": correct,
                "incorrect": incorrect,
                "empirical_accuracy": correct / (correct + incorrect) if correct + incorrect else None,
                "estimated_accuracy": float(fitted.label_model.accuracies[j]),
                "threshold": threshold if np.isfinite(threshold) else None,
                "failures": int(lf_failures.get(name, 0)),
            }
        )
    return rows


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
) -> dict[str, Any]:
    """Assembles ``summary.json``."""
    no_extension = np.full(len(fitted.lf_names), np.inf, np.float32)
    baseline = fit_label_model(raw_stats, sample, no_extension, fitted.config)
    eval_rows = sorted(eval_rows, key=lambda row: row["id"])
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "options": dict(options),
        "model_fingerprint": model_fingerprint,
        "class_names": list(class_names),
        "rows": {
            "input": counts.input_rows,
            "documents": counts.documents,
            "labelled": counts.labelled,
            "dead_letter": int(sum(counts.dead_letters.values())),
            "dead_letter_by_cause": dict(sorted(counts.dead_letters.items())),
            "accounted": counts.accounted,
            "covered": int(extended_stats.covered),
            "covered_before_extension": int(raw_stats.covered),
        },
        "coverage": {
            "before_extension": raw_stats.covered / max(raw_stats.n, 1),
            "after_extension": extended_stats.covered / max(extended_stats.n, 1),
        },
        "label_model": {
            "kind": fitted.label_model.kind,
            "class_balance": fitted.label_model.class_balance.tolist(),
            "end_model": fitted.end_model is not None,
        },
        "lfs": lf_table(fitted, raw_stats, extended_stats, eval_rows, counts.lf_failures),
        "metrics": gold_metrics(eval_rows, fitted, baseline),
    }


def format_summary(summary: Mapping[str, Any], output: str) -> str:
    """A short human-readable digest of ``summary.json`` for the console."""
    rows = summary["rows"]
    coverage = summary["coverage"]
    lines = [
        f"epoxy-beam: {rows['labelled']} documents labelled, {rows['dead_letter']} rows in the "
        f"dead letter ({', '.join(f'{k}: {v}' for k, v in rows['dead_letter_by_cause'].items()) or 'none'})",
        f"  LF coverage: {coverage['before_extension']:.1%} of documents before extension, "
        f"{coverage['after_extension']:.1%} after",
    ]
    for split, methods in summary["metrics"].items():
        figures = ", ".join(f"{name} {m['accuracy']:.3f}" for name, m in methods.items())
        rows_in_split = next(iter(methods.values()))["rows"]
        lines.append(f"  accuracy on {split} dev rows (n={rows_in_split}): {figures}")
    lines.append(f"  outputs: {output}/labels/, {output}/errors/, {output}/summary.json")
    return "\n".join(lines)
