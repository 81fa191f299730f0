"""The Flex Template's ``metadata.json``, generated from :class:`pipelines.options.WeakLabelOptions`.

    python -m templates.metadata > templates/metadata.json

One template parameter per option, in declaration order: the option's help text, whether it is
required, its default (as the launch API's string) and, where the option has a closed set of
values or a type, a regex and a ``paramType`` the Dataflow console uses to pick an input widget.
``tests/test_templates.py`` checks that the committed file equals this module's output.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from pipelines.options import option_fields
from templates.main import IMAGE_MODEL
from transforms.core.labeler import LABEL_MODELS, THRESHOLD_MODES
from transforms.embed import EMBED_PRECISIONS
from transforms.io import FORMATS

TEMPLATE_NAME = "epoxy-beam"
TEMPLATE_DESCRIPTION = (
    "Weak labeling at corpus scale: embeds every document with a TF-Hub text model, builds a "
    "ScaNN kNN graph, applies labeling functions, extends each LF's votes to nearby documents "
    "(Epoxy), fits a label model and writes probabilistic labels (Parquet) with a summary."
)

# Options whose values are one of a closed set (the sets the code itself validates against).
ENUM_CHOICES: dict[str, tuple[str, ...]] = {
    "input_format": tuple(FORMATS),
    "label_model": tuple(LABEL_MODELS),
    "thresholds": tuple(THRESHOLD_MODES),
    "embed_precision": tuple(EMBED_PRECISIONS),
}
# On Dataflow the launcher and every worker write these: they must be Cloud Storage paths.
GCS_FOLDERS = ("output", "cache_dir")
GCS_PATH_REGEX = r"^gs://[a-z0-9][-_.a-z0-9]*[a-z0-9](/.*)?$"
BOOL_REGEX = r"^(true|false)$"
INT_REGEX = r"^[0-9]+$"
FLOAT_REGEX = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
# What the template image uses when --model is not given (see templates/main.py).
IMAGE_DEFAULTS = {"model": IMAGE_MODEL}


def parameter_value(value: Any) -> str:
    """An option value as the launch API's parameter string (booleans lowercase).

    >>> [parameter_value(v) for v in (True, 0.5, 20, "auto")]
    ['true', '0.5', '20', 'auto']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def parameter_metadata(field: dataclasses.Field) -> dict[str, Any]:
    """The ``ParameterMetadata`` of one option field.

    Args:
        field: A field of :class:`~pipelines.options.WeakLabelOptions`.

    Returns:
        ``{"name", "label", "helpText", "isOptional", ...}`` with ``regexes``, ``paramType``,
        ``enumOptions`` and ``defaultValue`` where they apply.
    """
    required = field.metadata["required"]
    param: dict[str, Any] = {
        "name": field.name,
        "label": _label(field.name),
        "helpText": field.metadata["help"],
        "isOptional": not required,
    }
    kind = str(field.type)
    if field.name in ENUM_CHOICES:
        choices = ENUM_CHOICES[field.name]
        param["paramType"] = "ENUM"
        param["enumOptions"] = [{"value": choice, "label": choice} for choice in choices]
        param["regexes"] = ["^(" + "|".join(re.escape(choice) for choice in choices) + ")$"]
    elif field.name in GCS_FOLDERS:
        param["paramType"] = "GCS_WRITE_FOLDER"
        param["regexes"] = [GCS_PATH_REGEX]
    elif kind == "bool":
        param["paramType"] = "BOOLEAN"
        param["regexes"] = [BOOL_REGEX]
    elif kind in ("int", "float"):
        param["paramType"] = "NUMBER"
        param["regexes"] = [INT_REGEX if kind == "int" else FLOAT_REGEX]
    else:
        param["paramType"] = "TEXT"
    if not required:
        default = IMAGE_DEFAULTS.get(field.name, field.default)
        if default != "":
            param["defaultValue"] = parameter_value(default)
        if field.name in IMAGE_DEFAULTS:
            param["helpText"] += f" Default in the template image: {default}."
    return param


def template_metadata() -> dict[str, Any]:
    """The whole ``metadata.json`` document."""
    return {
        "name": TEMPLATE_NAME,
        "description": TEMPLATE_DESCRIPTION,
        "parameters": [parameter_metadata(field) for field in option_fields()],
    }


def metadata_json() -> str:
    """``metadata.json`` exactly as committed (2-space indent, trailing newline)."""
    return json.dumps(template_metadata(), indent=2) + "\n"


if __name__ == "__main__":
    print(metadata_json(), end="")
