"""Nearest voters and the Epoxy extension."""

import numpy as np
import pytest

from transforms.core.extension import extend_votes, nearest_voters
from transforms.core.knn import exact_knn


def _reference_nearest_voters(sims, nv):
    n, kk, m = nv.shape
    nn_sim = np.full((n, m), -np.inf, np.float32)
    nn_vote = np.full((n, m), -1, np.int8)
    for i in range(n):
        for j in range(m):
            cands = [(sims[i, s], nv[i, s, j]) for s in range(kk) if nv[i, s, j] >= 0 and np.isfinite(sims[i, s])]
            if not cands:
                continue
            best = max(c[0] for c in cands)
            classes = {v for s, v in cands if s == best}
            nn_sim[i, j] = best
            nn_vote[i, j] = classes.pop() if len(classes) == 1 else -1
    return nn_sim, nn_vote


def test_nearest_voters_matches_reference_with_ties_and_padding():
    rng = np.random.default_rng(0)
    sims = rng.choice(np.array([0.1, 0.5, 0.9], np.float32), size=(40, 6))  # many ties
    sims[:, -1] = -np.inf  # padding
    nv = np.where(rng.random((40, 6, 4)) < 0.5, rng.integers(0, 3, (40, 6, 4)), -1).astype(np.int8)
    nv[:, -1, :] = -1
    got = nearest_voters(sims, nv)
    want = _reference_nearest_voters(sims, nv)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert (got[1] == -1).any() and (got[1] >= 0).any()


def test_extend_never_changes_a_vote_and_respects_thresholds():
    rng = np.random.default_rng(1)
    votes = np.where(rng.random((50, 5)) < 0.3, rng.integers(0, 2, (50, 5)), -1).astype(np.int8)
    nn_sim = rng.random((50, 5)).astype(np.float32)
    nn_vote = rng.integers(-1, 2, (50, 5)).astype(np.int8)
    thresholds = np.array([0.0, 0.5, 0.9, np.inf, 0.2], np.float32)
    out = extend_votes(votes, nn_sim, nn_vote, thresholds)
    voted = votes >= 0
    np.testing.assert_array_equal(out[voted], votes[voted])
    changed = out != votes
    assert changed.any()
    assert np.all(nn_sim[changed] >= np.broadcast_to(thresholds, votes.shape)[changed])
    assert not changed[:, 3].any()
    expected_col0 = np.where(votes[:, 0] >= 0, votes[:, 0], nn_vote[:, 0])
    np.testing.assert_array_equal(out[:, 0], expected_col0)


def test_threshold_change_only_needs_the_cache():
    """Raising a threshold only removes extended votes (monotone), from the cache alone."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    votes = np.where(rng.random((60, 3)) < 0.2, rng.integers(0, 2, (60, 3)), -1).astype(np.int8)
    idx, sims = exact_knn(x, 10)
    nn_sim, nn_vote = nearest_voters(sims, votes[idx])
    low = extend_votes(votes, nn_sim, nn_vote, np.full(3, 0.0, np.float32))
    high = extend_votes(votes, nn_sim, nn_vote, np.full(3, 0.5, np.float32))
    assert ((high >= 0) <= (low >= 0)).all()
    assert (low >= 0).sum() > (high >= 0).sum() >= (votes >= 0).sum()


def test_shape_errors():
    with pytest.raises(ValueError, match="same n and kk"):
        nearest_voters(np.zeros((3, 2), np.float32), np.zeros((3, 3, 1), np.int8))
    with pytest.raises(ValueError, match="one per LF"):
        extend_votes(np.zeros((2, 2), np.int8), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.int8), np.zeros(3))
