"""The embed stage: model handler as a plain object, EmbedTexts under FnApiRunner, preflight."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import BeamAssertException, assert_that

from transforms.embed import (
    EmbedConfig,
    EmbedTexts,
    TextEmbeddingModelHandler,
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
