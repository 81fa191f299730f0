"""The artifacts cache end to end: a nightly-style second run embeds only the new rows."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter

from pipelines import weak_label
from tests.conftest import LF_SOURCE, make_corpus
from transforms.cache_snapshot import read_snapshot
from transforms.embed import apply_precision

NUM_NEIGHBOURS = 5


def _write_corpus(path, rows) -> str:
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows))
    return str(path)


def _run(corpus: str, dev: str, lfs: str, model: str, output: str, cache_dir: str | None, *extra: str):
    argv = [
        "--input", corpus, "--dev_input", dev, "--labeling_functions", lfs, "--model", model,
        "--output", output, "--num_neighbours", str(NUM_NEIGHBOURS), "--runner=FnApiRunner", *extra,
    ]  # fmt: skip
    if cache_dir:
        argv += ["--cache_dir", cache_dir]
    result = weak_label.run(argv)
    counters = {
        metric.key.metric.name: metric.committed
        for metric in result.metrics().query(MetricsFilter())["counters"]
    }
    labels = pq.read_table(f"{output}/labels/part-00000-of-00001.parquet").to_pylist()
    return counters, {row["id"]: row for row in labels}


def test_second_run_embeds_only_new_rows_and_labels_like_a_fresh_run(tmp_path, tiny_model):
    rows = make_corpus(202, seed=3)
    old, added = rows[:200], rows[200:]
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows[:60]))
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    cache = str(tmp_path / "cache")
    first = _write_corpus(tmp_path / "night1.jsonl", old)
    counters, _ = _run(first, str(dev), str(lfs), tiny_model, str(tmp_path / "out1"), cache)
    assert counters.get("cache/embedded") == 200 and counters.get("cache/embedding_hits", 0) == 0

    second = _write_corpus(tmp_path / "night2.jsonl", old + added)
    counters, cached_labels = _run(second, str(dev), str(lfs), tiny_model, str(tmp_path / "out2"), cache)
    share = counters["cache/embedded"] / len(old + added)
    print(f"second run: embedded {counters['cache/embedded']} of {len(old + added)} rows ({share:.1%}), "
          f"{counters['cache/embedding_hits']} cache hits, graph: {counters['cache/graph_searched_rows']} "
          f"rows searched, {counters['cache/graph_reused_rows']} reused")
    assert counters["cache/embedded"] == 2 and counters["cache/embedding_hits"] == 200
    assert counters["cache/graph_searched_rows"] == 2 and counters["cache/graph_reused_rows"] == 200
    with open(tmp_path / "out2" / "summary.json") as handle:
        rows_summary = json.load(handle)["rows"]
    assert (rows_summary["embedded"], rows_summary["embedding_cache_hits"]) == (2, 200)

    _, fresh_labels = _run(second, str(dev), str(lfs), tiny_model, str(tmp_path / "out3"), None)
    assert cached_labels.keys() == fresh_labels.keys()
    for doc_id, row in fresh_labels.items():
        assert cached_labels[doc_id]["extended_votes"] == row["extended_votes"], doc_id
        assert cached_labels[doc_id]["label"] == row["label"], doc_id

    with open(f"{cache}/manifest.json") as handle:
        manifest = json.load(handle)
    assert manifest["last_run"] == {"embedded": 2, "embedding_cache_hits": 200}
    assert manifest["snapshot"]["lf_names"][0] == "has_subscribe"


def test_a_removed_row_rebuilds_the_graph_and_a_new_model_misses(tmp_path, tiny_model):
    rows = make_corpus(60, seed=4)
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows[:20]))
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    cache = str(tmp_path / "cache")
    _run(_write_corpus(tmp_path / "a.jsonl", rows), str(dev), str(lfs), tiny_model, str(tmp_path / "o1"), cache)
    counters, _ = _run(
        _write_corpus(tmp_path / "b.jsonl", rows[:-1]), str(dev), str(lfs), tiny_model, str(tmp_path / "o2"), cache
    )
    assert counters.get("cache/embedded", 0) == 0
    assert counters["cache/graph_removed_rows"] == 1 and counters["cache/graph_searched_rows"] == 59

    manifest_path = tmp_path / "cache" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["schema_version"] = 0  # A stale snapshot is never used.
    manifest_path.write_text(json.dumps(manifest))
    counters, _ = _run(
        _write_corpus(tmp_path / "c.jsonl", rows[:-1]), str(dev), str(lfs), tiny_model, str(tmp_path / "o3"), cache
    )
    assert counters["cache/graph_searched_rows"] == 59 and counters.get("cache/graph_reused_rows", 0) == 0


def test_bf16_and_fp32_runs_on_one_cache_share_no_entries(tmp_path, tiny_model):
    rows = make_corpus(60, seed=5)
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows[:20]))
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    cache = tmp_path / "cache"
    corpus = _write_corpus(tmp_path / "a.jsonl", rows)
    args = (str(dev), str(lfs), tiny_model)
    try:
        counters, _ = _run(corpus, *args, str(tmp_path / "fp32"), str(cache))
        assert counters["cache/embedded"] == 60
        counters, _ = _run(corpus, *args, str(tmp_path / "bf16"), str(cache), "--embed_precision", "bf16")
        assert counters["cache/embedded"] == 60 and counters.get("cache/embedding_hits", 0) == 0
        assert counters["cache/graph_searched_rows"] == 60 and counters.get("cache/graph_reused_rows", 0) == 0
        assert read_snapshot(str(cache)).embeddings.shape == (60, 32)  # iterate finds the bf16 vectors
        counters, _ = _run(corpus, *args, str(tmp_path / "fp32_again"), str(cache))
    finally:
        apply_precision("fp32")  # the FnApiRunner's workers are this process
    assert counters.get("cache/embedded", 0) == 0 and counters["cache/embedding_hits"] == 60
    assert counters["cache/graph_searched_rows"] == 60  # the latest snapshot's graph was bf16
    manifests = [json.loads(path.read_text()) for path in sorted(cache.glob("embeddings/*/manifest.json"))]
    assert sorted(m["precision"] for m in manifests) == ["bf16", "fp32"]
    parts = {m["precision"]: set(m["parts"]) for m in manifests}
    assert len(parts["bf16"]) == 1 and len(parts["fp32"]) == 2 and not parts["fp32"] & parts["bf16"]
    assert json.loads((cache / "manifest.json").read_text())["snapshot"]["embed_precision"] == "fp32"
