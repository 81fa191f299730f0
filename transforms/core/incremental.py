"""Incremental refits for LF iteration: one LF column changes, everything else is reused.

When one LF ``j`` is edited, only column ``j`` of the (extended) label matrix changes. This
module updates what depends on it in time proportional to what changed, not to ``n · m``:

* :class:`ReverseGraph`: the kNN graph prepared once (slots sorted by similarity, and
  inverted: for each document, the documents that list it as a neighbour), so
  :meth:`ReverseGraph.nearest_voters` of one LF costs ``O(min(votes_j · kk, n · kk))`` with
  small constants and equals :func:`transforms.core.extension.nearest_voters`.
* :func:`replace_rows`: :class:`~transforms.core.statistics.LabelStatistics` updated from the
  rows whose votes changed (subtract their old contribution, add the new one); the result
  equals a full recompute for every field of the statistics (it only uses ``add``).
  :func:`replace_column` does the same for a one-column change in ``O(rows · m)`` (only LF
  ``j``'s row and column of the pair counts change, and the other LFs' overlap / conflict
  counts only on rows whose flags flip), falling back to :func:`replace_rows` for fields it
  does not know.
* :func:`append_lf`, :func:`drop_lf`, :func:`reorder_lfs`: the statistics of a grown, shrunk or
  permuted LF set, found generically from the array fields' LF axes.

Scoring the rows of the edited matrix fast is :mod:`transforms.core.grouped_votes`.

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

from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN, VOTE_DTYPE


# The reverse (sorted-edges) search costs about this many forward slot scans per edge.
_REVERSE_EDGE_COST = 8


@dataclasses.dataclass(frozen=True, eq=False)
class ReverseGraph:
    """The kNN graph kept two ways, to find one LF's nearest voters in the cheaper one.

    Attributes:
        neighbours: ``int32 [n, kk]`` neighbour rows per document, each row's slots by
            descending similarity; padding (and ``-inf``/NaN edges) point at row ``n`` (an
            always-abstaining sentinel).
        sims: ``float32 [n, kk]`` their similarities (padding ``-inf``).
        indptr: ``int64 [n + 1]``: the edges of document ``v`` (documents listing ``v`` as a
            neighbour) are ``indptr[v]:indptr[v + 1]``.
        targets: ``int32 [e]`` the documents listing ``v``.
        target_sims: ``float32 [e]`` their similarity to ``v``.
    """

    neighbours: np.ndarray
    sims: np.ndarray
    indptr: np.ndarray
    targets: np.ndarray
    target_sims: np.ndarray

    @classmethod
    def from_neighbours(cls, neighbours: np.ndarray, sims: np.ndarray) -> "ReverseGraph":
        """Builds both forms from ``neighbours int [n, kk]`` (``-1`` = none) and ``sims``.

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
        n, kk = neighbours.shape
        if neighbours.size and int(neighbours.max()) >= n:
            raise ValueError(
                f"neighbour row {int(neighbours.max())} is out of range for {n} rows: neighbours "
                "must be row numbers of the same matrix (-1 = none)"
            )
        valid = (neighbours >= 0) & (sims > -np.inf)  # NaN: False
        sims = np.where(valid, sims, -np.inf).astype(np.float32)
        order = np.argsort(-sims, axis=1, kind="stable")
        forward = np.take_along_axis(np.where(valid, neighbours, n), order, axis=1).astype(np.int32)
        keep = np.flatnonzero(valid.ravel())
        sources = neighbours.ravel()[keep]
        by_source = np.argsort(sources, kind="stable")
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(sources, minlength=n), out=indptr[1:])
        return cls(
            neighbours=forward,
            sims=np.take_along_axis(sims, order, axis=1),
            indptr=indptr,
            targets=(keep[by_source] // max(kk, 1)).astype(np.int32),
            target_sims=sims.ravel()[keep][by_source],
        )

    @property
    def num_rows(self) -> int:
        """``n``."""
        return int(self.indptr.shape[0] - 1)

    def nearest_voters(self, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One LF's nearest voters, equal to :func:`~transforms.core.extension.nearest_voters`.

        Scans the voters' reverse edges when they are few, else every document's neighbour
        slots.

        Args:
            column: ``int8 [n]`` the LF's votes.

        Returns:
            ``(nn_sim float32 [n], nn_vote int8 [n])``: per document the similarity of the most
            similar neighbour that voted (``-inf`` if none) and its vote (``-1`` when voters
            with different votes share the best similarity).
        """
        column = np.asarray(column)
        voters = np.flatnonzero(column != ABSTAIN)
        edges = int((self.indptr[voters + 1] - self.indptr[voters]).sum())
        if edges * _REVERSE_EDGE_COST < self.neighbours.size:
            return self._by_reverse_edges(column, voters)
        return self._by_forward_slots(column)

    def _by_forward_slots(self, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slots are sorted by similarity: the first voting slot is the nearest voter."""
        n = self.num_rows
        nn_sim = np.full(n, -np.inf, np.float32)
        nn_vote = np.full(n, ABSTAIN, VOTE_DTYPE)
        if self.neighbours.shape[1] == 0:
            return nn_sim, nn_vote
        votes = np.append(column.astype(VOTE_DTYPE), VOTE_DTYPE(ABSTAIN))[self.neighbours]
        voted = votes != ABSTAIN
        first = voted.argmax(axis=1)
        rows = np.flatnonzero(voted[np.arange(n), first])
        slot = first[rows]
        nn_sim[rows] = self.sims[rows, slot]
        nn_vote[rows] = votes[rows, slot]
        # Voters sharing the best similarity follow it: settle the rows where they disagree.
        best = nn_sim[rows, None]
        tied = (self.sims[rows] == best) & voted[rows] & (votes[rows] != nn_vote[rows, None])
        nn_vote[rows[tied.any(axis=1)]] = ABSTAIN
        nn_vote[rows[~np.isfinite(best[:, 0])]] = ABSTAIN
        return nn_sim, nn_vote

    def _by_reverse_edges(self, column: np.ndarray, voters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Groups the voters' reverse edges by target; the best similarity per target wins."""
        n = self.num_rows
        nn_sim = np.full(n, -np.inf, np.float32)
        nn_vote = np.full(n, ABSTAIN, VOTE_DTYPE)
        starts, stops = self.indptr[voters], self.indptr[voters + 1]
        lengths = stops - starts
        total = int(lengths.sum())
        if total == 0:
            return nn_sim, nn_vote
        # Edge positions of every voter, concatenated (a vectorised ranges gather).
        edges = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        targets = self.targets[edges]
        sims = self.target_sims[edges]
        votes = np.repeat(column[voters], lengths)
        # One sort key: target, then similarity (float bits made order-preserving).
        bits = sims.view(np.uint32)
        ordered = np.where(bits >> 31 == 1, ~bits, bits | np.uint32(1 << 31))
        order = np.argsort((targets.astype(np.uint64) << np.uint64(32)) | ordered)
        targets, sims, votes = targets[order], sims[order], votes[order]
        last = np.flatnonzero(np.r_[targets[1:] != targets[:-1], True])
        best_sim = sims[last]
        group = np.repeat(np.arange(last.size), np.diff(np.r_[-1, last]))
        # Sorted by similarity within a target: its best edges are the last ones of its group;
        # the other edges get neutral votes, so each segment from one run start to the next
        # reduces to its run's lowest / highest vote.
        at_best = sims == best_sim[group]
        same_run = np.r_[False, at_best[:-1] & (group[1:] == group[:-1])]
        starts = np.flatnonzero(at_best & ~same_run)
        low = np.minimum.reduceat(np.where(at_best, votes, np.iinfo(VOTE_DTYPE).max), starts)
        high = np.maximum.reduceat(np.where(at_best, votes, np.iinfo(VOTE_DTYPE).min), starts)
        rows = targets[last]
        nn_sim[rows] = best_sim
        agree = (low == high) & np.isfinite(best_sim)
        nn_vote[rows] = np.where(agree, high, ABSTAIN)
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


# The LabelStatistics fields replace_column knows how to update column by column; any other
# field (added to the statistics later) makes it fall back to the generic replace_rows.
_KNOWN_FIELDS = ("num_lfs", "cardinality", "n", "covered", "joint", "overlaps", "conflicts")


def replace_column(
    stats: LabelStatistics,
    old: np.ndarray,
    new: np.ndarray,
    j: int,
    class_counts: np.ndarray | None = None,
) -> LabelStatistics:
    """:func:`replace_rows` for rows that differ in column ``j`` only, in ``O(r · m)``.

    Only LF ``j``'s row and column of ``joint`` change, so they are counted directly instead of
    recounting every vote pair of the rows. ``overlaps`` and ``conflicts`` of the other LFs
    change only on rows whose "more than one vote" / "a vote other than class c" flags flip,
    so only those rows are recounted. Falls back to :func:`replace_rows` if the statistics
    have fields this function does not know.

    Args:
        stats: Statistics that include the rows ``old``.
        old: ``int [r, m]`` the rows as they were added.
        new: ``int [r, m]`` the same rows now (equal to ``old`` outside column ``j``).
        j: The changed column.
        class_counts: ``int [r, k]`` votes per class of each ``old`` row, if known (saves a
            pass over the rows).

    Returns:
        ``stats``.

    Raises:
        ValueError: if the row blocks differ in shape.
    """
    if tuple(field.name for field in dataclasses.fields(stats)) != _KNOWN_FIELDS:
        return replace_rows(stats, old, new)
    old, new = np.asarray(old), np.asarray(new)
    if old.shape != new.shape:
        raise ValueError(f"old rows {old.shape} and new rows {new.shape} must have one shape")
    m, k = stats.num_lfs, stats.cardinality
    before, after = old[:, j].astype(np.int64), new[:, j].astype(np.int64)
    others = old.copy()
    others[:, j] = ABSTAIN
    rows, cols = np.nonzero(others != ABSTAIN)
    cell = cols.astype(np.int64) * k + others[rows, cols]
    delta = np.zeros((k, m * k), np.int64)  # LF j's class × (LF l, class c')
    for votes_j, sign in ((after, 1), (before, -1)):
        use = votes_j[rows] != ABSTAIN
        delta += sign * np.bincount(
            votes_j[rows[use]] * (m * k) + cell[use], minlength=k * m * k
        ).reshape(k, m * k)
    delta = delta.reshape(k, m, k)
    stats.joint[j] += delta
    stats.joint[:, :, j, :] += delta.transpose(1, 2, 0)
    for votes_j, sign in ((after, 1), (before, -1)):
        counts = np.bincount(votes_j[votes_j != ABSTAIN], minlength=k)
        stats.joint[j, np.arange(k), j, np.arange(k)] += sign * counts
    _replace_row_fields(stats, others, before, after, j, class_counts)
    return stats


def _replace_row_fields(
    stats: LabelStatistics,
    others: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    j: int,
    class_counts: np.ndarray | None,
) -> None:
    """Updates ``covered``, ``overlaps`` and ``conflicts`` (as ``LabelStatistics.add`` counts
    them: a vote overlaps if its row has another vote, conflicts if its row has a vote of
    another class) for rows whose column ``j`` goes ``before`` → ``after``."""
    k = stats.cardinality
    if class_counts is None:
        class_counts = np.stack([(others == c).sum(axis=1) for c in range(k)], axis=1)
        class_counts += before[:, None] == np.arange(k)
    old_counts = np.asarray(class_counts, np.int64)
    new_counts = old_counts - (before[:, None] == np.arange(k)) + (after[:, None] == np.arange(k))
    flags = []
    for counts in (old_counts, new_counts):
        total = counts.sum(axis=1)
        # [r, 1 + k]: more than one vote; a vote of a class other than c (c = 0..k-1).
        flags.append((total > 0, np.concatenate([(total > 1)[:, None], total[:, None] > counts], 1)))
    (old_covered, old_flags), (new_covered, new_flags) = flags
    stats.covered += int(new_covered.sum()) - int(old_covered.sum())
    index = np.arange(before.size)
    for votes_j, row_flags, sign in ((after, new_flags, 1), (before, old_flags, -1)):
        voted = votes_j != ABSTAIN
        stats.overlaps[j] += sign * int(row_flags[voted, 0].sum())
        stats.conflicts[j] += sign * int(row_flags[index[voted], 1 + votes_j[voted]].sum())
    flipped = np.flatnonzero((old_flags != new_flags).any(axis=1))
    block = others[flipped]
    change = new_flags[flipped].astype(np.int64) - old_flags[flipped]
    stats.overlaps += ((block != ABSTAIN) * change[:, :1]).sum(axis=0)
    for c in range(k):
        stats.conflicts += ((block == c) * change[:, 1 + c : 2 + c]).sum(axis=0)


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
