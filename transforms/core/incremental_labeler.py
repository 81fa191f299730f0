"""The incremental labeler: a full fit's state, updated in place after an LF edit.

After a full fit, :class:`IncrementalLabeler` keeps the extended label matrix, its statistics,
its grouped vote-pattern codes (:class:`~transforms.core.grouped_votes.GroupedVotes`) and the
pinned end model's probabilities. An edit of LF ``j`` re-thresholds and re-extends column ``j``
and updates the statistics rows it changes (:mod:`transforms.core.incremental`); the labels
are then scored through the labeler's one :func:`~transforms.core.labeler.blend` (with its
class offsets), so they equal :func:`~transforms.core.labeler.label_batch` of the same
fitted labeler. :func:`pinned_config` is the configuration that reproduces the full fit's
data-wide choices (quantile level, label-model kind) for the columns that change.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from transforms.core.end_model import EndModel
from transforms.core.extension import extend_votes
from transforms.core.grouped_votes import GroupedVotes, posterior_from_scores, row_argmax
from transforms.core.incremental import append_lf, drop_lf, reorder_lfs, replace_column
from transforms.core.label_models import LabelModel
from transforms.core.lf_exceptions import silenced_votes
from transforms.core.labeler import (
    QUANTILE_GRID,
    FitSample,
    LabelBatch,
    LabelerConfig,
    blend,
    choose_thresholds,
    log_probs,
    quantile_thresholds,
)
from transforms.core.lfs import ABSTAIN
from transforms.core.statistics import LabelStatistics


def class_counts(votes: np.ndarray, cardinality: int) -> np.ndarray:
    """``int32 [n, k]`` votes per class of each row."""
    return np.stack([(votes == c).sum(axis=1, dtype=np.int32) for c in range(cardinality)], axis=1)


def append_column(a: np.ndarray) -> np.ndarray:
    """``a`` with one more (uninitialised) column, column-major."""
    out = np.empty((a.shape[0], a.shape[1] + 1), a.dtype, order="F")
    out[:, :-1] = a
    return out


def pinned_config(
    config: LabelerConfig, sample: FitSample, thresholds: np.ndarray, label_model: LabelModel
) -> LabelerConfig | None:
    """The config that reproduces a full fit's data-wide choices: its quantile level (found
    among the candidates :func:`choose_thresholds` scores) and its label-model kind; ``None``
    if no candidate level gives the fitted thresholds (then edits refit in full)."""
    pinned = dataclasses.replace(config, label_model=label_model.kind)
    if not config.extension or config.thresholds == "none":
        return pinned
    for level in dict.fromkeys((config.threshold_quantile, *QUANTILE_GRID)):
        candidate = quantile_thresholds(sample.votes, sample.nn_sim, level)
        if np.array_equal(candidate, thresholds):
            return dataclasses.replace(pinned, thresholds="quantile", threshold_quantile=level)
    return None


class IncrementalLabeler:
    """What the fast refit keeps between edits: pinned choices, the extended matrix, its
    statistics and grouped codes, the pinned end model's probabilities.

    Attributes:
        dirty: LF columns edited since the last :meth:`update_column` (the caller's record).
    """

    def __init__(
        self,
        *,
        config: LabelerConfig,
        thresholds: np.ndarray,
        extended: np.ndarray,
        stats: LabelStatistics,
        end_model: EndModel | None,
        end_probs: np.ndarray | None,
    ):
        """Keeps a full fit's state.

        Args:
            config: The pinned configuration (:func:`pinned_config`).
            thresholds: ``float32 [m]`` the fit's thresholds (updated in place).
            extended: ``int8 [n, m]`` column-major extended votes (updated in place).
            stats: Their statistics (updated in place).
            end_model: The pinned end model, or ``None``.
            end_probs: ``[n, k]`` its probabilities, or ``None``.
        """
        self.config = config
        self.thresholds = thresholds
        self.extended = extended
        self.stats = stats
        self.grouped = GroupedVotes(extended, stats.cardinality)
        self.end_model = end_model
        self.end_probs = end_probs
        self.log_end_probs = None if end_probs is None else log_probs(end_probs)
        self.class_counts = class_counts(extended, stats.cardinality)
        self.covered = self.class_counts.any(axis=1)
        self.dirty: set[int] = set()

    def append_lf(self) -> None:
        """A new last LF that abstains everywhere (its votes come with :meth:`update_column`)."""
        self.thresholds = np.r_[self.thresholds, np.float32(np.inf)].astype(np.float32)
        self.extended = append_column(self.extended)
        self.extended[:, -1] = ABSTAIN
        self.stats = append_lf(self.stats)
        self.grouped = GroupedVotes(self.extended, self.stats.cardinality)

    def drop_lf(self, j: int) -> "IncrementalLabeler | None":
        """Removes LF ``j``; ``None`` when the statistics cannot shrink (one LF left)."""
        if self.stats.num_lfs < 2:
            return None
        self.stats = drop_lf(self.stats, self.extended, j)
        column = self.extended[:, j]
        voted = np.flatnonzero(column != ABSTAIN)
        self.class_counts[voted, column[voted]] -= 1
        self.covered = self.class_counts.any(axis=1)
        self.extended = np.asfortranarray(np.delete(self.extended, j, axis=1))
        self.thresholds = np.delete(self.thresholds, j)
        self.grouped = GroupedVotes(self.extended, self.stats.cardinality)
        self.dirty = {d - (d > j) for d in self.dirty if d != j}
        return self

    def reorder(self, order: Sequence[int]) -> None:
        """Puts LF ``order[i]`` at position ``i``."""
        self.stats = reorder_lfs(self.stats, order)
        self.extended = np.asfortranarray(self.extended[:, order])
        self.thresholds = self.thresholds[list(order)]
        self.grouped = GroupedVotes(self.extended, self.stats.cardinality)
        position = {old: new for new, old in enumerate(order)}
        self.dirty = {position[d] for d in self.dirty}

    def update_column(
        self, j: int, votes: np.ndarray, nn_sim: np.ndarray, nn_vote: np.ndarray, sample_rows: np.ndarray
    ) -> None:
        """Re-thresholds and re-extends LF ``j``; updates the statistics rows it changes."""
        sample = FitSample(
            ids=np.empty(sample_rows.size, str),
            votes=votes[sample_rows, None],
            nn_sim=nn_sim[sample_rows, None],
            nn_vote=nn_vote[sample_rows, None],
            embeddings=None,
            gold=np.full(sample_rows.size, -1),  # pinned config: no gold-row choice here
        )
        self.thresholds[j] = choose_thresholds(sample, self.config)[0]
        threshold = self.thresholds[j : j + 1]
        column = extend_votes(votes[:, None], nn_sim[:, None], nn_vote[:, None], threshold)[:, 0]
        changed = np.flatnonzero(column != self.extended[:, j])
        old_rows = self.extended[changed]
        new_rows = old_rows.copy()
        new_rows[:, j] = column[changed]
        counts = self.class_counts[changed]
        self.extended[:, j] = column
        replace_column(self.stats, old_rows, new_rows, j, class_counts=counts)
        index = np.arange(changed.size)
        before, after = old_rows[:, j], column[changed]
        counts[index[before != ABSTAIN], before[before != ABSTAIN]] -= 1
        counts[index[after != ABSTAIN], after[after != ABSTAIN]] += 1
        self.class_counts[changed] = counts
        self.covered[changed] = counts.any(axis=1)
        self.grouped.replace(j, changed, old_rows[:, j], column[changed])

    def labels(self, label_model: LabelModel) -> LabelBatch:
        """:func:`label_batch` of every row, from the grouped votes and the cached end model."""
        k = label_model.cardinality
        log_prior = np.zeros(k) if label_model.hard else np.log(label_model.class_balance)
        scores = self.grouped.scores(label_model.weights, log_prior)
        if label_model.exceptions is not None:
            # Rows where an exception silences a broad LF: scored as the label model scores them.
            rows = np.unique(silenced_votes(self.extended, label_model.exceptions)[0])
            scores[rows] = label_model.scores(self.extended[rows])
        lm = posterior_from_scores(label_model, scores)
        covered = self.covered.copy()
        probs = lm
        if self.end_probs is not None:
            end = self.end_model
            probs = blend(lm, self.end_probs, covered, end.weight, end.offsets, log_em=self.log_end_probs)
        return LabelBatch(
            extended_votes=self.extended,
            probs=probs,
            label=row_argmax(probs),
            label_model_probs=lm,
            covered=covered,
        )
