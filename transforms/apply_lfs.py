"""The apply stage: each document's votes, from LFs and/or a precomputed votes column.

LFs are never pickled: the DoFn carries the LF file's source text (or module name) and re-creates
the LF set in ``setup()``. An LF that raises or returns an invalid value abstains on that row; the
failure is counted per LF (``lf_failures`` output, Beam counter ``lf_failures/<lf>``) and the
failures with the smallest document ids, at most ``max_failure_samples_per_lf`` per LF, go to the
dead letter with their traceback head (chosen by id, so the sample does not depend on bundling).
A row whose precomputed vote list is invalid goes to the dead letter.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from transforms.core.document import lf_row
from transforms.core.votes import LabelingFunction, apply_lfs, check_votes
from transforms.dead_letter import DEAD_LETTER_TAG, METRICS_NAMESPACE, DeadLetter, render_payload
from transforms.labeling_functions import LFSet, load_lf_set, load_lf_set_from_source

LF_FAILURES_TAG = "lf_failures"
VOTES_TAG = "votes"


@dataclasses.dataclass(frozen=True)
class VoteSource:
    """Where votes come from: an LF file/module, a votes column, or both (LFs first).

    Attributes:
        lf_spec: The LF file path or module name ('' for none).
        lf_source: The LF file's source text, re-executed on workers ('' for a module).
        votes_field: The precomputed votes column ('' for none).
        num_column_votes: Votes per row in ``votes_field``.
        cardinality: Number of classes.
    """

    lf_spec: str = ""
    lf_source: str = ""
    votes_field: str = ""
    num_column_votes: int = 0
    cardinality: int = 2

    @classmethod
    def from_lf_set(
        cls, lf_set: LFSet | None, votes_field: str, num_column_votes: int, cardinality: int
    ) -> "VoteSource":
        """Builds the source for an optional LF set and an optional votes column."""
        return cls(
            lf_spec=lf_set.spec if lf_set else "",
            lf_source=lf_set.source if lf_set else "",
            votes_field=votes_field,
            num_column_votes=num_column_votes if votes_field else 0,
            cardinality=cardinality,
        )

    def load_lfs(self) -> tuple[LabelingFunction, ...]:
        """Re-creates the LF set (in the worker)."""
        if not self.lf_spec:
            return ()
        if self.lf_source:
            return load_lf_set_from_source(self.lf_source, self.lf_spec).lfs
        return load_lf_set(self.lf_spec).lfs


def document_votes(
    lfs: tuple[LabelingFunction, ...], source: VoteSource, doc: Mapping[str, Any]
) -> tuple[np.ndarray, list, DeadLetter | None]:
    """Computes one document's votes: the per-row function behind the DoFn and local paths.

    Args:
        lfs: The LF set (may be empty when only a votes column is used).
        source: The vote source configuration.
        doc: A document record (``id``, ``text``, ``fields``).

    Returns:
        ``(votes, lf_failures, dead_letter)``; ``dead_letter`` is set (and the votes must not be
        used) when the precomputed vote list is invalid.
    """
    row = lf_row(doc)
    votes, failures = apply_lfs(lfs, row, source.cardinality)
    if not source.votes_field:
        return votes, failures, None
    try:
        column = check_votes(
            row.get(source.votes_field), source.num_column_votes, source.cardinality
        )
    except ValueError as error:
        dead = DeadLetter.for_row(
            stage="apply_lfs",
            cause="bad_votes",
            message=f"field {source.votes_field!r}: {error}",
            row=dict(row),
            source=str(doc.get("source", "")),
            doc_id=doc["id"],
        )
        return votes, failures, dead
    return np.concatenate([votes, column]), failures, None


class ApplyLFsFn(beam.DoFn):
    """Document → ``(id, votes)``; LF failures and bad vote lists to tagged outputs.

    Every LF failure yields ``(lf_name, 1)`` on ``lf_failures`` and a :class:`DeadLetter` (with
    ``lf`` set, ``counts_as_input_row=False``) on the dead letter; :class:`ApplyLFs` keeps a
    bounded, id-ordered sample of the latter.
    """

    def __init__(self, source: VoteSource):
        self._source = source
        self._lfs: tuple[LabelingFunction, ...] = ()

    def setup(self) -> None:
        self._lfs = self._source.load_lfs()

    def process(self, doc: Mapping[str, Any]) -> Iterator[Any]:
        votes, failures, dead = document_votes(self._lfs, self._source, doc)
        for failure in failures:
            Metrics.counter(METRICS_NAMESPACE, f"lf_failures/{failure.lf_name}").inc()
            yield beam.pvalue.TaggedOutput(LF_FAILURES_TAG, (failure.lf_name, 1))
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER_TAG,
                DeadLetter(
                    stage="apply_lfs",
                    cause=f"lf_{failure.cause}",
                    message=f"LF {failure.lf_name!r} {failure.message}",
                    source=str(doc.get("source", "")),
                    doc_id=doc["id"],
                    payload=failure.traceback_head or render_payload(dict(lf_row(doc))),
                    lf=failure.lf_name,
                    counts_as_input_row=False,
                ),
            )
        if dead is not None:
            Metrics.counter(METRICS_NAMESPACE, dead.counter_name).inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, dead)
            return
        Metrics.counter(METRICS_NAMESPACE, "apply_lfs/rows").inc()
        yield beam.pvalue.TaggedOutput(VOTES_TAG, (doc["id"], votes))


def failure_sample_order(dead: DeadLetter) -> tuple[str, str, str]:
    """The order LF failure samples are kept in: smallest document id first, ties by cause."""
    return (dead.doc_id, dead.cause, dead.message)


class ApplyLFs(beam.PTransform):
    """Documents → ``{votes: (id, int8 [m]), lf_failures: (lf_name, 1), dead_letter}``.

    ``lf_failures`` carries one ``(lf_name, 1)`` per failure (sum it per key for the report). The
    dead letter holds every bad vote list and, per LF, the ``max_failure_samples_per_lf`` failures
    with the smallest document ids (so reruns on any runner write the same samples).
    """

    def __init__(self, source: VoteSource, max_failure_samples_per_lf: int = 20):
        super().__init__()
        self._source = source
        self._max_samples = max_failure_samples_per_lf

    def expand(self, docs: beam.PCollection) -> dict[str, beam.PCollection]:
        applied = docs | "ApplyLFs" >> beam.ParDo(ApplyLFsFn(self._source)).with_outputs(
            VOTES_TAG, LF_FAILURES_TAG, DEAD_LETTER_TAG
        )
        dead = applied[DEAD_LETTER_TAG]
        samples = (
            dead
            | "LFFailures" >> beam.Filter(lambda record: bool(record.lf))
            | "KeyByLF" >> beam.Map(lambda record: (record.lf, record))
            | "SmallestIds"
            >> beam.combiners.Top.PerKey(self._max_samples, key=failure_sample_order, reverse=True)
            | "FailureSamples" >> beam.FlatMap(lambda keyed: keyed[1])
        )
        rows = dead | "RowDeadLetters" >> beam.Filter(lambda record: not record.lf)
        return {
            VOTES_TAG: applied[VOTES_TAG],
            LF_FAILURES_TAG: applied[LF_FAILURES_TAG],
            DEAD_LETTER_TAG: (rows, samples) | "DeadLetters" >> beam.Flatten(),
        }

