"""Model selection on the gold (tuning) rows: folds, out-of-fold predictions, a paired test.

Every choice the labeler makes from gold rows (label-model kind, extension level, end-model
recipe and weight, class offsets) compares a candidate with a default on the *same* gold rows and
adopts the candidate only when it wins clearly: :func:`beats` is a one-standard-error paired test
of the per-row losses (:func:`row_losses`), so noise on a few hundred gold rows falls back to the
default (shrinkage toward the defaults instead of picking the luckiest candidate). A candidate
that :func:`collapses` (predicts one class for nearly every gold row while the gold rows show
another class) is never adopted.

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

# The per-row losses of :func:`row_losses`; each is the exact per-row decomposition of
# ``1 - metric`` on the rows scored (their mean is ``1 - metric``).
LOSSES = ("error", "balanced_error", "macro_f1", "f1")
# The gold rows show a class below this share: ``metric="auto"`` selects by macro-F1.
IMBALANCED_SHARE = 0.2
# A class with at least this gold share must be predicted on at least COLLAPSE_RATIO of its
# share of the rows, or the candidate has collapsed.
COLLAPSE_MIN_SHARE = 0.05
COLLAPSE_RATIO = 1 / 3


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


def resolve_loss(metric: str, gold: np.ndarray, cardinality: int) -> str:
    """The per-row loss the gold-row choices minimise for a task ``metric``.

    ``"accuracy"`` → ``"error"``, ``"balanced_accuracy"`` → ``"balanced_error"``, ``"macro_f1"``
    and ``"f1"`` → themselves; ``"auto"`` → ``"macro_f1"`` for a binary task whose gold rows show
    a class below :data:`IMBALANCED_SHARE` of the rows (plain error rewards silence when
    positives are rare), else ``"error"``. Multi-class tasks keep the error under ``"auto"``:
    small classes are the norm there (every class of TREC, SemEval and ChemProt below 40 % of
    the uniform share), and macro-F1 selection cost accuracy on them in the valid-split
    cross-validation (``benchmarks/README.md``); :func:`collapses` still protects their classes.

    >>> resolve_loss("auto", np.array([0] * 90 + [1] * 10), 2), resolve_loss("auto", np.arange(40) % 2, 2)
    ('macro_f1', 'error')
    """
    named = {"accuracy": "error", "balanced_accuracy": "balanced_error", "macro_f1": "macro_f1",
             "f1": "f1"}
    if metric in named:
        return named[metric]
    if metric != "auto":
        raise ValueError(f"metric {metric!r} is unknown: use 'auto' or one of {tuple(named)}")
    gold = np.asarray(gold, np.int64)
    if gold.size == 0:
        return "error"
    share = np.bincount(gold, minlength=cardinality) / gold.size
    return "macro_f1" if cardinality == 2 and share.min() < IMBALANCED_SHARE else "error"


def row_losses(
    proba: np.ndarray, gold: np.ndarray, metric: str, positive_class: int = 1
) -> np.ndarray:
    """Per-row loss of posteriors ``[g, k]`` (argmax predictions); the mean over the rows is
    exactly ``1 - metric`` of those predictions:

    - ``"error"``: 0/1, argmax ≠ gold.
    - ``"balanced_error"``: the error weighted by ``1 / (classes present · class frequency)``.
    - ``"f1"``: ``1 - F1`` of ``positive_class``: a row wrong on positive-vs-rest costs
      ``g / (positives + predicted positives)`` (``1 - F1 = (FN + FP) / (P + PP)``).
    - ``"macro_f1"``: ``1 -`` the mean F1 over the classes that occur in gold or predictions: a
      wrong row is a false negative of its gold class ``y`` and a false positive of its
      predicted class ``ŷ`` and costs ``g / c · (1 / (P_y + PP_y) + 1 / (P_ŷ + PP_ŷ))``.

    The F1 weights depend on the predictions, so the losses of two candidates are each exact for
    their own predictions.

    >>> p = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.9, 0.1]])
    >>> y = np.array([0, 1, 1, 0])
    >>> round(float(row_losses(p, y, "f1").mean()), 4), round(float(row_losses(p, y, "macro_f1").mean()), 4)
    (0.3333, 0.2667)
    """
    proba = np.asarray(proba, np.float64)
    gold = np.asarray(gold, np.int64)
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    if metric == "error":
        return (pred != gold).astype(np.float64)
    if metric == "balanced_error":
        counts = np.bincount(gold, minlength=k).astype(np.float64)
        present = counts > 0
        return (pred != gold) * gold.size / (present.sum() * counts[gold])
    if metric == "f1":
        wrong = (pred == positive_class) != (gold == positive_class)
        denom = float((pred == positive_class).sum() + (gold == positive_class).sum())
        return wrong * (gold.size / denom if denom else 0.0)
    if metric == "macro_f1":
        denom = np.bincount(gold, minlength=k) + np.bincount(pred, minlength=k)
        inverse = np.where(denom > 0, 1.0 / np.maximum(denom, 1), 0.0)
        wrong = pred != gold
        return wrong * gold.size / max((denom > 0).sum(), 1) * (inverse[gold] + inverse[pred])
    raise ValueError(f"selection loss {metric!r} is unknown: use one of {LOSSES}")


def collapses(proba: np.ndarray, gold: np.ndarray) -> bool:
    """True when the argmax of ``proba [g, k]`` almost never predicts a class that the gold rows
    show on at least :data:`COLLAPSE_MIN_SHARE` of the rows (predicted on less than
    :data:`COLLAPSE_RATIO` of its gold share): "one class for (nearly) every row".

    >>> gold = np.array([0] * 92 + [1] * 8)
    >>> collapses(np.tile([0.9, 0.1], (100, 1)), gold), collapses(np.eye(2)[gold], gold)
    (True, False)
    """
    gold = np.asarray(gold, np.int64)
    if gold.size == 0:
        return False
    k = np.asarray(proba).shape[1]
    gold_share = np.bincount(gold, minlength=k) / gold.size
    pred_share = np.bincount(np.asarray(proba).argmax(axis=1), minlength=k) / gold.size
    return bool(np.any((gold_share >= COLLAPSE_MIN_SHARE) & (pred_share < COLLAPSE_RATIO * gold_share)))


def choose(
    losses: dict, default: object, collapsed: frozenset | set = frozenset()
) -> object:
    """The key of ``losses`` (candidate → per-row losses on the same gold rows) to adopt.

    The candidate with the lowest summed loss among those not ``collapsed`` replaces
    ``default`` only if it :func:`beats` it — or if the default itself collapsed. Ties go to
    the earlier key.

    >>> choose({"a": np.zeros(50), "b": np.r_[np.zeros(40), np.ones(10)]}, "b")
    'a'
    >>> choose({"a": np.zeros(50), "b": np.ones(50)}, "b", collapsed={"a"})
    'b'
    """
    allowed = [key for key in losses if key not in collapsed] or [default]
    best = min(allowed, key=lambda key: float(np.sum(losses[key])))
    if default in collapsed and best != default:
        return best
    return best if beats(losses[best], losses[default]) else default


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


def fit_offsets(
    log_proba: np.ndarray, gold: np.ndarray, metric: str, positive_class: int = 1, sweeps: int = 2
) -> np.ndarray:
    """Log class offsets ``float64 [k]`` minimising the summed :func:`row_losses` of the argmax
    of ``log_proba + offsets``: coordinate search over :data:`OFFSET_GRID`, ``sweeps`` passes
    over the classes, starting from 0; a move is taken only if it lowers the loss (ties keep the
    offset nearest 0) and does not make the predictions :func:`collapse <collapses>`.

    >>> log_p = np.log(np.array([[0.7, 0.3], [0.6, 0.4], [0.8, 0.2], [0.9, 0.1]]))
    >>> fit_offsets(log_p, np.array([1, 1, 0, 0]), "error").tolist()
    [-1.0, 0.0]
    """
    log_proba = np.asarray(log_proba, np.float64)
    offsets = np.zeros(log_proba.shape[1])

    def loss_of(shift: np.ndarray) -> float:
        shifted = log_proba + shift
        if collapses(shifted, gold):
            return np.inf
        return float(row_losses(shifted, gold, metric, positive_class).sum())

    best = loss_of(offsets)
    for _ in range(sweeps):
        for c in range(log_proba.shape[1]):
            current = offsets[c]
            for value in OFFSET_GRID:
                offsets[c] = value
                loss = loss_of(offsets)
                if loss < best - 1e-12:
                    best, current = loss, value
            offsets[c] = current
    return offsets


def prior_matching_offsets(
    log_proba: np.ndarray, shares: np.ndarray, iterations: int = 200, tolerance: float = 0.005
) -> np.ndarray:
    """Log class offsets ``float64 [k]`` under which the argmax of ``log_proba + offsets``
    gives each class about its share ``shares [k]`` of the rows: the gold-free counterpart of
    :func:`fit_offsets` (a label-shift prior correction toward the label model's class balance).

    Damped multiplicative updates of the predicted shares, stopped once their total variation
    to ``shares`` is below ``tolerance``; the offsets with the smallest total variation seen are
    returned (deterministic; centred to mean 0).

    >>> log_p = np.log(np.array([[0.7, 0.3], [0.6, 0.4], [0.8, 0.2], [0.9, 0.1]]))
    >>> offsets = prior_matching_offsets(log_p, np.array([0.5, 0.5]))
    >>> np.bincount((log_p + offsets).argmax(1), minlength=2).tolist()
    [2, 2]
    """
    log_proba = np.asarray(log_proba, np.float64)
    k = log_proba.shape[1]
    target = np.maximum(np.asarray(shares, np.float64), 1e-3)
    target /= target.sum()
    offsets, best, best_gap = np.zeros(k), np.zeros(k), np.inf
    for _ in range(iterations):
        predicted = np.bincount((log_proba + offsets).argmax(axis=1), minlength=k) / len(log_proba)
        gap = 0.5 * float(np.abs(predicted - target).sum())
        if gap < best_gap:
            best, best_gap = offsets.copy(), gap
        if gap < tolerance:
            break
        offsets = offsets + 0.2 * (np.log(target) - np.log(np.maximum(predicted, 1e-4)))
        offsets -= offsets.mean()
    return best


def cross_validated_offsets(
    log_proba: np.ndarray, gold: np.ndarray, fold_of: np.ndarray, metric: str,
    positive_class: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`fit_offsets` on all gold rows, and the honest loss of doing so.

    Returns:
        ``(offsets [k], loss [g], shifted [g, k])``: offsets fitted on every row; each row's
        loss under the offsets fitted on the *other* folds (nested cross-validation: the search
        itself is what is scored, so a lucky offset on few rows does not pass :func:`beats`);
        and those held-out shifted log-probabilities.
    """
    log_proba = np.asarray(log_proba, np.float64)
    shifted = np.empty_like(log_proba)
    for fold in np.unique(fold_of):
        held = fold_of == fold
        offsets = fit_offsets(log_proba[~held], gold[~held], metric, positive_class)
        shifted[held] = log_proba[held] + offsets
    loss = row_losses(shifted, gold, metric, positive_class)
    return fit_offsets(log_proba, gold, metric, positive_class), loss, shifted
