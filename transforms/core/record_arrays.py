"""The array fields of a pipeline record, carried as raw bytes.

Beam's default coder pickles every ``ndarray`` it meets, element by element, in every shuffle
and every materialised collection (≈ 100 pickles per document measured at 5k documents,
docs/scale.md); ``bytes`` it copies as they are. A record therefore holds each array field as
the bytes of a fixed dtype (:data:`RECORD_ARRAYS`), packed once where the record is built
(:func:`pack_arrays`) and read back without a copy (:func:`array_field`) or, for a batch of
records, with one join (:func:`stacked_field`).

>>> record = {"id": "a", **pack_arrays(votes=[1, -1], nn_sim=[0.5, -np.inf])}
>>> array_field(record, "votes").tolist(), array_field(record, "nn_sim").tolist()
([1, -1], [0.5, -inf])
>>> stacked_field([record, record], "votes").tolist()
[[1, -1], [1, -1]]
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

# Each array field of a record and its dtype.
RECORD_ARRAYS = {
    "votes": np.dtype(np.int8),
    "nn_sim": np.dtype(np.float32),
    "nn_vote": np.dtype(np.int8),
    "nn_source": np.dtype(np.uint64),
    "embedding": np.dtype(np.float32),
}


def pack_arrays(**arrays: Any) -> dict[str, bytes]:
    """``{name: bytes}`` of array fields named in :data:`RECORD_ARRAYS`, each cast to its dtype.

    Raises:
        KeyError: for a name that is not a record array field.
    """
    unknown = sorted(set(arrays) - set(RECORD_ARRAYS))
    if unknown:
        raise KeyError(f"{unknown} are not record array fields: use one of {sorted(RECORD_ARRAYS)}")
    return {name: np.asarray(value, RECORD_ARRAYS[name]).tobytes() for name, value in arrays.items()}


def array_field(record: Mapping[str, Any], name: str) -> np.ndarray:
    """The read-only 1-D array of field ``name`` of one record."""
    return np.frombuffer(record[name], RECORD_ARRAYS[name])


def stacked_field(records: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    """``[len(records), width]``: field ``name`` of records of equal width, in one copy."""
    flat = np.frombuffer(b"".join(record[name] for record in records), RECORD_ARRAYS[name])
    return flat.reshape(len(records), -1)
