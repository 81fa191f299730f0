"""The extension join: each document's nearest voter per LF, from the kNN graph and the votes.

Two shuffles of the graph's edges, both keyed by document id (no side inputs):

1. ``(neighbour, (doc, sim))`` edges are joined with the neighbours' votes;
2. the voted edges are grouped back by document, and
   :func:`transforms.core.extension.nearest_voters` keeps, per LF, the most similar neighbour
   that voted and its vote.

The result, ``(id, (nn_sim float32 [m], nn_vote int8 [m]))``, does not depend on the thresholds:
it is cached, and a threshold change is then one O(n·m) pass.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import apache_beam as beam
import numpy as np

from transforms.core.extension import nearest_voters
from transforms.core.votes import ABSTAIN


def graph_edges(
    record: tuple[str, tuple[list[str], np.ndarray]],
) -> Iterator[tuple[str, tuple[str, float]]]:
    """``(doc, (neighbour_ids, sims))`` → ``(neighbour, (doc, sim))`` edges."""
    doc_id, (neighbour_ids, sims) = record
    for neighbour_id, sim in zip(neighbour_ids, sims):
        yield neighbour_id, (doc_id, float(sim))


def voted_edges(
    joined: tuple[str, dict[str, list[Any]]],
) -> Iterator[tuple[str, tuple[float, np.ndarray]]]:
    """Joined ``(neighbour, {edges, votes})`` → ``(doc, (sim, neighbour_votes))``.

    Neighbours without votes (dead-lettered rows) or that no LF voted on add nothing.
    """
    _, groups = joined
    if not groups["votes"]:
        return
    votes = groups["votes"][0]
    if np.all(votes == ABSTAIN):
        return
    for doc_id, sim in groups["edges"]:
        yield doc_id, (sim, votes)


def nearest_voters_of_document(
    grouped: tuple[str, Iterable[tuple[float, np.ndarray]]],
) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    """All voted edges of one document → ``(doc, (nn_sim [m], nn_vote [m]))``."""
    doc_id, edges = grouped
    edges = list(edges)
    sims = np.asarray([[sim for sim, _ in edges]], dtype=np.float32)
    votes = np.stack([votes for _, votes in edges])[np.newaxis]
    nn_sim, nn_vote = nearest_voters(sims, votes)
    return doc_id, (nn_sim[0], nn_vote[0])


class NearestVoters(beam.PTransform):
    """``{"neighbours": (id, (ids, sims)), "votes": (id, votes)}`` → ``(id, (nn_sim, nn_vote))``.

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


def no_nearest_voters(num_lfs: int) -> tuple[np.ndarray, np.ndarray]:
    """The nearest-voter arrays of a document none of whose neighbours voted.

    >>> no_nearest_voters(2)
    (array([-inf, -inf], dtype=float32), array([-1, -1], dtype=int8))
    """
    return np.full(num_lfs, -np.inf, np.float32), np.full(num_lfs, ABSTAIN, np.int8)
