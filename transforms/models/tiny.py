"""A tiny, fast, deterministic text-embedding SavedModel for tests.

Same contract as the MiniLM model (``tf.string [None]`` -> ``float32 [None, dim]``, unit L2
norm, loadable with ``hub.load``), but built in about a second: each text is the sum of fixed
seeded random vectors of its lower-cased words and character trigrams (hashed into buckets with
``tf.strings.to_hash_bucket_fast``) plus a constant bias vector, L2-normalised. Texts that share
words or trigrams therefore get similar vectors, and the empty string gets the bias direction.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from transforms.models.fingerprint import FINGERPRINT_FILE

TINY_BUILDER_VERSION = "tiny-text-2"
NUM_BUCKETS = 4096
_SEED = 20240601


class TinyTextEmbedder(tf.Module):
    """Hashed words + character trigrams through a seeded random projection.

    Args:
        dim: Output dimension.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(name="tiny_text_embedder")
        rng = np.random.default_rng(_SEED + dim)
        table = (rng.standard_normal((NUM_BUCKETS + 1, dim)) / np.sqrt(dim)).astype(np.float32)
        self.projection = tf.Variable(table, trainable=False, name="projection")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        """Embeds raw strings: ``tf.string [None]`` -> ``float32 [None, dim]``, unit norm."""
        lowered = tf.strings.lower(texts, encoding="utf-8")
        words = tf.strings.split(lowered)
        chars = tf.strings.unicode_split(tf.strings.join([" ", lowered, " "]), "UTF-8")
        trigrams = tf.strings.ngrams(chars, 3, separator="")
        features = tf.concat([words, trigrams], axis=1)
        buckets = tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, features, NUM_BUCKETS)
        summed = tf.reduce_sum(tf.gather(self.projection, buckets), axis=1)
        bias = 0.5 * self.projection[NUM_BUCKETS][tf.newaxis, :]
        return tf.math.l2_normalize(summed + bias, axis=-1)


def build_tiny_text_model(out_dir: str, dim: int = 32) -> str:
    """Saves the tiny embedder (and its ``fingerprint.json``) into ``out_dir``.

    Args:
        out_dir: Destination directory (created; an existing build is overwritten).
        dim: Output dimension, >= 2.

    Returns:
        ``out_dir``.

    Raises:
        ValueError: When ``dim`` < 2.
    """
    if dim < 2:
        raise ValueError(f"dim={dim} is too small for a cosine space; use dim >= 2 (default 32)")
    module = TinyTextEmbedder(dim)
    tf.saved_model.save(module, out_dir, signatures={"serving_default": module.__call__})
    weights_sha = hashlib.sha256(module.projection.numpy().tobytes()).hexdigest()
    record = {
        "fingerprint": f"tiny-text-{dim}:{hashlib.sha256((TINY_BUILDER_VERSION + weights_sha).encode()).hexdigest()[:32]}",
        "builder_version": TINY_BUILDER_VERSION,
        "source_sha256": weights_sha,
        "source": "seeded random projection",
    }
    with open(os.path.join(out_dir, FINGERPRINT_FILE), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
    return out_dir
