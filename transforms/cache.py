"""The artifacts cache in the pipeline: reuse embeddings and the graph, write a new snapshot.

* :class:`EmbedWithCache`: documents whose embedded text (by content hash) is in the cache of
  this model and embed precision (fp32 and bf16 vectors are keyed apart) reuse the cached
  vector; only the others are embedded (counters ``cache/embedding_hits`` and
  ``cache/embedded``).
* :class:`GraphWithCache`: with a usable cached graph (same model, precision and index
  configuration), only new or edited documents are searched against the whole corpus, and the
  unchanged documents' cached lists are merged with their nearest *new* documents (exact: the
  top-k of a union is the top-k of the two top-k lists). When a cached document was removed or
  edited, every document is searched again (``cache/graph_rebuilt``). Counters:
  ``cache/graph_reused_rows``, ``cache/graph_searched_rows``, ``cache/graph_removed_rows``.
* :class:`transforms.cache_write.WriteCache` writes the new embeddings part and the snapshot
  (its own module).

One writer at a time per cache directory; readers only trust parts listed in a manifest, and
only when their bytes match the manifest's SHA-256 (:mod:`transforms.cache_integrity`): a
corrupt part or manifest is reported, ignored and rebuilt.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import ReadAllFromParquet
from apache_beam.metrics import Metrics

from transforms.core.artifacts import (
    DEFAULT_PRECISION,
    MANIFEST_FILE,
    embedding_key,
    text_hash,
    usable_embeddings,
    usable_graph,
    vector_fingerprint,
)
from transforms.cache_integrity import read_json, verify_parts
from transforms.dead_letter import METRICS_NAMESPACE
from transforms.embed import EmbedConfig, EmbedTexts
from transforms.knn_graph import KnnJoin, MergeTopKFn
from transforms.neighbours import NeighbourConfig


@dataclasses.dataclass(frozen=True)
class CachePlan:
    """What the cache holds for this run, resolved when the pipeline is built.

    Attributes:
        cache_dir: The cache root.
        run_id: This run's id (names its snapshot and embeddings part).
        model_fingerprint: The embedding model's fingerprint.
        dim: The embedding dimension.
        neighbour_config: The graph configuration.
        num_shards: Parquet files per written table.
        embedding_parts: Usable committed embedding parts (full paths).
        graph_parts: The usable cached graph's parts (full paths); empty = build from scratch.
        checksums: SHA-256 of the usable embedding parts, by path relative to their directory.
        problems: One line per corrupt cache file or manifest that was ignored (it is rebuilt).
        precision: The embed precision of the vectors (``"fp32"`` or ``"bf16"``); part of every
            embedding and graph key.
    """

    cache_dir: str
    run_id: str
    model_fingerprint: str
    dim: int
    neighbour_config: NeighbourConfig
    num_shards: int
    embedding_parts: tuple[str, ...]
    graph_parts: tuple[str, ...]
    checksums: Mapping[str, str] = dataclasses.field(default_factory=dict)
    problems: tuple[str, ...] = ()
    precision: str = DEFAULT_PRECISION

    @classmethod
    def resolve(
        cls,
        cache_dir: str,
        run_id: str,
        model_fingerprint: str,
        dim: int,
        neighbour_config: NeighbourConfig,
        num_shards: int = 1,
        precision: str = DEFAULT_PRECISION,
    ) -> "CachePlan":
        """Reads the manifests and keeps only the entries keyed like this run and intact."""
        problems: list[str] = []
        root = cls._embeddings_dir(cache_dir, vector_fingerprint(model_fingerprint, precision))
        embeddings = read_json(FileSystems.join(root, MANIFEST_FILE), problems)
        embedding_parts: tuple[str, ...] = ()
        checksums: dict[str, str] = {}
        if usable_embeddings(embeddings, model_fingerprint, dim, precision):
            stored = dict(embeddings.get("checksums") or {})
            good = verify_parts(root, embeddings["parts"], stored, problems)
            embedding_parts = tuple(FileSystems.join(root, part) for part in good)
            checksums = {part: stored[part] for part in good if part in stored}
        manifest = read_json(FileSystems.join(cache_dir, MANIFEST_FILE), problems)
        graph_parts: tuple[str, ...] = ()
        if usable_graph(manifest, model_fingerprint, neighbour_config.fingerprint(), precision):
            snapshot = manifest["snapshot"]
            graph = list(snapshot["paths"]["graph"])
            if len(verify_parts(cache_dir, graph, snapshot.get("checksums") or {}, problems)) == len(graph):
                graph_parts = tuple(FileSystems.join(cache_dir, path) for path in graph)
        return cls(
            cache_dir, run_id, model_fingerprint, dim, neighbour_config, max(1, num_shards),
            embedding_parts, graph_parts, checksums, tuple(problems), precision,
        )  # fmt: skip

    @staticmethod
    def _embeddings_dir(cache_dir: str, vectors: str) -> str:
        return FileSystems.join(cache_dir, "embeddings", embedding_key(vectors))

    @property
    def vectors(self) -> str:
        """The vectors' fingerprint (model and precision) that keys embeddings and graph."""
        return vector_fingerprint(self.model_fingerprint, self.precision)

    @property
    def embeddings_dir(self) -> str:
        """This model's and precision's embeddings directory."""
        return self._embeddings_dir(self.cache_dir, self.vectors)

    @property
    def snapshot_dir(self) -> str:
        """Where this run's snapshot is written (relative to the cache root)."""
        return f"snapshots/{self.run_id}"


def _read_parquet(pipeline: beam.Pipeline, label: str, paths: Sequence[str]) -> beam.PCollection:
    return (
        pipeline
        | f"{label}Paths" >> beam.Create(list(paths))
        | f"{label}Read" >> ReadAllFromParquet()
    )


def split_cached(
    keyed: tuple[str, Mapping[str, list[Any]]],
) -> Iterator[Any]:
    """``(text_hash, {docs: [id], cached: [vector]})`` → hits ``(id, vector)`` or tagged misses
    ``((id, text_hash), text)``."""
    digest, groups = keyed
    if not groups["docs"]:
        return
    if groups["cached"]:
        vector = np.asarray(groups["cached"][0], np.float32)
        for doc_id, _ in groups["docs"]:
            Metrics.counter(METRICS_NAMESPACE, "cache/embedding_hits").inc()
            yield doc_id, vector
        return
    for doc_id, text in groups["docs"]:
        Metrics.counter(METRICS_NAMESPACE, "cache/embedded").inc()
        yield beam.pvalue.TaggedOutput("misses", ((doc_id, digest), text))


class EmbedWithCache(beam.PTransform):
    """``(id, text)`` → ``{"embeddings": (id, vector), "new": (text_hash, vector), "hits",
    "embedded"}`` (the last two: one element per row, for counting)."""

    def __init__(self, embed_config: EmbedConfig, cache: CachePlan):
        if embed_config.precision != cache.precision:
            raise ValueError(
                f"embed precision {embed_config.precision!r} with a cache plan keyed for "
                f"{cache.precision!r} vectors: they would mix; resolve the CachePlan with "
                f"precision={embed_config.precision!r}"
            )
        super().__init__()
        self._embed_config = embed_config
        self._cache = cache

    def expand(self, texts: beam.PCollection) -> dict[str, beam.PCollection]:
        cached = _read_parquet(texts.pipeline, "CachedEmbeddings", self._cache.embedding_parts) | (
            "KeyCachedEmbeddings" >> beam.Map(lambda row: (row["text_hash"], row["embedding"]))
        )
        split = (
            {
                "docs": texts | "KeyByTextHash" >> beam.Map(lambda row: (text_hash(row[1]), row)),
                "cached": cached,
            }
            | "JoinCachedEmbeddings" >> beam.CoGroupByKey()
            | "SplitHitsMisses" >> beam.FlatMap(split_cached).with_outputs("misses", main="hits")
        )
        embedded = split["misses"] | "EmbedMisses" >> EmbedTexts(self._embed_config)
        fresh = embedded | "FreshById" >> beam.MapTuple(lambda key, vector: (key[0], vector))
        return {
            "embeddings": (split["hits"], fresh) | "AllEmbeddings" >> beam.Flatten(),
            "new": embedded | "NewByTextHash" >> beam.MapTuple(lambda key, vector: (key[1], vector)),
            "hits": split["hits"],
            "embedded": fresh,
        }


def classify_for_graph(
    keyed: tuple[str, Mapping[str, list[Any]]],
) -> Iterator[Any]:
    """``(id, {hash, vector, cached})`` → ``old`` ``(id, vector)`` + ``old_lists``, ``new``
    ``(id, vector)``, or ``removed`` ``1`` (a cached row that is gone or was edited)."""
    doc_id, groups = keyed
    cached = groups["cached"][0] if groups["cached"] else None
    if not groups["hash"] or not groups["vector"]:
        if cached is not None:
            yield beam.pvalue.TaggedOutput("removed", 1)
        return
    vector = np.asarray(groups["vector"][0], np.float32)
    if cached is not None and cached["text_hash"] == groups["hash"][0]:
        yield beam.pvalue.TaggedOutput("old", (doc_id, vector))
        yield beam.pvalue.TaggedOutput(
            "old_lists", (doc_id, (list(cached["neighbour_ids"]), np.asarray(cached["sims"], np.float32)))
        )
        return
    if cached is not None:
        yield beam.pvalue.TaggedOutput("removed", 1)
    yield beam.pvalue.TaggedOutput("new", (doc_id, vector))


def _route(row: Any, removed: int, rebuild_tag: str, keep_tag: str) -> Iterator[Any]:
    yield beam.pvalue.TaggedOutput(rebuild_tag if removed > 0 else keep_tag, row)


class GraphWithCache(beam.PTransform):
    """``{"embeddings": (id, vector), "hashes": (id, text_hash)}`` → ``(id, (ids, sims))``."""

    def __init__(self, cache: CachePlan):
        super().__init__()
        self._cache = cache

    def expand(self, inputs: Mapping[str, beam.PCollection]) -> beam.PCollection:
        config = self._cache.neighbour_config
        pipeline = inputs["embeddings"].pipeline
        cached = _read_parquet(pipeline, "CachedGraph", self._cache.graph_parts) | (
            "KeyCachedGraph" >> beam.Map(lambda row: (row["id"], row))
        )
        parts = (
            {"hash": inputs["hashes"], "vector": inputs["embeddings"], "cached": cached}
            | "JoinCachedGraph" >> beam.CoGroupByKey()
            | "ClassifyRows"
            >> beam.FlatMap(classify_for_graph).with_outputs("old", "old_lists", "new", "removed")
        )
        removed = beam.pvalue.AsSingleton(
            parts["removed"] | "CountRemoved" >> beam.CombineGlobally(sum)
        )
        old = parts["old"] | "RouteOld" >> beam.FlatMap(
            _route, removed=removed, rebuild_tag="search", keep_tag="update"
        ).with_outputs("search", "update")
        old_lists = parts["old_lists"] | "RouteOldLists" >> beam.FlatMap(
            _route, removed=removed, rebuild_tag="drop", keep_tag="keep"
        ).with_outputs("drop", "keep")
        _ = parts["removed"] | "CountRemovedRows" >> beam.Map(
            lambda _: Metrics.counter(METRICS_NAMESPACE, "cache/graph_removed_rows").inc()
        )
        _ = old_lists["keep"] | "CountReused" >> beam.Map(
            lambda _: Metrics.counter(METRICS_NAMESPACE, "cache/graph_reused_rows").inc()
        )
        searched = (parts["new"], old["search"]) | "RowsToSearch" >> beam.Flatten()
        _ = searched | "CountSearched" >> beam.Map(
            lambda _: Metrics.counter(METRICS_NAMESPACE, "cache/graph_searched_rows").inc()
        )
        full = {"data": inputs["embeddings"], "queries": searched} | "SearchAll" >> KnnJoin(config)
        nearest_new = {"data": parts["new"], "queries": old["update"]} | "SearchNew" >> KnnJoin(config)
        updated = (
            (old_lists["keep"], nearest_new)
            | "OldCandidates" >> beam.Flatten()
            | "MergeOld" >> beam.CombinePerKey(MergeTopKFn(config.num_neighbours))
        )
        return (full, updated) | "Graph" >> beam.Flatten()

