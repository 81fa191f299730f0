"""The write stage: deterministic, sharded outputs, committed atomically at the end.

Every output is first written under a staging directory ``OUTPUT/_staging-<run>/``; one final
step (:class:`CommitOutputs`), which runs only after every writer finished, checks the run and
moves the files into place, then writes ``_SUCCESS``. A failed run therefore never leaves a
partial output that looks complete. Rows are sharded by a stable hash of their id and sorted by id
inside each shard, so two runs on the same input write byte-identical files.
"""

from __future__ import annotations

import io
import json
from typing import Any, Callable, Iterable, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.core.ids import stable_hash

SUCCESS_FILE = "_SUCCESS"

LABELS_SCHEMA_VERSION = 1


def labels_schema(class_names: Sequence[str]) -> pa.Schema:
    """The labels table's schema; the class names travel in its metadata."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("label", pa.int32()),
            ("label_name", pa.string()),
            ("confidence", pa.float32()),
            ("probs", pa.list_(pa.float32())),
            ("covered", pa.bool_()),
            ("num_votes", pa.int32()),
            ("num_votes_extended", pa.int32()),
            ("votes", pa.list_(pa.int8())),
            ("extended_votes", pa.list_(pa.int8())),
            ("split", pa.string()),
            ("gold", pa.int32()),
        ],
        metadata={
            "epoxy_beam.class_names": json.dumps(list(class_names)),
            "epoxy_beam.schema_version": str(LABELS_SCHEMA_VERSION),
        },
    )


def parquet_bytes(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> bytes:
    """Serialises rows to Parquet bytes (deterministic: no timestamps are written)."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue()


def jsonl_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    """Serialises rows to JSON lines with sorted keys."""
    return "".join(
        json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows
    ).encode("utf-8")


def write_file(path: str, data: bytes) -> str:
    """Writes ``data`` to ``path`` (local or ``gs://``), creating parent directories."""
    parent = path.rsplit("/", 1)[0]
    if "://" not in path and not FileSystems.exists(parent):
        FileSystems.mkdirs(parent)
    with FileSystems.create(path) as handle:
        handle.write(data)
    return path


def shard_name(prefix: str, shard: int, num_shards: int, suffix: str) -> str:
    """``prefix-00000-of-00004.suffix``.

    >>> shard_name("part", 1, 4, "parquet")
    'part-00001-of-00004.parquet'
    """
    return f"{prefix}-{shard:05d}-of-{num_shards:05d}.{suffix}"


class WriteSortedShards(beam.PTransform):
    """Rows (dicts with a sort key) → ``num_shards`` files, each sorted; emits their paths.

    Every shard is written, empty or not, so the output's file list never depends on the data.
    """

    def __init__(
        self,
        directory: str,
        prefix: str,
        suffix: str,
        num_shards: int,
        serialise: Callable[[Sequence[dict[str, Any]]], bytes],
        sort_key: Callable[[dict[str, Any]], Any],
        shard_key: Callable[[dict[str, Any]], str],
    ):
        super().__init__()
        self._directory = directory
        self._prefix = prefix
        self._suffix = suffix
        self._num_shards = num_shards
        self._serialise = serialise
        self._sort_key = sort_key
        self._shard_key = shard_key

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        num_shards = self._num_shards
        shard_key = self._shard_key
        keyed = rows | "KeyByShard" >> beam.Map(
            lambda row: (stable_hash(shard_key(row)) % num_shards, row)
        )
        every_shard = (
            rows.pipeline
            | "Shards" >> beam.Create(list(range(num_shards)))
            | "ShardMarker" >> beam.Map(lambda shard: (shard, None))
        )
        return (
            {"rows": keyed, "marker": every_shard}
            | "GroupShards" >> beam.CoGroupByKey()
            | "WriteShard" >> beam.MapTuple(self._write_shard)
        )

    def _write_shard(self, shard: int, groups: dict[str, Iterable[Any]]) -> str:
        rows = sorted(groups["rows"], key=self._sort_key)
        name = shard_name(self._prefix, shard, self._num_shards, self._suffix)
        return write_file(FileSystems.join(self._directory, name), self._serialise(rows))


def move_into_place(staging: str, output: str, relative_paths: Iterable[str]) -> list[str]:
    """Moves staged files to the same relative paths under ``output``; returns the targets."""
    targets = []
    for relative in sorted(relative_paths):
        source = FileSystems.join(staging, relative)
        target = FileSystems.join(output, relative)
        parent = target.rsplit("/", 1)[0]
        if "://" not in target and not FileSystems.exists(parent):
            FileSystems.mkdirs(parent)
        if FileSystems.exists(target):
            FileSystems.delete([target])
        FileSystems.rename([source], [target])
        targets.append(target)
    return targets


def remove_stale_outputs(output: str, subdirectories: Iterable[str]) -> None:
    """Deletes the files of a previous run's output subdirectories and its ``_SUCCESS``."""
    paths = [FileSystems.join(output, SUCCESS_FILE)]
    for subdirectory in subdirectories:
        pattern = FileSystems.join(output, subdirectory, "*")
        paths.extend(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    existing = [path for path in paths if FileSystems.exists(path)]
    if existing:
        FileSystems.delete(existing)
