"""Epoxy extension: copy an LF's vote to nearby documents it abstained on.

Chen et al., "Train and You'll Miss It" (ICML 2022): LF ``j``'s vote is copied to a document
``x`` on which ``j`` abstained when the most similar document that ``j`` voted on lies within
``j``'s cosine threshold. The expensive part (which neighbour each LF voted on) is computed once
by :func:`nearest_voters` and cached as ``nn_sim``/``nn_vote`` ``[n, m]``; a threshold change then
costs one O(n·m) pass of :func:`extend_votes`.

A 5-document, 3-LF example (2 neighbours each):

>>> sims = np.array([[.9, .5], [.9, .2], [.8, .7], [.6, -np.inf], [.3, .1]], np.float32)
>>> nv = np.array([[[1, -1, 0], [0, 1, -1]],
...                [[-1, -1, 0], [1, 1, 1]],
...                [[0, -1, -1], [1, -1, -1]],
...                [[-1, 0, 1], [-1, -1, -1]],
...                [[-1, -1, -1], [-1, -1, 1]]], np.int8)
>>> nn_sim, nn_vote = nearest_voters(sims, nv)
>>> nn_vote.tolist()
[[1, 1, 0], [1, 1, 0], [0, -1, -1], [-1, 0, 1], [-1, -1, 1]]
>>> votes = np.array([[-1, -1, -1], [0, -1, -1], [-1, -1, 1], [-1, -1, -1], [1, 1, -1]], np.int8)
>>> extend_votes(votes, nn_sim, nn_vote, np.array([0.5, 0.8, 0.95], np.float32)).tolist()
[[1, -1, -1], [0, -1, -1], [0, -1, 1], [-1, -1, -1], [1, 1, -1]]
"""

from __future__ import annotations

import numpy as np

from transforms.core.votes import ABSTAIN, VOTE_DTYPE

# Rows per chunk in nearest_voters, so that the [rows, kk, m] temporaries stay small.
_CHUNK_ELEMENTS = 1 << 22


def nearest_voters(
    neighbour_sims: np.ndarray, neighbour_votes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Finds, per document and LF, the most similar neighbour that the LF voted on.

    Args:
        neighbour_sims: ``float32 [n, kk]`` cosine similarity of each neighbour, in any order;
            padding slots hold ``-inf``.
        neighbour_votes: ``int8 [n, kk, m]`` the neighbours' votes; padding slots hold ``-1``.

    Returns:
        ``(nn_sim, nn_vote)``: ``float32 [n, m]`` similarity of the most similar neighbour that
        LF ``j`` voted on (``-inf`` if none) and ``int8 [n, m]`` that neighbour's vote. When
        neighbours with different votes share the best similarity the vote is ``-1`` (a tie
        between classes is not extended).

    Raises:
        ValueError: if the shapes do not match.
    """
    sims = np.asarray(neighbour_sims, dtype=np.float32)
    nv = np.asarray(neighbour_votes)
    if sims.ndim != 2 or nv.ndim != 3 or nv.shape[:2] != sims.shape:
        raise ValueError(
            f"neighbour_sims has shape {sims.shape} and neighbour_votes {nv.shape}; expected "
            "[n, kk] and [n, kk, m] with the same n and kk"
        )
    n, kk, m = nv.shape
    nn_sim = np.full((n, m), -np.inf, dtype=np.float32)
    nn_vote = np.full((n, m), ABSTAIN, dtype=VOTE_DTYPE)
    if n == 0 or kk == 0 or m == 0:
        return nn_sim, nn_vote
    sims = np.where(np.isnan(sims), -np.inf, sims)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (kk * m))
    for start in range(0, n, rows_per_chunk):
        stop = min(n, start + rows_per_chunk)
        s = sims[start:stop, :, None]  # [r, kk, 1]
        v = nv[start:stop]  # [r, kk, m]
        voted = v != ABSTAIN
        masked = np.where(voted, s, -np.inf)  # [r, kk, m]
        best = masked.max(axis=1)  # [r, m]
        at_best = voted & (masked == best[:, None, :]) & np.isfinite(best)[:, None, :]
        # The vote at the best similarity, and whether another vote shares it.
        low = np.where(at_best, v, np.iinfo(np.int8).max).min(axis=1)
        high = np.where(at_best, v, ABSTAIN).max(axis=1)
        has = np.isfinite(best)
        nn_sim[start:stop] = best
        nn_vote[start:stop] = np.where(has & (low == high), high, ABSTAIN).astype(VOTE_DTYPE)
    return nn_sim, nn_vote


def extend_votes(
    votes: np.ndarray, nn_sim: np.ndarray, nn_vote: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Extends each LF to documents it abstained on whose nearest voter is close enough.

    An existing vote is never changed. A vote is copied where ``votes == -1``,
    ``nn_vote != -1`` and ``nn_sim >= thresholds[j]``; a threshold of ``+inf`` disables the
    extension of that LF.

    Args:
        votes: ``int8 [n, m]`` the LFs' own votes.
        nn_sim: ``float32 [n, m]`` from :func:`nearest_voters`.
        nn_vote: ``int8 [n, m]`` from :func:`nearest_voters`.
        thresholds: ``float32 [m]`` per-LF cosine thresholds.

    Returns:
        ``int8 [n, m]`` extended votes.

    Raises:
        ValueError: if the shapes do not match.
    """
    votes = np.asarray(votes)
    thresholds = np.asarray(thresholds, dtype=np.float32)
    if nn_sim.shape != votes.shape or nn_vote.shape != votes.shape:
        raise ValueError(
            f"votes {votes.shape}, nn_sim {nn_sim.shape} and nn_vote {nn_vote.shape} must have "
            "the same [n, m] shape"
        )
    if thresholds.shape != (votes.shape[1],):
        raise ValueError(
            f"thresholds has shape {thresholds.shape}; expected ({votes.shape[1]},), one per LF"
        )
    copy = (votes == ABSTAIN) & (nn_vote != ABSTAIN) & (nn_sim >= thresholds[None, :])
    return np.where(copy, nn_vote, votes).astype(VOTE_DTYPE)
