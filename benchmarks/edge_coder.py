"""Beam's coder cost of one voted edge of the extension join (``transforms/extend.py``) when it
sent one element per edge: the neighbour's votes as an ``int8`` ndarray and its source as
``np.uint64`` (both pickled), or as bytes and an int (written natively by
``FastPrimitivesCoder``). The join now sends edges in batches of packed arrays
(``transforms/core/voter_join.py``), the same bytes-not-ndarray rule per batch.

Usage::

    python benchmarks/edge_coder.py [--lfs 12] [--repeats 50000] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import finish  # noqa: E402


def coder_cost(element: Any, repeats: int) -> tuple[int, float, float]:
    """``(encoded bytes, µs per encode, µs per decode)`` with Beam's ``FastPrimitivesCoder``."""
    from apache_beam.coders import coders

    impl = coders.FastPrimitivesCoder().get_impl()
    start = time.perf_counter()
    for _ in range(repeats):
        encoded = impl.encode(element)
    encode_us = (time.perf_counter() - start) / repeats * 1e6
    start = time.perf_counter()
    for _ in range(repeats):
        impl.decode(encoded)
    return len(encoded), encode_us, (time.perf_counter() - start) / repeats * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """Prints both encodings' size and time (and writes ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfs", type=int, default=12, help="votes per edge (LFs)")
    parser.add_argument("--repeats", type=int, default=50000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    votes = np.full(args.lfs, -1, np.int8)
    votes[0] = 2
    source = np.uint64(2**64 - 5)
    elements = {
        "ndarray": ("doc00001234", (0.83, votes, source)),
        "bytes": ("doc00001234", (0.83, votes.tobytes(), int(source))),
    }
    figures: dict[str, Any] = {"lfs": args.lfs, "repeats": args.repeats}
    for name, element in elements.items():
        size, encode_us, decode_us = coder_cost(element, args.repeats)
        figures.update({f"{name}_bytes": size, f"{name}_encode_us": encode_us, f"{name}_decode_us": decode_us})
        print(f"{name:>8}: {size} bytes, encode {encode_us:.2f} us, decode {decode_us:.2f} us")
    finish(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
