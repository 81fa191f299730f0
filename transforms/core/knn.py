"""Exact k-nearest neighbours by cosine similarity, in blocks (the in-memory reference for ScaNN).

>>> x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]], np.float32)
>>> idx, sims = exact_knn(x, k=2)
>>> idx.tolist()
[[1, 3], [0, 3], [3, 1], [2, 1], [2, 3]]
"""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Returns ``float32`` rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def exact_knn(
    embeddings: np.ndarray, k: int, *, exclude_self: bool = True, block_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Finds each row's ``k`` most cosine-similar rows by a blocked matrix product.

    Args:
        embeddings: ``float [n, d]``; normalised here.
        k: Neighbours per row; at most ``n - 1`` with ``exclude_self`` (else ``n``).
        exclude_self: Leave each row out of its own neighbours.
        block_size: Query rows per matrix product (bounds memory to ``block_size · n``).

    Returns:
        ``(indices int64 [n, k], sims float32 [n, k])``, sorted by descending similarity, ties by
        ascending index.

    Raises:
        ValueError: if ``k`` is out of range.
    """
    x = l2_normalise(embeddings)
    n = x.shape[0]
    limit = n - 1 if exclude_self else n
    if not 1 <= k <= limit:
        raise ValueError(f"k={k} is out of range: need 1 <= k <= {limit} for {n} rows")
    indices = np.empty((n, k), np.int64)
    sims = np.empty((n, k), np.float32)
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        block = x[start:stop] @ x.T  # [b, n]
        if exclude_self:
            block[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        # Candidates: the top k (partition), then an exact sort by (-sim, index).
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(block, part, axis=1).min(axis=1, keepdims=True)
        for r in range(stop - start):
            cand = np.flatnonzero(block[r] >= kth[r])
            order = np.lexsort((cand, -block[r, cand]))[:k]
            indices[start + r] = cand[order]
            sims[start + r] = block[r, cand[order]]
    return indices, sims
