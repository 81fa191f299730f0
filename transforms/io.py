"""Read stage: a sharded Parquet / JSON Lines / CSV corpus (local or ``gs://``) into documents.

:class:`ReadCorpus` is the thin Beam wrapper around the plain-Python parsing of
:mod:`transforms.core.parsing` (formats, causes of dead letters) and
:mod:`transforms.core.records` (sources, rows to documents); their public names are re-exported
here. :func:`preflight_source` checks a source's files before the pipeline is built (called by
:mod:`pipelines.plan`). Duplicate ids keep the first occurrence in input order
(:class:`DeduplicateById`).
"""

from __future__ import annotations

import csv
import gzip
import os
from typing import Any, Iterator

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.core.parsing import (
    FILE_ERRORS,
    PARQUET_BATCH_ROWS,
    DecodedLines,
    file_dead_letter,
    parse_file,
    raw_lines,
)
from transforms.core.records import (
    FORMAT_BY_EXTENSION,
    FORMATS,
    GZIP_EXTENSION,
    STAGE,
    CorpusSource,
    check_template,
    input_order,
    join_patterns,
    json_safe,
    parse_label,
    read_stage,
    resolve_format,
    row_to_document,
    split_patterns,
)
from transforms.dead_letter import DEAD_LETTER_TAG, METRICS_NAMESPACE, DeadLetter

__all__ = [
    "DOCUMENTS_TAG", "FORMATS", "FORMAT_BY_EXTENSION", "GZIP_EXTENSION", "PARQUET_BATCH_ROWS",
    "STAGE", "CorpusSource", "DeduplicateById", "ReadCorpus", "check_template", "input_order",
    "join_patterns", "json_safe", "parse_file", "parse_label", "preflight_source", "read_stage",
    "resolve_format", "row_to_document", "split_patterns",
]  # fmt: skip

DOCUMENTS_TAG = "documents"
# Files are opened as raw bytes; parse_file decompresses .gz itself, the same way in tests.
_RAW_BYTES = CompressionTypes.UNCOMPRESSED


def preflight_source(source: CorpusSource) -> list[str]:
    """Expands the pattern(s) and checks that every matched file can be read.

    Opens every matched file (one small read each) and, for CSV and Parquet, checks that the
    first file has the columns the source needs.

    Returns:
        The matched files, sorted, each once.

    Raises:
        ValueError: Naming the pattern or file and the fix, when a pattern matches nothing, a
            file cannot be opened (permissions, a directory), its format cannot be inferred, or
            the first readable file lacks the text / label / template columns.
    """
    paths: set[str] = set()
    for pattern in split_patterns(source.pattern):
        _check_not_a_directory(pattern)
        try:
            matched = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        except (ValueError, OSError) as error:
            raise ValueError(
                f"corpus pattern {pattern!r} could not be expanded ({error}); check the path, "
                "the credentials, and for gs:// install apache-beam[gcp]"
            ) from None
        if not matched:
            comma = (
                "; a comma separates globs: escape one in a file name as '\\,' or repeat "
                "--input"
                if "," in source.pattern and "\\," not in source.pattern
                else ""
            )
            raise ValueError(
                f"corpus pattern {pattern!r} matches no file; fix the path or glob "
                f"(e.g. 'gs://bucket/corpus/part-*.parquet'){comma}"
            )
        for path in matched:
            try:
                resolve_format(path, source.format)
            except ValueError as error:
                raise ValueError(f"corpus pattern {pattern!r}: {error}") from None
            try:
                with FileSystems.open(path, compression_type=_RAW_BYTES) as stream:
                    stream.read(1)
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"corpus pattern {pattern!r} matches {path!r}, which cannot be read "
                    f"({type(error).__name__}: {error}); grant read access, or narrow the glob "
                    "to files (not directories)"
                ) from None
        paths.update(matched)
    files = sorted(paths)
    _check_columns(files, source)
    return files


def _check_not_a_directory(pattern: str) -> None:
    """Raises ``ValueError`` for a pattern naming a directory, suggesting a glob for its files."""
    is_directory = os.path.isdir(pattern) if "://" not in pattern else pattern.endswith("/")
    if not is_directory:
        return
    extensions = sorted(
        {
            name[name.find("."):]
            for name in (os.listdir(pattern) if "://" not in pattern else [])
            if "." in name.lstrip(".")
        }
    )
    suffix = next((ext for ext in extensions if ext.lstrip(".").split(".")[0] in
                   {e.lstrip(".") for e in FORMAT_BY_EXTENSION}), ".jsonl")
    directory = pattern.rstrip("/")
    raise ValueError(
        f"corpus pattern {pattern!r} is a directory; an input names files: use "
        f"'{directory}/*{suffix}' (a glob of the files in it)"
    )


def _check_columns(files: list[str], source: CorpusSource) -> None:
    """Raises ValueError when the first readable CSV / Parquet file lacks the needed columns.

    An unreadable or empty file is skipped here (the read stage dead-letters an unreadable one as
    ``unreadable_file``), so one corrupt file among good ones never stops the job; when no file
    is readable, the first one's problem is raised.
    """
    problems = []
    for path in files:
        file_format, gzipped = resolve_format(path, source.format)
        if file_format == "jsonl":
            return  # rows of a JSON Lines file may differ; each bad row is dead-lettered instead
        with FileSystems.open(path, compression_type=_RAW_BYTES) as raw:
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            try:
                if file_format == "parquet":
                    columns = pq.ParquetFile(stream).schema_arrow.names
                else:
                    columns = next(csv.reader(DecodedLines(raw_lines(stream))), [])
            except FILE_ERRORS as error:
                problems.append(f"{path!r} is not a readable {file_format} file ({error})")
                continue
        if columns:
            _check_needed_columns(path, columns, source)
            return
    if problems:
        raise ValueError(
            f"no file matched by {source.pattern!r} is readable: {problems[0]}; replace the "
            "files or fix the format"
        )


def _check_needed_columns(path: str, columns: list[str], source: CorpusSource) -> None:
    needed = check_template(source.text_template) if source.text_template else [source.text_field]
    needed = needed if source.text_required else []
    needed += [source.label_field] if source.label_field else []
    missing = [name for name in needed if name not in columns]
    if missing:
        raise ValueError(
            f"{path!r} has no column {missing} (columns: {columns}); set text_field / "
            "text_template / label_field to existing columns"
        )


class _ParseFileFn(beam.DoFn):
    """Parses one matched file; bad rows go to :data:`DEAD_LETTER_TAG`, counted per cause."""

    def __init__(self, source: CorpusSource) -> None:
        self._source = source

    def process(self, readable_file: fileio.ReadableFile) -> Iterator[Any]:
        path = readable_file.metadata.path
        try:
            stream = readable_file.open(compression_type=_RAW_BYTES)
        except OSError as error:
            stage = read_stage(self._source.split)
            message = f"{path!r} cannot be opened ({error}); check access"
            yield self._dead_letter(file_dead_letter(stage, path, message))
            return
        with stream:
            for item in parse_file(path, stream, self._source):
                yield self._dead_letter(item) if isinstance(item, DeadLetter) else item

    @staticmethod
    def _dead_letter(record: DeadLetter) -> beam.pvalue.TaggedOutput:
        Metrics.counter(METRICS_NAMESPACE, record.counter_name).inc()
        return beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, record)


class _KeepFirstOccurrenceFn(beam.DoFn):
    """Keeps, per id, the first row in input order; the others are ``duplicate_id``."""

    def __init__(self, stage: str = STAGE) -> None:
        self._stage = stage
        self._rows = Metrics.counter(METRICS_NAMESPACE, f"{stage}/rows")
        self._duplicates = Metrics.counter(METRICS_NAMESPACE, f"{stage}/duplicate_id")

    def process(self, keyed: tuple[str, list[dict]]) -> Iterator[Any]:
        doc_id, documents = keyed
        ordered = sorted(documents, key=lambda doc: (input_order(doc["source"]), doc["text"]))
        kept = ordered[0]
        self._rows.inc()
        yield kept
        for duplicate in ordered[1:]:
            self._duplicates.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER_TAG,
                DeadLetter.for_row(
                    self._stage,
                    "duplicate_id",
                    f"id {doc_id!r} at {duplicate['source']} duplicates the row kept from "
                    f"{kept['source']} (the first occurrence in input order: files by name, then "
                    "line); make ids unique, or set id_field=None to derive ids from the text",
                    duplicate,
                    source=duplicate["source"],
                    doc_id=doc_id,
                ),
            )


class DeduplicateById(beam.PTransform):
    """Keeps one document per id (the first in input order), dead-lettering the others.

    Output: ``{"documents": PCollection[dict], DEAD_LETTER_TAG: PCollection[DeadLetter]}``.
    Counts ``<stage>/rows`` (documents kept) and ``<stage>/duplicate_id``.
    """

    def __init__(self, stage: str = STAGE) -> None:
        super().__init__()
        self._stage = stage

    def expand(self, documents: beam.PCollection) -> dict[str, beam.PCollection]:
        result = (
            documents
            | "KeyById" >> beam.Map(lambda doc: (doc["id"], doc))
            | "GroupById" >> beam.GroupByKey()
            | "KeepFirstOccurrence"
            >> beam.ParDo(_KeepFirstOccurrenceFn(self._stage)).with_outputs(
                DEAD_LETTER_TAG, main=DOCUMENTS_TAG
            )
        )
        return {DOCUMENTS_TAG: result[DOCUMENTS_TAG], DEAD_LETTER_TAG: result[DEAD_LETTER_TAG]}


class ReadCorpus(beam.PTransform):
    """Reads a :class:`CorpusSource` into documents and dead letters.

    Files are matched at run time (each file once, even if several globs match it), spread over
    workers by the distinct step, and parsed one file per element (CSV records may span lines,
    so files are never split by line). The id grouping of :class:`DeduplicateById` then
    redistributes the rows, which serves as the reshuffle after reading.

    Output: ``{"documents": PCollection[dict], DEAD_LETTER_TAG: PCollection[DeadLetter]}``.
    Counters ``read/rows`` and ``read/<cause>`` in :data:`METRICS_NAMESPACE` add up to the input
    rows (``read_dev/...`` for the dev source, see :func:`read_stage`).
    """

    def __init__(self, source: CorpusSource) -> None:
        super().__init__()
        self._source = source

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        parsed = (
            pbegin
            | "Patterns" >> beam.Create(split_patterns(self._source.pattern))
            | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            | "Paths" >> beam.Map(lambda metadata: metadata.path)
            | "DistinctPaths" >> beam.Distinct()
            | "Open" >> fileio.ReadMatches()
            | "Parse"
            >> beam.ParDo(_ParseFileFn(self._source)).with_outputs(
                DEAD_LETTER_TAG, main=DOCUMENTS_TAG
            )
        )
        deduplicated = parsed[DOCUMENTS_TAG] | "DeduplicateById" >> DeduplicateById(
            read_stage(self._source.split)
        )
        dead_letters = (
            parsed[DEAD_LETTER_TAG],
            deduplicated[DEAD_LETTER_TAG],
        ) | "FlattenDeadLetters" >> beam.Flatten()
        return {DOCUMENTS_TAG: deduplicated[DOCUMENTS_TAG], DEAD_LETTER_TAG: dead_letters}
