"""A tiny, deterministic image feature-vector SavedModel: a stand-in for a TF-Hub image model.

Same contract as TF-Hub's image feature-vector models (``float32 [None, H, W, 3]`` in ``[0, 1]``
-> ``float32 [None, dim]``, loadable with ``hub.load``, ``H`` and ``W`` in the call signature),
built in about a second and with no download: each image is average-pooled to a 4x4 grid per
channel, centred on grey (0.5), and multiplied by a fixed seeded random projection. Images with
similar coarse layouts therefore get similar vectors. It knows nothing about objects: it is a
stand-in for tests and examples, not a pre-trained model.

    python -m transforms.models.tiny_image OUT_DIR [--size 16] [--dim 32]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from transforms.models.fingerprint import FINGERPRINT_FILE

TINY_IMAGE_BUILDER_VERSION = "tiny-image-1"
GRID = 4
_SEED = 20240602


class TinyImageEmbedder(tf.Module):
    """4x4 average pooling + a seeded random projection.

    Args:
        size: Input height and width (a multiple of 4).
        dim: Output dimension.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__(name="tiny_image_embedder")
        rng = np.random.default_rng(_SEED + dim)
        table = (rng.standard_normal((GRID * GRID * 3, dim)) / np.sqrt(dim)).astype(np.float32)
        self.projection = tf.Variable(table, trainable=False, name="projection")
        self.size = size
        self.__call__ = tf.function(
            self._embed, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")]
        )

    def _embed(self, images: tf.Tensor) -> tf.Tensor:
        pooled = tf.nn.avg_pool2d(images, ksize=self.size // GRID, strides=self.size // GRID, padding="VALID")
        flat = tf.reshape(pooled - 0.5, [-1, GRID * GRID * 3])
        return tf.matmul(flat, self.projection)


def build_tiny_image_model(out_dir: str, size: int = 16, dim: int = 32) -> str:
    """Saves the tiny image embedder (and its ``fingerprint.json``) into ``out_dir``.

    Args:
        out_dir: Destination directory (created; an existing build is overwritten).
        size: Input height and width, a positive multiple of 4.
        dim: Output dimension, >= 2.

    Returns:
        ``out_dir``.

    Raises:
        ValueError: For a ``size`` that is not a positive multiple of 4, or ``dim`` < 2.
    """
    if size < GRID or size % GRID:
        raise ValueError(f"size={size} must be a positive multiple of {GRID} (default 16)")
    if dim < 2:
        raise ValueError(f"dim={dim} is too small for a cosine space; use dim >= 2 (default 32)")
    module = TinyImageEmbedder(size, dim)
    tf.saved_model.save(module, out_dir, signatures={"serving_default": module.__call__})
    weights_sha = hashlib.sha256(module.projection.numpy().tobytes()).hexdigest()
    record = {
        "fingerprint": f"tiny-image-{size}-{dim}:"
        + hashlib.sha256((TINY_IMAGE_BUILDER_VERSION + weights_sha).encode()).hexdigest()[:32],
        "builder_version": TINY_IMAGE_BUILDER_VERSION,
        "source_sha256": weights_sha,
        "source": "seeded random projection of 4x4 average-pooled pixels",
    }
    with open(os.path.join(out_dir, FINGERPRINT_FILE), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
    return out_dir


def main() -> None:
    """Command line: build the tiny image model into a directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--dim", type=int, default=32)
    args = parser.parse_args()
    print(build_tiny_image_model(args.out_dir, args.size, args.dim))


if __name__ == "__main__":
    main()
