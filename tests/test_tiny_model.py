"""The tiny test SavedModel and model fingerprints."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from transforms.embed import load_text_model
from transforms.models.fingerprint import FINGERPRINT_FILE, hash_saved_model, model_fingerprint
from transforms.models.tiny import build_tiny_text_model


def _embed(model, texts):
    return model(tf.constant(texts)).numpy()


def test_contract_float32_unit_rows(tiny_model):
    model = load_text_model(tiny_model)
    vectors = _embed(model, ["free money now", "", "ünïcödé 中文 😀"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_shared_words_are_closer_than_unrelated_text(tiny_model):
    model = load_text_model(tiny_model)
    spam, spam_again, unrelated = _embed(
        model, ["subscribe to my channel now", "please subscribe to my channel", "a lovely violin sonata"]
    )
    assert spam @ spam_again > spam @ unrelated + 0.2


def test_build_is_deterministic_and_fingerprinted(tmp_path):
    first = build_tiny_text_model(str(tmp_path / "a"), dim=8)
    second = build_tiny_text_model(str(tmp_path / "b"), dim=8)
    texts = ["same text", "another one"]
    np.testing.assert_array_equal(_embed(load_text_model(first), texts), _embed(load_text_model(second), texts))
    assert model_fingerprint(first) == model_fingerprint(second)
    assert model_fingerprint(first).startswith("tiny-text-8:")
    assert model_fingerprint(first) != model_fingerprint(build_tiny_text_model(str(tmp_path / "c"), dim=9))


def test_rejects_degenerate_dimension(tmp_path):
    with pytest.raises(ValueError, match="dim=1"):
        build_tiny_text_model(str(tmp_path / "m"), dim=1)


def test_fingerprint_without_record_hashes_the_saved_model(tmp_path):
    path = build_tiny_text_model(str(tmp_path / "m"), dim=4)
    recorded = model_fingerprint(path)
    os.remove(os.path.join(path, FINGERPRINT_FILE))
    hashed = model_fingerprint(path)
    assert hashed.startswith("sha256:") and hashed != recorded
    assert hashed == hash_saved_model(path)
    with open(os.path.join(path, "variables", os.listdir(os.path.join(path, "variables"))[0]), "ab") as handle:
        handle.write(b"\0")
    assert model_fingerprint(path) != hashed


def test_fingerprint_of_handle_and_of_non_model(tmp_path):
    assert model_fingerprint("https://tfhub.dev/x/y/1") == "https://tfhub.dev/x/y/1"
    with pytest.raises(ValueError, match="saved_model.pb"):
        model_fingerprint(str(tmp_path))


def test_fingerprint_record_is_json_with_builder_version(tiny_model):
    with open(os.path.join(tiny_model, FINGERPRINT_FILE), encoding="utf-8") as handle:
        record = json.load(handle)
    assert set(record) >= {"fingerprint", "builder_version", "source_sha256"}
