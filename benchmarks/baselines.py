"""Baselines that the labeler must beat, on the arrays of a :class:`~benchmarks.wrench.WrenchTask`.

Each takes the task and the tuning labels ``gold [n]`` (``-1`` = unknown) and returns
posteriors or predictions for every row; none sees a test label.
"""

from __future__ import annotations

import numpy as np

from benchmarks.wrench import WrenchTask
from transforms.core.end_model import fit_softmax_regression
from transforms.core.label_models import gold_class_balance, majority_vote_model
from transforms.core.votes import ABSTAIN

# The transfer and Sup-valid baselines: softmax regression on the embeddings (as in round 1).
LOGISTIC_L2 = 1e-3
LOGISTIC_SCALE = 10.0


def sup_valid_proba(task: WrenchTask, gold: np.ndarray) -> np.ndarray:
    """"Sup-valid": logistic (softmax) regression on the embeddings of the tuning rows alone."""
    rows = gold >= 0
    model = fit_softmax_regression(
        task.embeddings[rows], np.eye(task.cardinality)[gold[rows]], l2=LOGISTIC_L2,
        scale=LOGISTIC_SCALE,
    )
    return model.predict_proba(task.embeddings)


def sup_valid_labels(task: WrenchTask, gold: np.ndarray) -> np.ndarray:
    """Argmax of :func:`sup_valid_proba`."""
    return sup_valid_proba(task, gold).argmax(axis=1)


def majority_vote_proba(task: WrenchTask) -> np.ndarray:
    """Majority vote (ties and rows without a vote: the lowest class)."""
    return majority_vote_model(task.votes.shape[1], task.cardinality).predict_proba(task.votes)


def majority_vote_prior_proba(task: WrenchTask, gold: np.ndarray) -> np.ndarray:
    """Majority vote with the class prior of the tuning rows: the most frequent gold class wins
    ties and rows without any vote (scores = vote counts + a tie-breaking fraction of the log
    prior)."""
    k = task.cardinality
    counts = np.zeros((task.votes.shape[0], k))
    for c in range(k):
        counts[:, c] = (task.votes == c).sum(axis=1)
    prior = gold_class_balance(gold[gold >= 0], k)
    scores = counts + 1e-3 * np.log(prior) / max(1.0, float(np.abs(np.log(prior)).max()))
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    return scores / scores.sum(axis=1, keepdims=True)


def transfer_proba(task: WrenchTask, labels: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Transfer learning: logistic regression on the embeddings of the covered pool rows,
    trained on ``labels`` (another method's hard labels)."""
    rows = task.train & covered
    model = fit_softmax_regression(
        task.embeddings[rows], np.eye(task.cardinality)[labels[rows]], l2=LOGISTIC_L2,
        scale=LOGISTIC_SCALE,
    )
    return model.predict_proba(task.embeddings)


def covered_rows(votes: np.ndarray) -> np.ndarray:
    """``bool [n]`` rows with at least one vote."""
    return (votes != ABSTAIN).any(axis=1)
