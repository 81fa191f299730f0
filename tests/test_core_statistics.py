"""The CombineFn contract of LabelStatistics, tested without Beam."""

import json
import pickle

import numpy as np
import pytest

from transforms.core.statistics import LabelStatistics


def _random_votes(rng, n=97, m=6, k=3):
    return np.where(rng.random((n, m)) < 0.4, rng.integers(0, k, (n, m)), -1).astype(np.int8)


def _brute_force(votes, k):
    """Row-by-row reference of every counter."""
    n, m = votes.shape
    co = np.zeros((m, m), np.int64)
    agree = np.zeros((k, m, m), np.int64)
    with_ = np.zeros((k, m, m), np.int64)
    overlaps = np.zeros(m, np.int64)
    conflicts = np.zeros(m, np.int64)
    for row in votes:
        for i in range(m):
            if row[i] < 0:
                continue
            others = [row[j] for j in range(m) if j != i and row[j] >= 0]
            overlaps[i] += bool(others)
            conflicts[i] += any(v != row[i] for v in others)
            for j in range(m):
                if row[j] < 0:
                    continue
                co[i, j] += 1
                with_[row[i], i, j] += 1
                if row[j] == row[i]:
                    agree[row[i], i, j] += 1
    return co, agree, with_, overlaps, conflicts


def test_add_matches_brute_force():
    votes = _random_votes(np.random.default_rng(1))
    stats = LabelStatistics.empty(6, 3).add(votes)
    co, agree, with_, overlaps, conflicts = _brute_force(votes, 3)
    assert stats.n == 97
    assert stats.covered == int((votes >= 0).any(axis=1).sum())
    np.testing.assert_array_equal(stats.co_votes, co)
    np.testing.assert_array_equal(stats.class_agree, agree)
    np.testing.assert_array_equal(stats.class_with, with_)
    np.testing.assert_array_equal(stats.overlaps, overlaps)
    np.testing.assert_array_equal(stats.conflicts, conflicts)


@pytest.mark.parametrize("cuts", [(0,), (1, 50), (10, 11, 12, 96), tuple(range(0, 97, 7))])
def test_batch_split_invariance(cuts):
    votes = _random_votes(np.random.default_rng(2))
    whole = LabelStatistics.empty(6, 3).add(votes)
    parts = [LabelStatistics.empty(6, 3).add(chunk) for chunk in np.split(votes, list(cuts))]
    merged = LabelStatistics.merge_all((p for p in reversed(parts)), 6, 3)
    assert merged == whole
    one_acc = LabelStatistics.empty(6, 3)
    for chunk in np.split(votes, list(cuts)):
        one_acc.add(chunk)
    assert one_acc == whole


def test_pickle_and_json_round_trip():
    stats = LabelStatistics.empty(6, 3).add(_random_votes(np.random.default_rng(3)))
    assert pickle.loads(pickle.dumps(stats)) == stats
    assert LabelStatistics.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats


def test_merge_of_generator_including_empty_accumulators():
    votes = _random_votes(np.random.default_rng(4))
    gen = (LabelStatistics.empty(6, 3).add(votes[i::3]) if i < 3 else LabelStatistics.empty(6, 3) for i in range(5))
    assert LabelStatistics.merge_all(gen, 6, 3) == LabelStatistics.empty(6, 3).add(votes)


def test_empty_and_degenerate_input():
    empty = LabelStatistics.empty(4, 2)
    assert empty.add(np.zeros((0, 4), np.int8)) == LabelStatistics.empty(4, 2)
    assert empty.n == 0 and empty.covered == 0
    abstain_only = LabelStatistics.empty(4, 2).add(np.full((5, 4), -1, np.int8))
    assert abstain_only.n == 5 and abstain_only.covered == 0
    assert abstain_only.co_votes.sum() == 0


def test_errors_name_the_bad_value():
    stats = LabelStatistics.empty(3, 2)
    with pytest.raises(ValueError, match="vote 2 is out of range"):
        stats.add(np.array([[0, 2, -1]]))
    with pytest.raises(ValueError, match=r"expected \[rows, 3\]"):
        stats.add(np.array([[0, 1]]))
    with pytest.raises(ValueError, match="cannot merge"):
        stats.merge(LabelStatistics.empty(4, 2))
    with pytest.raises(ValueError, match="cardinality=1"):
        LabelStatistics.empty(3, 1)
