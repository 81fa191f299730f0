"""The partitioned kNN graph: core helpers, the in-memory engine and the Beam stage."""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from transforms.core.knn import exact_knn
from transforms.core.knn_merge import (
    assign_partitions,
    exact_nearest_voters,
    num_partitions,
    spherical_kmeans,
)
from transforms.core.top_k_lists import merge_top_k, merge_top_k_lists
from transforms import knn_groups
from transforms.knn_graph import KnnJoin, MergeTopKFn, NeighbourGraph, group_layout, knn_graph_in_memory
from transforms.neighbours import NeighbourConfig


def _clustered(n: int, d: int = 16, clusters: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)) * 3
    x = (centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, d))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _write_json(path: str, rows: list) -> None:
    with open(path, "w") as handle:
        json.dump(sorted(rows), handle)


def _graph(pipeline_options: PipelineOptions, ids, vectors, config, path) -> list:
    """Runs the stage; the graph goes through a file (workers may be other processes)."""
    with beam.Pipeline(options=pipeline_options) as pipeline:
        _ = (
            pipeline
            | beam.Create(list(zip(ids, vectors)))
            | NeighbourGraph(config)
            | beam.MapTuple(lambda doc_id, value: [doc_id, list(value[0]), value[1].tolist()])
            | beam.combiners.ToList()
            | beam.Map(lambda rows: _write_json(str(path), rows))
        )
    with open(path) as handle:
        return json.load(handle)


def test_merge_is_independent_of_order_and_split():
    a = (["x", "y"], np.float32([0.9, 0.1]))
    b = (["z", "x"], np.float32([0.5, 0.9]))
    c = (["w"], np.float32([0.5]))
    expected = (["x", "w", "z"], np.float32([0.9, 0.5, 0.5]))
    for lists in ([a, b, c], [c, b, a], [merge_top_k([a, b], 3), c]):
        ids, sims = merge_top_k(lists, 3)
        assert ids == expected[0] and sims.tolist() == expected[1].tolist()


def test_merge_combiner_packs_compacts_and_equals_the_core_merge():
    a = (["x", "y"], np.float32([0.9, 0.1]))
    b = (["z", "x"], np.float32([0.5, 0.9]))
    c = (["w"], np.float32([0.5]))
    expected = merge_top_k([a, b, c], 3)
    combiner = MergeTopKFn(3)
    left = combiner.add_input(combiner.add_input(combiner.create_accumulator(), a), b)
    compacted = combiner.compact(left)
    assert len(compacted) == 1 and isinstance(compacted[0], bytes)  # one bytes value per document
    right = combiner.add_input(combiner.create_accumulator(), c)
    for accumulators in ([left, right], [compacted, right], [right, compacted]):
        ids, sims = combiner.extract_output(combiner.merge_accumulators(accumulators))
        assert ids == expected[0] and sims.tolist() == expected[1].tolist()


def test_batched_merge_equals_the_per_document_merge_with_ties_and_repeats():
    rng = np.random.default_rng(3)
    for _ in range(100):
        # Few ids and coarse similarities: ties, and neighbours found in two lists, are common.
        sim_of = {f"n{i}": np.float32(round(rng.random(), 1)) for i in range(12)}
        lists: dict[str, list] = {}
        queries, lengths, flat_ids = [], [], []
        for _ in range(rng.integers(0, 25)):
            ids = sorted({f"n{j}" for j in rng.integers(0, 12, rng.integers(0, 6))}, key=lambda i: (-sim_of[i], i))
            query = f"q{rng.integers(0, 5)}"
            lists.setdefault(query, []).append((ids, np.float32([sim_of[i] for i in ids])))
            queries.append(query)
            lengths.append(len(ids))
            flat_ids.extend(ids)
        k = int(rng.integers(1, 6))
        merged_queries, offsets, ids, sims = merge_top_k_lists(
            queries, np.array(lengths, np.int64), np.array(flat_ids, dtype=str),
            np.float32([sim_of[i] for i in flat_ids]), k,
        )
        assert merged_queries.tolist() == sorted(lists)
        for i, query in enumerate(merged_queries.tolist()):
            expected_ids, expected_sims = merge_top_k(lists[query], k)
            assert ids[offsets[i] : offsets[i + 1]].tolist() == expected_ids
            assert sims[offsets[i] : offsets[i + 1]].tolist() == expected_sims.tolist()


def test_many_merge_buckets_and_small_blocks_give_the_same_graph(tmp_path, monkeypatch):
    x = _clustered(150, clusters=4, seed=7)
    ids = [f"doc{i:03d}" for i in range(150)]
    options = PipelineOptions(["--runner=FnApiRunner"])
    config = NeighbourConfig(num_neighbours=4, partition_rows=30, spill=3, max_group_rows=25)
    one_bucket = _graph(options, ids, x, config, tmp_path / "a.json")
    monkeypatch.setattr(knn_groups, "MERGE_BUCKET_LISTS", 40)  # 450 lists: 12 buckets
    monkeypatch.setattr(knn_groups, "BLOCK_LISTS", 3)
    assert knn_groups.merge_bucket_count(450) == 12
    assert _graph(options, ids, x, config, tmp_path / "b.json") == one_bucket
    exact, _ = exact_knn(x, 4)
    recall = np.mean([len(set(row[1]) & {ids[j] for j in exact[i]}) / 4 for i, row in enumerate(one_bucket)])
    assert recall > 0.9


def test_partitions_cover_the_corpus_and_spill_starts_at_home():
    x = _clustered(300)
    centroids = spherical_kmeans(x, 5, seed=1)
    home, spill = assign_partitions(x, centroids, 3)
    assert centroids.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(spill[:, 0], home) and len(set(home.tolist())) == 5
    assert num_partitions(300, 100, spill=2) == 3
    assert num_partitions(400, 100) == 4  # auto spill 3 of 4


def test_one_partition_where_the_spill_would_search_every_partition():
    # Auto spill covers 2 or 3 partitions; an explicit spill as large as the count does too.
    assert [num_partitions(n, 100) for n in (100, 200, 300, 301)] == [1, 1, 1, 4]
    assert num_partitions(500, 100, spill=5) == 1 and num_partitions(500, 100, spill=4) == 5
    with pytest.raises(ValueError, match="partition_rows=0"):
        num_partitions(10, 0)


def test_group_layout_splits_large_partitions_and_skips_empty_sides():
    assert group_layout(3, {"data": [250], "queries": [90]}, 100) == (3, (3, 1))
    assert group_layout(3, {"data": [], "queries": [90]}, 100) == (3, (0, 0))


def test_in_memory_partitioned_graph_recall_and_bounded_groups():
    x = _clustered(2000, d=24, clusters=20)
    exact, _ = exact_knn(x, 10)
    config = NeighbourConfig(num_neighbours=10, partition_rows=300, spill=3, max_group_rows=200)
    positions, sims, figures = knn_graph_in_memory(x, config)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(positions, exact)])
    assert recall >= 0.97, recall
    assert figures["partitions"] == 7 and figures["max_group_rows"] <= 200
    assert np.all(np.diff(sims, axis=1) <= 0) and not np.any(positions == np.arange(2000)[:, None])


def test_exact_nearest_voters_matches_brute_force():
    x = _clustered(120, seed=3)
    rows = np.arange(120)
    voters = rows[::7]
    votes = (voters % 2).astype(np.int64)
    nn_sim, nn_vote = exact_nearest_voters(x, rows, x[voters], voters, votes)
    sims = x @ x[voters].T
    sims[voters[None, :] == rows[:, None]] = -np.inf
    best = sims.argmax(axis=1)
    np.testing.assert_allclose(nn_sim, sims.max(axis=1), rtol=1e-6)
    assert np.array_equal(nn_vote, votes[best])


def test_partitioned_stage_equals_single_index_stage(tmp_path):
    x = _clustered(160, clusters=4, seed=2)
    ids = [f"doc{i:03d}" for i in range(160)]
    options = PipelineOptions(["--runner=FnApiRunner"])
    single = _graph(options, ids, x, NeighbourConfig(num_neighbours=5), tmp_path / "a.json")
    config = NeighbourConfig(num_neighbours=5, partition_rows=40, spill=4, max_group_rows=30)
    partitioned = _graph(options, ids, x, config, tmp_path / "b.json")
    assert partitioned == single
    exact, _ = exact_knn(x, 5)
    assert [list(row[1]) for row in single] == [[ids[j] for j in row] for row in exact]


def test_multiprocess_direct_runner_partitioned_equals_single_index(tmp_path):
    x = _clustered(120, clusters=4, seed=4)
    ids = [f"doc{i:03d}" for i in range(120)]
    single = _graph(
        PipelineOptions(["--runner=FnApiRunner"]), ids, x, NeighbourConfig(num_neighbours=4), tmp_path / "a.json"
    )
    multi = PipelineOptions(
        ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    )
    config = NeighbourConfig(num_neighbours=4, partition_rows=30, spill=4, max_group_rows=25)
    assert _graph(multi, ids, x, config, tmp_path / "b.json") == single


def test_knn_join_of_new_rows_against_old_queries():
    x = _clustered(50, seed=5)
    ids = [f"d{i:02d}" for i in range(50)]
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        data = pipeline | "Data" >> beam.Create(list(zip(ids[40:], x[40:])))
        queries = pipeline | "Queries" >> beam.Create(list(zip(ids[:40], x[:40])))
        joined = {"data": data, "queries": queries} | KnnJoin(NeighbourConfig(num_neighbours=3))
        firsts = joined | beam.MapTuple(lambda doc_id, value: (doc_id, value[0][0]))
        sims = x[:40] @ x[40:].T
        expected = [(ids[i], ids[40 + int(sims[i].argmax())]) for i in range(40)]
        assert_that(firsts, equal_to(expected))


@pytest.mark.parametrize(
    "runner",
    [["--runner=FnApiRunner"], ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]],
    ids=["fn_api", "multi_process"],
)
def test_shuffle_through_files_gives_the_same_graph_and_removes_its_files(tmp_path, runner):
    x = _clustered(150, clusters=4, seed=6)
    ids = [f"doc{i:03d}" for i in range(150)]
    config = NeighbourConfig(num_neighbours=4, partition_rows=30, spill=3, max_group_rows=25)
    in_shuffle = _graph(PipelineOptions(["--runner=FnApiRunner"]), ids, x, config, tmp_path / "a.json")
    shuffle_dir = tmp_path / "shuffle"
    with_files = dataclasses.replace(config, shuffle_dir=str(shuffle_dir))
    assert _graph(PipelineOptions(runner), ids, x, with_files, tmp_path / "b.json") == in_shuffle
    assert shuffle_dir.is_dir() and not any(shuffle_dir.iterdir())  # the join removed its files
    assert with_files.fingerprint() == config.fingerprint()  # where rows travel is not the graph
