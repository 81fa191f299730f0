"""The kNN graph at corpus scale: an IVF-style partitioned join, searched with ScaNN per group.

:class:`KnnJoin` finds, for every *query* ``(id, vector)``, its nearest *data* rows:

1. **Centroids** (a small singleton): ``P`` spherical k-means centroids fitted on the
   ``centroid_sample_rows`` data rows of smallest id hash; ``P = ceil(count / partition_rows)``,
   or 1 where the spill would send every query to every partition
   (:func:`transforms.core.knn_merge.num_partitions`).
2. **Assignment**: each data row goes to its home partition (nearest centroid); each query goes
   to its ``spill`` nearest partitions. Shuffle volume: ``spill · N`` vectors for the self-join
   (a row's home copy is also its first query copy), ``(1 + spill) · N`` for two inputs.
3. **Groups**: a partition with more than ``max_group_rows`` data rows (or queries) is split by a
   stable id hash into sub-groups (data sub-shard × query sub-shard), so a worker holds at most
   ``2 · max_group_rows`` vectors. The layout (a few ints per partition) is a small side input.
4. **Search**: rows travel to their groups in packed chunks (:mod:`transforms.knn_groups`;
   through files with ``shuffle_dir``, :mod:`transforms.knn_shuffle`);
   per group, a ScaNN index is built in the worker over the group's data rows and searched by
   its queries (:func:`transforms.neighbours.search_group`); candidates are re-scored exactly.
5. **Merge**: the top-k lists of a query from every group it visited meet in its merge bucket
   (a stable hash of its id) and are merged a bucket at a time
   (:func:`transforms.core.top_k_lists.merge_top_k_lists`); a query that visited one group only
   skips the merge (its list is final).

With one partition this is the single-index path. :class:`NeighbourGraph` is the self-join:
each document is one row, data and query at once, so it travels once to its home group. Only
the centroids and the layout are side inputs; both are ``O(P · d)``. Inside the join a vector
travels as the raw bytes of its ``float32`` values (:func:`packed_row`): Beam's default coder
copies bytes but pickles an ndarray.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import apache_beam as beam
import numpy as np

from transforms.core.ids import stable_hash
from transforms.core.knn import l2_normalise
from transforms.core.knn_merge import assign_partitions, num_partitions, spherical_kmeans, top_k_exact
from transforms.core.top_k_lists import merge_top_k, pack_top_k, unpack_top_k
from transforms.knn_groups import (
    BOTH,
    DATA,
    FINAL,
    QUERY,
    MergeBucketFn,
    SearchGroupFn,
    ToGroupsFn,
    merge_bucket_count,
)
from transforms.knn_shuffle import RemoveShuffleDir, join_directory
from transforms.neighbours import LoadedIndex, NeighbourConfig, build_searcher, search_candidates

Row = tuple[str, np.ndarray]
PackedRow = tuple[str, bytes]
AssignedRow = tuple[str, bytes, int, tuple[int, ...]]  # id, vector bytes, role, partitions


def packed_row(row: Row, role: int = BOTH) -> tuple[str, bytes, int]:
    """``(id, vector)`` → ``(id, float32 bytes of the vector, role)``."""
    return row[0], np.asarray(row[1], np.float32).tobytes(), role


def unpacked(vector: bytes) -> np.ndarray:
    """The read-only ``float32 [d]`` vector of :func:`packed_row` bytes."""
    return np.frombuffer(vector, np.float32)


def fit_centroids(count: int, sample: list[PackedRow], config: NeighbourConfig) -> np.ndarray | None:
    """The partition centroids ``float32 [P, d]`` for ``count`` data rows; ``None`` if no data."""
    if not sample:
        return None
    rows = sorted(sample, key=lambda row: row[0])
    vectors = l2_normalise(np.stack([unpacked(vector) for _, vector in rows]))
    p = num_partitions(count, config.partition_rows, config.spill)
    if p == 1:
        return vectors[:1] * 0.0  # One partition: every row is home there.
    return spherical_kmeans(vectors, p, iterations=config.kmeans_iterations, seed=config.seed)


def partitions_of(vector: np.ndarray, centroids: np.ndarray | None, spill: int) -> tuple[int, ...]:
    """The ``spill`` nearest partitions of a vector, nearest first (``()`` without data).

    >>> partitions_of(np.float32([0, 1]), np.float32([[1, 0], [0, 1]]), 1)
    (1,)
    """
    if centroids is None:
        return ()
    if len(centroids) == 1:
        return (0,)  # One partition: no product needed.
    return tuple(int(p) for p in assign_partitions(vector[np.newaxis], centroids, spill)[1][0])


def group_layout(
    partition: int, counts: Mapping[str, list[int]], max_group_rows: int
) -> tuple[int, tuple[int, int]]:
    """``(partition, (data_shards, query_shards))``; 0 shards when a side is empty."""
    data = sum(counts["data"])
    queries = sum(counts["queries"])
    if data == 0 or queries == 0:
        return partition, (0, 0)
    return partition, (math.ceil(data / max_group_rows), math.ceil(queries / max_group_rows))


def assigned(row: tuple[str, bytes, int], centroids: np.ndarray | None, spill: int) -> AssignedRow:
    """``(id, vector, role)`` → ``+ partitions``: the home partition first; a query's ``spill``."""
    doc_id, vector, role = row
    return doc_id, vector, role, partitions_of(unpacked(vector), centroids, spill if role & QUERY else 1)


def partition_counts(row: AssignedRow) -> list[tuple[int, tuple[int, int]]]:
    """``(partition, (data rows, queries))`` contributions of one assigned row."""
    _, _, role, partitions = row
    counts = [(partitions[0], (1, 0))] if role & DATA and partitions else []
    return counts + ([(p, (0, 1)) for p in partitions] if role & QUERY else [])


def sum_pairs(pairs: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """Element-wise sum of ``(data, queries)`` counts."""
    data = queries = 0
    for d, q in pairs:
        data, queries = data + d, queries + q
    return data, queries


class MergeTopKFn(beam.CombineFn):
    """Merges the top-k lists of one document (order and split independent).

    Values are ``(ids, sims)`` or their :func:`~transforms.core.knn_merge.pack_top_k` bytes.
    The accumulator is a list of packed lists: adding appends; :meth:`compact` (called by the
    runner before an accumulator is shuffled) and :meth:`extract_output` merge. What the shuffle
    holds per document is one ``bytes`` object, not ``k + 2`` Python objects.
    """

    def __init__(self, k: int):
        self._k = k

    def create_accumulator(self) -> list[bytes]:
        return []

    def add_input(self, accumulator: list[bytes], value: Any) -> list[bytes]:
        accumulator.append(value if isinstance(value, bytes) else pack_top_k(*value))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[bytes]]) -> list[bytes]:
        return [packed for accumulator in accumulators for packed in accumulator]

    def compact(self, accumulator: list[bytes]) -> list[bytes]:
        return accumulator if len(accumulator) < 2 else [pack_top_k(*self.extract_output(accumulator))]

    def extract_output(self, accumulator: list[bytes]) -> tuple[list[str], np.ndarray]:
        return merge_top_k([unpack_top_k(packed) for packed in accumulator], self._k)


def _join(rows: beam.PCollection, config: NeighbourConfig) -> beam.PCollection:
    """``(id, vector bytes, role)`` rows → ``(query_id, (ids, sims))`` (:class:`KnnJoin`)."""
    data = rows | "DataRows" >> beam.FlatMap(lambda row: [row[:2]] if row[2] & DATA else [])
    count = data | "CountData" >> beam.combiners.Count.Globally()
    sample = data | "CentroidSample" >> beam.combiners.Top.Of(
        config.centroid_sample_rows, key=lambda row: -stable_hash(row[0])
    )
    centroids = beam.pvalue.AsSingleton(
        count
        | "FitCentroids"
        >> beam.Map(fit_centroids, sample=beam.pvalue.AsSingleton(sample), config=config)
    )
    homed = rows | "AssignPartitions" >> beam.Map(assigned, centroids=centroids, spill=config.spill)
    layout, merge_buckets = _layout(homed, config)
    shuffle_dir = join_directory(config.shuffle_dir) if config.shuffle_dir else ""
    searched = (
        homed
        | "ToGroups" >> beam.ParDo(ToGroupsFn(shuffle_dir), layout=layout)
        | "GroupByPartition" >> beam.GroupByKey()
        | "SearchGroups"
        >> beam.ParDo(SearchGroupFn(config, shuffle_dir), merge_buckets=merge_buckets).with_outputs(
            FINAL, main="partial"
        )
    )
    merged = (
        searched.partial
        | "GroupByMergeBucket" >> beam.GroupByKey()
        | "MergeBuckets" >> beam.ParDo(MergeBucketFn(config.num_neighbours))
    )
    graph = (searched[FINAL], merged) | "Graph" >> beam.Flatten()
    if shuffle_dir:
        _ = graph | "RemoveShuffleDir" >> RemoveShuffleDir(shuffle_dir)
    return graph


def _layout(homed: beam.PCollection, config: NeighbourConfig) -> tuple[Any, Any]:
    """The groups' layout (``AsDict`` partition → shards) and the merge buckets (``AsSingleton``)."""
    per_partition = (
        homed
        | "PartitionCounts" >> beam.FlatMap(partition_counts)
        | "CountPerPartition" >> beam.CombinePerKey(sum_pairs)
    )
    layout = per_partition | "Layout" >> beam.MapTuple(
        lambda p, c: group_layout(p, {"data": [c[0]], "queries": [c[1]]}, config.max_group_rows)
    )
    merge_buckets = (
        per_partition
        | "QueryVisits" >> beam.MapTuple(lambda _, c: c[1])
        | "SumQueryVisits" >> beam.CombineGlobally(sum)
        | "MergeBucketCount" >> beam.Map(merge_bucket_count)
    )
    return beam.pvalue.AsDict(layout), beam.pvalue.AsSingleton(merge_buckets)


class KnnJoin(beam.PTransform):
    """``{"data": (id, vector), "queries": (id, vector)}`` → ``(query_id, (ids, sims))``.

    A query's own id is never among its neighbours. Queries with no data row in any partition
    they visit get no output.
    """

    def __init__(self, config: NeighbourConfig):
        super().__init__()
        self._config = config

    def expand(self, inputs: Mapping[str, beam.PCollection]) -> beam.PCollection:
        rows = (
            inputs["data"] | "PackData" >> beam.Map(packed_row, DATA),
            inputs["queries"] | "PackQueries" >> beam.Map(packed_row, QUERY),
        ) | "AllRows" >> beam.Flatten()
        return _join(rows, self._config)


class NeighbourGraph(beam.PTransform):
    """``(id, vector)`` → ``(id, (neighbour_ids, sims))``, the kNN graph (self excluded).

    The self-join: each document is one row, data and query at once (:data:`BOTH`).
    """

    def __init__(self, config: NeighbourConfig = NeighbourConfig()):
        super().__init__()
        self._config = config

    def expand(self, embeddings: beam.PCollection) -> beam.PCollection:
        return _join(embeddings | "PackRows" >> beam.Map(packed_row, BOTH), self._config)


def knn_graph_in_memory(
    vectors: np.ndarray, config: NeighbourConfig, *, sample_rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The partitioned self-join in one process, over row numbers (benchmarks, tests).

    The same steps as :class:`NeighbourGraph` (centroids from a sample, home and spill
    partitions, groups capped at ``max_group_rows``, a ScaNN index per group, exact re-scoring,
    merge), with row numbers as ids (row order = id order).

    Args:
        vectors: ``float32 [n, d]`` L2-normalised rows.
        config: The graph configuration.
        sample_rows: Rows to fit the centroids on (default: ``centroid_sample_rows`` rows
            spread evenly over the corpus).

    Returns:
        ``(neighbours int64 [n, k], sims float32 [n, k], figures)``; missing slots hold ``-1`` /
        ``-inf``; ``figures`` has ``partitions``, ``groups``, ``max_group_rows`` and
        ``shuffle_bytes`` (vector bytes sent to the groups, ids as 8 bytes; as
        :class:`NeighbourGraph`, a row's copy to its home group counted once).
    """
    n, d = vectors.shape
    k = config.num_neighbours
    p = num_partitions(n, config.partition_rows, config.spill)
    home, spill = _in_memory_partitions(vectors, p, config, sample_rows)
    best_pos = np.full((n, k), -1, np.int64)
    best_sim = np.full((n, k), -np.inf, np.float32)
    row_bytes = d * 4 + 8
    figures = {"partitions": float(p), "groups": 0.0, "max_group_rows": 0.0, "shuffle_bytes": 0.0}
    for partition in range(int(home.max()) + 1 if n else 0):
        data_rows = np.flatnonzero(home == partition)
        query_rows = np.flatnonzero((spill == partition).any(axis=1))
        if data_rows.size == 0 or query_rows.size == 0:
            continue
        data_shards = math.ceil(data_rows.size / config.max_group_rows)
        query_shards = math.ceil(query_rows.size / config.max_group_rows)
        # A data row is a query of its home group too: that copy travels once (role both).
        figures["shuffle_bytes"] += row_bytes * (
            data_rows.size * query_shards + query_rows.size * data_shards - data_rows.size
        )
        for data_part in np.array_split(data_rows, data_shards):
            data_vectors = np.ascontiguousarray(vectors[data_part])
            index = LoadedIndex(build_searcher(data_vectors, config), data_part, data_vectors)
            for query_part in np.array_split(query_rows, query_shards):
                figures["groups"] += 1
                figures["max_group_rows"] = max(figures["max_group_rows"], data_part.size)
                positions, sims = _search_rows(index, query_part, vectors, k, config)
                _merge_rows(best_pos, best_sim, query_part, positions, sims, k)
    return best_pos, best_sim, figures


def _in_memory_partitions(
    vectors: np.ndarray, p: int, config: NeighbourConfig, sample_rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's home partition ``int64 [n]`` and spill partitions ``[n, s]`` of ``p``.

    The centroids are fitted on ``sample_rows`` (``None``: ``centroid_sample_rows`` rows spread
    evenly over the corpus); with one partition every row is at home in partition 0.
    """
    n = vectors.shape[0]
    if sample_rows is None:
        sample_rows = np.linspace(0, n - 1, min(n, config.centroid_sample_rows)).astype(np.int64)
    if p == 1:
        home = np.zeros(n, np.int64)
        return home, home[:, None]
    centroids = spherical_kmeans(
        vectors[sample_rows], p, iterations=config.kmeans_iterations, seed=config.seed
    )
    home, spill = [], []
    for start in range(0, n, 65536):
        h, s = assign_partitions(vectors[start : start + 65536], centroids, config.spill)
        home.append(h)
        spill.append(s)
    return np.concatenate(home), np.concatenate(spill)


def _search_rows(
    index: LoadedIndex,
    query_rows: np.ndarray,
    vectors: np.ndarray,
    k: int,
    config: NeighbourConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Searches one group by row numbers; returns row-number neighbours and exact sims."""
    data_rows = index.ids
    where = np.searchsorted(data_rows, query_rows)
    where = np.minimum(where, data_rows.size - 1)
    self_positions = np.where(data_rows[where] == query_rows, where, -1)
    kk = min(k + 1, data_rows.size)
    out_pos, out_sim = [], []
    for start in range(0, query_rows.size, config.query_batch_size):
        stop = start + config.query_batch_size
        queries = np.ascontiguousarray(vectors[query_rows[start:stop]])
        candidates = search_candidates(index.searcher, queries, kk, config.parallel_search)
        positions, sims = top_k_exact(queries, self_positions[start:stop], index.vectors, candidates, k)
        out_pos.append(np.where(positions >= 0, data_rows[np.maximum(positions, 0)], -1))
        out_sim.append(sims)
    return np.concatenate(out_pos), np.concatenate(out_sim)


def _merge_rows(
    best_pos: np.ndarray,
    best_sim: np.ndarray,
    rows: np.ndarray,
    positions: np.ndarray,
    sims: np.ndarray,
    k: int,
) -> None:
    """Merges a group's top-k lists into the running ones, in place (ties by row number)."""
    pos = np.concatenate([best_pos[rows], positions], axis=1)
    sim = np.concatenate([best_sim[rows], sims], axis=1)
    tie = np.where(pos >= 0, pos, np.iinfo(np.int64).max)
    order = np.lexsort((tie, -sim), axis=-1)[:, :k]
    best_pos[rows] = np.take_along_axis(pos, order, axis=1)
    best_sim[rows] = np.take_along_axis(sim, order, axis=1)
