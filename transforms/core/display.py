"""How the report shows a document that has no text: its fields, and a thumbnail for an image.

:func:`display_text` returns the document's text when it has one; otherwise ``field=value``
pairs (long lists and strings shortened), preceded, when a field holds a small base64 PNG, JPEG,
GIF or BMP, by one line with that image as a ``data:`` URI, which :func:`split_thumbnail` takes
back off for the report (which escapes both parts).

>>> display_text("", {"frame": 3, "score": 0.876543, "vec": [0.1] * 50}, 80)
'frame=3 score=0.8765 vec=[50 numbers]'
>>> split_thumbnail(display_text("", {"img": "iVBORw0KGgoAAAA="}, 80))
('data:image/png;base64,iVBORw0KGgoAAAA=', 'img=[image]')
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

MAX_THUMBNAIL_CHARS = 64_000  # base64 characters of an image shown inline (about 48 KB)
MAX_VALUE_CHARS = 40
_MIME_BY_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)
_DATA_PREFIX = "data:image/"


def image_mime(value: Any) -> str:
    """The MIME type of a base64 string holding an image, or ``""``.

    >>> image_mime("iVBORw0KGgoAAAA="), image_mime("hello")
    ('image/png', '')
    """
    if not isinstance(value, str) or len(value) < 8:
        return ""
    try:
        head = base64.b64decode(value[:16], validate=True)
    except (binascii.Error, ValueError):
        return ""
    return next((mime for magic, mime in _MIME_BY_MAGIC if head.startswith(magic)), "")


def _short(value: Any) -> str:
    if image_mime(value):
        return "[image]"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 8:
        return f"[{len(value)} numbers]" if all(isinstance(v, (int, float)) for v in value) else f"[{len(value)} items]"
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def display_text(text: str, fields: Mapping[str, Any] | None, max_chars: int) -> str:
    """The text the report shows for a document (see the module docstring)."""
    if text:
        return text[:max_chars]
    fields = fields or {}
    summary = " ".join(f"{name}={_short(value)}" for name, value in sorted(fields.items()))[:max_chars]
    images = [(name, image_mime(value)) for name, value in sorted(fields.items()) if image_mime(value)]
    for name, mime in images:
        if len(fields[name]) <= MAX_THUMBNAIL_CHARS and _is_base64(fields[name]):
            return f"data:{mime};base64,{fields[name]}\n{summary}"
    return summary


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def split_thumbnail(shown: str) -> tuple[str, str]:
    """``(data URI or "", text)`` of a :func:`display_text` result."""
    if shown.startswith(_DATA_PREFIX) and "\n" in shown:
        uri, rest = shown.split("\n", 1)
        return uri, rest
    return "", shown
