"""The k-nearest-neighbour graph of the corpus: ScaNN searches, re-scored exactly.

:class:`transforms.knn_graph.NeighbourGraph` is the pipeline's stage, a partitioned self-join;
the number of partitions is computed at run time from the row
count (``ceil(n / partition_rows)``), so a small corpus is one partition: one ScaNN index over
every row, built and searched inside one worker (the single-index path).

Inside a partition, :func:`search_group` builds a ScaNN searcher over the partition's rows
(exhaustive up to ``brute_force_max_rows``, else a tree + asymmetric hashing index) and
re-scores its candidates exactly from the stored vectors (:func:`transforms.core.knn_merge.
top_k_exact`), so every similarity is a plain dot product of two stored vectors and ties are
broken by id: outputs are deterministic whatever the index, the batch or the partitioning.
Searchers never pickle: they are built where they are used.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterator, Sequence

import numpy as np

from transforms.core.knn_merge import top_k_exact


# Bumped when the same configuration builds a different graph (2: one partition where the spill
# would search every partition).
GRAPH_VERSION = 2
# Fields that change how the graph is computed, not the graph: left out of the fingerprint.
_HOW_NOT_WHAT = ("query_batch_size", "parallel_search", "shuffle_dir")


@dataclasses.dataclass(frozen=True)
class NeighbourConfig:
    """How the kNN graph is built.

    Attributes:
        num_neighbours: Neighbours per document (self excluded).
        brute_force_max_rows: Up to this many rows a partition is scored exhaustively (exact);
            above, a ScaNN tree + asymmetric hashing index with exact re-ordering.
        leaves_to_search_share: Share of tree leaves searched per query (tree index only).
        reorder_multiplier: Candidates re-scored exactly, as a multiple of ``num_neighbours``.
        tree_training_rows: Rows (ScaNN's sample) the index's tree of leaves is trained on. A
            smaller sample costs recall (a spilled query's neighbours sit near the leaves'
            borders): half of the rows cost 0.005 at 1M's layout (``docs/scale.md``).
        quantizer_training_rows: Rows (ScaNN's sample) the asymmetric-hashing codebooks are
            trained on. A quarter of the rows costs no recall (the exact re-scoring of
            ``reorder_multiplier · num_neighbours`` candidates absorbs a coarser quantiser)
            and 40 % of a 100k index's build time.
        query_batch_size: Queries per ScaNN search call.
        parallel_search: Search each batch with ScaNN's own thread pool (one thread per core:
            :func:`search_candidates`); ``False`` where each worker process has one core.
            Results are the same either way.
        partition_rows: Target rows per partition: ``ceil(n / partition_rows)`` partitions, or
            one where the spill would search every partition (up to 3 · ``partition_rows``
            rows by default; :func:`transforms.core.knn_merge.num_partitions`).
        spill: Partitions each document is searched in (its nearest centroids); 0 (default):
            chosen from the partition count (:func:`transforms.core.knn_merge.auto_spill`).
        max_group_rows: A partition with more rows (or queries) is split into groups of at most
            this many, so a worker never holds more than ``2 · max_group_rows`` vectors
            (the self-join holds one matrix: 0.46 GB at 300k × 384); the default keeps the one
            index of up to 3 · ``partition_rows`` rows in one group.
        centroid_sample_rows: Rows (smallest id hash) the centroids are fitted on.
        kmeans_iterations: Lloyd iterations of the centroid fit.
        seed: Seed of the centroid fit.
        shuffle_dir: A directory every worker can read and write: the rows go to their groups
            through files there and the shuffle carries only paths
            (:mod:`transforms.knn_shuffle`); ``""`` (default): through the runner's shuffle.
            The graph is the same either way.
    """

    num_neighbours: int = 20
    brute_force_max_rows: int = 50_000
    leaves_to_search_share: float = 0.05
    reorder_multiplier: int = 10
    tree_training_rows: int = 250_000
    quantizer_training_rows: int = 25_000
    query_batch_size: int = 1024
    parallel_search: bool = True
    partition_rows: int = 100_000
    spill: int = 0
    max_group_rows: int = 300_000
    centroid_sample_rows: int = 20_000
    kmeans_iterations: int = 10
    seed: int = 0
    shuffle_dir: str = ""

    def __post_init__(self) -> None:
        if self.num_neighbours < 1:
            raise ValueError(
                f"num_neighbours={self.num_neighbours} must be at least 1 (try 20)"
            )
        for name in (
            "partition_rows", "max_group_rows", "centroid_sample_rows", "tree_training_rows",
            "quantizer_training_rows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.spill < 0:
            raise ValueError(f"spill={self.spill} must be at least 1, or 0 for auto")

    def fingerprint(self) -> str:
        """A short hash of everything that changes the graph (and :data:`GRAPH_VERSION`)."""
        graph_fields = [
            getattr(self, field.name) for field in dataclasses.fields(self) if field.name not in _HOW_NOT_WHAT
        ]
        text = f"v{GRAPH_VERSION}:" + repr(tuple(graph_fields))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_searcher(embeddings: np.ndarray, config: NeighbourConfig) -> Any:
    """Builds a ScaNN searcher over L2-normalised ``embeddings`` (dot product = cosine).

    Args:
        embeddings: ``float32 [n, d]``, ``n >= 1``.
        config: The index configuration.

    Returns:
        A ScaNN searcher whose default neighbour count is ``num_neighbours + 1`` (self included).
    """
    return searcher_builder(embeddings, config).build()


def searcher_builder(embeddings: np.ndarray, config: NeighbourConfig) -> Any:
    """The configured ScaNN builder of :func:`build_searcher` (``create_config()`` shows it)."""
    import scann  # Deferred: ScaNN loads TensorFlow ops.

    n = embeddings.shape[0]
    k = min(config.num_neighbours + 1, n)
    builder = scann.scann_ops_pybind.builder(
        np.ascontiguousarray(embeddings, dtype=np.float32), k, "dot_product"
    )
    if n <= config.brute_force_max_rows:
        return builder.score_brute_force()
    num_leaves = int(np.clip(np.sqrt(n), 16, 10_000))
    leaves_to_search = max(1, int(num_leaves * config.leaves_to_search_share))
    return (
        builder.tree(
            num_leaves=num_leaves,
            num_leaves_to_search=leaves_to_search,
            training_sample_size=min(n, config.tree_training_rows),
        )
        .score_ah(
            2,
            anisotropic_quantization_threshold=0.2,
            training_sample_size=min(n, config.quantizer_training_rows),
        )
        .reorder(k * config.reorder_multiplier)
    )


def search_candidates(searcher: Any, queries: np.ndarray, k: int, parallel: bool) -> np.ndarray:
    """ScaNN's ``k`` candidate rows ``[b, k]`` for ``queries [b, d]`` (float32, contiguous).

    ``parallel`` splits the batch over ScaNN's thread pool (``search_batched_parallel``, one
    thread per core); each query's candidates are the same either way.
    """
    search = searcher.search_batched_parallel if parallel else searcher.search_batched
    candidates, _ = search(queries, final_num_neighbors=k)
    return candidates


@dataclasses.dataclass(frozen=True)
class LoadedIndex:
    """A searcher with the id and vector of each indexed row (rows sorted by id).

    The vectors re-score ScaNN's candidates exactly.
    """

    searcher: Any
    ids: np.ndarray
    vectors: np.ndarray

    @classmethod
    def build(cls, ids: Sequence[str], vectors: np.ndarray, config: NeighbourConfig) -> "LoadedIndex":
        """Sorts the rows by id (no copy when they already are) and builds the searcher."""
        ids = np.asarray(ids, dtype=str)
        vectors = np.asarray(vectors, np.float32)
        if ids.size > 1 and not np.all(ids[:-1] <= ids[1:]):
            order = np.argsort(ids, kind="stable")
            ids, vectors = ids[order], vectors[order]
        vectors = np.ascontiguousarray(vectors)
        return cls(build_searcher(vectors, config), ids, vectors)


def search_positions(
    index: LoadedIndex,
    query_ids: Sequence[str],
    queries: np.ndarray,
    num_neighbours: int,
    batch_size: int = 1024,
    parallel: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Queries in batches; returns exact top-k ``(positions [b, k'], sims [b, k'])``.

    Positions index ``index.ids``; missing slots hold ``-1`` / ``-inf``; self is excluded.
    ``parallel``: :func:`search_candidates`.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(num_neighbours + 1, len(index.ids))
    lookup = {doc_id: i for i, doc_id in enumerate(index.ids.tolist())}
    self_positions = np.asarray([lookup.get(q, -1) for q in query_ids], np.int64)
    parts_pos, parts_sim = [], []
    for start in range(0, len(query_ids), batch_size):
        stop = start + batch_size
        candidates = search_candidates(index.searcher, queries[start:stop], k, parallel)
        positions, sims = top_k_exact(
            queries[start:stop], self_positions[start:stop], index.vectors, candidates, num_neighbours
        )
        parts_pos.append(positions)
        parts_sim.append(sims)
    return np.concatenate(parts_pos), np.concatenate(parts_sim)


def search(
    index: LoadedIndex,
    query_ids: Sequence[str],
    queries: np.ndarray,
    num_neighbours: int,
    batch_size: int = 1024,
    parallel: bool = True,
) -> list[tuple[str, list[str], np.ndarray]]:
    """Queries a batch and returns ``(id, neighbour_ids, sims)`` per query.

    ``sims`` is ``float32``, descending, ties broken by neighbour id; the query's own id is
    never among its neighbours.
    """
    return list(_result_rows(index, query_ids, queries, num_neighbours, batch_size, parallel))


def _result_rows(
    index: LoadedIndex,
    query_ids: Sequence[str],
    queries: np.ndarray,
    num_neighbours: int,
    batch_size: int,
    parallel: bool,
) -> Iterator[tuple[str, list[str], np.ndarray]]:
    """:func:`search`, one ``(id, neighbour_ids, sims)`` at a time."""
    query_ids = np.asarray(query_ids, dtype=str).tolist()
    positions, sims = search_positions(index, query_ids, queries, num_neighbours, batch_size, parallel)
    for query_id, row_positions, row_sims in zip(query_ids, positions, sims):
        keep = row_positions >= 0
        yield query_id, index.ids[row_positions[keep]].tolist(), row_sims[keep]  # float32, a copy


def search_group(
    data_ids: Sequence[str],
    data: np.ndarray,
    query_ids: Sequence[str],
    queries: np.ndarray,
    config: NeighbourConfig,
) -> Iterator[tuple[str, list[str], np.ndarray]]:
    """One partition group: an index over ``data``, searched by ``queries`` (per worker).

    Args:
        data_ids: The data rows' ids (sorted by id saves a copy of ``data``).
        data: ``float32 [n, d]`` the data rows.
        query_ids: The queries' ids; the results come in this order.
        queries: ``float32 [q, d]``.
        config: The index configuration.

    Yields:
        ``(query_id, neighbour_ids, sims)`` per query (empty lists when there is no data).
    """
    if len(data_ids) == 0:
        for query_id in np.asarray(query_ids, dtype=str).tolist():
            yield query_id, [], np.zeros(0, np.float32)
        return
    index = LoadedIndex.build(data_ids, data, config)
    yield from _result_rows(
        index, query_ids, queries, config.num_neighbours, config.query_batch_size, config.parallel_search
    )
