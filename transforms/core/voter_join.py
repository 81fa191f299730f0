"""The nearest-voters join on batches of graph edges, in plain numpy.

The Beam stage (:class:`transforms.extend.NearestVoters`) moves the kNN graph's edges in batches
keyed by a *bucket* of a document id (:func:`id_hashes`), never one element per edge; each step's
array work is here:

1. :func:`packed_edges`: ``(doc, (neighbour_ids, sims))`` rows → one batch of edges, split per
   bucket of the *neighbour* by :func:`edges_by_neighbour_bucket`; :func:`packed_voters`:
   ``(id, votes)`` rows → one batch of the voters (rows with at least one vote) with their votes
   and :func:`~transforms.core.diagnostics.source_hash`, split per bucket by
   :func:`voters_by_bucket` (packing comes first and needs no bucket count, so that what waits
   for the count is a few batches of bytes, not one element per document);
2. :func:`voted_edge_batches`: one bucket's edge and voter batches → its voted edges, per bucket
   of the *document* they leave from;
3. :func:`nearest_voters_of_batches`: one document bucket's voted edges → each document's
   nearest voters, with :func:`transforms.core.extension.nearest_voters` and
   :func:`transforms.core.diagnostics.nearest_voter_sources` on ``[n, kk, m]`` arrays padded
   with ``-inf`` similarities and ``-1`` votes.

A batch is a dict of id lists and array fields as bytes (:data:`EDGE_ARRAYS`, packed with
:func:`transforms.core.record_arrays.pack_arrays`): Beam's coder copies both natively and pickles
every ``ndarray``. A document's edges are ordered by their rank in its neighbour list before the
reduction, so the nearest voter's source on ties is the first in the graph's order, whatever the
batching.

>>> graph = [("a", (["b", "c"], np.array([0.75, 0.5], np.float32))),
...          ("b", (["a", "x"], np.array([0.25, 0.25], np.float32)))]
>>> votes = [("a", np.array([1, -1], np.int8)), ("b", np.array([-1, -1], np.int8)),
...          ("c", np.array([0, 0], np.int8))]
>>> edges = dict(edges_by_neighbour_bucket(packed_edges(graph), 1))
>>> voters = dict(voters_by_bucket(packed_voters(votes), 1))
>>> voted = [batch for _, batch in voted_edge_batches([edges[0]], [voters[0]])]
>>> ids, nn_sim, nn_vote, nn_source = nearest_voters_of_batches(voted)
>>> ids, nn_sim.tolist(), nn_vote.tolist()
(['a', 'b'], [[0.5, 0.5], [0.25, -inf]], [[0, 0], [1, -1]])
>>> nn_source[1].tolist() == [source_hash("a"), 0]
True
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from transforms.core.diagnostics import nearest_voter_sources, source_hash
from transforms.core.extension import nearest_voters
from transforms.core.record_arrays import concatenated_field, pack_arrays
from transforms.core.votes import ABSTAIN, VOTE_DTYPE

# The array fields of edge and voter batches and their dtypes.
EDGE_ARRAYS = {
    "sim": np.dtype(np.float32),
    "rank": np.dtype(np.uint32),
    "doc_bucket": np.dtype(np.uint32),
    "votes": VOTE_DTYPE,
    "source": np.dtype(np.uint64),
    "hash": np.dtype(np.uint32),
    "neighbour_hash": np.dtype(np.uint32),
    "doc_hash": np.dtype(np.uint32),
}
# Documents per bucket: a bucket's join holds about this many documents' edges (× k).
DOCS_PER_BUCKET = 1 << 14


@dataclasses.dataclass(frozen=True)
class VoterJoinConfig:
    """Batch and bucket sizes of the nearest-voters join.

    Attributes:
        docs_per_bucket: Documents per bucket (:func:`bucket_count`); a bucket's join holds about
            ``docs_per_bucket × k`` edges.
        graph_rows_per_batch: Graph rows (``k`` edges each) batched before bucketing.
        vote_rows_per_batch: Vote rows batched before bucketing.
    """

    docs_per_bucket: int = DOCS_PER_BUCKET
    graph_rows_per_batch: int = 1 << 14
    vote_rows_per_batch: int = 1 << 16

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if value < 1:
                raise ValueError(f"VoterJoinConfig.{name}={value} must be at least 1, e.g. 16384")


Batch = dict[str, Any]
GraphRow = tuple[str, tuple[Sequence[str], np.ndarray]]


def bucket_count(rows: int, docs_per_bucket: int = DOCS_PER_BUCKET) -> int:
    """The number of buckets for ``rows`` documents: ``ceil(rows / docs_per_bucket)``, at least 1.

    >>> bucket_count(0), bucket_count(16384), bucket_count(100_000_000)
    (1, 1, 6104)
    """
    return max(1, -(-int(rows) // docs_per_bucket))


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """``uint32 [len(ids)]``: CRC-32 of each id's UTF-8; an id's bucket is its hash modulo the
    bucket count. The same on every machine and process (Python's ``hash()`` is salted per
    process).

    >>> (id_hashes(["a", "b", "c", "a"]) % 5).tolist()
    [2, 1, 0, 2]
    """
    return np.fromiter((zlib.crc32(doc_id.encode("utf-8")) for doc_id in ids), np.uint32, len(ids))


def _split_by(keys: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(key, positions)`` for each distinct key, positions in their original order."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if keys.size else []
    for start, stop in zip(starts, [*starts[1:], keys.size]):
        yield int(sorted_keys[start]), order[start:stop]


def _objects(values: Sequence[str]) -> np.ndarray:
    """A 1-D object array of strings (fancy-indexable without copying the strings)."""
    array = np.empty(len(values), object)
    array[:] = values
    return array


def split_batch(batch: Batch, keys: np.ndarray) -> Iterator[tuple[int, Batch]]:
    """``(key, the batch's rows with that key)`` for each distinct key of ``keys [rows]``.

    >>> batch = {"id": ["a", "b", "c"], **pack_arrays(EDGE_ARRAYS, votes=[[1, -1], [0, 0], [2, 2]])}
    >>> [(key, part["id"], part["votes"]) for key, part in split_batch(batch, np.array([1, 0, 1]))]
    [(0, ['b'], b'\\x00\\x00'), (1, ['a', 'c'], b'\\x01\\xff\\x02\\x02')]
    """
    rows = keys.size
    if not rows:
        return
    columns = {
        name: _objects(value) if isinstance(value, list) else np.frombuffer(value, EDGE_ARRAYS[name]).reshape(rows, -1)
        for name, value in batch.items()
    }
    for key, at in _split_by(keys):
        yield key, {
            name: column[at].tolist() if column.dtype == object else column[at].tobytes()
            for name, column in columns.items()
        }


def packed_edges(graph: Sequence[GraphRow]) -> Batch:
    """Graph rows → one batch of their edges: ``neighbour`` and ``doc`` id lists and the edges'
    ``sim``, ``rank`` (position in the document's neighbour list), ``neighbour_hash`` and
    ``doc_hash`` (:func:`id_hashes`).

    Raises:
        ValueError: if a row has not one similarity per neighbour.
    """
    counts = np.array([len(neighbour_ids) for _, (neighbour_ids, _) in graph], np.int64)
    sims = [np.asarray(row_sims, np.float32).reshape(-1) for _, (_, row_sims) in graph]
    for (doc_id, (neighbour_ids, _)), row_sims in zip(graph, sims):
        if row_sims.size != len(neighbour_ids):
            raise ValueError(
                f"graph row {doc_id!r} has {len(neighbour_ids)} neighbours but {row_sims.size} "
                "similarities; the kNN graph must give one similarity per neighbour"
            )
    starts = np.cumsum(counts) - counts
    doc_ids = [doc_id for doc_id, _ in graph]
    neighbours = [n for _, (neighbour_ids, _) in graph for n in neighbour_ids]
    return {
        "neighbour": neighbours,
        "doc": np.repeat(_objects(doc_ids), counts).tolist(),
        **pack_arrays(
            EDGE_ARRAYS,
            sim=np.concatenate(sims) if sims else np.zeros(0, np.float32),
            rank=np.arange(int(counts.sum())) - np.repeat(starts, counts),
            neighbour_hash=id_hashes(neighbours),
            doc_hash=np.repeat(id_hashes(doc_ids), counts),
        ),
    }


def edges_by_neighbour_bucket(edges: Batch, buckets: int) -> Iterator[tuple[int, Batch]]:
    """A :func:`packed_edges` batch → ``(neighbour bucket, edges)`` with each edge's
    ``doc_bucket`` in place of the hashes."""
    neighbour_hash = np.frombuffer(edges["neighbour_hash"], EDGE_ARRAYS["neighbour_hash"])
    doc_hash = np.frombuffer(edges["doc_hash"], EDGE_ARRAYS["doc_hash"])
    kept = {name: value for name, value in edges.items() if not name.endswith("_hash")}
    batch = {**kept, **pack_arrays(EDGE_ARRAYS, doc_bucket=doc_hash % buckets)}
    return split_batch(batch, neighbour_hash % buckets)


def packed_voters(votes: Sequence[tuple[str, np.ndarray]]) -> Batch:
    """``(id, votes [m])`` rows → one batch of the voters among them (rows with at least one
    vote; the others are nobody's nearest voter): the ``id`` list, ``votes [r·m]``, ``source``
    (:func:`~transforms.core.diagnostics.source_hash`) and ``hash`` (:func:`id_hashes`)."""
    if not votes:
        return {"id": [], **pack_arrays(EDGE_ARRAYS, votes=[], source=[], hash=[])}
    matrix = np.stack([np.asarray(row_votes, VOTE_DTYPE) for _, row_votes in votes])
    voted = np.flatnonzero((matrix != ABSTAIN).any(axis=1))
    ids = _objects([doc_id for doc_id, _ in votes])[voted].tolist()
    sources = np.fromiter((source_hash(doc_id) for doc_id in ids), np.uint64, len(ids))
    return {"id": ids, **pack_arrays(EDGE_ARRAYS, votes=matrix[voted], source=sources, hash=id_hashes(ids))}


def voters_by_bucket(voters: Batch, buckets: int) -> Iterator[tuple[int, Batch]]:
    """A :func:`packed_voters` batch → ``(bucket, voters)`` without the hash."""
    keys = np.frombuffer(voters["hash"], EDGE_ARRAYS["hash"]) % buckets
    return split_batch({name: value for name, value in voters.items() if name != "hash"}, keys)


def voted_edge_batches(edges: Iterable[Batch], voters: Iterable[Batch]) -> Iterator[tuple[int, Batch]]:
    """One bucket's edge and voter batches → ``(doc bucket, voted edges)``: the ``doc`` id list
    and the edges' ``sim``, ``rank``, neighbour ``votes [e·m]`` and neighbour ``source``.

    Edges to a neighbour that is not a voter (no LF voted on it, or dead-lettered) are dropped.
    """
    edges, voters = list(edges), list(voters)
    voter_ids = [voter_id for batch in voters for voter_id in batch["id"]]
    if not voter_ids or not edges:
        return
    row_of = {voter_id: row for row, voter_id in enumerate(voter_ids)}
    votes = concatenated_field(voters, "votes", EDGE_ARRAYS).reshape(len(voter_ids), -1)
    sources = concatenated_field(voters, "source", EDGE_ARRAYS)
    neighbours = [neighbour for batch in edges for neighbour in batch["neighbour"]]
    rows = np.fromiter((row_of.get(neighbour, -1) for neighbour in neighbours), np.int64, len(neighbours))
    voted = np.flatnonzero(rows >= 0)
    rows = rows[voted]
    docs = _objects([doc_id for batch in edges for doc_id in batch["doc"]])[voted]
    sims, ranks, doc_buckets = (
        concatenated_field(edges, name, EDGE_ARRAYS)[voted] for name in ("sim", "rank", "doc_bucket")
    )
    for bucket, at in _split_by(doc_buckets):
        neighbour_rows = rows[at]
        yield bucket, {
            "doc": docs[at].tolist(),
            **pack_arrays(
                EDGE_ARRAYS, sim=sims[at], rank=ranks[at], votes=votes[neighbour_rows],
                source=sources[neighbour_rows],
            ),
        }


def nearest_voters_of_batches(
    batches: Iterable[Batch],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """One document bucket's voted edges → ``(ids, nn_sim [n, m], nn_vote [n, m], nn_source
    [n, m])`` of its ``n`` documents, each document's edges in rank order (then by source)."""
    batches = list(batches)
    docs = [doc_id for batch in batches for doc_id in batch["doc"]]
    if not docs:
        return [], np.zeros((0, 0), np.float32), np.zeros((0, 0), VOTE_DTYPE), np.zeros((0, 0), np.uint64)
    index: dict[str, int] = {}
    doc_rows = np.fromiter((index.setdefault(doc_id, len(index)) for doc_id in docs), np.int64, len(docs))
    sims, ranks, sources = (
        concatenated_field(batches, name, EDGE_ARRAYS) for name in ("sim", "rank", "source")
    )
    votes = concatenated_field(batches, "votes", EDGE_ARRAYS).reshape(len(docs), -1)
    n, m = len(index), votes.shape[1]
    order = np.lexsort((sources, ranks, doc_rows))
    counts = np.bincount(doc_rows, minlength=n)
    slots = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = doc_rows[order]
    kk = int(counts.max())
    padded_sims = np.full((n, kk), -np.inf, np.float32)
    padded_votes = np.full((n, kk, m), ABSTAIN, VOTE_DTYPE)
    padded_sources = np.zeros((n, kk), np.uint64)
    padded_sims[rows, slots], padded_votes[rows, slots], padded_sources[rows, slots] = (
        sims[order], votes[order], sources[order]
    )
    nn_sim, nn_vote = nearest_voters(padded_sims, padded_votes)
    nn_source = nearest_voter_sources(padded_sims, padded_votes, padded_sources)
    return list(index), nn_sim, nn_vote, nn_source
