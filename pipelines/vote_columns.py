"""The iterate session's vote columns: each LF's votes, nearest voters and the raw statistics.

:class:`VoteColumns` keeps ``votes``, ``nn_sim`` and ``nn_vote`` (column-major: an edit rewrites
one contiguous column) and the statistics of ``votes`` aligned while the session adds, replaces,
removes or reorders LFs. A column's nearest voters come from the cached graph or, for an LF with
at most the run's ``--fallback_max_voters`` voters, from all its voters (the pipeline's exact
fallback, :func:`~transforms.core.knn_merge.exact_column_if_small`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from transforms.core.incremental import ReverseGraph, append_lf, drop_lf, reorder_lfs, replace_column
from transforms.core.incremental_labeler import append_column
from transforms.core.knn import l2_normalise
from transforms.core.knn_merge import exact_column_if_small
from transforms.core.lfs import VOTE_DTYPE
from transforms.core.statistics import LabelStatistics

_CHUNK = 65536


class VoteColumns:
    """The per-LF columns of a session, one per LF in the session's LF order.

    Attributes:
        votes: ``int8 [n, m]`` the LFs' votes.
        nn_sim: ``float32 [n, m]`` each document's similarity to its nearest voter, per LF.
        nn_vote: ``int8 [n, m]`` that voter's vote.
        raw_stats: The statistics of ``votes``; ``None`` while there is no column.
    """

    def __init__(
        self,
        votes: np.ndarray,
        graph: ReverseGraph,
        cardinality: int,
        fallback_max_voters: int = 0,
        fallback_embeddings: np.ndarray | None = None,
    ):
        """Finds the nearest voters of every column of ``votes`` and their statistics.

        Args:
            votes: ``int8 [n, m]`` the LFs' votes.
            graph: The cached neighbour graph, reversed.
            cardinality: The number of classes.
            fallback_max_voters: The run's per-LF exact fallback bound (0 = off).
            fallback_embeddings: ``float32 [n, d]`` the vectors it searches (needed when on).

        Raises:
            ValueError: if the fallback is on but there are no embeddings.
        """
        self._graph = graph
        self._cardinality = cardinality
        self._fallback = _fallback_search(fallback_max_voters, fallback_embeddings)
        self.votes = np.asfortranarray(votes, VOTE_DTYPE)
        self.nn_sim = np.empty(votes.shape, np.float32, order="F")
        self.nn_vote = np.empty(votes.shape, VOTE_DTYPE, order="F")
        for j in range(votes.shape[1]):
            self.nn_sim[:, j], self.nn_vote[:, j] = self._nearest_voters(self.votes[:, j])
        self.raw_stats: LabelStatistics | None = (
            label_statistics(self.votes, cardinality) if votes.shape[1] else None
        )

    def _nearest_voters(self, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One LF's nearest voters: exact when the fallback covers it, else from the graph."""
        exact = exact_column_if_small(self._fallback[1], column, self._fallback[0]) if self._fallback else None
        return exact if exact is not None else self._graph.nearest_voters(column)

    def write(self, j: int, column: np.ndarray) -> None:
        """Makes ``column`` column ``j`` (``j`` = the number of columns appends one).

        Its nearest voters are found again; the raw statistics change by the rows that change.
        """
        nn_sim, nn_vote = self._nearest_voters(column)
        if j == self.votes.shape[1]:
            self.votes, self.nn_sim, self.nn_vote = (append_column(a) for a in (self.votes, self.nn_sim, self.nn_vote))
            self.votes[:, j] = -1
            self.raw_stats = append_lf(self.raw_stats) if self.raw_stats is not None else (
                label_statistics(self.votes, self._cardinality))  # fmt: skip
        changed = np.flatnonzero(self.votes[:, j] != column)
        old_rows = self.votes[changed]
        new_rows = old_rows.copy()
        new_rows[:, j] = column[changed]
        replace_column(self.raw_stats, old_rows, new_rows, j)
        self.votes[:, j], self.nn_sim[:, j], self.nn_vote[:, j] = column, nn_sim, nn_vote

    def delete(self, j: int) -> None:
        """Removes column ``j``."""
        self.raw_stats = drop_lf(self.raw_stats, self.votes, j) if self.votes.shape[1] > 1 else None
        self.votes, self.nn_sim, self.nn_vote = (
            np.asfortranarray(np.delete(a, j, axis=1)) for a in (self.votes, self.nn_sim, self.nn_vote)
        )

    def reorder(self, order: Sequence[int]) -> None:
        """Puts the columns in the order ``order`` (new position -> old column)."""
        self.votes, self.nn_sim, self.nn_vote = (
            np.asfortranarray(a[:, order]) for a in (self.votes, self.nn_sim, self.nn_vote)
        )
        self.raw_stats = reorder_lfs(self.raw_stats, order)


def label_statistics(votes: np.ndarray, cardinality: int) -> LabelStatistics:
    """:class:`LabelStatistics` of a label matrix, added in chunks (bounded memory).

    Args:
        votes: ``int8 [n, m]`` votes (``-1`` = abstain).
        cardinality: The number of classes.

    Returns:
        The statistics of all ``n`` rows.
    """
    stats = LabelStatistics.empty(votes.shape[1], cardinality)
    for begin in range(0, votes.shape[0], _CHUNK):
        stats.add(votes[begin : begin + _CHUNK])
    return stats


def _fallback_search(max_voters: int, embeddings: np.ndarray | None) -> tuple[int, np.ndarray] | None:
    """``(bound, normalised vectors)`` of the run's per-LF exact fallback, ``None`` when off.

    Raises:
        ValueError: if the fallback is on but the cache holds no embeddings.
    """
    if not max_voters:
        return None
    if embeddings is None:
        raise ValueError(
            f"the run used --fallback_max_voters={max_voters} but the cache holds no "
            "embeddings to search: run the pipeline with --cache_dir again"
        )
    return max_voters, l2_normalise(embeddings)
