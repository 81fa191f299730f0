"""What the job needs to know about its runner.

Short ``--runner`` names that Beam does not know, mapped to the classes that implement them:
Beam resolves its own runners by short name (``FnApiRunner``, ``DataflowRunner``, ...); a
class outside Beam needs its full path. ``--runner=DaskRunner`` names this project's Dask
override (:mod:`pipelines.dask_runner`), which imports ``dask`` only when it is chosen.

And where the kNN join's rows go to their groups (``--knn_shuffle_dir``,
:func:`knn_shuffle_dir`).
"""

from __future__ import annotations

import tempfile
from typing import Any, Sequence

from apache_beam.io.filesystems import FileSystems
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner, SwitchingDirectRunner
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

SHORT_NAMES = {"daskrunner": "pipelines.dask_runner.DaskRunner"}


def resolve_runner_name(beam_args: Sequence[str]) -> list[str]:
    """Replaces a short runner name in ``--runner=NAME`` or ``--runner NAME`` by its full path.

    >>> resolve_runner_name(["--runner=DaskRunner", "--x=1"])
    ['--runner=pipelines.dask_runner.DaskRunner', '--x=1']
    """
    args = list(beam_args)
    for i, arg in enumerate(args):
        name, _, value = arg.partition("=")
        if name == "--runner" and value.lower() in SHORT_NAMES:
            args[i] = f"--runner={SHORT_NAMES[value.lower()]}"
        elif arg == "--runner" and i + 1 < len(args) and args[i + 1].lower() in SHORT_NAMES:
            args[i + 1] = SHORT_NAMES[args[i + 1].lower()]
    return args


IN_PROCESS_RUNNERS = (FnApiRunner, SwitchingDirectRunner, BundleBasedDirectRunner)


def knn_shuffle_dir(option: str, runner: Any, run_id: str) -> str:
    """The kNN join's shuffle directory for ``--knn_shuffle_dir`` (``""``: the runner's shuffle).

    ``auto`` gives a local temporary directory with an in-process runner (its workers share
    this machine's disk) and the runner's shuffle otherwise; ``none`` the runner's shuffle; any
    other value is a directory to use (a subdirectory per run is created in it).

    >>> knn_shuffle_dir("none", FnApiRunner(), "r1"), knn_shuffle_dir("auto", object(), "r1")
    ('', '')
    >>> knn_shuffle_dir("/fast/disk", object(), "r1")
    '/fast/disk/epoxy-knn-r1'
    """
    if option == "none" or (option == "auto" and not isinstance(runner, IN_PROCESS_RUNNERS)):
        return ""
    parent = tempfile.gettempdir() if option == "auto" else option
    return FileSystems.join(parent, f"epoxy-knn-{run_id}")
