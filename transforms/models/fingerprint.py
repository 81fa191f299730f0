"""A stable identity for an embedding model: the key the embedding cache is stored under.

>>> model_fingerprint("https://tfhub.dev/google/universal-sentence-encoder/4")
'https://tfhub.dev/google/universal-sentence-encoder/4'
"""

from __future__ import annotations

import hashlib
import json
import posixpath

import tensorflow as tf

FINGERPRINT_FILE = "fingerprint.json"
_CHUNK_BYTES = 1 << 20


def is_hub_handle(model_path: str) -> bool:
    """Tells whether ``model_path`` is a TF-Hub/Kaggle handle rather than a file path.

    Args:
        model_path: A local path, a ``gs://`` path or an ``http(s)://`` handle.

    Returns:
        True for ``http://`` and ``https://`` handles.
    """
    return model_path.startswith(("http://", "https://"))


def _update_with_file(digest: "hashlib._Hash", path: str) -> None:
    with tf.io.gfile.GFile(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)


def hash_saved_model(model_path: str) -> str:
    """Hashes ``saved_model.pb`` and every file under ``variables/`` (works for ``gs://``).

    Args:
        model_path: A SavedModel directory.

    Returns:
        ``"sha256:<hex>"``.

    Raises:
        ValueError: When the directory holds no ``saved_model.pb``.
    """
    graph_path = posixpath.join(model_path, "saved_model.pb")
    if not tf.io.gfile.exists(graph_path):
        raise ValueError(
            f"{model_path!r} has no saved_model.pb: a model fingerprint needs a SavedModel directory, "
            "a TF-Hub handle (https://...), or a directory built by "
            "`python -m transforms.models.build_minilm OUT_DIR`"
        )
    digest = hashlib.sha256()
    files = [graph_path]
    variables_dir = posixpath.join(model_path, "variables")
    if tf.io.gfile.isdir(variables_dir):
        files += sorted(posixpath.join(variables_dir, name) for name in tf.io.gfile.listdir(variables_dir))
    for path in files:
        digest.update(posixpath.relpath(path, model_path).encode("utf-8") + b"\0")
        _update_with_file(digest, path)
    return f"sha256:{digest.hexdigest()}"


def model_fingerprint(model_path: str) -> str:
    """Returns the identity of an embedding model.

    A directory built by this project carries ``fingerprint.json`` (hash of the source weights
    and the builder version) and that value is returned; any other SavedModel is hashed file by
    file; a hub handle is its own identity.

    Args:
        model_path: SavedModel directory (local or ``gs://``) or hub handle.

    Returns:
        The fingerprint string.
    """
    if is_hub_handle(model_path):
        return model_path
    recorded = posixpath.join(model_path, FINGERPRINT_FILE)
    if tf.io.gfile.exists(recorded):
        with tf.io.gfile.GFile(recorded, "r") as handle:
            return json.load(handle)["fingerprint"]
    return hash_saved_model(model_path)
