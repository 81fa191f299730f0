"""The kNN join's groups: rows sent to their groups in packed chunks, one ScaNN search per group.

A row of :class:`transforms.knn_graph.KnnJoin` has a *role*: data (indexed), query (searched)
or both (the self-join of :class:`~transforms.knn_graph.NeighbourGraph`, where each document
is both). :class:`ToGroupsFn` sends each row once to every group it belongs to — a row that is
data and query of the same group travels once, as :data:`BOTH` — and packs the rows of a group
into chunks of up to :data:`CHUNK_ROWS` rows (``(ids, roles, visits, float32 bytes)``), so the
shuffle moves a few large elements instead of one small element per row and copy. Beam's coder
copies the bytes without pickling.

:class:`SearchGroupFn` rebuilds a group's data and query matrices in id order straight from the
chunks (one copy each; one shared copy when every row is both), builds the ScaNN index and emits
``(query_id, (neighbour_ids, sims))`` per query to the ``final`` output when the group is the
only one the query visits (its list needs no merge). The other queries' lists leave in blocks of
up to :data:`BLOCK_LISTS` lists, keyed by *merge bucket* (a stable hash of the query id, so all
lists of a query meet in one bucket); :class:`MergeBucketFn` merges a whole bucket with array
operations. A query's lists thus cross the shuffle as a few large elements, not one element per
(query, group), and with a shuffle directory the blocks wait on disk, not in the runner's memory.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from transforms.core.ids import stable_hash
from transforms.core.knn_merge import sub_shard
from transforms.core.top_k_lists import merge_top_k_lists
from transforms.dead_letter import METRICS_NAMESPACE
from transforms.knn_shuffle import Chunk, get_block, pack_lists, put_block, read_chunk, unpack_lists, write_chunk
from transforms.neighbours import NeighbourConfig, search_group

GroupKey = tuple[int, int, int]  # (partition, data sub-shard, query sub-shard)
DATA, QUERY, BOTH = 1, 2, 3  # role bits of a row
FINAL = "final"  # SearchGroupFn's output of queries that visit one group only
CHUNK_ROWS = 1024  # rows per packed chunk
MAX_BUFFERED_ROWS = 16_384  # rows a bundle buffers before it flushes every chunk (≈ 25 MB at d = 384)
BLOCK_LISTS = 4096  # partial lists per block a group sends to a merge bucket
MERGE_BUCKET_LISTS = 200_000  # partial top-k lists per merge bucket (≈ 0.1 GB of ids and sims)


def memberships(
    doc_id: str, role: int, partitions: Sequence[int], layout: Mapping[int, tuple[int, int]]
) -> tuple[dict[GroupKey, int], int]:
    """The groups a row belongs to, with its role in each, and how many groups it searches.

    A data row belongs to every query sub-shard of its home partition (``partitions[0]``), a
    query to every data sub-shard of each of its partitions; an empty side (0 shards) skips the
    partition.

    >>> memberships("a", BOTH, (0,), {0: (1, 1)})
    ({(0, 0, 0): 3}, 1)
    >>> memberships("a", QUERY, (0, 1), {0: (2, 1), 1: (0, 0)})
    ({(0, 0, 0): 2, (0, 1, 0): 2}, 2)
    """
    groups: dict[GroupKey, int] = {}
    if role & DATA:
        home = partitions[0]
        data_shards, query_shards = layout.get(home, (0, 0))
        if data_shards:
            shard = sub_shard(stable_hash("data:" + doc_id), data_shards)
            for query_shard in range(query_shards):
                groups[(home, shard, query_shard)] = DATA
    visits = 0
    if role & QUERY:
        for partition in partitions:
            data_shards, query_shards = layout.get(partition, (0, 0))
            if data_shards == 0:
                continue
            shard = sub_shard(stable_hash("query:" + doc_id), query_shards)
            for data_shard in range(data_shards):
                key = (partition, data_shard, shard)
                groups[key] = groups.get(key, 0) | QUERY
                visits += 1
    return groups, visits


class _ChunkBuilder:
    """The rows of one group buffered in a bundle."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.roles = bytearray()
        self.visits: list[int] = []
        self.vectors: list[bytes] = []

    def add(self, doc_id: str, role: int, visits: int, vector: bytes) -> None:
        self.ids.append(doc_id)
        self.roles.append(role)
        self.visits.append(visits)
        self.vectors.append(vector)

    def pack(self) -> Chunk:
        visits = np.asarray(self.visits, np.uint32).tobytes()
        return self.ids, bytes(self.roles), visits, b"".join(self.vectors)


class ToGroupsFn(beam.DoFn):
    """``(id, vector bytes, role, partitions)`` → ``(group key, chunk)``, packed per bundle.

    Memory per bundle is bounded: at most :data:`MAX_BUFFERED_ROWS` rows wait for their chunk.
    With a ``shuffle_dir`` each chunk is written to a file there and its path is emitted
    instead (:mod:`transforms.knn_shuffle`).
    """

    def __init__(self, shuffle_dir: str = "") -> None:
        self._shuffle_dir = shuffle_dir
        self._shuffle_bytes = Metrics.counter(METRICS_NAMESPACE, "knn_graph/shuffle_bytes")
        self._chunks: dict[GroupKey, _ChunkBuilder] = {}
        self._buffered = 0

    def start_bundle(self) -> None:
        self._chunks, self._buffered = {}, 0

    def process(
        self, row: tuple[str, bytes, int, tuple[int, ...]], layout: Mapping[int, tuple[int, int]]
    ) -> Iterator[tuple[GroupKey, Chunk]]:
        doc_id, vector, role, partitions = row
        groups, visits = memberships(doc_id, role, partitions, layout)
        for key, group_role in groups.items():
            chunk = self._chunks.setdefault(key, _ChunkBuilder())
            chunk.add(doc_id, group_role, visits, vector)
            self._buffered += 1
            if len(chunk.ids) >= CHUNK_ROWS:
                yield key, self._take(key)
        if self._buffered >= MAX_BUFFERED_ROWS:
            yield from [(key, self._take(key)) for key in list(self._chunks)]

    def finish_bundle(self) -> Iterator[beam.utils.windowed_value.WindowedValue]:
        for key in list(self._chunks):
            yield GlobalWindows.windowed_value((key, self._take(key)))

    def _take(self, key: GroupKey) -> Chunk | str:
        chunk = self._chunks.pop(key)
        self._buffered -= len(chunk.ids)
        packed = chunk.pack()
        self._shuffle_bytes.inc(len(packed[3]) + sum(len(doc_id.encode("utf-8")) for doc_id in chunk.ids))
        return write_chunk(self._shuffle_dir, key, packed) if self._shuffle_dir else packed


def rows_in_id_order(
    ids: np.ndarray, chunks: Sequence[Chunk], selected: np.ndarray, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``selected`` rows of a group's chunks, sorted by id: ``(ids, float32 [s, dim])``.

    The matrix is filled chunk by chunk (no concatenated copy of the group's vectors).

    >>> chunk = (["b", "a"], b"", b"", np.float32([[1, 2], [3, 4]]).tobytes())
    >>> rows_in_id_order(np.array(["b", "a"]), [chunk], np.array([True, True]), 2)[1].tolist()
    [[3.0, 4.0], [1.0, 2.0]]
    """
    rows = np.flatnonzero(selected)
    order = rows[np.argsort(ids[rows], kind="stable")]
    destination = np.full(ids.size, -1, np.int64)
    destination[order] = np.arange(order.size)
    vectors = np.empty((order.size, dim), np.float32)
    start = 0
    for chunk in chunks:
        block = np.frombuffer(chunk[3], np.float32).reshape(-1, dim)
        where = destination[start : start + block.shape[0]]
        keep = where >= 0
        vectors[where[keep]] = block[keep]
        start += block.shape[0]
    return ids[order], vectors


class SearchGroupFn(beam.DoFn):
    """One group ``(key, [chunk or chunk path, ...])`` → ``(query_id, (ids, sims))`` per query.

    Queries that visit this group only go to the :data:`FINAL` output. The others' lists go to
    the main output in blocks, one per merge bucket (:func:`merge_bucket`): ``(bucket, block)``,
    the block being :func:`~transforms.knn_shuffle.pack_lists` bytes or, with a
    ``shuffle_dir``, the path of a file holding them.
    """

    def __init__(self, config: NeighbourConfig, shuffle_dir: str = ""):
        self._config = config
        self._shuffle_dir = shuffle_dir
        self._groups = Metrics.counter(METRICS_NAMESPACE, "knn_graph/groups")
        self._group_rows = Metrics.distribution(METRICS_NAMESPACE, "knn_graph/group_rows")

    def process(
        self, keyed: tuple[GroupKey, Iterable[Chunk | str]], merge_buckets: int
    ) -> Iterator[tuple[int, bytes | str] | beam.pvalue.TaggedOutput]:
        chunks = [read_chunk(chunk) if isinstance(chunk, str) else chunk for chunk in keyed[1]]
        ids = np.asarray([doc_id for chunk in chunks for doc_id in chunk[0]], dtype=str)
        roles = np.frombuffer(b"".join(chunk[1] for chunk in chunks), np.uint8)
        visits = np.frombuffer(b"".join(chunk[2] for chunk in chunks), np.uint32)
        dim = len(chunks[0][3]) // 4 // len(chunks[0][0])
        is_data, is_query = (roles & DATA) > 0, (roles & QUERY) > 0
        data_ids, data = rows_in_id_order(ids, chunks, is_data, dim)
        if is_data.all() and is_query.all():
            query_ids, queries = data_ids, data  # the self-join of one group: one matrix
        else:
            query_ids, queries = rows_in_id_order(ids, chunks, is_query, dim)
        final = dict(zip(ids[is_query].tolist(), (visits[is_query] == 1).tolist()))
        self._groups.inc()
        self._group_rows.update(len(data_ids))
        partial: dict[int, tuple[list, list, list]] = {}
        for query_id, neighbour_ids, sims in search_group(data_ids, data, query_ids, queries, self._config):
            if final[query_id]:
                yield beam.pvalue.TaggedOutput(FINAL, (query_id, (neighbour_ids, sims)))
                continue
            bucket = merge_bucket(query_id, merge_buckets)
            lists = partial.setdefault(bucket, ([], [], []))
            lists[0].append(query_id)
            lists[1].append(neighbour_ids)
            lists[2].append(sims)
            if len(lists[0]) >= BLOCK_LISTS:
                yield bucket, self._block(keyed[0], bucket, partial.pop(bucket))
        for bucket, lists in partial.items():
            yield bucket, self._block(keyed[0], bucket, lists)

    def _block(self, key: GroupKey, bucket: int, lists: tuple[list, list, list]) -> bytes | str:
        """One block of a bucket's lists: the bytes, or the path of the file holding them."""
        return put_block(self._shuffle_dir, (*key, bucket), pack_lists(*lists))


def merge_bucket(query_id: str, merge_buckets: int) -> int:
    """The merge bucket of a query whose lists come from several groups (a stable hash).

    >>> merge_bucket("doc-1", 1)
    0
    """
    return sub_shard(stable_hash("merge:" + query_id), merge_buckets)


def merge_bucket_count(query_visits: int) -> int:
    """Merge buckets for ``query_visits`` (query, group) lists: at most :data:`MERGE_BUCKET_LISTS` each.

    >>> merge_bucket_count(0), merge_bucket_count(5_000_000)
    (1, 25)
    """
    return max(1, math.ceil(query_visits / MERGE_BUCKET_LISTS))


class MergeBucketFn(beam.DoFn):
    """``(bucket, [block, ...])`` → ``(query_id, (ids, sims))``: each query's lists merged.

    The whole bucket is merged at once (:func:`transforms.core.top_k_lists.merge_top_k_lists`).
    """

    def __init__(self, k: int):
        self._k = k

    def process(self, keyed: tuple[int, Iterable[bytes | str]]) -> Iterator[tuple[str, tuple[list[str], np.ndarray]]]:
        blocks = [unpack_lists(get_block(value)) for value in keyed[1]]
        queries, offsets, ids, sims = merge_top_k_lists(
            [query for block in blocks for query in block[0]],
            np.concatenate([block[1] for block in blocks]),
            np.concatenate([block[2] for block in blocks]),
            np.concatenate([block[3] for block in blocks]),
            self._k,
        )
        ids_list, bounds = ids.tolist(), offsets.tolist()
        for query, start, stop in zip(queries.tolist(), bounds[:-1], bounds[1:]):
            yield query, (ids_list[start:stop], sims[start:stop].copy())
