"""Exception LFs: a narrow rule that fires inside a broader one and votes another class wins.

People write LFs the way they write rules: a broad one (``"X of * Y"`` → Member-Collection)
and narrower ones for the cases it gets wrong (``"X of the Y"`` → Component-Whole). The narrow
LF's votes then fall (almost) entirely where the broad LF also votes, and the two disagree on
every such row. A label model that assumes the LFs independent given the class reads each of
those rows as a tie; majority vote breaks it by class id, i.e. by chance. The specificity
principle of rule systems resolves it: where the exception fires, the broad rule is silent.

Pair ``(a, b)`` is an exception when, in the LFs' own votes of the fit sample,

* ``a`` and ``b`` each vote one class only (unipolar) and the classes differ,
* ``a`` votes on fewer rows than ``b``, and
* at least :data:`CONTAINMENT` of ``a``'s votes fall on rows where ``b`` votes.

No gold row is read, so the rule is the same with and without gold. On the five dev sets
(``benchmarks/README.md``, round 11) it finds 3 pairs in SemEval (all of its 13 % tied rows come
from them), 19 in TREC and none in the others.

>>> votes = np.array([[1, 0, -1], [1, 0, -1], [-1, 0, -1], [-1, 0, 1], [-1, -1, 1]], np.int8)
>>> pairs = exception_pairs(votes, cardinality=2)
>>> pairs.tolist()  # LF 0 (class 1) fires only inside LF 1 (class 0)
[[0, 1]]
>>> apply_exceptions(votes, pairs)[:, 1].tolist()  # LF 1 is silent where LF 0 fires
[-1, -1, 0, 0, -1]
"""

from __future__ import annotations

import numpy as np

from transforms.core.votes import ABSTAIN

CONTAINMENT = 0.95
NO_EXCEPTIONS = np.zeros((0, 2), np.int64)


def exception_pairs(votes: np.ndarray, cardinality: int) -> np.ndarray:
    """``int64 [p, 2]`` pairs ``(exception, broad LF)`` in the LFs' own votes (module doc).

    Args:
        votes: ``int [n, m]`` the LFs' own (not extended) votes: an extended vote lies where
            a neighbour's does, so extended supports nest where the rules do not.
        cardinality: ``k``.
    """
    votes = np.asarray(votes)
    voted = (votes != ABSTAIN).astype(np.float32)
    counts = np.stack([(votes == c).sum(axis=0) for c in range(cardinality)], axis=1)  # [m, k]
    coverage = counts.sum(axis=1)
    unipolar = (counts > 0).sum(axis=1) == 1
    voted_class = counts.argmax(axis=1)
    shared = voted.T @ voted  # [m, m] rows where both vote (exact: integers below 2^24)
    is_pair = (
        unipolar[:, None] & unipolar[None, :]
        & (voted_class[:, None] != voted_class[None, :])
        & (coverage[:, None] < coverage[None, :])
        & (shared >= CONTAINMENT * coverage[:, None])
    )  # fmt: skip
    return np.argwhere(is_pair).astype(np.int64) if is_pair.any() else NO_EXCEPTIONS


def apply_exceptions(votes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The votes with each pair's broad LF abstaining where its exception votes another class.

    Every mask is taken from the votes as given, so chains (``a`` inside ``b`` inside ``c``)
    silence ``b`` where ``a`` fires and ``c`` where ``b`` fires. Returns ``votes`` itself when
    there is no pair.
    """
    if len(pairs) == 0:
        return votes
    rows, broad = silenced_votes(votes, pairs)
    out = np.array(votes, copy=True)
    out[rows, broad] = ABSTAIN
    return out


def silenced_votes(votes: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, broad LFs)``: the votes :func:`apply_exceptions` silences (``int64`` each)."""
    votes = np.asarray(votes)
    narrow, broad = votes[:, pairs[:, 0]], votes[:, pairs[:, 1]]
    rows, which = np.nonzero((narrow != ABSTAIN) & (broad != ABSTAIN) & (narrow != broad))
    return rows, pairs[which, 1]
