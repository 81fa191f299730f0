"""The cache's keys and manifests: stale entries are never used."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms.cache import CachePlan, EmbedWithCache, classify_for_graph, split_cached
from transforms.cache_integrity import file_checksum
from transforms.core.artifacts import (
    SCHEMA_VERSION,
    embedding_key,
    embeddings_manifest,
    graph_key,
    text_hash,
    vector_fingerprint,
)
from transforms.embed import EmbedConfig
from transforms.neighbours import NeighbourConfig


def _write(path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def _write_part(path) -> str:
    """A real (tiny) Parquet part; returns its SHA-256, as the manifest records it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text_hash": ["h"]}), str(path))
    return file_checksum(str(path))


def test_resolve_uses_only_entries_keyed_like_the_run(tmp_path):
    config = NeighbourConfig(num_neighbours=5)
    emb_dir = tmp_path / "embeddings" / embedding_key("fp")
    part_sum = _write_part(emb_dir / "part-a.parquet")
    graph_sum = _write_part(tmp_path / "snapshots/r/graph/part-0.parquet")
    _write(
        emb_dir / "manifest.json",
        {**embeddings_manifest("fp", 4, ["part-a.parquet"]), "checksums": {"part-a.parquet": part_sum}},
    )
    _write(
        tmp_path / "manifest.json",
        {
            "schema_version": SCHEMA_VERSION,
            "snapshot": {
                "graph_key": graph_key("fp", config.fingerprint()),
                "model_fingerprint": "fp",
                "paths": {"graph": ["snapshots/r/graph/part-0.parquet"]},
                "checksums": {"snapshots/r/graph/part-0.parquet": graph_sum},
            },
        },
    )
    plan = CachePlan.resolve(str(tmp_path), "run", "fp", 4, config)
    assert plan.embedding_parts == (str(emb_dir / "part-a.parquet"),)
    assert plan.graph_parts == (str(tmp_path / "snapshots/r/graph/part-0.parquet"),)
    other_model = CachePlan.resolve(str(tmp_path), "run", "fp2", 4, config)
    assert other_model.embedding_parts == () and other_model.graph_parts == ()
    other_index = CachePlan.resolve(str(tmp_path), "run", "fp", 4, NeighbourConfig(num_neighbours=6))
    assert other_index.embedding_parts and other_index.graph_parts == ()
    assert CachePlan.resolve(str(tmp_path), "run", "fp", 8, config).embedding_parts == ()
    assert plan.problems == ()


def test_resolve_ignores_and_names_a_changed_part_and_a_garbage_manifest(tmp_path):
    config = NeighbourConfig(num_neighbours=5)
    emb_dir = tmp_path / "embeddings" / embedding_key("fp")
    good, bad = (_write_part(emb_dir / name) for name in ("part-a.parquet", "part-b.parquet"))
    with open(emb_dir / "part-b.parquet", "ab") as handle:
        handle.write(b"changed")
    _write(
        emb_dir / "manifest.json",
        {
            **embeddings_manifest("fp", 4, ["part-a.parquet", "part-b.parquet"]),
            "checksums": {"part-a.parquet": good, "part-b.parquet": bad},
        },
    )
    (tmp_path / "manifest.json").write_text("[1, 2")
    plan = CachePlan.resolve(str(tmp_path), "run", "fp", 4, config)
    assert plan.embedding_parts == (str(emb_dir / "part-a.parquet"),) and plan.graph_parts == ()
    assert len(plan.problems) == 2
    assert "part-b.parquet' is corrupt (its checksum does not match" in plan.problems[0]
    assert "manifest.json' is corrupt" in plan.problems[1]


def test_split_cached_reuses_vectors_by_text_hash():
    vector = np.float32([1, 0])
    hits = list(split_cached(("h", {"docs": [("a", "t"), ("b", "t")], "cached": [vector]})))
    assert [doc_id for doc_id, _ in hits] == ["a", "b"]
    (miss,) = list(split_cached(("h", {"docs": [("a", "t")], "cached": []})))
    assert miss.tag == "misses" and miss.value == (("a", "h"), "t")
    assert list(split_cached(("h", {"docs": [], "cached": [vector]}))) == []


def test_classify_for_graph_old_new_and_removed_rows():
    cached = {"text_hash": text_hash("x"), "neighbour_ids": ["b"], "sims": [0.5]}
    vector = np.float32([1, 0])
    old = list(classify_for_graph(("a", {"hash": [text_hash("x")], "vector": [vector], "cached": [cached]})))
    assert [out.tag for out in old] == ["old", "old_lists"]
    edited = list(classify_for_graph(("a", {"hash": [text_hash("y")], "vector": [vector], "cached": [cached]})))
    assert [out.tag for out in edited] == ["removed", "new"]
    gone = list(classify_for_graph(("a", {"hash": [], "vector": [], "cached": [cached]})))
    assert [out.tag for out in gone] == ["removed"]


def test_embed_with_cache_refuses_a_precision_the_plan_was_not_keyed_for(tmp_path):
    plan = CachePlan.resolve(str(tmp_path), "run", "fp", 4, NeighbourConfig(num_neighbours=4))
    with pytest.raises(ValueError, match="'bf16' with a cache plan keyed for 'fp32'.*precision='bf16'"):
        EmbedWithCache(EmbedConfig("model", precision="bf16"), plan)
    assert EmbedWithCache(EmbedConfig("model"), plan) is not None
    bf16 = CachePlan.resolve(str(tmp_path), "run", "fp", 4, NeighbourConfig(num_neighbours=4), precision="bf16")
    assert EmbedWithCache(EmbedConfig("model", precision="bf16"), bf16) is not None


def test_fp32_and_bf16_entries_are_keyed_apart_and_old_fp32_entries_stay_valid(tmp_path):
    config = NeighbourConfig(num_neighbours=5)
    fp32_dir = tmp_path / "embeddings" / embedding_key("fp")  # the key caches had before precisions
    part_sum = _write_part(fp32_dir / "part-a.parquet")
    old_manifest = embeddings_manifest("fp", 4, ["part-a.parquet"])
    del old_manifest["precision"]  # written before precisions were recorded
    _write(fp32_dir / "manifest.json", {**old_manifest, "checksums": {"part-a.parquet": part_sum}})
    graph_sum = _write_part(tmp_path / "snapshots/r/graph/part-0.parquet")
    _write(
        tmp_path / "manifest.json",
        {
            "schema_version": SCHEMA_VERSION,
            "snapshot": {  # no embed_precision: an fp32 snapshot of an older version
                "graph_key": graph_key("fp", config.fingerprint()),
                "model_fingerprint": "fp",
                "paths": {"graph": ["snapshots/r/graph/part-0.parquet"]},
                "checksums": {"snapshots/r/graph/part-0.parquet": graph_sum},
            },
        },
    )
    fp32 = CachePlan.resolve(str(tmp_path), "run", "fp", 4, config)
    assert fp32.embedding_parts == (str(fp32_dir / "part-a.parquet"),) and fp32.graph_parts
    bf16 = CachePlan.resolve(str(tmp_path), "run", "fp", 4, config, precision="bf16")
    assert bf16.embedding_parts == () and bf16.graph_parts == () and bf16.problems == ()
    assert bf16.embeddings_dir != fp32.embeddings_dir == str(fp32_dir)
    assert bf16.embeddings_dir.endswith(embedding_key(vector_fingerprint("fp", "bf16")))
    # A bf16 manifest copied into the fp32 directory is still not read as fp32, nor vice versa.
    _write(fp32_dir / "manifest.json", embeddings_manifest("fp", 4, ["part-a.parquet"], "bf16"))
    assert CachePlan.resolve(str(tmp_path), "run", "fp", 4, config).embedding_parts == ()
