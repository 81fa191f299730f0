"""Renders scikit-learn's bundled 8x8 digits (0 and 1) into the example's data files.

    python -m examples.digits.render_data

Writes ``data/digits.parquet`` (``id``, ``image``: 8x8 grey PNG bytes, ``pixels``: the 64
intensities scaled to [0, 1]) and ``data/gold.csv`` (``id,label``; read only by ``run.py`` to
score the labels, never by the pipeline or the LFs). See ``data/SOURCE.md`` for attribution.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = (0, 1)


def main() -> None:
    """Writes the two data files."""
    digits = load_digits()
    keep = np.isin(digits.target, DIGITS)
    images = digits.images[keep] / 16.0
    labels = digits.target[keep]
    ids = [f"digit{index:04d}" for index in np.flatnonzero(keep)]
    pngs = [tf.io.encode_png((image[:, :, None] * 255).round().astype(np.uint8)).numpy() for image in images]
    table = pa.table(
        {
            "id": ids,
            "image": pa.array(pngs, pa.binary()),
            "pixels": pa.array([image.ravel().round(4).tolist() for image in images], pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, os.path.join(HERE, "data", "digits.parquet"), compression="zstd")
    with open(os.path.join(HERE, "data", "gold.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label"])
        writer.writerows(zip(ids, (DIGITS.index(int(label)) for label in labels)))
    print(f"{len(ids)} digits written to {os.path.join(HERE, 'data')}")


if __name__ == "__main__":
    main()
