"""The triplet label model against FlyingSquid's figures on a fixed label matrix.

``tests/data/flyingsquid_triplet.json`` was computed once in a side environment with FlyingSquid
(``LabelModel(6).fit(L, class_balance=[0.4, 0.6], solve_method="triplet_median")``) on a seeded
400 × 6 binary matrix; FlyingSquid is not a dependency of the project.
"""

import json
import os

import numpy as np

from transforms.core.label_models import fit_triplet
from transforms.core.lf_estimates import one_vs_rest_moments, triplet_signal
from transforms.core.statistics import LabelStatistics

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "flyingsquid_triplet.json")


def _fixture():
    with open(FIXTURE, encoding="utf-8") as handle:
        data = json.load(handle)
    votes = np.asarray(data["votes"], np.int8)
    return data, votes, LabelStatistics.empty(votes.shape[1], 2).add(votes)


def test_triplet_signal_equals_flyingsquid_expectations():
    data, _, stats = _fixture()
    second, _ = one_vs_rest_moments(stats)
    np.testing.assert_allclose(triplet_signal(second[1], "median"), data["expectation_values"], atol=1e-9)


def test_triplet_posteriors_are_close_to_flyingsquid_and_as_accurate():
    data, votes, stats = _fixture()
    model = fit_triplet(stats, aggregation="median", class_balance=np.asarray(data["class_balance"]))
    ours = model.predict_proba(votes)[:, 1]
    theirs = np.asarray(data["p_y1"])
    gold = np.asarray(data["gold"])
    # Same accuracies; the posteriors differ where FlyingSquid reads abstentions as evidence
    # (it lets P(abstain | Y) depend on Y; we take abstaining as independent of Y).
    assert np.corrcoef(ours, theirs)[0, 1] > 0.95
    assert ((ours > 0.5) == (theirs > 0.5)).mean() > 0.9
    assert ((ours > 0.5) == gold).mean() >= ((theirs > 0.5) == gold).mean() - 0.02
