"""The numeric core of the partitioned kNN graph: partitions, assignment, merge, exact voters.

An IVF-style self-join: spherical k-means centroids from a bounded sample; each vector lives in
its *home* partition (nearest centroid) and is sent, as a query, to its ``spill`` nearest
partitions; each partition is searched on its own; a document's top-k lists from the partitions
it visited are merged (:mod:`transforms.core.top_k_lists`). All similarities are exact dot products of stored vectors, and ties are
broken by id, so the merged lists do not depend on how the work was split.

>>> rng = np.random.default_rng(0)
>>> x = l2_normalise(rng.normal(size=(200, 8)))
>>> centroids = spherical_kmeans(x, 4, seed=0)
>>> home, spill = assign_partitions(x, centroids, spill=2)
>>> bool(np.all(spill[:, 0] == home)), spill.shape
(True, (200, 2))
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from transforms.core.knn import l2_normalise
from transforms.core.votes import ABSTAIN, VOTE_DTYPE


def spherical_kmeans(
    sample: np.ndarray, k: int, *, iterations: int = 10, seed: int = 0
) -> np.ndarray:
    """Fits ``k`` unit-norm centroids to unit-norm rows (cosine k-means), deterministically.

    Args:
        sample: ``float32 [s, d]`` L2-normalised rows, ``s >= 1``.
        k: Number of centroids; capped at ``s``.
        iterations: Lloyd iterations.
        seed: Seed of the initial choice of centroids.

    Returns:
        ``float32 [min(k, s), d]``.
    """
    sample = np.asarray(sample, np.float32)
    if sample.ndim != 2 or sample.shape[0] == 0:
        raise ValueError(f"sample has shape {sample.shape}; need [rows >= 1, d]")
    k = min(int(k), sample.shape[0])
    rng = np.random.default_rng(seed)
    centroids = sample[rng.choice(sample.shape[0], k, replace=False)].copy()
    for _ in range(iterations):
        nearest = (sample @ centroids.T).argmax(axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, sample)
        empty = ~np.any(sums != 0, axis=1)
        sums[empty] = centroids[empty]  # An empty cluster keeps its centroid.
        centroids = l2_normalise(sums)
    return centroids


AUTO_SPILL = 0  # spill chosen from the partition count by auto_spill
AUTO_SPILL_FACTOR = 1.5


def auto_spill(num_partitions: int) -> int:
    """The default spill for ``num_partitions`` partitions: ``ceil(1.5 · sqrt(p))``, in [3, p].

    Measured at 1M × 384 (10 partitions, benchmarks/knn_graph.py): spill 3 gives recall@10
    0.952, 4 gives 0.985, 6 gives 0.994 at 48× exact; 5 (this rule) is the smallest spill near
    0.99 that stays near 50×. Growing like ``sqrt(p)`` keeps the searched share falling with
    corpus size (4.8 % of 1000 partitions at 100M), so the cost per document stays bounded.

    >>> [auto_spill(p) for p in (1, 2, 4, 10, 100, 1000)]
    [1, 2, 3, 5, 15, 48]
    """
    return max(min(3, num_partitions), min(num_partitions, math.ceil(AUTO_SPILL_FACTOR * math.sqrt(num_partitions))))


def searched_partitions(spill: int, num_partitions: int) -> int:
    """Partitions each query is searched in: ``spill`` (:func:`auto_spill` for
    :data:`AUTO_SPILL`), at most ``num_partitions``.

    >>> searched_partitions(AUTO_SPILL, 10), searched_partitions(6, 10), searched_partitions(6, 4)
    (5, 6, 4)
    """
    return min(auto_spill(num_partitions) if spill == AUTO_SPILL else spill, num_partitions)


def num_partitions(num_rows: int, partition_rows: int, spill: int = AUTO_SPILL) -> int:
    """Partitions for ``num_rows`` vectors, about ``partition_rows`` each (1 = one index).

    When the spill (``spill``, or :func:`auto_spill` for :data:`AUTO_SPILL`) would send every
    query to every partition (``ceil(n / partition_rows) <= 3`` by default), partitioning
    searches the same rows as one index, with a copy of each row per partition and a merge of
    every query's lists: one partition then. Measured at 300k × 384 (benchmarks/knn_graph.py,
    docs/scale.md): three partitions searched by every query 83.3 s, recall@10 0.9998; one
    index 56.5 s, recall 1.0000, a quarter of the shuffle.

    >>> num_partitions(10, 100_000), num_partitions(1_000_000, 100_000)
    (1, 10)
    >>> num_partitions(300_000, 100_000), num_partitions(300_000, 100_000, spill=2)
    (1, 3)
    """
    if partition_rows < 1:
        raise ValueError(f"partition_rows={partition_rows} must be at least 1 (try 100000)")
    p = max(1, math.ceil(num_rows / partition_rows))
    return 1 if searched_partitions(spill, p) == p else p


def assign_partitions(
    vectors: np.ndarray, centroids: np.ndarray, spill: int
) -> tuple[np.ndarray, np.ndarray]:
    """Home partition and the ``spill`` nearest partitions of each vector.

    Args:
        vectors: ``float32 [n, d]``.
        centroids: ``float32 [p, d]``.
        spill: Partitions each vector is searched in, as a query (capped at ``p``);
            :data:`AUTO_SPILL` (0) for :func:`auto_spill` of ``p``.

    Returns:
        ``(home int64 [n], spill int64 [n, min(spill, p)])``; ``spill[:, 0] == home``. Ties go
        to the lower partition number.
    """
    if spill < 0:
        raise ValueError(f"spill={spill} must be at least 1 (the home partition), or 0 for auto")
    scores = np.asarray(vectors, np.float32) @ np.asarray(centroids, np.float32).T
    s = searched_partitions(spill, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :s]
    return order[:, 0].copy(), order


def sub_shard(key_hash: int, num_shards: int) -> int:
    """The sub-shard of a row in a partition split into ``num_shards`` (by a stable hash).

    >>> sub_shard(7, 1), sub_shard(7, 3)
    (0, 1)
    """
    return int(key_hash % max(1, num_shards))


def top_k_exact(
    queries: np.ndarray,
    self_positions: np.ndarray,
    data: np.ndarray,
    candidates: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-scores candidate rows exactly and keeps each query's ``k`` best, self excluded.

    ``data`` must be sorted by id, so that ties broken by position are ties broken by id.

    Args:
        queries: ``float32 [b, d]``.
        self_positions: ``int [b]`` each query's own position in ``data`` (``-1`` = absent).
        data: ``float32 [n, d]`` the searched rows, in id order.
        candidates: ``int [b, c]`` distinct row positions in ``data`` per query; ``-1`` = none.
        k: Neighbours kept.

    Returns:
        ``(positions int64 [b, k'], sims float32 [b, k'])`` with ``k' = min(k, c)``, descending
        similarity, ties by position; missing slots hold ``-1`` and ``-inf``.

    >>> data = np.float32([[1, 0], [0.6, 0.8], [0.6, 0.8], [0, 1]])
    >>> top_k_exact(data[:1], np.array([0]), data, np.array([[3, 2, 1, 0]]), 2)
    (array([[1, 2]]), array([[0.6, 0.6]], dtype=float32))
    """
    candidates = np.asarray(candidates, np.int64)
    valid = (candidates >= 0) & (candidates != np.asarray(self_positions)[:, None])
    rows = data[np.where(valid, candidates, 0)].astype(np.float64)
    exact = np.einsum("bd,bkd->bk", np.asarray(queries, np.float64), rows).astype(np.float32)
    exact = np.where(valid, exact, -np.inf).astype(np.float32)
    tie = np.where(valid, candidates, np.iinfo(np.int64).max)
    order = np.lexsort((tie, -exact), axis=-1)[:, :k]
    positions = np.take_along_axis(np.where(valid, candidates, -1), order, axis=1)
    return positions, np.take_along_axis(exact, order, axis=1)


def exact_nearest_voters(
    queries: np.ndarray,
    query_rows: np.ndarray,
    voters: np.ndarray,
    voter_rows: np.ndarray,
    voter_votes: np.ndarray,
    *,
    block_size: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Epoxy for one LF: each query's most similar voter over **all** its voters.

    The per-LF fallback for LFs of small coverage, where the nearest voter is often beyond the
    k-th neighbour. Same rules as :func:`transforms.core.extension.nearest_voters`: a row is never
    its own voter, and a tie between voters of different classes gives ``-1``.

    Args:
        queries: ``float32 [q, d]`` L2-normalised query rows.
        query_rows: ``int [q]`` their row numbers (or any integer keys; to exclude self).
        voters: ``float32 [v, d]`` L2-normalised rows the LF voted on.
        voter_rows: ``int [v]`` their row numbers (keys of the same kind as ``query_rows``).
        voter_votes: ``int [v]`` their votes.
        block_size: Query rows per matrix product.

    Returns:
        ``(nn_sim float32 [q], nn_vote int8 [q])``.

    >>> q = np.eye(3, dtype=np.float32)
    >>> exact_nearest_voters(q, np.arange(3), q[[0, 1]], np.array([0, 1]), np.array([1, 0]))
    (array([0., 0., 0.], dtype=float32), array([ 0,  1, -1], dtype=int8))
    """
    nn_sim, nn_vote, _ = exact_nearest_voter_index(
        queries, query_rows, voters, voter_rows, voter_votes, block_size=block_size
    )
    return nn_sim, nn_vote


def exact_nearest_voter_index(
    queries: np.ndarray,
    query_rows: np.ndarray,
    voters: np.ndarray,
    voter_rows: np.ndarray,
    voter_votes: np.ndarray,
    *,
    block_size: int = 8192,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`exact_nearest_voters` plus which voter each query's ``nn_sim`` comes from.

    Returns:
        ``(nn_sim float32 [q], nn_vote int8 [q], best int64 [q])``: ``best`` is the index (into
        ``voters``) of the first voter at the best similarity, ``-1`` when there is none.

    >>> q = np.eye(3, dtype=np.float32)
    >>> exact_nearest_voter_index(q, np.arange(3), q[[0, 1]], np.array([0, 1]), np.array([1, 0]))[2]
    array([1, 0, 0])
    """
    q = queries.shape[0]
    nn_sim = np.full(q, -np.inf, np.float32)
    nn_vote = np.full(q, ABSTAIN, VOTE_DTYPE)
    best_index = np.full(q, -1, np.int64)
    if q == 0 or voters.shape[0] == 0:
        return nn_sim, nn_vote, best_index
    voter_votes = np.asarray(voter_votes, np.int64)
    voters64 = np.asarray(voters, np.float64)
    for start in range(0, q, block_size):
        stop = min(q, start + block_size)
        sims = (np.asarray(queries[start:stop], np.float64) @ voters64.T).astype(np.float32)
        sims[np.asarray(query_rows[start:stop])[:, None] == np.asarray(voter_rows)[None, :]] = -np.inf
        best = sims.max(axis=1)
        at_best = (sims == best[:, None]) & np.isfinite(best)[:, None]
        low = np.where(at_best, voter_votes[None, :], np.iinfo(np.int64).max).min(axis=1)
        high = np.where(at_best, voter_votes[None, :], ABSTAIN).max(axis=1)
        has = np.isfinite(best)
        nn_sim[start:stop] = best
        nn_vote[start:stop] = np.where(has & (low == high), high, ABSTAIN)
        best_index[start:stop] = np.where(has, sims.argmax(axis=1), -1)
    return nn_sim, nn_vote, best_index


def exact_column_if_small(
    unit_vectors: np.ndarray, column: np.ndarray, max_voters: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-LF exact fallback over a corpus held in memory (the ``iterate`` session).

    Args:
        unit_vectors: ``float32 [n, d]`` L2-normalised rows.
        column: ``int8 [n]`` one LF's votes.
        max_voters: The fallback's bound (``--fallback_max_voters``; 0 = off).

    Returns:
        ``(nn_sim [n], nn_vote [n])`` over all the LF's voters when it has between 1 and
        ``max_voters`` voters (as the pipeline's :class:`~transforms.exact_fallback.ExactFallback`
        chooses), else ``None`` (the kNN graph's nearest voters apply).

    >>> x = np.eye(3, dtype=np.float32)
    >>> exact_column_if_small(x, np.array([1, 0, -1], np.int8), 2)[1].tolist()
    [0, 1, -1]
    >>> exact_column_if_small(x, np.array([1, 0, -1], np.int8), 1) is None
    True
    """
    voters = np.flatnonzero(np.asarray(column) != ABSTAIN)
    if not 1 <= voters.size <= max_voters:
        return None
    rows = np.arange(len(column))
    return exact_nearest_voters(unit_vectors, rows, unit_vectors[voters], voters, np.asarray(column)[voters])


VoterSet = tuple[np.ndarray, np.ndarray, np.ndarray]  # keys uint64 [v], vectors [v, d], votes [v]


def exact_fallback_columns(
    queries: np.ndarray,
    query_keys: np.ndarray,
    voter_sets: Mapping[int, VoterSet],
    no_source: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The per-LF exact fallback for a batch: the nearest voter of each query over **all** the
    voters of each LF in ``voter_sets`` (:func:`exact_nearest_voter_index`).

    Args:
        queries: ``float32 [q, d]`` L2-normalised rows.
        query_keys: ``uint64 [q]`` their keys (a row is never its own voter).
        voter_sets: LF column → ``(keys uint64 [v], vectors float32 [v, d], votes [v])``.
        no_source: The source key of "no voter".

    Returns:
        ``(lfs int64 [s], nn_sim float32 [q, s], nn_vote int8 [q, s], nn_source uint64 [q, s])``
        with the LF columns in ascending order; ``nn_source`` is the key of the voter
        ``nn_sim`` comes from (the first at the best similarity).

    >>> x = np.eye(3, dtype=np.float32)
    >>> keys = np.array([7, 8, 9], np.uint64)
    >>> lfs, sim, vote, source = exact_fallback_columns(x, keys, {2: (keys[:2], x[:2], np.array([1, 0]))})
    >>> lfs.tolist(), vote[:, 0].tolist(), source[:, 0].tolist()
    ([2], [0, 1, -1], [8, 7, 7])
    """
    lfs = np.asarray(sorted(voter_sets), np.int64)
    q = queries.shape[0]
    nn_sim = np.full((q, lfs.size), -np.inf, np.float32)
    nn_vote = np.full((q, lfs.size), ABSTAIN, VOTE_DTYPE)
    nn_source = np.full((q, lfs.size), no_source, np.uint64)
    for column, lf in enumerate(lfs):
        keys, vectors, votes = voter_sets[int(lf)]
        if len(keys) == 0:
            continue
        sim, vote, best = exact_nearest_voter_index(queries, query_keys, vectors, keys, votes)
        nn_sim[:, column], nn_vote[:, column] = sim, vote
        nn_source[:, column] = np.where(best >= 0, np.asarray(keys, np.uint64)[np.maximum(best, 0)], no_source)
    return lfs, nn_sim, nn_vote, nn_source
