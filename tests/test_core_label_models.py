"""Label models fitted from statistics: recovery on synthetic data and degenerate input."""

import json

import numpy as np
import pytest

from transforms.core.label_models import LabelModel, fit_triplet, majority_vote_model
from transforms.core.lf_estimates import DEFAULT_ACCURACY, triplet_accuracies, triplet_identified
from transforms.core.labeler import LabelerConfig, select_label_model
from transforms.core.statistics import LabelStatistics


def _synthetic(n=20000, accs=(0.9, 0.8, 0.7, 0.65, 0.6), coverage=0.6, k=2, balance=None, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=balance)
    votes = np.full((n, len(accs)), -1, np.int8)
    for j, a in enumerate(accs):
        vote = rng.random(n) < coverage
        right = rng.random(n) < a
        wrong = (y + rng.integers(1, k, n)) % k
        votes[:, j] = np.where(vote, np.where(right, y, wrong), -1)
    return y, votes


def test_triplet_recovers_binary_accuracies():
    accs = (0.9, 0.8, 0.7, 0.65, 0.6)
    y, votes = _synthetic(accs=accs)
    stats = LabelStatistics.empty(5, 2).add(votes)
    for aggregation in ("median", "mean"):
        est = triplet_accuracies(stats, aggregation)
        np.testing.assert_allclose(est[:, 0], accs, atol=0.03)


def test_triplet_beats_majority_vote_with_unequal_accuracies():
    y, votes = _synthetic(accs=(0.95, 0.6, 0.6, 0.6, 0.6), coverage=0.9, seed=1)
    stats = LabelStatistics.empty(5, 2).add(votes)
    tri = fit_triplet(stats).predict_proba(votes).argmax(1)
    mv = majority_vote_model(5, 2).predict_proba(votes).argmax(1)
    assert (tri == y).mean() > (mv == y).mean() + 0.03


def test_class_balance_estimated_and_given():
    y, votes = _synthetic(balance=[0.8, 0.2], seed=2, coverage=0.8)
    stats = LabelStatistics.empty(5, 2).add(votes)
    assert abs(fit_triplet(stats).class_balance[0] - 0.8) < 0.07
    given = fit_triplet(stats, class_balance=np.array([0.3, 0.7]))
    np.testing.assert_allclose(given.class_balance, [0.3, 0.7])
    with pytest.raises(ValueError, match="class_balance"):
        fit_triplet(stats, class_balance=np.array([0.3, 0.3]))


def test_multiclass_one_vs_rest():
    y, votes = _synthetic(accs=(0.9, 0.8, 0.7, 0.7, 0.6, 0.6), k=4, seed=3)
    stats = LabelStatistics.empty(6, 4).add(votes)
    model = fit_triplet(stats)
    acc = (model.predict_proba(votes).argmax(1) == y)[(votes >= 0).any(1)].mean()
    mv = (majority_vote_model(6, 4).predict_proba(votes).argmax(1) == y)[(votes >= 0).any(1)].mean()
    assert acc >= mv - 0.005 and acc > 0.8


def test_gold_rows_correct_a_bad_unsupervised_estimate():
    # LF 3 is adversarial (accuracy 0.2): triplets assume better than random, gold fixes it.
    y, votes = _synthetic(accs=(0.85, 0.8, 0.75, 0.2), coverage=0.9, seed=4)
    stats = LabelStatistics.empty(4, 2).add(votes)
    plain = fit_triplet(stats)
    gold = fit_triplet(stats, gold_votes=votes[:300], gold=y[:300], gold_strength=10.0)
    assert gold.weights[3, 1, 1] < gold.weights[3, 1, 0]  # vote 1 now evidence for class 0
    assert (gold.predict_proba(votes).argmax(1) == y).mean() > (plain.predict_proba(votes).argmax(1) == y).mean()


def test_degenerate_inputs_never_nan():
    # Two LFs, one never voting, all LFs agreeing.
    votes = np.array([[1, -1], [0, -1], [1, -1]], np.int8)
    stats = LabelStatistics.empty(2, 2).add(votes)
    acc = triplet_accuracies(stats)
    np.testing.assert_allclose(acc, DEFAULT_ACCURACY)
    probs = fit_triplet(stats).predict_proba(votes)
    assert np.isfinite(probs).all()
    agree = np.array([[1, 1, 1], [0, 0, 0]] * 5, np.int8)
    probs = fit_triplet(LabelStatistics.empty(3, 2).add(agree)).predict_proba(agree)
    assert np.isfinite(probs).all() and (probs.argmax(1) == agree[:, 0]).all()
    with pytest.raises(ValueError, match="0 rows"):
        fit_triplet(LabelStatistics.empty(3, 2))


def test_json_round_trip_and_majority_vote_ties():
    y, votes = _synthetic(n=500, seed=5)
    model = fit_triplet(LabelStatistics.empty(5, 2).add(votes))
    again = LabelModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.predict_proba(votes), model.predict_proba(votes), rtol=1e-6)
    mv = majority_vote_model(3, 3).predict_proba(np.array([[0, 1, -1], [-1, -1, -1], [2, 2, 0]]))
    np.testing.assert_allclose(mv, [[0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]])


def test_disjoint_lfs_are_not_identified_and_auto_falls_back_to_majority_vote():
    # A perfect ZERO detector that never votes with the two (overlapping) ONE detectors, as in
    # examples/digits: zero moments of pairs that never co-vote are no evidence of accuracy 0.5.
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 3000)
    zero = np.where((y == 0) & (rng.random(y.size) < 0.5), 0, -1)
    one_a = np.where((y == 1) & (rng.random(y.size) < 0.6), 1, -1)
    one_b = np.where((y == 1) & (rng.random(y.size) < 0.6), 1, -1)
    votes = np.stack([zero, one_a, one_b], axis=1).astype(np.int8)
    stats = LabelStatistics.empty(3, 2).add(votes)
    np.testing.assert_allclose(triplet_accuracies(stats), DEFAULT_ACCURACY)
    assert not triplet_identified(stats).any()
    no_gold = np.zeros((0, 3), np.int8), np.zeros(0, int)
    chosen = select_label_model(stats, *no_gold, LabelerConfig()).model
    assert chosen.kind == "majority_vote"
    covered = (votes >= 0).any(1)
    assert (chosen.predict_proba(votes)[covered].argmax(1) == y[covered]).all()
    y, votes = _synthetic(n=3000, seed=7)  # overlapping LFs: triplet, as before
    stats = LabelStatistics.empty(5, 2).add(votes)
    assert triplet_identified(stats).all()
    assert select_label_model(stats, *no_gold, LabelerConfig()).model.kind == "triplet"


def test_class_balance_from_vote_shares_for_one_class_lfs():
    # SMS-like: 13% positives, every LF votes one class only.
    rng = np.random.default_rng(8)
    y = (rng.random(5000) < 0.13).astype(int)
    cols = [np.where((y == 1) & (rng.random(y.size) < 0.4), 1, -1) for _ in range(4)]
    cols += [np.where((y == 0) & (rng.random(y.size) < 0.4), 0, -1) for _ in range(4)]
    stats = LabelStatistics.empty(8, 2).add(np.stack(cols, axis=1).astype(np.int8))
    pi = fit_triplet(stats).class_balance
    assert abs(pi[1] - 0.13) < 0.03
