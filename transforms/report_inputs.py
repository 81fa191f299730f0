"""Beam side of the run report: small, bounded singletons gathered without collecting rows.

* :class:`SelectExamples`: records + thresholds → per LF a few documents it voted on and a few it
  gained by extension (an :class:`~transforms.core.diagnostics.ExampleReservoir`).
* :class:`ConfidenceHistogramFn`: labels rows → a
  :class:`~transforms.core.diagnostics.ConfidenceHistogram`.
* :class:`ResolveExamples`: the examples + the documents → the examples with their texts and the
  ids and texts of the neighbours their gained votes came from (a filter of the corpus by a
  small side input of wanted ids and source hashes).
"""

from __future__ import annotations

import functools
from typing import Any, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np

from transforms.core.display import display_text
from transforms.core.diagnostics import (
    NO_SOURCE,
    ConfidenceHistogram,
    ExampleReservoir,
    source_hash,
)
from transforms.core.extension import extend_votes
from transforms.core.record_arrays import array_field
from transforms.statistics import BatchedArrayCombineFn

EXAMPLES_PER_KIND = 3
# Characters of each example text kept for the report.
EXAMPLE_TEXT_CHARS = 400


def example_row(record: Mapping[str, Any], thresholds: np.ndarray) -> tuple:
    """``(id, votes, extended_votes, nn_sim, nn_source)`` of one record."""
    votes, nn_sim = array_field(record, "votes"), array_field(record, "nn_sim")
    extended = extend_votes(
        votes[np.newaxis], nn_sim[np.newaxis], array_field(record, "nn_vote")[np.newaxis], thresholds
    )[0]
    if record.get("nn_source") is None:
        source = np.full(votes.shape, NO_SOURCE, np.uint64)
    else:
        source = array_field(record, "nn_source")
    return record["id"], votes, extended, nn_sim, source


def add_example_rows(reservoir: ExampleReservoir, rows: list[tuple]) -> None:
    """Offers buffered :func:`example_row` tuples to the reservoir in one batch."""
    ids, votes, extended, nn_sim, nn_source = zip(*rows)
    reservoir.add(list(ids), np.stack(votes), np.stack(extended), np.stack(nn_sim), np.stack(nn_source))


def example_combine_fn(per_kind: int = EXAMPLES_PER_KIND) -> BatchedArrayCombineFn:
    """The CombineFn of :func:`example_row` tuples into the (bounded) list of examples."""
    return BatchedArrayCombineFn(
        functools.partial(ExampleReservoir.empty, per_kind),
        add_rows=add_example_rows,
        finish=ExampleReservoir.to_list,
    )


class SelectExamples(beam.PTransform):
    """Records + the thresholds singleton → the list of example entries (a singleton)."""

    def __init__(self, thresholds: beam.PCollection, per_kind: int = EXAMPLES_PER_KIND):
        super().__init__()
        self._thresholds = thresholds
        self._per_kind = per_kind

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "ExampleRows"
            >> beam.Map(example_row, thresholds=beam.pvalue.AsSingleton(self._thresholds))
            | "ExampleReservoir" >> beam.CombineGlobally(example_combine_fn(self._per_kind))
        )


def histogram_row(label_row: Mapping[str, Any]) -> np.ndarray:
    """``(confidence, label, covered)`` of one labels row."""
    return np.array(
        [label_row["confidence"], label_row["label"], float(label_row["covered"])], np.float64
    )


def confidence_histogram_fn(cardinality: int) -> BatchedArrayCombineFn:
    """The CombineFn of a :class:`ConfidenceHistogram` over :func:`histogram_row` rows."""
    return BatchedArrayCombineFn(functools.partial(ConfidenceHistogram.empty, cardinality))


def wanted_documents(examples: Sequence[Mapping[str, Any]]) -> dict[str, frozenset]:
    """The example ids and the source hashes of their gained votes."""
    return {
        "ids": frozenset(entry["id"] for entry in examples),
        "sources": frozenset(
            entry["source_hash"] for entry in examples if entry.get("source_hash", 0) != 0
        ),
    }


def report_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What :func:`matching_texts` reads of a document: its id, its text cut to the report's
    length and, only when it has no text, its fields (a thumbnail or a field summary).

    The corpus waits in memory for the examples (a side input computed after the fit), so it
    waits in this slim form (≈ 0.3 kB per document instead of the whole document).

    >>> report_document({"id": "a", "text": "x" * 500, "fields": {"f": 1}})["fields"] is None
    True
    """
    text = str(doc["text"])
    return {"id": doc["id"], "text": text[:EXAMPLE_TEXT_CHARS], "fields": None if text else doc.get("fields")}


def matching_texts(
    doc: Mapping[str, Any], wanted: Mapping[str, frozenset]
) -> Iterator[tuple[str, str, int]]:
    """``(id, text, source_hash)`` of a wanted document (its text cut to the report's length)."""
    doc_id = doc["id"]
    source = int(source_hash(doc_id)) if wanted["sources"] else 0
    if doc_id in wanted["ids"] or source in wanted["sources"]:
        yield doc_id, display_text(str(doc["text"]), doc.get("fields"), EXAMPLE_TEXT_CHARS), source


def attach_texts(
    examples: Sequence[Mapping[str, Any]], texts: Sequence[tuple[str, str, int]]
) -> list[dict[str, Any]]:
    """The examples with ``text`` and, for gained votes, ``source_id`` and ``source_text``.

    A source whose document is not found (e.g. dead-lettered after the graph was built) keeps
    ``source_id = None``.
    """
    by_id = {doc_id: text for doc_id, text, _ in texts}
    by_source = {source: (doc_id, text) for doc_id, text, source in sorted(texts)}
    out = []
    for entry in examples:
        item = {key: value for key, value in entry.items() if key != "source_hash"}
        item["text"] = by_id.get(entry["id"], "")
        if "source_hash" in entry:
            source_id, source_text = by_source.get(entry["source_hash"], (None, None))
            item.update(source_id=source_id, source_text=source_text)
        out.append(item)
    return out


class ResolveExamples(beam.PTransform):
    """Documents + the examples singleton → the examples with texts (a singleton)."""

    def __init__(self, examples: beam.PCollection):
        super().__init__()
        self._examples = examples

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        wanted = self._examples | "WantedDocuments" >> beam.Map(wanted_documents)
        texts = (
            docs
            | "ReportDocuments" >> beam.Map(report_document)
            | "MatchExampleDocs"
            >> beam.FlatMap(matching_texts, wanted=beam.pvalue.AsSingleton(wanted))
            | "GatherExampleTexts" >> beam.combiners.ToList()
        )
        return self._examples | "AttachTexts" >> beam.Map(
            attach_texts, texts=beam.pvalue.AsSingleton(texts)
        )
