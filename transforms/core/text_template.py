"""What text a document is embedded as: the row's ``text`` or a template over its fields.

Relation-classification rows carry ``entity1``/``entity2`` beside ``text``; a whole-sentence
embedding carries little signal about the pair, so the template puts the entities first.

>>> render_text({"text": "Paris is in France", "entity1": "Paris", "entity2": "France"},
...             RELATION_TEMPLATE)
'Paris [SEP] France [SEP] Paris is in France'
>>> render_text({"text": "hi"}, None)
'hi'
>>> render_text({"text": "hi"}, "{entity1} {text}")
Traceback (most recent call last):
...
ValueError: template '{entity1} {text}' needs the field 'entity1', which the row lacks (fields: ['text']); fix the template or the input rows
"""

from __future__ import annotations

import string
from typing import Any, Mapping

RELATION_TEMPLATE = "{entity1} [SEP] {entity2} [SEP] {text}"
RELATION_FIELDS = ("entity1", "entity2")


def template_fields(template: str) -> list[str]:
    """Returns the field names a ``str.format`` template refers to, in order.

    Raises:
        ValueError: for a positional (``{}``) or malformed placeholder.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"template {template!r} is malformed ({error}): use '{{field}}' placeholders") from error
    fields = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise ValueError(f"template {template!r} has a positional placeholder: name the field, e.g. '{{text}}'")
        fields.append(field)
    return fields


def render_text(row: Mapping[str, Any], template: str | None) -> str:
    """Renders the text to embed for one row.

    Args:
        row: The document's fields.
        template: ``None`` for ``row["text"]``, else a ``str.format`` template of field names.

    Returns:
        The text.

    Raises:
        ValueError: naming a field the template needs and the row lacks.
    """
    if template is None:
        template = "{text}"
    for field in template_fields(template):
        if field not in row:
            raise ValueError(
                f"template {template!r} needs the field {field!r}, which the row lacks "
                f"(fields: {sorted(row)}); fix the template or the input rows"
            )
    return template.format_map({k: "" if v is None else v for k, v in row.items()})
