"""Writing a benchmark's headline figures to its ``--json OUT`` file."""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any, MutableMapping, Mapping


def write_json(path: str, figures: Mapping[str, Any], *, sort_keys: bool = True) -> None:
    """Writes ``figures`` as indented JSON to ``path``, creating its directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(figures, handle, indent=2, sort_keys=sort_keys)


def finish(figures: MutableMapping[str, Any], json_path: str | None) -> None:
    """Adds the command that reproduces the run to ``figures`` as ``command``, prints it, and
    writes ``figures`` to ``json_path`` (when given): the end of every benchmark."""
    figures["command"] = shlex.join([sys.executable, *sys.argv])
    print("reproduce: " + figures["command"])
    if json_path:
        write_json(json_path, figures)
