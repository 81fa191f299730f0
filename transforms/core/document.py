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


def fresh_copy(value: Any) -> Any:
    """A copy of a row whose dicts and lists are new objects (the other values are immutable).

    Rows hold JSON-safe values, so this is a deep copy, much cheaper than ``copy.deepcopy``.

    >>> row = Document({"id": "a", "tags": ["x"]})
    >>> copy = fresh_copy(row)
    >>> copy["tags"].append("y"); row["tags"], type(copy).__name__
    (['x'], 'Document')
    >>> nested = {"a": [{"b": [1]}]}; fresh_copy(nested)["a"][0]["b"].append(2); nested
    {'a': [{'b': [1]}]}
    """
    if isinstance(value, dict):
        copy = type(value)(value)  # shallow; then only the nested dicts and lists are copied
        for key, item in copy.items():
            if isinstance(item, (dict, list)):
                copy[key] = fresh_copy(item)
        return copy
    if isinstance(value, list):
        return [fresh_copy(item) if isinstance(item, (dict, list)) else item for item in value]
    return value
