"""Reading the artifacts cache's latest snapshot (the writer is :mod:`transforms.cache_write`).

:func:`read_snapshot` loads what the pipeline's ``WriteCache`` committed: the documents, the
neighbour graph as row numbers, the vote columns by LF name, the embeddings of this model and
the labeler configuration. Every manifest is checked with the cache's own keys
(:func:`~transforms.core.artifacts.usable_graph`, :func:`~transforms.core.artifacts.usable_embeddings`:
schema version, model fingerprint, embed precision, index configuration) before a table is read.

The snapshot is **data only**: the LF source it records (``lf_source``) is kept for display and
never executed; LFs come from the file the user names.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.cache_integrity import read_json
from transforms.core.artifacts import (
    DEFAULT_PRECISION,
    MANIFEST_FILE,
    SCHEMA_VERSION,
    VOTE_COLUMN_PREFIX,
    embedding_key,
    usable_embeddings,
    usable_graph,
    vector_fingerprint,
)
from transforms.core.labeler import LabelerConfig
from transforms.core.lfs import VOTE_DTYPE
from transforms.neighbours import NeighbourConfig


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The cached per-document arrays of one pipeline run, rows sorted by id.

    Attributes:
        ids: ``str [n]``.
        texts: The embedded texts (what LFs see as ``text``).
        fields_json: Each row's other fields as JSON.
        gold: ``int [n]`` tuning labels (``-1`` = none).
        eval_gold: ``int [n]`` any known dev label (``-1`` = none).
        split: ``str [n]`` ``corpus``, ``tune`` or ``holdout``.
        neighbours: ``int [n, kk]`` neighbour rows (``-1`` = none).
        sims: ``float32 [n, kk]`` their similarities (``-inf`` = none).
        embeddings: ``float32 [n, d]`` or ``None`` (none cached).
        votes: ``{lf name: int8 [n]}`` the cached vote columns.
        lf_fingerprints: ``{lf name: fingerprint}`` of the LFs that wrote them (empty for a
            cache written before fingerprints were recorded: every LF is then re-applied).
        lf_source: The LF file's text at cache time, for display only (never executed).
        config: The run's labeler configuration.
        class_names: The run's class names.
        fallback_max_voters: The run's ``--fallback_max_voters`` (0: no per-LF exact fallback).
    """

    ids: np.ndarray
    texts: pa.Array
    fields_json: list[str]
    gold: np.ndarray
    eval_gold: np.ndarray
    split: np.ndarray
    neighbours: np.ndarray
    sims: np.ndarray
    embeddings: np.ndarray | None
    votes: dict[str, np.ndarray]
    lf_fingerprints: dict[str, str]
    lf_source: str
    config: LabelerConfig
    class_names: tuple[str, ...]
    fallback_max_voters: int = 0


def read_snapshot(cache_dir: str) -> Snapshot:
    """Loads and validates the latest snapshot under ``cache_dir``.

    Raises:
        ValueError: if there is no snapshot, or its schema version or keys are not this
            version's (naming the value found and the fix).
    """
    manifest = read_json(FileSystems.join(cache_dir, MANIFEST_FILE))
    if not manifest or "snapshot" not in manifest:
        raise ValueError(
            f"--cache_dir {cache_dir!r} holds no snapshot (no manifest.json): run the pipeline "
            "with --cache_dir first"
        )
    snapshot = manifest["snapshot"]
    model = snapshot.get("model_fingerprint", "")
    precision = snapshot.get("embed_precision", DEFAULT_PRECISION)
    if not usable_graph(manifest, model, _index_fingerprint(snapshot), precision):
        raise ValueError(
            f"--cache_dir {cache_dir!r} holds a snapshot of schema_version "
            f"{manifest.get('schema_version')!r} (keys {snapshot.get('graph_key')!r}); this version "
            f"reads schema_version {SCHEMA_VERSION}: run the pipeline with --cache_dir again"
        )
    paths = {name: [FileSystems.join(cache_dir, p) for p in ps] for name, ps in snapshot["paths"].items()}
    docs = _read_sorted(paths["documents"])
    ids = np.asarray(docs.column("id").to_pylist(), dtype=str)
    votes_table = _read_sorted(paths["votes"])
    votes = {
        name[len(VOTE_COLUMN_PREFIX) :]: votes_table.column(name).to_numpy().astype(VOTE_DTYPE)
        for name in votes_table.column_names
        if name.startswith(VOTE_COLUMN_PREFIX)
    }
    neighbours, sims = _graph_rows(_read_sorted(paths["graph"]), ids)
    return Snapshot(
        ids=ids,
        texts=docs.column("text").combine_chunks(),
        fields_json=docs.column("fields_json").to_pylist(),
        gold=docs.column("gold").to_numpy().astype(np.int64),
        eval_gold=docs.column("eval_gold").fill_null(-1).to_numpy().astype(np.int64),
        split=np.asarray(docs.column("split").to_pylist(), dtype=str),
        neighbours=neighbours,
        sims=sims,
        embeddings=_embeddings_for(cache_dir, model, precision, docs.column("text_hash").to_pylist()),
        votes=votes,
        lf_fingerprints=dict(snapshot.get("lf_fingerprints") or {}),
        lf_source=str(snapshot.get("lf_source", "")),
        config=_labeler_config(snapshot["labeler_config"]),
        class_names=tuple(snapshot.get("class_names") or ()),
        fallback_max_voters=int((snapshot.get("options") or {}).get("fallback_max_voters") or 0),
    )


def _index_fingerprint(snapshot: Mapping[str, Any]) -> str:
    """The graph's index-configuration fingerprint as the pipeline keyed it ('' if unreadable)."""
    try:
        return NeighbourConfig(**snapshot.get("neighbour_config", {})).fingerprint()
    except (TypeError, ValueError):
        return ""


def _labeler_config(values: Mapping[str, Any]) -> LabelerConfig:
    config = dict(values)
    if config.get("class_balance") is not None:
        config["class_balance"] = tuple(config["class_balance"])
    return LabelerConfig(**config)


def _read_table(path: str) -> pa.Table:
    with FileSystems.open(path) as handle:
        return pq.read_table(pa.BufferReader(handle.read()))


def _read_sorted(paths: Sequence[str]) -> pa.Table:
    return pa.concat_tables([_read_table(path) for path in paths]).sort_by("id")


def _graph_rows(graph: pa.Table, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour ids → row numbers ``int64 [n, kk]`` (``-1`` padding), sims ``[n, kk]``."""
    lists = graph.column("neighbour_ids").combine_chunks()
    sims_lists = graph.column("sims").combine_chunks()
    lengths = lists.value_lengths().fill_null(0).to_numpy().astype(np.int64)
    kk = int(lengths.max()) if lengths.size else 0
    neighbours = np.full((len(ids), kk), -1, np.int64)
    sims = np.full((len(ids), kk), -np.inf, np.float32)
    rows = np.searchsorted(ids, np.asarray(graph.column("id").to_pylist(), dtype=str))
    flat_ids = np.asarray(lists.flatten().to_pylist(), dtype=str)
    flat_sims = sims_lists.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    slot = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    owner = np.repeat(rows, lengths)
    neighbours[owner, slot] = np.searchsorted(ids, flat_ids)
    sims[owner, slot] = flat_sims
    return neighbours, sims


def _embeddings_for(
    cache_dir: str, model_fingerprint: str, precision: str, hashes: list[str]
) -> np.ndarray | None:
    """The documents' cached embeddings (by text hash), or ``None`` when none are cached.

    Raises:
        ValueError: if the embeddings manifest is not of this schema version, model and precision.
    """
    vectors = vector_fingerprint(model_fingerprint, precision)
    root = FileSystems.join(cache_dir, "embeddings", embedding_key(vectors))
    manifest = read_json(FileSystems.join(root, MANIFEST_FILE))
    if not manifest:
        return None
    if not usable_embeddings(manifest, model_fingerprint, manifest.get("dim"), precision):
        raise ValueError(
            f"the embeddings manifest under {root!r} has schema_version "
            f"{manifest.get('schema_version')!r} / key {manifest.get('key')!r}; this version reads "
            f"schema_version {SCHEMA_VERSION} of model {model_fingerprint!r} at precision "
            f"{precision!r}: run the pipeline with --cache_dir again"
        )
    table = pa.concat_tables([_read_table(FileSystems.join(root, part)) for part in manifest["parts"]])
    index = {digest: i for i, digest in enumerate(table.column("text_hash").to_pylist())}
    vectors = np.asarray(table.column("embedding").combine_chunks().flatten().to_numpy(), np.float32)
    vectors = vectors.reshape(table.num_rows, -1)
    return vectors[[index[digest] for digest in hashes]]
