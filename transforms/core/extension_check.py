"""The gold-free check of the extension: do the extended votes agree with the other LFs?

Without gold rows nothing verifies that a document's neighbours share its class. Where the
embeddings do not carry the task (the LFs see what the embedding misses), the neighbours are
close to random and the extension spreads each LF's vote onto rows of every class, while the
label model takes an extended vote to be as accurate as the LF's own. The check measures it
on the fit sample: every vote the extension would add (LF ``j`` abstains on row ``r``, the
nearest voter is within ``j``'s threshold) is compared with the label model of the row's own
votes — which never include ``j``'s, so the comparison is with the *other* LFs. Cohen's kappa
(agreement beyond what the two vote distributions give by chance) must be positive by two
standard errors, else the extension is off; with fewer than :data:`MIN_EXTENDED_VOTES`
comparable votes there is no evidence either way and it stays on.

>>> agreement_kappa(np.array([0, 1, 0, 1]), np.array([0, 1, 0, 1]), 2)
(1.0, 0.0)
>>> round(agreement_kappa(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]), 2)[0], 6)
0.0
"""

from __future__ import annotations

import numpy as np

from transforms.core.label_model_selection import sample_exceptions, select_label_model
from transforms.core.labeler_config import FitSample, LabelerConfig
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN

MIN_EXTENDED_VOTES = 30
KAPPA_STANDARD_ERRORS = 2.0


def agreement_kappa(a: np.ndarray, b: np.ndarray, cardinality: int) -> tuple[float, float]:
    """Cohen's kappa of two label vectors and its standard error (large-sample).

    Args:
        a, b: ``int [n]`` labels in ``0..cardinality-1``, ``n >= 1``.
        cardinality: Number of classes.

    Returns:
        ``(kappa, standard error)``; ``(1.0, 0.0)`` when chance agreement is already 1.
    """
    observed = float(np.mean(a == b))
    chance = float(np.dot(np.bincount(a, minlength=cardinality), np.bincount(b, minlength=cardinality)))
    chance /= a.size * b.size
    if chance >= 1.0:
        return 1.0, 0.0
    error = np.sqrt(observed * (1.0 - observed) / a.size) / (1.0 - chance)
    return (observed - chance) / (1.0 - chance), float(error)


def extension_kappa(
    sample: FitSample, thresholds: np.ndarray, config: LabelerConfig
) -> tuple[float, float, int]:
    """Kappa of the votes the extension would add against the other LFs' label model.

    Returns:
        ``(kappa, standard error, number of votes compared)``; ``(nan, nan, n)`` when
        ``n < MIN_EXTENDED_VOTES``.
    """
    votes, k = sample.votes, config.cardinality
    stats = LabelStatistics.empty(votes.shape[1], k).add(votes)
    model = select_label_model(
        stats, votes[:0], np.zeros(0, np.int64), config, sample_exceptions(sample, config)
    ).model
    proba = model.predict_proba(votes)
    decided = (votes != ABSTAIN).any(axis=1) & (np.isclose(proba, proba.max(axis=1, keepdims=True)).sum(axis=1) == 1)
    added = (
        (votes == ABSTAIN) & (sample.nn_vote != ABSTAIN) & (sample.nn_sim >= thresholds[None, :])
        & decided[:, None]
    )  # fmt: skip
    rows, lfs = np.nonzero(added)
    if rows.size < MIN_EXTENDED_VOTES:
        return float("nan"), float("nan"), int(rows.size)
    kappa, error = agreement_kappa(sample.nn_vote[rows, lfs].astype(np.int64), proba[rows].argmax(axis=1), k)
    return kappa, error, int(rows.size)


def extension_agrees(sample: FitSample, thresholds: np.ndarray, config: LabelerConfig) -> bool:
    """False when the extended votes do not agree with the other LFs beyond chance (module doc)."""
    kappa, error, _ = extension_kappa(sample, thresholds, config)
    return bool(np.isnan(kappa) or kappa > KAPPA_STANDARD_ERRORS * error)
