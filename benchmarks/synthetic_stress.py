"""Robustness check on seeded synthetic weak-supervision tasks: does the default ever lose badly?

The five dev sets cannot show how the selection logic behaves on tasks unlike them. This
benchmark generates tasks whose properties are set on purpose (class count and balance, LF
count, coverage and noise, how well the embeddings separate the classes, how many gold rows),
fits the default labeler with and without the gold rows, and scores the test rows against
majority vote, majority vote with the gold class prior and "Sup-valid" (a classifier on the
gold rows alone). It flags every scenario where epoxy is below the best baseline by more than
the paired bootstrap noise (the 97.5th percentile of ``epoxy - best`` below 0). It chooses no
default: it is a check for collapses and selection bugs, not a tuning set.

A task: ``y`` from the class prior; embeddings ``x = separation · μ_y + N(0, I / d)``
(L2-normalised, ``μ_c`` random unit vectors); each LF targets one class (round robin), has a
coverage of ``coverage_scale · U(0.2, 1)`` times its class's share, and fires (with probability
0.9) on the rows closest to an anchor row of its class (``local``) or on random rows of its
class (not ``local``: LFs that know the class where the embeddings do not), plus random false
fires at rate ``noise`` (votes for its class on rows of any class). Nearest voters come
from the exact top-20 neighbours (:func:`benchmarks.wrench.knn_voters`). Rows: ``--n`` corpus,
``gold_rows`` labelled tuning rows ("valid"), ``--test`` scored rows; the metric is accuracy,
or F1 of class 1 for a binary task whose class 1 is below 20 % (the scenarios put the rare
class at 1).

    python benchmarks/synthetic_stress.py [--seeds 0,1,2] [--n 4000] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import baselines  # noqa: E402
from benchmarks.label_quality import paired_interval  # noqa: E402
from benchmarks.results_io import finish  # noqa: E402
from benchmarks.wrench import WrenchTask, knn_voters  # noqa: E402
from transforms.core.labeler import LabelerConfig, fit_labeler, label_batch  # noqa: E402
from transforms.core.votes import ABSTAIN  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One kind of synthetic task (see the module doc)."""

    name: str
    prior: tuple[float, ...]
    num_lfs: int
    coverage_scale: float
    noise: float
    separation: float
    gold_rows: int
    local: bool = True
    dim: int = 32


SCENARIOS = (
    Scenario("binary_balanced", (0.5, 0.5), 10, 0.6, 0.01, 0.4, 200),
    Scenario("binary_rare_sparse", (0.92, 0.08), 9, 0.35, 0.005, 0.4, 300),
    Scenario("binary_few_gold", (0.6, 0.4), 12, 0.6, 0.02, 0.4, 40),
    Scenario("binary_weak_embeddings", (0.5, 0.5), 10, 0.6, 0.02, 0.15, 200, local=False),
    Scenario("four_class", (0.25, 0.25, 0.25, 0.25), 20, 0.6, 0.01, 0.5, 200),
    Scenario("four_class_noisy_lfs_good_gold", (0.25, 0.25, 0.25, 0.25), 12, 0.5, 0.08, 0.6, 400),
    Scenario("three_class_imbalanced", (0.7, 0.2, 0.1), 15, 0.6, 0.01, 0.5, 200),
    Scenario("six_class_dense", (1 / 6,) * 6, 36, 1.0, 0.02, 0.6, 300),
    Scenario("six_class_sparse_few_gold", (1 / 6,) * 6, 18, 0.3, 0.01, 0.6, 60),
)


def make_task(scenario: Scenario, n: int, test: int, seed: int) -> WrenchTask:
    """A seeded synthetic task with corpus, valid (gold) and test rows."""
    rng = np.random.default_rng(seed)
    k = len(scenario.prior)
    total = n + scenario.gold_rows + test
    y = rng.choice(k, size=total, p=np.asarray(scenario.prior) / sum(scenario.prior))
    means = rng.normal(size=(k, scenario.dim))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    raw = scenario.separation * means[y] + rng.normal(size=(total, scenario.dim)) / np.sqrt(scenario.dim)
    x = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    votes = np.full((total, scenario.num_lfs), ABSTAIN, np.int8)
    for j in range(scenario.num_lfs):
        target = j % k
        coverage = scenario.coverage_scale * rng.uniform(0.2, 1.0) * np.mean(y == target)
        if scenario.local:
            closeness = x @ x[rng.choice(np.flatnonzero(y == target))]
            fires = closeness >= np.quantile(closeness, 1 - coverage)
        else:
            fires = (y == target) & (rng.random(total) < coverage / np.mean(y == target))
        fires = (fires & (rng.random(total) < 0.9)) | (rng.random(total) < scenario.noise)
        votes[fires, j] = target
    nn_sim, nn_vote = knn_voters(x, votes, 20)
    split = np.array(["train"] * n + ["valid"] * scenario.gold_rows + ["test"] * test)
    rare = k == 2 and min(scenario.prior) / sum(scenario.prior) < 0.2
    return WrenchTask(
        name=scenario.name, cardinality=k, metric="f1" if rare else "acc",
        ids=np.array([f"d{i:06d}" for i in range(total)]), votes=votes, gold=y, split=split,
        embeddings=x, nn_sim=nn_sim, nn_vote=nn_vote,
    )


def epoxy_labels(task: WrenchTask, gold: np.ndarray) -> np.ndarray:
    """The default labeler's labels for every row, fitted with ``gold`` (``-1`` = unknown)."""
    config = LabelerConfig(cardinality=task.cardinality)
    fitted = fit_labeler(task.ids, task.votes, task.nn_sim, task.nn_vote, task.embeddings, gold, config)
    return label_batch(fitted, task.votes, task.nn_sim, task.nn_vote, task.embeddings).label


def score_task(task: WrenchTask, draws: int) -> dict[str, float]:
    """Test scores of epoxy (with and without gold) and the baselines, and the flags."""
    gold = np.where(task.split == "valid", task.gold, -1)
    labels = {
        "epoxy": epoxy_labels(task, gold),
        "epoxy_no_gold": epoxy_labels(task, np.full_like(gold, -1)),
        "majority_vote": baselines.majority_vote_proba(task).argmax(axis=1),
        "majority_vote_prior": baselines.majority_vote_prior_proba(task, gold).argmax(axis=1),
        "sup_valid": baselines.sup_valid_proba(task, gold).argmax(axis=1),
    }
    out = {name: task.score("test", y) for name, y in labels.items()}
    best = max(("majority_vote", "majority_vote_prior", "sup_valid"), key=out.get)
    out["epoxy_minus_best_ci_high"] = paired_interval(task, labels["epoxy"], labels[best], draws)[1]
    out["epoxy_no_gold_minus_mv_ci_high"] = paired_interval(
        task, labels["epoxy_no_gold"], labels["majority_vote"], draws
    )[1]
    out["coverage"] = float(baselines.covered_rows(task.votes).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=4000, help="corpus rows per task")
    parser.add_argument("--test", type=int, default=2000, help="test rows per task")
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    figures: dict = {}
    flagged = 0
    for scenario in SCENARIOS:
        for seed in (int(s) for s in args.seeds.split(",")):
            start = time.perf_counter()
            task = make_task(scenario, args.n, args.test, seed)
            scores = score_task(task, args.bootstrap)
            lost = scores["epoxy_minus_best_ci_high"] < 0
            lost_no_gold = scores["epoxy_no_gold_minus_mv_ci_high"] < 0
            flagged += lost + lost_no_gold
            print(f"{scenario.name:32s} seed {seed} {task.metric:3s} cov {scores['coverage']:.2f}  "
                  f"epoxy {scores['epoxy']:.3f}  MV {scores['majority_vote']:.3f}  "
                  f"MV+prior {scores['majority_vote_prior']:.3f}  Sup-valid {scores['sup_valid']:.3f}  "
                  f"no-gold epoxy {scores['epoxy_no_gold']:.3f}"
                  f"{'  LOSS' if lost else ''}{'  NO-GOLD LOSS vs MV' if lost_no_gold else ''}"
                  f"  ({time.perf_counter() - start:.1f} s)", flush=True)
            figures.update({f"{scenario.name}/seed{seed}/{key}": value for key, value in scores.items()})
    figures["flagged"] = flagged
    print(f"flagged: {flagged} (epoxy below the best baseline beyond the paired 95 % interval)")
    finish(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
