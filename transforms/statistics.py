"""One generic Beam ``CombineFn`` around the numpy accumulators of the core.

The core's accumulators (:class:`transforms.core.statistics.LabelStatistics`) add whole batches
with vectorised numpy. Beam hands a ``CombineFn`` one element at a time, so this wrapper buffers
rows and adds them in batches; ``merge``/``extract`` flush the buffer first. The accumulator is a
plain object that pickles (Beam moves accumulators between workers).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import apache_beam as beam
import numpy as np


class _Buffered:
    """An accumulator plus rows not yet added to it."""

    def __init__(self, accumulator: Any):
        self.accumulator = accumulator
        self.pending: list[np.ndarray] = []

    def flush(self) -> Any:
        if self.pending:
            self.accumulator.add(np.stack(self.pending))
            self.pending = []
        return self.accumulator


class BatchedArrayCombineFn(beam.CombineFn):
    """Combines ``[m]`` rows into an accumulator with ``add(batch)``/``merge(other)``.

    Args:
        make_empty: Returns a fresh, empty accumulator.
        batch_size: Rows buffered before one vectorised ``add``.
    """

    def __init__(self, make_empty: Callable[[], Any], batch_size: int = 4096):
        self._make_empty = make_empty
        self._batch_size = batch_size

    def create_accumulator(self) -> _Buffered:
        return _Buffered(self._make_empty())

    def add_input(self, buffered: _Buffered, row: np.ndarray) -> _Buffered:
        buffered.pending.append(np.asarray(row))
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
        return buffered.flush()
