"""Where a non-text corpus gets its vectors: a precomputed field, or an image model.

``text`` (the default) embeds the text with the text model (:mod:`transforms.embed`). With
``embedding_field`` the vectors come from the rows (:mod:`transforms.vectors`); with modality
``image`` an image model embeds ``image_field`` (:mod:`transforms.images`). Both non-text paths
produce what the cached text path produces, so the graph, the cache and the labels are shared:
the embedding cache keys these vectors by :func:`~transforms.core.vectors.vector_hash`, and the
graph cache reuses a document's neighbours while its vector hash is unchanged (image vectors are
recomputed each run).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.core.vectors import dominant_dimension, vector_hash, vector_length
from transforms.dead_letter import DEAD_LETTER_TAG
from transforms.images import EmbedImages, ImageEmbedConfig, preflight_image_model
from transforms.io import CorpusSource, parse_file, preflight_source
from transforms.vectors import DOCUMENTS_TAG, EMBEDDINGS_TAG, ReadVectors

MODALITIES = ("text", "image")
ROWS_FOR_DIMENSION = 1000  # rows preflight reads to fix the dimension of --embedding_field


@dataclasses.dataclass(frozen=True)
class ModalityConfig:
    """How documents become vectors.

    Attributes:
        modality: ``text`` or ``image``.
        embedding_field: The field of precomputed vectors ("" = compute them).
        image_field: The image field (modality ``image``).
        model_path: The text or image model.
        dim: The vector dimension (set by :func:`preflight_embedding`).
        image_size: The image model's ``(H, W)`` (set by :func:`preflight_embedding`).
    """

    modality: str = "text"
    embedding_field: str = ""
    image_field: str = "image"
    model_path: str = ""
    dim: int = 0
    image_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"--modality={self.modality!r} is not one of {MODALITIES}")
        if self.embedding_field and self.modality != "text":
            raise ValueError(
                f"--embedding_field {self.embedding_field!r} with --modality={self.modality}: "
                "precomputed vectors need no model; drop one of the two"
            )
        if self.modality == "image" and not self.image_field:
            raise ValueError("--modality image needs --image_field, the column holding each row's image")

    @property
    def non_text(self) -> bool:
        """Whether the vectors come from anything but the text."""
        return bool(self.embedding_field) or self.modality != "text"


def _row_vector_lengths(source: CorpusSource, field: str) -> list[int | None]:
    lengths: list[int | None] = []
    for path in preflight_source(source):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            for item in parse_file(path, stream, source):
                if isinstance(item, dict):
                    lengths.append(vector_length(item["fields"].get(field)))
                if len(lengths) >= ROWS_FOR_DIMENSION:
                    return lengths
    return lengths


def preflight_embedding(config: ModalityConfig, source: CorpusSource) -> tuple[ModalityConfig, str]:
    """Fixes the dimension (and image size) of a non-text run and its cache fingerprint.

    Args:
        config: A non-text configuration.
        source: The corpus (for ``embedding_field``: the first rows fix the dimension).

    Returns:
        ``(config with dim and image_size set, fingerprint keying the embedding cache)``.

    Raises:
        ValueError: When no row has a valid vector, or the image model fails its check.
    """
    if config.embedding_field:
        lengths = _row_vector_lengths(source, config.embedding_field)
        dim = dominant_dimension(lengths)
        if dim is None:
            raise ValueError(
                f"--embedding_field {config.embedding_field!r} holds no list of numbers in the first "
                f"{len(lengths)} rows of {source.pattern!r}: name the column of precomputed vectors"
            )
        key = f"embedding_field\0{config.embedding_field}\0{dim}"
        return dataclasses.replace(config, dim=dim), "vectors-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    from transforms.models.fingerprint import model_fingerprint

    dim, size = preflight_image_model(config.model_path)
    return dataclasses.replace(config, dim=dim, image_size=size), model_fingerprint(config.model_path)


class EmbedNonText(beam.PTransform):
    """Documents → ``{"documents", "embeddings", "new", "hits", "embedded", "hashes", dead letter}``.

    ``documents`` are the documents that got a vector (the others are dead-lettered);
    ``embeddings``/``embedded`` ``(id, unit vector)``; ``new`` ``(vector_hash, vector)`` for the
    cache; ``hits`` is empty (nothing is reused from the embedding cache); ``hashes``
    ``(id, vector_hash)`` keys the graph cache.
    """

    def __init__(self, config: ModalityConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, docs: beam.PCollection) -> dict[str, Any]:
        config = self._config
        if config.embedding_field:
            split = docs | "ReadVectors" >> ReadVectors(config.embedding_field, config.dim)
        else:
            image_config = ImageEmbedConfig(config.model_path, config.image_field, config.image_size)
            split = docs | "EmbedImages" >> EmbedImages(image_config)
        embeddings = split[EMBEDDINGS_TAG]
        hashes = embeddings | "VectorHashes" >> beam.MapTuple(lambda doc_id, vector: (doc_id, vector_hash(vector)))
        return {
            DOCUMENTS_TAG: split[DOCUMENTS_TAG],
            DEAD_LETTER_TAG: split[DEAD_LETTER_TAG],
            "embeddings": embeddings,
            "embedded": embeddings,
            "new": embeddings | "NewByVectorHash" >> beam.MapTuple(lambda _, vector: (vector_hash(vector), vector)),
            "hits": docs.pipeline | "NoCacheHits" >> beam.Create([]),
            "hashes": hashes,
        }
