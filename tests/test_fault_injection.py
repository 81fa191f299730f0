"""Fault injection: bad rows, bad files and failing LFs never crash a run and never vanish.

Three runs of the real pipeline (tiny TF-Hub model, FnApiRunner) are shared by the tests here:

* ``youtube``: the bundled YouTube corpus, clean and with :data:`INJECTED` faults added (bad rows
  in CSV, JSON Lines and Parquet files, an unreadable Parquet and gzip file, a bad dev row). The
  faulty run must dead-letter exactly the injected rows and label every good row as the clean
  run does.
* ``lf_run``: a small corpus with LFs that raise or return invalid values on some rows, and a
  precomputed votes column with bad vote lists.
* a run whose LF fails on most rows, into ``lf_run``'s output directory: it must fail, name the
  LF, and leave the previous output as it was.

The figures these tests check are quoted in ``docs/robustness.md``.
"""

from __future__ import annotations

import collections
import glob
import io
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter

from pipelines import weak_label
from pipelines.summary import format_summary
from tests.conftest import LF_SOURCE, make_corpus
from transforms.dead_letter import METRICS_NAMESPACE

DEMO_DATA = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "youtube_spam", "data")
DEMO_LFS = os.path.join(DEMO_DATA, os.pardir, "labeling_functions.py")
DEV_FILE = "Youtube05-Shakira.csv"
MAX_TEXT_CHARS = 2000  # the longest demo comment has 1200 characters
LONG_TEXT = "free iphone giveaway " * 120  # 2520 characters

# (file, bytes appended or written, the dead-letter key each injected row must get).
CSV_TAIL = (
    b"inj-cols,only three,columns\n"  # wrong column count
    b"inj-empty,Author,2014-01-01T00:00:00,,1\n"
    b'inj-blank,Author,2014-01-01T00:00:00,"   ",0\n'
    + f'inj-long,Author,2014-01-01T00:00:00,"{LONG_TEXT}",1\n'.encode()
    + b"inj-latin1,Author,2014-01-01T00:00:00,caf\xe9 au lait,0\n"  # not UTF-8
)
JSONL_ROWS = (
    b'{"COMMENT_ID": "inj-j1", "CONTENT": "unterminated\n'
    b"[1, 2, 3]\n"
    b'{"COMMENT_ID": "inj-j2", "CONTENT": null}\n'
    b'{"COMMENT_ID": "inj-j3", "CONTENT": 12345}\n'
    b'{"COMMENT_ID": "inj-j4", "CONTENT": ["a", "list"]}\n'
    b'{"COMMENT_ID": {"nested": 1}, "CONTENT": "an id that is an object"}\n'
    b'{"COMMENT_ID": "inj-j5", "AUTHOR": "no text field"}\n'
    b'{"COMMENT_ID": "inj-j6", "CONTENT": "caf\xe9"}\n'
    b'{"COMMENT_ID": "inj-j7", "CONTENT": "\\ud800 lone surrogate"}\n'
    b'{"COMMENT_ID": "inj-\\udc00", "CONTENT": "a good text under an id that is not UTF-8"}\n'
)
INJECTED = collections.Counter(
    {
        "read/csv_wrong_columns": 1,
        "read/empty_text": 2 + 1 + 1,  # CSV empty + blank, JSON null, Parquet null
        "read/text_too_long": 2,  # CSV, Parquet
        "read/invalid_utf8": 4,  # CSV line, JSON line, lone surrogate, Parquet binary
        "read/duplicate_id": 1,
        "read/missing_text": 2 + 1,  # a CSV file without the text column, a JSON row
        "read/malformed_json": 2,
        "read/non_string_text": 2,
        "read/bad_id": 2,  # an object, a lone surrogate
        "read/unreadable_file": 2,  # a corrupt Parquet file, a corrupt gzip file
        "read_dev/bad_label": 1,
    }
)
INJECTED_CORPUS_ROWS = sum(n for key, n in INJECTED.items() if key.startswith("read/"))


def _inject(directory: str) -> None:
    """Adds every fault of :data:`INJECTED` to a copy of the demo corpus in ``directory``."""
    with open(os.path.join(directory, "Youtube01-Psy.csv"), encoding="utf-8") as handle:
        first_id = handle.readlines()[1].split(",")[0]
    with open(os.path.join(directory, "Youtube01-Psy.csv"), "ab") as handle:
        handle.write(CSV_TAIL)
    with open(os.path.join(directory, "Youtube99-duplicate.csv"), "w", encoding="utf-8") as handle:
        handle.write(f"COMMENT_ID,AUTHOR,DATE,CONTENT,CLASS\n{first_id},X,2014,another text,1\n")
    with open(os.path.join(directory, "Youtube98-no-text.csv"), "w", encoding="utf-8") as handle:
        handle.write("COMMENT_ID,AUTHOR,DATE,CLASS\ninj-nt1,A,2014,1\ninj-nt2,B,2014,0\n")
    with open(os.path.join(directory, "zz-injected.jsonl"), "wb") as handle:
        handle.write(JSONL_ROWS)
    # Sorts first, so preflight must skip it rather than fail on it.
    with open(os.path.join(directory, "000-corrupt.parquet"), "wb") as handle:
        handle.write(b"PAR1 this is not a parquet file")
    with open(os.path.join(directory, "broken.csv.gz"), "wb") as handle:
        handle.write(b"not gzip at all")
    table = pa.table(
        {
            "COMMENT_ID": ["inj-p1", "inj-p2", "inj-p3"],
            "CONTENT": pa.array([None, b"\xff\xfe", LONG_TEXT.encode()], pa.binary()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    with open(os.path.join(directory, "rows.parquet"), "wb") as handle:
        handle.write(sink.getvalue())
    with open(os.path.join(directory, "dev", DEV_FILE), "ab") as handle:
        handle.write(b"inj-dev,Author,2014-01-01T00:00:00,a dev row with a garbled label,maybe\n")


def _copy_demo(directory: str) -> None:
    os.makedirs(os.path.join(directory, "dev"))
    for path in glob.glob(os.path.join(DEMO_DATA, "*.csv")):
        shutil.copy(path, directory)
    shutil.copy(os.path.join(DEMO_DATA, DEV_FILE), os.path.join(directory, "dev", DEV_FILE))


def _run_youtube(directory: str, model: str, output: str, extensions: tuple[str, ...]):
    patterns = ",".join(f"{directory}/*{ext}" for ext in extensions)
    return weak_label.run(
        [
            "--input", patterns,
            "--id_field", "COMMENT_ID", "--text_field", "CONTENT",
            "--labeling_functions", DEMO_LFS,
            "--dev_input", os.path.join(directory, "dev", DEV_FILE), "--label_field", "CLASS",
            "--max_text_chars", str(MAX_TEXT_CHARS),
            "--model", model, "--output", output,
            "--num_neighbours", "10",
            "--runner=FnApiRunner",
        ]
    )  # fmt: skip


def _summary(output: str) -> dict:
    with open(os.path.join(output, "summary.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _dead_letters(output: str) -> list[dict]:
    with open(os.path.join(output, "errors", "dead_letter-00000-of-00001.jsonl"), "rb") as handle:
        return [json.loads(line) for line in handle]


def _labels(output: str) -> list[dict]:
    return pq.read_table(os.path.join(output, "labels", "part-00000-of-00001.parquet")).to_pylist()


def _counters(result) -> dict[str, int]:
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    totals: dict[str, int] = collections.Counter()
    for counter in query["counters"]:
        totals[counter.key.metric.name] += counter.committed
    return dict(totals)


@pytest.fixture(scope="module")
def youtube(tmp_path_factory, tiny_model):
    """The demo corpus run clean and with :data:`INJECTED` faults."""
    root = tmp_path_factory.mktemp("youtube_faults")
    clean, faulty = str(root / "clean"), str(root / "faulty")
    _copy_demo(clean)
    _copy_demo(faulty)
    _inject(faulty)
    _run_youtube(clean, tiny_model, str(root / "out_clean"), (".csv",))
    result = _run_youtube(
        faulty, tiny_model, str(root / "out_faulty"), (".csv", ".jsonl", ".parquet", ".csv.gz")
    )
    return {
        "clean": str(root / "out_clean"),
        "faulty": str(root / "out_faulty"),
        "counters": _counters(result),
    }


def test_injected_rows_are_all_dead_lettered_and_counted(youtube):
    clean, faulty = _summary(youtube["clean"])["rows"], _summary(youtube["faulty"])["rows"]
    # The five UCI files hold 1961 physical records: Youtube04-Eminem.csv has a stray quote in
    # line 271 that swallows lines 272-276, which the csv module reads as one record.
    assert clean["input"] == 1961
    assert clean["dead_letter_by_cause"]["read/csv_unbalanced_quote"] == 6
    assert clean["dev_input"] == 370 and clean["dev_rows_merged"] == 369
    assert faulty["input"] == clean["input"] + INJECTED_CORPUS_ROWS
    assert faulty["dev_input"] == clean["dev_input"] + 1
    assert faulty["dev_rows_merged"] == clean["dev_rows_merged"]
    assert faulty["labelled"] == clean["labelled"] == clean["documents"] == 1952
    expected = collections.Counter(clean["dead_letter_by_cause"]) + INJECTED
    assert faulty["dead_letter_by_cause"] == dict(expected)
    for rows in (clean, faulty):
        assert rows["accounted"] is True
        assert rows["labelled"] + rows["dead_letter"] == (
            rows["input"] + rows["dev_input"] - rows["dev_rows_merged"]
        )
    assert "every row accounted for: 1952 labelled + 34 dead-lettered" in format_summary(
        _summary(youtube["faulty"]), youtube["faulty"]
    )


def test_beam_counters_match_the_summary(youtube):
    by_cause = _summary(youtube["faulty"])["rows"]["dead_letter_by_cause"]
    counters = youtube["counters"]
    for key, rows in by_cause.items():
        assert counters[key] == rows, key
    assert counters["attach_gold/dev_rows_merged"] == 369


def test_every_dead_letter_carries_row_stage_cause_and_message(youtube):
    records = [r for r in _dead_letters(youtube["faulty"]) if r["counts_as_input_row"]]
    assert len(records) == _summary(youtube["faulty"])["rows"]["dead_letter"]
    for record in records:
        assert record["stage"] in ("read", "read_dev") and record["cause"] and record["message"]
        assert record["source"], record
        if record["cause"] != "unreadable_file":
            assert record["payload"], record
    by_id = {r["doc_id"]: r for r in records if r["doc_id"]}
    assert by_id["inj-long"]["cause"] == "text_too_long"
    assert f"max_text_chars={MAX_TEXT_CHARS}" in by_id["inj-long"]["message"]
    assert by_id["inj-j3"]["cause"] == "non_string_text" and "12345" in by_id["inj-j3"]["payload"]
    assert by_id["inj-dev"]["stage"] == "read_dev" and by_id["inj-dev"]["cause"] == "bad_label"
    latin1 = next(r for r in records if "caf\\xe9 au lait" in r["payload"])
    assert latin1["cause"] == "invalid_utf8" and "iconv" in latin1["message"]
    unreadable = [r["source"] for r in records if r["cause"] == "unreadable_file"]
    files = sorted(os.path.basename(source) for source in unreadable)
    assert files == ["000-corrupt.parquet", "broken.csv.gz"]


EXACT_COLUMNS = ("label", "label_name", "votes", "extended_votes", "covered", "split", "gold")


def test_every_good_row_is_labelled_as_in_the_clean_run(youtube):
    clean, faulty = _labels(youtube["clean"]), _labels(youtube["faulty"])
    assert [row["id"] for row in faulty] == [row["id"] for row in clean]
    for expected, row in zip(clean, faulty):
        for column in EXACT_COLUMNS:
            assert row[column] == expected[column], (row["id"], column)
        # Equal up to float32 rounding: see "Reproducibility" in docs/robustness.md.
        np.testing.assert_allclose(row["probs"], expected["probs"], rtol=0, atol=1e-6)


# ---------------------------------------------------------------- failing LFs and bad vote lists

FAILING_LFS = LF_SOURCE + '''

@labeling_function()
def crashes_sometimes(x):
    if int(x.id[-2:]) % 20 == 0:
        raise ZeroDivisionError("boom on " + x.id)
    return ABSTAIN


@labeling_function()
def returns_float(x):
    return 1.5 if int(x.id[-2:]) % 25 == 1 else ABSTAIN
'''
CRASH_IDS = [f"doc{i:04d}" for i in range(90) if i % 20 == 0]
INVALID_IDS = [f"doc{i:04d}" for i in range(90) if i % 25 == 1]
BAD_VOTES = {
    "doc0003": [1],  # wrong length
    "doc0004": [1, 7],  # out of range
    "doc0005": "1,0",  # not a list
    "doc0006": None,
    "doc0007": [True, 0],  # a bool is not a class
}


def _lf_run(corpus_dir, model: str, output: str, lf_name: str, lf_source: str):
    lfs = os.path.join(corpus_dir, f"{lf_name}.py")
    with open(lfs, "w", encoding="utf-8") as handle:
        handle.write(lf_source)
    return weak_label.run(
        [
            "--input", os.path.join(corpus_dir, "corpus.jsonl"),
            "--labeling_functions", lfs, "--votes_field", "weak", "--lf_names", "w0,w1",
            "--model", model, "--output", output, "--num_neighbours", "5",
            "--runner=FnApiRunner",
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def lf_run(tmp_path_factory, tiny_model):
    """A 90-row corpus with failing LFs and five bad vote lists."""
    root = tmp_path_factory.mktemp("lf_faults")
    rows = make_corpus(90)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            weak = BAD_VOTES.get(row["id"], [row["label"], -1])
            handle.write(json.dumps({"id": row["id"], "text": row["text"], "weak": weak}) + "\n")
    output = str(root / "out")
    result = _lf_run(root, tiny_model, output, "failing_lfs", FAILING_LFS)
    return {"root": root, "output": output, "counters": _counters(result), "model": tiny_model}


def test_lf_failures_abstain_and_are_counted_and_sampled(lf_run):
    summary = _summary(lf_run["output"])
    lfs = {lf["lf"]: lf for lf in summary["lfs"]}
    assert lfs["crashes_sometimes"]["failures"] == len(CRASH_IDS) == 5
    assert lfs["crashes_sometimes"]["failure_sample_ids"] == CRASH_IDS
    assert lfs["returns_float"]["failures"] == len(INVALID_IDS) == 4
    assert lfs["has_link"]["failures"] == 0 and lfs["has_link"]["failure_sample_ids"] == []
    assert lf_run["counters"]["lf_failures/crashes_sometimes"] == 5
    samples = [r for r in _dead_letters(lf_run["output"]) if r["lf"]]
    crashes = sorted(r["doc_id"] for r in samples if r["lf"] == "crashes_sometimes")
    assert crashes == CRASH_IDS
    for record in samples:
        assert record["counts_as_input_row"] is False and record["stage"] == "apply_lfs"
        if record["lf"] == "crashes_sometimes":
            assert record["cause"] == "lf_exception"
            assert "ZeroDivisionError: boom on " + record["doc_id"] in record["payload"]
        else:
            assert record["cause"] == "lf_invalid_value" and "returned 1.5" in record["message"]
    labels = {row["id"]: row for row in _labels(lf_run["output"])}
    names = [lf["lf"] for lf in summary["lfs"]]
    for doc_id in CRASH_IDS + INVALID_IDS:
        if doc_id in labels:  # a failing LF abstains; the row is still labelled
            assert labels[doc_id]["votes"][names.index("crashes_sometimes")] == -1
            assert labels[doc_id]["votes"][names.index("returns_float")] == -1


def test_bad_vote_lists_are_dead_lettered(lf_run):
    rows = _summary(lf_run["output"])["rows"]
    assert rows["input"] == 90 and rows["labelled"] == 90 - len(BAD_VOTES)
    assert rows["dead_letter_by_cause"] == {"apply_lfs/bad_votes": len(BAD_VOTES)}
    assert rows["accounted"] is True
    bad = sorted(r["doc_id"] for r in _dead_letters(lf_run["output"]) if r["cause"] == "bad_votes")
    assert bad == sorted(BAD_VOTES)
    assert not set(BAD_VOTES) & {row["id"] for row in _labels(lf_run["output"])}


def test_an_lf_failing_too_often_fails_the_run_and_keeps_the_previous_output(lf_run):
    output = lf_run["output"]
    before = {
        name: open(os.path.join(output, name), "rb").read()
        for name in ("labels/part-00000-of-00001.parquet", "summary.json", "_SUCCESS")
    }
    mostly_failing = LF_SOURCE + '''

@labeling_function()
def mostly_crashes(x):
    if not x.id.endswith("7"):
        raise KeyError("missing resource")
    return ABSTAIN
'''
    with pytest.raises(Exception, match=r"'mostly_crashes' failed on 81 of 90 documents"):
        _lf_run(lf_run["root"], lf_run["model"], output, "mostly_failing", mostly_failing)
    for name, data in before.items():
        with open(os.path.join(output, name), "rb") as handle:
            assert handle.read() == data, name
    staged = glob.glob(os.path.join(output, "_staging-*"))
    assert len(staged) == 1  # the failed run's files stay out of the output, for inspection
    assert os.path.exists(os.path.join(staged[0], "labels", "part-00000-of-00001.parquet"))
    assert not os.path.exists(os.path.join(staged[0], "_SUCCESS"))


# ------------------------------------------------- hostile input: silent loss, crashes and hangs

HOSTILE_LFS = LF_SOURCE + '''
import sys
import time


@labeling_function()
def mutator(x):
    x["text"] = "MUTATED " + x["text"]
    if "tags" in x:
        x["tags"].append("added by mutator")
    return ABSTAIN


@labeling_function()
def sees_contamination(x):
    return 1 if x.text.startswith("MUTATED") or len(x.get("tags", [])) > 1 else 0


@labeling_function()
def exits(x):
    if int(x.id[-2:]) % 30 == 3:
        raise SystemExit(1)
    if int(x.id[-2:]) % 30 == 5:
        raise KeyboardInterrupt
    return ABSTAIN


@labeling_function()
def slow(x):
    if x.id == "doc0002":
        time.sleep(6)
    return ABSTAIN


@labeling_function()
def noisy(x):
    print("N" * 100_000)
    print("E" * 10, file=sys.stderr)
    return ABSTAIN
'''
STRAY_QUOTE_LINES = [11, 12, 13, 14]  # line 11 opens a quote that line 14 closes
DUPLICATE_LINES = (9, 10)  # the same id in lines 9 and 10: line 9 is the first occurrence


def _hostile_corpus(root) -> None:
    rows = make_corpus(60)
    lines = ["id,text"]
    for i, row in enumerate(rows[:40]):
        line_number = i + 2
        doc_id = rows[7]["id"] if line_number == DUPLICATE_LINES[1] else row["id"]
        text = row["text"]
        if line_number == STRAY_QUOTE_LINES[0]:
            text = '"stray quote opens here ' + text
        if line_number == STRAY_QUOTE_LINES[-1]:
            text = text + ' closes here"'
        lines.append(f"{doc_id},{text}")
    (root / "corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(root / "extra.jsonl", "w", encoding="utf-8") as handle:
        for row in rows[40:]:
            handle.write(json.dumps({"id": row["id"], "text": row["text"], "tags": ["t"]}) + "\n")
    names = {0: "ham", 1: "SPAM"}
    with open(root / "dev.jsonl", "w", encoding="utf-8") as handle:
        for row in rows[40:60]:
            label = names[row["label"]] if int(row["id"][-2:]) % 3 else names[row["label"]].title()
            handle.write(json.dumps({"id": row["id"], "text": row["text"], "label": label}) + "\n")
    (root / "hostile_lfs.py").write_text(HOSTILE_LFS, encoding="utf-8")


def _hostile_argv(root, model: str, output: str, *extra: str) -> list[str]:
    return [
        "--input", str(root / "corpus.csv"), "--input", str(root / "extra.jsonl"),
        "--dev_input", str(root / "dev.jsonl"),
        "--labeling_functions", str(root / "hostile_lfs.py"),
        "--model", model, "--output", output, "--num_neighbours", "5",
        "--lf_timeout_s", "1", "--runner=FnApiRunner", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_model):
    """One run over hostile input: a stray CSV quote, a duplicate id, LFs that mutate their row,
    raise SystemExit / KeyboardInterrupt, overrun their time budget and print 100 kB per row,
    and dev labels written as class names in any case."""
    root = tmp_path_factory.mktemp("hostile")
    _hostile_corpus(root)
    output = str(root / "out")
    import time

    started = time.monotonic()
    result = weak_label.run(_hostile_argv(root, tiny_model, output))
    return {
        "root": root, "output": output, "counters": _counters(result), "model": tiny_model,
        "seconds": time.monotonic() - started,
    }  # fmt: skip


def test_a_stray_csv_quote_dead_letters_every_physical_line_it_swallows(hostile):
    rows = _summary(hostile["output"])["rows"]
    assert rows["input"] == 40 + 20  # physical records, not the csv module's merged ones
    assert rows["dead_letter_by_cause"]["read/csv_unbalanced_quote"] == len(STRAY_QUOTE_LINES)
    assert rows["accounted"] is True
    quoted = [r for r in _dead_letters(hostile["output"]) if r["cause"] == "csv_unbalanced_quote"]
    sources = sorted(int(r["source"].rsplit(":", 1)[1]) for r in quoted)
    assert sources == STRAY_QUOTE_LINES
    assert all(r["source"].startswith(str(hostile["root"] / "corpus.csv")) for r in quoted)
    assert "close the quote opened in line 11" in quoted[0]["message"]


def test_duplicate_ids_keep_the_first_occurrence_in_input_order(hostile):
    duplicates = [r for r in _dead_letters(hostile["output"]) if r["cause"] == "duplicate_id"]
    assert [r["source"].rsplit(":", 1)[1] for r in duplicates] == [str(DUPLICATE_LINES[1])]
    assert "first occurrence in input order" in duplicates[0]["message"]
    assert f"corpus.csv:{DUPLICATE_LINES[0]} (the first" in duplicates[0]["message"]


def test_an_lf_that_mutates_its_row_does_not_contaminate_later_lfs(hostile):
    names = [lf["lf"] for lf in _summary(hostile["output"])["lfs"]]
    labels = _labels(hostile["output"])
    column = names.index("sees_contamination")
    assert len(labels) > 40 and all(row["votes"][column] == 0 for row in labels)


def test_an_lf_raising_systemexit_or_keyboardinterrupt_abstains_and_is_counted(hostile):
    summary = _summary(hostile["output"])
    exits = next(lf for lf in summary["lfs"] if lf["lf"] == "exits")
    labelled = {row["id"] for row in _labels(hostile["output"])}
    expected = sorted(i for i in labelled if int(i[-2:]) % 30 in (3, 5))
    assert exits["failures"] == len(expected) >= 3
    samples = [r for r in _dead_letters(hostile["output"]) if r["lf"] == "exits"]
    assert {r["message"].split(" ")[2].rstrip(":") for r in samples} == {
        "SystemExit", "KeyboardInterrupt"
    }  # fmt: skip


def test_an_lf_over_its_time_budget_abstains_and_counts_as_a_timeout(hostile):
    summary = _summary(hostile["output"])
    slow = next(lf for lf in summary["lfs"] if lf["lf"] == "slow")
    assert slow["failures"] == 1 and slow["failure_sample_ids"] == ["doc0002"]
    timeouts = [r for r in _dead_letters(hostile["output"]) if r["cause"] == "lf_timeout"]
    assert [r["doc_id"] for r in timeouts] == ["doc0002"]
    assert "--lf_timeout_s=1" in timeouts[0]["message"]


def test_lf_console_output_is_captured_with_a_bounded_sample(hostile):
    samples = [r for r in _dead_letters(hostile["output"]) if r["cause"] == "lf_output"]
    assert 0 < len(samples) <= 20 and {r["lf"] for r in samples} == {"noisy"}
    assert all(len(r["payload"]) <= 2000 and r["counts_as_input_row"] is False for r in samples)
    assert "100012 characters" in samples[0]["message"]
    assert hostile["counters"]["lf_output_chars/noisy"] == 100_012 * _summary(
        hostile["output"]
    )["rows"]["documents"]
    noisy = next(lf for lf in _summary(hostile["output"])["lfs"] if lf["lf"] == "noisy")
    assert noisy["failures"] == 0 and noisy["failure_sample_ids"] == []


def test_dev_labels_written_as_class_names_in_any_case_are_mapped(hostile):
    rows = _summary(hostile["output"])["rows"]
    assert not any(key.startswith("read_dev/") for key in rows["dead_letter_by_cause"])
    assert rows["dev_input"] == 20 and rows["dev_rows_merged"] == 20
    gold = {row["id"]: row["gold"] for row in _labels(hostile["output"]) if row["gold"] is not None}
    expected = {row["id"]: row["label"] for row in make_corpus(60)[40:]}
    assert gold == expected


def test_an_lf_that_hangs_fails_the_run_quickly_and_cleanly(hostile, tmp_path):
    import time

    hanging = LF_SOURCE + '''
import time


@labeling_function()
def hangs(x):
    time.sleep(120)
    return ABSTAIN
'''
    (hostile["root"] / "hanging_lfs.py").write_text(hanging, encoding="utf-8")
    argv = _hostile_argv(hostile["root"], hostile["model"], str(tmp_path / "out"))
    argv[argv.index("--labeling_functions") + 1] = str(hostile["root"] / "hanging_lfs.py")
    argv[argv.index("--lf_timeout_s") + 1] = "0.5"
    started = time.monotonic()
    with pytest.raises(weak_label.RunFailed, match=r"'hangs' failed on \d+ of \d+ documents"):
        weak_label.run(argv)
    assert time.monotonic() - started < 100  # 3 overruns of 0.5 s, then it is not called
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_too_many_dead_letters_fail_the_run(hostile, tmp_path):
    corpus = tmp_path / "mostly_bad.csv"
    lines = ["id,text"] + [f"c{i},good row {i} check out my song" for i in range(10)]
    lines += ['a1,"a quote that never closes'] + [f"b{i},row {i} swallowed" for i in range(20)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = [
        "--input", str(corpus), "--labeling_functions", str(hostile["root"] / "hostile_lfs.py"),
        "--model", hostile["model"], "--output", str(tmp_path / "out"), "--num_neighbours", "3",
        "--runner=FnApiRunner",
    ]  # fmt: skip
    with pytest.raises(
        weak_label.RunFailed, match=r"21 of 31 input rows \(67.7%\) were dead-lettered, more "
        r"than --max_dead_letter_rate=0.1"
    ):
        weak_label.run(argv)


# ------------------------------------------------------------------------ corrupt cache entries


def test_a_truncated_cache_part_and_a_garbage_manifest_are_reported_ignored_and_rebuilt(
    tmp_path, tiny_model, capsys
):
    rows = make_corpus(40)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    cache = tmp_path / "cache"

    def run(name: str) -> dict:
        weak_label.run([
            "--input", str(corpus), "--labeling_functions", str(lfs), "--model", tiny_model,
            "--output", str(tmp_path / name), "--cache_dir", str(cache), "--num_neighbours", "5",
            "--runner=FnApiRunner",
        ])  # fmt: skip
        return _summary(str(tmp_path / name))

    assert run("first")["run"]["cache_warnings"] == []
    capsys.readouterr()
    part = sorted(glob.glob(str(cache / "embeddings" / "*" / "part-*.parquet")))[0]
    with open(part, "r+b") as handle:
        handle.truncate(os.path.getsize(part) // 2)
    (cache / "manifest.json").write_text('{"schema_version": 2,\n garbage')
    warnings = run("second")["run"]["cache_warnings"]
    console = capsys.readouterr().err
    assert len(warnings) == 2
    assert f"cache file {part!r} is corrupt (its checksum does not match" in warnings[0] + warnings[1]
    assert f"cache manifest {str(cache / 'manifest.json')!r} is corrupt" in " ".join(warnings)
    for warning in warnings:
        assert f"epoxy-beam: warning: {warning}" in console
    assert _labels(str(tmp_path / "second")) == _labels(str(tmp_path / "first"))
    assert run("third")["run"]["cache_warnings"] == []  # rebuilt
