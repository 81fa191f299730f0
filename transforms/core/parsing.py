"""Parsing corpus files (Parquet, JSON Lines, CSV; ``.gz`` for text) into documents.

Every input record ends either as a document or as a :class:`DeadLetter` with a cause; nothing
raises on bad data and nothing vanishes. Plain Python (no Beam), so it is tested directly and
called by the Beam read stage (:mod:`transforms.io`) and by preflight. The stage of the dead
letters is passed in (``read`` for the corpus, ``read_dev`` for ``--dev_input``).

Every input row ends either as a document or as a :class:`~transforms.dead_letter.DeadLetter`
(stage ``read``) with a cause; nothing crashes the job and nothing vanishes:

=====================  ==========================================================================
cause                  when
=====================  ==========================================================================
``malformed_json``     a JSON Lines line that is not a JSON object
``csv_wrong_columns``  a CSV record whose column count differs from the header's
``csv_malformed``      a one-line CSV record the strict ``csv`` parser rejects
``csv_unbalanced_quote``  a quoted CSV field that runs over several lines and does not close
                       cleanly or holds lines that are records themselves (a stray quote):
                       one record per physical line, so the accounting counts what the
                       file holds
``missing_text``       the text field (or a field of ``text_template``) is absent
``empty_text``         the text is null, empty or whitespace only (a null template field renders
                       as ``""``, as in :func:`~transforms.core.text_template.render_text`)
``non_string_text``    the text is a number, list, ...
``text_too_long``      the text has more than ``max_text_chars`` characters
``invalid_utf8``       a line (or a binary text value) that is not UTF-8; the good lines are kept
``bad_id``             an id that is a list, dict, ... (ints are converted to strings)
``bad_label``          ``label_field`` is set and the label is absent or not a class
``duplicate_id``       a second row with an id already seen (the first occurrence in input
                       order is kept: files sorted by path, then line number)
``unreadable_file``    a file that cannot be opened or decoded (one record for the file, or for
                       the rest of the file after the rows already read)
=====================  ==========================================================================

A document is ``{"id": str, "text": str, "fields": {other columns, JSON-safe}, "source":
"path:row", "split": str}`` plus ``"label": int`` when ``label_field`` is set. ``row`` is the
1-based line where the record starts for JSON Lines and CSV (the CSV header is line 1) and the
1-based row number for Parquet. ``fields`` holds every column except the id, the label and the
text column; with ``text_template`` the text column stays in ``fields`` (the rendered text is
not the raw column, and the template's other fields stay too). The gold label is kept out of
``fields`` so that LFs never see it.

The dead letters of a source whose ``split`` is not ``corpus`` (the ``--dev_input`` rows) carry the
stage ``read_<split>`` (:func:`read_stage`), so the run can count corpus and dev rows apart.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from typing import BinaryIO, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.core.dead_letter import DeadLetter
from transforms.core.records import CorpusSource, read_stage, resolve_format, row_to_document

PARQUET_BATCH_ROWS = 1024
_UTF8_BOM = b"\xef\xbb\xbf"
# Raised by the csv module when a field exceeds its limit; text length is judged by
# max_text_chars instead, so the limit is raised (never lowered) to this bound.
_CSV_FIELD_LIMIT = 2**31 - 1
# Errors that mean "the bytes of this file cannot be read", as opposed to a bad row (a csv.Error
# reaching parse_file comes from the header; record errors are routed per record).
FILE_ERRORS = (OSError, EOFError, zlib.error, pa.ArrowException, csv.Error)


def parse_file(
    path: str, stream: BinaryIO, source: CorpusSource, stage: str = ""
) -> Iterator[dict | DeadLetter]:
    """Parses one file into documents and dead letters, never raising on bad data.

    Args:
        path: The file's path (used for the format, the ``.gz`` suffix and ``source``).
        stream: The file's raw (still compressed) bytes, opened for reading; Parquet needs a
            seekable stream.
        source: How rows become documents.
        stage: The dead letters' stage; default :func:`read_stage` of the source's split.

    Yields:
        A document dict per good row, a :class:`DeadLetter` per bad row; a file that cannot be
        read yields one ``unreadable_file`` record (after the rows read before the failure).
    """
    stage = stage or read_stage(source.split)
    try:
        file_format, gzipped = resolve_format(path, source.format)
    except ValueError as error:
        yield file_dead_letter(stage, path, str(error))
        return
    if gzipped:
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    parser = {"parquet": _parse_parquet, "jsonl": _parse_jsonl, "csv": _parse_csv}[file_format]
    items = parser(path, stream, source, stage)
    records = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except FILE_ERRORS as error:
            yield file_dead_letter(
                stage,
                path,
                f"{path!r} could not be read after {records} records "
                f"({type(error).__name__}: {error}); replace the file with a valid "
                f"{file_format} file",
            )
            return
        records += 1
        yield item


def file_dead_letter(stage: str, path: str, message: str) -> DeadLetter:
    """The one ``unreadable_file`` record of a file that cannot be read."""
    return DeadLetter(stage=stage, cause="unreadable_file", message=message, source=path)


def _parse_parquet(
    path: str, stream: BinaryIO, source: CorpusSource, stage: str
) -> Iterator[dict | DeadLetter]:
    parquet_file = pq.ParquetFile(stream)
    row_number = 0
    for batch in parquet_file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            row_number += 1
            yield row_to_document(row, f"{path}:{row_number}", source, stage)


def raw_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Yields the lines of a binary stream, the first without a UTF-8 byte-order mark."""
    lines = iter(stream.readline, b"")
    first = next(lines, b"")
    if first:
        yield first[len(_UTF8_BOM):] if first.startswith(_UTF8_BOM) else first
    yield from lines


def _invalid_utf8(
    stage: str, location: str, raw: bytes, error: UnicodeDecodeError
) -> DeadLetter:
    return DeadLetter.for_row(
        stage,
        "invalid_utf8",
        f"{location} is not UTF-8 ({error.reason} at byte {error.start}); "
        "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
        raw,
        source=location,
    )


def _parse_jsonl(
    path: str, stream: BinaryIO, source: CorpusSource, stage: str
) -> Iterator[dict | DeadLetter]:
    for line_number, raw in enumerate(raw_lines(stream), start=1):
        location = f"{path}:{line_number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield _invalid_utf8(stage, location, raw, error)
            continue
        if not line.strip():
            continue  # a blank line is not a row
        try:
            row = json.loads(line, parse_constant=lambda _: None)
        except (ValueError, RecursionError) as error:
            yield DeadLetter.for_row(
                stage,
                "malformed_json",
                f"{location} is not valid JSON ({error}); write one JSON object per line",
                line,
                source=location,
            )
            continue
        if not isinstance(row, dict):
            yield DeadLetter.for_row(
                stage,
                "malformed_json",
                f"{location} is a JSON {type(row).__name__}, not an object; write one JSON object "
                "per line (a JSON array file converts with: jq -c '.[]')",
                line,
                source=location,
            )
            continue
        yield row_to_document(row, location, source, stage)


class DecodedLines:
    """Decodes lines for ``csv.reader``; remembers each record's raw lines and first line number.

    ``csv.reader`` pulls exactly the lines of one record (quoted fields span lines), so what is
    read and reset after each record tells which physical lines it took and whether one of them
    was not UTF-8.
    """

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self.raw_record: list[bytes] = []
        self.decode_error: UnicodeDecodeError | None = None
        self.lines_read = 0
        self.first_line = 1

    def __iter__(self) -> "DecodedLines":
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.lines_read += 1
        self.raw_record.append(raw)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self.decode_error = self.decode_error or error
            return raw.decode("utf-8", errors="replace")

    def start_record(self) -> None:
        self.raw_record = []
        self.decode_error = None
        self.first_line = self.lines_read + 1


def _parse_csv(
    path: str, stream: BinaryIO, source: CorpusSource, stage: str
) -> Iterator[dict | DeadLetter]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    lines = DecodedLines(raw_lines(stream))
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error:
        header = []
    if header is None:
        return  # an empty file has no rows
    if not header or lines.decode_error is not None or len(set(header)) != len(header):
        yield file_dead_letter(
            stage,
            path,
            f"the CSV header of {path!r} is not UTF-8, not valid CSV or repeats a column name "
            f"({header}); write a UTF-8 header with unique column names",
        )
        return
    while True:
        lines.start_record()
        location = f"{path}:{lines.first_line}"
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield from _bad_quote_span(stage, path, lines, f"is not valid CSV ({error})")
            continue
        if _swallows_records(lines.raw_record, len(header)):
            yield from _bad_quote_span(stage, path, lines, "holds lines that are records")
        elif lines.decode_error is not None:
            yield _invalid_utf8(stage, location, b"".join(lines.raw_record), lines.decode_error)
        elif not record:
            continue  # a blank line is not a row
        elif len(record) != len(header):
            yield DeadLetter.for_row(
                stage,
                "csv_wrong_columns",
                f"{location} has {len(record)} columns but the header has {len(header)} "
                f"({header}); quote fields that contain commas",
                record,
                source=location,
            )
        else:
            yield row_to_document(dict(zip(header, record)), location, source, stage)


def _swallows_records(raw_record: list[bytes], width: int) -> bool:
    """Whether a record spanning lines has an inner line that is, on its own, a full CSV record.

    That is the mark of a stray quote: the quoted field runs over the next rows until some
    later quote closes it. A quoted field may legitimately span lines, but then its inner lines
    (neither the first nor the one holding the closing quote) rarely have exactly ``width``
    comma-separated fields. A two-line record has no inner line and is taken as it parses.

    >>> _swallows_records([b'1,"stray\\n', b'2,a good row\\n', b'3,end"\\n'], 2)
    True
    >>> _swallows_records([b'1,"a text\\n', b'over three\\n', b'lines"\\n'], 2)
    False
    """
    for raw in raw_record[1:-1]:
        text = raw.decode("utf-8", errors="replace")
        try:
            if len(next(csv.reader([text], strict=True), [])) == width:
                return True
        except csv.Error:
            continue
    return False


def _bad_quote_span(
    stage: str, path: str, lines: DecodedLines, problem: str
) -> Iterator[DeadLetter]:
    """One dead letter per physical line of a record that could not be parsed cleanly.

    Nothing inside the span is guessed back into a row: each line is counted as one input
    record, so the accounting holds on what the file physically contains.
    """
    first, count = lines.first_line, len(lines.raw_record)
    single = count == 1
    span = f"line {first}" if single else f"lines {first}-{first + count - 1}"
    fix = (
        "quote fields containing commas or quotes and double inner quotes (\"\")"
        if single
        else f"close the quote opened in line {first}, or double a literal quote (\"\")"
    )
    for offset, raw in enumerate(lines.raw_record):
        if not raw.strip():
            continue  # a blank line is not a row
        location = f"{path}:{first + offset}"
        yield DeadLetter.for_row(
            stage,
            "csv_malformed" if single else "csv_unbalanced_quote",
            f"{location}: the CSV record of {path!r} {span} {problem}; every line of it is "
            f"dead-lettered, none is guessed: {fix}",
            raw,
            source=location,
        )
