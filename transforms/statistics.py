"""One generic Beam ``CombineFn`` around the numpy accumulators of the core.

The core's accumulators (:class:`transforms.core.statistics.LabelStatistics`) add whole batches
with vectorised numpy. Beam hands a ``CombineFn`` one element at a time, so this wrapper buffers
rows and adds them in batches; ``merge``/``extract`` flush the buffer first. The accumulator is a
plain object that pickles (Beam moves accumulators between workers). Accumulators whose batch is
not one stacked array (e.g. the report's example reservoir) pass their own ``add_rows``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import apache_beam as beam
import numpy as np


def add_stacked(accumulator: Any, rows: list[Any]) -> None:
    """The default ``add_rows``: one vectorised ``add`` of the stacked ``[m]`` rows."""
    accumulator.add(np.stack([np.asarray(row) for row in rows]))


def _identity(accumulator: Any) -> Any:
    return accumulator


class _Buffered:
    """An accumulator plus rows not yet added to it."""

    def __init__(self, accumulator: Any, add_rows: Callable[[Any, list[Any]], None]):
        self.accumulator = accumulator
        self.pending: list[Any] = []
        self._add_rows = add_rows

    def flush(self) -> Any:
        if self.pending:
            self._add_rows(self.accumulator, self.pending)
            self.pending = []
        return self.accumulator


class BatchedArrayCombineFn(beam.CombineFn):
    """Combines rows into an accumulator with a batched add and ``merge(other)``.

    Args:
        make_empty: Returns a fresh, empty accumulator.
        batch_size: Rows buffered before one vectorised add.
        add_rows: Adds a list of buffered rows to the accumulator (default: ``add`` of the
            stacked rows).
        finish: Turns the final accumulator into the output (default: the accumulator).
    """

    def __init__(
        self,
        make_empty: Callable[[], Any],
        batch_size: int = 4096,
        add_rows: Callable[[Any, list[Any]], None] = add_stacked,
        finish: Callable[[Any], Any] = _identity,
    ):
        self._make_empty = make_empty
        self._batch_size = batch_size
        self._add_rows = add_rows
        self._finish = finish

    def create_accumulator(self) -> _Buffered:
        return _Buffered(self._make_empty(), self._add_rows)

    def add_input(self, buffered: _Buffered, row: Any) -> _Buffered:
        buffered.pending.append(row)
        if len(buffered.pending) >= self._batch_size:
            buffered.flush()
        return buffered

    def merge_accumulators(self, accumulators: Iterable[_Buffered]) -> _Buffered:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        merged.flush()
        for other in accumulators:
            merged.accumulator.merge(other.flush())
        return merged

    def compact(self, buffered: _Buffered) -> _Buffered:
        buffered.flush()
        return buffered

    def extract_output(self, buffered: _Buffered) -> Any:
        return self._finish(buffered.flush())
