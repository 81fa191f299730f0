"""Stable identifiers: content ids for rows without one and a 64-bit key for sampling.

Python's ``hash()`` is salted per process, so it must never key data across workers; these
functions are deterministic on every machine.

>>> content_id("hello")
'2cf24dba5fb0a30e'
>>> stable_hash("hello") == stable_hash("hello")
True
>>> 0 <= stable_hash("hello") < 2**64
True
"""

from __future__ import annotations

import hashlib


def stable_hash(text: str) -> int:
    """Returns an unsigned 64-bit hash of ``text`` (BLAKE2b, 8-byte digest, big-endian).

    Args:
        text: Any string, e.g. a document id.

    Returns:
        An int in ``[0, 2**64)``, the same on every machine and process.
    """
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def content_id(text: str) -> str:
    """Returns the id of a row that has none: the first 16 hex chars of ``sha256(text)``.

    Args:
        text: The row's text.

    Returns:
        16 lowercase hex characters.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
