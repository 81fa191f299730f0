"""Model selection on the gold (tuning) rows: folds, out-of-fold predictions, a sign test.

Every choice the labeler makes from gold rows (label-model kind, extension level, end-model
weight, class offsets) compares a candidate with a default on the *same* gold rows and adopts the candidate
only when it wins clearly: :func:`beats` is a one-standard-error paired test of the per-row
losses (:func:`row_losses`; Brier by default), so noise on a few hundred gold rows falls back to the default (shrinkage toward the
defaults instead of picking the luckiest candidate).

>>> fold_assignment(7, 3, seed=0).tolist()
[2, 1, 0, 0, 2, 0, 1]
>>> base = np.array([0.0] * 50 + [1.0] * 50)
>>> beats(np.array([0.0] * 60 + [1.0] * 40), base), beats(base, base)
(True, False)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from transforms.core.label_models import (
    LabelModel,
    gold_vote_counts,
    naive_bayes_weights,
    shrink_with_counts,
)


def fold_assignment(num_rows: int, folds: int, seed: int) -> np.ndarray:
    """``int [num_rows]`` fold of each gold row: a seeded permutation modulo ``folds``."""
    return np.random.default_rng(seed).permutation(num_rows) % folds


def beats(candidate_loss: np.ndarray, default_loss: np.ndarray) -> bool:
    """True when the candidate's mean per-row loss is lower by more than one standard error.

    A paired test on the same gold rows. With 0/1 losses (errors) it is the sign test
    ``wins - losses > sqrt(wins + losses)`` up to a small-sample correction.
    """
    diff = np.asarray(default_loss, np.float64) - np.asarray(candidate_loss, np.float64)
    if diff.size < 2:
        return False
    spread = diff.std(ddof=1) / np.sqrt(diff.size)
    return bool(diff.mean() > 0 and diff.mean() > spread)


def row_losses(proba: np.ndarray, gold: np.ndarray, metric: str) -> np.ndarray:
    """Per-row loss of posteriors ``[g, k]``: ``"error"`` (0/1, argmax ≠ gold),
    ``"balanced_error"`` (the error weighted by ``1 / (classes present · class frequency)``, so
    its mean is the balanced error rate and a rare class counts as much as a common one) or
    ``"brier"`` (``Σ_y (p_y - 1[y = gold])²``, a proper score that also rewards calibration).

    >>> row_losses(np.array([[0.8, 0.2], [0.5, 0.5]]), np.array([0, 1]), "brier").round(2).tolist()
    [0.08, 0.5]
    """
    proba = np.asarray(proba, np.float64)
    if metric in ("error", "balanced_error"):
        wrong = (proba.argmax(axis=1) != gold).astype(np.float64)
        if metric == "error":
            return wrong
        counts = np.bincount(gold, minlength=proba.shape[1]).astype(np.float64)
        present = counts > 0
        return wrong * gold.size / (present.sum() * counts[gold])
    if metric != "brier":
        raise ValueError(
            f"selection metric {metric!r} is unknown: use 'error', 'balanced_error' or 'brier'"
        )
    onehot = np.eye(proba.shape[1])[gold]
    return ((proba - onehot) ** 2).sum(axis=1)


def out_of_fold_proba(
    model: LabelModel,
    gold_votes: np.ndarray,
    gold: np.ndarray,
    fold_of: np.ndarray,
    strength: float,
) -> np.ndarray:
    """Posteriors ``[g, k]`` of the gold rows, each from the model refined by the other folds.

    The unsupervised part (``model.prior``) comes from statistics without labels, so only the
    gold shrinkage is redone per fold. A model without a prior (majority vote) does not use
    gold rows and is returned as is.
    """
    if model.prior is None:
        return model.predict_proba(gold_votes)
    k = model.cardinality
    out = np.empty((gold.shape[0], k), np.float32)
    for fold in np.unique(fold_of):
        held = fold_of == fold
        counts = gold_vote_counts(gold_votes[~held], gold[~held], k)
        prec = shrink_with_counts(model.prior, counts, strength)
        refit = dataclasses.replace(model, weights=naive_bayes_weights(prec, model.class_balance))
        out[held] = refit.predict_proba(gold_votes[held])
    return out


# Candidate log offsets of one class (coordinate search), nearest to 0 first.
OFFSET_GRID = (0.0, -0.5, 0.5, -1.0, 1.0, -1.5, 1.5, -2.0, 2.0)


def _shifted_proba(log_proba: np.ndarray, offsets: np.ndarray, metric: str = "brier") -> np.ndarray:
    """``softmax(log_proba + offsets)``; for the argmax-based losses (``"error"``,
    ``"balanced_error"``) the shifted log-probabilities themselves (same argmax, no ``exp``)."""
    z = log_proba + offsets
    if metric in ("error", "balanced_error"):
        return z
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_offsets(log_proba: np.ndarray, gold: np.ndarray, metric: str, sweeps: int = 2) -> np.ndarray:
    """Log class offsets ``float64 [k]`` minimising the summed :func:`row_losses` of
    ``softmax(log_proba + offsets)``: coordinate search over :data:`OFFSET_GRID`, ``sweeps``
    passes over the classes, starting from 0; a move is taken only if it lowers the loss (ties
    keep the offset nearest 0).

    >>> log_p = np.log(np.array([[0.7, 0.3], [0.6, 0.4], [0.8, 0.2], [0.9, 0.1]]))
    >>> fit_offsets(log_p, np.array([1, 1, 0, 0]), "error").tolist()
    [-1.0, 0.0]
    """
    log_proba = np.asarray(log_proba, np.float64)
    offsets = np.zeros(log_proba.shape[1])
    best = float(row_losses(_shifted_proba(log_proba, offsets, metric), gold, metric).sum())
    for _ in range(sweeps):
        for c in range(log_proba.shape[1]):
            current = offsets[c]
            for value in OFFSET_GRID:
                offsets[c] = value
                loss = float(row_losses(_shifted_proba(log_proba, offsets, metric), gold, metric).sum())
                if loss < best - 1e-12:
                    best, current = loss, value
            offsets[c] = current
    return offsets


def cross_validated_offsets(
    log_proba: np.ndarray, gold: np.ndarray, fold_of: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_offsets` on all gold rows, and the honest loss of doing so.

    Returns:
        ``(offsets [k], loss [g])``: offsets fitted on every row, and each row's loss under the
        offsets fitted on the *other* folds (nested cross-validation: the search itself is
        what is scored, so a lucky offset on few rows does not pass :func:`beats`).
    """
    log_proba = np.asarray(log_proba, np.float64)
    loss = np.empty(gold.shape[0])
    for fold in np.unique(fold_of):
        held = fold_of == fold
        offsets = fit_offsets(log_proba[~held], gold[~held], metric)
        proba = _shifted_proba(log_proba[held], offsets)
        # Each fold's rows are scored with the weights of the full gold set.
        loss[held] = row_losses_within(proba, gold, held, metric)
    return fit_offsets(log_proba, gold, metric), loss


def row_losses_within(proba: np.ndarray, gold: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """:func:`row_losses` of ``proba`` (the posteriors of ``gold[rows]``) with the class weights
    of the whole ``gold`` array, so that per-fold losses add up to the full-set loss."""
    full = np.zeros((gold.shape[0], proba.shape[1]))
    full[:, 0] = 1.0
    full[rows] = proba
    return row_losses(full, gold, metric)[rows]
