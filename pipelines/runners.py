"""Short ``--runner`` names that Beam does not know, mapped to the classes that implement them.

Beam resolves its own runners by short name (``FnApiRunner``, ``DataflowRunner``, ...); a
class outside Beam needs its full path. ``--runner=DaskRunner`` names this project's Dask
override (:mod:`pipelines.dask_runner`), which imports ``dask`` only when it is chosen.
"""

from __future__ import annotations

from typing import Sequence

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
