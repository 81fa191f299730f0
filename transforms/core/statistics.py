"""One-pass sufficient statistics of a label matrix: additive, mergeable, O(k²·m²) memory.

Everything the label models (:mod:`transforms.core.label_models`) and the LF analysis
(:mod:`transforms.core.analysis`) need is a sum over rows, so a Beam ``CombineFn`` only calls
:meth:`LabelStatistics.empty`, :meth:`~LabelStatistics.add`, :meth:`~LabelStatistics.merge` and
:meth:`~LabelStatistics.to_dict`. Memory does not depend on the number of rows.

A 5×3 label matrix (k = 2):

>>> L = np.array([[1, 1, -1], [0, 1, 0], [-1, -1, -1], [0, 0, 0], [1, -1, 1]], np.int8)
>>> stats = LabelStatistics.empty(num_lfs=3, cardinality=2).add(L)
>>> stats.n, stats.covered
(5, 4)
>>> stats.class_counts.tolist()
[[2, 2], [1, 2], [2, 1]]
>>> stats.overlaps.tolist(), stats.conflicts.tolist()
([4, 3, 3], [1, 1, 1])
>>> stats.joint[0, 1, 1].tolist()  # rows where LF 0 votes 1 and LF 1 votes 0 / 1
[0, 1]
>>> LabelStatistics.from_dict(stats.to_dict()) == stats
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np

from transforms.core.votes import ABSTAIN


@dataclasses.dataclass(eq=False)
class LabelStatistics:
    """Additive counts over the rows of a label matrix.

    The one co-vote table is ``joint``; ``co_votes``, ``class_agree`` and ``class_with`` are its
    marginals (properties).

    Attributes:
        num_lfs: ``m``.
        cardinality: ``k``.
        n: Rows added.
        covered: Rows with at least one vote.
        joint: ``int64 [m, k, m, k]``: rows where LF ``i`` votes ``c`` and LF ``j`` votes ``c'``
            (``joint[i, c, i, c]`` is LF ``i``'s count of votes for ``c``).
        overlaps: ``int64 [m]``: rows where LF ``i`` and at least one other LF vote.
        conflicts: ``int64 [m]``: rows where another LF votes a class different from LF ``i``'s.
    """

    num_lfs: int
    cardinality: int
    n: int
    covered: int
    joint: np.ndarray
    overlaps: np.ndarray
    conflicts: np.ndarray

    _ARRAYS = ("joint", "overlaps", "conflicts")

    @classmethod
    def empty(cls, num_lfs: int, cardinality: int) -> "LabelStatistics":
        """Returns the zero accumulator.

        Raises:
            ValueError: if ``num_lfs < 1`` or ``cardinality < 2``.
        """
        if int(num_lfs) < 1:
            raise ValueError(f"num_lfs={num_lfs} is invalid: need at least one LF")
        if int(cardinality) < 2:
            raise ValueError(f"cardinality={cardinality} is invalid: need at least 2 classes")
        m, k = int(num_lfs), int(cardinality)
        return cls(
            num_lfs=m,
            cardinality=k,
            n=0,
            covered=0,
            joint=np.zeros((m, k, m, k), np.int64),
            overlaps=np.zeros(m, np.int64),
            conflicts=np.zeros(m, np.int64),
        )

    @property
    def co_votes(self) -> np.ndarray:
        """``int64 [m, m]``: rows where LFs ``i`` and ``j`` both vote (diagonal: coverage)."""
        return self.joint.sum(axis=(1, 3))

    @property
    def class_agree(self) -> np.ndarray:
        """``int64 [k, m, m]``: rows where ``i`` and ``j`` both vote class ``c``."""
        return np.einsum("icjc->cij", self.joint)

    @property
    def class_with(self) -> np.ndarray:
        """``int64 [k, m, m]``: rows where ``i`` votes ``c`` and ``j`` votes anything."""
        return self.joint.sum(axis=3).transpose(1, 0, 2)

    @property
    def class_counts(self) -> np.ndarray:
        """``int64 [m, k]``: votes of each LF for each class."""
        return np.einsum("icic->ic", self.joint).copy()

    @property
    def coverage_counts(self) -> np.ndarray:
        """``int64 [m]``: rows each LF votes on."""
        return self.class_counts.sum(axis=1)

    def add(self, votes: np.ndarray) -> "LabelStatistics":
        """Adds a batch of rows in place.

        Args:
            votes: ``int [b, m]`` votes in ``-1..k-1``.

        Returns:
            ``self``.

        Raises:
            ValueError: if the shape or a value does not fit this accumulator.
        """
        votes = np.asarray(votes)
        if votes.ndim != 2 or votes.shape[1] != self.num_lfs:
            raise ValueError(
                f"votes has shape {votes.shape}; expected [rows, {self.num_lfs}] (one column "
                "per LF)"
            )
        if votes.shape[0] == 0:
            return self
        low, high = int(votes.min()), int(votes.max())
        if low < ABSTAIN or high >= self.cardinality:
            bad = low if low < ABSTAIN else high
            raise ValueError(
                f"vote {bad} is out of range: votes must be ints in -1..{self.cardinality - 1}"
            )
        voted = votes != ABSTAIN
        per_row = voted.sum(axis=1)
        self.n += int(votes.shape[0])
        self.covered += int((per_row > 0).sum())
        self.joint += joint_counts(votes, self.cardinality).reshape(self.joint.shape)
        same_class = np.zeros(votes.shape, np.int64)
        for c in range(self.cardinality):
            onehot = votes == c
            same_class += onehot * onehot.sum(axis=1, keepdims=True)
        self.overlaps += (voted & (per_row[:, None] > 1)).sum(axis=0)
        self.conflicts += (voted & (per_row[:, None] > same_class)).sum(axis=0)
        return self

    def merge(self, other: "LabelStatistics") -> "LabelStatistics":
        """Adds another accumulator in place.

        Raises:
            ValueError: if the two accumulators have different ``num_lfs`` or ``cardinality``.
        """
        if (other.num_lfs, other.cardinality) != (self.num_lfs, self.cardinality):
            raise ValueError(
                f"cannot merge statistics of (num_lfs, cardinality)="
                f"{(other.num_lfs, other.cardinality)} into {(self.num_lfs, self.cardinality)}: "
                "both must come from the same LF set and class count"
            )
        self.n += other.n
        self.covered += other.covered
        for name in self._ARRAYS:
            getattr(self, name).__iadd__(getattr(other, name))
        return self

    @classmethod
    def merge_all(
        cls, accumulators: Iterable["LabelStatistics"], num_lfs: int, cardinality: int
    ) -> "LabelStatistics":
        """Merges any iterable (e.g. a generator, as Beam passes) into a new accumulator."""
        total = cls.empty(num_lfs, cardinality)
        for accumulator in accumulators:
            total.merge(accumulator)
        return total

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict (ints and nested lists)."""
        out: dict[str, Any] = {
            "num_lfs": self.num_lfs,
            "cardinality": self.cardinality,
            "n": self.n,
            "covered": self.covered,
        }
        for name in self._ARRAYS:
            out[name] = getattr(self, name).tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelStatistics":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: if a field is missing or has the wrong shape.
        """
        stats = cls.empty(d["num_lfs"], d["cardinality"])
        stats.n, stats.covered = int(d["n"]), int(d["covered"])
        for name in cls._ARRAYS:
            if name not in d:
                raise ValueError(f"statistics dict lacks the field {name!r}; was it written by to_dict()?")
            value = np.asarray(d[name], dtype=np.int64)
            expected = getattr(stats, name).shape
            if value.shape != expected:
                raise ValueError(f"statistics field {name!r} has shape {value.shape}; expected {expected}")
            setattr(stats, name, value)
        return stats

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelStatistics):
            return NotImplemented
        return (
            (self.num_lfs, self.cardinality, self.n, self.covered)
            == (other.num_lfs, other.cardinality, other.n, other.covered)
            and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in self._ARRAYS)
        )


# Vote pairs per chunk in joint_counts (bounds the int64 temporaries to ~100 MB).
_PAIRS_PER_CHUNK = 1 << 22


def joint_counts(votes: np.ndarray, cardinality: int) -> np.ndarray:
    """Counts ``[m·k, m·k]`` of (LF ``i`` votes ``c``, LF ``j`` votes ``c'``) over the rows.

    Sparse in the votes: the cost is the number of vote pairs within rows (``Σ votes_per_row²``),
    not ``n·(m·k)²``, so wide, sparse LF sets (hundreds of LFs, few votes per row) stay cheap.

    >>> joint_counts(np.array([[0, 1], [-1, 1]], np.int8), 2).tolist()
    [[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 2]]
    """
    votes = np.asarray(votes)
    n, m = votes.shape
    size = m * cardinality
    out = np.zeros(size * size, np.int64)
    rows, cols = np.nonzero(votes != ABSTAIN)
    if rows.size == 0:
        return out.reshape(size, size)
    code = cols.astype(np.int64) * cardinality + votes[rows, cols].astype(np.int64)
    per_row = np.bincount(rows, minlength=n)
    start = np.concatenate([[0], np.cumsum(per_row)[:-1]])
    pairs_of = per_row[rows]  # each vote pairs with every vote of its row
    bounds = np.concatenate([[0], np.cumsum(pairs_of)])
    cut = 0
    while cut < rows.size:
        stop = int(np.searchsorted(bounds, bounds[cut] + _PAIRS_PER_CHUNK, side="right")) - 1
        stop = max(stop, cut + 1)
        first = np.repeat(np.arange(cut, stop), pairs_of[cut:stop])
        offset = np.arange(first.size) - (bounds[first] - bounds[cut])
        second = start[rows[first]] + offset
        out += np.bincount(code[first] * size + code[second], minlength=size * size)
        cut = stop
    return out.reshape(size, size)
