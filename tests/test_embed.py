"""The embed stage: model handler as a plain object, EmbedTexts under FnApiRunner, preflight."""

from __future__ import annotations

import os
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import BeamAssertException, assert_that

from transforms.embed import (
    EMBED_PRECISIONS,
    EmbedConfig,
    EmbedTexts,
    TextEmbeddingModelHandler,
    apply_precision,
    length_sorted_inference,
    load_text_model,
    preflight_model,
)

TEXTS = [
    "a much longer comment about subscribing to my channel for free stuff",
    "hi",
    "",
    "love this song",
    "check out my video http://example.com",
    "medium length text here",
]


def _direct(model_path, texts):
    model = load_text_model(model_path)
    return np.stack([model(tf.constant([text])).numpy()[0] for text in texts])


def test_handler_as_plain_object_keeps_input_order(tiny_model):
    handler = TextEmbeddingModelHandler(tiny_model, model_batch_size=2)
    model = handler.load_model()
    vectors = list(handler.run_inference(TEXTS, model))
    assert len(vectors) == len(TEXTS)
    assert all(v.dtype == np.float32 and v.shape == (32,) for v in vectors)
    np.testing.assert_allclose(np.stack(vectors), _direct(tiny_model, TEXTS), atol=1e-6)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 64, "max_batch_size": 256}
    assert handler.get_num_bytes(["ab", "é"]) == 4


def test_length_sorted_inference_restores_order_across_chunks(tiny_model):
    model = load_text_model(tiny_model)
    unsorted = list(reversed(TEXTS)) * 3
    vectors = length_sorted_inference(model, unsorted, {"model_batch_size": 4})
    np.testing.assert_allclose(vectors, _direct(tiny_model, unsorted), atol=1e-6)


def test_injected_inference_fn_is_used(tiny_model):
    calls = []

    def inference_fn(model, texts, inference_args):
        calls.append((list(texts), inference_args["model_batch_size"]))
        return np.ones((len(texts), 3), dtype=np.float32)

    handler = TextEmbeddingModelHandler(tiny_model, model_batch_size=5, inference_fn=inference_fn)
    out = list(handler.run_inference(["a", "b"], model=None))
    assert calls == [(["a", "b"], 5)]
    assert [v.tolist() for v in out] == [[1.0, 1.0, 1.0]] * 2


def test_handler_rejects_non_string_and_bad_batch_sizes(tiny_model):
    handler = TextEmbeddingModelHandler(tiny_model)
    with pytest.raises(TypeError, match="NoneType, not str"):
        handler.run_inference(["ok", None], model=None)
    with pytest.raises(ValueError, match="min=10, max=5"):
        TextEmbeddingModelHandler(tiny_model, min_batch_size=10, max_batch_size=5)
    with pytest.raises(ValueError, match="model_batch_size=0"):
        TextEmbeddingModelHandler(tiny_model, model_batch_size=0)


def _close_to(expected):
    def check(actual):
        got = dict(actual)
        if sorted(got) != sorted(expected):
            raise BeamAssertException(f"ids {sorted(got)} != {sorted(expected)}")
        for doc_id, vector in got.items():
            if vector.dtype != np.float32 or not np.allclose(vector, expected[doc_id], atol=1e-6):
                raise BeamAssertException(f"{doc_id}: {vector} != {expected[doc_id]}")

    return check


def test_embed_texts_under_fn_api_runner(tiny_model):
    docs = [(f"doc{i}", text) for i, text in enumerate(TEXTS)]
    expected = dict(zip([d for d, _ in docs], _direct(tiny_model, TEXTS)))
    config = EmbedConfig(tiny_model, min_batch_size=1, max_batch_size=4, model_batch_size=2)
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        embedded = pipeline | beam.Create(docs) | EmbedTexts(config)
        assert_that(embedded, _close_to(expected))


def test_embed_config_is_frozen(tiny_model):
    config = EmbedConfig(tiny_model)
    with pytest.raises(AttributeError):
        config.model_path = "elsewhere"  # type: ignore[misc]


def test_preflight_returns_dimension(tiny_model):
    assert preflight_model(tiny_model) == 32


def test_preflight_wrong_path_names_path_and_fix(tmp_path):
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(ValueError) as info:
        preflight_model(missing)
    message = str(info.value)
    assert missing in message
    assert "tf.string [None] -> float32 [None, d]" in message
    assert "python -m transforms.models.build_minilm" in message


class _WrongRank(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        return tf.cast(tf.strings.length(texts), tf.float32)


def test_preflight_rejects_model_with_wrong_output_shape(tmp_path):
    path = str(tmp_path / "wrong_rank")
    tf.saved_model.save(_WrongRank(), path)
    with pytest.raises(ValueError, match=r"returned shape \[2\] for 2 strings, not \[2, d\]"):
        preflight_model(path)


class _Float64(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        return tf.ones([tf.shape(texts)[0], 3], tf.float64)


def test_preflight_rejects_float64_model(tmp_path):
    path = str(tmp_path / "float64")
    tf.saved_model.save(_Float64(), path)
    with pytest.raises(ValueError, match="returned dtype float64, not float32"):
        preflight_model(path)


class _MatmulEmbedder(tf.Module):
    """Hashed words through two dense layers: a model whose matmuls the bf16 rewrite converts."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(7)
        self.table = tf.Variable(rng.standard_normal((512, 64)).astype(np.float32), trainable=False)
        self.dense = tf.Variable((rng.standard_normal((64, 64)) / 8).astype(np.float32), trainable=False)
        self.out = tf.Variable((rng.standard_normal((64, 32)) / 8).astype(np.float32), trainable=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        words = tf.strings.split(tf.strings.join([texts, " pad"]))
        pooled = tf.reduce_sum(tf.gather(self.table, tf.ragged.map_flat_values(tf.strings.to_hash_bucket_fast, words, 512)), axis=1)
        hidden = tf.nn.relu(tf.matmul(pooled, self.dense))
        return tf.math.l2_normalize(tf.matmul(hidden, self.out), axis=-1)


@pytest.fixture
def matmul_model(tmp_path):
    module = _MatmulEmbedder()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.__call__})
    yield str(tmp_path)
    apply_precision("fp32")


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_PRECISION_RUN = """
import sys
import numpy as np
import tensorflow as tf
from transforms.embed import EmbedConfig

model, out = sys.argv[1], sys.argv[2]
texts = [f"text number {i} with words {i % 7}" for i in range(40)]
vectors, flags = [], []
for precision in ("fp32", "bf16", "fp32"):
    handler = EmbedConfig(model, model_batch_size=8, precision=precision).handler()
    vectors.append(np.stack(handler.run_inference(texts, handler.load_model())))
    flags.append(bool(tf.config.optimizer.get_experimental_options().get("auto_mixed_precision_onednn_bfloat16")))
np.savez(out, fp32=vectors[0], bf16=vectors[1], fp32_again=vectors[2], flags=np.array(flags))
"""


@pytest.mark.skipif(not _cpu_has_bf16(), reason="CPU lacks AVX512_BF16/AMX-BF16: oneDNN would not run bf16 kernels")
def test_bf16_precision_really_changes_the_matmuls(matmul_model, tmp_path):
    # A fresh process, as a worker is: the grappler option is process-wide, and a process that
    # already ran other TF graphs (the rest of the suite) may keep their optimised functions.
    out = tmp_path / "vectors.npz"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", _PRECISION_RUN, matmul_model, str(out)], check=True, env=env, cwd=repo)
    run = np.load(out)
    assert run["flags"].tolist() == [False, True, False]
    np.testing.assert_array_equal(run["fp32_again"], run["fp32"])  # switching back restores exact fp32
    assert np.abs(run["bf16"] - run["fp32"]).max() > 1e-4  # bf16 kernels ran, not a silent fp32
    assert np.sum(run["bf16"] * run["fp32"], axis=1).min() > 0.99


def test_precision_is_validated_with_the_fix(tiny_model):
    assert EMBED_PRECISIONS == ("fp32", "bf16")
    with pytest.raises(ValueError, match="'fp16' is not one of .*use 'fp32'"):
        EmbedConfig(tiny_model, precision="fp16")
    with pytest.raises(ValueError, match="'int8' is not one of"):
        TextEmbeddingModelHandler(tiny_model, precision="int8")
    assert EmbedConfig(tiny_model).precision == "fp32"
