"""Cache integrity: manifests that parse, parts whose bytes match their recorded SHA-256.

A cache file can be truncated (a killed writer, a full disk) or changed by hand. Every part the
cache commits is listed in its manifest with the SHA-256 of its bytes; a reader verifies each
part before using it (:func:`verify_parts`). A part or manifest that fails is never an error of
the run: it is reported as one line naming the file (printed as a warning and kept in
``summary.json`` under ``run.cache_warnings``), ignored, and its rows are recomputed and written
again. Parts of an older cache without checksums are kept when their Parquet footer reads.
Verifying reads every cached part once per run, on the machine that builds the pipeline.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def read_json(path: str, problems: list[str] | None = None) -> dict[str, Any] | None:
    """A JSON manifest (local or ``gs://``), or ``None`` when it does not exist.

    Args:
        path: The file.
        problems: When given, a file that is not a JSON object is reported here (one line naming
            it) and read as absent, so that its entry is rebuilt; otherwise it raises.

    Raises:
        ValueError: For a file that is not a JSON object, when ``problems`` is ``None``.
    """
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        data = handle.read()
    try:
        value = json.loads(data.decode("utf-8"))
        if not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as error:
        problem = (
            f"cache manifest {path!r} is corrupt ({error}); it was ignored and its entry is "
            "rebuilt"
        )
        if problems is None:
            raise ValueError(
                f"cache manifest {path!r} is corrupt ({error}); rerun the pipeline with this "
                "--cache_dir to rebuild it"
            ) from None
        problems.append(problem)
        return None
    return value


def file_checksum(path: str) -> str:
    """The SHA-256 of a file's bytes (local or ``gs://``), read in 8 MiB chunks."""
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        for chunk in iter(lambda: handle.read(8 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_parts(
    root: str, parts: Sequence[str], checksums: Mapping[str, str], problems: list[str]
) -> list[str]:
    """The parts (relative to ``root``) whose bytes match their manifest checksum.

    A part that is missing, unreadable or does not match is reported in ``problems`` (one line
    naming the file) and left out, so that its rows are recomputed. A part of an older cache
    without a checksum is kept when its Parquet footer reads.
    """
    good = []
    for part in parts:
        path = FileSystems.join(root, part)
        try:
            expected = checksums.get(part)
            if expected is None:
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                    pq.read_metadata(pa.PythonFile(handle, mode="r"))
            elif file_checksum(path) != expected:
                raise ValueError("its checksum does not match the manifest: truncated or changed")
        except (OSError, ValueError, pa.ArrowException) as error:
            problems.append(
                f"cache file {path!r} is corrupt ({error}); it was ignored and is rebuilt"
            )
            continue
        good.append(part)
    return good
