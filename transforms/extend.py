"""The extension join: each document's nearest voter per LF, from the kNN graph and the votes.

Two shuffles of the graph's edges, both keyed by document id (no side inputs):

1. ``(neighbour, (doc, sim))`` edges are joined with the neighbours' votes;
2. the voted edges are grouped back by document, and
   :func:`transforms.core.extension.nearest_voters` keeps, per LF, the most similar neighbour
   that voted and its vote.

The result, ``(id, (nn_sim float32 [m], nn_vote int8 [m], nn_source uint64 [m]))``, does not
depend on the thresholds: it is cached, and a threshold change is then one O(n·m) pass.
``nn_source`` is :func:`transforms.core.diagnostics.source_hash` of the neighbour each LF's
nearest vote comes from (``0`` when none); the run report resolves it to an id and a text for a
few example documents only.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import apache_beam as beam
import numpy as np

from transforms.core.diagnostics import NO_SOURCE, nearest_voter_sources, source_hash
from transforms.core.extension import nearest_voters
from transforms.core.votes import ABSTAIN, VOTE_DTYPE


def graph_edges(
    record: tuple[str, tuple[list[str], np.ndarray]],
) -> Iterator[tuple[str, tuple[str, float]]]:
    """``(doc, (neighbour_ids, sims))`` → ``(neighbour, (doc, sim))`` edges."""
    doc_id, (neighbour_ids, sims) = record
    for neighbour_id, sim in zip(neighbour_ids, sims):
        yield neighbour_id, (doc_id, float(sim))


def voted_edges(
    joined: tuple[str, dict[str, list[Any]]],
) -> Iterator[tuple[str, tuple[float, bytes, int]]]:
    """Joined ``(neighbour, {edges, votes})`` → ``(doc, (sim, neighbour_votes, source))``.

    ``neighbour_votes`` is the neighbour's ``int8 [m]`` votes as bytes and ``source`` its
    :func:`source_hash` as an int: Beam's coder writes both natively, while it pickles every
    ``ndarray`` and numpy scalar (287 instead of 65 bytes and ~12× the time per edge:
    ``benchmarks/edge_coder.py``). Neighbours without votes (dead-lettered rows) or that no LF
    voted on add nothing.
    """
    neighbour_id, groups = joined
    if not groups["votes"]:
        return
    votes = groups["votes"][0]
    if np.all(votes == ABSTAIN):
        return
    vote_bytes = np.asarray(votes, VOTE_DTYPE).tobytes()
    source = int(source_hash(neighbour_id))
    for doc_id, sim in groups["edges"]:
        yield doc_id, (sim, vote_bytes, source)


def nearest_voters_of_document(
    grouped: tuple[str, Iterable[tuple[float, bytes, int]]],
) -> tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """All voted edges of one document → ``(doc, (nn_sim [m], nn_vote [m], nn_source [m]))``."""
    doc_id, edges = grouped
    edges = list(edges)
    sims = np.asarray([[sim for sim, _, _ in edges]], dtype=np.float32)
    votes = np.frombuffer(b"".join(vote_bytes for _, vote_bytes, _ in edges), VOTE_DTYPE)
    votes = votes.reshape(1, len(edges), -1)
    nn_sim, nn_vote = nearest_voters(sims, votes)
    sources = np.asarray([source for _, _, source in edges], dtype=np.uint64)
    return doc_id, (nn_sim[0], nn_vote[0], nearest_voter_sources(sims[0], votes[0], sources))


class NearestVoters(beam.PTransform):
    """``{"neighbours": (id, (ids, sims)), "votes": (id, votes)}`` →
    ``(id, (nn_sim, nn_vote, nn_source))``.

    Documents none of whose neighbours voted are absent from the output: read them as
    ``nn_sim = -inf``, ``nn_vote = -1`` (see :func:`no_nearest_voters`).
    """

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        edges = inputs["neighbours"] | "Edges" >> beam.FlatMap(graph_edges)
        return (
            {"edges": edges, "votes": inputs["votes"]}
            | "JoinNeighbourVotes" >> beam.CoGroupByKey()
            | "VotedEdges" >> beam.FlatMap(voted_edges)
            | "GroupByDocument" >> beam.GroupByKey()
            | "NearestVoters" >> beam.Map(nearest_voters_of_document)
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
