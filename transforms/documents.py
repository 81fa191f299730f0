"""Document-level joins: gold labels onto documents, and every stage's output into one record.

Both are ``CoGroupByKey`` joins on the document id; neither uses a side input.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from transforms.core.ids import stable_hash
from transforms.core.record_arrays import RECORD_ARRAYS, pack_arrays
from transforms.dead_letter import DEAD_LETTER_TAG, METRICS_NAMESPACE, DeadLetter
from transforms.extend import no_nearest_voters

RECORDS_TAG = "records"
SPLIT_CORPUS, SPLIT_TUNE, SPLIT_HOLDOUT = "corpus", "tune", "holdout"
NO_GOLD = -1
# Where a document came from (its ``origin``): a corpus row, a dev row whose id is not in the
# corpus, or a corpus row labelled by the dev row with its id (the two rows are one document).
ORIGIN_CORPUS, ORIGIN_DEV, ORIGIN_MERGED = "corpus", "dev", "corpus+dev"


def is_holdout(doc_id: str, holdout_fraction: float) -> bool:
    """Whether a dev row is held out from tuning: a stable hash of its id, not chance.

    >>> is_holdout("a", 0.0), is_holdout("a", 0.9999)
    (False, True)
    """
    return stable_hash("holdout:" + doc_id) / 2.0**64 < holdout_fraction


def with_gold(
    doc: Mapping[str, Any], label: int | None, holdout_fraction: float, origin: str = ""
) -> dict:
    """A document with its split, labels and origin set.

    ``gold`` is the tuning label (``-1`` unless the row is a tuning row); ``eval_gold`` is the
    known label of any dev row (``None`` otherwise), used only for reporting. ``origin`` (one of
    ``ORIGIN_*``, default: the split of the source the row was read from) lets the run count
    corpus and dev rows apart.

    >>> with_gold({"id": "a", "text": "t", "split": "corpus"}, None, 0.5)["origin"]
    'corpus'
    """
    out = dict(doc)
    out.pop("label", None)
    out["origin"] = origin or doc.get("split", ORIGIN_CORPUS)
    if label is None:
        out.update(split=SPLIT_CORPUS, gold=NO_GOLD, eval_gold=None)
    elif is_holdout(doc["id"], holdout_fraction):
        out.update(split=SPLIT_HOLDOUT, gold=NO_GOLD, eval_gold=int(label))
    else:
        out.update(split=SPLIT_TUNE, gold=int(label), eval_gold=int(label))
    return out


def merge_gold(
    keyed: tuple[str, dict[str, list[dict]]], holdout_fraction: float
) -> Iterator[dict]:
    """Joined ``(id, {corpus, dev})`` → the document with its gold label, if any.

    A dev row whose id is in the corpus labels that document (origin ``corpus+dev``, counted by
    ``attach_gold/dev_rows_merged``); a dev row that is not becomes a document of its own (origin
    ``dev``, counted by ``attach_gold/dev_documents``).
    """
    _, groups = keyed
    dev = groups["dev"][0] if groups["dev"] else None
    label = dev["label"] if dev is not None else None
    if groups["corpus"]:
        origin = ORIGIN_CORPUS
        if dev is not None:
            Metrics.counter(METRICS_NAMESPACE, "attach_gold/dev_rows_merged").inc()
            origin = ORIGIN_MERGED
        yield with_gold(groups["corpus"][0], label, holdout_fraction, origin)
    elif dev is not None:
        Metrics.counter(METRICS_NAMESPACE, "attach_gold/dev_documents").inc()
        yield with_gold(dev, label, holdout_fraction, ORIGIN_DEV)


class AttachGold(beam.PTransform):
    """Corpus documents (+ optional labelled dev documents) → documents with split and gold."""

    def __init__(self, dev_docs: beam.PCollection | None, holdout_fraction: float):
        super().__init__()
        self._dev_docs = dev_docs
        self._holdout_fraction = holdout_fraction

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        if self._dev_docs is None:
            return docs | "NoGold" >> beam.Map(with_gold, None, self._holdout_fraction)
        return (
            {
                "corpus": docs | "KeyCorpus" >> beam.Map(lambda doc: (doc["id"], doc)),
                "dev": self._dev_docs | "KeyDev" >> beam.Map(lambda doc: (doc["id"], doc)),
            }
            | "JoinDev" >> beam.CoGroupByKey()
            | "MergeGold" >> beam.FlatMap(merge_gold, self._holdout_fraction)
        )


def embed_input(doc: Mapping[str, Any]) -> tuple[str, str]:
    """``(id, text)``: what the embedder sees."""
    return doc["id"], doc["text"]


def record_fields(doc: Mapping[str, Any]) -> tuple[str, tuple[str, int, int | None, str]]:
    """``(id, (split, gold, eval_gold, source))``: what the record join needs of a document.

    Not its text: the join holds every document at once, and a record does not carry the text.

    >>> record_fields({"id": "a", "text": "t", "split": "tune", "gold": 1, "eval_gold": 1, "source": "f:1"})
    ('a', ('tune', 1, 1, 'f:1'))
    """
    return doc["id"], (doc["split"], doc["gold"], doc["eval_gold"], str(doc.get("source", "")))


def join_record(
    keyed: tuple[str, dict[str, list[Any]]], num_lfs: int
) -> Iterator[Any]:
    """Joins one document's stage outputs into a record (see :mod:`transforms.label`).

    ``docs`` holds the document's :func:`record_fields`. A document without votes was already
    dead-lettered by the apply stage (a bad vote list) and is skipped; a document without an
    embedding goes to the dead letter here, with its id and source row (where its text is).
    """
    doc_id, groups = keyed
    if not groups["docs"] or not groups["votes"]:
        return
    split, gold, eval_gold, source = groups["docs"][0]
    if not groups["embeddings"]:
        Metrics.counter(METRICS_NAMESPACE, "join/missing_embedding").inc()
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTER_TAG,
            DeadLetter.for_row(
                stage="embed",
                cause="missing_embedding",
                message=f"the model returned no embedding for this document (its text is row {source})",
                row={"id": doc_id, "source": source},
                source=source,
                doc_id=doc_id,
            ),
        )
        return
    nearest = groups["nearest"][0] if groups["nearest"] else no_nearest_voters(num_lfs)
    nn_sim, nn_vote, nn_source = nearest
    yield {
        "id": doc_id,
        "split": split,
        "gold": gold,
        "eval_gold": eval_gold,
        **pack_arrays(votes=groups["votes"][0], nn_sim=nn_sim, nn_vote=nn_vote, nn_source=nn_source),
        "embedding": embedding_bytes(groups["embeddings"][0]),
    }


def embedding_bytes(vector: Any) -> bytes:
    """The record's ``embedding`` field: the ``float32`` bytes of a vector (bytes as they are).

    >>> embedding_bytes([1.0]) == embedding_bytes(embedding_bytes([1.0])) == b"\\x00\\x00\\x80?"
    True
    """
    return vector if isinstance(vector, bytes) else np.asarray(vector, RECORD_ARRAYS["embedding"]).tobytes()


class JoinRecords(beam.PTransform):
    """``{docs, votes, nearest, embeddings}`` → tagged ``records`` and dead letter.

    ``docs`` are documents; the other inputs are keyed by id.
    """

    def __init__(self, num_lfs: int):
        super().__init__()
        self._num_lfs = num_lfs

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.pvalue.DoOutputsTuple:
        # The embeddings wait for the join as bytes (Beam's coder pickles an ndarray, ≈ 40 %
        # larger); the packing fuses into the embed stage, before the wait.
        packed = inputs["embeddings"] | "PackEmbeddings" >> beam.MapTuple(
            lambda doc_id, vector: (doc_id, embedding_bytes(vector))
        )
        fields = inputs["docs"] | "RecordFields" >> beam.Map(record_fields)
        return (
            {**inputs, "docs": fields, "embeddings": packed}
            | "CoGroupById" >> beam.CoGroupByKey()
            | "Join"
            >> beam.FlatMap(join_record, self._num_lfs).with_outputs(
                DEAD_LETTER_TAG, main=RECORDS_TAG
            )
        )
