"""The job's element coder: NumPy arrays as raw bytes, everything else as Beam encodes it."""

from __future__ import annotations

import typing

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.coders.coders import StrUtf8Coder
from apache_beam.coders.typecoders import registry
from apache_beam.testing.util import assert_that

import transforms.coders as coders_module
from transforms.coders import ArrayFastPrimitivesCoder, encode_array_or_pickle, use_array_coder
from transforms.dead_letter import DeadLetter

ARRAYS = [
    np.array([1, -1, 0, 3], np.int8),
    np.linspace(0, 1, 20, dtype=np.float32),
    np.arange(12, dtype=np.uint64) * np.uint64(2**40),
    np.array(3.5),  # 0-d
    np.zeros((0, 384), np.float32),
    np.arange(24, dtype=np.float64).reshape(2, 3, 4),
    np.arange(10, dtype=np.int32)[::3],  # not contiguous
    np.arange(5, dtype=">i4"),  # big-endian
    np.array([True, False, True]),
    np.array([1 + 2j, -3j], np.complex64),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_arrays_round_trip_as_raw_bytes_and_come_back_writable(array):
    coder = ArrayFastPrimitivesCoder()
    again = coder.decode(coder.encode(array))
    assert type(again) is np.ndarray
    assert again.dtype == array.dtype and again.shape == array.shape
    np.testing.assert_array_equal(again, array)
    assert again.flags.writeable
    assert encode_array_or_pickle(array)[:1] == b"A"


def test_other_objects_are_pickled_and_containers_keep_beams_encoding():
    coder = ArrayFastPrimitivesCoder()
    objects = np.array(["a", None], dtype=object)
    assert encode_array_or_pickle(objects)[:1] == b"P"
    dead = DeadLetter(stage="read", cause="bad_row", message="m", source="s", doc_id="d")
    element = ("doc-1", {"votes": ARRAYS[0], "objects": objects, "dead": dead, "n": 3, "t": "x"})
    doc_id, fields = coder.decode(coder.encode(element))
    assert doc_id == "doc-1" and fields["n"] == 3 and fields["t"] == "x" and fields["dead"] == dead
    np.testing.assert_array_equal(fields["votes"], ARRAYS[0])
    assert fields["objects"].tolist() == ["a", None]


def test_encoding_is_smaller_than_beams_pickle_fallback():
    votes = np.array([1, -1, 0, 3, -1, -1, 2, 0, 1, -1, -1, 0], np.int8)
    ours = ArrayFastPrimitivesCoder().encode(("doc-1", votes))
    beams = beam.coders.FastPrimitivesCoder().encode(("doc-1", votes))
    assert len(ours) < len(beams) / 3


def test_the_job_uses_it_for_untyped_pcollections_once_installed():
    use_array_coder()
    use_array_coder()  # idempotent: one layer in the registry's fallback
    assert type(registry.get_coder(typing.Any)) is ArrayFastPrimitivesCoder
    assert list(registry._fallback_coder._coders).count(ArrayFastPrimitivesCoder) == 1
    keyed = registry.get_coder(beam.typehints.Tuple[str, typing.Any])
    assert [type(c) for c in keyed.coders()] == [StrUtf8Coder, ArrayFastPrimitivesCoder]


def test_arrays_cross_a_shuffle_on_the_fn_api_runner_through_this_coder(monkeypatch):
    use_array_coder()
    encoded, encode = [], coders_module.encode_array_or_pickle

    def counting_encode(value):
        encoded.append(type(value))
        return encode(value)

    monkeypatch.setattr(coders_module, "encode_array_or_pickle", counting_encode)
    rows = [(f"d{i % 3}", np.full(4, i, np.int8)) for i in range(9)]

    def check(grouped):
        got = {key: sorted(int(v[0]) for v in values) for key, values in grouped}
        assert got == {"d0": [0, 3, 6], "d1": [1, 4, 7], "d2": [2, 5, 8]}
        for _, values in grouped:
            for v in values:
                assert v.dtype == np.int8 and v.shape == (4,) and v.flags.writeable

    with beam.Pipeline("FnApiRunner") as pipeline:
        grouped = (
            pipeline
            | beam.Create(rows, reshuffle=False)
            | beam.Reshuffle()
            | beam.GroupByKey()
            | beam.MapTuple(lambda key, values: (key, list(values)))
        )
        assert_that(grouped, check)
    assert encoded.count(np.ndarray) >= len(rows)  # each array crossed the shuffle as raw bytes
