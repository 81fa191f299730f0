"""Keeping ``--output`` safe: no overlap with the input, no foreign files touched, one writer.

* :func:`check_output_safe` (preflight) refuses an output that an input glob could read back
  (equal to, inside or containing an input) and a non-empty directory that is not a previous
  epoxy-beam output, unless ``--overwrite``.
* :class:`OutputLock` makes a second concurrent run into the same local ``--output`` fail at
  once with a clear message (``OUTPUT/_lock``, created exclusively; a lock left by a process
  that no longer runs on this host is taken over).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
from typing import Sequence

from apache_beam.io.filesystem import FileSystem

# What a previous epoxy-beam output may hold at its top level.
OUTPUT_ENTRIES = frozenset(
    {
        "labels", "errors", "summary.json", "report.html", "model.json", "_SUCCESS",
        "current", "_runs", "_lock",
    }
)  # fmt: skip
_OUTPUT_PREFIXES = ("_staging-", "_write_check-", ".current-")
# Paths a run writes under OUTPUT; an input glob matching one of them would read outputs back.
_WRITTEN = (
    "",
    "summary.json",
    "model.json",
    "report.html",
    "_SUCCESS",
    "labels/part-00000-of-00001.parquet",
    "errors/dead_letter-00000-of-00001.jsonl",
    "current/summary.json",
    "_runs/RUN/summary.json",
    "_runs/RUN/labels/part-00000-of-00001.parquet",
    "_runs/RUN/errors/dead_letter-00000-of-00001.jsonl",
    "_staging-RUN/errors/dead_letter-00000-of-00001.jsonl",
)
LOCK_FILE = "_lock"


def _normal(path: str) -> str:
    """An absolute, normalised local path; remote paths lose only a trailing slash."""
    if "://" in path:
        return path.rstrip("/")
    return os.path.normpath(os.path.abspath(path))


def _static_base(pattern: str) -> str:
    """The directory part of a glob before its first wildcard.

    >>> _static_base("/data/in/*.jsonl"), _static_base("/data/in/x.csv")
    ('/data/in', '/data/in')
    """
    wildcard = re.search(r"[*?\[]", pattern)
    head = pattern[: wildcard.start()] if wildcard else pattern
    return head.rsplit("/", 1)[0] if "/" in head else "."


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def output_overlap(output: str, pattern: str) -> str:
    """Why ``output`` and the input glob ``pattern`` overlap, or ``""`` when they do not.

    >>> output_overlap("/d/out", "/d/*.jsonl")
    ''
    >>> output_overlap("/d/out", "/d/**")
    "the input glob '/d/**' matches what the run writes, e.g. '/d/out'"
    >>> output_overlap("/d", "/d/in/*.jsonl")
    "the input glob '/d/in/*.jsonl' reads from inside the output directory '/d'"
    """
    out = _normal(output)
    glob = pattern if "://" in pattern or os.path.isabs(pattern) else os.path.abspath(pattern)
    if _inside(_normal(_static_base(glob)), out):
        return f"the input glob {pattern!r} reads from inside the output directory {output!r}"
    regex = re.compile(FileSystem.translate_pattern(glob))
    for relative in _WRITTEN:
        written = f"{out}/{relative}" if relative else out
        if regex.match(written):
            return f"the input glob {pattern!r} matches what the run writes, e.g. {written!r}"
    return ""


def check_output_safe(output: str, patterns: Sequence[str], overwrite: bool) -> None:
    """Refuses an output that overlaps an input, or holds files that are not epoxy-beam's.

    Raises:
        ValueError: Naming the output, the input glob or the foreign files, and the fix.
    """
    for pattern in patterns:
        overlap = output_overlap(output, pattern)
        if overlap:
            raise ValueError(
                f"--output {output!r} overlaps --input: {overlap}; a second run would read the "
                "first run's outputs as corpus. Write the output to a directory outside every "
                "input glob"
            )
    if overwrite or "://" in output or not os.path.isdir(output):
        return
    foreign = sorted(
        name
        for name in os.listdir(output)
        if name not in OUTPUT_ENTRIES and not name.startswith(_OUTPUT_PREFIXES)
    )
    if foreign:
        raise ValueError(
            f"--output {output!r} is a non-empty directory that is not an epoxy-beam output "
            f"(it holds {foreign[:3]}{' ...' if len(foreign) > 3 else ''}); epoxy-beam writes "
            "labels/, errors/ and summary.json there: pick a new or empty directory, or pass "
            "--overwrite to add the outputs beside these files"
        )


class OutputLock:
    """An exclusive lock on a local ``--output`` for the time of one run.

    Remote outputs (``gs://``) are not locked: object stores have no exclusive create through
    Beam's file systems, so concurrent runs there must be prevented by the scheduler.
    """

    def __init__(self, output: str, run_id: str) -> None:
        self._path = os.path.join(output, LOCK_FILE) if "://" not in output else ""
        self._run_id = run_id
        self._held = False

    def acquire(self) -> "OutputLock":
        """Takes the lock, or raises ``ValueError`` naming the run that holds it."""
        if not self._path:
            return self
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        for _ in range(2):
            try:
                descriptor = os.open(self._path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:
                    continue  # a stale lock, removed: try again
                raise ValueError(
                    f"--output {os.path.dirname(self._path)!r} is locked by another epoxy-beam "
                    f"run ({holder}); two runs must not commit into one output: wait for it to "
                    f"finish, pick another --output, or delete {self._path!r} if that run is "
                    "gone"
                ) from None
            with os.fdopen(descriptor, "w") as handle:
                json.dump(self._facts(), handle)
            self._held = True
            return self
        raise ValueError(f"could not take the lock {self._path!r}; delete it and run again")

    def _facts(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": self._run_id,
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }

    def _holder(self) -> str | None:
        """Describes the lock's holder; removes the lock and returns None when it is stale."""
        try:
            with open(self._path, encoding="utf-8") as handle:
                facts = json.load(handle)
        except (OSError, ValueError):
            return "an unreadable lock file"
        if facts.get("host") == socket.gethostname() and not _pid_alive(int(facts.get("pid", 0))):
            try:
                os.remove(self._path)
            except FileNotFoundError:
                pass
            return None
        return f"run {facts.get('run_id')}, pid {facts.get('pid')} on {facts.get('host')}, " + (
            f"since {facts.get('since')}"
        )

    def release(self) -> None:
        """Releases the lock if this run holds it."""
        if self._held:
            self._held = False
            try:
                os.remove(self._path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
