"""The LF guard's time budget: an LF blocked in C code stops being called wherever it sits."""

from __future__ import annotations

import time

from transforms.core.document import lf_row
from transforms.core.lf_guard import MAX_STUCK_CALLS, GuardedLFs
from transforms.core.lfs import labeling_function


def _lfs(blocked_seconds: float, calls: list[float]):
    @labeling_function()
    def first(x):
        return 0

    @labeling_function()
    def blocked(x):
        calls.append(time.monotonic())
        time.sleep(blocked_seconds)  # blocked in C: the injected stop waits for the sleep
        return 1

    @labeling_function()
    def last(x):
        return 1

    return [first, blocked, last]


def test_a_blocked_lf_in_the_middle_is_called_only_until_its_stuck_calls_reach_the_limit():
    calls: list[float] = []
    guard = GuardedLFs(_lfs(60.0, calls), cardinality=2, timeout_s=0.1)
    started = time.monotonic()
    results = [guard.apply({"id": str(i), "text": "t"}) for i in range(8)]
    assert len(calls) == MAX_STUCK_CALLS  # one budget per stuck call, not one per row
    assert time.monotonic() - started < 0.1 * MAX_STUCK_CALLS + 2.0
    for votes, failures, _ in results:
        assert votes.tolist() == [0, -1, 1]  # the LFs around it still vote
        assert [failure.cause for failure in failures] == ["timeout"]
    assert "still running" in results[-1][1][0].message


def test_a_blocked_lf_is_called_again_once_its_stuck_calls_have_returned():
    calls: list[float] = []
    guard = GuardedLFs(_lfs(0.3, calls), cardinality=2, timeout_s=0.05)
    for i in range(MAX_STUCK_CALLS + 2):
        guard.apply({"id": str(i), "text": "t"})
    assert len(calls) == MAX_STUCK_CALLS
    time.sleep(0.5)  # the abandoned sleeps return, their threads end
    guard.apply({"id": "later", "text": "t"})
    assert len(calls) == MAX_STUCK_CALLS + 1


def test_rows_in_one_hand_off_equal_rows_one_by_one_with_an_overrun_in_the_middle():
    @labeling_function()
    def slow_on_row_3(x):
        if x.id == "3":
            time.sleep(1.0)
        return int(x.id) % 2

    @labeling_function()
    def prints(x):
        print("row", x.id)
        return 1 if x.id == "5" else -1

    rows = [lf_row({"id": str(i), "text": "t"}) for i in range(8)]
    batched = GuardedLFs([slow_on_row_3, prints], cardinality=2, timeout_s=0.2).apply_rows(rows)
    one_by_one = [GuardedLFs([slow_on_row_3, prints], cardinality=2, timeout_s=0.2).apply(row) for row in rows]
    for (votes, failures, outputs), (votes_1, failures_1, outputs_1) in zip(batched, one_by_one):
        assert votes.tolist() == votes_1.tolist()
        assert [(f.lf_name, f.cause) for f in failures] == [(f.lf_name, f.cause) for f in failures_1]
        assert outputs == outputs_1
    assert batched[3][0].tolist() == [-1, -1] and batched[3][1][0].cause == "timeout"
    assert batched[5][0].tolist() == [1, 1] and batched[5][2] == {"prints": ("row 5\n", 6)}
