"""The LF guard's time budget: an LF blocked in C code stops being called wherever it sits."""

from __future__ import annotations

import time

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
