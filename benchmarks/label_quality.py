"""Label quality on a WRENCH-format data set: epoxy against every baseline, with intervals.

Usage::

    python benchmarks/label_quality.py --data /work/shared/data/youtube [--metric acc|f1]
        [--json OUT] [--predictions OUT.npz] [--model-dir DIR] [--ablations] [--k-sweep]
        [--no-gold] [--label-metric auto|accuracy|macro_f1|f1] [--positive-class N]
        [--template auto|text|relation] [--max-train 10000] [--bootstrap 2000]
        [--snorkel-python /tmp/snorkel-venv/bin/python]

Data, embeddings and nearest voters: :mod:`benchmarks.wrench` (the corpus is train + valid + test,
transductive like the pipeline). Gold labels are passed for valid rows only (tuning labels); test
gold is used only to score, so ``valid`` figures are in-sample for the methods that use gold rows.
``--no-gold`` withholds the valid labels too: every choice falls back to its default.

Methods: ``epoxy`` (``LabelerConfig()`` defaults, ``metric`` = ``--label-metric``), ``label_model``
(ours, no extension or end model), and the baselines: ``majority_vote``, ``majority_vote_prior``
(ties and uncovered rows to the tuning rows' most frequent class), ``sup_valid`` (logistic
regression on the tuning rows' embeddings alone), ``transfer`` (logistic regression on our label
model's labels), ``snorkel``, ``epoxy_snorkel`` (Snorkel on epoxy's extended votes),
``transfer_snorkel``, ``flyingsquid`` and ``epoxy_flyingsquid`` (binary sets) — the side models
come from :mod:`benchmarks.side_models`. The paired bootstrap interval resamples test rows
(``--bootstrap`` draws, seed 0) and reports the 2.5 / 97.5 percentiles of epoxy − best baseline.
BLAS runs one thread (``OPENBLAS_NUM_THREADS=1`` unless set).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import baselines  # noqa: E402
from benchmarks.results_io import write_json  # noqa: E402
from benchmarks.side_models import side_model_probs  # noqa: E402
from benchmarks.wrench import DEFAULT_MODEL_DIR, WrenchTask, knn_voters, load_task  # noqa: E402
from transforms.core.label_models import gold_class_balance  # noqa: E402
from transforms.core.labeler import LabelerConfig, fit_labeler, label_batch, selection_loss  # noqa: E402


def ablation_configs(k: int) -> dict[str, LabelerConfig]:
    """Epoxy variants, each changing one thing from the default."""
    return {
        "no_extension": LabelerConfig(cardinality=k, extension=False),
        "no_end_model": LabelerConfig(cardinality=k, end_model=False),
        "end_model_weight_1": LabelerConfig(cardinality=k, end_model_weight=1.0),
        "end_model_weight_0.5": LabelerConfig(cardinality=k, end_model_weight=0.5),
        "gold_weight_1": LabelerConfig(cardinality=k, end_model_gold_weight=1.0),
        "gold_only_end_model": LabelerConfig(cardinality=k, end_model_gold_weight=float("inf")),
        "no_gold_in_label_model": LabelerConfig(cardinality=k, gold_strength=float("inf")),
        "quantile_default_thresholds": LabelerConfig(cardinality=k, thresholds="quantile"),
        "triplet_label_model": LabelerConfig(cardinality=k, label_model="triplet"),
        "moments_label_model": LabelerConfig(cardinality=k, label_model="moments"),
        "majority_vote_label_model": LabelerConfig(cardinality=k, label_model="majority_vote"),
        "no_class_offsets": LabelerConfig(cardinality=k, class_offsets=False),
        "metric_accuracy": LabelerConfig(cardinality=k, metric="accuracy"),
        "metric_balanced_accuracy": LabelerConfig(cardinality=k, metric="balanced_accuracy"),
        "metric_macro_f1": LabelerConfig(cardinality=k, metric="macro_f1"),
    }


def paired_interval(task: WrenchTask, a: np.ndarray, b: np.ndarray, draws: int) -> tuple[float, float]:
    """2.5 / 97.5 percentiles of ``metric(a) - metric(b)`` over bootstrap resamples of test rows."""
    test = np.flatnonzero(task.split == "test")
    rng = np.random.default_rng(0)
    diffs = np.empty(draws)
    for i in range(draws):
        pick = test[rng.integers(0, test.size, test.size)]
        diffs[i] = _score_rows(task, pick, a) - _score_rows(task, pick, b)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def _score_rows(task: WrenchTask, rows: np.ndarray, pred: np.ndarray) -> float:
    """The task metric on a list of row indices (repeats allowed)."""
    sub = WrenchTask(**{**task.__dict__, "gold": task.gold[rows], "split": np.full(rows.size, "x")})
    return sub.score(np.ones(rows.size, bool), pred[rows])


def side_baselines(task: WrenchTask, gold: np.ndarray, extended: np.ndarray, python: str | None) -> dict:
    """Snorkel and FlyingSquid on the raw and the extended votes, and LR on Snorkel's labels."""
    out: dict[str, np.ndarray] = {}
    k, train = task.cardinality, task.train
    balance = gold_class_balance(gold[gold >= 0], k) if (gold >= 0).any() else np.full(k, 1 / k)
    for kind in ("snorkel", "flyingsquid"):
        raw = side_model_probs(kind, k, task.votes[train], balance, {"raw": task.votes}, python)
        if raw is None:
            print(f"{kind} not available: skipping its baselines (see --snorkel-python)")
            continue
        out[kind] = raw["raw"]
        ext = side_model_probs(kind, k, extended[train], balance, {"ext": extended}, python)
        out[f"epoxy_{kind}"] = ext["ext"]
    if "snorkel" in out:
        labels = out["snorkel"].argmax(axis=1)
        out["transfer_snorkel"] = baselines.transfer_proba(task, labels, baselines.covered_rows(task.votes))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="WRENCH directory")
    parser.add_argument("--metric", choices=("acc", "f1"), default="acc", help="the score reported")
    parser.add_argument("--label-metric", default="auto", help="LabelerConfig.metric of epoxy")
    parser.add_argument("--positive-class", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the headline figures here")
    parser.add_argument("--predictions", default=None, help="write per-row test predictions (.npz)")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--no-gold", action="store_true", help="withhold the valid labels from every fit")
    parser.add_argument("--k-sweep", action="store_true", help="epoxy for k in 10, 20, 50, exact")
    parser.add_argument("--ablations", action="store_true", help="epoxy variants (README table)")
    parser.add_argument("--template", choices=("auto", "text", "relation"), default="auto")
    parser.add_argument("--max-train", type=int, default=10000)
    parser.add_argument("--votes", choices=("stored", "rules"), default="stored",
                        help="rules: recompute the votes from the readme's regex rules (benchmarks/readme_rules.py)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap draws")
    parser.add_argument("--snorkel-python", default=None, help="side interpreter (benchmarks/side_models.py)")
    return parser.parse_args(argv)


def chosen_figures(task: WrenchTask, fitted, out, config: LabelerConfig, gold: np.ndarray) -> dict:
    """What the default fit chose (label model, loss, recipe, offsets) and its coverage."""
    end = fitted.end_model
    return {
        "coverage_raw": float(baselines.covered_rows(task.votes).mean()),
        "coverage_extended": float(out.covered.mean()),
        "finite_thresholds": float(np.isfinite(fitted.thresholds).mean()),
        "chosen_label_model": fitted.label_model.kind,
        "chosen_selection_loss": selection_loss(config, gold[gold >= 0]).final,
        "chosen_end_model_gold_weight": float(end.gold_weight) if end else float("nan"),
        "chosen_end_model_weight": float(end.weight) if end else float("nan"),
        "chosen_class_offsets": "none" if end is None or end.offsets is None else str(end.offsets.tolist()),
    }


def variant_figures(task: WrenchTask, args: argparse.Namespace, run) -> dict:
    """Test scores of the ``--k-sweep`` and ``--ablations`` variants (``run(config, ...)``)."""
    k, extra = task.cardinality, {}
    if args.k_sweep:
        for kk in (10, 20, 50, None):
            sims, nvotes = knn_voters(task.embeddings, task.votes, kk)
            _, sweep = run(LabelerConfig(cardinality=k, num_neighbours=kk or 0), sims, nvotes)
            extra[f"epoxy_test_k{kk or 'exact'}"] = task.score("test", sweep.label)
    if args.ablations:
        for name, variant in ablation_configs(k).items():
            extra[f"ablation_{name}_test"] = task.score("test", run(variant)[1].label)
    return extra


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    task = load_task(args.data, args.metric, args.model_dir, args.max_train, args.template, args.votes)
    seconds = {"load_embed_knn": time.perf_counter() - t0}
    k = task.cardinality
    gold = np.where((task.split == "valid") & (not args.no_gold), task.gold, -1)
    config = LabelerConfig(cardinality=k, metric=args.label_metric, positive_class=args.positive_class)

    def run(cfg: LabelerConfig, sims=task.nn_sim, nvotes=task.nn_vote):
        fitted = fit_labeler(task.ids, task.votes, sims, nvotes, task.embeddings, gold, cfg)
        return fitted, label_batch(fitted, task.votes, sims, nvotes, task.embeddings)

    timings = []
    for _ in range(3):
        start = time.perf_counter()
        fitted, out = run(config)
        timings.append(time.perf_counter() - start)
    seconds["epoxy_fit_and_label"] = min(timings)
    _, lm = run(LabelerConfig(cardinality=k, extension=False, end_model=False))
    probs = {"epoxy": out.probs, "label_model": lm.probs, "majority_vote": baselines.majority_vote_proba(task),
             "transfer": baselines.transfer_proba(task, lm.label, lm.covered)}
    if not args.no_gold:
        probs["majority_vote_prior"] = baselines.majority_vote_prior_proba(task, gold)
        probs["sup_valid"] = baselines.sup_valid_proba(task, gold)
    t0 = time.perf_counter()
    probs.update(side_baselines(task, gold, out.extended_votes, args.snorkel_python))
    seconds["side_models"] = time.perf_counter() - t0
    labels = {name: p.argmax(axis=1) for name, p in probs.items()}
    methods = {name: {"test": task.score("test", y), "valid": task.score("valid", y)} for name, y in labels.items()}
    best = max((n for n in methods if n not in ("epoxy", "label_model")), key=lambda n: methods[n]["test"])
    low, high = paired_interval(task, labels["epoxy"], labels[best], args.bootstrap)
    extra = {
        "best_baseline": best,
        "epoxy_minus_best_baseline_test": methods["epoxy"]["test"] - methods[best]["test"],
        "epoxy_minus_best_baseline_ci_low": low,
        "epoxy_minus_best_baseline_ci_high": high,
        **chosen_figures(task, fitted, out, config, gold),
        **variant_figures(task, args, run),
    }
    if args.predictions:
        test = task.split == "test"
        np.savez_compressed(args.predictions, ids=task.ids[test], gold=task.gold[test],
                            **{f"{n}_label": y[test] for n, y in labels.items()},
                            **{f"{n}_probs": p[test] for n, p in probs.items()})
    report(task, args, methods, extra, seconds)
    if args.json:
        write_json(args.json, {"metric": args.metric, "methods": methods, "seconds": seconds, **extra}, sort_keys=False)
    return 0


def report(task: WrenchTask, args, methods: dict, extra: dict, seconds: dict) -> None:
    """Prints the figures and the command that reproduces them."""
    rows = dict(zip(*np.unique(task.split, return_counts=True)))
    print(f"data: {args.data}  classes: {task.cardinality}  LFs: {task.votes.shape[1]}  rows: "
          f"{ {str(s): int(c) for s, c in rows.items()} }  metric: {args.metric}  gold: {not args.no_gold}")
    for name, figures in methods.items():
        print(f"  {name:20s} test {figures['test']:.4f}  valid {figures['valid']:.4f}")
    for name, value in extra.items():
        print(f"  {name}: {value:.4f}" if isinstance(value, float) else f"  {name}: {value}")
    print("seconds:", {key: round(v, 2) for key, v in seconds.items()})
    print("reproduce: .venv/bin/python " + " ".join(["benchmarks/label_quality.py", *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
