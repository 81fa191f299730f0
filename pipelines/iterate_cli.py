"""Interactive LF iteration on the cached artifacts: edit an LF, see new labels and metrics.

The ``epoxy-beam iterate`` command: opens a :class:`~pipelines.iterate.Session` on the
pipeline's ``--cache_dir`` with the LF file the user names (applying the LFs that changed since
the cache was written), runs a full relabel and prints the LF table and the dev metrics.

    epoxy-beam iterate --cache_dir cache/ --labeling_functions lfs.py [--labels_out F]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from pipelines.iterate import Session
from pipelines.relabel_result import write_labels


def main(argv: Sequence[str] | None = None) -> int:
    """``epoxy-beam iterate``: apply the LFs that changed, relabel, print LF table and metrics."""
    parser = argparse.ArgumentParser(prog="epoxy-beam iterate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache_dir", required=True, help="The pipeline's --cache_dir.")
    parser.add_argument("--labeling_functions", required=True, help="The LF file (the only code run).")
    parser.add_argument("--labels_out", default="", help="Optional Parquet file for the new labels.")
    args = parser.parse_args(argv)
    try:
        start = time.perf_counter()
        session = Session.open(args.cache_dir, args.labeling_functions)
    except ValueError as error:
        print(f"epoxy-beam iterate: error: {error}", file=sys.stderr)
        return 2
    print(f"loaded {len(session.ids)} documents, {len(session.lfs)} LFs in {time.perf_counter() - start:.1f}s")
    for name in session.applied_on_open:
        print(f"applied {name} (new or changed since the cache was written)")
    result = session.relabel(refit="full")
    print(result.format())
    if args.labels_out:
        write_labels(result, args.labels_out)
    return 0
