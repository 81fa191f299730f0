"""The precomputed-vector stage (``--embedding_field``): documents → unit vectors, no model.

Each document's vector is read from ``doc["fields"][field]`` and checked by
:func:`transforms.core.vectors.parse_vector`; a good one is L2-normalised, a bad one sends the
document to the dead letter (stage ``embed``, cause ``missing_vector``, ``not_a_vector``,
``non_numeric_vector``, ``non_finite_vector``, ``wrong_vector_dimension`` or ``zero_vector``,
counted as ``embed/<cause>``), so it reaches neither the LFs nor the labels and the row
accounting still holds. The vector stays in the document's fields, so LFs may read it.

Output of :class:`ReadVectors`: ``{"documents": docs, "embeddings": (id, float32 [d]),
DEAD_LETTER_TAG: DeadLetter}``.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.core.vectors import parse_vector
from transforms.dead_letter import DEAD_LETTER_TAG, METRICS_NAMESPACE, DeadLetter

STAGE = "embed"
DOCUMENTS_TAG = "documents"
EMBEDDINGS_TAG = "embeddings"


def stage_dead_letter(doc: Mapping[str, Any], cause: str, message: str) -> beam.pvalue.TaggedOutput:
    """A counted ``embed`` dead letter for a document (also used by the image stage)."""
    record = DeadLetter.for_row(
        stage=STAGE,
        cause=cause,
        message=message,
        row={"id": doc["id"], "text": doc.get("text", ""), "fields": doc.get("fields") or {}},
        source=str(doc.get("source", "")),
        doc_id=str(doc["id"]),
    )
    Metrics.counter(METRICS_NAMESPACE, record.counter_name).inc()
    return beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, record)


def split_vector(doc: Mapping[str, Any], field: str, dim: int) -> Iterator[Any]:
    """Yields the document and ``(id, unit vector)``, or one dead letter naming the problem."""
    vector, cause, problem = parse_vector((doc.get("fields") or {}).get(field), dim)
    if vector is None:
        yield stage_dead_letter(
            doc,
            cause,
            f"{doc.get('source', doc['id'])}: --embedding_field {field!r}: {problem}; store a "
            f"list of {dim} finite numbers per row (the corpus dimension, see docs)",
        )
        return
    yield doc
    yield beam.pvalue.TaggedOutput(EMBEDDINGS_TAG, (doc["id"], vector))


class ReadVectors(beam.PTransform):
    """Documents → good documents, their unit vectors and the dead letters of bad vectors.

    Args:
        field: The field holding each row's vector.
        dim: The corpus dimension (from preflight, see
            :func:`transforms.core.vectors.dominant_dimension`).
    """

    def __init__(self, field: str, dim: int) -> None:
        super().__init__()
        self._field = field
        self._dim = dim

    def expand(self, docs: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return docs | "SplitVectors" >> beam.FlatMap(split_vector, self._field, self._dim).with_outputs(
            EMBEDDINGS_TAG, DEAD_LETTER_TAG, main=DOCUMENTS_TAG
        )
