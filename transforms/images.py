"""The image embed stage (``--modality image``): decode, resize, RunInference a TF-Hub model.

The model is any TF-Hub image feature-vector SavedModel mapping ``float32 [None, H, W, 3]`` in
``[0, 1]`` to ``float32 [None, d]`` (e.g. ImageNet MobileNet V2 or EfficientNet feature-vector
models); ``H`` and ``W`` are read from its call signature (:func:`model_image_size`). It is
loaded once per worker with ``tensorflow_hub`` by RunInference; only its path travels.

A document's image (``doc["fields"][image_field]``) is encoded JPEG/PNG/GIF/BMP bytes (Parquet
``binary``, kept by the read stage as base64 text; base64 text in JSON Lines), or a local path or
``gs://`` URI of such a file: a value that decodes as base64 to bytes with a known image header
is the image, anything else is read as a path. :class:`DecodeImages` decodes and resizes it in
TensorFlow; an absent, unreadable or undecodable image sends the document to the dead letter
(stage ``embed``, causes ``missing_image``, ``unreadable_image``, ``undecodable_image``).
Feature vectors are L2-normalised for the kNN graph (an all-zero vector stays zero).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from transforms.core.vectors import unit_rows
from transforms.dead_letter import DEAD_LETTER_TAG
from transforms.vectors import DOCUMENTS_TAG, stage_dead_letter

PIXELS_TAG = "pixels"
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
DEFAULT_IMAGE_SIZE = (224, 224)  # when the model accepts any size ([None, None, None, 3])
EXPECTED_MODEL = "a TF-Hub image feature-vector SavedModel mapping float32 [None, H, W, 3] in [0, 1] -> float32 [None, d]"
ImageInferenceFn = Callable[[Any, Sequence[np.ndarray], Optional[dict[str, Any]]], np.ndarray]


def image_bytes(value: Any) -> bytes:
    """The encoded image held by a field value: base64 image bytes, raw bytes, or a path/URI.

    >>> image_bytes(base64.b64encode(b"\\x89PNG\\r\\n\\x1a\\nrest").decode())[:4]
    b'\\x89PNG'

    Raises:
        ValueError: For a value that is neither, or a path that cannot be read.
    """
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the image value {str(value)[:60]!r} is a {type(value).__name__}, not image bytes or a path")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded.startswith(IMAGE_MAGIC):
        return decoded
    try:
        with FileSystems.open(value) as handle:
            return handle.read()
    except Exception as error:  # noqa: BLE001 - any filesystem failure is the row's problem
        raise OSError(f"the image path {value[:200]!r} cannot be read ({type(error).__name__}: {str(error)[:200]})") from None


def decode_image(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """Decodes JPEG/PNG/GIF/BMP bytes to ``float32 [H, W, 3]`` in ``[0, 1]``, resized in TF.

    Raises:
        ValueError: When TensorFlow cannot decode the bytes.
    """
    import tensorflow as tf

    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", str(error).splitlines()[0])[:200]
        raise ValueError(f"{len(data)} bytes are no decodable JPEG/PNG/GIF/BMP ({reason})") from None
    pixels = tf.image.convert_image_dtype(image, tf.float32)
    return tf.image.resize(pixels, size, antialias=True).numpy().astype(np.float32)


class DecodeImagesFn(beam.DoFn):
    """A document → the document and ``(id, pixels)``, or one ``embed`` dead letter."""

    def __init__(self, field: str, size: tuple[int, int]) -> None:
        self._field = field
        self._size = tuple(size)

    def process(self, doc: Mapping[str, Any]) -> Iterator[Any]:
        value = (doc.get("fields") or {}).get(self._field)
        where = f"{doc.get('source', doc['id'])}: --image_field {self._field!r}"
        if value is None:
            yield stage_dead_letter(doc, "missing_image", f"{where} is absent or null; give every row an image")
            return
        try:
            pixels = decode_image(image_bytes(value), self._size)
        except OSError as error:
            yield stage_dead_letter(doc, "unreadable_image", f"{where}: {error}; fix the path or the access")
            return
        except ValueError as error:
            yield stage_dead_letter(doc, "undecodable_image", f"{where}: {error}; store JPEG or PNG bytes")
            return
        yield doc
        yield beam.pvalue.TaggedOutput(PIXELS_TAG, (doc["id"], pixels))


def load_image_model(model_path: str) -> Any:
    """Loads an image feature-vector SavedModel with ``tensorflow_hub.load``."""
    import tensorflow_hub as hub

    return hub.load(model_path)


def model_image_size(model: Any) -> tuple[int, int]:
    """``(H, W)`` from the model's ``[None, H, W, 3]`` call or serving signature.

    Returns :data:`DEFAULT_IMAGE_SIZE` when the signature leaves them open.

    Raises:
        ValueError: When no signature takes a ``[None, H, W, 3]`` tensor.
    """
    import tensorflow as tf

    structures = [fn.structured_input_signature for fn in getattr(getattr(model, "__call__", None), "concrete_functions", [])]
    structures += [fn.structured_input_signature for fn in getattr(model, "signatures", {}).values()]
    specs = [spec for spec in tf.nest.flatten(structures) if isinstance(spec, tf.TensorSpec)]
    images = [spec.shape for spec in specs if spec.shape.rank == 4 and spec.shape[-1] == 3]
    if not images:
        raise ValueError(f"no signature takes [None, H, W, 3] images (inputs: {[list(s.shape) for s in specs]})")
    height, width = images[0][1], images[0][2]
    return (int(height), int(width)) if height and width else DEFAULT_IMAGE_SIZE


def call_image_model(model: Any, images: Sequence[np.ndarray], inference_args: Optional[dict[str, Any]] = None) -> np.ndarray:
    """Runs the model on a batch of equal-size images: ``float32 [n, d]``."""
    import tensorflow as tf

    del inference_args
    return np.asarray(model(tf.constant(np.stack(images), tf.float32)), np.float32)


class ImageEmbeddingModelHandler(ModelHandler[np.ndarray, np.ndarray, Any]):
    """RunInference handler for TF-Hub image feature-vector SavedModels.

    Args:
        model_path: SavedModel directory, ``gs://`` path or hub handle.
        min_batch_size: Smallest batch RunInference forms.
        max_batch_size: Largest batch (all images have the model's size, so this bounds memory).
        inference_fn: ``fn(model, images, inference_args) -> float32 [n, d]``; defaults to
            :func:`call_image_model`. Its output is L2-normalised.
    """

    def __init__(
        self,
        model_path: str,
        *,
        min_batch_size: int = 8,
        max_batch_size: int = 64,
        inference_fn: Optional[ImageInferenceFn] = None,
    ) -> None:
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(f"batch sizes min={min_batch_size}, max={max_batch_size} break 1 <= min <= max; pass e.g. 8 and 64")
        super().__init__()
        self._model_path = model_path
        self._min_batch_size = min_batch_size
        self._max_batch_size = max_batch_size
        self._inference_fn = inference_fn or call_image_model

    def load_model(self) -> Any:
        """Loads the model (once per worker: RunInference shares it between threads)."""
        return load_image_model(self._model_path)

    def run_inference(self, batch: Sequence[np.ndarray], model: Any, inference_args: Optional[dict[str, Any]] = None) -> Iterable[np.ndarray]:
        """Embeds a batch of ``float32 [H, W, 3]`` images into unit vectors, in input order."""
        if not batch:
            return []
        return list(unit_rows(self._inference_fn(model, batch, inference_args)))

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        """Pixel bytes of the batch (Beam's byte metric)."""
        return sum(image.nbytes for image in batch)

    def batch_elements_kwargs(self) -> dict[str, int]:
        """Batch sizes for RunInference's BatchElements."""
        return {"min_batch_size": self._min_batch_size, "max_batch_size": self._max_batch_size}

    def get_metrics_namespace(self) -> str:
        """Namespace of Beam's inference metrics."""
        return "epoxy_embed_images"


def preflight_image_model(model_path: str) -> tuple[int, tuple[int, int]]:
    """Loads the model in-process, reads ``(H, W)`` and checks it on two grey images.

    Returns:
        ``(d, (H, W))``.

    Raises:
        ValueError: Naming the path, the expectation and the fix.
    """
    try:
        model = load_image_model(model_path)
        size = model_image_size(model)
        vectors = call_image_model(model, [np.full((*size, 3), 0.5, np.float32)] * 2)
    except Exception as error:  # noqa: BLE001 - loader and user model code may raise anything
        raise ValueError(
            f"image model {model_path!r} failed ({type(error).__name__}: {str(error)[:300]}); expected "
            f"{EXPECTED_MODEL}. Fix: pass such a model, e.g. a TF-Hub ImageNet MobileNet V2 feature-vector handle"
        ) from error
    if vectors.ndim != 2 or vectors.shape[0] != 2 or not np.all(np.isfinite(vectors)):
        raise ValueError(f"image model {model_path!r} returned shape {list(vectors.shape)} (or non-finite values) for 2 images; expected {EXPECTED_MODEL}")
    return int(vectors.shape[1]), size


@dataclasses.dataclass(frozen=True)
class ImageEmbedConfig:
    """Configuration of :class:`EmbedImages`.

    Attributes:
        model_path: SavedModel directory, ``gs://`` path or hub handle.
        image_field: The field holding each row's image.
        image_size: ``(H, W)`` of the model's input (from :func:`preflight_image_model`).
        min_batch_size: Smallest RunInference batch.
        max_batch_size: Largest RunInference batch.
    """

    model_path: str
    image_field: str
    image_size: tuple[int, int]
    min_batch_size: int = 8
    max_batch_size: int = 64


class EmbedImages(beam.PTransform):
    """Documents → ``{"documents", "embeddings": (id, unit float32 [d]), DEAD_LETTER_TAG}``."""

    def __init__(self, config: ImageEmbedConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, docs: beam.PCollection) -> dict[str, beam.PCollection]:
        config = self._config
        decoded = docs | "DecodeImages" >> beam.ParDo(DecodeImagesFn(config.image_field, config.image_size)).with_outputs(
            PIXELS_TAG, DEAD_LETTER_TAG, main=DOCUMENTS_TAG
        )
        handler = ImageEmbeddingModelHandler(
            config.model_path, min_batch_size=config.min_batch_size, max_batch_size=config.max_batch_size
        )
        embeddings = decoded[PIXELS_TAG] | "RunInference" >> RunInference(KeyedModelHandler(handler))
        return {DOCUMENTS_TAG: decoded[DOCUMENTS_TAG], "embeddings": embeddings, DEAD_LETTER_TAG: decoded[DEAD_LETTER_TAG]}
