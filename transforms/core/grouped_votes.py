"""The label matrix as vote-pattern codes of groups of LFs, for fast scoring in LF iteration.

:class:`GroupedVotes` keeps one code per group of LFs and row, so the label model's scores are
``m / g`` table lookups per row instead of ``m · k`` one-hot products, and an edit of one LF
updates its group's codes on the changed rows only; :func:`posterior_from_scores` and
:func:`row_argmax` turn the scores into labels as :func:`transforms.core.labeler.label_batch`
does (tested equal; the blend with the end model is the labeler's one
:func:`~transforms.core.end_model.blend`).
"""

from __future__ import annotations

import numpy as np

from transforms.core.label_models import LabelModel


class GroupedVotes:
    """A label matrix ``[n, m]`` kept as per-group vote-pattern codes, for fast scoring.

    The LFs are cut into groups of ``g`` (the most whose ``(k + 1)^g`` patterns fit a
    ``uint16``: 10 LFs for ``k = 2``); each row stores one code per group. A weight table then
    scores every pattern of a group at once (``(k + 1)^g · k`` additions), and a row's score is
    ``m / g`` table lookups instead of ``m`` one-hot products. An edit of one column updates
    its group's codes on the changed rows only.

    >>> grouped = GroupedVotes(np.array([[1, -1], [0, 1], [-1, -1]], np.int8), cardinality=2)
    >>> weights = np.zeros((2, 2, 2)); weights[:, 1, 1] = 1.0  # +1 to class 1 per vote for 1
    >>> grouped.scores(weights, np.zeros(2)).tolist()
    [[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
    """

    def __init__(self, votes: np.ndarray, cardinality: int):
        """Encodes ``int [n, m]`` votes in ``-1..cardinality-1``."""
        votes = np.asarray(votes)
        self.num_rows, self.num_lfs = (int(x) for x in votes.shape)
        self.cardinality = int(cardinality)
        states = self.cardinality + 1
        self.group_size = max(1, int(np.floor(np.log(65536) / np.log(states) + 1e-9)))
        self.codes = []
        for begin in range(0, self.num_lfs, self.group_size):
            code = np.zeros(self.num_rows, np.int64)
            for j in range(begin, min(begin + self.group_size, self.num_lfs)):
                code = code * states + (votes[:, j].astype(np.int64) + 1)
            self.codes.append(code.astype(np.uint16))

    def _place(self, j: int) -> tuple[int, int]:
        """``(group, multiplier)`` of LF ``j``'s digit in its group's code."""
        group, position = divmod(j, self.group_size)
        width = min(self.group_size, self.num_lfs - group * self.group_size)
        return group, (self.cardinality + 1) ** (width - 1 - position)

    def replace(self, j: int, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """LF ``j``'s votes at ``rows`` change from ``old`` to ``new``."""
        group, multiplier = self._place(j)
        delta = (np.asarray(new, np.int64) - np.asarray(old, np.int64)) * multiplier
        self.codes[group][rows] = (self.codes[group][rows].astype(np.int64) + delta).astype(np.uint16)

    def scores(self, weights: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
        """``float64 [n, k]``: ``log_prior[y] + Σ_j weights[j, λ_j, y]`` (abstains add 0).

        Args:
            weights: ``[m, k, k]`` the label model's table ``W[j, c, y]``.
            log_prior: ``[k]``.
        """
        k = self.cardinality
        padded = np.zeros((self.num_lfs, k + 1, k), np.float64)  # state 0 = abstain
        padded[:, 1:, :] = weights
        out = np.zeros((self.num_rows, k), np.float64)
        out += np.asarray(log_prior, np.float64)
        for group, code in enumerate(self.codes):
            begin = group * self.group_size
            table = padded[begin]
            for j in range(begin + 1, min(begin + self.group_size, self.num_lfs)):
                table = (table[:, None, :] + padded[j][None, :, :]).reshape(-1, k)
            out += np.take(table, code, axis=0)
        return out


def posterior_from_scores(model: LabelModel, scores: np.ndarray) -> np.ndarray:
    """``float32 [n, k]`` posteriors from :meth:`LabelModel.scores`-style log-scores, as
    :meth:`~transforms.core.label_models.LabelModel.predict_proba` turns them (uniform over
    the tied top classes for a hard model, softmax otherwise).

    Args:
        model: The label model the scores come from.
        scores: ``float64 [n, k]``; modified in place.
    """
    top = _row_reduce(np.maximum, scores)
    if model.hard:
        tied = np.isclose(scores, top[:, None])
        return (tied / _row_reduce(np.add, tied.astype(np.int64))[:, None]).astype(np.float32)
    scores -= top[:, None]
    np.exp(scores, out=scores)
    scores /= _row_reduce(np.add, scores)[:, None]
    return scores.astype(np.float32)


def row_argmax(values: np.ndarray) -> np.ndarray:
    """``values.argmax(axis=1)`` (ties go to the lowest column) as column operations.

    >>> row_argmax(np.array([[0.2, 0.8], [0.5, 0.5], [0.3, 0.1]])).tolist()
    [1, 0, 0]
    """
    best = values[:, 0].copy()
    out = np.zeros(values.shape[0], np.int64)
    for c in range(1, values.shape[1]):
        better = values[:, c] > best
        out[better] = c
        np.maximum(best, values[:, c], out=best)
    return out


def _row_reduce(ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
    """``ufunc.reduce(values, axis=1)`` as ``k - 1`` column operations (faster for small k)."""
    out = values[:, 0].copy()
    for c in range(1, values.shape[1]):
        ufunc(out, values[:, c], out=out)
    return out
