"""Exception LFs (transforms/core/lf_exceptions.py): found without gold, honoured by every path
(the batch fit, the label model's serialised form, the incremental labeler of iterate, the option)."""

import dataclasses

import numpy as np

from transforms.core.incremental_labeler import IncrementalLabeler
from transforms.core.label_models import LabelModel, majority_vote_model
from transforms.core.labeler import LabelerConfig, fit_labeler, label_batch
from transforms.core.lf_exceptions import apply_exceptions, exception_pairs
from transforms.core.statistics import LabelStatistics


def _rule_task(n: int = 900, seed: int = 0):
    """Three classes; a broad rule for class 1 whose narrow exception (class 2) is right.

    LF 0 votes 1 on ~45 % of the rows; LF 1 votes 2 on ~13 %, always inside LF 0 and right on
    ~95 %; LF 2 votes 0. Where LF 1 fires, majority vote ties and breaks the tie by class id,
    i.e. to the broad rule's class 1.
    """
    rng = np.random.default_rng(seed)
    y = rng.choice(3, n, p=[0.4, 0.4, 0.2])
    votes = np.full((n, 3), -1, np.int8)
    narrow = (y == 2) & (rng.random(n) < 0.6)
    narrow |= (y == 1) & (rng.random(n) < 0.02)
    broad = narrow | ((y == 1) & (rng.random(n) < 0.8))
    votes[broad, 0] = 1
    votes[narrow, 1] = 2
    votes[(y == 0) & (rng.random(n) < 0.7), 2] = 0
    return votes, y, narrow


def test_pairs_need_containment_different_classes_and_one_class_each():
    votes, _, _ = _rule_task()
    assert exception_pairs(votes, 3).tolist() == [[1, 0]]
    same_class = votes.copy()
    same_class[same_class[:, 1] == 2, 1] = 1
    assert exception_pairs(same_class, 3).shape == (0, 2)
    outside = votes.copy()
    outside[: votes.shape[0] // 3, 1] = np.where(votes[: votes.shape[0] // 3, 0] == -1, 2, -1)
    assert exception_pairs(outside, 3).shape == (0, 2)
    two_classes = votes.copy()
    two_classes[np.flatnonzero(votes[:, 1] == 2)[:3], 1] = 0
    assert exception_pairs(two_classes, 3).shape == (0, 2)


def test_the_label_model_silences_the_broad_lf_where_the_exception_fires():
    votes, y, narrow = _rule_task()
    pairs = exception_pairs(votes, 3)
    plain = majority_vote_model(3, 3)
    model = dataclasses.replace(plain, exceptions=pairs)
    assert np.all(plain.predict_proba(votes[narrow])[:, [1, 2]] == 0.5)  # a tie on every one
    assert np.all(model.predict_proba(votes[narrow]).argmax(axis=1) == 2)
    untouched = ~narrow
    assert np.array_equal(model.predict_proba(votes[untouched]), plain.predict_proba(votes[untouched]))
    again = LabelModel.from_dict(model.to_dict())
    assert np.array_equal(again.exceptions, pairs)
    assert np.array_equal(again.predict_proba(votes), model.predict_proba(votes))
    assert np.array_equal(apply_exceptions(votes, pairs)[narrow, 0], np.full(narrow.sum(), -1))


def test_gold_free_fit_gains_on_the_exception_rows_and_iterate_labels_the_same():
    votes, y, narrow = _rule_task()
    n, m = votes.shape
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(n, 8)).astype(np.float32)
    nn_sim, nn_vote = np.zeros((n, m), np.float32), np.full((n, m), -1, np.int8)
    ids, gold = np.array([f"{i:04d}" for i in range(n)]), np.full(n, -1)
    accuracy = {}
    for exceptions in (True, False):
        config = LabelerConfig(cardinality=3, lf_exceptions=exceptions, end_model=False)
        fitted = fit_labeler(ids, votes, nn_sim, nn_vote, embeddings, gold, config)
        labels = label_batch(fitted, votes, nn_sim, nn_vote, embeddings)
        accuracy[exceptions] = float(np.mean(labels.label[narrow] == y[narrow]))
        extended = np.asfortranarray(labels.extended_votes)
        fast = IncrementalLabeler(
            config=config, thresholds=fitted.thresholds.copy(), extended=extended,
            stats=LabelStatistics.empty(m, 3).add(extended), end_model=None, end_probs=None,
        )  # fmt: skip
        assert np.array_equal(fast.labels(fitted.label_model).label, labels.label)
    assert accuracy[True] >= 0.9 > accuracy[False] + 0.3


def test_the_option_reaches_the_pipelines_fit(corpus_files, tiny_model, tmp_path):
    from tests.test_metric_option import _plan

    assert _plan(corpus_files, tiny_model, tmp_path).labeler_config().lf_exceptions is True
    plan = _plan(corpus_files, tiny_model, tmp_path, "--lf_exceptions", "false")
    assert plan.labeler_config().lf_exceptions is False


def test_the_summary_names_the_pairs():
    from pipelines.summary import lf_exception_names

    votes, _, _ = _rule_task()
    n = votes.shape[0]
    ids, embeddings = np.array([f"{i:04d}" for i in range(n)]), np.zeros((n, 4), np.float32)
    nn_sim, nn_vote = np.zeros(votes.shape, np.float32), np.full(votes.shape, -1, np.int8)
    names = ("broad", "narrow", "other")
    config = LabelerConfig(cardinality=3, end_model=False)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, embeddings, np.full(n, -1), config, names)
    assert lf_exception_names(fitted) == [{"exception": "narrow", "broad": "broad"}]
    off = fit_labeler(
        ids, votes, nn_sim, nn_vote, embeddings, np.full(n, -1), dataclasses.replace(config, lf_exceptions=False), names
    )
    assert lf_exception_names(off) == []
