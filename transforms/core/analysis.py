"""The LF table (Snorkel's ``LFAnalysis`` columns plus extension and failures) from statistics.

One row per LF with the same keys everywhere: ``summary.json``'s ``lfs``, ``report.html``, the
console summaries, ``iterate`` and the studio all show the rows of :func:`lf_table` (how they
look is :mod:`pipelines.rendering`'s concern). The rows are computed from
:class:`~transforms.core.statistics.LabelStatistics`, never from the label matrix, plus the
(small) votes of the dev rows.

>>> from transforms.core.statistics import LabelStatistics
>>> L = np.array([[1, 1, -1], [0, 1, 0], [-1, -1, -1], [0, 0, 0], [1, -1, 1]], np.int8)
>>> E = np.array([[1, 1, 1], [0, 1, 0], [-1, 1, -1], [0, 0, 0], [1, -1, 1]], np.int8)
>>> rows = lf_table(["a", "b", "c"], LabelStatistics.empty(3, 2).add(L),
...                 LabelStatistics.empty(3, 2).add(E), gold_votes=L[:2], gold=np.array([1, 0]),
...                 thresholds=np.array([np.inf, 0.8, 0.7]), failures={"c": 2})
>>> row = rows[1]
>>> row["lf"], row["polarity"], row["coverage"], row["conflicts"], row["empirical_accuracy"]
('b', [0, 1], 0.6, 0.2, 0.5)
>>> rows[2]["coverage_extended"], rows[2]["failures"], rows[0]["threshold"], rows[1]["threshold"]
(0.8, 2, None, 0.8)
>>> rows[2]["correct"], rows[2]["incorrect"], rows[2]["estimated_accuracy"]  # no label model given
(1, 0, None)
>>> sorted(row) == sorted(LF_TABLE_KEYS)
True
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from transforms.core.label_models import LabelModel
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN

# The keys of every row of :func:`lf_table`, in the order the tables show them.
LF_TABLE_KEYS = (
    "lf",
    "polarity",
    "coverage",
    "coverage_extended",
    "overlaps",
    "conflicts",
    "correct",
    "incorrect",
    "empirical_accuracy",
    "estimated_accuracy",
    "threshold",
    "failures",
)


def lf_table(
    lf_names: Sequence[str],
    raw: LabelStatistics,
    extended: LabelStatistics | None = None,
    *,
    label_model: LabelModel | None = None,
    thresholds: np.ndarray | None = None,
    gold_votes: np.ndarray | None = None,
    gold: np.ndarray | None = None,
    failures: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """One row per LF, in LF order, with the keys :data:`LF_TABLE_KEYS`.

    Args:
        lf_names: The LF names (``m``).
        raw: Statistics of the LFs' own votes (``polarity``, ``coverage``, ``overlaps``,
            ``conflicts``: shares of all documents).
        extended: Statistics of the extended votes, for ``coverage_extended`` (else ``None``).
        label_model: A fitted model, for ``estimated_accuracy`` (its estimate per LF; NaN for
            majority vote; ``None`` without a model).
        thresholds: ``float [m]`` cosine extension thresholds, for ``threshold`` (``None``
            where infinite: the LF is not extended).
        gold_votes: ``int [g, m]`` raw votes of gold-labelled rows, for ``correct``,
            ``incorrect`` and ``empirical_accuracy`` (``None`` when the LF never votes on a
            gold row, or without gold rows).
        gold: ``int [g]`` their gold labels.
        failures: ``{lf name: rows the LF raised on or returned an invalid value for}``.

    Returns:
        The rows, JSON-ready (plain ints, floats, lists and ``None``).

    Raises:
        ValueError: if the names and the statistics disagree on ``m``.
    """
    m = raw.num_lfs
    if len(lf_names) != m:
        raise ValueError(f"{len(lf_names)} LF names for statistics of {m} LFs: pass one name per LF")
    shares = _corpus_shares(raw, extended)
    dev_votes, correct = _dev_counts(gold_votes, gold, m)
    failures = failures or {}
    rows = []
    for j, name in enumerate(lf_names):
        threshold = None if thresholds is None else float(thresholds[j])
        rows.append({
            "lf": name,
            **shares[j],
            "correct": int(correct[j]),
            "incorrect": int(dev_votes[j] - correct[j]),
            "empirical_accuracy": float(correct[j] / dev_votes[j]) if dev_votes[j] else None,
            "estimated_accuracy": None if label_model is None else float(label_model.accuracies[j]),
            "threshold": threshold if threshold is not None and np.isfinite(threshold) else None,
            "failures": int(failures.get(name, 0)),
        })  # fmt: skip
    return rows


def _corpus_shares(raw: LabelStatistics, extended: LabelStatistics | None) -> list[dict[str, Any]]:
    """Each LF's corpus columns: ``polarity`` and, as shares of all documents, ``coverage``,
    ``coverage_extended`` (``None`` without ``extended``), ``overlaps`` and ``conflicts``."""
    n = max(raw.n, 1)
    counts = raw.class_counts
    coverage = counts.sum(axis=1) / n
    coverage_extended = None if extended is None else extended.coverage_counts / max(extended.n, 1)
    return [
        {
            "polarity": [int(c) for c in np.flatnonzero(counts[j])],
            "coverage": float(coverage[j]),
            "coverage_extended": None if coverage_extended is None else float(coverage_extended[j]),
            "overlaps": float(raw.overlaps[j] / n),
            "conflicts": float(raw.conflicts[j] / n),
        }
        for j in range(raw.num_lfs)
    ]


def _dev_counts(gold_votes: np.ndarray | None, gold: np.ndarray | None, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``(votes, correct votes)`` per LF on the gold rows (zeros without gold rows)."""
    if gold_votes is None or gold is None:
        return np.zeros(m, np.int64), np.zeros(m, np.int64)
    gold_votes = np.asarray(gold_votes).reshape(-1, m)
    voted = gold_votes != ABSTAIN
    return voted.sum(axis=0), (voted & (gold_votes == np.asarray(gold)[:, None])).sum(axis=0)
