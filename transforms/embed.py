"""The embed stage: ``(doc_id, text)`` -> ``(doc_id, float32 [d])`` with RunInference.

The model is any TF-Hub text-embedding SavedModel mapping ``tf.string [None]`` to
``float32 [None, d]`` (a local directory, a ``gs://`` path or a hub handle), such as the one
built by ``python -m transforms.models.build_minilm models/all-MiniLM-L6-v2``. It is loaded
once per worker by RunInference (the model never pickles; only its path travels).

Within a RunInference batch the texts are sorted by length and fed to the model in chunks of
``model_batch_size``, so that each chunk pads only to its own longest text; the original order
is restored afterwards.

``precision="bf16"`` turns on TF's oneDNN bfloat16 auto-mixed-precision graph rewrite in the
worker process, so that the matmuls run as AVX512_BF16/AMX bf16 kernels on CPUs that have them
(a CPU-only rewrite: ops placed on a GPU are left alone). Nothing here pins a device: TF places
the model on a GPU when the worker has one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

InferenceFn = Callable[[Any, Sequence[str], Optional[dict[str, Any]]], np.ndarray]

BUILD_HINT = "python -m transforms.models.build_minilm models/all-MiniLM-L6-v2"
EXPECTED_MODEL = "a TF-Hub text-embedding SavedModel mapping tf.string [None] -> float32 [None, d]"
DEFAULT_MODEL_BATCH_SIZE = 16
EMBED_PRECISIONS = ("fp32", "bf16")
_ONEDNN_BF16_OPTION = "auto_mixed_precision_onednn_bfloat16"


def apply_precision(precision: str) -> None:
    """Sets this process's TF matmul precision for graphs instantiated from now on.

    ``"bf16"`` enables TF's oneDNN bfloat16 auto-mixed-precision rewrite (a process-wide
    grappler option); ``"fp32"`` disables it. Functions already run are re-optimised on their
    next call.

    Args:
        precision: One of :data:`EMBED_PRECISIONS`.

    Raises:
        ValueError: When ``precision`` is not one of them.
    """
    _check_precision(precision)
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({_ONEDNN_BF16_OPTION: precision == "bf16"})


def _check_precision(precision: str) -> None:
    if precision not in EMBED_PRECISIONS:
        raise ValueError(
            f"embed precision {precision!r} is not one of {EMBED_PRECISIONS}; use 'fp32' (exact, the "
            "default) or 'bf16' (oneDNN bfloat16 matmuls on CPUs with AVX512_BF16/AMX)"
        )


def _call_model(model: Any, texts: Sequence[str]) -> np.ndarray:
    import tensorflow as tf

    return np.asarray(model(tf.constant(list(texts), dtype=tf.string)))


def length_sorted_inference(
    model: Any,
    texts: Sequence[str],
    inference_args: Optional[dict[str, Any]] = None,
) -> np.ndarray:
    """Embeds ``texts`` in length-sorted chunks and returns the vectors in input order.

    Args:
        model: A loaded model, callable on a ``tf.string [n]`` tensor.
        texts: The batch.
        inference_args: Optional ``{"model_batch_size": int}`` (default 16).

    Returns:
        ``float32 [len(texts), d]``.
    """
    chunk = int((inference_args or {}).get("model_batch_size", DEFAULT_MODEL_BATCH_SIZE))
    order = np.argsort([len(text) for text in texts], kind="stable")
    sorted_texts = [texts[i] for i in order]
    parts = [
        _call_model(model, sorted_texts[start : start + chunk]).astype(np.float32, copy=False)
        for start in range(0, len(texts), chunk)
    ]
    vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    vectors[order] = np.concatenate(parts, axis=0)
    return vectors


def load_text_model(model_path: str) -> Any:
    """Loads a text-embedding SavedModel with TF-Hub (tokenizer ops registered first).

    Args:
        model_path: SavedModel directory, ``gs://`` path or hub handle.

    Returns:
        The loaded object (callable on ``tf.string [None]``).
    """
    import tensorflow_text  # noqa: F401  (registers the ops the saved tokenizer needs)
    import tensorflow_hub as hub

    return hub.load(model_path)


class TextEmbeddingModelHandler(ModelHandler[str, np.ndarray, Any]):
    """RunInference handler for TF-Hub text-embedding SavedModels.

    Args:
        model_path: SavedModel directory, ``gs://`` path or hub handle.
        min_batch_size: Smallest batch RunInference forms.
        max_batch_size: Largest batch RunInference forms.
        model_batch_size: Texts per model call inside a batch (after sorting by length).
        inference_fn: ``fn(model, texts, inference_args) -> float32 [n, d]``; defaults to
            :func:`length_sorted_inference`.
        precision: One of :data:`EMBED_PRECISIONS`, applied with :func:`apply_precision` when
            the model is loaded.
    """

    def __init__(
        self,
        model_path: str,
        *,
        min_batch_size: int = 64,
        max_batch_size: int = 256,
        model_batch_size: int = DEFAULT_MODEL_BATCH_SIZE,
        inference_fn: Optional[InferenceFn] = None,
        precision: str = "fp32",
    ) -> None:
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(
                f"batch sizes min={min_batch_size}, max={max_batch_size} break 1 <= min <= max; "
                "pass e.g. min_batch_size=64, max_batch_size=256"
            )
        if model_batch_size < 1:
            raise ValueError(f"model_batch_size={model_batch_size} must be >= 1; the default is {DEFAULT_MODEL_BATCH_SIZE}")
        _check_precision(precision)
        super().__init__()
        self._model_path = model_path
        self._precision = precision
        self._min_batch_size = min_batch_size
        self._max_batch_size = max_batch_size
        self._model_batch_size = model_batch_size
        self._inference_fn = inference_fn or length_sorted_inference

    def load_model(self) -> Any:
        """Loads the model (once per worker: RunInference shares it between threads).

        Sets the worker process's matmul precision first (see :func:`apply_precision`).
        """
        apply_precision(self._precision)
        return load_text_model(self._model_path)

    def run_inference(
        self,
        batch: Sequence[str],
        model: Any,
        inference_args: Optional[dict[str, Any]] = None,
    ) -> Iterable[np.ndarray]:
        """Embeds a batch of texts.

        Args:
            batch: The texts.
            model: The loaded model.
            inference_args: Passed to the inference fn; ``model_batch_size`` defaults to the
                handler's.

        Returns:
            One ``float32 [d]`` vector per text, in input order.

        Raises:
            TypeError: When an element is not a ``str``.
        """
        for text in batch:
            if not isinstance(text, str):
                raise TypeError(
                    f"embed input {text!r} is a {type(text).__name__}, not str: the embed stage "
                    "takes (doc_id, text) pairs with str text; map missing text to '' upstream"
                )
        if not batch:
            return []
        args = {"model_batch_size": self._model_batch_size, **(inference_args or {})}
        return list(self._inference_fn(model, batch, args))

    def get_num_bytes(self, batch: Sequence[str]) -> int:
        """UTF-8 size of the batch (Beam's byte metric)."""
        return sum(len(text.encode("utf-8")) for text in batch)

    def batch_elements_kwargs(self) -> dict[str, int]:
        """Batch sizes for RunInference's BatchElements."""
        return {"min_batch_size": self._min_batch_size, "max_batch_size": self._max_batch_size}

    def get_metrics_namespace(self) -> str:
        """Namespace of Beam's inference metrics."""
        return "epoxy_embed"

    def update_model_path(self, model_path: Optional[str] = None) -> None:
        """Switches to a new model path (RunInference side-input model updates)."""
        if model_path:
            self._model_path = model_path


def preflight_model(model_path: str) -> int:
    """Loads the model in-process and checks its contract before a pipeline is launched.

    Args:
        model_path: SavedModel directory, ``gs://`` path or hub handle.

    Returns:
        The embedding dimension ``d``.

    Raises:
        ValueError: Naming the path, the expectation and the fix, on any failure.
    """

    def fail(problem: str, cause: Optional[BaseException] = None) -> ValueError:
        error = ValueError(
            f"embedding model {model_path!r}: {problem}; expected {EXPECTED_MODEL}. Fix: pass the "
            f"directory of such a model, e.g. build one with `{BUILD_HINT}`"
        )
        error.__cause__ = cause
        return error

    try:
        model = load_text_model(model_path)
    except Exception as error:  # noqa: BLE001 - any loader failure is reported the same way
        raise fail(f"could not be loaded ({type(error).__name__}: {str(error)[:300]})", error) from error
    try:
        vectors = _call_model(model, ["preflight check", "a second, longer preflight sentence"])
    except Exception as error:  # noqa: BLE001 - user model code may raise anything
        raise fail(f"failed on two short strings ({type(error).__name__}: {str(error)[:300]})", error) from error
    if vectors.ndim != 2 or vectors.shape[0] != 2 or vectors.shape[1] < 1:
        raise fail(f"returned shape {list(vectors.shape)} for 2 strings, not [2, d]")
    if vectors.dtype != np.float32:
        raise fail(f"returned dtype {vectors.dtype}, not float32")
    if not np.all(np.isfinite(vectors)):
        raise fail("returned non-finite values for two short strings")
    return int(vectors.shape[1])


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """Configuration of :class:`EmbedTexts`.

    Attributes:
        model_path: SavedModel directory, ``gs://`` path or hub handle.
        min_batch_size: Smallest RunInference batch.
        max_batch_size: Largest RunInference batch.
        model_batch_size: Texts per model call within a batch (after sorting by length).
        precision: ``"fp32"`` or ``"bf16"`` (oneDNN bfloat16 matmuls on CPU; measured in
            ``benchmarks/embed_throughput.py --variants fp32,bf16``, see docs/scale.md).
    """

    model_path: str
    min_batch_size: int = 64
    max_batch_size: int = 256
    model_batch_size: int = DEFAULT_MODEL_BATCH_SIZE
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _check_precision(self.precision)

    def handler(self) -> TextEmbeddingModelHandler:
        """The unkeyed model handler this configuration describes."""
        return TextEmbeddingModelHandler(
            self.model_path,
            min_batch_size=self.min_batch_size,
            max_batch_size=self.max_batch_size,
            model_batch_size=self.model_batch_size,
            precision=self.precision,
        )


class EmbedTexts(beam.PTransform):
    """``(doc_id, text)`` -> ``(doc_id, float32 [d])`` with RunInference.

    Args:
        config: The model path and batch sizes.
    """

    def __init__(self, config: EmbedConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        """Runs the keyed model handler over the documents."""
        return pcoll | "RunInference" >> RunInference(KeyedModelHandler(self._config.handler()))
