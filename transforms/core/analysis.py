"""LF analysis (Snorkel's ``LFAnalysis`` columns) from statistics, not from the label matrix.

>>> from transforms.core.statistics import LabelStatistics
>>> L = np.array([[1, 1, -1], [0, 1, 0], [-1, -1, -1], [0, 0, 0], [1, -1, 1]], np.int8)
>>> E = np.array([[1, 1, 1], [0, 1, 0], [-1, 1, -1], [0, 0, 0], [1, -1, 1]], np.int8)
>>> rows = lf_analysis(["a", "b", "c"], LabelStatistics.empty(3, 2).add(L),
...                    extended=LabelStatistics.empty(3, 2).add(E),
...                    gold_votes=L[:2], gold=np.array([1, 0]))
>>> rows[1]["Polarity"], rows[1]["Coverage"], rows[1]["Conflicts"], rows[1]["Emp. Acc."]
([0, 1], 0.6, 0.2, 0.5)
>>> rows[2]["Extended Coverage"], rows[2]["Coverage Gain"]
(0.8, 0.2)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from transforms.core.label_models import LabelModel
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN


def lf_analysis(
    lf_names: Sequence[str],
    raw: LabelStatistics,
    *,
    extended: LabelStatistics | None = None,
    label_model: LabelModel | None = None,
    gold_votes: np.ndarray | None = None,
    gold: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One row per LF, in LF order.

    Args:
        lf_names: The LF names (``m``).
        raw: Statistics of the LFs' own votes.
        extended: Statistics of the extended votes, for ``Extended Coverage``/``Coverage Gain``.
        label_model: A fitted model, for ``Est. Acc.`` (its estimated accuracy per LF).
        gold_votes: ``int [g, m]`` raw votes of gold-labelled rows, for ``Correct``,
            ``Incorrect``, ``Emp. Acc.`` (NaN when the LF never votes on a gold row).
        gold: ``int [g]`` their gold labels.

    Returns:
        Dicts with keys ``j``, ``name``, ``Polarity``, ``Coverage``, ``Overlaps``, ``Conflicts``
        and, when given the inputs, the optional columns above.

    Raises:
        ValueError: if the names and the statistics disagree on ``m``.
    """
    m = raw.num_lfs
    if len(lf_names) != m:
        raise ValueError(f"{len(lf_names)} LF names for statistics of {m} LFs: pass one name per LF")
    n = max(raw.n, 1)
    counts = raw.class_counts
    raw_coverage = np.diagonal(raw.co_votes)  # each read of co_votes sums the whole joint
    extended_coverage = np.diagonal(extended.co_votes) if extended is not None else None
    rows: list[dict[str, Any]] = []
    for j, name in enumerate(lf_names):
        row: dict[str, Any] = {
            "j": j,
            "name": name,
            "Polarity": [int(c) for c in np.flatnonzero(counts[j])],
            "Coverage": float(raw_coverage[j] / n),
            "Overlaps": float(raw.overlaps[j] / n),
            "Conflicts": float(raw.conflicts[j] / n),
        }
        if gold_votes is not None and gold is not None:
            voted = gold_votes[:, j] != ABSTAIN
            correct = int((gold_votes[voted, j] == gold[voted]).sum())
            row["Correct"] = correct
            row["Incorrect"] = int(voted.sum()) - correct
            row["Emp. Acc."] = float(correct / voted.sum()) if voted.any() else float("nan")
        if label_model is not None:
            row["Est. Acc."] = float(label_model.accuracies[j])
        if extended is not None:
            row["Extended Coverage"] = float(extended_coverage[j] / max(extended.n, 1))
            row["Coverage Gain"] = round(row["Extended Coverage"] - row["Coverage"], 12)
        rows.append(row)
    return rows
