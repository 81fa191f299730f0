"""Incremental refits for LF iteration: one LF column changes, everything else is reused.

When one LF ``j`` is edited, only column ``j`` of the (extended) label matrix changes. This
module updates what depends on it in time proportional to what changed, not to ``n · m``:

* :class:`ReverseGraph`: the kNN graph inverted once (for each document, the documents that
  list it as a neighbour), so :meth:`ReverseGraph.nearest_voters` of one LF costs
  ``O(votes_j · kk)`` instead of ``O(n · kk)`` and equals
  :func:`transforms.core.extension.nearest_voters`.
* :func:`replace_rows`: :class:`~transforms.core.statistics.LabelStatistics` updated from the
  rows whose votes changed (subtract their old contribution, add the new one); the result
  equals a full recompute for every field of the statistics (it only uses ``add``).
* :func:`append_lf`, :func:`drop_lf`, :func:`reorder_lfs`: the statistics of a grown, shrunk or
  permuted LF set, found generically from the array fields' LF axes.
* :class:`SparseVotes`: the label matrix as per-LF lists of (row, class), so the label model's
  scores are ``k`` weighted ``bincount`` s over the votes (``O(nnz)``) instead of one-hot
  matrix products over ``n · m``; :func:`posterior_from_scores` turns them into posteriors.

>>> votes = np.array([[1, -1, 0], [-1, -1, 1], [0, 0, -1]], np.int8)
>>> stats = LabelStatistics.empty(3, 2).add(votes)
>>> new = votes.copy(); new[:, 1] = [1, 1, -1]
>>> changed = np.flatnonzero(new[:, 1] != votes[:, 1])
>>> replace_rows(stats, votes[changed], new[changed]) == LabelStatistics.empty(3, 2).add(new)
True
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from transforms.core.label_models import LabelModel
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN, VOTE_DTYPE


@dataclasses.dataclass(frozen=True, eq=False)
class ReverseGraph:
    """The kNN graph by neighbour: the edges ``target → source`` grouped by ``source``.

    Attributes:
        indptr: ``int64 [n + 1]``: the edges of document ``v`` (documents listing ``v`` as a
            neighbour) are ``indptr[v]:indptr[v + 1]``.
        targets: ``int32 [e]`` the documents listing ``v``.
        sims: ``float32 [e]`` their similarity to ``v`` (``-inf``/NaN edges are dropped).
    """

    indptr: np.ndarray
    targets: np.ndarray
    sims: np.ndarray

    @classmethod
    def from_neighbours(cls, neighbours: np.ndarray, sims: np.ndarray) -> "ReverseGraph":
        """Inverts ``neighbours int [n, kk]`` (``-1`` = none) with ``sims float32 [n, kk]``.

        Edges without a neighbour or with a ``-inf``/NaN similarity are dropped: they never
        make a nearest voter (:func:`~transforms.core.extension.nearest_voters` ignores them).

        Raises:
            ValueError: if the shapes differ or a neighbour is out of range.
        """
        neighbours = np.asarray(neighbours)
        sims = np.asarray(sims, np.float32)
        if neighbours.ndim != 2 or neighbours.shape != sims.shape:
            raise ValueError(
                f"neighbours {neighbours.shape} and sims {sims.shape} must both be [n, kk]"
            )
        n = neighbours.shape[0]
        if neighbours.size and int(neighbours.max()) >= n:
            raise ValueError(
                f"neighbour row {int(neighbours.max())} is out of range for {n} rows: neighbours "
                "must be row numbers of the same matrix (-1 = none)"
            )
        flat_sources = neighbours.ravel()
        flat_sims = sims.ravel()
        keep = np.flatnonzero((flat_sources >= 0) & (flat_sims > -np.inf))  # NaN: False
        sources = flat_sources[keep]
        order = np.argsort(sources, kind="stable")
        targets = (keep[order] // max(neighbours.shape[1], 1)).astype(np.int32)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(sources, minlength=n), out=indptr[1:])
        return cls(indptr=indptr, targets=targets, sims=flat_sims[keep][order])

    @property
    def num_rows(self) -> int:
        """``n``."""
        return int(self.indptr.shape[0] - 1)

    def nearest_voters(self, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One LF's nearest voters, equal to :func:`~transforms.core.extension.nearest_voters`.

        Args:
            column: ``int8 [n]`` the LF's votes.

        Returns:
            ``(nn_sim float32 [n], nn_vote int8 [n])``: per document the similarity of the most
            similar neighbour that voted (``-inf`` if none) and its vote (``-1`` when voters
            with different votes share the best similarity).
        """
        n = self.num_rows
        nn_sim = np.full(n, -np.inf, np.float32)
        nn_vote = np.full(n, ABSTAIN, VOTE_DTYPE)
        voters = np.flatnonzero(np.asarray(column) != ABSTAIN)
        starts, stops = self.indptr[voters], self.indptr[voters + 1]
        lengths = stops - starts
        total = int(lengths.sum())
        if total == 0:
            return nn_sim, nn_vote
        # Edge positions of every voter, concatenated (a vectorised ranges gather).
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        edges = offsets + np.arange(total)
        targets = self.targets[edges]
        sims = self.sims[edges]
        votes = np.repeat(np.asarray(column)[voters], lengths)
        order = np.lexsort((votes, sims, targets))
        targets, sims, votes = targets[order], sims[order], votes[order]
        last = np.flatnonzero(np.r_[targets[1:] != targets[:-1], True])
        best_sim = sims[last]
        best_vote = votes[last]  # the highest vote at the best similarity
        group = np.repeat(np.arange(last.size), np.diff(np.r_[-1, last]))
        # Sorted by similarity within a target: its best edges are the last ones of its group.
        at_best = sims == best_sim[group]
        same_run = np.r_[False, at_best[:-1] & (group[1:] == group[:-1])]
        low_vote = votes[np.flatnonzero(at_best & ~same_run)]  # the lowest vote at the best
        rows = targets[last]
        nn_sim[rows] = best_sim
        agree = (low_vote == best_vote) & np.isfinite(best_sim)
        nn_vote[rows] = np.where(agree, best_vote, ABSTAIN)
        return nn_sim, nn_vote


def replace_rows(stats: LabelStatistics, old: np.ndarray, new: np.ndarray) -> LabelStatistics:
    """Replaces rows of the label matrix in ``stats`` (in place): ``-= old``, ``+= new``.

    Args:
        stats: Statistics that include the rows ``old``.
        old: ``int [r, m]`` the rows as they were added.
        new: ``int [r, m]`` the same rows now.

    Returns:
        ``stats``.

    Raises:
        ValueError: if the row blocks differ in shape.
    """
    if np.shape(old) != np.shape(new):
        raise ValueError(f"old rows {np.shape(old)} and new rows {np.shape(new)} must have one shape")
    removed = LabelStatistics.empty(stats.num_lfs, stats.cardinality).add(old)
    added = LabelStatistics.empty(stats.num_lfs, stats.cardinality).add(new)
    stats.n += added.n - removed.n
    stats.covered += added.covered - removed.covered
    for name in LabelStatistics._ARRAYS:
        getattr(stats, name).__iadd__(getattr(added, name) - getattr(removed, name))
    return stats


def _lf_axes(num_lfs: int, cardinality: int) -> dict[str, tuple[int, ...]]:
    """Per array field of the statistics, the axes whose length is the number of LFs."""
    small = LabelStatistics.empty(num_lfs, cardinality)
    large = LabelStatistics.empty(num_lfs + 1, cardinality)
    return {
        name: tuple(
            axis
            for axis, (a, b) in enumerate(zip(getattr(small, name).shape, getattr(large, name).shape))
            if a != b
        )
        for name in LabelStatistics._ARRAYS
    }


def _relabel_axes(stats: LabelStatistics, num_lfs: int, index: np.ndarray) -> LabelStatistics:
    """New statistics of ``num_lfs`` LFs taking LF ``index[i]`` of ``stats`` as LF ``i``
    (``index[i] = -1``: an LF that never voted)."""
    out = LabelStatistics.empty(num_lfs, stats.cardinality)
    out.n, out.covered = stats.n, stats.covered
    source = np.maximum(index, 0)
    for name, axes in _lf_axes(stats.num_lfs, stats.cardinality).items():
        value = getattr(stats, name)
        for axis in axes:
            value = np.take(value, source, axis=axis)
            shape = [1] * value.ndim
            shape[axis] = num_lfs
            value = value * (index >= 0).reshape(shape)
        setattr(out, name, np.ascontiguousarray(value, dtype=getattr(out, name).dtype))
    return out


def append_lf(stats: LabelStatistics) -> LabelStatistics:
    """The statistics with one more LF (last) that abstains everywhere; add its votes with
    :func:`replace_rows`.

    >>> stats = append_lf(LabelStatistics.empty(2, 2).add(np.array([[0, 1]], np.int8)))
    >>> stats == LabelStatistics.empty(3, 2).add(np.array([[0, 1, -1]], np.int8))
    True
    """
    index = np.r_[np.arange(stats.num_lfs), -1]
    return _relabel_axes(stats, stats.num_lfs + 1, index)


def drop_lf(stats: LabelStatistics, votes: np.ndarray, j: int) -> LabelStatistics:
    """The statistics without LF ``j``.

    Args:
        stats: Statistics of ``votes``.
        votes: ``int [n, m]`` the matrix as added (only the rows where LF ``j`` votes are read).
        j: The LF to drop.

    Returns:
        New statistics of ``m - 1`` LFs (``stats`` is updated in place on the way).

    Raises:
        ValueError: if ``j`` is out of range or it is the only LF.
    """
    m = stats.num_lfs
    if not 0 <= j < m or m < 2:
        raise ValueError(f"cannot drop LF {j} of {m}: need 0 <= j < m and at least 2 LFs")
    rows = np.flatnonzero(np.asarray(votes)[:, j] != ABSTAIN)
    old = np.asarray(votes)[rows]
    new = old.copy()
    new[:, j] = ABSTAIN
    replace_rows(stats, old, new)
    return _relabel_axes(stats, m - 1, np.delete(np.arange(m), j))


def reorder_lfs(stats: LabelStatistics, order: Sequence[int]) -> LabelStatistics:
    """The statistics with LF ``order[i]`` as LF ``i``.

    Raises:
        ValueError: if ``order`` is not a permutation of ``0..m-1``.
    """
    index = np.asarray(order, np.int64)
    if sorted(index.tolist()) != list(range(stats.num_lfs)):
        raise ValueError(f"order {list(order)} is not a permutation of 0..{stats.num_lfs - 1}")
    return _relabel_axes(stats, stats.num_lfs, index)


class SparseVotes:
    """A label matrix ``[n, m]`` kept as per-LF (rows, classes) lists, for ``O(nnz)`` scoring.

    >>> sparse = SparseVotes(np.array([[1, -1], [0, 1], [-1, -1]], np.int8), cardinality=2)
    >>> weights = np.zeros((2, 2, 2)); weights[:, 1, 1] = 1.0  # +1 to class 1 per vote for 1
    >>> sparse.scores(weights, np.zeros(2)).tolist()
    [[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    """

    def __init__(self, votes: np.ndarray, cardinality: int):
        """Builds the lists from ``int [n, m]`` votes."""
        votes = np.asarray(votes)
        self.num_rows = int(votes.shape[0])
        self.cardinality = int(cardinality)
        self._rows: list[np.ndarray] = []
        self._classes: list[np.ndarray] = []
        for j in range(votes.shape[1]):
            self._rows.append(np.empty(0, np.int32))
            self._classes.append(np.empty(0, VOTE_DTYPE))
            self.set_column(j, votes[:, j])
        self._flat: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def num_lfs(self) -> int:
        """``m``."""
        return len(self._rows)

    def set_column(self, j: int, column: np.ndarray) -> None:
        """Replaces LF ``j``'s votes (``j = m`` appends a column)."""
        rows = np.flatnonzero(np.asarray(column) != ABSTAIN).astype(np.int32)
        classes = np.asarray(column)[rows].astype(VOTE_DTYPE)
        if j == len(self._rows):
            self._rows.append(rows)
            self._classes.append(classes)
        else:
            self._rows[j], self._classes[j] = rows, classes
        self._flat = None

    def delete(self, j: int) -> None:
        """Removes LF ``j``."""
        del self._rows[j], self._classes[j]
        self._flat = None

    def reorder(self, order: Sequence[int]) -> None:
        """Puts LF ``order[i]`` at position ``i``."""
        self._rows = [self._rows[j] for j in order]
        self._classes = [self._classes[j] for j in order]
        self._flat = None

    def _flat_votes(self) -> tuple[np.ndarray, np.ndarray]:
        """All votes: ``(rows int32 [nnz], codes int32 [nnz])`` with ``code = j · k + class``."""
        if self._flat is None:
            k = self.cardinality
            codes = [j * k + c.astype(np.int32) for j, c in enumerate(self._classes)]
            rows = np.concatenate(self._rows) if self._rows else np.empty(0, np.int32)
            self._flat = (rows, np.concatenate(codes) if codes else np.empty(0, np.int32))
        return self._flat

    def scores(self, weights: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
        """``float64 [n, k]``: ``log_prior[y] + Σ_j weights[j, λ_j, y]`` (abstains add 0).

        Args:
            weights: ``[m, k, k]`` the label model's table ``W[j, c, y]``.
            log_prior: ``[k]``.
        """
        rows, codes = self._flat_votes()
        table = np.asarray(weights, np.float64).reshape(-1, self.cardinality)
        out = np.empty((self.num_rows, self.cardinality), np.float64)
        for y in range(self.cardinality):
            out[:, y] = np.bincount(rows, weights=table[codes, y], minlength=self.num_rows)
            out[:, y] += log_prior[y]
        return out


def posterior_from_scores(model: LabelModel, scores: np.ndarray) -> np.ndarray:
    """``float32 [n, k]`` posteriors from :meth:`LabelModel.scores`-style log-scores, as
    :meth:`~transforms.core.label_models.LabelModel.predict_proba` turns them (uniform over
    the tied top classes for a hard model, softmax otherwise).

    Args:
        model: The label model the scores come from.
        scores: ``float64 [n, k]``; modified in place.
    """
    if model.hard:
        top = np.isclose(scores, scores.max(axis=1, keepdims=True))
        return (top / top.sum(axis=1, keepdims=True)).astype(np.float32)
    scores -= scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    return (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)
