"""Round 3 of the numeric core: the gold-refined majority vote (``naive_bayes``) and the class
offsets of the final probabilities chosen by nested cross-validation on the gold rows."""

import dataclasses
import json

import numpy as np

from transforms.core.end_model import EndModel
from transforms.core.label_models import fit_naive_bayes, majority_vote_model
from transforms.core.labeler import (
    FittedLabeler,
    LabelerConfig,
    blend,
    SelectionLoss,
    choose_offsets,
    fit_labeler,
    label_batch,
)
from transforms.core.metrics import macro_f1
from transforms.core.selection import cross_validated_offsets, fold_assignment, fit_offsets
from transforms.core.statistics import LabelStatistics


def test_naive_bayes_is_majority_vote_until_gold_rows_say_otherwise():
    votes = np.array([[0, -1, -1], [-1, 1, -1], [-1, -1, 2], [0, 1, -1]], np.int8)
    stats = LabelStatistics.empty(3, 3).add(votes)
    model = fit_naive_bayes(stats, class_balance=np.full(3, 1 / 3))
    mv = majority_vote_model(3, 3)
    single = votes[:3]
    assert model.kind == "naive_bayes" and model.prior is not None
    assert model.predict_proba(single).argmax(1).tolist() == mv.predict_proba(single).argmax(1).tolist()
    # Gold rows where LF 0's votes for class 0 are always class 2: its vote now means class 2.
    gold_votes = np.tile(np.array([[0, -1, -1]], np.int8), (20, 1))
    refined = fit_naive_bayes(stats, gold_votes=gold_votes, gold=np.full(20, 2), gold_strength=2.0)
    assert refined.predict_proba(votes[:1]).argmax(1).tolist() == [2]
    assert refined.predict_proba(votes[1:2]).argmax(1).tolist() == [1]  # other LFs untouched


def test_fit_offsets_moves_a_biased_threshold_and_keeps_a_calibrated_one():
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.3).astype(int)
    score = rng.normal(size=600) + 2.0 * y
    # The Bayes log-odds of class 1: 2·score - 2 + log(0.3 / 0.7).
    calibrated = np.stack([np.zeros(600), 2 * score - 2 - np.log(0.7 / 0.3)], axis=1)
    in_sample = fit_offsets(calibrated, y, "error")
    assert abs(in_sample[1] - in_sample[0]) <= 0.5
    biased = calibrated - np.array([0.0, 2.0])  # class 1 under-predicted by a factor e^2
    offsets = fit_offsets(biased, y, "error")
    assert offsets[1] - offsets[0] >= 1.5


def test_cross_validated_offsets_reject_noise_and_accept_a_real_shift():
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.2).astype(int)
    score = rng.normal(size=400) + 2.5 * y
    log_p = np.stack([np.zeros(400), 2.5 * score - 3.125 - np.log(4.0)], axis=1)
    folds = fold_assignment(400, 5, 0)
    proba = np.exp(log_p) / np.exp(log_p).sum(1, keepdims=True)
    error = SelectionLoss(final="error", label_model="balanced_error")
    assert choose_offsets(proba, y, folds, error) is None
    shifted = log_p - np.array([0.0, 3.0])
    proba = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    offsets, loss, held_out = cross_validated_offsets(shifted, y, folds, "error")
    assert loss.shape == (400,) and held_out.shape == (400, 2)
    chosen = choose_offsets(proba, y, folds, error)
    assert chosen is not None and chosen.tolist() == offsets.tolist() and offsets[1] > offsets[0]


def test_blend_offsets_shift_every_row_and_serialise():
    lm = np.array([[0.6, 0.4], [0.5, 0.5]], np.float32)
    em = np.array([[0.7, 0.3], [0.55, 0.45]], np.float32)
    covered = np.array([True, False])
    plain = blend(lm, em, covered, 0.5)
    shifted = blend(lm, em, covered, 0.5, np.array([0.0, 1.0]))
    ratio = (shifted[:, 1] / shifted[:, 0]) / (plain[:, 1] / plain[:, 0])
    np.testing.assert_allclose(ratio, np.e, rtol=1e-5)
    model = EndModel(
        weights=np.zeros((4, 2), np.float32), bias=np.zeros(2, np.float32), scale=1.0,
        offsets=np.array([0.0, -0.5]),
    )
    back = EndModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert back.offsets.tolist() == [0.0, -0.5]
    legacy = model.to_dict()
    del legacy["offsets"]
    assert EndModel.from_dict(legacy).offsets is None


def test_fit_labeler_chooses_offsets_for_an_under_predicted_class_and_round_trips():
    rng = np.random.default_rng(2)
    n, d = 1500, 8
    y = (rng.random(n) < 0.25).astype(int)
    x = (rng.normal(size=(n, d)) + 3.0 * y[:, None] * np.eye(d)[0]).astype(np.float32)
    # Uninformative LFs that mostly vote the majority class: the end model, trained on their
    # soft labels, never predicts class 1 without an offset.
    votes = np.where(
        rng.random((n, 4)) < 0.5, np.where(rng.random((n, 4)) < 0.9, 0, 1), -1
    ).astype(np.int8)
    nn_sim = np.full((n, 4), -np.inf, np.float32)
    nn_vote = np.full((n, 4), -1, np.int8)
    gold = np.where(np.arange(n) < 400, y, -1)
    ids = np.array([f"r{i}" for i in range(n)])
    # Weak targets + gold rows at weight 1 (the default recipe), so only the offsets can help.
    config = LabelerConfig(
        extension=False, label_model="naive_bayes", end_model_gold_weight=1.0, metric="macro_f1"
    )
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, config)
    assert fitted.end_model is not None and fitted.end_model.offsets is not None
    assert fitted.end_model.offsets[1] > fitted.end_model.offsets[0]
    off = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, dataclasses.replace(config, class_offsets=False))
    assert off.end_model.offsets is None
    with_offsets = label_batch(fitted, votes, nn_sim, nn_vote, x)
    without = label_batch(off, votes, nn_sim, nn_vote, x)
    held = np.arange(n) >= 400
    assert macro_f1(y[held], with_offsets.label[held], 2) > macro_f1(y[held], without.label[held], 2) + 0.05
    back = FittedLabeler.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_array_equal(label_batch(back, votes, nn_sim, nn_vote, x).probs, with_offsets.probs)
