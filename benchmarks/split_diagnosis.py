"""Why a gold-free figure differs from a baseline's: per-split LF quality and tie-breaking.

For one WRENCH set, without any gold row in the fit:

* the gold-free label model's accuracy on the rows it covers, per split (the train split's
  labels are read here for this diagnosis only; no fit and no choice sees them);
* valid score of one ridge end model on the label model's hard labels, trained on the covered
  *train* rows (what ``transfer`` does) or on every covered row (what the labeler does);
* majority vote with ties to the lowest class id (the baseline) and broken at random, the
  share of covered rows whose votes tie, and how often the lowest tied class id is the gold
  class on them.

Usage::

    python benchmarks/split_diagnosis.py --data /work/shared/data/sms --metric f1 [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import finish  # noqa: E402
from benchmarks.wrench import DEFAULT_MODEL_DIR, load_task  # noqa: E402
from transforms.core.end_model import fit_ridge_classifier  # noqa: E402
from transforms.core.incremental_labeler import class_counts  # noqa: E402
from transforms.core.labeler import LabelerConfig, fit_labeler, label_batch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="WRENCH directory")
    parser.add_argument("--metric", choices=("acc", "f1"), default="acc")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    task = load_task(args.data, args.metric, args.model_dir)
    k, valid = task.cardinality, task.split == "valid"
    config = LabelerConfig(cardinality=k, extension=False, end_model=False)
    fitted = fit_labeler(task.ids, task.votes, task.nn_sim, task.nn_vote, task.embeddings,
                         np.full(task.gold.shape[0], -1), config)
    lm = label_batch(fitted, task.votes, task.nn_sim, task.nn_vote, task.embeddings)
    figures: dict[str, float] = {}
    for split in np.unique(task.split):
        rows = (task.split == split) & lm.covered
        figures[f"label_model_accuracy_covered_{split}"] = float((lm.label == task.gold)[rows].mean())
    hard = np.eye(k)[lm.label]
    for name, rows in (("train_rows", task.train & lm.covered), ("all_covered_rows", lm.covered)):
        model = fit_ridge_classifier(task.embeddings[rows], hard[rows], scale=10.0)
        figures[f"ridge_on_{name}_valid"] = task.score(valid, model.predict_proba(task.embeddings).argmax(1))
    counts = class_counts(task.votes, k).astype(np.float64)
    rng = np.random.default_rng(0)
    for split in ("valid", "test"):
        rows = task.split == split
        figures[f"majority_vote_ties_lowest_{split}"] = task.score(rows, counts.argmax(1))
        draws = [task.score(rows, (counts + 1e-3 * rng.random(counts.shape)).argmax(1)) for _ in range(20)]
        figures[f"majority_vote_ties_random_{split}"] = float(np.mean(draws))
        tied = rows & lm.covered & ((counts == counts.max(axis=1, keepdims=True)).sum(axis=1) > 1)
        figures[f"tied_rows_{split}"] = float(tied.sum() / max(1, (rows & lm.covered).sum()))
        figures[f"ties_lowest_class_right_{split}"] = float((counts.argmax(1) == task.gold)[tied].mean()) if tied.any() else float("nan")
    for name, value in figures.items():
        print(f"  {name}: {value:.4f}")
    finish(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
