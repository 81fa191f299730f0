"""The final commit: the staged run becomes the output in one atomic step.

Local outputs are versioned::

    OUTPUT/_runs/<run id>/       one complete run: labels/, errors/, summary.json, report.html,
                                 model.json, _SUCCESS
    OUTPUT/current -> _runs/<run id>        the committed run (a symbolic link)
    OUTPUT/labels -> current/labels         the documented paths, through ``current``
    OUTPUT/errors, summary.json, report.html, model.json, _SUCCESS   (likewise)

:func:`publish` renames the staging directory to ``_runs/<run id>`` (one rename), writes its
``_SUCCESS``, then replaces ``current`` by a new link with one ``os.replace`` (atomic on POSIX).
So at every instant ``OUTPUT/labels/`` and the other documented paths show either the previous
complete run or the new complete run, never a mix; a ``kill -9`` at any point leaves the
previous run readable. The previous run's directory is kept (a reader may still be in it);
older ones are deleted. An output written by an older epoxy-beam (real ``labels/`` ...
directories) is moved once into ``_runs/legacy-<run id>/``.

``gs://`` outputs have no links: there the staged files are moved into place file by file and
``_SUCCESS`` is written last (not atomic: readers must wait for ``_SUCCESS``).
"""

from __future__ import annotations

import os
import shutil
from typing import Sequence

from apache_beam.io.filesystems import FileSystems

from transforms.write import SUCCESS_FILE, move_into_place, remove_stale_outputs, write_file

PUBLISHED = ("labels", "errors", "summary.json", "report.html", "model.json", SUCCESS_FILE)
RUNS_DIR = "_runs"
CURRENT = "current"


def publish(staging: str, output: str, run_id: str, relative_paths: Sequence[str]) -> str:
    """Makes the staged run the output (atomically for local outputs); returns ``output``."""
    if "://" in output:
        remove_stale_outputs(output, ("labels", "errors"))
        move_into_place(staging, output, relative_paths)
        FileSystems.delete([staging])
        write_file(FileSystems.join(output, SUCCESS_FILE), b"")
        return output
    runs = os.path.join(output, RUNS_DIR)
    os.makedirs(runs, exist_ok=True)
    version = os.path.join(runs, run_id)
    os.rename(staging, version)
    write_file(os.path.join(version, SUCCESS_FILE), b"")
    previous = _current_run(output)
    _move_legacy_outputs(output, run_id)
    _replace_link(os.path.join(output, CURRENT), os.path.join(RUNS_DIR, run_id), run_id)
    for name in PUBLISHED:
        _replace_link(os.path.join(output, name), os.path.join(CURRENT, name), run_id)
    _prune_runs(runs, keep={run_id, previous})
    return output


def _current_run(output: str) -> str:
    """The run id ``current`` points to, or ``""``."""
    link = os.path.join(output, CURRENT)
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else ""


def _replace_link(path: str, target: str, run_id: str) -> None:
    """Points ``path`` at ``target`` with one atomic rename (nothing to do when it already does)."""
    if os.path.islink(path) and os.readlink(path) == target:
        return
    temporary = os.path.join(os.path.dirname(path), f".current-{run_id}-{os.path.basename(path)}")
    if os.path.lexists(temporary):
        os.remove(temporary)
    os.symlink(target, temporary)
    os.replace(temporary, path)


def _move_legacy_outputs(output: str, run_id: str) -> None:
    """Moves the real files of an older, unversioned output out of the way, into ``_runs``."""
    legacy = [
        name
        for name in PUBLISHED
        if os.path.lexists(os.path.join(output, name))
        and not os.path.islink(os.path.join(output, name))
    ]
    if not legacy:
        return
    target = os.path.join(output, RUNS_DIR, f"legacy-{run_id}")
    os.makedirs(target, exist_ok=True)
    for name in legacy:
        os.rename(os.path.join(output, name), os.path.join(target, name))


def _prune_runs(runs: str, keep: set[str]) -> None:
    """Deletes committed runs other than ``keep`` (the new one and the one before it)."""
    for name in os.listdir(runs):
        if name not in keep:
            shutil.rmtree(os.path.join(runs, name), ignore_errors=True)
