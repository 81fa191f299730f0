"""Incremental refits equal full recomputes (statistics, nearest voters, scores)."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.core.extension import nearest_voters
from transforms.core.grouped_votes import GroupedVotes, posterior_from_scores
from transforms.core.incremental import (
    ReverseGraph,
    append_lf,
    drop_lf,
    reorder_lfs,
    replace_column,
    replace_rows,
)
from transforms.core.labeler import blend, log_probs
from transforms.core.label_models import fit_triplet, majority_vote_model
from transforms.core.statistics import LabelStatistics


def _votes(rng, n, m, k, coverage=0.3):
    return np.where(rng.random((n, m)) < coverage, rng.integers(0, k, (n, m)), -1).astype(np.int8)


@pytest.mark.parametrize("k", [2, 3])
def test_replace_rows_and_replace_column_equal_a_full_recompute_for_random_column_edits(k):
    rng = np.random.default_rng(k)
    votes = _votes(rng, 300, 6, k)
    stats = LabelStatistics.empty(6, k).add(votes)
    by_column = LabelStatistics.empty(6, k).add(votes)
    by_counting = LabelStatistics.empty(6, k).add(votes)
    for _ in range(10):
        j = int(rng.integers(0, 6))
        new = votes.copy()
        new[:, j] = _votes(rng, 300, 1, k, coverage=float(rng.random()))[:, 0]
        changed = np.flatnonzero(new[:, j] != votes[:, j])
        replace_rows(stats, votes[changed], new[changed])
        counts = np.stack([(votes[changed] == c).sum(axis=1) for c in range(k)], axis=1)
        replace_column(by_column, votes[changed], new[changed], j, class_counts=counts)
        replace_column(by_counting, votes[changed], new[changed], j)
        votes = new
        assert stats.to_dict() == LabelStatistics.empty(6, k).add(votes).to_dict()
        assert by_column.to_dict() == stats.to_dict() == by_counting.to_dict()


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
    for coverage in (0.0, 0.01, 0.05, 0.5, 1.0):  # the sparse ones take the reverse edges
        column = _votes(rng, n, 1, 3, coverage)[:, 0]
        neighbour_votes = np.where(neighbours >= 0, column[np.maximum(neighbours, 0)], -1)
        expected_sim, expected_vote = nearest_voters(sims, neighbour_votes[:, :, None])
        voters = np.flatnonzero(column != -1)
        for got_sim, got_vote in (
            graph.nearest_voters(column),
            graph._by_forward_slots(column),
            graph._by_reverse_edges(column, voters),
        ):
            np.testing.assert_array_equal(got_sim, expected_sim[:, 0])
            np.testing.assert_array_equal(got_vote, expected_vote[:, 0])


def test_reverse_graph_rejects_out_of_range_neighbours():
    with pytest.raises(ValueError, match="out of range"):
        ReverseGraph.from_neighbours(np.array([[5]]), np.array([[0.5]], np.float32))


@pytest.mark.parametrize("k", [2, 3, 20])
def test_grouped_scores_equal_the_label_models_scores_after_edits(k):
    rng = np.random.default_rng(k)
    votes = _votes(rng, 500, 23, k)
    grouped = GroupedVotes(votes, cardinality=k)
    assert grouped.group_size == {2: 10, 3: 8, 20: 3}[k]
    for j in (0, 9, 10, 22):
        new = _votes(rng, 500, 1, k, 0.6)[:, 0]
        rows = np.flatnonzero(new != votes[:, j])
        grouped.replace(j, rows, votes[rows, j], new[rows])
        votes[:, j] = new
    stats = LabelStatistics.empty(23, k).add(votes)
    model = fit_triplet(stats)
    got = grouped.scores(model.weights, np.log(model.class_balance))
    np.testing.assert_allclose(got, model.scores(votes), rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["triplet", "majority_vote"])
def test_posterior_from_scores_equals_predict_proba(kind):
    rng = np.random.default_rng(4)
    votes = _votes(rng, 300, 5, 3)
    model = fit_triplet(LabelStatistics.empty(5, 3).add(votes))
    if kind == "majority_vote":
        model = majority_vote_model(5, 3)
    grouped = GroupedVotes(votes, cardinality=3)
    log_prior = np.zeros(3) if model.hard else np.log(model.class_balance)
    got = posterior_from_scores(model, grouped.scores(model.weights, log_prior))
    np.testing.assert_allclose(got, model.predict_proba(votes), atol=1e-6)


def test_blend_with_cached_end_model_logs_equals_blend():
    rng = np.random.default_rng(5)
    lm = rng.dirichlet(np.ones(3), 200).astype(np.float32)
    em = rng.dirichlet(np.ones(3), 200).astype(np.float32)
    em[0] = [1.0, 0.0, 0.0]
    covered = rng.random(200) < 0.7
    for alpha, offsets in ((0.0, None), (0.3, np.array([0.5, 0.0, -0.5])), (1.0, None)):
        np.testing.assert_array_equal(
            blend(lm, em, covered, alpha, offsets, log_em=log_probs(em)),
            blend(lm, em, covered, alpha, offsets),
        )
