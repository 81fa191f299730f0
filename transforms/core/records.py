"""Corpus sources and rows: where the corpus is, and how one parsed row becomes a document.

Plain Python (no Beam): :class:`CorpusSource` describes a source, :func:`row_to_document` turns
one row (a dict from any format) into a document or a :class:`DeadLetter` naming what is wrong,
:func:`parse_label` maps a gold label (a class id, or a class name in any case) to a class id.
The file formats are parsed by :mod:`transforms.core.parsing`; :mod:`transforms.io` is the Beam
wrapper.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import json
import math
import re
import string
from typing import Any

from transforms.core.dead_letter import DeadLetter, encodable
from transforms.core.ids import content_id
from transforms.core.text_template import render_text, template_fields

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
    """Splits a comma-separated list of globs; ``\\,`` is a comma inside a file name.

    >>> split_patterns("a/*.csv, gs://b/c-*.parquet,")
    ['a/*.csv', 'gs://b/c-*.parquet']
    >>> split_patterns(r"data/a\\,b.csv,c.csv")
    ['data/a,b.csv', 'c.csv']
    """
    parts = re.split(r"(?<!\\),", pattern)
    return [part.strip().replace("\\,", ",") for part in parts if part.strip()]


def join_patterns(patterns: list[str]) -> str:
    """The inverse of :func:`split_patterns`: commas in names are escaped.

    >>> join_patterns(["data/a,b.csv", "c.csv"])
    'data/a\\\\,b.csv,c.csv'
    """
    return ",".join(part.replace(",", "\\,") for part in patterns)


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


def row_to_document(
    row: dict[str, Any], location: str, source: CorpusSource, stage: str = ""
) -> dict | DeadLetter:
    """Turns one parsed row into a document, or a dead letter naming what is wrong with it.

    ``stage`` names the dead letter's stage (default :func:`read_stage` of the source's split).

    >>> doc = row_to_document({"id": 7, "text": "hi", "lang": "en"}, "a.jsonl:1", CorpusSource("a"))
    >>> doc == {"id": "7", "text": "hi", "fields": {"lang": "en"}, "source": "a.jsonl:1",
    ...         "split": "corpus"}
    True
    >>> row_to_document({"text": "  "}, "a.jsonl:2", CorpusSource("a")).cause
    'empty_text'
    """
    stage = stage or read_stage(source.split)
    doc_id = None
    if source.id_field is not None:
        doc_id, problem = _id_string(row.get(source.id_field))
        if problem:
            message = f"{location}: {problem}; give each row a string or int id"
            return _row_dead_letter(stage, "bad_id", message, row, location)
    text, cause, problem = _row_text(row, source)
    if problem:
        return _row_dead_letter(stage, cause, f"{location}: {problem}", row, location, doc_id or "")
    if not doc_id:
        content = text if source.text_required else json.dumps(json_safe(row), sort_keys=True)
        doc_id = content_id(content)
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
            return _row_dead_letter(stage, "bad_label", message, row, location, doc_id)
        document["label"] = label
    return document


def _row_dead_letter(
    stage: str, cause: str, message: str, row: Any, location: str, doc_id: str = ""
) -> DeadLetter:
    return DeadLetter.for_row(stage, cause, message, row, source=location, doc_id=doc_id)


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

    >>> parse_label("spam", ("ham", "spam")), parse_label(" SPAM", ("ham", "spam"))
    ((1, ''), (1, ''))
    >>> parse_label(1.0, ())
    (1, '')
    >>> parse_label(2, ("ham", "spam"))[1]
    "holds 2, not a class id in 0..1 or a name in ('ham', 'spam'); fix the label or class_names"
    """
    label: int | None = None
    by_name = {name.strip().casefold(): c for c, name in enumerate(class_names)}
    if isinstance(value, str) and value.strip().casefold() in by_name:
        label = by_name[value.strip().casefold()]
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


def input_order(source: str) -> tuple[str, int]:
    """The position of a row in the input: its file, then its line or row number, numerically.

    >>> sorted(["a.csv:10", "a.csv:9", "b.csv:1"], key=input_order)
    ['a.csv:9', 'a.csv:10', 'b.csv:1']
    """
    path, _, line = source.rpartition(":")
    return (path, int(line)) if line.isdigit() else (source, 0)
