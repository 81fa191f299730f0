"""Checks of a WRENCH set's own consistency across splits: do the votes and texts belong together?

Per split it reports:

* ``rules_reproduce_<split>``: the share of rows whose stored votes equal the votes of the
  readme's published regex rules on the row's text (only when the readme lists one rule per
  LF; :mod:`benchmarks.readme_rules`);
* ``uppercase_<split>``: the share of texts with an upper-case letter (a split stored in a
  different text form embeds differently);
* ``first_token_overlap_<split>``: the share of texts whose first token is among the first
  tokens of the other splits' texts (a split whose texts carry an extra leading token, e.g. a
  label, shows a low figure).

``--write-copy OUT`` writes a copy of the set with every text lower-cased and, for the splits
named by ``--drop-first-token``, the first token removed; ``label_quality.py --data OUT`` then
scores the set with all its splits in one text form. Nothing here is read by a fit.

Usage::

    python benchmarks/data_checks.py --data /work/shared/data/sms [--json OUT]
    python benchmarks/data_checks.py --data /work/shared/data/trec --write-copy /tmp/trec_lower \\
        --drop-first-token test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.readme_rules import parse_rules, rule_votes  # noqa: E402
from benchmarks.results_io import finish  # noqa: E402
from benchmarks.wrench import SPLITS  # noqa: E402


def read_splits(data_dir: str) -> dict[str, dict]:
    """``{split: rows}`` of the JSON files present in ``data_dir``."""
    out = {}
    for split in SPLITS:
        path = os.path.join(data_dir, f"{split}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                out[split] = json.load(handle)
    return out


def _text(row: dict) -> str:
    data = row["data"]
    return str(data.get("text", "")) if isinstance(data, dict) else str(data)


def _first_token(text: str) -> str:
    return text.split(" ", 1)[0].lower()


def split_figures(data_dir: str, splits: dict[str, dict]) -> dict[str, float]:
    """The per-split figures of the module doc."""
    with open(os.path.join(data_dir, "label.json"), encoding="utf-8") as handle:
        class_names = list(json.load(handle).values())
    readme = os.path.join(data_dir, "readme.txt")
    rules = []
    if os.path.exists(readme):
        with open(readme, encoding="utf-8") as handle:
            rules = parse_rules(handle.read(), class_names)
    figures: dict[str, float] = {}
    for split, rows in splits.items():
        texts = [_text(r) for r in rows.values()]
        stored = np.array([r["weak_labels"] for r in rows.values()], dtype=np.int8)
        if rules and len(rules) == stored.shape[1]:
            same = (rule_votes([t.lower() for t in texts], rules) == stored).all(axis=1)
            figures[f"rules_reproduce_{split}"] = float(same.mean())
        figures[f"uppercase_{split}"] = float(np.mean([t != t.lower() for t in texts]))
        others = {_first_token(_text(r)) for s, o in splits.items() if s != split for r in o.values()}
        figures[f"first_token_overlap_{split}"] = float(np.mean([_first_token(t) in others for t in texts]))
    return figures


def write_copy(data_dir: str, splits: dict[str, dict], out_dir: str, drop_first: set[str]) -> None:
    """Writes the set to ``out_dir`` with texts lower-cased (first token dropped in ``drop_first``)."""
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(data_dir):
        if not name.endswith(".json") or name[: -len(".json")] not in splits:
            shutil.copy(os.path.join(data_dir, name), out_dir)
    for split, rows in splits.items():
        for row in rows.values():
            text = _text(row)
            if split in drop_first:
                text = text.split(" ", 1)[1] if " " in text else text
            row["data"]["text"] = text.lower()
        with open(os.path.join(out_dir, f"{split}.json"), "w", encoding="utf-8") as handle:
            json.dump(rows, handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="WRENCH directory")
    parser.add_argument("--write-copy", default=None, help="write a lower-cased copy here")
    parser.add_argument("--drop-first-token", action="append", default=[], help="split (repeat)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    splits = read_splits(args.data)
    figures = split_figures(args.data, splits)
    for name, value in figures.items():
        print(f"  {name:32s} {value:.3f}")
    if args.write_copy:
        write_copy(args.data, splits, args.write_copy, set(args.drop_first_token))
        print(f"wrote {args.write_copy}")
    finish(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
