"""The run report: summary additions, the HTML page, and the page in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines import weak_label
from pipelines.rendering import LF_COLUMNS, format_value, lf_table_view
from pipelines.report import ReportExtras, render_report
from pipelines.summary import RunCounts, build_summary, format_summary
from tests.conftest import LF_SOURCE, make_corpus
from transforms.core.diagnostics import (
    ConfidenceHistogram,
    ExampleReservoir,
    pairwise_overlap_conflict,
    source_hash,
    threshold_sweep,
)
from transforms.core.extension import extend_votes, nearest_voters
from transforms.core.ids import stable_hash
from transforms.core.labeler import (
    GOLD_DEFAULT_QUANTILE,
    QUANTILE_GRID,
    LabelerConfig,
    choose_thresholds,
    fit_labeler,
    select_fit_sample,
)
from transforms.core.statistics import LabelStatistics
from transforms.extend import NearestVoters
from transforms.report_inputs import attach_texts, matching_texts, wanted_documents

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
XSS = '<script>document.title="pwned"</script><b id="xss-marker">subscribe</b> & check'


# ---------------------------------------------------------------- an in-memory fitted run


def _clustered(n: int = 120, m: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    centres = rng.normal(size=(2, 8))
    x = centres[y] + 0.6 * rng.normal(size=(n, 8))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    votes = np.where(
        rng.random((n, m)) < 0.35, np.where(rng.random((n, m)) < 0.85, y[:, None], 1 - y[:, None]), -1
    ).astype(np.int8)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    idx = np.argsort(-sims, axis=1)[:, :5]
    nn_sim, nn_vote = nearest_voters(np.take_along_axis(sims, idx, 1), votes[idx])
    gold = np.where(rng.random(n) < 0.4, y, -1)
    ids = np.array([f"d{i:03d}" for i in range(n)])
    return ids, votes, nn_sim, nn_vote, x, gold, y


@pytest.fixture(scope="module")
def summary() -> dict:
    """A summary built from a real in-memory fit, with examples (one holding markup)."""
    ids, votes, nn_sim, nn_vote, x, gold, y = _clustered()
    names = ("lf_a", "lf_b", "lf_c", "lf_d")
    config = LabelerConfig(cardinality=2, min_gold=20)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, x, gold, config, names)
    sample = select_fit_sample(ids, votes, nn_sim, nn_vote, x, gold, config.sample_size)
    extended = extend_votes(votes, nn_sim, nn_vote, fitted.thresholds)
    eval_rows = [
        {"id": str(ids[i]), "split": "tune", "gold": int(y[i]), "votes": votes[i].tolist(),
         "extended_votes": extended[i].tolist(), "label": int(y[i])}
        for i in np.flatnonzero(gold >= 0)
    ]  # fmt: skip
    examples = [
        {"lf": 0, "kind": "voted", "id": "x<1>", "vote": 1, "text": XSS},
        {"lf": 0, "kind": "gained", "id": "d001", "vote": 0, "similarity": 0.8,
         "text": "plain", "source_id": "d002", "source_text": "a </q> source"},
    ]  # fmt: skip
    return build_summary(
        options={"input": "corpus/*.jsonl", "model": "m"},
        class_names=("HAM", "SP<A>M"),
        counts=RunCounts(
            documents_by_origin={"corpus": len(ids)},
            labelled=len(ids),
            dead_letters={"read/bad_json": 2},
            lf_failures={"lf_b": 1},
        ),
        fitted=fitted,
        sample=sample,
        raw_stats=LabelStatistics.empty(4, 2).add(votes),
        extended_stats=LabelStatistics.empty(4, 2).add(extended),
        eval_rows=eval_rows,
        model_fingerprint="fp",
        confidence=ConfidenceHistogram.empty(2).add(np.c_[np.full(len(ids), 0.9), y, np.ones(len(ids))]),
        examples=examples,
        run={"runner": "FnApiRunner", "wall_seconds": 1.5},
    )


class _TableParser(HTMLParser):
    """Collects the header keys and cell ``data-value``s of ``<table id=table_id>``."""

    def __init__(self, table_id: str):
        super().__init__()
        self._id, self._inside, self.keys, self.rows = table_id, False, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == self._id:
            self._inside = True
        elif self._inside and tag == "th" and "data-key" in attrs:
            self.keys.append(attrs["data-key"])
        elif self._inside and tag == "tr" and "data-lf" in attrs:
            self.rows.append([])
        elif self._inside and tag == "td" and self.rows:
            self.rows[-1].append(attrs.get("data-value"))

    def handle_endtag(self, tag):
        if tag == "table":
            self._inside = False


def _parse_lf_table(page: str) -> list[dict[str, str]]:
    parser = _TableParser("lf-table")
    parser.feed(page)
    return [dict(zip(parser.keys, row)) for row in parser.rows]


def _assert_table_matches(page: str, summary: dict) -> None:
    table = _parse_lf_table(page)
    assert [row["lf"] for row in table] == [lf["lf"] for lf in summary["lfs"]]
    for row, lf in zip(table, summary["lfs"]):
        for key in (c.key for c in LF_COLUMNS):
            if key in ("lf", "polarity"):
                continue
            if lf[key] is None or lf[key] != lf[key]:  # None or NaN
                assert row[key] == "", (lf["lf"], key)
            else:
                assert float(row[key]) == pytest.approx(lf[key], abs=1e-12), (lf["lf"], key)
        classes = [summary["class_names"][c] for c in lf["polarity"]]
        assert row["polarity"] == ", ".join(classes)


# ---------------------------------------------------------------- the page


def test_lf_table_agrees_with_summary(summary):
    page = render_report(summary)
    _assert_table_matches(page, summary)
    assert {lf["lf"]: lf["failures"] for lf in summary["lfs"]}["lf_b"] == 1


def test_the_console_and_the_studio_show_the_cells_of_the_report(summary):
    import html

    from transforms.core.analysis import LF_TABLE_KEYS

    assert tuple(c.key for c in LF_COLUMNS) == LF_TABLE_KEYS == tuple(summary["lfs"][0])[:-1]
    page, console = render_report(summary), format_summary(summary, "out").splitlines()
    for lf, row in zip(summary["lfs"], lf_table_view(summary["lfs"], summary["class_names"])["rows"]):
        assert all(f">{html.escape(cell, quote=True)}</td>" in page for cell in row["cells"]), row
        line = next(text.split() for text in console if text.split()[:1] == [lf["lf"]])
        assert line[1:3] == [format_value(lf["coverage"]), format_value(lf["coverage_extended"])]


def test_markup_in_documents_and_names_shows_as_text(summary):
    page = render_report(json.loads(json.dumps(summary)), ReportExtras(title="run <1>"))
    assert "<script>document.title" not in page
    assert '<b id="xss-marker">' not in page
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page
    assert "a &lt;/q&gt; source" in page
    assert "SP&lt;A&gt;M" in page and "<title>run &lt;1&gt;</title>" in page
    assert page.count("<script") == 2  # the JSON data block and the sort script, nothing else


def test_page_is_self_contained_with_one_svg_per_plot(summary):
    page = render_report(summary)
    for figure_id in ("plot-coverage", "plot-accuracy", "plot-threshold-sweep",
                      "plot-class-balance", "plot-lf-pairs"):  # fmt: skip
        start = page.index(f'<figure id="{figure_id}"')
        assert page.index("<svg", start) < page.index("</figure>", start), figure_id
    assert "<link" not in page and " src=" not in page and "@import" not in page
    assert "Coverage per LF" in page  # matplotlib's text stays text (svg.fonttype none)


def test_missing_sections_render_as_notes(summary):
    bare = {key: value for key, value in summary.items()
            if key not in ("metrics", "threshold_sweep", "confidence", "examples", "lf_pairs")}  # fmt: skip
    bare["lfs"] = [dict(lf, empirical_accuracy=None) for lf in summary["lfs"]]
    page = render_report(bare)
    assert "No dev labels" in page and "No threshold sweep" in page
    assert "No empirical accuracy" in page and "No examples were gathered" in page


def test_majority_vote_nan_accuracy_shows_as_missing(summary):
    lfs = [dict(lf, estimated_accuracy=float("nan")) for lf in summary["lfs"]]
    page = render_report(dict(summary, lfs=lfs))
    assert all(row["estimated_accuracy"] == "" for row in _parse_lf_table(page))
    assert "No empirical accuracy" in page


def test_summary_sections(summary):
    for split in summary["metrics"].values():
        for method in split.values():
            matrix = np.array(method["confusion_matrix"])
            assert matrix.shape == (2, 2) and matrix.sum() == method["rows"]
            assert np.trace(matrix) / matrix.sum() == pytest.approx(method["accuracy"])
    sweep = summary["threshold_sweep"]
    assert sweep["chosen_level"] is not None
    assert len(sweep["levels"]) == len(sweep["coverage"]) == len(sweep["cv_accuracy"])
    assert summary["examples"]["lf_a"]["voted"][0]["text"] == XSS
    assert summary["examples"]["lf_d"] == {"voted": [], "gained": []}
    assert summary["confidence"]["label_counts"] == np.bincount(_clustered()[6]).tolist()
    overlap = np.array(summary["lf_pairs"]["overlap"])
    assert np.diag(overlap).tolist() == pytest.approx([lf["coverage"] for lf in summary["lfs"]])


# ---------------------------------------------------------------- the numeric parts


def test_threshold_sweep_marks_the_level_the_fit_chose():
    ids, votes, nn_sim, nn_vote, x, gold, _ = _clustered()
    config = LabelerConfig(cardinality=2, min_gold=20)
    sample = select_fit_sample(ids, votes, nn_sim, nn_vote, x, gold, config.sample_size)
    chosen = choose_thresholds(sample, config)
    sweep = threshold_sweep(sample, chosen, config)
    accuracy = dict(zip(sweep["levels"], sweep["cv_accuracy"]))
    best = max(QUANTILE_GRID, key=lambda q: accuracy[q])
    # the fit keeps its default level unless the best level of the grid beats it
    assert sweep["chosen_level"] in (best, GOLD_DEFAULT_QUANTILE)
    assert accuracy[sweep["chosen_level"]] >= accuracy[GOLD_DEFAULT_QUANTILE]
    assert all(0.5 < a <= 1 for a in sweep["cv_accuracy"])
    assert sweep["coverage"][sweep["levels"].index(1.01)] == pytest.approx(
        float((votes[np.isin(ids, sample.ids)] != -1).any(axis=1).mean())
    )
    assert sweep["coverage"][0] >= sweep["coverage"][-1]


def test_pairwise_matrices_count_rows():
    votes = np.array([[1, 0, -1], [1, 1, 1], [0, -1, 0], [-1, -1, -1]], np.int8)
    overlap, conflict = pairwise_overlap_conflict(LabelStatistics.empty(3, 2).add(votes))
    assert (overlap * 4).tolist() == [[3, 2, 2], [2, 2, 1], [2, 1, 2]]
    assert (conflict * 4).tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]


def test_example_reservoir_is_bounded_and_order_independent():
    rng = np.random.default_rng(3)
    n, m = 300, 3
    ids = [f"r{i}" for i in range(n)]
    votes = np.where(rng.random((n, m)) < 0.3, rng.integers(0, 2, (n, m)), -1).astype(np.int8)
    extended = np.where((votes == -1) & (rng.random((n, m)) < 0.3), 1, votes).astype(np.int8)
    sims = rng.random((n, m)).astype(np.float32)
    sources = rng.integers(1, 2**63, (n, m)).astype(np.uint64)
    whole = ExampleReservoir.empty(2).add(ids, votes, extended, sims, sources).to_list()
    order = rng.permutation(n)
    parts = [order[:100], order[100:170], order[170:]]
    merged = ExampleReservoir.empty(2)
    for part in parts[::-1]:
        merged.merge(ExampleReservoir.empty(2).add([ids[i] for i in part], votes[part],
                                                   extended[part], sims[part], sources[part]))
    assert merged.to_list() == whole
    assert len(whole) == 2 * 2 * m
    for entry in whole:
        i = ids.index(entry["id"])
        if entry["kind"] == "gained":
            assert votes[i, entry["lf"]] == -1 and entry["source_hash"] == int(sources[i, entry["lf"]])
        else:
            assert votes[i, entry["lf"]] == entry["vote"]
    voted_0 = sorted((stable_hash("example:" + ids[i]), ids[i]) for i in np.flatnonzero(votes[:, 0] != -1))
    assert [e["id"] for e in whole if e["lf"] == 0 and e["kind"] == "voted"] == [i for _, i in voted_0[:2]]


def test_confidence_histogram_merge_equals_one_pass():
    rng = np.random.default_rng(4)
    rows = np.c_[rng.uniform(1 / 3, 1, 500), rng.integers(0, 3, 500), rng.integers(0, 2, 500)]
    one = ConfidenceHistogram.empty(3, 10).add(rows)
    two = ConfidenceHistogram.empty(3, 10).add(rows[:200]).merge(ConfidenceHistogram.empty(3, 10).add(rows[200:]))
    assert one.to_dict() == two.to_dict()
    assert sum(one.counts) == 500 and one.label_counts.tolist() == np.bincount(rows[:, 1].astype(int)).tolist()


def test_nearest_voters_transform_records_the_source_neighbour():
    votes = {"a": np.array([1, -1], np.int8), "b": np.array([0, 1], np.int8),
             "c": np.array([-1, -1], np.int8)}  # fmt: skip
    neighbours = {"c": (["a", "b"], np.array([0.9, 0.7], np.float32)),
                  "a": (["c", "b"], np.array([0.9, 0.2], np.float32))}  # fmt: skip
    expected = {"c": [source_hash("a"), source_hash("b")], "a": [source_hash("b"), source_hash("b")]}
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        result = {
            "neighbours": pipeline | "N" >> beam.Create(list(neighbours.items())),
            "votes": pipeline | "V" >> beam.Create(list(votes.items())),
        } | NearestVoters()
        assert_that(
            result | beam.MapTuple(lambda d, v: (d, [int(s) for s in v[2]])),
            equal_to([(d, [int(s) for s in h]) for d, h in expected.items()]),
        )


def test_example_texts_resolve_ids_and_sources():
    examples = [{"lf": 0, "kind": "gained", "id": "b", "vote": 1, "similarity": 0.7,
                 "source_hash": int(source_hash("a"))},
                {"lf": 0, "kind": "gained", "id": "c", "vote": 1, "similarity": 0.6,
                 "source_hash": int(source_hash("gone"))}]  # fmt: skip
    wanted = wanted_documents(examples)
    docs = [{"id": i, "text": f"text of {i}"} for i in ("a", "b", "c", "z")]
    texts = [t for doc in docs for t in matching_texts(doc, wanted)]
    assert sorted(t[0] for t in texts) == ["a", "b", "c"]
    resolved = attach_texts(examples, texts)
    assert resolved[0]["source_id"] == "a" and resolved[0]["source_text"] == "text of a"
    assert resolved[0]["text"] == "text of b" and "source_hash" not in resolved[0]
    assert resolved[1]["source_id"] is None


# ---------------------------------------------------------------- a real run, in Chromium


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _first_by_example_priority(prefix: str, tries: int = 2000) -> str:
    """An id whose example priority is smaller than any corpus id's (so it is always shown)."""
    return min((f"{prefix}{i}" for i in range(tries)), key=lambda i: stable_hash("example:" + i))


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, tiny_model) -> Path:
    """The pipeline on the synthetic corpus plus a document whose text is markup."""
    root = tmp_path_factory.mktemp("report_run")
    rows = make_corpus(90)
    rows.append({"id": _first_by_example_priority("xss"), "text": XSS, "label": 1})
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows)
    )
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:40]))
    (root / "lfs.py").write_text(LF_SOURCE)
    output = root / "out"
    weak_label.run([
        "--input", str(root / "corpus.jsonl"), "--dev_input", str(root / "dev.jsonl"),
        "--labeling_functions", str(root / "lfs.py"), "--model", tiny_model,
        "--output", str(output), "--num_neighbours", "5", "--runner=FnApiRunner",
    ])  # fmt: skip
    return output


def test_pipeline_writes_the_report_beside_the_summary(report_run):
    summary = json.loads((report_run / "summary.json").read_text())
    page = (report_run / "report.html").read_text()
    assert (report_run / "_SUCCESS").exists()
    _assert_table_matches(page, summary)
    assert summary["run"]["runner"] == "FnApiRunner" and summary["run"]["wall_seconds"] > 0
    assert sum(summary["confidence"]["counts"]) == summary["rows"]["labelled"]
    shown = summary["examples"]["has_subscribe"]["voted"]
    assert shown[0]["text"] == XSS  # the markup document, always first by priority
    gained = [e for kinds in summary["examples"].values() for e in kinds["gained"]]
    assert gained, "the synthetic run extends LFs, so some votes are gained"
    by_id = {row["id"]: row["text"] for row in make_corpus(90)}
    for entry in gained:
        assert entry["source_text"] == by_id.get(entry["source_id"], XSS)
        assert entry["text"] == by_id.get(entry["id"], XSS)
    assert "&lt;script&gt;document.title" in page and "<script>document.title" not in page


@pytest.mark.chromium
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
def test_report_in_headless_chromium(report_run, tmp_path):
    summary = json.loads((report_run / "summary.json").read_text())
    url = (report_run / "report.html").as_uri()
    # the check for console errors catches them: a page that throws is flagged
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><p>x</p><script>console.error('boom'); missing();</script>")
    assert len(_console_lines(_chromium(["--dump-dom", broken.as_uri()], tmp_path / "p0").stderr)) == 2

    loaded = _chromium(["--dump-dom", url], tmp_path / "p1")
    assert _console_lines(loaded.stderr) == []
    dom = loaded.stdout
    assert "<title>epoxy-beam run report</title>" in dom  # the document's script did not run
    assert 'id="xss-marker"' not in dom.replace('id="xss-marker"&gt;', "")
    for figure_id in ("plot-coverage", "plot-accuracy", "plot-threshold-sweep",
                      "plot-class-balance", "plot-lf-pairs"):  # fmt: skip
        start = dom.index(f'<figure id="{figure_id}"')
        assert dom.index("<svg", start) < dom.index("</figure>", start), figure_id

    by_coverage = _chromium(["--dump-dom", url + "#sort=coverage_extended:desc"], tmp_path / "p2")
    order = [row["lf"] for row in _parse_lf_table(by_coverage.stdout)]
    expected = sorted(summary["lfs"], key=lambda lf: -lf["coverage_extended"])
    assert [lf["coverage_extended"] for lf in expected] == [
        next(lf["coverage_extended"] for lf in summary["lfs"] if lf["lf"] == name) for name in order
    ]

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    shot = _chromium(
        ["--hide-scrollbars", "--window-size=1200,4000", f"--screenshot={screenshot}", url],
        tmp_path / "p3",
    )
    assert _console_lines(shot.stderr) == []
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("L"), np.float32)
    assert pixels.shape == (4000, 1200) and pixels.std() > 10  # drawn, not a blank page
