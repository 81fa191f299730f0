"""The extension join: each document's nearest voter per LF, from the kNN graph and the votes.

Two shuffles of the graph's edges in *batches* keyed by a bucket of a document id (no side input
but the row count, no element per edge; the array work is :mod:`transforms.core.voter_join`):

1. edges, batched per bucket of the neighbour, are joined with the voters of that bucket
   (``CoGroupByKey``), which keeps the edges to a neighbour some LF voted on;
2. the voted edges, batched per bucket of the document they leave from, are grouped back
   (``GroupByKey``), and :func:`transforms.core.extension.nearest_voters` keeps, per LF, the most
   similar neighbour that voted and its vote.

The bucket count is ``ceil(rows / DOCS_PER_BUCKET)`` (:func:`transforms.core.voter_join.
bucket_count`, the row count a one-element side input), so a bucket holds the edges of about
16k documents (≈ 330k edges at k = 20) whatever the corpus size: bounded memory per bucket and
``rows / 16k`` buckets of parallelism. Rows are batched and packed before they meet the count
(the side input), so that only a few batches of bytes wait for it.

The result, ``(id, (nn_sim float32 [m], nn_vote int8 [m], nn_source uint64 [m]))``, does not
depend on the thresholds: it is cached, and a threshold change is then one O(n·m) pass.
``nn_source`` is :func:`transforms.core.diagnostics.source_hash` of the neighbour each LF's
nearest vote comes from (``0`` when none; the first in the document's neighbour list on ties);
the run report resolves it to an id and a text for a few example documents only.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import apache_beam as beam
import numpy as np

from transforms.core.diagnostics import NO_SOURCE
from transforms.core.votes import ABSTAIN
from transforms.core.voter_join import (
    VoterJoinConfig,
    bucket_count,
    edges_by_neighbour_bucket,
    nearest_voters_of_batches,
    packed_edges,
    packed_voters,
    voted_edge_batches,
    voters_by_bucket,
)


def join_bucket(
    keyed: tuple[int, dict[str, Iterable[dict[str, Any]]]],
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Joined ``(bucket, {edges, voters})`` → ``(document bucket, voted edges)`` batches."""
    _, groups = keyed
    return voted_edge_batches(groups["edges"], groups["voters"])


def nearest_voters_of_bucket(
    keyed: tuple[int, Iterable[dict[str, Any]]],
) -> Iterator[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """``(document bucket, voted edge batches)`` → ``(id, (nn_sim, nn_vote, nn_source))``."""
    ids, nn_sim, nn_vote, nn_source = nearest_voters_of_batches(keyed[1])
    for row, doc_id in enumerate(ids):
        yield doc_id, (nn_sim[row], nn_vote[row], nn_source[row])


def _batched(rows_per_batch: int) -> beam.BatchElements:
    """Fixed-size batches of a bundle's elements (the last one of a bundle may be smaller)."""
    return beam.BatchElements(min_batch_size=rows_per_batch, max_batch_size=rows_per_batch)


class NearestVoters(beam.PTransform):
    """``{"neighbours": (id, (ids, sims)), "votes": (id, votes)}`` →
    ``(id, (nn_sim, nn_vote, nn_source))``.

    Documents none of whose neighbours voted are absent from the output: read them as
    ``nn_sim = -inf``, ``nn_vote = -1`` (see :func:`no_nearest_voters`).

    Args:
        config: Batch and bucket sizes (the output does not depend on them).
    """

    def __init__(self, config: VoterJoinConfig = VoterJoinConfig()):
        super().__init__()
        self._config = config

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        votes, config = inputs["votes"], self._config
        buckets = beam.pvalue.AsSingleton(
            votes
            | "CountRows" >> beam.combiners.Count.Globally()
            | "Buckets" >> beam.Map(bucket_count, config.docs_per_bucket)
        )
        edges = (
            inputs["neighbours"]
            | "BatchGraph" >> _batched(config.graph_rows_per_batch)
            | "PackEdges" >> beam.Map(packed_edges)
            | "EdgesByBucket" >> beam.FlatMap(edges_by_neighbour_bucket, buckets=buckets)
        )
        voters = (
            votes
            | "BatchVotes" >> _batched(config.vote_rows_per_batch)
            | "PackVoters" >> beam.Map(packed_voters)
            | "VotersByBucket" >> beam.FlatMap(voters_by_bucket, buckets=buckets)
        )
        return (
            {"edges": edges, "voters": voters}
            | "JoinNeighbourVotes" >> beam.CoGroupByKey()
            | "VotedEdges" >> beam.FlatMap(join_bucket)
            | "GroupByDocument" >> beam.GroupByKey()
            | "NearestVoters" >> beam.FlatMap(nearest_voters_of_bucket)
        )


def no_nearest_voters(num_lfs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nearest-voter arrays of a document none of whose neighbours voted.

    >>> no_nearest_voters(2)
    (array([-inf, -inf], dtype=float32), array([-1, -1], dtype=int8), array([0, 0], dtype=uint64))
    """
    return (
        np.full(num_lfs, -np.inf, np.float32),
        np.full(num_lfs, ABSTAIN, np.int8),
        np.full(num_lfs, NO_SOURCE, np.uint64),
    )
