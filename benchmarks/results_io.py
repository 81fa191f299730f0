"""Writing a benchmark's headline figures to its ``--json OUT`` file."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping


def write_json(path: str, figures: Mapping[str, Any], *, sort_keys: bool = True) -> None:
    """Writes ``figures`` as indented JSON to ``path``, creating its directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(figures, handle, indent=2, sort_keys=sort_keys)
