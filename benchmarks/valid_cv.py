"""Design check without test labels: cross-validation within the valid (tuning) split.

Each WRENCH set's valid rows are split into ``--folds`` folds; for each fold the labeler is fitted
with the gold labels of the *other* valid folds only, and the held-out fold is scored with the
set's metric (pooled over folds). Test rows stay unlabelled corpus rows and are never scored, so a
design change can be judged on all five dev sets without looking at a test split. Sup-valid (a
classifier on the embeddings of the tuning rows alone) and majority vote are scored the same way.

``--no-gold`` judges the gold-free fit instead: each configuration is fitted once with no gold
label at all and scored on the valid rows (which it never saw labelled), next to majority vote.

Usage::

    python benchmarks/valid_cv.py --data /work/shared/data/youtube:acc --data .../sms:f1 \\
        [--config default] [--config 'metric=accuracy'] [--seeds 0,1] [--no-gold] [--json OUT]

A ``--config`` is ``default`` or comma-separated ``LabelerConfig`` fields (``name=value``,
Python literals), e.g. ``end_model_gold_weight=1.0,end_model_weight=0.5``.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.baselines import sup_valid_labels  # noqa: E402
from benchmarks.results_io import write_json  # noqa: E402
from benchmarks.wrench import DEFAULT_MODEL_DIR, WrenchTask, load_task  # noqa: E402
from transforms.core.label_models import majority_vote_model  # noqa: E402
from transforms.core.labeler import LabelerConfig, fit_labeler, label_batch  # noqa: E402
from transforms.core.selection import fold_assignment  # noqa: E402


def parse_config(text: str, cardinality: int) -> LabelerConfig:
    """``default`` or ``field=value,...`` → a :class:`LabelerConfig` for ``cardinality``."""
    fields: dict = {"cardinality": cardinality}
    if text != "default":
        for item in text.split(","):
            name, _, value = item.partition("=")
            fields[name.strip()] = ast.literal_eval(value.strip()) if value.strip() != "inf" else float("inf")
    return LabelerConfig(**fields)


def valid_cv_predictions(task: WrenchTask, method, folds: int, seed: int) -> np.ndarray:
    """Held-out predictions ``[n]`` on the valid rows (``-1`` elsewhere) of ``method(gold)``,
    which returns predictions ``[n]`` for tuning labels ``gold [n]`` (``-1`` = unknown)."""
    valid = np.flatnonzero(task.split == "valid")
    fold_of = fold_assignment(valid.size, folds, seed + 1000)
    out = np.full(task.gold.shape[0], -1)
    for fold in range(folds):
        tune = valid[fold_of != fold]
        gold = np.full(task.gold.shape[0], -1)
        gold[tune] = task.gold[tune]
        held = valid[fold_of == fold]
        out[held] = method(gold)[held]
    return out


def epoxy_method(task: WrenchTask, config: LabelerConfig):
    """``gold → predictions`` of the labeler with ``config``."""
    def method(gold: np.ndarray) -> np.ndarray:
        fitted = fit_labeler(task.ids, task.votes, task.nn_sim, task.nn_vote, task.embeddings, gold, config)
        return label_batch(fitted, task.votes, task.nn_sim, task.nn_vote, task.embeddings).label
    return method


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True, help="DIR:acc or DIR:f1 (repeat)")
    parser.add_argument("--config", action="append", default=None, help="default or field=value,...")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", default="0", help="comma-separated fold seeds")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--no-gold", action="store_true", help="score gold-free fits on the valid rows")
    parser.add_argument("--votes", choices=("stored", "rules"), default="stored",
                        help="rules: recompute the votes from the readme's regex rules (benchmarks/readme_rules.py)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    configs = args.config or ["default"]
    seeds = [int(s) for s in args.seeds.split(",")]
    figures: dict[str, float] = {}
    for spec in args.data:
        path, _, metric = spec.rpartition(":")
        task = load_task(path, metric, args.model_dir, votes_from=args.votes)
        valid = task.split == "valid"
        methods = {"sup_valid": lambda gold, t=task: sup_valid_labels(t, gold),
                   "majority_vote": lambda gold, t=task: majority_vote_model(
                       t.votes.shape[1], t.cardinality).predict_proba(t.votes).argmax(1)}
        for text in configs:
            methods[f"epoxy[{text}]"] = epoxy_method(task, parse_config(text, task.cardinality))
        if args.no_gold:
            del methods["sup_valid"]
        for name, method in methods.items():
            t0 = time.perf_counter()
            if args.no_gold:
                scores = [task.score(valid, method(np.full(task.gold.shape[0], -1)))]
            else:
                scores = [task.score(valid, valid_cv_predictions(task, method, args.folds, s)) for s in seeds]
            figures[f"{task.name}/{name}"] = float(np.mean(scores))
            print(f"{task.name:9s} {name:60s} {np.mean(scores):.4f}  per seed {[round(s, 4) for s in scores]}"
                  f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    print("reproduce: .venv/bin/python benchmarks/valid_cv.py " + " ".join(sys.argv[1:]))
    if args.json:
        write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
