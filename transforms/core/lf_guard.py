"""Running user LFs safely: a time budget per LF and row, and their console output captured.

:func:`~transforms.core.votes.apply_lfs` already gives every LF a fresh copy of the row and turns
whatever an LF raises into an abstain and a failure. :class:`GuardedLFs` adds, for the Beam
stage (which must never hang on user code):

* **A time budget** (``timeout_s`` per LF and row). The LFs of a batch of rows
  (:meth:`GuardedLFs.apply_rows`, one hand-off: 0.3 µs per row instead of 47 µs with one
  hand-off per row, ``benchmarks/lf_guard.py``) run in one helper thread owned by the guard; the
  calling thread watches each LF call and waits at most the budget for it. An LF that
  overruns abstains on that row (cause ``timeout``) and its thread is abandoned: it is asked to
  stop (an exception is injected into it, which ends pure-Python loops at once). Every row
  gets a fresh call with the full budget, so an LF that is slow on a few rows fails on exactly
  those rows; but once :data:`MAX_STUCK_CALLS` abandoned calls of one LF are still running,
  that LF is no longer called and every later row counts as its ``timeout`` failure, so a
  hanging LF costs a few budgets, not one per row, and fails the run through
  ``--max_lf_failure_rate``. Limits: a call blocked inside C code (``time.sleep``, a
  socket read) keeps its thread until that call returns (the thread is a daemon, so it never
  keeps the process alive); a signal-based alarm was not used because Beam runs DoFns outside
  the main thread, where Python delivers no signal.
* **Console capture**: what an LF writes to ``sys.stdout`` / ``sys.stderr`` is kept (the first
  :data:`MAX_CAPTURED_CHARS` characters per LF and row) instead of flooding the worker's console;
  writes from other threads pass through. Writes to file descriptors 1/2 from C code are not
  captured.

A user's interrupt of the whole run (Ctrl-C in the CLI, which sets :data:`USER_INTERRUPT`)
still stops the run; a ``KeyboardInterrupt`` an LF raises by itself is an LF failure.
"""

from __future__ import annotations

import ctypes
import dataclasses
import queue
import sys
import threading
import time
from typing import Any, Sequence

import numpy as np

from transforms.core.votes import (
    ABSTAIN,
    USER_INTERRUPT,
    VOTE_DTYPE,
    LabelingFunction,
    LFFailure,
    call_lf,
)

MAX_CAPTURED_CHARS = 2000
MAX_STUCK_CALLS = 3  # overrunning calls of one LF still running before it is no longer called

__all__ = ["GuardedLFs", "USER_INTERRUPT", "MAX_CAPTURED_CHARS"]


class _Capture:
    """The bounded console output of one LF call."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0

    def write(self, text: str) -> None:
        self.total += len(text)
        if self.kept < MAX_CAPTURED_CHARS:
            part = text[: MAX_CAPTURED_CHARS - self.kept]
            self.parts.append(part)
            self.kept += len(part)


_CAPTURES: dict[int, _Capture] = {}


class _ThreadRoutedStream:
    """A ``sys.stdout`` / ``sys.stderr`` stand-in: writes of capturing threads are kept."""

    def __init__(self, original: Any) -> None:
        self._original = original

    def write(self, text: str) -> int:
        capture = _CAPTURES.get(threading.get_ident())
        if capture is None:
            return self._original.write(text)
        capture.write(str(text))
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() not in _CAPTURES:
            self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def _route_console() -> None:
    """Puts the routing streams in place (again, if something replaced ``sys.stdout``)."""
    if not isinstance(sys.stdout, _ThreadRoutedStream):
        sys.stdout = _ThreadRoutedStream(sys.stdout)
    if not isinstance(sys.stderr, _ThreadRoutedStream):
        sys.stderr = _ThreadRoutedStream(sys.stderr)


class _LFTimeout(BaseException):
    """Injected into an abandoned LF thread to stop it."""


_SKIPPED = object()  # the result of an LF a job did not call (too many stuck calls)


@dataclasses.dataclass
class _Job:
    """The LFs ``start..`` of one row, run by a helper thread; the LFs in ``skip`` are not called."""

    row: Any
    start: int
    cardinality: int
    skip: frozenset = frozenset()
    results: list = dataclasses.field(default_factory=list)
    outputs: dict = dataclasses.field(default_factory=dict)
    current: int = -1
    started_at: float = 0.0
    abandoned: bool = False
    finished: bool = False


@dataclasses.dataclass
class _Batch:
    """Jobs handed to the helper thread at once (one hand-off for many rows), run in order."""

    jobs: list[_Job]
    done: queue.SimpleQueue = dataclasses.field(default_factory=queue.SimpleQueue)


def _run_lfs(lfs: Sequence[LabelingFunction], job: _Job) -> None:
    """Runs the LFs ``job.start..`` on the job's row in this thread, capturing their output."""
    ident = threading.get_ident()
    for j in range(job.start, len(lfs)):
        if j in job.skip:
            job.results.append(_SKIPPED)
            continue
        capture = _Capture()
        job.current, job.started_at = j, time.monotonic()
        _CAPTURES[ident] = capture
        try:
            result = call_lf(lfs[j], job.row, job.cardinality)
        finally:
            _CAPTURES.pop(ident, None)
        if job.abandoned:
            return
        job.results.append(result)
        if capture.total:
            job.outputs[lfs[j].name] = ("".join(capture.parts), capture.total)


class _Worker:
    """One daemon thread that runs the batches of jobs handed to it, one job at a time."""

    def __init__(self, lfs: Sequence[LabelingFunction]) -> None:
        self._lfs = lfs
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="epoxy-lf")
        self.thread.start()

    def submit(self, batch: _Batch) -> None:
        self._jobs.put(batch)

    def _loop(self) -> None:
        try:
            while True:
                batch = self._jobs.get()
                if batch is None:
                    return
                for job in batch.jobs:
                    if job.abandoned:
                        return
                    _run_lfs(self._lfs, job)
                    if job.abandoned:
                        return
                    job.finished = True
                batch.done.put(True)
        except _LFTimeout:
            return

    def stop(self) -> None:
        self._jobs.put(None)


def _inject_stop(thread: threading.Thread) -> None:
    """Asks a running thread to stop by raising :class:`_LFTimeout` in it (CPython)."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(_LFTimeout)
        )


class GuardedLFs:
    """Applies an LF set row by row with a time budget per LF and the LFs' output captured.

    Use one instance per thread (a Beam DoFn instance); call :meth:`close` when done.

    Args:
        lfs: The LF set, in column order.
        cardinality: The number of classes ``k``.
        timeout_s: The budget of one LF on one row; ``0`` runs the LFs inline, without one.
    """

    def __init__(
        self, lfs: Sequence[LabelingFunction], cardinality: int, timeout_s: float
    ) -> None:
        self._lfs = tuple(lfs)
        self._cardinality = cardinality
        self._timeout_s = timeout_s
        self._worker: _Worker | None = None
        self._stuck: dict[int, list[threading.Thread]] = {}

    def apply(self, row: Any) -> tuple[np.ndarray, list[LFFailure], dict[str, tuple[str, int]]]:
        """Votes of every LF on ``row``: :meth:`apply_rows` of one row."""
        return self.apply_rows([row])[0]

    def apply_rows(
        self, rows: Sequence[Any]
    ) -> list[tuple[np.ndarray, list[LFFailure], dict[str, tuple[str, int]]]]:
        """Votes of every LF on each row; the rows go to the helper thread in one hand-off.

        Returns:
            Per row ``(votes int8 [m], failures, outputs)``; ``outputs`` maps an LF that wrote to
            the console to ``(the first MAX_CAPTURED_CHARS characters, total characters)``.
        """
        _route_console()
        m = len(self._lfs)
        results = [(np.full(m, ABSTAIN, dtype=VOTE_DTYPE), [], {}) for _ in rows]
        pending = [(i, 0) for i in range(len(rows))] if m else []  # (row, first LF to run)
        while pending:
            skip = self._stuck_lfs()
            jobs = [_Job(row=rows[i], start=start, cardinality=self._cardinality, skip=skip) for i, start in pending]
            overrun = self._run_jobs(jobs)
            ran = len(jobs) if overrun is None else overrun + 1
            for (i, _), job in zip(pending[:ran], jobs[:ran]):
                self._collect(job, *results[i])
            if overrun is None:
                break
            i, job = pending[overrun][0], jobs[overrun]
            results[i][1].append(self._timeout(job.current))
            pending = ([(i, job.current + 1)] if job.current + 1 < m else []) + pending[overrun + 1 :]
        if USER_INTERRUPT.is_set():
            raise KeyboardInterrupt("the run was interrupted by the user")
        return results

    def _collect(self, job: _Job, votes: np.ndarray, failures: list, outputs: dict) -> None:
        """Adds a job's results (LFs ``job.start..``, up to where it stopped) to its row's."""
        for offset, result in enumerate(job.results):
            if result is _SKIPPED:
                failures.append(self._timeout(job.start + offset, still_running=True))
                continue
            vote, failure = result
            if failure is not None:
                failures.append(failure)
            else:
                votes[job.start + offset] = vote
        outputs.update(job.outputs)

    def _stuck_lfs(self) -> frozenset:
        """The LFs with :data:`MAX_STUCK_CALLS` abandoned calls still running (not called again)."""
        for j, threads in self._stuck.items():
            self._stuck[j] = [thread for thread in threads if thread.is_alive()]
        return frozenset(j for j, threads in self._stuck.items() if len(threads) >= MAX_STUCK_CALLS)

    def _run_jobs(self, jobs: list[_Job]) -> int | None:
        """Runs the jobs in order; the index of the one whose current LF overran the budget
        (it and the later ones are abandoned), or ``None`` when all finished."""
        if self._timeout_s <= 0:
            for job in jobs:
                _run_lfs(self._lfs, job)
            return None
        if self._worker is None:
            self._worker = _Worker(self._lfs)
        batch = _Batch(jobs)
        self._worker.submit(batch)
        while True:
            try:
                batch.done.get(timeout=self._timeout_s / 4)
                return None
            except queue.Empty:
                pass
            k = next((k for k, job in enumerate(jobs) if not job.finished), None)
            job = jobs[k] if k is not None else None
            if job is None or job.current < 0 or time.monotonic() - job.started_at <= self._timeout_s:
                continue
            for later in jobs[k:]:
                later.abandoned = True
            self._stuck.setdefault(job.current, []).append(self._worker.thread)
            _inject_stop(self._worker.thread)
            self._worker = None
            job.results = job.results[: job.current - job.start]
            job.outputs = dict(job.outputs)
            return k

    def _timeout(self, j: int, still_running: bool = False) -> LFFailure:
        detail = (
            f"has {MAX_STUCK_CALLS} calls still running past their budget on earlier rows, so "
            "it was not called"
            if still_running
            else f"ran longer than --lf_timeout_s={self._timeout_s:g} s"
        )
        return LFFailure(
            lf_name=self._lfs[j].name,
            cause="timeout",
            message=f"{detail}; it abstains here. Make it faster, or raise --lf_timeout_s",
        )

    def close(self) -> None:
        """Ends the helper thread (an abandoned, still running one ends when its call returns)."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
