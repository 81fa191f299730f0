"""Gold-aware end-model recipes, task-aware selection and the collapse guard (issue 12)."""

import json

import numpy as np
import pytest

from transforms.core.labeler import (
    FittedLabeler,
    GOLD_WEIGHT_GRID,
    LabelerConfig,
    fit_labeler,
    label_batch,
    selection_loss,
)
from transforms.core.metrics import accuracy, binary_f1
from transforms.core.selection import choose, collapses, resolve_loss


def _task(n=1500, d=16, positive=0.5, lf_accuracy=0.9, coverage=0.5, seed=0, separation=2.5):
    """Two clusters in ``d`` dimensions; 4 LFs that vote ``y`` with ``lf_accuracy``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive).astype(int)
    x = (rng.normal(size=(n, d)) + separation * y[:, None] * np.eye(d)[0]).astype(np.float32)
    right = rng.random((n, 4)) < lf_accuracy
    votes = np.where(rng.random((n, 4)) < coverage, np.where(right, y[:, None], 1 - y[:, None]), -1)
    none = np.full((n, 4), -np.inf, np.float32), np.full((n, 4), -1, np.int8)
    return np.array([f"r{i}" for i in range(n)]), votes.astype(np.int8), none, x, y


def test_gold_rows_alone_are_chosen_when_the_lfs_carry_no_signal():
    ids, votes, (nn_sim, nn_vote), x, y = _task(lf_accuracy=0.5)  # coin-flip LFs
    gold = np.where(np.arange(1500) < 300, y, -1)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig(extension=False))
    assert np.isinf(fitted.end_model.gold_weight)
    held = np.arange(1500) >= 300
    out = label_batch(fitted, votes, nn_sim, nn_vote, x)
    assert accuracy(y[held], out.label[held]) > 0.85
    weak_only = fit_labeler(
        ids, votes, nn_sim, nn_vote, x, gold,
        LabelerConfig(extension=False, end_model_gold_weight=1.0, end_model_weight=0.5),
    )
    assert accuracy(y[held], label_batch(weak_only, votes, nn_sim, nn_vote, x).label[held]) < 0.8
    back = FittedLabeler.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert np.isinf(back.end_model.gold_weight)
    np.testing.assert_array_equal(label_batch(back, votes, nn_sim, nn_vote, x).probs, out.probs)


def test_good_lfs_keep_the_default_recipe():
    ids, votes, (nn_sim, nn_vote), x, y = _task(lf_accuracy=0.95, coverage=0.9, seed=1)
    gold = np.where(np.arange(1500) < 100, y, -1)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig(extension=False))
    assert fitted.end_model.gold_weight in GOLD_WEIGHT_GRID
    assert not np.isinf(fitted.end_model.gold_weight)


def test_auto_metric_is_macro_f1_on_a_rare_binary_class_and_accuracy_otherwise():
    rare = np.array([0] * 92 + [1] * 8)
    assert selection_loss(LabelerConfig(), rare).final == "macro_f1"
    assert selection_loss(LabelerConfig(), np.arange(100) % 2).final == "error"
    assert selection_loss(LabelerConfig(metric="f1", positive_class=0), rare).final == "f1"
    assert selection_loss(LabelerConfig(metric="f1", positive_class=0), rare).positive_class == 0
    # Multi-class sets routinely have small classes: auto keeps accuracy there.
    assert resolve_loss("auto", np.array([0] * 50 + [1] * 45 + [2] * 5), 3) == "error"


def test_a_rare_positive_task_is_not_labelled_silent():
    # 8% positives, sparse LFs that mostly miss the positives: plain error rewards silence.
    ids, votes, (nn_sim, nn_vote), x, y = _task(n=3000, positive=0.08, lf_accuracy=0.8, coverage=0.25, seed=2, separation=4.0)
    gold = np.where(np.arange(3000) < 500, y, -1)
    held = np.arange(3000) >= 500
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig(extension=False))
    out = label_batch(fitted, votes, nn_sim, nn_vote, x)
    assert not collapses(np.eye(2)[out.label[held]], y[held])
    assert binary_f1(y[held], out.label[held]) > 0.5


def test_choose_never_adopts_a_collapsed_candidate():
    losses = {"silent": np.zeros(100), "default": np.ones(100)}
    assert choose(losses, "default", collapsed={"silent"}) == "default"
    assert choose(losses, "default") == "silent"
    with pytest.raises(ValueError, match="metric 'auc' is unknown"):
        resolve_loss("auc", np.zeros(3, int), 2)


def test_a_gold_only_end_model_without_gold_rows_falls_back_to_the_weak_rows():
    rng = np.random.default_rng(3)
    n = 300
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8)) + y[:, None]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    votes = np.stack([np.where(rng.random(n) < 0.5, y, -1) for _ in range(3)], axis=1).astype(np.int8)
    nn_sim = np.zeros((n, 3), np.float32)
    nn_vote = np.full((n, 3), -1, np.int8)
    config = LabelerConfig(end_model_gold_weight=float("inf"))
    fitted = fit_labeler(np.arange(n).astype(str), votes, nn_sim, nn_vote, x.astype(np.float32), np.full(n, -1), config)
    assert fitted.end_model is not None and np.isfinite(fitted.end_model.gold_weight)
