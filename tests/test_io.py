"""Tests of the read stage: parsing as plain Python, then ReadCorpus on the FnApiRunner."""

from __future__ import annotations

import collections
import datetime
import gzip
import io
import json
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io import fileio
from apache_beam.io.filesystem import FileMetadata
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

from transforms.core.ids import content_id
from transforms.dead_letter import DEAD_LETTER_TAG, METRICS_NAMESPACE, DeadLetter
from transforms.io import (
    DOCUMENTS_TAG,
    PARQUET_BATCH_ROWS,
    CorpusSource,
    DeduplicateById,
    ReadCorpus,
    _ParseFileFn,
    parse_file,
    preflight_source,
    resolve_format,
)


def parse_bytes(name: str, data: bytes, **source_options) -> tuple[list[dict], list[DeadLetter]]:
    """Parses ``data`` as if it were the file ``name``; returns (documents, dead letters)."""
    source = CorpusSource(pattern=name, **source_options)
    documents, dead_letters = [], []
    for item in parse_file(name, io.BytesIO(data), source):
        (dead_letters if isinstance(item, DeadLetter) else documents).append(item)
    return documents, dead_letters


def jsonl(*rows) -> bytes:
    """One line per row: dicts are JSON-encoded, bytes are written as they are."""
    lines = [row if isinstance(row, bytes) else json.dumps(row).encode() for row in rows]
    return b"".join(line + b"\n" for line in lines)


def causes(dead_letters: list[DeadLetter]) -> list[tuple[str, str]]:
    return [(record.cause, record.source) for record in dead_letters]


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------- JSON Lines


def test_jsonl_good_rows_become_documents():
    data = b"\xef\xbb\xbf" + jsonl(
        {"id": 7, "text": "first", "lang": "en", "score": 0.5},
        {"text": "no id here", "tags": ["a", "b"]},
        {"id": None, "text": "null id"},
    ) + b"\n"  # a trailing blank line is not a row
    documents, dead_letters = parse_bytes("c.jsonl", data, split="dev")
    assert dead_letters == []
    assert documents == [
        {"id": "7", "text": "first", "fields": {"lang": "en", "score": 0.5}, "source": "c.jsonl:1",
         "split": "dev"},
        {"id": content_id("no id here"), "text": "no id here", "fields": {"tags": ["a", "b"]},
         "source": "c.jsonl:2", "split": "dev"},
        {"id": content_id("null id"), "text": "null id", "fields": {}, "source": "c.jsonl:3",
         "split": "dev"},
    ]


def test_jsonl_bad_rows_are_dead_lettered_and_good_rows_kept():
    data = jsonl(
        {"id": "a", "text": "good one"},
        b'{"id": "b", "text": "unterminated',
        b"[1, 2]",
        b'{"id": "c", "text": "caf\xe9 latin-1"}',
        {"id": "d", "body": "no text field"},
        {"id": "e", "text": None},
        {"id": "f", "text": "  \t "},
        {"id": "g", "text": 42},
        {"id": "h", "text": ["a", "list"]},
        {"id": "i", "text": "x" * 11},
        {"id": ["j"], "text": "list id"},
        {"id": "k", "text": "lone \ud800 surrogate"},
        {"id": "l", "text": "good two", "x": float("nan")},
    )
    documents, dead_letters = parse_bytes("c.jsonl", data, max_text_chars=10)
    assert [(doc["id"], doc["source"], doc["fields"]) for doc in documents] == [
        ("a", "c.jsonl:1", {}),
        ("l", "c.jsonl:13", {"x": None}),
    ]
    assert causes(dead_letters) == [
        ("malformed_json", "c.jsonl:2"),
        ("malformed_json", "c.jsonl:3"),
        ("invalid_utf8", "c.jsonl:4"),
        ("missing_text", "c.jsonl:5"),
        ("empty_text", "c.jsonl:6"),
        ("empty_text", "c.jsonl:7"),
        ("non_string_text", "c.jsonl:8"),
        ("non_string_text", "c.jsonl:9"),
        ("text_too_long", "c.jsonl:10"),
        ("bad_id", "c.jsonl:11"),
        ("invalid_utf8", "c.jsonl:12"),
    ]
    assert all(record.stage == "read" and record.counts_as_input_row for record in dead_letters)
    assert [record.doc_id for record in dead_letters[3:9]] == ["d", "e", "f", "g", "h", "i"]
    too_long = dead_letters[8]
    assert "11 characters" in too_long.message and "max_text_chars=10" in too_long.message
    assert '"id": "i"' in too_long.payload


def test_gzipped_jsonl_is_decompressed():
    data = gzip.compress(jsonl({"id": 1, "text": "zipped"}, {"id": 2, "text": "also zipped"}))
    documents, dead_letters = parse_bytes("part-0.jsonl.gz", data)
    assert [(doc["id"], doc["text"]) for doc in documents] == [
        ("1", "zipped"), ("2", "also zipped")
    ]
    assert dead_letters == []


def test_truncated_gzip_keeps_rows_read_and_reports_the_file_once():
    rows = [{"id": i, "text": f"row {i} " + "pad " * 50} for i in range(200)]
    data = gzip.compress(jsonl(*rows))
    documents, dead_letters = parse_bytes("part-1.jsonl.gz", data[: len(data) // 2])
    assert 0 < len(documents) < 200
    assert [doc["id"] for doc in documents] == [str(i) for i in range(len(documents))]
    assert causes(dead_letters) == [("unreadable_file", "part-1.jsonl.gz")]
    assert f"after {len(documents)} records" in dead_letters[0].message


# ---------------------------------------------------------------- CSV


def test_csv_quoted_multiline_field_and_crlf():
    data = (
        b'id,text,author\r\n'
        b'1,"line one\r\nline two, with comma",ann\r\n'
        b'\r\n'
        b'2,"he said ""hi""",bob\r\n'
        b',no id,cy\r\n'
    )
    documents, dead_letters = parse_bytes("c.csv", data)
    assert dead_letters == []
    assert [(doc["id"], doc["text"], doc["fields"], doc["source"]) for doc in documents] == [
        ("1", "line one\r\nline two, with comma", {"author": "ann"}, "c.csv:2"),
        ("2", 'he said "hi"', {"author": "bob"}, "c.csv:5"),
        (content_id("no id"), "no id", {"author": "cy"}, "c.csv:6"),
    ]


def test_csv_bad_records_are_dead_lettered_and_parsing_continues():
    data = (
        b"id,text,CLASS\n"
        b"1,fine,0\n"
        b"2,too,many,columns,1\n"
        b'3,"multi\nline caf\xe9 latin-1",1\n'
        b"4,,1\n"
        b"5,fine too,spam\n"
        b"6,unlabelled,\n"
        b"7,bad label,3\n"
    )
    documents, dead_letters = parse_bytes(
        "c.csv", data, label_field="CLASS", class_names=("ham", "spam")
    )
    assert [(doc["id"], doc["label"], doc["fields"]) for doc in documents] == [
        ("1", 0, {}),
        ("5", 1, {}),
    ]
    assert causes(dead_letters) == [
        ("csv_wrong_columns", "c.csv:3"),
        ("invalid_utf8", "c.csv:4"),
        ("empty_text", "c.csv:6"),
        ("bad_label", "c.csv:8"),
        ("bad_label", "c.csv:9"),
    ]
    assert "multi\nline caf\\xe9" in dead_letters[1].payload
    assert "'3'" in dead_letters[4].message and "('ham', 'spam')" in dead_letters[4].message


@pytest.mark.parametrize(
    "data, expected",
    [(b"", []), (b"id,text\n", []), (b"id,text,id\n1,a,2\n", [("unreadable_file", "c.csv")])],
)
def test_csv_empty_header_only_and_repeated_header(data, expected):
    documents, dead_letters = parse_bytes("c.csv", data)
    assert documents == [] and causes(dead_letters) == expected


def test_text_template_renders_fields_and_keeps_the_raw_text_in_fields():
    data = b"e1,e2,text\nAspirin,headache,treats it\nIbuprofen,,x\n"
    template = "{e1} [SEP] {e2} [SEP] {text}"
    documents, dead_letters = parse_bytes("r.csv", data, id_field=None, text_template=template)
    assert [(doc["text"], doc["fields"]) for doc in documents] == [
        ("Aspirin [SEP] headache [SEP] treats it",
         {"e1": "Aspirin", "e2": "headache", "text": "treats it"}),
        ("Ibuprofen [SEP]  [SEP] x", {"e1": "Ibuprofen", "e2": "", "text": "x"}),  # CSV: no null
    ]
    assert documents[0]["id"] == content_id("Aspirin [SEP] headache [SEP] treats it")
    assert dead_letters == []
    documents, dead_letters = parse_bytes(
        "r.jsonl", jsonl({"e1": "A", "text": "t"}), text_template=template
    )
    assert documents == [] and causes(dead_letters) == [("missing_text", "r.jsonl:1")]
    assert "'e2'" in dead_letters[0].message


# ---------------------------------------------------------------- Parquet


def test_parquet_rows_across_batches_with_typed_columns():
    count = PARQUET_BATCH_ROWS + 5
    table = pa.table({
        "id": pa.array([i if i % 2 else None for i in range(count)], pa.int64()),
        "text": [f"doc {i}" for i in range(count)],
        "when": [datetime.datetime(2024, 1, 2, 3, 4, 5)] * count,
        "raw": [b"\xff\x00"] * count,
        "label": [i % 3 for i in range(count)],
    })
    documents, dead_letters = parse_bytes("p.parquet", parquet_bytes(table), label_field="label")
    assert dead_letters == [] and len(documents) == count
    assert documents[1] == {
        "id": "1", "text": "doc 1", "fields": {"when": "2024-01-02T03:04:05", "raw": "/wA="},
        "source": "p.parquet:2", "split": "corpus", "label": 1,
    }
    last = count - 1  # even: a null id
    assert (documents[-1]["id"], documents[-1]["source"]) == (
        content_id(f"doc {last}"), f"p.parquet:{count}"
    )


def test_parquet_bad_text_values():
    table = pa.table({"id": ["a", "b", "c", "d"], "text": [b"ok", b"\xff bad", None, b"   "]})
    documents, dead_letters = parse_bytes("p.pq", parquet_bytes(table))
    assert [(doc["id"], doc["text"]) for doc in documents] == [("a", "ok")]
    assert causes(dead_letters) == [
        ("invalid_utf8", "p.pq:2"), ("empty_text", "p.pq:3"), ("empty_text", "p.pq:4")
    ]
    numbers = pa.table({"text": [1.5]})
    _, dead_letters = parse_bytes("n.parquet", parquet_bytes(numbers))
    assert causes(dead_letters) == [("non_string_text", "n.parquet:1")]


def test_corrupt_parquet_is_one_unreadable_file_record():
    data = parquet_bytes(pa.table({"text": ["a", "b"]}))
    documents, dead_letters = parse_bytes("bad.parquet", data[:-20])
    assert documents == [] and causes(dead_letters) == [("unreadable_file", "bad.parquet")]


# ---------------------------------------------------------------- formats and config


def test_resolve_format():
    assert resolve_format("gs://b/x.NDJSON", "auto") == ("jsonl", False)
    assert resolve_format("x.csv.gz", "auto") == ("csv", True)
    assert resolve_format("x.data", "parquet") == ("parquet", False)
    with pytest.raises(ValueError, match="cannot infer the format of 'x.txt'"):
        resolve_format("x.txt", "auto")
    with pytest.raises(ValueError, match="gzipped Parquet"):
        resolve_format("x.parquet.gz", "auto")


def test_unknown_extension_found_at_run_time_is_dead_lettered():
    _, dead_letters = parse_bytes("notes.txt", b"hello\n")
    assert causes(dead_letters) == [("unreadable_file", "notes.txt")]


@pytest.mark.parametrize(
    "options, match",
    [
        ({"pattern": " , "}, "names no file"),
        ({"pattern": "x", "format": "xml"}, "not one of"),
        ({"pattern": "x", "max_text_chars": 0}, "must be >= 1"),
        ({"pattern": "x", "class_names": ("a", "a")}, "repeat a name"),
        ({"pattern": "x", "text_template": "{0} {text}"}, "positional"),
        ({"pattern": "x", "text_template": "{e1.upper} {text!r}"}, "plain named fields"),
        ({"pattern": "x", "text_template": "{text"}, "malformed"),
    ],
)
def test_corpus_source_rejects_bad_config(options, match):
    with pytest.raises(ValueError, match=match):
        CorpusSource(**options)


# ---------------------------------------------------------------- preflight


def test_preflight_returns_each_matched_file_once(tmp_path: Path):
    (tmp_path / "a.jsonl").write_bytes(jsonl({"text": "a"}))
    (tmp_path / "b.csv").write_bytes(b"id,text\n1,b\n")
    pattern = f"{tmp_path}/*.jsonl, {tmp_path}/*.csv,{tmp_path}/a.*"
    assert preflight_source(CorpusSource(pattern)) == [
        str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv")
    ]


def test_preflight_errors_name_the_pattern_and_the_fix(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.csv").mkdir()
    (tmp_path / "c.csv").write_bytes(b"id,body\n1,b\n")
    (tmp_path / "p.parquet").write_bytes(b"not parquet at all")
    cases = [
        (f"{tmp_path}/*.jsonl", r"matches no file; fix the path or glob"),
        (f"{tmp_path}/*.txt", r"cannot infer the format of .*notes.txt.* set format"),
        (f"{tmp_path}/sub.csv", r"sub.csv' is a directory; an input names files: use '.*sub.csv/\*"),
        (f"{tmp_path}/c.csv", r"has no column \['text'\].*set text_field"),
        (f"{tmp_path}/p.parquet", r"not a readable parquet file"),
    ]
    for pattern, match in cases:
        with pytest.raises(ValueError, match=match):
            preflight_source(CorpusSource(pattern))
    with pytest.raises(ValueError, match=r"has no column \['gold'\]"):
        preflight_source(CorpusSource(f"{tmp_path}/c.csv", text_field="body", label_field="gold"))


# ---------------------------------------------------------------- Beam


def test_parse_fn_routes_a_file_that_vanished_after_matching(tmp_path: Path):
    missing = fileio.ReadableFile(FileMetadata(str(tmp_path / "gone.csv"), 0))
    outputs = list(_ParseFileFn(CorpusSource("x")).process(missing))
    assert [(output.tag, output.value.cause) for output in outputs] == [
        (DEAD_LETTER_TAG, "unreadable_file")
    ]
    assert "gone.csv" in outputs[0].value.message


def run_and_collect_counters(pipeline: beam.Pipeline) -> dict[str, int]:
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    totals: dict[str, int] = collections.Counter()
    for counter in counters:
        totals[counter.key.metric.name] += counter.committed
    return dict(totals)


def test_read_corpus_accounts_for_every_row(tmp_path: Path):
    (tmp_path / "a.jsonl").write_bytes(jsonl(
        {"id": "a1", "text": "alpha"}, b"{broken", {"id": "dup", "text": "from jsonl"}
    ))
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(
        b'id,text,n\nb1,"two\nlines",1\nb2,,2\nb3,x,y,z\ndup,from csv,3\n'
    ))
    table = pa.table({"id": [1, 2], "text": ["c1", "c2"]})
    (tmp_path / "c.parquet").write_bytes(parquet_bytes(table))
    (tmp_path / "d.parquet").write_bytes(b"PAR1 corrupt")
    source = CorpusSource(f"{tmp_path}/*.jsonl,{tmp_path}/*.gz,{tmp_path}/*.parquet", split="dev")

    pipeline = beam.Pipeline(runner="FnApiRunner")
    outputs = pipeline | ReadCorpus(source)
    assert_that(
        outputs[DOCUMENTS_TAG] | beam.Map(lambda doc: (doc["id"], doc["text"], doc["split"])),
        equal_to([
            ("a1", "alpha", "dev"),
            ("dup", "from jsonl", "dev"),  # .../a.jsonl:3 sorts before .../b.csv.gz:6
            ("b1", "two\nlines", "dev"),
            ("1", "c1", "dev"),
            ("2", "c2", "dev"),
        ]),
        label="documents",
    )
    assert_that(
        outputs[DEAD_LETTER_TAG]
        | beam.Map(lambda record: (record.cause, record.source.rsplit("/", 1)[-1], record.doc_id)),
        equal_to([
            ("malformed_json", "a.jsonl:2", ""),
            ("empty_text", "b.csv.gz:4", "b2"),
            ("csv_wrong_columns", "b.csv.gz:5", ""),
            ("duplicate_id", "b.csv.gz:6", "dup"),
            ("unreadable_file", "d.parquet", ""),
        ]),
        label="dead_letters",
    )
    counters = run_and_collect_counters(pipeline)
    assert counters == {  # a dev source counts under read_dev/ (read_stage), apart from the corpus
        "read_dev/rows": 5,
        "read_dev/malformed_json": 1,
        "read_dev/empty_text": 1,
        "read_dev/csv_wrong_columns": 1,
        "read_dev/duplicate_id": 1,
        "read_dev/unreadable_file": 1,
    }


def test_deduplicate_by_id_keeps_the_first_occurrence_in_input_order_whatever_the_order():
    rows = [
        {"id": "x", "text": "third", "source": "b.csv:2"},
        {"id": "x", "text": "second", "source": "a.csv:10"},
        {"id": "x", "text": "first", "source": "a.csv:9"},  # line 9 comes before line 10
        {"id": "y", "text": "only", "source": "c.csv:2"},
    ]
    rule = "(the first occurrence in input order: files by name, then line)"
    for order in (rows, rows[::-1]):
        pipeline = beam.Pipeline(runner="FnApiRunner")
        outputs = pipeline | beam.Create(order) | DeduplicateById()
        assert_that(
            outputs[DOCUMENTS_TAG] | beam.Map(lambda doc: (doc["id"], doc["source"])),
            equal_to([("x", "a.csv:9"), ("y", "c.csv:2")]),
            label="kept",
        )
        assert_that(
            outputs[DEAD_LETTER_TAG] | beam.Map(lambda record: (record.source, record.message)),
            equal_to([
                ("a.csv:10", f"id 'x' at a.csv:10 duplicates the row kept from a.csv:9 {rule}; "
                 "make ids unique, or set id_field=None to derive ids from the text"),
                ("b.csv:2", f"id 'x' at b.csv:2 duplicates the row kept from a.csv:9 {rule}; "
                 "make ids unique, or set id_field=None to derive ids from the text"),
            ]),
            label="duplicates",
        )
        assert run_and_collect_counters(pipeline) == {"read/rows": 2, "read/duplicate_id": 2}
