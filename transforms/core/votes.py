"""Votes and labeling functions: the label-matrix conventions shared by every stage.

Conventions follow Snorkel: ``ABSTAIN = -1``, classes ``0..k-1``, a label matrix is an
``[n, m]`` integer array whose column ``j`` holds the votes of the ``j``-th LF of the LF set.

>>> @labeling_function()
... def lf_link(x):
...     return 1 if "http" in x["text"] else ABSTAIN
>>> lfs = validate_lfs([lf_link])
>>> votes, failures = apply_lfs(lfs, {"id": "a", "text": "see http://x"}, cardinality=2)
>>> votes.tolist(), failures
([1], [])
"""

from __future__ import annotations

import dataclasses
import threading
import traceback
from typing import Any, Sequence

import numpy as np

from transforms.core.document import fresh_copy

# The LF object and decorator live in transforms.core.lfs; importing them from here still works
# (LF files written before the move).
from transforms.core.lfs import (  # noqa: F401 - re-exported for existing LF files.
    ABSTAIN,
    VOTE_DTYPE,
    LabelingFunction,
    Row,
    labeling_function,
    validate_lfs,
)

# Set when the user interrupts the whole run (the CLI's SIGINT handler): then an LF call that
# ends in KeyboardInterrupt stops the run instead of counting as that LF's failure.
USER_INTERRUPT = threading.Event()


@dataclasses.dataclass(frozen=True)
class LFFailure:
    """One LF that raised, or returned an invalid value, on one row.

    Attributes:
        lf_name: The failing LF.
        cause: ``"exception"``, ``"invalid_value"`` or ``"timeout"``.
        message: The exception's type and message, or the invalid value.
        traceback_head: The last lines of the traceback (empty for invalid values).
    """

    lf_name: str
    cause: str
    message: str
    traceback_head: str = ""


def check_vote(value: Any, cardinality: int) -> int | None:
    """Returns ``value`` as an int vote if it is valid for ``cardinality``, else ``None``.

    ``bool`` is rejected (``True`` is an int in Python, but never a meant class).

    >>> check_vote(1, 2), check_vote(-1, 2), check_vote(2, 2), check_vote("1", 2)
    (1, -1, None, None)
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    value = int(value)
    if ABSTAIN <= value < cardinality:
        return value
    return None


def call_lf(
    lf: LabelingFunction, row: Row, cardinality: int
) -> tuple[int, LFFailure | None]:
    """Calls one LF on a fresh copy of ``row``: ``(vote, None)`` or ``(ABSTAIN, failure)``.

    The copy keeps an LF that changes its row (``x["text"] = ...``, appending to a list field)
    from changing what the next LF sees. Whatever the LF raises, ``SystemExit`` and
    ``KeyboardInterrupt`` included, is its failure; only a user's interrupt of the whole run
    (:data:`USER_INTERRUPT`) propagates.
    """
    try:
        value = lf(fresh_copy(row))
    except BaseException as error:  # noqa: BLE001 - an LF is user code; any failure is routed.
        if isinstance(error, KeyboardInterrupt) and USER_INTERRUPT.is_set():
            raise
        return ABSTAIN, LFFailure(
            lf_name=lf.name,
            cause="exception",
            message=f"{type(error).__name__}: {error}",
            traceback_head="".join(traceback.format_exception(error)[-3:])[-2000:],
        )
    vote = check_vote(value, cardinality)
    if vote is None:
        return ABSTAIN, LFFailure(
            lf_name=lf.name,
            cause="invalid_value",
            message=f"returned {value!r:.200}; expected an int in -1..{cardinality - 1}",
        )
    return vote, None


def apply_lfs(
    lfs: Sequence[LabelingFunction], row: Row, cardinality: int
) -> tuple[np.ndarray, list[LFFailure]]:
    """Applies every LF to one row: the one per-row function behind every apply path.

    An LF that raises, or returns anything but an int in ``-1..k-1``, abstains on this row and
    is reported as a failure; it never stops the other LFs. Each LF sees the row as it was read
    (:func:`call_lf`). :class:`~transforms.core.lf_guard.GuardedLFs` adds a time budget.

    Args:
        lfs: The LF set, in column order.
        row: The document.
        cardinality: The number of classes ``k``.

    Returns:
        ``(votes, failures)``: ``int8 [m]`` votes and the failures on this row.
    """
    votes = np.full(len(lfs), ABSTAIN, dtype=VOTE_DTYPE)
    failures: list[LFFailure] = []
    for j, lf in enumerate(lfs):
        vote, failure = call_lf(lf, row, cardinality)
        if failure is not None:
            failures.append(failure)
        else:
            votes[j] = vote
    return votes, failures


def check_votes(values: Sequence[Any], num_lfs: int, cardinality: int) -> np.ndarray:
    """Validates a precomputed vote list (one row of a votes column).

    Args:
        values: The row's votes, one per LF.
        num_lfs: The expected number of LFs ``m``.
        cardinality: The number of classes ``k``.

    Returns:
        The votes as ``int8 [m]``.

    Raises:
        ValueError: naming the bad value and the rule it broke.

    >>> check_votes([1, -1, 0], 3, 2).tolist()
    [1, -1, 0]
    >>> check_votes([1, 5], 2, 2)
    Traceback (most recent call last):
    ...
    ValueError: vote 5 at position 1 is out of range: votes must be ints in -1..1
    """
    if values is None or isinstance(values, (str, bytes)):
        raise ValueError(f"votes {values!r} are not a list of ints")
    values = list(values)
    if len(values) != num_lfs:
        raise ValueError(
            f"vote list has {len(values)} entries; expected {num_lfs} (one per LF)"
        )
    votes = np.empty(num_lfs, dtype=VOTE_DTYPE)
    for j, value in enumerate(values):
        vote = check_vote(value, cardinality)
        if vote is None:
            raise ValueError(
                f"vote {value!r} at position {j} is out of range: "
                f"votes must be ints in -1..{cardinality - 1}"
            )
        votes[j] = vote
    return votes
