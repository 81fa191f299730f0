"""Writing the artifacts cache: the new embeddings part, the snapshot, then the manifests.

:class:`WriteCache` writes the new embeddings part, the snapshot's documents, graph and vote
columns, then one commit step (:func:`commit_cache`) appends the part to the embeddings manifest
and points the top-level manifest at the snapshot (:mod:`transforms.core.artifacts` has the
layout). The plan of what to write is :class:`transforms.cache.CachePlan`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms.cache_integrity import file_checksum
from transforms.core.artifacts import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    VOTE_COLUMN_PREFIX,
    documents_schema,
    embedding_key,
    embeddings_manifest,
    embeddings_schema,
    graph_key,
    graph_schema,
    text_hash,
    votes_schema,
)
from transforms.write import WriteSortedShards, parquet_bytes, write_file

if TYPE_CHECKING:
    from transforms.cache import CachePlan


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")


def document_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document as a row of the snapshot's documents table."""
    return {
        "id": doc["id"],
        "text_hash": text_hash(doc["text"]),
        "text": doc["text"],
        "fields_json": json.dumps(doc.get("fields") or {}, sort_keys=True, default=str),
        "split": doc["split"],
        "gold": int(doc["gold"]),
        "eval_gold": doc["eval_gold"],
    }


def commit_cache(
    written: list[str],
    cache: CachePlan,
    snapshot: Mapping[str, Any],
    counts: Mapping[str, int],
) -> str:
    """Appends the new embeddings part to its manifest, then points the manifest at the snapshot."""
    root = cache.cache_dir
    relative = sorted(path[len(root) :].lstrip("/") for path in written)
    embeddings_root = cache.embeddings_dir
    new_parts = [
        path[len(embeddings_root) :].lstrip("/") for path in written if path.startswith(embeddings_root)
    ]
    manifest_path = FileSystems.join(embeddings_root, MANIFEST_FILE)
    parts = [path[len(embeddings_root) :].lstrip("/") for path in cache.embedding_parts]
    checksums = {part: cache.checksums[part] for part in parts if part in cache.checksums}
    checksums.update({part: file_checksum(FileSystems.join(embeddings_root, part)) for part in new_parts})
    embeddings = embeddings_manifest(cache.model_fingerprint, cache.dim, parts + new_parts, cache.precision)
    write_file(manifest_path, _json_bytes({**embeddings, "checksums": checksums}))
    prefix = cache.snapshot_dir + "/"
    paths = {
        table: [path for path in relative if path.startswith(prefix + table + "/")]
        for table in ("documents", "graph", "votes")
    }
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "snapshot": {
            **snapshot,
            "run_id": cache.run_id,
            "model_fingerprint": cache.model_fingerprint,
            "embed_precision": cache.precision,
            "graph_key": graph_key(cache.vectors, cache.neighbour_config.fingerprint()),
            "neighbour_config": {  # the shuffle directory is a run's, not the graph's
                key: value for key, value in dataclasses.asdict(cache.neighbour_config).items() if key != "shuffle_dir"
            },
            "embedding_key": embedding_key(cache.vectors),
            "paths": paths,
            "checksums": {
                path: file_checksum(FileSystems.join(root, path))
                for table in paths.values()
                for path in table
            },
        },
        "last_run": dict(counts),
    }
    return write_file(FileSystems.join(root, MANIFEST_FILE), _json_bytes(manifest))


class WriteCache(beam.PTransform):
    """Writes the new embeddings part and the snapshot, then commits the manifests.

    Inputs: ``new`` ``(text_hash, vector)``, ``graph`` ``(id, (ids, sims))``, ``docs`` (documents
    with split and gold), ``votes`` ``(id, int8 [m])``, ``hits`` and ``embedded`` (counted), and
    ``hashes`` ``(id, content hash)`` (the text's, or the vector's for a non-text corpus).
    """

    def __init__(self, cache: CachePlan, lf_names: Sequence[str], snapshot: Mapping[str, Any]):
        super().__init__()
        self._cache = cache
        self._lf_names = list(lf_names)
        self._snapshot = dict(snapshot)

    def _writer(self, label: str, directory: str, schema: Any, prefix: str = "part") -> WriteSortedShards:
        return label >> WriteSortedShards(
            directory=directory,
            prefix=prefix,
            suffix="parquet",
            num_shards=self._cache.num_shards,
            serialise=lambda rows, schema=schema: parquet_bytes(rows, schema),
            sort_key=lambda row: row.get("id", row.get("text_hash")),
            shard_key=lambda row: row.get("id", row.get("text_hash")),
        )

    def expand(self, inputs: Mapping[str, beam.PCollection]) -> beam.PCollection:
        cache = self._cache
        names = self._lf_names
        snapshot_root = FileSystems.join(cache.cache_dir, cache.snapshot_dir)
        hashes = inputs["hashes"]
        embeddings = (
            inputs["new"]
            | "EmbeddingRows" >> beam.MapTuple(lambda digest, v: {"text_hash": digest, "embedding": v.tolist()})
            | self._writer(
                "WriteEmbeddings", cache.embeddings_dir, embeddings_schema(cache.dim), f"part-{cache.run_id}"
            )
        )
        graph = (
            {"graph": inputs["graph"], "hash": hashes}
            | "JoinGraphHash" >> beam.CoGroupByKey()
            | "GraphRows" >> beam.FlatMap(_graph_row)
            | self._writer("WriteGraph", FileSystems.join(snapshot_root, "graph"), graph_schema())
        )
        documents = (
            inputs["docs"]
            | "DocumentRows" >> beam.Map(document_row)
            | self._writer("WriteDocuments", FileSystems.join(snapshot_root, "documents"), documents_schema())
        )
        votes = (
            inputs["votes"]
            | "VoteRows"
            >> beam.MapTuple(
                lambda doc_id, v: {"id": doc_id, **{VOTE_COLUMN_PREFIX + n: int(x) for n, x in zip(names, v)}}
            )
            | self._writer("WriteVotes", FileSystems.join(snapshot_root, "votes"), votes_schema(names))
        )
        counts = {
            name: beam.pvalue.AsSingleton(inputs[name] | f"Count_{name}" >> beam.combiners.Count.Globally())
            for name in ("hits", "embedded")
        }
        return (
            (embeddings, graph, documents, votes)
            | "CacheWritten" >> beam.Flatten()
            | "GatherCacheWritten" >> beam.combiners.ToList()
            | "CommitCache"
            >> beam.Map(
                lambda written, hits, embedded: commit_cache(
                    written, cache, self._snapshot, {"embedding_cache_hits": hits, "embedded": embedded}
                ),
                hits=counts["hits"],
                embedded=counts["embedded"],
            )
        )


def _graph_row(keyed: tuple[str, Mapping[str, list[Any]]]) -> Iterator[dict[str, Any]]:
    doc_id, groups = keyed
    if not groups["hash"]:
        return
    ids, sims = groups["graph"][0] if groups["graph"] else ([], np.zeros(0, np.float32))
    yield {
        "id": doc_id,
        "text_hash": groups["hash"][0],
        "neighbour_ids": list(ids),
        "sims": np.asarray(sims, np.float32).tolist(),
    }
