"""The apply stage: each document's votes, from LFs and/or a precomputed votes column.

LFs are never pickled: the DoFn carries the LF file's source text (or module name) and re-creates
the LF set in ``setup()``. An LF that raises or returns an invalid value abstains on that row; the
failure is counted per LF (``lf_failures`` output, Beam counter ``lf_failures/<lf>``) and the
failures with the smallest document ids, at most ``max_failure_samples_per_lf`` per LF, go to the
dead letter with their traceback head (chosen by id, so the sample does not depend on bundling).
LFs run under a time budget with their console output captured
(:class:`~transforms.core.lf_guard.GuardedLFs`): an overrun is a ``timeout`` failure, and a
bounded sample of the captured output goes to the dead letter as ``lf_output``. A row whose
precomputed vote list is invalid goes to the dead letter.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils.windowed_value import WindowedValue

from transforms.core.document import lf_row
from transforms.core.lf_guard import GuardedLFs
from transforms.core.votes import LabelingFunction, check_votes
from transforms.dead_letter import DEAD_LETTER_TAG, METRICS_NAMESPACE, DeadLetter, render_payload
from transforms.labeling_functions import LFSet, load_lf_set, load_lf_set_from_source

LF_FAILURES_TAG = "lf_failures"
LF_OUTPUT_CAUSE = "lf_output"  # a sample of what an LF printed (not a failure)
BATCH_ROWS = 256  # documents per hand-off to the LF thread
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
        lf_timeout_s: The time budget of one LF on one row (0 = none).
    """

    lf_spec: str = ""
    lf_source: str = ""
    votes_field: str = ""
    num_column_votes: int = 0
    cardinality: int = 2
    lf_timeout_s: float = 0.0

    @classmethod
    def from_lf_set(
        cls,
        lf_set: LFSet | None,
        votes_field: str,
        num_column_votes: int,
        cardinality: int,
        lf_timeout_s: float = 0.0,
    ) -> "VoteSource":
        """Builds the source for an optional LF set and an optional votes column."""
        return cls(
            lf_spec=lf_set.spec if lf_set else "",
            lf_source=lf_set.source if lf_set else "",
            votes_field=votes_field,
            num_column_votes=num_column_votes if votes_field else 0,
            cardinality=cardinality,
            lf_timeout_s=lf_timeout_s,
        )

    def load_lfs(self) -> tuple[LabelingFunction, ...]:
        """Re-creates the LF set (in the worker)."""
        if not self.lf_spec:
            return ()
        if self.lf_source:
            return load_lf_set_from_source(self.lf_source, self.lf_spec).lfs
        return load_lf_set(self.lf_spec).lfs


def documents_votes(
    guard: GuardedLFs, source: VoteSource, docs: Sequence[Mapping[str, Any]]
) -> list[tuple[np.ndarray, list, dict[str, tuple[str, int]], DeadLetter | None]]:
    """Computes the votes of documents: the function behind the DoFn and local paths.

    The LFs run over all the rows in one hand-off to the guard's helper thread
    (:meth:`~transforms.core.lf_guard.GuardedLFs.apply_rows`), each LF and row with its budget.

    Args:
        guard: The LF set (may be empty when only a votes column is used), guarded.
        source: The vote source configuration.
        docs: Document records (``id``, ``text``, ``fields``).

    Returns:
        Per document ``(votes, lf_failures, lf_outputs, dead_letter)``; ``lf_outputs`` holds what
        LFs printed; ``dead_letter`` is set (and the votes must not be used) when the precomputed
        vote list is invalid.
    """
    rows = [lf_row(doc) for doc in docs]
    applied = guard.apply_rows(rows)
    return [_with_column(source, doc, row, *result) for doc, row, result in zip(docs, rows, applied)]


def _with_column(
    source: VoteSource, doc: Mapping[str, Any], row: Any, votes: np.ndarray, failures: list, outputs: dict
) -> tuple[np.ndarray, list, dict[str, tuple[str, int]], DeadLetter | None]:
    """One document's LF votes followed by its precomputed vote column, if the source has one."""
    if not source.votes_field:
        return votes, failures, outputs, None
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
        return votes, failures, outputs, dead
    return np.concatenate([votes, column]), failures, outputs, None


class ApplyLFsFn(beam.DoFn):
    """Document → ``(id, votes)``; LF failures and bad vote lists to tagged outputs.

    Every LF failure yields ``(lf_name, 1)`` on ``lf_failures`` and a :class:`DeadLetter` (with
    ``lf`` set, ``counts_as_input_row=False``) on the dead letter; :class:`ApplyLFs` keeps a
    bounded, id-ordered sample of the latter. Documents are voted on in batches of up to
    :data:`BATCH_ROWS` (one hand-off to the LF thread per batch); each output keeps its
    document's window and timestamp.
    """

    def __init__(self, source: VoteSource):
        self._source = source
        self._guard: GuardedLFs | None = None
        self._buffer: list[tuple[Mapping[str, Any], Any, Any]] = []

    def setup(self) -> None:
        self._guard = GuardedLFs(
            self._source.load_lfs(), self._source.cardinality, self._source.lf_timeout_s
        )

    def teardown(self) -> None:
        if self._guard is not None:
            self._guard.close()

    def start_bundle(self) -> None:
        self._buffer = []

    def process(
        self, doc: Mapping[str, Any], window: Any = beam.DoFn.WindowParam, timestamp: Any = beam.DoFn.TimestampParam
    ) -> Iterator[Any]:
        self._buffer.append((doc, window, timestamp))
        if len(self._buffer) >= BATCH_ROWS:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        assert self._guard is not None
        buffered, self._buffer = self._buffer, []
        voted = documents_votes(self._guard, self._source, [doc for doc, _, _ in buffered])
        for (doc, window, timestamp), result in zip(buffered, voted):
            for tag, value in self._outputs(doc, *result):
                yield beam.pvalue.TaggedOutput(tag, WindowedValue(value, timestamp, [window]))

    def _outputs(
        self, doc: Mapping[str, Any], votes: np.ndarray, failures: list, outputs: dict, dead: DeadLetter | None
    ) -> Iterator[tuple[str, Any]]:
        """One document's ``(tag, value)`` outputs (and counters)."""
        for failure in failures:
            Metrics.counter(METRICS_NAMESPACE, f"lf_failures/{failure.lf_name}").inc()
            yield LF_FAILURES_TAG, (failure.lf_name, 1)
            yield (
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
        for lf_name, (sample, total) in outputs.items():
            Metrics.counter(METRICS_NAMESPACE, f"lf_output_chars/{lf_name}").inc(total)
            yield (
                DEAD_LETTER_TAG,
                DeadLetter(
                    stage="apply_lfs",
                    cause=LF_OUTPUT_CAUSE,
                    message=f"LF {lf_name!r} wrote {total} characters to stdout/stderr on this "
                    f"row (captured, not shown; the first {len(sample)} are the payload); "
                    "remove the prints, or use logging",
                    source=str(doc.get("source", "")),
                    doc_id=doc["id"],
                    payload=sample,
                    lf=lf_name,
                    counts_as_input_row=False,
                ),
            )
        if dead is not None:
            Metrics.counter(METRICS_NAMESPACE, dead.counter_name).inc()
            yield DEAD_LETTER_TAG, dead
            return
        Metrics.counter(METRICS_NAMESPACE, "apply_lfs/rows").inc()
        yield VOTES_TAG, (doc["id"], votes)


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
            | "KeyByLF"
            >> beam.Map(lambda record: ((record.lf, record.cause == LF_OUTPUT_CAUSE), record))
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

