"""The ScaNN neighbour stage: plain functions, DoFns as objects, and the PTransform."""

import dataclasses

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from transforms.knn_graph import NeighbourGraph
from transforms.neighbours import (
    LoadedIndex,
    NeighbourConfig,
    build_searcher,
    search,
    search_group,
    searcher_builder,
)


def _unit_vectors(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _exact(vectors: np.ndarray, ids: list[str], k: int) -> dict[str, list[str]]:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return {ids[i]: [ids[j] for j in order[i]] for i in range(len(ids))}


def test_search_matches_exact_and_excludes_self():
    vectors = _unit_vectors(60)
    ids = [f"d{i:03d}" for i in range(60)]
    config = NeighbourConfig(num_neighbours=5)
    results = search(LoadedIndex.build(ids[::-1], vectors[::-1], config), ids, vectors, 5)
    exact = _exact(vectors, ids, 5)
    for doc_id, neighbours, sims in results:
        assert doc_id not in neighbours
        assert neighbours == exact[doc_id]
        assert sims.dtype == np.float32 and np.all(np.diff(sims) <= 0)


def test_tree_index_recall_on_clustered_data():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16))
    vectors = (centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [str(i) for i in range(3000)]
    config = NeighbourConfig(num_neighbours=10, brute_force_max_rows=100, leaves_to_search_share=0.2)
    index = LoadedIndex(build_searcher(vectors, config), np.asarray(ids), vectors)
    results = search(index, ids[:300], vectors[:300], 10)
    exact = _exact(vectors, ids, 10)
    recall = np.mean([len(set(nb) & set(exact[i])) / 10 for i, nb, _ in results])
    assert recall >= 0.9


def test_index_training_samples_are_scanns_and_a_small_quantiser_sample_keeps_recall():
    """The tree and the quantiser train on the configured samples; a tenth of the rows for the
    quantiser costs no recall (the exact re-scoring absorbs it). ScaNN's tree-AH build is not
    deterministic (docs/scale.md), so each recall is the mean over three builds."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 16))
    vectors = (centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [str(i) for i in range(3000)]
    exact = _exact(vectors, ids, 10)
    recall = {}
    for rows in (300, 3000):
        config = NeighbourConfig(
            num_neighbours=10, brute_force_max_rows=100, leaves_to_search_share=0.2,
            tree_training_rows=2000, quantizer_training_rows=rows,
        )
        scann_config = searcher_builder(vectors, config).create_config()
        assert "expected_sample_size: 2000" in scann_config
        assert f"expected_sample_size: {rows}" in scann_config
        builds = []
        for _ in range(3):
            index = LoadedIndex(build_searcher(vectors, config), np.asarray(ids), vectors)
            results = search(index, ids[:300], vectors[:300], 10)
            builds.append(np.mean([len(set(nb) & set(exact[i])) / 10 for i, nb, _ in results]))
        recall[rows] = np.mean(builds)
    assert recall[300] >= 0.9 and recall[300] >= recall[3000] - 0.02
    assert config.fingerprint() != dataclasses.replace(config, quantizer_training_rows=301).fingerprint()
    with pytest.raises(ValueError, match="tree_training_rows=0 must be at least 1"):
        NeighbourConfig(tree_training_rows=0)


def test_parallel_search_gives_the_serial_graph_and_the_same_cache_key():
    """ScaNN's thread pool changes how the graph is searched, not the graph (nor its cache key)."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(30, 32))
    vectors = (centres[rng.integers(0, 30, 4000)] + 0.4 * rng.normal(size=(4000, 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"{i:05d}" for i in range(4000)]
    tree = NeighbourConfig(num_neighbours=10, brute_force_max_rows=100)
    for config in (tree, NeighbourConfig(num_neighbours=10)):  # tree + hashing, brute force
        index = LoadedIndex.build(ids, vectors, config)
        serial = search(index, ids, vectors, 10, batch_size=512, parallel=False)
        parallel = search(index, ids, vectors, 10, batch_size=512, parallel=True)
        assert [(q, nb) for q, nb, _ in serial] == [(q, nb) for q, nb, _ in parallel]
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(serial, parallel))
    runtime_only = NeighbourConfig(parallel_search=False, query_batch_size=7)
    assert runtime_only.fingerprint() == NeighbourConfig().fingerprint()
    assert NeighbourConfig(leaves_to_search_share=0.1).fingerprint() != NeighbourConfig().fingerprint()


def test_search_group_queries_a_subset_and_handles_no_data():
    vectors = _unit_vectors(10)
    ids = [f"d{i}" for i in range(10)]
    config = NeighbourConfig(num_neighbours=3)
    out = {q: nb for q, nb, _ in search_group(ids[::-1], vectors[::-1], ids[:4], vectors[:4], config)}
    assert set(out) == {"d0", "d1", "d2", "d3"}
    assert len(out["d0"]) == 3 and "d0" not in out["d0"]
    assert out == {q: nb for q, nb, _ in search_group(ids, vectors, ids[:4], vectors[:4], config)}
    empty = search_group([], vectors[:0], ids[:2], vectors[:2], config)
    assert [(q, nb) for q, nb, _ in empty] == [("d0", []), ("d1", [])]


def test_similarities_do_not_depend_on_the_query_batch(tmp_path):
    vectors = _unit_vectors(200, d=32, seed=5)
    ids = [f"d{i:03d}" for i in range(200)]
    index = LoadedIndex(build_searcher(vectors, NeighbourConfig(num_neighbours=8)), np.asarray(ids), vectors)
    together = search(index, ids, vectors, 8)
    alone = [search(index, [ids[i]], vectors[i : i + 1], 8)[0] for i in range(0, 200, 17)]
    for single in alone:
        batched = together[ids.index(single[0])]
        assert single[1] == batched[1]
        assert single[2].tobytes() == batched[2].tobytes()


def test_tiny_corpus_has_fewer_neighbours_than_k(tmp_path):
    vectors = _unit_vectors(3)
    ids = ["a", "b", "c"]
    index = LoadedIndex(build_searcher(vectors, NeighbourConfig(num_neighbours=10)), np.asarray(ids), vectors)
    results = search(index, ids, vectors, 10)
    assert [len(neighbours) for _, neighbours, _ in results] == [2, 2, 2]


def test_config_rejects_zero_neighbours():
    with pytest.raises(ValueError, match="num_neighbours=0"):
        NeighbourConfig(num_neighbours=0)


def test_neighbour_graph_transform_matches_exact(tmp_path):
    vectors = _unit_vectors(40, seed=3)
    ids = [f"doc{i}" for i in range(40)]
    exact = _exact(vectors, ids, 4)
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        graph = (
            pipeline
            | beam.Create(list(zip(ids, vectors)))
            | NeighbourGraph(NeighbourConfig(num_neighbours=4))
            | beam.MapTuple(lambda doc_id, value: (doc_id, value[0]))
        )
        assert_that(graph, equal_to(sorted(exact.items())))
