"""Precomputed vectors (``--embedding_field``): validation, the dimension rule, unit norm, hash.

A row's vector is a list of numbers (``list<float>`` in Parquet, a JSON array in JSON Lines). The
corpus has one dimension: :func:`dominant_dimension` picks the most common length among the
valid vectors of the rows preflight reads (ties: the length seen first). A row whose vector is
absent, not a list, holds a non-number, a NaN or infinity (the readers turn those into ``null``),
has another length, or is all zeros goes to the dead letter with the cause from
:func:`parse_vector`. Good vectors are L2-normalised, because the kNN graph ranks neighbours by
cosine similarity computed as a dot product of unit vectors.

>>> vector, cause, _ = parse_vector([3, 4], dim=2)
>>> vector.tolist(), cause
([0.6000000238418579, 0.800000011920929], '')
>>> parse_vector([1, "x"], dim=2)[1], parse_vector([1.0, None], dim=2)[1]
('non_numeric_vector', 'non_finite_vector')
"""

from __future__ import annotations

import collections
import hashlib
import numbers
from typing import Any, Iterable, Sequence

import numpy as np

CAUSE_MISSING = "missing_vector"
CAUSE_NOT_A_LIST = "not_a_vector"
CAUSE_NON_NUMERIC = "non_numeric_vector"
CAUSE_NON_FINITE = "non_finite_vector"
CAUSE_WRONG_DIMENSION = "wrong_vector_dimension"
CAUSE_ZERO = "zero_vector"


def _is_number(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_))


def vector_length(value: Any) -> int | None:
    """The length of ``value`` when it is a non-empty list of numbers, else ``None``.

    >>> vector_length([0.5, 1, 2]), vector_length([1, True]), vector_length("1,2")
    (3, None, None)
    """
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) == 0:
        return None
    return len(value) if all(_is_number(item) for item in value) else None


def dominant_dimension(lengths: Iterable[int | None]) -> int | None:
    """The corpus dimension: the most common valid length, ties broken by first appearance.

    >>> dominant_dimension([None, 3, 4, 4, 3, 5]), dominant_dimension([None])
    (3, None)
    """
    counts = collections.Counter(length for length in lengths if length)
    if not counts:
        return None
    return max(counts, key=counts.get)  # Counter keeps first-seen order; max keeps the first tie


def parse_vector(value: Any, dim: int) -> tuple[np.ndarray | None, str, str]:
    """Validates one row's vector and returns it L2-normalised.

    Args:
        value: The field's value (``None`` when the row lacks the field).
        dim: The corpus dimension.

    Returns:
        ``(float32 [dim] unit vector, "", "")``, or ``(None, cause, problem)`` where ``problem``
        names the bad value and the rule.
    """
    if value is None:
        return None, CAUSE_MISSING, "the row has no vector (the field is absent or null)"
    if not isinstance(value, (list, tuple, np.ndarray)):
        return None, CAUSE_NOT_A_LIST, f"the vector is a {type(value).__name__} ({str(value)[:60]!r}), not a list of numbers"
    for position, item in enumerate(value):
        if item is None or (_is_number(item) and not np.isfinite(float(item))):
            return None, CAUSE_NON_FINITE, f"element {position} is null, NaN or infinite (readers map NaN/inf to null)"
        if not _is_number(item):
            return None, CAUSE_NON_NUMERIC, f"element {position} is {item!r}, a {type(item).__name__}, not a number"
    if len(value) != dim:
        return None, CAUSE_WRONG_DIMENSION, f"the vector has {len(value)} elements, not the corpus dimension {dim}"
    vector = np.asarray(value, dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        return None, CAUSE_ZERO, f"the vector has norm {norm}, so it has no direction to compare"
    return (vector / norm).astype(np.float32), "", ""


def unit_rows(vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Rows L2-normalised to float32 (an all-zero row stays zero).

    >>> unit_rows([[3.0, 4.0], [0.0, 0.0]]).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    array = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return (array / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def vector_hash(vector: np.ndarray) -> str:
    """The cache key of a vector: 32 hex characters of SHA-256 of its float32 little-endian bytes.

    >>> vector_hash(np.ones(2, np.float32)) == vector_hash(np.ones(2, np.float64))
    True
    """
    data = np.ascontiguousarray(vector, dtype="<f4").tobytes()
    return hashlib.sha256(data).hexdigest()[:32]
