"""The job's element coder: Beam's ``FastPrimitivesCoder`` with NumPy arrays as raw bytes.

Beam encodes an element of an untyped PCollection with ``FastPrimitivesCoder``: strings, numbers,
bytes, tuples, lists and dicts natively, everything else through ``pickle``. The job's per-document
elements carry small NumPy arrays (votes ``int8 [m]``, nearest-voter similarities, neighbour
similarities), so a 20k-document run pickled 224k arrays, 11 per document, at about 6.5 µs per
encode + decode (docs/scale.md, "Sixth reduction").
:class:`ArrayFastPrimitivesCoder` is the same coder with one change: a NumPy array of a plain
dtype (bool, integer, float, complex) is written as its dtype, shape and raw bytes, and decodes to a
writable array equal to the original (dtype, shape and values). Anything else is pickled as before.

:func:`use_array_coder` installs it as the coder of every PCollection whose element type Beam does
not know (Beam's coder registry is process-wide, so this is done once, when the job is built).
The coder travels inside the pipeline as a pickled class of this module, which every worker has.

>>> import numpy as np
>>> coder = ArrayFastPrimitivesCoder()
>>> votes = np.array([1, -1, 0], np.int8)
>>> doc_id, again = coder.decode(coder.encode(("doc-1", votes)))
>>> doc_id, again.dtype, again.tolist(), again.flags.writeable
('doc-1', dtype('int8'), [1, -1, 0], True)
>>> len(coder.encode(votes)) < len(PickleCoder().encode(votes)) / 4
True
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import numpy as np
from apache_beam.coders import coder_impl
from apache_beam.coders.coders import Coder, FastPrimitivesCoder, PickleCoder
from apache_beam.coders.typecoders import registry

__all__ = ["ArrayFastPrimitivesCoder", "ArrayOrPickleCoder", "use_array_coder"]

_ARRAY, _PICKLE = b"A", b"P"
_RAW_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex: no object pointers


def encode_array_or_pickle(value: Any) -> bytes:
    """A plain-dtype ``np.ndarray`` as tag, dtype, shape and bytes; anything else pickled."""
    if type(value) is np.ndarray and value.dtype.kind in _RAW_KINDS:
        dtype = value.dtype.str.encode("ascii")  # e.g. b"<f4", b"|i1": byte order included
        header = struct.pack(f"<B{len(dtype)}sB{value.ndim}q", len(dtype), dtype, value.ndim, *value.shape)
        return _ARRAY + header + value.tobytes()  # C order, also for a non-contiguous view
    return _PICKLE + pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def decode_array_or_pickle(encoded: bytes) -> Any:
    """Inverse of :func:`encode_array_or_pickle` (arrays come back writable)."""
    if encoded[:1] == _PICKLE:
        return pickle.loads(encoded[1:])
    dtype_len = encoded[1]
    dtype = np.dtype(encoded[2 : 2 + dtype_len].decode("ascii"))
    ndim = encoded[2 + dtype_len]
    start = 3 + dtype_len
    shape = struct.unpack_from(f"<{ndim}q", encoded, start)
    data = np.frombuffer(encoded, dtype, offset=start + 8 * ndim)
    return data.reshape(shape).copy()


class ArrayOrPickleCoder(Coder):
    """:class:`PickleCoder` with NumPy arrays of plain dtypes written as raw bytes."""

    def _create_impl(self) -> coder_impl.CoderImpl:
        return coder_impl.CallbackCoderImpl(encode_array_or_pickle, decode_array_or_pickle)

    def is_deterministic(self) -> bool:
        return False  # as PickleCoder: pickles of equal objects may differ

    def to_type_hint(self) -> Any:
        return Any


class ArrayFastPrimitivesCoder(FastPrimitivesCoder):
    """``FastPrimitivesCoder`` whose fallback is :class:`ArrayOrPickleCoder`."""

    def __init__(self, fallback_coder: Coder | None = None) -> None:
        super().__init__(fallback_coder or ArrayOrPickleCoder())


def use_array_coder() -> None:
    """Makes :class:`ArrayFastPrimitivesCoder` the coder of PCollections of unknown element type
    in this process (idempotent; the types Beam knows keep their own coders)."""
    fallback = registry._fallback_coder  # Beam has no public getter; FirstOf of coder classes
    if getattr(fallback, "_coders", [None])[0] is not ArrayFastPrimitivesCoder:
        registry.register_fallback_coder(ArrayFastPrimitivesCoder)
