"""Classification metrics in plain numpy.

>>> y_true = np.array([0, 1, 1, 0, 2])
>>> y_pred = np.array([0, 1, 0, 0, 1])
>>> accuracy(y_true, y_pred)
0.6
>>> confusion_matrix(y_true, y_pred, 3).tolist()
[[2, 0, 0], [1, 1, 0], [0, 1, 0]]
>>> round(macro_f1(y_true, y_pred, 3), 4)
0.4333
"""

from __future__ import annotations

import numpy as np


def _check(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 1-D and equal in length")
    if y_true.size == 0:
        raise ValueError("no rows to score: y_true is empty")
    return y_true, y_pred


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of rows with ``y_pred == y_true``."""
    y_true, y_pred = _check(y_true, y_pred)
    return float((y_true == y_pred).mean())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, cardinality: int) -> np.ndarray:
    """``int64 [k, k]`` counts; row = true class, column = predicted class."""
    y_true, y_pred = _check(y_true, y_pred)
    out = np.zeros((cardinality, cardinality), np.int64)
    np.add.at(out, (y_true, y_pred), 1)
    return out


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, cardinality: int) -> float:
    """Unweighted mean of per-class F1 (a class with no true and no predicted row scores 0).

    For binary tasks WRENCH reports the F1 of class 1; use :func:`binary_f1` for that.
    """
    cm = confusion_matrix(y_true, y_pred, cardinality).astype(np.float64)
    tp = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1.mean())


def binary_f1(y_true: np.ndarray, y_pred: np.ndarray, positive: int = 1) -> float:
    """F1 of the ``positive`` class.

    >>> binary_f1(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    0.5
    """
    y_true, y_pred = _check(y_true, y_pred)
    tp = float(((y_pred == positive) & (y_true == positive)).sum())
    denom = float((y_pred == positive).sum() + (y_true == positive).sum())
    return 2 * tp / denom if denom else 0.0
