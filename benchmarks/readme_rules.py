"""Votes recomputed from the regex rules a WRENCH readme publishes (a data check, not a method).

Some WRENCH sets (sms, trec: from "Learning from Rules") list their LFs in ``readme.txt``, one
per line: ``CLASS<TAB>regex<TAB>example``. Applying these rules to each row's text gives the
votes the pipeline would compute from the same LFs. On the dev copy of sms they reproduce every
stored *train* vote but only 205 of 500 valid rows and 209 of 500 test rows: the stored
valid/test votes do not belong to their texts (benchmarks/README.md, round 9). ``--votes rules``
in ``label_quality.py`` and ``valid_cv.py`` scores every method on the recomputed votes instead;
the rules are used only if they reproduce the stored train votes exactly.

A rule's class is the class of ``label.json`` whose name shares the longest prefix (at least
:data:`MIN_SHARED_PREFIX` letters, ignoring case) with the rule's class name (``ENTITY`` →
``ENTY``, ``spam`` → ``spam``).

>>> rules = parse_rules("spam\\t( |^)(free)[^\\w]*( |$)\\tfree entry\\nham\\t( |^)(ok)( |$)\\tok\\n", ["ham", "spam"])
>>> rule_votes(["a free gift", "ok then", "nothing"], rules).tolist()
[[1, -1], [-1, 0], [-1, -1]]
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from transforms.core.votes import ABSTAIN, VOTE_DTYPE

Rule = tuple[int, re.Pattern]
MIN_SHARED_PREFIX = 3


def _class_of(name: str, class_names: Sequence[str]) -> int | None:
    shared = [len(os.path.commonprefix([name.lower(), known.lower()])) for known in class_names]
    best = max(shared)
    return shared.index(best) if best >= MIN_SHARED_PREFIX and shared.count(best) == 1 else None


def parse_rules(text: str, class_names: Sequence[str]) -> list[Rule]:
    """The ``CLASS<TAB>regex`` lines of a readme whose class is one of ``class_names``, in order."""
    rules = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        label = _class_of(fields[0].strip(), class_names)
        if label is not None:
            rules.append((label, re.compile(fields[1])))
    return rules


def rule_votes(texts: Sequence[str], rules: Sequence[Rule]) -> np.ndarray:
    """``int8 [n, m]``: rule ``j`` votes its class on text ``i`` when its regex matches."""
    out = np.full((len(texts), len(rules)), ABSTAIN, VOTE_DTYPE)
    for j, (label, pattern) in enumerate(rules):
        out[[pattern.search(t) is not None for t in texts], j] = label
    return out


def readme_votes(
    data_dir: str, class_names: Sequence[str], texts: Sequence[str],
    stored: np.ndarray, train: np.ndarray,
) -> np.ndarray:
    """Votes of the readme's rules on ``texts``, checked against the stored train votes.

    Args:
        data_dir: The WRENCH directory (its ``readme.txt`` is read).
        class_names: ``label.json``'s names, by class id.
        texts: ``[n]`` each row's text (matched lower-cased, as the rules were written).
        stored: ``int8 [n, m]`` the stored votes.
        train: ``bool [n]`` the train rows.

    Raises:
        ValueError: if the readme has no rule, a different number of rules than LFs, or the
            rules do not reproduce every stored train vote.
    """
    path = os.path.join(data_dir, "readme.txt")
    with open(path, encoding="utf-8") as handle:
        rules = parse_rules(handle.read(), class_names)
    if len(rules) != stored.shape[1]:
        raise ValueError(
            f"{path} lists {len(rules)} CLASS<TAB>regex rules for {stored.shape[1]} LFs: "
            "--votes rules needs one rule per LF; use --votes stored"
        )
    votes = rule_votes([t.lower() for t in texts], rules)
    differ = int((votes[train] != stored[train]).any(axis=1).sum())
    if differ:
        raise ValueError(
            f"the rules of {path} differ from the stored votes on {differ} train rows, so they "
            "are not the set's LFs: use --votes stored"
        )
    return votes
