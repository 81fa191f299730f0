"""The batched nearest-voters join (transforms/extend.py, transforms/core/voter_join.py) against
the plain core functions, per document, on a seeded graph with ties and dead-lettered rows."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.core.diagnostics import nearest_voter_sources, source_hash
from transforms.core.extension import nearest_voters
from transforms.core.voter_join import (
    VoterJoinConfig,
    edges_by_neighbour_bucket,
    nearest_voters_of_batches,
    packed_edges,
    packed_voters,
    voted_edge_batches,
    voters_by_bucket,
)
from transforms.extend import NearestVoters

N, K, M = 240, 6, 4


def _graph_and_votes(seed: int = 0):
    """A graph with tied similarities and votes, neighbours that were dead-lettered (no vote
    row), rows no LF voted on, short and empty neighbour lists."""
    rng = np.random.default_rng(seed)
    ids = [f"d{i:03d}" for i in range(N)]
    dead = {f"gone{i}" for i in range(10)}  # in the graph, without a vote row
    votes = np.where(rng.random((N, M)) < 0.15, rng.integers(0, 2, (N, M)), -1).astype(np.int8)
    votes[rng.random(N) < 0.3] = -1  # rows no LF voted on
    votes[:, 3] = np.where(rng.random(N) < 0.02, 1, -1)  # a rare LF: many documents without its voter
    pool = ids + sorted(dead)
    graph = []
    for i, doc_id in enumerate(ids):
        size = int(rng.choice([0, 2, K, K, K])) if i % 7 else K
        neighbours = [pool[j] for j in rng.choice(len(pool), size, replace=False)]
        sims = (rng.integers(0, 4, size) / 4).astype(np.float32)  # coarse: many ties
        graph.append((doc_id, (neighbours, sims)))
    return ids, graph, votes


def _reference(ids, graph, votes) -> dict:
    """Per document, the core functions on its neighbour list in graph order."""
    vote_of = {doc_id: votes[i] for i, doc_id in enumerate(ids)}
    expected = {}
    for doc_id, (neighbours, sims) in graph:
        if not neighbours:
            continue
        nv = np.stack([vote_of.get(n, np.full(M, -1, np.int8)) for n in neighbours])
        sources = np.array([source_hash(n) for n in neighbours], np.uint64)
        if not (nv != -1).any():
            continue
        nn_sim, nn_vote = nearest_voters(sims[None], nv[None])
        expected[doc_id] = [nn_sim[0].tolist(), nn_vote[0].tolist(), nearest_voter_sources(sims, nv, sources).tolist()]
    return expected


def _write_json(path: str, rows: list) -> None:
    with open(path, "w") as handle:
        json.dump(dict(rows), handle)


def _run(options: PipelineOptions, ids, graph, votes, config: VoterJoinConfig, path) -> dict:
    """Runs the stage; the result goes through a file (workers may be other processes)."""
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            {
                "neighbours": pipeline | "Graph" >> beam.Create(graph),
                "votes": pipeline | "Votes" >> beam.Create(list(zip(ids, votes))),
            }
            | NearestVoters(config)
            | beam.MapTuple(lambda d, v: (d, [v[0].tolist(), v[1].tolist(), v[2].tolist()]))
            | beam.combiners.ToList()
            | beam.Map(lambda rows: _write_json(str(path), rows))
        )
    with open(path) as handle:
        return json.load(handle)


def test_core_join_is_independent_of_buckets_and_batches():
    ids, graph, votes = _graph_and_votes(seed=1)
    expected = _reference(ids, graph, votes)
    assert 0 < len(expected) < N  # some documents have no voted neighbour

    def joined(buckets: int, batches: int) -> dict:
        edges, voters = {}, {}
        for part in np.array_split(np.arange(N), batches):
            for bucket, batch in edges_by_neighbour_bucket(packed_edges([graph[i] for i in part]), buckets):
                edges.setdefault(bucket, []).append(batch)
            for bucket, batch in voters_by_bucket(packed_voters([(ids[i], votes[i]) for i in part]), buckets):
                voters.setdefault(bucket, []).append(batch)
        by_doc_bucket = {}
        for bucket in edges:
            for doc_bucket, batch in voted_edge_batches(edges[bucket], voters.get(bucket, [])):
                by_doc_bucket.setdefault(doc_bucket, []).insert(0, batch)  # any order
        out = {}
        for batches_of_bucket in by_doc_bucket.values():
            doc_ids, nn_sim, nn_vote, nn_source = nearest_voters_of_batches(batches_of_bucket)
            for row, doc_id in enumerate(doc_ids):
                out[doc_id] = [nn_sim[row].tolist(), nn_vote[row].tolist(), nn_source[row].tolist()]
        return out

    for buckets, batches in [(1, 1), (3, 5), (16, 2)]:
        assert joined(buckets, batches) == expected, (buckets, batches)


@pytest.mark.parametrize(
    "runner",
    [["--runner=FnApiRunner"],
     ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]],
    ids=["fn_api", "multi_processing"],
)  # fmt: skip
def test_stage_equals_the_core_functions_per_document(runner, tmp_path):
    ids, graph, votes = _graph_and_votes(seed=2)
    expected = _reference(ids, graph, votes)
    config = VoterJoinConfig(docs_per_bucket=40, graph_rows_per_batch=25, vote_rows_per_batch=60)
    got = _run(PipelineOptions(runner), ids, graph, votes, config, tmp_path / "nearest.json")
    assert got == expected


def test_stage_with_default_sizes_and_no_voters(tmp_path):
    ids, graph, votes = _graph_and_votes(seed=3)
    options = PipelineOptions(["--runner=FnApiRunner"])
    assert _run(options, ids, graph, votes, VoterJoinConfig(), tmp_path / "a.json") == _reference(ids, graph, votes)
    none = np.full_like(votes, -1)
    assert _run(options, ids, graph, none, VoterJoinConfig(), tmp_path / "b.json") == {}


def test_config_and_graph_rows_are_checked():
    with pytest.raises(ValueError, match="docs_per_bucket=0"):
        VoterJoinConfig(docs_per_bucket=0)
    with pytest.raises(ValueError, match="'a' has 2 neighbours but 1 similarities"):
        packed_edges([("a", (["b", "c"], np.array([0.5], np.float32)))])
