"""The per-LF exact fallback in the pipeline: exact Epoxy for LFs of small coverage.

With k neighbours per document, an LF whose nearest voter lies beyond the k-th neighbour is not
extended there, while exact Epoxy would extend it (when within the threshold): LFs that vote on
few documents suffer most. :class:`ExactFallback` replaces the nearest-voter columns of every
LF with at most ``max_voters`` voters by a brute-force search over **all** its voters
(:func:`transforms.core.knn_merge.exact_fallback_columns`); the other LFs keep the graph's.

Steps (no shuffle of the embeddings):

1. voters per LF (a lifted ``CombinePerKey``) → the small LFs (a side input of ``m`` ints);
2. the ids voting on a small LF with their votes (side input, at most ``s · max_voters``
   entries for ``s`` small LFs);
3. the embeddings of those voters, grouped per LF into one ``(keys, vectors, votes)`` set (side
   input, at most ``s · max_voters · d · 4`` bytes: 20 LFs × 2,000 voters × 384 dims = 61 MB);
4. every document's embedding, in batches, against those sets → its small LFs' columns;
5. a join with the graph's nearest voters by id that overwrites those columns (documents none
   of whose neighbours voted get their exact columns too).

Vectors are L2-normalised here, as the graph stage does. Row keys are
:func:`transforms.core.diagnostics.source_hash` of the ids, so a document is never
its own voter and ``nn_source`` names the exact nearest voter as the graph path does.
Counter ``extension/exact_fallback_lfs``: the LFs the fallback made exact.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from transforms.core.diagnostics import NO_SOURCE, source_hash
from transforms.core.knn import l2_normalise
from transforms.core.knn_merge import VoterSet, exact_fallback_columns
from transforms.core.votes import ABSTAIN, VOTE_DTYPE
from transforms.dead_letter import METRICS_NAMESPACE
from transforms.extend import no_nearest_voters


def voted_lfs(record: tuple[str, np.ndarray]) -> Iterator[tuple[int, int]]:
    """``(id, votes [m])`` → ``(lf column, 1)`` for each LF that voted on the document."""
    for lf in np.flatnonzero(np.asarray(record[1]) != ABSTAIN):
        yield int(lf), 1


def small_lf_votes(record: tuple[str, np.ndarray], small_lfs: Sequence[int]) -> Iterator[Any]:
    """``(id, votes [m])`` → ``(id, ((lf, vote), ...))`` of the small LFs it voted, if any."""
    doc_id, votes = record
    votes = np.asarray(votes)
    cast = tuple((lf, int(votes[lf])) for lf in small_lfs if votes[lf] != ABSTAIN)
    if cast:
        yield doc_id, cast


def voter_entries(
    record: tuple[str, np.ndarray], small_voters: Mapping[str, tuple[tuple[int, int], ...]]
) -> Iterator[tuple[int, tuple[int, np.ndarray, int]]]:
    """``(id, vector)`` of a small LF's voter → ``(lf, (key, vector, vote))`` per LF it voted."""
    doc_id, vector = record
    for lf, vote in small_voters.get(doc_id, ()):
        yield lf, (int(source_hash(doc_id)), np.asarray(vector, np.float32), vote)


def voter_set(grouped: tuple[int, Iterable[tuple[int, np.ndarray, int]]]) -> tuple[int, VoterSet]:
    """All voters of one LF → ``(lf, (keys uint64 [v], vectors [v, d], votes int8 [v]))``,
    sorted by key (ties between equally near voters then do not depend on arrival order)."""
    lf, entries = grouped
    entries = sorted(entries, key=lambda entry: entry[0])
    Metrics.counter(METRICS_NAMESPACE, "extension/exact_fallback_lfs").inc()
    return lf, (
        np.asarray([key for key, _, _ in entries], np.uint64),
        l2_normalise(np.stack([vector for _, vector, _ in entries]).astype(np.float32)),
        np.asarray([vote for _, _, vote in entries], VOTE_DTYPE),
    )


def exact_columns(
    batch: Sequence[tuple[str, np.ndarray]], voter_sets: Mapping[int, VoterSet]
) -> Iterator[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
    """A batch of ``(id, vector)`` → ``(id, (lfs, nn_sim, nn_vote, nn_source))`` of the small LFs."""
    if not voter_sets or not batch:
        return
    queries = l2_normalise(np.stack([np.asarray(vector, np.float32) for _, vector in batch]))
    keys = np.asarray([source_hash(doc_id) for doc_id, _ in batch], np.uint64)
    lfs, nn_sim, nn_vote, nn_source = exact_fallback_columns(queries, keys, voter_sets, int(NO_SOURCE))
    for row, (doc_id, _) in enumerate(batch):
        yield doc_id, (lfs, nn_sim[row], nn_vote[row], nn_source[row])


def overwrite_columns(
    keyed: tuple[str, Mapping[str, list[Any]]], num_lfs: int
) -> Iterator[tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """``(id, {nearest, exact})`` → ``(id, (nn_sim, nn_vote, nn_source))`` with the exact
    columns written over the graph's."""
    doc_id, groups = keyed
    if not groups["exact"]:
        if groups["nearest"]:
            yield doc_id, groups["nearest"][0]
        return
    base = groups["nearest"][0] if groups["nearest"] else no_nearest_voters(num_lfs)
    nn_sim, nn_vote, nn_source = (np.array(column) for column in base)
    lfs, sim, vote, source = groups["exact"][0]
    nn_sim[lfs], nn_vote[lfs], nn_source[lfs] = sim, vote, source
    yield doc_id, (nn_sim, nn_vote, nn_source)


class ExactFallback(beam.PTransform):
    """``{"nearest": (id, (nn_sim, nn_vote, nn_source)), "votes": (id, votes [m]),
    "embeddings": (id, vector)}`` → the nearest voters with the small LFs' columns exact.

    Args:
        num_lfs: ``m``, the number of vote columns.
        max_voters: An LF with at most this many voters gets the exact search.
    """

    def __init__(self, num_lfs: int, max_voters: int):
        if max_voters < 1:
            raise ValueError(f"max_voters={max_voters} must be at least 1; pass e.g. 2000")
        super().__init__()
        self._num_lfs = num_lfs
        self._max_voters = max_voters

    def expand(self, inputs: Mapping[str, beam.PCollection]) -> beam.PCollection:
        votes, embeddings = inputs["votes"], inputs["embeddings"]
        limit = self._max_voters
        small_lfs = beam.pvalue.AsList(
            votes
            | "VotedLFs" >> beam.FlatMap(voted_lfs)
            | "VotersPerLF" >> beam.CombinePerKey(sum)
            | "SmallLFs" >> beam.FlatMap(lambda kv: [kv[0]] if kv[1] <= limit else [])
        )
        small_voters = beam.pvalue.AsDict(
            votes | "SmallLFVotes" >> beam.FlatMap(small_lf_votes, small_lfs=small_lfs)
        )
        voter_sets = beam.pvalue.AsDict(
            embeddings
            | "VoterVectors" >> beam.FlatMap(voter_entries, small_voters=small_voters)
            | "GroupVotersByLF" >> beam.GroupByKey()
            | "VoterSets" >> beam.Map(voter_set)
        )
        exact = (
            embeddings
            | "BatchQueries" >> beam.BatchElements(min_batch_size=64, max_batch_size=1024)
            | "ExactColumns" >> beam.FlatMap(exact_columns, voter_sets=voter_sets)
        )
        return (
            {"nearest": inputs["nearest"], "exact": exact}
            | "JoinExactColumns" >> beam.CoGroupByKey()
            | "OverwriteColumns" >> beam.FlatMap(overwrite_columns, num_lfs=self._num_lfs)
        )
