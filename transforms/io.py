"""Read stage: a sharded Parquet / JSON Lines / CSV corpus (local or ``gs://``) into documents.

Every input row ends either as a document or as a :class:`~transforms.dead_letter.DeadLetter`
(stage ``read``) with a cause; nothing crashes the job and nothing vanishes:

=====================  ==========================================================================
cause                  when
=====================  ==========================================================================
``malformed_json``     a JSON Lines line that is not a JSON object
``csv_wrong_columns``  a CSV record whose column count differs from the header's
``csv_malformed``      a CSV record the ``csv`` module rejects
``missing_text``       the text field (or a field of ``text_template``) is absent
``empty_text``         the text is null, empty or whitespace only (a null template field renders
                       as ``""``, as in :func:`~transforms.core.text_template.render_text`)
``non_string_text``    the text is a number, list, ...
``text_too_long``      the text has more than ``max_text_chars`` characters
``invalid_utf8``       a line (or a binary text value) that is not UTF-8; the good lines are kept
``bad_id``             an id that is a list, dict, ... (ints are converted to strings)
``bad_label``          ``label_field`` is set and the label is absent or not a class
``duplicate_id``       a second row with an id already seen (the row with the smallest
                       ``source`` is kept)
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

The parsing is plain Python (:func:`parse_file`), so it is tested without Beam; :class:`ReadCorpus`
is the thin Beam wrapper around it.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime
import decimal
import gzip
import json
import math
import string
import zlib
from typing import Any, BinaryIO, Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.core.ids import content_id
from transforms.core.text_template import render_text, template_fields
from transforms.dead_letter import DEAD_LETTER_TAG, METRICS_NAMESPACE, DeadLetter, encodable

DOCUMENTS_TAG = "documents"
STAGE = "read"
FORMATS = ("auto", "parquet", "jsonl", "csv")
FORMAT_BY_EXTENSION = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
GZIP_EXTENSION = ".gz"
PARQUET_BATCH_ROWS = 1024
_UTF8_BOM = b"\xef\xbb\xbf"
# Raised by the csv module when a field exceeds its limit; text length is judged by
# max_text_chars instead, so the limit is raised (never lowered) to this bound.
_CSV_FIELD_LIMIT = 2**31 - 1
# Errors that mean "the bytes of this file cannot be read", as opposed to a bad row (a csv.Error
# reaching parse_file comes from the header; record errors are routed per record).
_FILE_ERRORS = (OSError, EOFError, zlib.error, pa.ArrowException, csv.Error)
# Files are opened as raw bytes; parse_file decompresses .gz itself, the same way in tests.
_RAW_BYTES = CompressionTypes.UNCOMPRESSED


@dataclasses.dataclass(frozen=True)
class CorpusSource:
    """Where the corpus is and how its rows become documents.

    Attributes:
        pattern: A glob, or a comma-separated list of globs, local or ``gs://``.
        format: ``auto`` (by extension: ``.parquet``/``.pq``, ``.jsonl``/``.json``/``.ndjson``,
            ``.csv``; a further ``.gz`` is decompressed for the text formats), ``parquet``,
            ``jsonl`` or ``csv``.
        id_field: The id column; ``None``, an absent column or a null value gives
            ``content_id(text)``.
        text_field: The column holding the text to embed.
        text_template: Renders the text from fields instead, e.g.
            ``"{entity1} [SEP] {entity2} [SEP] {text}"``.
        label_field: When set, the gold label column (an int class id, or a class name listed in
            ``class_names``) read into ``doc["label"]``.
        class_names: The class names, in class-id order.
        max_text_chars: Longer texts go to the dead letter (``text_too_long``).
        split: A tag copied into every document (``corpus``, ``dev``, ...).
        text_required: ``False`` for non-text corpora (``--embedding_field``, ``--modality
            image``): a row without the text field gets the text ``""`` and, without an id, the
            content id of the whole row.
    """

    pattern: str
    format: str = "auto"
    id_field: str | None = "id"
    text_field: str = "text"
    text_template: str | None = None
    label_field: str | None = None
    class_names: tuple[str, ...] = ()
    max_text_chars: int = 100_000
    split: str = "corpus"
    text_required: bool = True

    def __post_init__(self) -> None:
        if not split_patterns(self.pattern):
            raise ValueError(
                f"CorpusSource.pattern {self.pattern!r} names no file; pass a glob such as "
                "'gs://bucket/corpus/*.parquet' (several globs separated by commas)"
            )
        if self.format not in FORMATS:
            raise ValueError(
                f"CorpusSource.format {self.format!r} is not one of {FORMATS}; pick one, or "
                "'auto' to infer it from each file's extension"
            )
        if self.max_text_chars < 1:
            raise ValueError(
                f"CorpusSource.max_text_chars {self.max_text_chars} must be >= 1; "
                "pass the longest text length to accept"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(
                f"CorpusSource.class_names {self.class_names} repeat a name; "
                "list each class once, in class-id order"
            )
        if self.text_template is not None:
            check_template(self.text_template)


def read_stage(split: str) -> str:
    """The dead-letter stage of rows rejected while reading a source of this ``split``.

    >>> read_stage("corpus"), read_stage("dev")
    ('read', 'read_dev')
    """
    return STAGE if split == "corpus" else f"{STAGE}_{split}"


def split_patterns(pattern: str) -> list[str]:
    """Splits a comma-separated list of globs.

    >>> split_patterns("a/*.csv, gs://b/c-*.parquet,")
    ['a/*.csv', 'gs://b/c-*.parquet']
    """
    return [part.strip() for part in pattern.split(",") if part.strip()]


def check_template(template: str) -> list[str]:
    """Returns the field names of a text template, rejecting what would fail row by row.

    >>> check_template("{entity1} [SEP] {entity2} [SEP] {text}")
    ['entity1', 'entity2', 'text']

    Raises:
        ValueError: For a malformed or positional template, or an indexed, attribute, converted
            or formatted field (its failures would depend on each row's values).
    """
    names = template_fields(template)
    fancy = [
        name
        for _, name, format_spec, conversion in string.Formatter().parse(template)
        if name is not None and (not name.isidentifier() or format_spec or conversion)
    ]
    if fancy:
        raise ValueError(
            f"text_template {template!r} has fields {fancy} with an index, attribute, conversion "
            "or format spec; use plain named fields such as {text}"
        )
    return names


def resolve_format(path: str, declared: str) -> tuple[str, bool]:
    """Returns ``(format, gzipped)`` for a file.

    >>> resolve_format("gs://b/part-0001.jsonl.gz", "auto")
    ('jsonl', True)
    >>> resolve_format("data/rows.txt", "csv")
    ('csv', False)

    Raises:
        ValueError: When ``declared`` is ``auto`` and the extension is unknown, or for a
            gzipped Parquet file.
    """
    gzipped = path.lower().endswith(GZIP_EXTENSION)
    stem = path[: -len(GZIP_EXTENSION)] if gzipped else path
    file_format = declared
    if declared == "auto":
        dot = stem.rfind(".")
        file_format = FORMAT_BY_EXTENSION.get(stem[dot:].lower() if dot >= 0 else "", "")
        if not file_format:
            raise ValueError(
                f"cannot infer the format of {path!r} from its extension; name files "
                f"{sorted(FORMAT_BY_EXTENSION)} (optionally + .gz) or set format to one of "
                f"{FORMATS[1:]}"
            )
    if gzipped and file_format == "parquet":
        raise ValueError(
            f"{path!r} is a gzipped Parquet file; Parquet compresses internally, "
            "so write it uncompressed at file level (e.g. compression='zstd' inside)"
        )
    return file_format, gzipped


def parse_file(
    path: str, stream: BinaryIO, source: CorpusSource
) -> Iterator[dict | DeadLetter]:
    """Parses one file into documents and dead letters, never raising on bad data.

    Args:
        path: The file's path (used for the format, the ``.gz`` suffix and ``source``).
        stream: The file's raw (still compressed) bytes, opened for reading; Parquet needs a
            seekable stream.
        source: How rows become documents.

    Yields:
        A document dict per good row, a :class:`DeadLetter` (stage :func:`read_stage`) per bad
        row; a file that cannot be read yields one ``unreadable_file`` record (after the rows
        read before the failure).
    """
    stage = read_stage(source.split)
    for item in _parse_items(path, stream, source):
        if isinstance(item, DeadLetter) and item.stage != stage:
            item = dataclasses.replace(item, stage=stage)
        yield item


def _parse_items(
    path: str, stream: BinaryIO, source: CorpusSource
) -> Iterator[dict | DeadLetter]:
    try:
        file_format, gzipped = resolve_format(path, source.format)
    except ValueError as error:
        yield _file_dead_letter(path, str(error))
        return
    if gzipped:
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    if file_format == "parquet":
        items = _parse_parquet(path, stream, source)
    elif file_format == "jsonl":
        items = _parse_jsonl(path, stream, source)
    else:
        items = _parse_csv(path, stream, source)
    records = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except _FILE_ERRORS as error:
            yield _file_dead_letter(
                path,
                f"{path!r} could not be read after {records} records "
                f"({type(error).__name__}: {error}); replace the file with a valid "
                f"{file_format} file",
            )
            return
        records += 1
        yield item


def _file_dead_letter(path: str, message: str) -> DeadLetter:
    return DeadLetter(stage=STAGE, cause="unreadable_file", message=message, source=path)


def _parse_parquet(
    path: str, stream: BinaryIO, source: CorpusSource
) -> Iterator[dict | DeadLetter]:
    parquet_file = pq.ParquetFile(stream)
    row_number = 0
    for batch in parquet_file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            row_number += 1
            yield row_to_document(row, f"{path}:{row_number}", source)


def _raw_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Yields the lines of a binary stream, the first without a UTF-8 byte-order mark."""
    lines = iter(stream.readline, b"")
    first = next(lines, b"")
    if first:
        yield first[len(_UTF8_BOM):] if first.startswith(_UTF8_BOM) else first
    yield from lines


def _invalid_utf8(location: str, raw: bytes, error: UnicodeDecodeError) -> DeadLetter:
    return DeadLetter.for_row(
        STAGE,
        "invalid_utf8",
        f"{location} is not UTF-8 ({error.reason} at byte {error.start}); "
        "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
        raw,
        source=location,
    )


def _parse_jsonl(
    path: str, stream: BinaryIO, source: CorpusSource
) -> Iterator[dict | DeadLetter]:
    for line_number, raw in enumerate(_raw_lines(stream), start=1):
        location = f"{path}:{line_number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield _invalid_utf8(location, raw, error)
            continue
        if not line.strip():
            continue  # a blank line is not a row
        try:
            row = json.loads(line, parse_constant=lambda _: None)
        except (ValueError, RecursionError) as error:
            yield DeadLetter.for_row(
                STAGE,
                "malformed_json",
                f"{location} is not valid JSON ({error}); write one JSON object per line",
                line,
                source=location,
            )
            continue
        if not isinstance(row, dict):
            yield DeadLetter.for_row(
                STAGE,
                "malformed_json",
                f"{location} is a JSON {type(row).__name__}, not an object; write one JSON object "
                "per line (a JSON array file converts with: jq -c '.[]')",
                line,
                source=location,
            )
            continue
        yield row_to_document(row, location, source)


class _DecodedLines:
    """Decodes lines for ``csv.reader`` and remembers whether a line was not UTF-8.

    ``csv.reader`` pulls exactly the lines of one record (quoted fields span lines), so the flag
    read and reset after each record tells whether that record had an undecodable line.
    """

    def __init__(self, raw_lines: Iterator[bytes]) -> None:
        self._raw_lines = raw_lines
        self.raw_record: list[bytes] = []
        self.decode_error: UnicodeDecodeError | None = None

    def __iter__(self) -> "_DecodedLines":
        return self

    def __next__(self) -> str:
        raw = next(self._raw_lines)
        self.raw_record.append(raw)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self.decode_error = self.decode_error or error
            return raw.decode("utf-8", errors="replace")

    def start_record(self) -> None:
        self.raw_record = []
        self.decode_error = None


def _parse_csv(
    path: str, stream: BinaryIO, source: CorpusSource
) -> Iterator[dict | DeadLetter]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    lines = _DecodedLines(_raw_lines(stream))
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return  # an empty file has no rows
    if lines.decode_error is not None or len(set(header)) != len(header):
        yield _file_dead_letter(
            path,
            f"the CSV header of {path!r} is not UTF-8 or repeats a column name ({header}); "
            "write a UTF-8 header with unique column names",
        )
        return
    while True:
        start_line = reader.line_num + 1
        location = f"{path}:{start_line}"
        lines.start_record()
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield DeadLetter.for_row(
                STAGE,
                "csv_malformed",
                f"{location} is not a valid CSV record ({error}); quote fields containing "
                "commas, quotes or newlines",
                b"".join(lines.raw_record),
                source=location,
            )
            continue
        if lines.decode_error is not None:
            yield _invalid_utf8(location, b"".join(lines.raw_record), lines.decode_error)
        elif not record:
            continue  # a blank line is not a row
        elif len(record) != len(header):
            yield DeadLetter.for_row(
                STAGE,
                "csv_wrong_columns",
                f"{location} has {len(record)} columns but the header has {len(header)} "
                f"({header}); quote fields that contain commas",
                record,
                source=location,
            )
        else:
            yield row_to_document(dict(zip(header, record)), location, source)


def row_to_document(
    row: dict[str, Any], location: str, source: CorpusSource
) -> dict | DeadLetter:
    """Turns one parsed row into a document, or a dead letter naming what is wrong with it.

    >>> doc = row_to_document({"id": 7, "text": "hi", "lang": "en"}, "a.jsonl:1", CorpusSource("a"))
    >>> doc == {"id": "7", "text": "hi", "fields": {"lang": "en"}, "source": "a.jsonl:1",
    ...         "split": "corpus"}
    True
    >>> row_to_document({"text": "  "}, "a.jsonl:2", CorpusSource("a")).cause
    'empty_text'
    """
    doc_id = None
    if source.id_field is not None:
        doc_id, problem = _id_string(row.get(source.id_field))
        if problem:
            message = f"{location}: {problem}; give each row a string or int id"
            return _row_dead_letter("bad_id", message, row, location)
    text, cause, problem = _row_text(row, source)
    if problem:
        return _row_dead_letter(cause, f"{location}: {problem}", row, location, doc_id or "")
    doc_id = doc_id or content_id(text if source.text_required else json.dumps(json_safe(row), sort_keys=True))
    document: dict[str, Any] = {
        "id": doc_id,
        "text": text,
        "fields": {
            name: json_safe(value)
            for name, value in row.items()
            if name not in (source.id_field, source.label_field)
            and (source.text_template is not None or name != source.text_field)
        },
        "source": location,
        "split": source.split,
    }
    if source.label_field is not None:
        label, problem = parse_label(row.get(source.label_field), source.class_names)
        if problem:
            message = f"{location}: field {source.label_field!r} {problem}"
            return _row_dead_letter("bad_label", message, row, location, doc_id)
        document["label"] = label
    return document


def _row_dead_letter(
    cause: str, message: str, row: Any, location: str, doc_id: str = ""
) -> DeadLetter:
    return DeadLetter.for_row(STAGE, cause, message, row, source=location, doc_id=doc_id)


def _id_string(value: Any) -> tuple[str | None, str]:
    """Returns ``(id or None when absent, problem)``; ints and integral floats become digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None, ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value)
        if encodable(text) != text:
            return None, f"id {encodable(text)!r} holds an unpaired surrogate (not UTF-8)"
        return (text if text.strip() else None), ""
    return None, f"id {value!r} is a {type(value).__name__}"


def _row_text(row: dict[str, Any], source: CorpusSource) -> tuple[str, str, str]:
    """Returns ``(text, cause, problem)``; ``problem`` is empty for a good text."""
    if not source.text_required and source.text_template is None and not row.get(source.text_field):
        return "", "", ""
    if source.text_template is not None:
        try:
            text: Any = render_text(row, source.text_template)
        except ValueError as error:
            return "", "missing_text", str(error)
    elif source.text_field not in row:
        return "", "missing_text", (
            f"no field {source.text_field!r} (fields: {sorted(row)}); "
            "set text_field to the text column"
        )
    else:
        text = row[source.text_field]
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            problem = f"the text is not UTF-8 ({error.reason}); store text as UTF-8"
            return "", "invalid_utf8", problem
    if text is None:
        return "", "empty_text", "the text is null; drop the row or fill the text"
    if not isinstance(text, str):
        return "", "non_string_text", (
            f"the text is a {type(text).__name__} ({str(text)[:80]!r}), not a string; "
            "store text as strings"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        problem = f"the text holds an unpaired surrogate ({error.reason}); fix the encoding"
        return "", "invalid_utf8", problem
    if not text.strip():
        return "", "empty_text", "the text is empty or whitespace; drop the row or fill the text"
    if len(text) > source.max_text_chars:
        return "", "text_too_long", (
            f"the text has {len(text)} characters, more than "
            f"max_text_chars={source.max_text_chars}; "
            "split the document or raise max_text_chars"
        )
    return text, "", ""


def parse_label(value: Any, class_names: tuple[str, ...]) -> tuple[int, str]:
    """Returns ``(class id, problem)``; ``problem`` is empty for a good label.

    >>> parse_label("spam", ("ham", "spam"))
    (1, '')
    >>> parse_label(1.0, ())
    (1, '')
    >>> parse_label(2, ("ham", "spam"))[1]
    "holds 2, not a class id in 0..1 or a name in ('ham', 'spam'); fix the label or class_names"
    """
    label: int | None = None
    if isinstance(value, str) and value.strip() in class_names:
        label = class_names.index(value.strip())
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        label = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        label = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        label = value
    if label is not None and label >= 0 and (not class_names or label < len(class_names)):
        return label, ""
    if class_names:
        expected = f"a class id in 0..{len(class_names) - 1} or a name in {class_names}"
        fix = "fix the label or class_names"
    else:
        expected = "a non-negative int class id"
        fix = "fix the label, or set class_names to map class names"
    return -1, f"holds {value!r}, not {expected}; {fix}"


def json_safe(value: Any) -> Any:
    """Converts a Parquet / JSON / CSV value into plain JSON-safe Python.

    A string holding an unpaired surrogate (possible in JSON, never in UTF-8) is escaped, as
    Beam could not encode it:

    >>> json_safe({"when": datetime.date(2024, 1, 2), "x": float("nan"), "b": b"\\xff"})
    {'when': '2024-01-02', 'x': None, 'b': '/w=='}
    >>> json_safe("a\\ud800b")
    'a\\\\ud800b'
    """
    if isinstance(value, str):
        return encodable(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, datetime.timedelta)):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return str(value)


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
        try:
            matched = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        except (ValueError, OSError) as error:
            raise ValueError(
                f"corpus pattern {pattern!r} could not be expanded ({error}); check the path, "
                "the credentials, and for gs:// install apache-beam[gcp]"
            ) from None
        if not matched:
            raise ValueError(
                f"corpus pattern {pattern!r} matches no file; fix the path or glob "
                "(e.g. 'gs://bucket/corpus/part-*.parquet')"
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
                    columns = next(csv.reader(_DecodedLines(_raw_lines(stream))), [])
            except _FILE_ERRORS as error:
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
            record = _file_dead_letter(path, f"{path!r} cannot be opened ({error}); check access")
            yield self._dead_letter(
                dataclasses.replace(record, stage=read_stage(self._source.split))
            )
            return
        with stream:
            for item in parse_file(path, stream, self._source):
                yield self._dead_letter(item) if isinstance(item, DeadLetter) else item

    @staticmethod
    def _dead_letter(record: DeadLetter) -> beam.pvalue.TaggedOutput:
        Metrics.counter(METRICS_NAMESPACE, record.counter_name).inc()
        return beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, record)


class _KeepSmallestSourceFn(beam.DoFn):
    """Keeps, per id, the row with the smallest ``source``; the others are ``duplicate_id``."""

    def __init__(self, stage: str = STAGE) -> None:
        self._stage = stage
        self._rows = Metrics.counter(METRICS_NAMESPACE, f"{stage}/rows")
        self._duplicates = Metrics.counter(METRICS_NAMESPACE, f"{stage}/duplicate_id")

    def process(self, keyed: tuple[str, list[dict]]) -> Iterator[Any]:
        doc_id, documents = keyed
        ordered = sorted(documents, key=lambda doc: (doc["source"], doc["text"]))
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
                    f"{kept['source']}; make ids unique, or set id_field=None to derive ids "
                    "from the text",
                    duplicate,
                    source=duplicate["source"],
                    doc_id=doc_id,
                ),
            )


class DeduplicateById(beam.PTransform):
    """Keeps one document per id (the smallest ``source``), dead-lettering the others.

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
            | "KeepSmallestSource"
            >> beam.ParDo(_KeepSmallestSourceFn(self._stage)).with_outputs(
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
