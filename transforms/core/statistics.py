"""One-pass sufficient statistics of a label matrix: additive, mergeable, O(k·m²) memory.

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

    Attributes:
        num_lfs: ``m``.
        cardinality: ``k``.
        n: Rows added.
        covered: Rows with at least one vote.
        co_votes: ``int64 [m, m]``: rows where LFs ``i`` and ``j`` both vote (diagonal: LF
            ``i``'s coverage count).
        class_agree: ``int64 [k, m, m]``: rows where ``i`` and ``j`` both vote class ``c``
            (diagonal: LF ``i``'s count of votes for ``c``).
        class_with: ``int64 [k, m, m]``: rows where ``i`` votes ``c`` and ``j`` votes anything.
        overlaps: ``int64 [m]``: rows where LF ``i`` and at least one other LF vote.
        conflicts: ``int64 [m]``: rows where another LF votes a class different from LF ``i``'s.
    """

    num_lfs: int
    cardinality: int
    n: int
    covered: int
    co_votes: np.ndarray
    class_agree: np.ndarray
    class_with: np.ndarray
    overlaps: np.ndarray
    conflicts: np.ndarray

    _ARRAYS = ("co_votes", "class_agree", "class_with", "overlaps", "conflicts")

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
            co_votes=np.zeros((m, m), np.int64),
            class_agree=np.zeros((k, m, m), np.int64),
            class_with=np.zeros((k, m, m), np.int64),
            overlaps=np.zeros(m, np.int64),
            conflicts=np.zeros(m, np.int64),
        )

    @property
    def class_counts(self) -> np.ndarray:
        """``int64 [m, k]``: votes of each LF for each class."""
        return np.stack([np.diagonal(a) for a in self.class_agree], axis=1)

    @property
    def coverage_counts(self) -> np.ndarray:
        """``int64 [m]``: rows each LF votes on."""
        return np.diagonal(self.co_votes).copy()

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
        voted = (votes != ABSTAIN).astype(np.float64)
        per_row = voted.sum(axis=1)
        self.n += int(votes.shape[0])
        self.covered += int((per_row > 0).sum())
        self.co_votes += np.rint(voted.T @ voted).astype(np.int64)
        same_class = np.zeros_like(voted)
        for c in range(self.cardinality):
            onehot = (votes == c).astype(np.float64)
            self.class_agree[c] += np.rint(onehot.T @ onehot).astype(np.int64)
            self.class_with[c] += np.rint(onehot.T @ voted).astype(np.int64)
            same_class += onehot * onehot.sum(axis=1, keepdims=True)
        self.overlaps += ((voted > 0) & (per_row[:, None] > 1)).sum(axis=0)
        self.conflicts += ((voted > 0) & (per_row[:, None] > same_class)).sum(axis=0)
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
