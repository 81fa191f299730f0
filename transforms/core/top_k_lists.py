"""Top-k neighbour lists: merged per document, merged for many documents at once, packed to bytes.

A document of the partitioned kNN join gets one top-k list from every group it visited; its
neighbours are the best ``k`` of their union. The merge is one rule, whatever the batch: union,
de-duplicated (a neighbour keeps its largest similarity), descending similarity, ties by id.
Similarities are exact dot products of stored vectors, so a neighbour found twice has the same
similarity both times and the merge does not depend on the order or the split of the lists.

>>> merge_top_k([(["b", "c"], np.float32([.9, .5])), (["a", "c"], np.float32([.9, .5]))], 2)
(['a', 'b'], array([0.9, 0.9], dtype=float32))
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

TopK = tuple[list[str], np.ndarray]  # (neighbour ids, float32 sims), descending


def merge_top_k(lists: Iterable[tuple[Sequence[str], np.ndarray]], k: int) -> TopK:
    """Merges top-k lists of one document: union, de-duplicated, descending, ties by id."""
    pairs: list[tuple[float, str]] = []
    for ids, sims in lists:
        pairs.extend(zip((-np.asarray(sims, np.float32)).tolist(), ids))
    pairs.sort()  # a neighbour's first pair holds its largest similarity
    merged_ids: list[str] = []
    merged_sims: list[float] = []
    seen: set[str] = set()
    for negative_sim, neighbour in pairs:
        if len(merged_ids) >= k:
            break
        if neighbour not in seen:
            seen.add(neighbour)
            merged_ids.append(neighbour)
            merged_sims.append(-negative_sim)
    return merged_ids, np.asarray(merged_sims, dtype=np.float32)


def merge_top_k_lists(
    list_queries: Sequence[str], lengths: np.ndarray, neighbour_ids: np.ndarray, sims: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`merge_top_k` for many documents at once, with array operations.

    Each query's lists are laid side by side in one row of a matrix and the row is sorted by
    similarity. A row where two of the ``k + 1`` best similarities are equal (a tie, or the same
    neighbour twice) is merged by :func:`merge_top_k` itself, so every row follows its rule.

    Args:
        list_queries: The query of each list, ``[L]``; a query may have several lists.
        lengths: ``int [L]``: each list's length; the lists follow each other in the flat arrays.
        neighbour_ids: ``str [sum(lengths)]``: the lists' neighbour ids.
        sims: ``float32 [sum(lengths)]``: their similarities, descending within each list.
        k: Neighbours kept per query.

    Returns:
        ``(queries str [Q], offsets int64 [Q + 1], ids str, sims float32)``: query ``i``'s
        merged list is ``ids[offsets[i]:offsets[i + 1]]``.

    >>> merge_top_k_lists(["q", "p", "q"], np.array([2, 1, 1]), np.array(["a", "b", "c", "d"]),
    ...                   np.float32([.9, .1, .5, .5]), 2)[:3]
    (array(['p', 'q'], dtype='<U1'), array([0, 1, 3]), array(['c', 'a', 'd'], dtype='<U1'))
    """
    lengths = np.asarray(lengths, np.int64)
    neighbour_ids, sims = np.asarray(neighbour_ids, dtype=str), np.asarray(sims, np.float32)
    queries, query_of_list = np.unique(np.asarray(list_queries, dtype=str), return_inverse=True)
    rows = _side_by_side(query_of_list.reshape(-1), lengths, len(queries))
    filled = rows >= 0
    matrix = np.full(rows.shape, -np.inf, np.float32)
    matrix[filled] = sims[rows[filled]]
    ranked = np.argsort(-matrix, axis=1, kind="stable")[:, : k + 1]
    best = np.take_along_axis(matrix, ranked, axis=1)
    chosen = np.take_along_axis(rows, ranked[:, :k], axis=1)
    ids_out = neighbour_ids[np.maximum(chosen, 0)] if neighbour_ids.size else np.full(chosen.shape, "")
    sims_out = best[:, :k].copy()
    counts = (chosen >= 0).sum(axis=1)
    tied = np.any((best[:, 1:] == best[:, :-1]) & np.isfinite(best[:, 1:]), axis=1)
    for query in np.flatnonzero(tied):
        entries = rows[query][filled[query]]  # the query's lists as one: the merge ignores the split
        merged_ids, merged_sims = merge_top_k([(neighbour_ids[entries], sims[entries])], k)
        counts[query] = len(merged_ids)
        ids_out[query, : len(merged_ids)], sims_out[query, : len(merged_ids)] = merged_ids, merged_sims
    kept = np.arange(ids_out.shape[1]) < counts[:, None]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return queries, offsets, ids_out[kept], sims_out[kept]


def _side_by_side(query_of_list: np.ndarray, lengths: np.ndarray, num_queries: int) -> np.ndarray:
    """Each query's lists side by side: ``int64 [Q, lists × longest list]`` entry numbers, ``-1`` = none.

    >>> _side_by_side(np.array([1, 0, 1]), np.array([2, 1, 1]), 2).tolist()
    [[2, -1, -1, -1], [0, 1, 3, -1]]
    """
    width = int(lengths.max()) if lengths.size else 0
    order = np.argsort(query_of_list, kind="stable")
    first_list = np.searchsorted(query_of_list[order], np.arange(num_queries))
    slot = np.empty(len(order), np.int64)
    slot[order] = np.arange(len(order)) - first_list[query_of_list[order]]
    slots = int(slot.max()) + 1 if slot.size else 0
    list_of_entry = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(list_of_entry.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = np.full((num_queries, slots * width), -1, np.int64)
    rows[query_of_list[list_of_entry], slot[list_of_entry] * width + position] = np.arange(list_of_entry.size)
    return rows


def pack_top_k(ids: Sequence[str], sims: np.ndarray) -> bytes:
    """One top-k list as one ``bytes`` value (a shuffled list costs one object, not ``k + 2``).

    Layout: ``uint32`` count ``c``, ``c`` ``uint32`` UTF-8 lengths, ``c`` ``float32`` sims, then
    the UTF-8 ids; any id round-trips.

    >>> ids, sims = unpack_top_k(pack_top_k(["b", "é", ""], np.float32([.75, .5, .25])))
    >>> ids, sims.tolist()
    (['b', 'é', ''], [0.75, 0.5, 0.25])
    """
    encoded = [doc_id.encode("utf-8") for doc_id in ids]
    head = np.empty(1 + len(encoded), np.uint32)
    head[0] = len(encoded)
    head[1:] = [len(doc_id) for doc_id in encoded]
    return head.tobytes() + np.asarray(sims, np.float32).tobytes() + b"".join(encoded)


def unpack_top_k(blob: bytes) -> TopK:
    """The ``(ids, sims)`` of :func:`pack_top_k` bytes (``sims`` a writable copy)."""
    count = int(np.frombuffer(blob, np.uint32, 1)[0])
    lengths = np.frombuffer(blob, np.uint32, count, offset=4)
    sims = np.frombuffer(blob, np.float32, count, offset=4 + 4 * count).copy()
    ids_start = 4 + 8 * count
    ends = (ids_start + np.cumsum(lengths)).tolist()
    starts = [ids_start] + ends[:-1]
    return [blob[start:end].decode("utf-8") for start, end in zip(starts, ends)], sims
