"""The labeler: the in-memory fit equals the pipeline's step-by-step fit; label_batch."""

import json

import numpy as np
import pytest

from transforms.core.extension import extend_votes, nearest_voters
from transforms.core.extension_check import extension_agrees, extension_kappa
from transforms.core.knn import exact_knn
from transforms.core.labeler import (
    FittedLabeler,
    LabelerConfig,
    choose_thresholds,
    fit_end_model,
    fit_label_model,
    fit_labeler,
    label_batch,
    quantile_thresholds,
    sample_priority,
    select_fit_sample,
)
from transforms.core.statistics import LabelStatistics


def _clustered_corpus(n=400, m=6, k=2, seed=0):
    """Two clusters in embedding space; LFs cover 30% and are 80% accurate."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(size=(k, 16)) * 3
    x = (centres[y] + rng.normal(size=(n, 16))).astype(np.float32)
    right = rng.random((n, m)) < 0.8
    votes = np.where(rng.random((n, m)) < 0.3, np.where(right, y[:, None], (y[:, None] + 1) % k), -1).astype(np.int8)
    idx, sims = exact_knn(x, 10)
    nn_sim, nn_vote = nearest_voters(sims, votes[idx])
    ids = np.array([f"doc-{i}" for i in range(n)])
    gold = np.where(np.arange(n) < 60, y, -1)
    return ids, votes, nn_sim, nn_vote, x, gold, y


def test_fit_labeler_equals_the_pipeline_steps():
    ids, votes, nn_sim, nn_vote, x, gold, _ = _clustered_corpus()
    config = LabelerConfig(sample_size=200)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, config)
    sample = select_fit_sample(ids, votes, nn_sim, nn_vote, x, gold, config.sample_size)
    thresholds = choose_thresholds(sample, config)
    stats = LabelStatistics.empty(6, 2)
    for part in np.array_split(np.arange(len(ids)), 7):  # the CombineFn sees arbitrary bundles
        stats.add(extend_votes(votes[part], nn_sim[part], nn_vote[part], thresholds))
    model = fit_label_model(stats, sample, thresholds, config)
    end = fit_end_model(sample, thresholds, model, config)
    np.testing.assert_array_equal(fitted.thresholds, thresholds)
    np.testing.assert_allclose(fitted.label_model.weights, model.weights)
    np.testing.assert_allclose(fitted.end_model.weights, end.weights)


def test_sample_is_gold_plus_smallest_priorities():
    ids, votes, nn_sim, nn_vote, x, gold, _ = _clustered_corpus()
    sample = select_fit_sample(ids, votes, nn_sim, nn_vote, x, gold, 50)
    smallest = sorted(ids, key=sample_priority)[:50]
    assert set(sample.ids) == set(smallest) | set(ids[gold >= 0])
    assert (sample.gold >= 0).sum() == 60


def test_epoxy_improves_coverage_and_accuracy_on_clusters():
    ids, votes, nn_sim, nn_vote, x, gold, y = _clustered_corpus()
    plain = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig(extension=False, end_model=False))
    epoxy = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig())
    a = label_batch(plain, votes, nn_sim, nn_vote, x)
    b = label_batch(epoxy, votes, nn_sim, nn_vote, x)
    assert b.covered.mean() > a.covered.mean()
    holdout = gold < 0
    assert (b.label == y)[holdout].mean() > (a.label == y)[holdout].mean() + 0.05


def test_label_batch_is_row_independent_and_serialisable():
    ids, votes, nn_sim, nn_vote, x, gold, _ = _clustered_corpus()
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig())
    whole = label_batch(fitted, votes, nn_sim, nn_vote, x)
    part = label_batch(fitted, votes[:17], nn_sim[:17], nn_vote[:17], x[:17])
    np.testing.assert_allclose(part.probs, whole.probs[:17], rtol=1e-5)
    again = FittedLabeler.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_allclose(label_batch(again, votes, nn_sim, nn_vote, x).probs, whole.probs, rtol=1e-4, atol=1e-6)
    assert whole.probs.dtype == np.float32 and whole.extended_votes.dtype == np.int8
    np.testing.assert_allclose(whole.probs.sum(1), 1, rtol=1e-5)
    assert (whole.label == whole.probs.argmax(1)).all()


def test_without_gold_or_embeddings_uses_documented_defaults():
    ids, votes, nn_sim, nn_vote, x, _, y = _clustered_corpus()
    gold = np.full(len(ids), -1)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, None, gold, LabelerConfig())
    assert fitted.end_model is None
    assert np.isfinite(fitted.thresholds).all()
    out = label_batch(fitted, votes, nn_sim, nn_vote, None)
    assert (out.label == y)[out.covered].mean() > 0.75


def test_config_errors_and_fallbacks():
    with pytest.raises(ValueError, match="label_model='snorkle'"):
        LabelerConfig(label_model="snorkle")
    ids, votes, nn_sim, nn_vote, x, gold, _ = _clustered_corpus()
    two = fit_labeler(ids, votes[:, :2], nn_sim[:, :2], nn_vote[:, :2], None, gold, LabelerConfig())
    assert two.label_model.kind == "majority_vote"
    with pytest.raises(ValueError, match="0 rows"):
        fit_labeler(ids[:0], votes[:0], nn_sim[:0], nn_vote[:0], None, gold[:0], LabelerConfig())


def _imbalanced_corpus(n=600, seed=1):
    """A 20 %-positive binary task: clusters in embedding space, six overlapping LFs that vote
    both ways (70 % coverage, 80 % accurate), no gold rows."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    centres = rng.normal(size=(2, 16)) * 1.2
    x = (centres[y] + rng.normal(size=(n, 16))).astype(np.float32)
    right = rng.random((n, 6)) < 0.8
    votes = np.where(rng.random((n, 6)) < 0.7, np.where(right, y[:, None], 1 - y[:, None]), -1).astype(np.int8)
    idx, sims = exact_knn(x, 10)
    nn_sim, nn_vote = nearest_voters(sims, votes[idx])
    return np.array([f"d{i}" for i in range(n)]), votes, nn_sim, nn_vote, x, np.full(n, -1), y


def test_without_gold_the_offsets_match_the_label_models_class_balance():
    ids, votes, nn_sim, nn_vote, x, gold, y = _imbalanced_corpus()
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig())
    assert fitted.label_model.kind == "triplet" and fitted.end_model.offsets is not None
    out = label_batch(fitted, votes, nn_sim, nn_vote, x)
    predicted = np.bincount(out.label, minlength=2) / len(ids)
    assert abs(predicted[1] - fitted.label_model.class_balance[1]) < 0.02
    off = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig(class_offsets=False))
    assert off.end_model.offsets is None
    mv = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, LabelerConfig(label_model="majority_vote"))
    assert mv.end_model.offsets is None  # a uniform prior is not an estimate to match


def test_the_gold_free_extension_level_is_threshold_quantile_and_gold_keeps_its_own_default():
    ids, votes, nn_sim, nn_vote, x, gold, _ = _clustered_corpus()
    none = np.full(len(ids), -1)
    sample = select_fit_sample(ids, votes, nn_sim, nn_vote, x, none, 400)
    np.testing.assert_array_equal(
        choose_thresholds(sample, LabelerConfig()), quantile_thresholds(votes, nn_sim, 0.75)
    )
    np.testing.assert_array_equal(
        choose_thresholds(sample, LabelerConfig(threshold_quantile=0.9)), quantile_thresholds(votes, nn_sim, 0.9)
    )
    with_gold = select_fit_sample(ids, votes, nn_sim, nn_vote, x, gold, 400)
    a = choose_thresholds(with_gold, LabelerConfig())
    b = choose_thresholds(with_gold, LabelerConfig(threshold_quantile=0.9))
    np.testing.assert_array_equal(a, b)  # with gold the level is chosen against GOLD_DEFAULT_QUANTILE


def test_without_gold_the_extension_is_off_when_neighbours_do_not_share_the_class():
    ids, votes, _, _, x, _, _ = _clustered_corpus()
    none = np.full(len(ids), -1)
    clustered = select_fit_sample(ids, votes, *_nearest(x, votes), x, none, 400)
    assert extension_agrees(clustered, quantile_thresholds(clustered.votes, clustered.nn_sim, 0.75), LabelerConfig())
    assert np.isfinite(choose_thresholds(clustered, LabelerConfig())).all()
    noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)  # embeddings blind to y
    blind = select_fit_sample(ids, votes, *_nearest(noise, votes), noise, none, 400)
    kappa, error, compared = extension_kappa(blind, quantile_thresholds(blind.votes, blind.nn_sim, 0.75), LabelerConfig())
    assert compared >= 30 and kappa <= 2 * error
    assert np.isinf(choose_thresholds(blind, LabelerConfig())).all()
    # forced quantile thresholds and fits with gold rows are not checked
    assert np.isfinite(choose_thresholds(blind, LabelerConfig(thresholds="quantile"))).any()


def _nearest(x, votes):
    """``(nn_sim, nn_vote)`` of ``votes`` over the exact 10 nearest neighbours in ``x``."""
    idx, sims = exact_knn(x, 10)
    return nearest_voters(sims, votes[idx])
