"""The fit sample as a bounded, mergeable numpy accumulator (the fit stage's combiner core).

:func:`~transforms.core.labeler.select_fit_sample` keeps every gold row plus the
``sample_size`` rows of smallest :func:`~transforms.core.labeler.sample_priority`. A row it
keeps from all rows, it also keeps from any subset holding that row, so partial choices merge:
:class:`FitSampleAccumulator` holds its candidate rows as one :class:`FitSample` and, after each
``add`` or ``merge``, drops the rows that can no longer be chosen. :meth:`FitSampleAccumulator.finish`
makes the final choice with :func:`select_fit_sample` itself, over the candidates sorted by id,
so the sample depends neither on arrival order nor on bundling.

>>> def rows(ids, gold):
...     n = len(ids)
...     return FitSample(np.array(ids), np.zeros((n, 1), np.int8), np.zeros((n, 1), np.float32),
...                      np.zeros((n, 1), np.int8), None, np.array(gold))
>>> ids, gold = [f"d{i}" for i in range(10)], [-1] * 9 + [1]
>>> whole = select_fit_sample(*dataclasses.astuple(rows(ids, gold)), sample_size=3)
>>> left = FitSampleAccumulator.empty(3).add(rows(ids[:6], gold[:6]))
>>> right = FitSampleAccumulator.empty(3).add(rows(ids[6:], gold[6:]))
>>> left.merge(right).finish().ids.tolist() == whole.ids.tolist()
True
"""

from __future__ import annotations

import dataclasses

import numpy as np

from transforms.core.labeler import sample_priority, select_fit_sample
from transforms.core.labeler_config import FitSample

__all__ = ["FitSampleAccumulator"]

_COLUMNS = tuple(field.name for field in dataclasses.fields(FitSample))


def _take(sample: FitSample, rows: np.ndarray) -> FitSample:
    """The ``rows`` of ``sample`` (every column)."""
    return FitSample(**{
        name: None if getattr(sample, name) is None else getattr(sample, name)[rows]
        for name in _COLUMNS
    })  # fmt: skip


def _concatenate(first: FitSample, second: FitSample) -> FitSample:
    """``first``'s rows, then ``second``'s (embeddings only if both have them)."""
    def joined(name: str) -> np.ndarray | None:
        left, right = getattr(first, name), getattr(second, name)
        return None if left is None or right is None else np.concatenate([left, right])

    return FitSample(**{name: joined(name) for name in _COLUMNS})


@dataclasses.dataclass
class FitSampleAccumulator:
    """The candidate rows of the fit sample, bounded by ``sample_size`` + the gold rows.

    Attributes:
        sample_size: The number of non-forced rows the sample keeps.
        rows: The candidates (``None`` before the first row).
        priority: ``uint64 [r]`` :func:`sample_priority` of each candidate.
    """

    sample_size: int
    rows: FitSample | None = None
    priority: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.uint64))

    @classmethod
    def empty(cls, sample_size: int) -> "FitSampleAccumulator":
        """An accumulator without rows."""
        return cls(sample_size)

    def add(self, batch: FitSample) -> "FitSampleAccumulator":
        """Adds a batch of rows (each row once over all adds and merges); returns ``self``."""
        priority = np.array([sample_priority(doc_id) for doc_id in batch.ids], dtype=np.uint64)
        return self._extend(batch, priority)

    def merge(self, other: "FitSampleAccumulator") -> "FitSampleAccumulator":
        """Adds ``other``'s candidates; returns ``self``."""
        if other.rows is None:
            return self
        return self._extend(other.rows, other.priority)

    def finish(self) -> FitSample:
        """The fit sample: :func:`select_fit_sample` over the candidates in id order.

        Raises:
            ValueError: No row was added (every input row was dead-lettered).
        """
        if self.rows is None or self.rows.ids.size == 0:
            raise ValueError("no document reached the fit: every input row was dead-lettered")
        c = _take(self.rows, np.argsort(self.rows.ids, kind="stable"))
        return select_fit_sample(c.ids, c.votes, c.nn_sim, c.nn_vote, c.embeddings, c.gold, self.sample_size)

    def _extend(self, batch: FitSample, priority: np.ndarray) -> "FitSampleAccumulator":
        if self.rows is not None:
            batch = _concatenate(self.rows, batch)
            priority = np.concatenate([self.priority, priority])
        keep = np.asarray(batch.gold) >= 0
        # The sample_size smallest priorities, ties by id (as select_fit_sample over id order).
        keep[np.lexsort((batch.ids, priority))[: self.sample_size]] = True
        rows = np.flatnonzero(keep)
        self.rows, self.priority = _take(batch, rows), priority[rows]
        return self
