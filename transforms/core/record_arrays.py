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

Batches of other array fields (e.g. the graph edges of :mod:`transforms.core.voter_join`) pass
their own dtype table:

>>> batch = pack_arrays({"sim": np.dtype(np.float32)}, sim=[0.5, 0.25])
>>> concatenated_field([batch, batch], "sim", {"sim": np.dtype(np.float32)}).tolist()
[0.5, 0.25, 0.5, 0.25]
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


def pack_arrays(
    dtypes: Mapping[str, np.dtype] = RECORD_ARRAYS, /, **arrays: Any
) -> dict[str, bytes]:
    """``{name: bytes}`` of array fields named in ``dtypes``, each cast to its dtype.

    Raises:
        KeyError: for a name that is not in ``dtypes``.
    """
    unknown = sorted(set(arrays) - set(dtypes))
    if unknown:
        raise KeyError(f"{unknown} are not record array fields: use one of {sorted(dtypes)}")
    return {name: np.asarray(value, dtypes[name]).tobytes() for name, value in arrays.items()}


def array_field(
    record: Mapping[str, Any], name: str, dtypes: Mapping[str, np.dtype] = RECORD_ARRAYS
) -> np.ndarray:
    """The read-only 1-D array of field ``name`` of one record."""
    return np.frombuffer(record[name], dtypes[name])


def concatenated_field(
    records: Sequence[Mapping[str, Any]], name: str, dtypes: Mapping[str, np.dtype] = RECORD_ARRAYS
) -> np.ndarray:
    """The read-only 1-D concatenation of field ``name`` over ``records``, in one copy."""
    return np.frombuffer(b"".join(record[name] for record in records), dtypes[name])


def stacked_field(records: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    """``[len(records), width]``: field ``name`` of records of equal width, in one copy."""
    return concatenated_field(records, name).reshape(len(records), -1)
