"""The dead-letter record: every input row that does not reach the labels ends as one.

Plain Python, shared by the core's parsing and every Beam stage (:mod:`transforms.dead_letter`
adds the Beam tag and counter namespace).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

MAX_PAYLOAD_CHARS = 10_000


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One input row (or file) that could not be labelled, and why.

    Attributes:
        stage: The stage that rejected it (``read``, ``embed``, ``apply_lfs``, ...).
        cause: A short machine-readable cause (``malformed_json``, ``empty_text``, ...).
        message: A human-readable explanation naming the bad value and the fix.
        source: The file (and line or row number) the row came from, when known.
        doc_id: The document id, when known.
        payload: The raw row as text (JSON for structured rows), cut to
            :data:`MAX_PAYLOAD_CHARS` characters.
        lf: The failing LF's name, for an LF failure sample; empty otherwise.
        counts_as_input_row: False for records that describe a row already counted elsewhere
            (an LF failure sample on a row that was still labelled).
    """

    stage: str
    cause: str
    message: str
    source: str = ""
    doc_id: str = ""
    payload: str = ""
    lf: str = ""
    counts_as_input_row: bool = True

    @classmethod
    def for_row(
        cls, stage: str, cause: str, message: str, row: Any, source: str = "", doc_id: str = ""
    ) -> "DeadLetter":
        """Builds a record whose payload is ``row`` rendered as JSON (or its ``repr``)."""
        return cls(
            stage=stage,
            cause=cause,
            message=message,
            source=source,
            doc_id=doc_id,
            payload=render_payload(row),
        )

    def __post_init__(self) -> None:
        for field in ("message", "source", "doc_id", "payload"):
            object.__setattr__(self, field, encodable(getattr(self, field)))

    def to_dict(self) -> dict[str, Any]:
        """Returns the record as a JSON-safe dict (one line of ``errors/*.jsonl``)."""
        return dataclasses.asdict(self)

    @property
    def counter_name(self) -> str:
        """The Beam counter name for this record: ``<stage>/<cause>``."""
        return f"{self.stage}/{self.cause}"


def encodable(text: str) -> str:
    """``text`` with unpaired surrogates escaped, so that it encodes as UTF-8 (Beam, JSON, Arrow).

    >>> encodable("ok"), encodable("bad \\ud800 here")
    ('ok', 'bad \\\\ud800 here')
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text


def render_payload(row: Any) -> str:
    """Renders a raw row for the dead letter, never raising.

    >>> print(render_payload({"id": 1, "ok": True}))
    {"id": 1, "ok": true}
    >>> len(render_payload("x" * 20_000))
    10000
    """
    if isinstance(row, str):
        text = row
    elif isinstance(row, bytes):
        text = row.decode("utf-8", errors="backslashreplace")
    else:
        try:
            text = json.dumps(row, ensure_ascii=False, default=repr, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(row)
    return text[:MAX_PAYLOAD_CHARS]
