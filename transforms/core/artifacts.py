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

An embedding is keyed by the **vectors' fingerprint** (the model fingerprint and the embed
precision, :func:`vector_fingerprint`) and the **content hash of the embedded text** (not the
document id), so a renamed or moved document is a hit and an edited one a miss. The graph is
keyed by the vectors' fingerprint and the **index configuration**. Every key also holds
:data:`SCHEMA_VERSION`; an entry whose recorded key differs from the run's is never read.

fp32 and bf16 vectors of one model live under different keys and never mix. The fp32 key is the
model fingerprint alone, as before precisions existed, so older caches' fp32 entries stay valid
(no schema version bump); a manifest without a ``precision`` field is fp32.

>>> embedding_key("sha256:ab") == embedding_key("sha256:ab"), embedding_key("a") == embedding_key("b")
(True, False)
>>> vector_fingerprint("sha256:ab", "fp32"), vector_fingerprint("sha256:ab", "bf16")
('sha256:ab', 'sha256:ab|precision=bf16')
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
DEFAULT_PRECISION = "fp32"  # of vectors in manifests written before precisions were recorded


def text_hash(text: str) -> str:
    """The content hash of an embedded text: 32 hex characters of SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def vector_fingerprint(model_fingerprint: str, precision: str = DEFAULT_PRECISION) -> str:
    """What identifies a model's vectors: its fingerprint, plus the precision unless fp32.

    Args:
        model_fingerprint: The embedding model's fingerprint.
        precision: The embed precision (``"fp32"`` or ``"bf16"``).

    Returns:
        ``model_fingerprint`` for fp32 (the key older caches used), else
        ``"<model_fingerprint>|precision=<precision>"``.
    """
    if precision == DEFAULT_PRECISION:
        return model_fingerprint
    return f"{model_fingerprint}|precision={precision}"


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join((str(SCHEMA_VERSION),) + parts).encode("utf-8")).hexdigest()[:16]


def embedding_key(vectors: str) -> str:
    """The directory key of a model's embeddings (schema version + :func:`vector_fingerprint`)."""
    return _key("embeddings", vectors)


def graph_key(vectors: str, index_fingerprint: str) -> str:
    """The key of a neighbour graph (schema version + vector fingerprint + index configuration)."""
    return _key("graph", vectors, index_fingerprint)


def embeddings_manifest(
    model_fingerprint: str, dim: int, parts: list[str], precision: str = DEFAULT_PRECISION
) -> dict[str, Any]:
    """The manifest of an embeddings directory."""
    return {
        "schema_version": SCHEMA_VERSION,
        "key": embedding_key(vector_fingerprint(model_fingerprint, precision)),
        "model_fingerprint": model_fingerprint,
        "precision": precision,
        "dim": int(dim),
        "parts": sorted(set(parts)),
    }


def usable_embeddings(
    manifest: Mapping[str, Any] | None,
    model_fingerprint: str,
    dim: int,
    precision: str = DEFAULT_PRECISION,
) -> bool:
    """Whether an embeddings manifest matches this run's schema, model, precision and dimension.

    >>> m = embeddings_manifest("fp", 4, [])
    >>> usable_embeddings(m, "fp", 4), usable_embeddings(m, "other", 4), usable_embeddings(None, "fp", 4)
    (True, False, False)
    >>> usable_embeddings({**m, "schema_version": 0}, "fp", 4), usable_embeddings(m, "fp", 4, "bf16")
    (False, False)
    >>> old = {k: v for k, v in m.items() if k != "precision"}  # written before precisions
    >>> usable_embeddings(old, "fp", 4), usable_embeddings(embeddings_manifest("fp", 4, [], "bf16"), "fp", 4, "bf16")
    (True, True)
    """
    return bool(
        manifest
        and manifest.get("schema_version") == SCHEMA_VERSION
        and manifest.get("model_fingerprint") == model_fingerprint
        and manifest.get("precision", DEFAULT_PRECISION) == precision
        and manifest.get("key") == embedding_key(vector_fingerprint(model_fingerprint, precision))
        and manifest.get("dim") == dim
    )


def usable_graph(
    manifest: Mapping[str, Any] | None,
    model_fingerprint: str,
    index_fingerprint: str,
    precision: str = DEFAULT_PRECISION,
) -> bool:
    """Whether the latest snapshot's graph was built with this schema, model, precision and
    index config (a snapshot without ``embed_precision`` is fp32)."""
    snapshot = (manifest or {}).get("snapshot") or {}
    vectors = vector_fingerprint(model_fingerprint, precision)
    return bool(
        manifest
        and manifest.get("schema_version") == SCHEMA_VERSION
        and snapshot.get("graph_key") == graph_key(vectors, index_fingerprint)
        and snapshot.get("model_fingerprint") == model_fingerprint
        and snapshot.get("embed_precision", DEFAULT_PRECISION) == precision
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
