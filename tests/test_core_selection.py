"""Round 2 of the numeric core: joint counts, the moments model, gold-row model selection,
the closed-form end model and the chosen blend weight."""

import dataclasses
import json

import numpy as np
import pytest

from transforms.core.end_model import EndModel, fit_ridge_classifier
from transforms.core.extension import nearest_voters
from transforms.core.knn import exact_knn
from transforms.core.label_models import fit_moments, majority_vote_model
from transforms.core.lf_estimates import moment_precision
from transforms.core.labeler import (
    BLEND_GRID,
    DEFAULT_BLEND,
    GOLD_FREE_EXTENDED_BLEND,
    FittedLabeler,
    LabelerConfig,
    fit_labeler,
    label_batch,
    select_label_model,
)
from transforms.core.selection import beats, out_of_fold_proba, prior_matching_offsets, row_losses
from transforms.core.statistics import LabelStatistics, joint_counts


def _unipolar(n=6000, k=4, per_class=3, accs=(0.9, 0.75, 0.45), coverage=0.35, seed=0):
    """Each LF votes only its own class: right with its accuracy, else on a random row."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    cols = []
    for c in range(k):
        for a in accs[:per_class]:
            fires = rng.random(n) < coverage * np.where(y == c, 1.0, (1 - a) / a / (k - 1))
            cols.append(np.where(fires, c, -1))
    return y, np.stack(cols, axis=1).astype(np.int8)


def test_joint_counts_match_brute_force_and_chunking(monkeypatch):
    rng = np.random.default_rng(0)
    votes = np.where(rng.random((200, 7)) < 0.5, rng.integers(0, 3, (200, 7)), -1).astype(np.int8)
    brute = np.zeros((7, 3, 7, 3), np.int64)
    for row in votes:
        for i in np.flatnonzero(row >= 0):
            for j in np.flatnonzero(row >= 0):
                brute[i, row[i], j, row[j]] += 1
    np.testing.assert_array_equal(joint_counts(votes, 3).reshape(7, 3, 7, 3), brute)
    monkeypatch.setattr("transforms.core.statistics._PAIRS_PER_CHUNK", 5)
    np.testing.assert_array_equal(joint_counts(votes, 3).reshape(7, 3, 7, 3), brute)
    assert joint_counts(np.full((4, 2), -1, np.int8), 2).sum() == 0


def test_moments_recovers_unipolar_precisions():
    y, votes = _unipolar()
    stats = LabelStatistics.empty(votes.shape[1], 4).add(votes)
    prec = moment_precision(stats, np.full(4, 0.25))
    for j in range(votes.shape[1]):
        c = j // 3
        true = float((y[votes[:, j] == c] == c).mean())
        assert abs(prec[j, c, c] - true) < 0.08, (j, prec[j, c, c], true)


def test_moments_beats_majority_vote_on_unequal_unipolar_lfs():
    y, votes = _unipolar(seed=1)
    stats = LabelStatistics.empty(votes.shape[1], 4).add(votes)
    covered = (votes >= 0).any(axis=1)
    mv = majority_vote_model(votes.shape[1], 4).predict_proba(votes).argmax(1)
    mom = fit_moments(stats).predict_proba(votes).argmax(1)
    assert (mom == y)[covered].mean() > (mv == y)[covered].mean() + 0.01


def test_out_of_fold_proba_does_not_see_the_held_row():
    y, votes = _unipolar(n=800, seed=2)
    stats = LabelStatistics.empty(votes.shape[1], 4).add(votes)
    # Gold rows whose labels contradict every vote: in-sample shrinkage learns the flip,
    # out-of-fold shrinkage on a single fold cannot.
    flipped = (y[:300] + 1) % 4
    model = fit_moments(stats, gold_votes=votes[:300], gold=flipped, gold_strength=1.0)
    folds = np.zeros(300, np.int64)
    oof = out_of_fold_proba(model, votes[:300], flipped, folds, 1.0)
    unsupervised = fit_moments(stats, class_balance=model.class_balance).predict_proba(votes[:300])
    np.testing.assert_allclose(oof, unsupervised, atol=1e-5)
    assert not np.allclose(model.predict_proba(votes[:300]), oof)


def test_beats_is_a_paired_one_standard_error_test():
    base = np.array([0.0] * 50 + [1.0] * 50)
    many = base.copy()
    many[50:70] = 0.0  # 20 wins, 0 losses
    assert beats(many, base)
    mixed = base.copy()
    mixed[[50, 51, 52, 53, 54, 0, 1, 2]] = [0, 0, 0, 0, 0, 1, 1, 1]  # 5 wins, 3 losses
    assert not beats(mixed, base)
    assert not beats(base, base)


def test_row_losses():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.6, 0.4]])
    gold = np.array([0, 1, 1, 0])
    assert row_losses(proba, gold, "error").tolist() == [0, 0, 1, 0]
    # Class 1 has 2 of 4 rows: weight 4 / (2 · 2) = 1; mean = balanced error = (0 + 1/2) / 2.
    assert row_losses(proba, gold, "balanced_error").mean() == pytest.approx(0.25)
    # F1 of class 1: TP 1, FN 1, FP 0 -> 2/3; of class 0: TP 2, FP 1 -> 0.8. The mean loss is
    # 1 - F1 exactly, and 1 - macro-F1 for "macro_f1".
    assert row_losses(proba, gold, "f1").mean() == pytest.approx(1 / 3)
    assert row_losses(proba, gold, "f1", positive_class=0).mean() == pytest.approx(0.2)
    assert row_losses(proba, gold, "macro_f1").mean() == pytest.approx(1 - (0.8 + 2 / 3) / 2)
    silent = np.tile([0.9, 0.1], (4, 1))
    assert row_losses(silent, gold, "f1").mean() == pytest.approx(1.0)
    assert row_losses(silent, gold, "error").mean() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="selection loss 'auc' is unknown"):
        row_losses(proba, gold, "auc")


def test_auto_label_model_falls_back_to_majority_vote_without_evidence():
    y, votes = _unipolar(n=2000, seed=3)
    stats = LabelStatistics.empty(votes.shape[1], 4).add(votes)
    config = LabelerConfig(cardinality=4)
    few = select_label_model(stats, votes[:10], y[:10], config).model
    assert few.kind == "majority_vote"  # multi-class, fewer than min_gold gold rows
    # With gold rows the fallback is majority vote refined by them (naive_bayes); on unequal
    # LFs it learns their accuracies and beats plain majority vote out of fold.
    scored = select_label_model(stats, votes[:400], y[:400], config)
    model, loss = scored.model, scored.loss
    assert scored.proba.shape == (400, 4)
    assert model.kind == "naive_bayes" and loss.shape == (400,)
    mv = majority_vote_model(votes.shape[1], 4)
    mv_loss = row_losses(mv.predict_proba(votes[:400]), y[:400], "balanced_error")
    assert beats(loss, mv_loss)
    forced = dataclasses.replace(config, label_model="moments")
    assert select_label_model(stats, votes[:400], y[:400], forced).model.kind == "moments"


def test_ridge_end_model_is_closed_form_and_serialises():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 2
    y = rng.integers(0, 3, 600)
    x = (centres[y] + rng.normal(size=(600, 8))).astype(np.float32)
    model = fit_ridge_classifier(x, np.eye(3)[y])
    assert (model.predict_proba(x).argmax(1) == y).mean() > 0.9
    again = EndModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.predict_proba(x), model.predict_proba(x), rtol=1e-5)
    with pytest.raises(ValueError, match="at least one training row"):
        fit_ridge_classifier(x[:0], np.zeros((0, 3)))


def _clusters(n=500, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.normal(size=(2, 16))[y] * 3 + rng.normal(size=(n, 16))).astype(np.float32)
    right = rng.random((n, 6)) < 0.75
    votes = np.where(rng.random((n, 6)) < 0.3, np.where(right, y[:, None], 1 - y[:, None]), -1)
    idx, sims = exact_knn(x, 10)
    nn_sim, nn_vote = nearest_voters(sims, votes.astype(np.int8)[idx])
    ids = np.array([f"doc-{i}" for i in range(n)])
    return ids, votes.astype(np.int8), nn_sim, nn_vote, x, y


def test_blend_weight_is_chosen_on_gold_rows_and_round_trips():
    ids, votes, nn_sim, nn_vote, x, y = _clusters()
    gold = np.where(np.arange(500) < 150, y, -1)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig())
    assert fitted.end_model.weight in BLEND_GRID
    out = label_batch(fitted, votes, nn_sim, nn_vote, x)
    assert (out.label[150:] == y[150:]).mean() > 0.9  # clusters: the end model fixes LF noise
    again = FittedLabeler.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again.end_model.weight == fitted.end_model.weight
    np.testing.assert_allclose(label_batch(again, votes, nn_sim, nn_vote, x).probs, out.probs, atol=1e-5)
    no_gold = fit_labeler(ids, votes, nn_sim, nn_vote, x, np.full(500, -1), LabelerConfig())
    assert np.isfinite(no_gold.thresholds).any()  # the clusters pass the gold-free check
    assert no_gold.end_model.weight == GOLD_FREE_EXTENDED_BLEND
    unextended = fit_labeler(ids, votes, nn_sim, nn_vote, x, np.full(500, -1), LabelerConfig(extension=False))
    assert unextended.end_model.weight == DEFAULT_BLEND
    fixed = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig(end_model_weight=0.25))
    assert fixed.end_model.weight == 0.25


def test_new_config_fields_are_validated():
    with pytest.raises(ValueError, match="metric='auc' is unknown"):
        LabelerConfig(metric="auc")
    with pytest.raises(ValueError, match="metric='f1' with 3 classes needs positive_class"):
        LabelerConfig(cardinality=3, metric="f1")
    with pytest.raises(ValueError, match="positive_class=2 is not a class id"):
        LabelerConfig(positive_class=2)
    with pytest.raises(ValueError, match="end_model_gold_weight=0.5 must be at least 1"):
        LabelerConfig(end_model_gold_weight=0.5)
    with pytest.raises(ValueError, match="label_model='snorkel' is unknown"):
        LabelerConfig(label_model="snorkel")


@pytest.mark.parametrize("shares", [[0.9, 0.1], [0.5, 0.3, 0.2], [0.05, 0.15, 0.3, 0.5]])
def test_prior_matching_offsets_reach_the_target_shares(shares):
    rng = np.random.default_rng(0)
    log_p = np.log(rng.dirichlet(np.ones(len(shares)), size=4000))
    offsets = prior_matching_offsets(log_p, np.array(shares))
    predicted = np.bincount((log_p + offsets).argmax(1), minlength=len(shares)) / 4000
    assert 0.5 * np.abs(predicted - shares).sum() < 0.01
    assert offsets.mean() == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(prior_matching_offsets(log_p, np.array(shares)), offsets)  # deterministic
