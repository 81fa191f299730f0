"""The kNN join's groups through files: the shuffle carries paths, the rows go to disk.

An in-process runner (FnApiRunner, DirectRunner) holds a ``GroupByKey``'s input in memory,
decoded, and then writes it out encoded once more before the next stage reads it: the kNN
join's groups (every row once per group it visits, ``spill`` copies at 1M rows) are held about
three times over, which is what kept 1M documents from fitting in 24 GB (docs/scale.md). With a
shuffle directory, :class:`transforms.knn_groups.ToGroupsFn` writes each packed chunk to a file
there (Arrow IPC: id, role, visits, vector) and shuffles its path;
:class:`transforms.knn_groups.SearchGroupFn` reads a group's chunks back from disk. The graph
is the same either way (``tests/test_knn_graph.py``).

Files are named by group and a random suffix, so a retried bundle writes new files and only the
paths of committed bundles are read. :class:`RemoveShuffleDir` deletes the join's directory
once every group has been searched. Any Beam file system works (a ``gs://`` directory for
distributed workers); a local directory only for workers on the launching machine.
"""

from __future__ import annotations

import uuid
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

Chunk = tuple[list[str], bytes, bytes, Any]  # ids, roles uint8, visits uint32, float32 rows

_CHUNK_SUFFIX = ".arrow"  # a chunk of rows (:func:`write_chunk`)
_LISTS_SUFFIX = ".lists"  # a block of top-k lists (:func:`put_block`)


def join_directory(shuffle_dir: str) -> str:
    """A fresh directory for one join under ``shuffle_dir`` (each join cleans up its own)."""
    return FileSystems.join(shuffle_dir, f"knn-{uuid.uuid4().hex}")


def _new_path(directory: str, key: tuple[int, ...], suffix: str) -> str:
    """A new file's path for ``key``: a random part, so a retried bundle never overwrites."""
    return FileSystems.join(directory, "-".join(str(part) for part in key) + f"-{uuid.uuid4().hex}{suffix}")


def write_chunk(directory: str, key: tuple[int, ...], chunk: Chunk) -> str:
    """Writes one packed chunk of group ``key`` to a new file; returns its path.

    >>> import tempfile
    >>> path = write_chunk(tempfile.mkdtemp(), (0, 0, 0), (["a"], b"\\x03", b"\\x01\\x00\\x00\\x00",
    ...                    np.float32([[1, 2]]).tobytes()))
    >>> ids, roles, visits, vectors = read_chunk(path)
    >>> ids, roles, np.frombuffer(visits, np.uint32).tolist(), np.frombuffer(vectors, np.float32).tolist()
    (['a'], b'\\x03', [1], [1.0, 2.0])
    """
    ids, roles, visits, vectors = chunk
    row_bytes = len(vectors) // max(1, len(ids))
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "role": pa.array(np.frombuffer(roles, np.uint8)),
            "visits": pa.array(np.frombuffer(visits, np.uint32)),
            "vector": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(row_bytes), len(ids), [None, pa.py_buffer(vectors)]
            ),
        }
    )
    path = _new_path(directory, key, _CHUNK_SUFFIX)
    with FileSystems.create(path) as handle:
        with pa.ipc.new_stream(handle, table.schema) as writer:
            writer.write_table(table)
    return path


def read_chunk(path: str) -> Chunk:
    """The chunk :func:`write_chunk` wrote at ``path`` (vectors as a read-only buffer)."""
    with FileSystems.open(path) as handle:
        table = pa.ipc.open_stream(handle).read_all()
    return (
        table.column("id").to_pylist(),
        table.column("role").to_numpy().tobytes(),
        table.column("visits").to_numpy().tobytes(),
        _fixed_size_values(table.column("vector").combine_chunks()),
    )


def _fixed_size_values(array: pa.FixedSizeBinaryArray) -> memoryview:
    """The values buffer of a fixed-size binary array, without a copy (offset applied)."""
    width = array.type.byte_width
    start = array.offset * width
    return memoryview(array.buffers()[1])[start : start + len(array) * width]


def pack_lists(query_ids: list[str], neighbour_ids: list[list[str]], sims: list[np.ndarray]) -> bytes:
    """Top-k lists of several queries as one Arrow IPC stream (``query``, ``ids``, ``sims``).

    >>> queries, lengths, ids, sims = unpack_lists(pack_lists(["q", "p"], [["a", "b"], []],
    ...                                            [np.float32([.5, .25]), np.float32([])]))
    >>> queries, lengths.tolist(), ids.tolist(), sims.tolist()
    (['q', 'p'], [2, 0], ['a', 'b'], [0.5, 0.25])
    """
    lengths = np.fromiter((len(ids) for ids in neighbour_ids), np.int32, len(neighbour_ids))
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    flat_ids = pa.array([doc_id for ids in neighbour_ids for doc_id in ids], pa.string())
    flat_sims = pa.array(np.concatenate([np.zeros(0, np.float32), *sims]).astype(np.float32))
    table = pa.table(
        {
            "query": pa.array(query_ids, pa.string()),
            "ids": pa.ListArray.from_arrays(offsets, flat_ids),
            "sims": pa.ListArray.from_arrays(offsets, flat_sims),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def unpack_lists(block: bytes) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pack_lists` bytes → ``(query ids, lengths int [L], flat ids str, flat sims float32)``."""
    table = pa.ipc.open_stream(block).read_all()
    ids = table.column("ids").combine_chunks()
    return (
        table.column("query").to_pylist(),
        np.diff(ids.offsets.to_numpy()),
        np.asarray(ids.flatten().to_numpy(zero_copy_only=False), dtype=str),
        table.column("sims").combine_chunks().flatten().to_numpy(zero_copy_only=False),
    )


def put_block(directory: str, key: tuple[int, ...], block: bytes) -> bytes | str:
    """``block`` itself without a ``directory``; else the path of a new file holding it."""
    if not directory:
        return block
    path = _new_path(directory, key, _LISTS_SUFFIX)
    with FileSystems.create(path) as handle:
        handle.write(block)
    return path


def get_block(value: bytes | str) -> bytes:
    """The block :func:`put_block` gave ``value`` for (read from its file when it is a path)."""
    if isinstance(value, bytes):
        return value
    with FileSystems.open(value) as handle:
        return handle.read()


def remove_directory(directory: str) -> None:
    """Deletes a join's shuffle directory (nothing to do when it was never created)."""
    if FileSystems.exists(directory):
        FileSystems.delete([directory])


class RemoveShuffleDir(beam.PTransform):
    """Deletes ``directory`` once ``done`` (any PCollection downstream of every read) is complete."""

    def __init__(self, directory: str):
        super().__init__()
        self._directory = directory

    def expand(self, done: beam.PCollection) -> beam.PCollection:
        finished = beam.pvalue.AsSingleton(done | "CountDone" >> beam.combiners.Count.Globally())
        return (
            done.pipeline
            | "ShuffleDir" >> beam.Create([self._directory])
            | "Remove" >> beam.Map(lambda directory, _: remove_directory(directory), finished)
        )
