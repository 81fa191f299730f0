"""Incremental refits equal full recomputes (statistics, nearest voters, scores)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from transforms.core.extension import nearest_voters
from transforms.core.incremental import (
    ReverseGraph,
    SparseVotes,
    append_lf,
    drop_lf,
    reorder_lfs,
    replace_rows,
)
from transforms.core.label_models import fit_triplet
from transforms.core.statistics import LabelStatistics


def _votes(rng, n, m, k, coverage=0.3):
    return np.where(rng.random((n, m)) < coverage, rng.integers(0, k, (n, m)), -1).astype(np.int8)


@pytest.mark.parametrize("k", [2, 3])
def test_replace_rows_equals_a_full_recompute_for_random_column_edits(k):
    rng = np.random.default_rng(k)
    votes = _votes(rng, 300, 6, k)
    stats = LabelStatistics.empty(6, k).add(votes)
    for _ in range(10):
        j = int(rng.integers(0, 6))
        new = votes.copy()
        new[:, j] = _votes(rng, 300, 1, k, coverage=float(rng.random()))[:, 0]
        changed = np.flatnonzero(new[:, j] != votes[:, j])
        replace_rows(stats, votes[changed], new[changed])
        votes = new
        assert stats.to_dict() == LabelStatistics.empty(6, k).add(votes).to_dict()


def test_append_drop_and_reorder_equal_full_recomputes():
    rng = np.random.default_rng(1)
    votes = _votes(rng, 200, 4, 3)
    stats = append_lf(LabelStatistics.empty(4, 3).add(votes))
    grown = np.concatenate([votes, _votes(rng, 200, 1, 3)], axis=1)
    changed = np.flatnonzero(grown[:, 4] != -1)
    replace_rows(stats, np.concatenate([votes, np.full((200, 1), -1, np.int8)], 1)[changed], grown[changed])
    assert stats.to_dict() == LabelStatistics.empty(5, 3).add(grown).to_dict()
    dropped = drop_lf(stats, grown, 1)
    assert dropped.to_dict() == LabelStatistics.empty(4, 3).add(np.delete(grown, 1, axis=1)).to_dict()
    order = [3, 0, 2, 1]
    permuted = reorder_lfs(dropped, order)
    expected = LabelStatistics.empty(4, 3).add(np.delete(grown, 1, axis=1)[:, order])
    assert permuted.to_dict() == expected.to_dict()
    with pytest.raises(ValueError, match="not a permutation"):
        reorder_lfs(dropped, [0, 0, 1, 2])


def test_reverse_graph_nearest_voters_equal_the_core_with_ties_padding_and_nan():
    rng = np.random.default_rng(2)
    n, kk = 400, 7
    neighbours = rng.integers(0, n, (n, kk))
    neighbours[rng.random((n, kk)) < 0.1] = -1
    sims = rng.choice(np.array([0.2, 0.5, 0.5, 0.9], np.float32), (n, kk))  # many ties
    sims[neighbours < 0] = -np.inf
    sims[0, 0] = np.nan
    graph = ReverseGraph.from_neighbours(neighbours, sims)
    for coverage in (0.0, 0.05, 0.5, 1.0):
        column = _votes(rng, n, 1, 3, coverage)[:, 0]
        neighbour_votes = np.where(neighbours >= 0, column[np.maximum(neighbours, 0)], -1)
        expected_sim, expected_vote = nearest_voters(sims, neighbour_votes[:, :, None])
        got_sim, got_vote = graph.nearest_voters(column)
        np.testing.assert_array_equal(got_sim, expected_sim[:, 0])
        np.testing.assert_array_equal(got_vote, expected_vote[:, 0])


def test_reverse_graph_rejects_out_of_range_neighbours():
    with pytest.raises(ValueError, match="out of range"):
        ReverseGraph.from_neighbours(np.array([[5]]), np.array([[0.5]], np.float32))


def test_sparse_scores_equal_the_label_models_scores_after_edits():
    rng = np.random.default_rng(3)
    votes = _votes(rng, 500, 5, 2)
    sparse = SparseVotes(votes, cardinality=2)
    votes[:, 2] = _votes(rng, 500, 1, 2, 0.6)[:, 0]
    sparse.set_column(2, votes[:, 2])
    model = fit_triplet(LabelStatistics.empty(5, 2).add(votes))
    got = sparse.scores(model.weights, np.log(model.class_balance))
    np.testing.assert_allclose(got, model.scores(votes), rtol=0, atol=1e-12)
    sparse.reorder([4, 3, 2, 1, 0])
    sparse.delete(0)
    kept = [3, 2, 1, 0]
    reduced = dataclasses.replace(model, weights=model.weights[kept])
    got = sparse.scores(reduced.weights, np.log(reduced.class_balance))
    np.testing.assert_allclose(got, reduced.scores(votes[:, kept]), rtol=0, atol=1e-12)
