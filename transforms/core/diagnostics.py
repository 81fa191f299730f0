"""What the run report shows, computed in plain numpy: bounded accumulators and small sweeps.

* :func:`nearest_voter_sources`: per LF, which neighbour an extended vote would come from.
* :class:`ConfidenceHistogram`: additive histogram of the labels' confidence and class counts.
* :class:`ExampleReservoir`: per LF a bounded, deterministic set of example documents it voted on
  and documents it gained by extension.
* :func:`pairwise_overlap_conflict`: the LF × LF overlap and conflict matrices from statistics.
* :func:`threshold_sweep`: coverage and cross-validated dev accuracy against the threshold level.

>>> hist = ConfidenceHistogram.empty(cardinality=2, bins=4)
>>> hist = hist.add(np.array([[0.55, 0, 1], [0.9, 1, 1], [0.99, 1, 0]]))
>>> hist.counts.tolist(), hist.label_counts.tolist(), hist.uncovered_counts.tolist()
([1, 0, 0, 2], [1, 2], [0, 0, 0, 1])
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from transforms.core.extension import extend_votes
from transforms.core.ids import stable_hash
from transforms.core.labeler import (
    QUANTILE_GRID,
    FitSample,
    LabelerConfig,
    quantile_thresholds,
    sample_exceptions,
    select_label_model,
)
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN

# Source hash of "no nearest voter" (a real id hashes to 0 with probability 2**-64).
NO_SOURCE = np.uint64(0)
VOTED, GAINED = "voted", "gained"
# Threshold levels of the sweep: the core's grid plus a finer one (1.01 = no extension).
SWEEP_LEVELS = tuple(sorted(set(QUANTILE_GRID) | {round(0.05 * i, 2) for i in range(20)}))


def nearest_voter_sources(sims: np.ndarray, votes: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Per LF, the source of the most similar neighbour that voted (``NO_SOURCE`` if none).

    This is the neighbour :func:`transforms.core.extension.nearest_voters` takes ``nn_sim`` and
    ``nn_vote`` from (the first one on ties). Leading axes are batch axes: ``[n, kk]`` sims,
    ``[n, kk, m]`` votes and ``[n, kk]`` sources give ``[n, m]``.

    Args:
        sims: ``float [..., kk]`` similarity of one document's neighbours.
        votes: ``int8 [..., kk, m]`` their votes.
        sources: ``uint64 [..., kk]`` their identifiers (e.g. :func:`source_hash` of their ids).

    Returns:
        ``uint64 [..., m]``.

    >>> sims, votes = np.array([.9, .8]), np.array([[-1, 1], [0, 0]], np.int8)
    >>> sources = np.array([7, 9], np.uint64)
    >>> nearest_voter_sources(sims, votes, sources).tolist()
    [9, 7]
    >>> nearest_voter_sources(np.stack([sims, sims[::-1]]), np.stack([votes, votes[::-1]]),
    ...                       np.stack([sources, sources[::-1]])).tolist()
    [[9, 7], [9, 7]]
    """
    sims = np.asarray(sims, np.float32)
    votes = np.asarray(votes)
    masked = np.where(votes != ABSTAIN, sims[..., None], -np.inf)
    best = masked.argmax(axis=-2)
    has = np.isfinite(masked.max(axis=-2))
    chosen = np.take_along_axis(np.asarray(sources, np.uint64), best, axis=-1)
    return np.where(has, chosen, NO_SOURCE).astype(np.uint64)


def source_hash(doc_id: str) -> np.uint64:
    """The 64-bit identifier of a document in ``nn_source`` arrays."""
    return np.uint64(stable_hash("source:" + doc_id))


@dataclasses.dataclass(eq=False)
class ConfidenceHistogram:
    """Additive histogram of label confidence (all rows and uncovered rows) and label counts.

    Attributes:
        cardinality: ``k``.
        bin_edges: ``float [bins + 1]`` over ``[1/k, 1]`` (the confidence of an argmax).
        counts: ``int64 [bins]`` rows per confidence bin.
        uncovered_counts: ``int64 [bins]`` of those, rows without any (extended) vote.
        label_counts: ``int64 [k]`` rows per predicted class.
    """

    cardinality: int
    bin_edges: np.ndarray
    counts: np.ndarray
    uncovered_counts: np.ndarray
    label_counts: np.ndarray

    @classmethod
    def empty(cls, cardinality: int, bins: int = 20) -> "ConfidenceHistogram":
        """The zero accumulator."""
        if cardinality < 2 or bins < 1:
            raise ValueError(f"cardinality={cardinality} must be >= 2 and bins={bins} >= 1")
        return cls(
            cardinality=cardinality,
            bin_edges=np.linspace(1.0 / cardinality, 1.0, bins + 1),
            counts=np.zeros(bins, np.int64),
            uncovered_counts=np.zeros(bins, np.int64),
            label_counts=np.zeros(cardinality, np.int64),
        )

    def add(self, rows: np.ndarray) -> "ConfidenceHistogram":
        """Adds ``float [b, 3]`` rows of ``(confidence, label, covered)`` in place; returns self."""
        rows = np.asarray(rows, np.float64).reshape(-1, 3)
        bins = self.counts.size
        index = np.searchsorted(self.bin_edges, rows[:, 0], side="right") - 1
        index = np.clip(index, 0, bins - 1)
        self.counts += np.bincount(index, minlength=bins)
        self.uncovered_counts += np.bincount(index[rows[:, 2] == 0], minlength=bins)
        labels = rows[:, 1].astype(np.int64)
        self.label_counts += np.bincount(labels, minlength=self.cardinality)[: self.cardinality]
        return self

    def merge(self, other: "ConfidenceHistogram") -> "ConfidenceHistogram":
        """Adds another histogram in place; returns self."""
        self.counts += other.counts
        self.uncovered_counts += other.uncovered_counts
        self.label_counts += other.label_counts
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "bin_edges": [round(float(e), 6) for e in self.bin_edges],
            "counts": self.counts.tolist(),
            "uncovered_counts": self.uncovered_counts.tolist(),
            "label_counts": self.label_counts.tolist(),
        }


@dataclasses.dataclass(eq=False)
class ExampleReservoir:
    """Per LF and kind (``voted``/``gained``), the ``per_kind`` rows of smallest id hash.

    The choice depends only on the ids, not on the order rows arrive in, so it is the same on
    every runner. A *gained* row is one the LF abstained on and voted on after extension; it
    records the vote, the similarity and the source hash of the neighbour the vote came from.

    >>> r = ExampleReservoir.empty(per_kind=1).add(
    ...     ["a", "b"], votes=np.array([[1], [-1]], np.int8),
    ...     extended=np.array([[1], [1]], np.int8), nn_sim=np.array([[.5], [.9]], np.float32),
    ...     nn_source=np.array([[0], [source_hash("a")]], np.uint64))
    >>> [(e["lf"], e["kind"], e["id"]) for e in r.to_list()]
    [(0, 'gained', 'b'), (0, 'voted', 'a')]
    """

    per_kind: int
    entries: dict[tuple[int, str], list[tuple[int, str, dict[str, Any]]]]

    @classmethod
    def empty(cls, per_kind: int = 3) -> "ExampleReservoir":
        """The empty reservoir."""
        if per_kind < 1:
            raise ValueError(f"per_kind={per_kind} must be at least 1")
        return cls(per_kind=per_kind, entries={})

    def _offer(self, key: tuple[int, str], priority: int, doc_id: str, entry: dict) -> None:
        kept = self.entries.setdefault(key, [])
        if len(kept) >= self.per_kind and (priority, doc_id) >= kept[-1][:2]:
            return
        if any(existing == doc_id for _, existing, _ in kept):
            return
        kept.append((priority, doc_id, entry))
        kept.sort(key=lambda item: item[:2])
        del kept[self.per_kind :]

    def add(
        self,
        ids: Sequence[str],
        votes: np.ndarray,
        extended: np.ndarray,
        nn_sim: np.ndarray,
        nn_source: np.ndarray,
    ) -> "ExampleReservoir":
        """Offers a batch of rows (``[b, m]`` arrays); returns self."""
        votes, extended = np.asarray(votes), np.asarray(extended)
        if len(ids) == 0:
            return self
        priority = np.array([stable_hash("example:" + doc_id) for doc_id in ids], np.uint64)
        gained = (votes == ABSTAIN) & (extended != ABSTAIN)
        for kind, mask in ((VOTED, votes != ABSTAIN), (GAINED, gained)):
            for j in range(votes.shape[1]):
                rows = np.flatnonzero(mask[:, j])
                rows = rows[np.argsort(priority[rows], kind="stable")[: self.per_kind]]
                for i in rows:
                    entry: dict[str, Any] = {"vote": int(extended[i, j])}
                    if kind == GAINED:
                        entry["similarity"] = float(nn_sim[i, j])
                        entry["source_hash"] = int(nn_source[i, j])
                    self._offer((j, kind), int(priority[i]), str(ids[i]), entry)
        return self

    def merge(self, other: "ExampleReservoir") -> "ExampleReservoir":
        """Merges another reservoir in place; returns self."""
        for key, kept in other.entries.items():
            for priority, doc_id, entry in kept:
                self._offer(key, priority, doc_id, entry)
        return self

    def to_list(self) -> list[dict[str, Any]]:
        """``[{"lf": j, "kind", "id", "vote", ...}]`` sorted by LF, kind and priority."""
        out = []
        for (j, kind), kept in sorted(self.entries.items()):
            for _, doc_id, entry in kept:
                out.append({"lf": j, "kind": kind, "id": doc_id, **entry})
        return out


def pairwise_overlap_conflict(stats: LabelStatistics) -> tuple[np.ndarray, np.ndarray]:
    """``(overlap, conflict)`` ``float [m, m]``: share of rows where LFs ``i`` and ``j`` both
    vote, and where both vote different classes (diagonal: coverage, and 0).

    >>> L = np.array([[1, 1, -1], [0, 1, 0], [-1, -1, -1], [0, 0, 0]], np.int8)
    >>> overlap, conflict = pairwise_overlap_conflict(LabelStatistics.empty(3, 2).add(L))
    >>> overlap[0].tolist(), conflict[0].tolist()
    ([0.75, 0.75, 0.5], [0.0, 0.25, 0.0])
    """
    n = max(stats.n, 1)
    agree = stats.class_agree.sum(axis=0)
    conflict = (stats.co_votes - agree).astype(np.float64)
    np.fill_diagonal(conflict, 0.0)
    return stats.co_votes / n, conflict / n


def threshold_sweep(
    sample: FitSample,
    chosen_thresholds: np.ndarray,
    config: LabelerConfig,
    levels: Sequence[float] = SWEEP_LEVELS,
) -> dict[str, Any]:
    """Coverage and dev accuracy of the label model against the threshold quantile level.

    Each level ``q`` sets LF ``j``'s threshold to the ``q``-quantile of the nearest-voter
    similarity among the rows ``j`` voted on (``q > 1``: no extension), as the core's
    ``choose_thresholds`` does. Coverage is measured on the fit sample; the dev metric is the
    out-of-fold score on the sample's tuning rows (``1 -`` the mean label-model selection loss:
    balanced accuracy when the task metric is accuracy, else the task metric itself, see
    :func:`~transforms.core.labeler.selection_loss`) of the label model the core's ``select_label_model`` picks at that level (the
    criterion ``choose_thresholds`` compares), or ``None`` with fewer than ``folds`` tuning rows.

    Returns:
        ``{"levels", "coverage", "mean_threshold", "cv_accuracy", "chosen_level",
        "tuning_rows", "sample_rows"}``; ``chosen_level`` is the level whose thresholds equal
        ``chosen_thresholds`` (``None`` when they came from elsewhere).
    """
    chosen = np.asarray(chosen_thresholds, np.float32)
    tuning_rows = int((sample.gold >= 0).sum())
    out: dict[str, Any] = {
        "levels": [float(q) for q in levels],
        "coverage": [],
        "mean_threshold": [],
        "cv_accuracy": [],
        "chosen_level": None,
        "tuning_rows": tuning_rows,
        "sample_rows": int(sample.gold.shape[0]),
    }
    exceptions = sample_exceptions(sample, config)  # the sample's own votes: one set for every level
    for level in levels:
        thresholds = quantile_thresholds(sample.votes, sample.nn_sim, level)
        extended = extend_votes(sample.votes, sample.nn_sim, sample.nn_vote, thresholds)
        out["coverage"].append(float((extended != ABSTAIN).any(axis=1).mean()) if extended.size else 0.0)
        finite = thresholds[np.isfinite(thresholds)]
        out["mean_threshold"].append(float(finite.mean()) if finite.size else None)
        if tuning_rows >= config.folds:
            gold = sample.gold >= 0
            stats = LabelStatistics.empty(extended.shape[1], config.cardinality).add(extended)
            scored = select_label_model(stats, extended[gold], sample.gold[gold], config, exceptions)
            out["cv_accuracy"].append(1.0 - float(scored.loss.mean()))
        else:
            out["cv_accuracy"].append(None)
        if out["chosen_level"] is None and np.array_equal(thresholds, chosen):
            out["chosen_level"] = float(level)
    return out
