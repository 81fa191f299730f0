"""The k-nearest-neighbour graph of the corpus, with a real ScaNN index.

The single-index path: every embedding is gathered once (a combine, not a side input), one
ScaNN index is built and serialised with ``searcher.serialize(dir, relative_path=True)``, and
the embeddings are then queried against it in batches by workers that load the index from its
path once each (``Shared``). Only the index's *path* travels as a side input.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from typing import Any, Iterator, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.utils import shared

from transforms.dead_letter import METRICS_NAMESPACE

INDEX_IDS_FILE = "ids.npy"
INDEX_VECTORS_FILE = "vectors.npy"


@dataclasses.dataclass(frozen=True)
class NeighbourConfig:
    """How the kNN graph is built.

    Attributes:
        num_neighbours: Neighbours per document (self excluded).
        brute_force_max_rows: Up to this many documents the index scores exhaustively (exact);
            above, a ScaNN tree + asymmetric hashing index with exact re-ordering.
        leaves_to_search_share: Share of tree leaves searched per query (tree index only).
        reorder_multiplier: Candidates re-scored exactly, as a multiple of ``num_neighbours``.
        query_batch_size: Embeddings queried per ``search_batched`` call.
    """

    num_neighbours: int = 20
    brute_force_max_rows: int = 50_000
    leaves_to_search_share: float = 0.05
    reorder_multiplier: int = 10
    query_batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.num_neighbours < 1:
            raise ValueError(
                f"num_neighbours={self.num_neighbours} must be at least 1 (try 20)"
            )

    def fingerprint(self) -> str:
        """A short hash of the configuration, for index and cache keys."""
        text = repr(dataclasses.astuple(self))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_searcher(embeddings: np.ndarray, config: NeighbourConfig) -> Any:
    """Builds a ScaNN searcher over L2-normalised ``embeddings`` (dot product = cosine).

    Args:
        embeddings: ``float32 [n, d]``, ``n >= 1``.
        config: The index configuration.

    Returns:
        A ScaNN searcher whose default neighbour count is ``num_neighbours + 1`` (self included).
    """
    import scann  # Deferred: ScaNN loads TensorFlow ops.

    n = embeddings.shape[0]
    k = min(config.num_neighbours + 1, n)
    builder = scann.scann_ops_pybind.builder(
        np.ascontiguousarray(embeddings, dtype=np.float32), k, "dot_product"
    )
    if n <= config.brute_force_max_rows:
        return builder.score_brute_force().build()
    num_leaves = int(np.clip(np.sqrt(n), 16, 10_000))
    leaves_to_search = max(1, int(num_leaves * config.leaves_to_search_share))
    return (
        builder.tree(
            num_leaves=num_leaves,
            num_leaves_to_search=leaves_to_search,
            training_sample_size=min(n, 250_000),
        )
        .score_ah(2, anisotropic_quantization_threshold=0.2)
        .reorder(k * config.reorder_multiplier)
        .build()
    )


@dataclasses.dataclass(frozen=True)
class LoadedIndex:
    """A searcher with the id and vector of each indexed row.

    The vectors re-score ScaNN's candidates exactly, so every similarity is a plain dot product
    of two stored vectors: the same value whatever the query batch or the index type.
    """

    searcher: Any
    ids: np.ndarray
    vectors: np.ndarray


def save_index(searcher: Any, ids: Sequence[str], vectors: np.ndarray, index_dir: str) -> None:
    """Serialises a searcher, its row ids and vectors to ``index_dir`` (local or ``gs://``)."""
    with tempfile.TemporaryDirectory(prefix="epoxy-index-") as local:
        searcher.serialize(local, relative_path=True)
        np.save(os.path.join(local, INDEX_IDS_FILE), np.asarray(ids, dtype=str), allow_pickle=False)
        np.save(os.path.join(local, INDEX_VECTORS_FILE), vectors.astype(np.float32), allow_pickle=False)
        _copy_dir(local, index_dir)


def load_index(index_dir: str) -> LoadedIndex:
    """Loads an index saved by :func:`save_index`."""
    import scann  # Deferred: ScaNN loads TensorFlow ops.

    local = tempfile.mkdtemp(prefix="epoxy-index-")
    _copy_dir(index_dir, local)
    return LoadedIndex(
        searcher=scann.scann_ops_pybind.load_searcher(local),
        ids=np.load(os.path.join(local, INDEX_IDS_FILE), allow_pickle=False),
        vectors=np.load(os.path.join(local, INDEX_VECTORS_FILE), allow_pickle=False),
    )


def _copy_dir(source: str, dest: str) -> None:
    if "://" not in source and "://" not in dest:
        shutil.copytree(source, dest, dirs_exist_ok=True)
        return
    if not FileSystems.exists(dest):
        FileSystems.mkdirs(dest)
    for metadata in FileSystems.match([FileSystems.join(source, "*")])[0].metadata_list:
        name = metadata.path.rstrip("/").rsplit("/", 1)[-1]
        with FileSystems.open(metadata.path) as reader:
            data = reader.read()
        target = FileSystems.join(dest, name)
        if "://" not in target:
            os.makedirs(dest, exist_ok=True)
        with FileSystems.create(target) as writer:
            writer.write(data)


def search(
    index: LoadedIndex,
    query_ids: Sequence[str],
    queries: np.ndarray,
    num_neighbours: int,
) -> list[tuple[str, list[str], np.ndarray]]:
    """Queries a batch, re-scores the candidates exactly and drops each query's own id.

    Args:
        index: The loaded index.
        query_ids: The id of each query row.
        queries: ``float32 [b, d]`` query vectors.
        num_neighbours: Neighbours kept per query.

    Returns:
        One ``(id, neighbour_ids, sims)`` per query; ``sims`` is ``float32``, descending, ties
        broken by neighbour id.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(num_neighbours + 1, len(index.ids))
    positions, _ = index.searcher.search_batched(queries, final_num_neighbors=k)
    positions = np.asarray(positions, dtype=np.int64)
    valid = positions >= 0
    candidates = index.vectors[np.where(valid, positions, 0)].astype(np.float64)
    exact = np.einsum("bd,bkd->bk", queries.astype(np.float64), candidates).astype(np.float32)
    results = []
    for query_id, row_positions, row_valid, row_sims in zip(query_ids, positions, valid, exact):
        pairs = sorted(
            (-float(sim), str(index.ids[position]))
            for position, ok, sim in zip(row_positions, row_valid, row_sims)
            if ok and str(index.ids[position]) != query_id
        )[:num_neighbours]
        results.append(
            (
                query_id,
                [neighbour for _, neighbour in pairs],
                np.asarray([-negative for negative, _ in pairs], dtype=np.float32),
            )
        )
    return results


class BuildIndexFn(beam.DoFn):
    """Builds one ScaNN index from the gathered ``[(id, vector), ...]`` and returns its path."""

    def __init__(self, index_dir: str, config: NeighbourConfig):
        self._index_dir = index_dir
        self._config = config

    def process(self, rows: list[tuple[str, np.ndarray]]) -> Iterator[str]:
        rows = sorted(rows, key=lambda row: row[0])
        if not rows:
            return
        ids = [doc_id for doc_id, _ in rows]
        embeddings = np.stack([vector for _, vector in rows]).astype(np.float32)
        searcher = build_searcher(embeddings, self._config)
        save_index(searcher, ids, embeddings, self._index_dir)
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "neighbours/indexed_rows").inc(len(ids))
        yield self._index_dir


class QueryIndexFn(beam.DoFn):
    """Queries batches of ``(id, vector)`` against the index at the side-input path.

    The index is loaded once per worker process (``Shared``) the first time its path is seen.
    """

    def __init__(self, config: NeighbourConfig):
        self._config = config
        self._shared = shared.Shared()
        self._index: LoadedIndex | None = None
        self._index_dir = ""

    def process(
        self, batch: list[tuple[str, np.ndarray]], index_dir: str
    ) -> Iterator[tuple[str, tuple[list[str], np.ndarray]]]:
        if self._index is None or self._index_dir != index_dir:
            self._index = self._shared.acquire(lambda: load_index(index_dir), tag=index_dir)
            self._index_dir = index_dir
        ids = [doc_id for doc_id, _ in batch]
        queries = np.stack([vector for _, vector in batch])
        for doc_id, neighbour_ids, sims in search(
            self._index, ids, queries, self._config.num_neighbours
        ):
            yield doc_id, (neighbour_ids, sims)


class NeighbourGraph(beam.PTransform):
    """``(id, vector)`` → ``(id, (neighbour_ids, sims))``, the kNN graph (self excluded)."""

    def __init__(self, index_dir: str, config: NeighbourConfig = NeighbourConfig()):
        """Configures the stage.

        Args:
            index_dir: Where the index is written (local or ``gs://``), unique per index.
            config: The index configuration.
        """
        super().__init__()
        self._index_dir = index_dir
        self._config = config

    def expand(self, embeddings: beam.PCollection) -> beam.PCollection:
        index_path = (
            embeddings
            | "GatherForIndex" >> beam.combiners.ToList()
            | "BuildIndex" >> beam.ParDo(BuildIndexFn(self._index_dir, self._config))
        )
        return (
            embeddings
            | "BatchQueries"
            >> beam.BatchElements(min_batch_size=1, max_batch_size=self._config.query_batch_size)
            | "QueryIndex"
            >> beam.ParDo(QueryIndexFn(self._config), index_dir=beam.pvalue.AsSingleton(index_path))
        )
