"""The ``epoxy-beam`` console script.

``epoxy-beam [run] --input ... --output ...`` runs the weak-labeling job (see
``epoxy-beam --help``); ``epoxy-beam iterate --cache_dir ... --labeling_functions ...`` relabels
from the artifacts cache after an LF edit (see :mod:`pipelines.iterate_cli`); ``epoxy-beam studio
--cache_dir ... --labeling_functions ...`` serves the LF studio (see :mod:`pipelines.studio`).
"""

from __future__ import annotations

import sys
from typing import Sequence

from pipelines import weak_label


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches to the job; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "iterate":
        from pipelines import iterate_cli  # Deferred: only the sub-command needs it.

        return iterate_cli.main(args[1:])
    if args and args[0] == "studio":
        from pipelines import studio  # Deferred: only the sub-command needs Flask.

        return studio.main(args[1:])
    if args and args[0] == "run":
        args = args[1:]
    return weak_label.main(args)


if __name__ == "__main__":
    sys.exit(main())
