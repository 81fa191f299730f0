"""The fit sample's combiner core against the one-shot choice of the in-memory fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from transforms.core.fit_sample_accumulator import FitSampleAccumulator
from transforms.core.labeler import select_fit_sample
from transforms.core.labeler_config import FitSample


def _rows(rng: np.random.Generator, n: int, gold_share: float) -> FitSample:
    ids = np.array([f"doc-{i:05d}" for i in rng.permutation(n)])
    return FitSample(
        ids=ids,
        votes=rng.integers(-1, 3, (n, 4)).astype(np.int8),
        nn_sim=rng.random((n, 4), dtype=np.float32),
        nn_vote=rng.integers(-1, 3, (n, 4)).astype(np.int8),
        embeddings=rng.normal(size=(n, 8)).astype(np.float32),
        gold=np.where(rng.random(n) < gold_share, rng.integers(0, 3, n), -1),
    )


def _take(sample: FitSample, rows: np.ndarray) -> FitSample:
    return FitSample(**{f.name: getattr(sample, f.name)[rows] for f in dataclasses.fields(FitSample)})


@pytest.mark.parametrize("seed", range(5))
def test_any_split_into_batches_and_merges_gives_the_in_memory_sample(seed):
    rng = np.random.default_rng(seed)
    rows = _rows(rng, n=int(rng.integers(50, 400)), gold_share=0.1)
    sample_size = int(rng.integers(1, 120))
    in_id_order = _take(rows, np.argsort(rows.ids))
    expected = select_fit_sample(*dataclasses.astuple(in_id_order), sample_size=sample_size)

    cuts = np.sort(rng.choice(np.arange(1, rows.ids.size), size=5, replace=False))
    parts = []
    for start, stop in zip([0, *cuts], [*cuts, rows.ids.size]):
        accumulator = FitSampleAccumulator.empty(sample_size)
        middle = (start + stop) // 2  # two adds per part, then merges across parts
        accumulator.add(_take(rows, np.arange(start, middle))).add(_take(rows, np.arange(middle, stop)))
        parts.append(accumulator)
    merged = FitSampleAccumulator.empty(sample_size)
    for part in rng.permutation(len(parts)):
        merged.merge(parts[part])
    got = merged.finish()

    for field in dataclasses.fields(FitSample):
        np.testing.assert_array_equal(getattr(got, field.name), getattr(expected, field.name))
    assert (got.gold >= 0).sum() == (rows.gold >= 0).sum()  # every gold row is kept
    assert merged.rows.ids.size <= sample_size + (rows.gold >= 0).sum()  # bounded


def test_an_empty_fit_says_every_row_was_dead_lettered():
    with pytest.raises(ValueError, match="no document reached the fit"):
        FitSampleAccumulator.empty(10).merge(FitSampleAccumulator.empty(10)).finish()
