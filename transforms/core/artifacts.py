"""The artifacts cache's keys, manifests and table schemas (no Beam; used by the pipeline and
the ``iterate`` session).

Layout under ``--cache_dir`` (local or ``gs://``), every table Parquet::

    manifest.json                      the latest complete snapshot (written last, by the commit)
    embeddings/<embedding key>/        text_hash → embedding, append-only parts
        manifest.json                  its key fields and the list of committed parts
        part-<run>-NNNNN-of-NNNNN.parquet
    snapshots/<run>/documents/         id, text_hash, text, fields_json, split, gold, eval_gold
    snapshots/<run>/graph/             id, text_hash, neighbour_ids, sims
    snapshots/<run>/votes/             id, one int8 column per LF (named by the LF)

An embedding is keyed by the **model fingerprint** and the **content hash of the embedded text**
(not the document id), so a renamed or moved document is a hit and an edited one a miss. The
graph is keyed by the model fingerprint and the **index configuration**. Every key also holds
:data:`SCHEMA_VERSION`; an entry whose recorded key differs from the run's is never read.

>>> embedding_key("sha256:ab") == embedding_key("sha256:ab"), embedding_key("a") == embedding_key("b")
(True, False)
>>> text_hash("hello")[:12]
'2cf24dba5fb0'
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

import pyarrow as pa

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
VOTE_COLUMN_PREFIX = "lf:"


def text_hash(text: str) -> str:
    """The content hash of an embedded text: 32 hex characters of SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join((str(SCHEMA_VERSION),) + parts).encode("utf-8")).hexdigest()[:16]


def embedding_key(model_fingerprint: str) -> str:
    """The directory key of a model's embeddings (schema version + model fingerprint)."""
    return _key("embeddings", model_fingerprint)


def graph_key(model_fingerprint: str, index_fingerprint: str) -> str:
    """The key of a neighbour graph (schema version + model + index configuration)."""
    return _key("graph", model_fingerprint, index_fingerprint)


def embeddings_manifest(model_fingerprint: str, dim: int, parts: list[str]) -> dict[str, Any]:
    """The manifest of an embeddings directory."""
    return {
        "schema_version": SCHEMA_VERSION,
        "key": embedding_key(model_fingerprint),
        "model_fingerprint": model_fingerprint,
        "dim": int(dim),
        "parts": sorted(set(parts)),
    }


def usable_embeddings(manifest: Mapping[str, Any] | None, model_fingerprint: str, dim: int) -> bool:
    """Whether an embeddings manifest matches this run's schema, model and dimension.

    >>> m = embeddings_manifest("fp", 4, [])
    >>> usable_embeddings(m, "fp", 4), usable_embeddings(m, "other", 4), usable_embeddings(None, "fp", 4)
    (True, False, False)
    >>> usable_embeddings({**m, "schema_version": 0}, "fp", 4)
    False
    """
    return bool(
        manifest
        and manifest.get("schema_version") == SCHEMA_VERSION
        and manifest.get("model_fingerprint") == model_fingerprint
        and manifest.get("key") == embedding_key(model_fingerprint)
        and manifest.get("dim") == dim
    )


def usable_graph(
    manifest: Mapping[str, Any] | None, model_fingerprint: str, index_fingerprint: str
) -> bool:
    """Whether the latest snapshot's graph was built with this schema, model and index config."""
    snapshot = (manifest or {}).get("snapshot") or {}
    return bool(
        manifest
        and manifest.get("schema_version") == SCHEMA_VERSION
        and snapshot.get("graph_key") == graph_key(model_fingerprint, index_fingerprint)
        and snapshot.get("model_fingerprint") == model_fingerprint
    )


def embeddings_schema(dim: int) -> pa.Schema:
    """``text_hash`` → ``embedding`` (``float32 [dim]``)."""
    return pa.schema(
        [("text_hash", pa.string()), ("embedding", pa.list_(pa.float32(), dim))],
        metadata={"epoxy_beam.schema_version": str(SCHEMA_VERSION)},
    )


def graph_schema() -> pa.Schema:
    """One row per document: its neighbours and their cosine similarities (descending)."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("text_hash", pa.string()),
            ("neighbour_ids", pa.list_(pa.string())),
            ("sims", pa.list_(pa.float32())),
        ],
        metadata={"epoxy_beam.schema_version": str(SCHEMA_VERSION)},
    )


def documents_schema() -> pa.Schema:
    """The documents as the LFs and the session see them, with split and gold."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("text_hash", pa.string()),
            ("text", pa.string()),
            ("fields_json", pa.string()),
            ("split", pa.string()),
            ("gold", pa.int32()),
            ("eval_gold", pa.int32()),
        ],
        metadata={"epoxy_beam.schema_version": str(SCHEMA_VERSION)},
    )


def votes_schema(lf_names: list[str]) -> pa.Schema:
    """``id`` plus one ``int8`` column per LF, named ``lf:<name>``, in LF order."""
    return pa.schema(
        [("id", pa.string())] + [(VOTE_COLUMN_PREFIX + name, pa.int8()) for name in lf_names],
        metadata={"epoxy_beam.schema_version": str(SCHEMA_VERSION)},
    )
