"""The row an LF sees: a dict that also answers attribute access, as Snorkel's rows do."""

from __future__ import annotations

from typing import Any, Mapping


class Document(dict):
    """A document row: ``x["text"]`` and ``x.text`` both work.

    >>> x = Document({"id": "a", "text": "hi", "author": "b"})
    >>> x.text, x["author"]
    ('hi', 'b')
    >>> x.missing
    Traceback (most recent call last):
    ...
    AttributeError: document has no field 'missing' (fields: author, id, text)
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"document has no field {name!r} (fields: {', '.join(sorted(self))})"
            ) from None


def lf_row(doc: Mapping[str, Any]) -> Document:
    """The row given to LFs for a document record: its fields, plus ``id`` and ``text``.

    >>> lf_row({"id": "a", "text": "hi", "fields": {"author": "b"}}).author
    'b'
    """
    row = Document(doc.get("fields") or {})
    row["id"] = doc["id"]
    row["text"] = doc["text"]
    return row
