"""all-MiniLM-L6-v2 built into a TF-Hub SavedModel: contract, tokenizer rules, numpy cross-check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.model_fixtures import minilm_model_path
from transforms.embed import load_text_model
from transforms.models import build_minilm as builder
from transforms.models.fingerprint import model_fingerprint
from transforms.models.minilm import load_source
from transforms.models.tokenizer import basic_tokenize

LONG_TEXT = " ".join(f"word{i % 97} and more" for i in range(300))


@pytest.fixture(scope="module")
def minilm(tmp_path_factory) -> str:
    return minilm_model_path(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(minilm):
    return load_text_model(minilm)


def test_build_is_cached_and_fingerprinted(minilm, capsys):
    graph = os.path.join(minilm, "saved_model.pb")
    before = os.stat(graph).st_mtime_ns
    start = time.perf_counter()
    assert builder.main([minilm]) == 0
    assert time.perf_counter() - start < 5.0
    assert "up to date" in capsys.readouterr().out
    assert os.stat(graph).st_mtime_ns == before
    expected = builder.expected_fingerprint(builder.default_source_dir())
    assert model_fingerprint(minilm) == expected["fingerprint"]
    assert expected["builder_version"] == builder.BUILDER_VERSION


def test_build_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match="--force"):
        builder.build_minilm(str(tmp_path))


@pytest.mark.parametrize(
    "text, words",
    [
        ("Café, naïve!", ["cafe", ",", "naive", "!"]),
        ("我爱NLP", ["我", "爱", "nlp"]),
        ("a\x00b\u200bc\x07d", ["abcd"]),
        ("tab\tsep\nline\u2028para\u00a0nbsp", ["tab", "sep", "line", "para", "nbsp"]),
        ("$5+3=<8>", ["$", "5", "+", "3", "=", "<", "8", ">"]),
        ("ﬁne ＡＢ", ["ﬁne", "ａｂ"]),
        ("İSTANBUL", ["istanbul"]),
        ("[CLS] hi [mask]", ["[CLS]", "hi", "[", "mask", "]"]),
        ("", []),
    ],
)
def test_basic_tokenizer_follows_hugging_face_rules(text, words):
    got = [w.decode("utf-8") for w in basic_tokenize(tf.constant([text]))[0].numpy()]
    assert got == words


def test_fresh_process_hub_load_and_keras_layer(minilm):
    script = f"""
import json, numpy as np, tensorflow as tf, tensorflow_text, tensorflow_hub as hub, tf_keras
path = {minilm!r}
texts = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today.",
         "", {LONG_TEXT!r}]
model = hub.load(path)
v = model(tf.constant(texts)).numpy()
layer = hub.KerasLayer(path)
inputs = tf_keras.Input(shape=[], dtype=tf.string)
keras_model = tf_keras.Model(inputs, layer(inputs))
k = keras_model.predict(tf.constant(texts), verbose=0)
print(json.dumps({{"dtype": str(v.dtype), "shape": list(v.shape), "norms": np.linalg.norm(v, axis=1).tolist(),
    "para": float(v[0] @ v[1]), "unrelated": float(v[0] @ v[2]), "keras_shape": list(k.shape),
    "keras_out_shape": keras_model.output_shape[1:], "keras_max_diff": float(np.abs(k - v).max()),
    "lengths": model.tokenize(tf.constant(texts))["lengths"].numpy().tolist()}}))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["dtype"] == "float32" and out["shape"] == [5, 384]
    np.testing.assert_allclose(out["norms"], 1.0, atol=1e-5)
    assert out["para"] > 0.7 > 0.2 > out["unrelated"]
    assert out["keras_shape"] == [5, 384] and out["keras_out_shape"] == [384]
    assert out["keras_max_diff"] < 1e-5
    assert out["lengths"][3] == 2 and out["lengths"][4] == 256


def test_truncation_ignores_text_beyond_256_wordpieces(loaded):
    ids = loaded.tokenize(tf.constant([LONG_TEXT]))["input_ids"].numpy()[0]
    assert ids.shape == (256,) and ids[0] == 101 and ids[-1] == 102
    long, longer = loaded(tf.constant([LONG_TEXT, LONG_TEXT + " completely different ending"])).numpy()
    np.testing.assert_allclose(long, longer, atol=1e-6)
    assert np.isclose(np.linalg.norm(long), 1.0, atol=1e-5)


def _layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def numpy_sentence_embedding(weights, ids):
    """Plain-numpy BERT forward pass + mean pooling + L2 norm for one unpadded id sequence."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    length, heads = len(ids), 12
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
    x = _layer_norm(x + w["embeddings.token_type_embeddings.weight"][0], w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for i in range(6):
        p = f"encoder.layer.{i}."
        lin = lambda h, name: h @ w[p + name + ".weight"].T + w[p + name + ".bias"]  # noqa: E731
        split = lambda h: h.reshape(length, heads, -1).transpose(1, 0, 2)  # noqa: E731
        q, k, v = (split(lin(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(length, -1)
        x = _layer_norm(lin(context, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        hidden = _gelu(lin(x, "intermediate.dense"))
        x = _layer_norm(lin(hidden, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_matches_numpy_forward_pass_from_safetensors(loaded):
    weights, _, _ = load_source(builder.default_source_dir())
    texts = ["Hello, world!", "Crème brûlée — déjà vu 😀", "", "who founded the people 's temple commune ?"]
    tokens = loaded.tokenize(tf.constant(texts))
    ids, lengths = tokens["input_ids"].numpy(), tokens["lengths"].numpy()
    vectors = loaded(tf.constant(texts)).numpy()
    for row, text in enumerate(texts):
        expected = numpy_sentence_embedding(weights, ids[row, : lengths[row]])
        assert float(vectors[row] @ expected) > 0.99999, text
