"""Label quality on a WRENCH-format data set: majority vote, label model, Epoxy, transfer.

Usage::

    python benchmarks/label_quality.py --data /work/shared/data/youtube [--metric acc|f1]
        [--json OUT] [--model-dir DIR] [--k-sweep] [--ablations] [--template auto|text|relation]
        [--max-train 10000] [--snorkel-python /tmp/snorkel-venv/bin/python]

The directory holds ``train.json`` (optional: without it ``valid.json`` is the unlabelled pool),
``valid.json``, ``test.json`` and ``label.json``; a ``labeled_ids.json`` lists train rows to drop
(the LF exemplars of TREC, as in WRENCH). Documents are embedded with the project's bundled
all-MiniLM-L6-v2 SavedModel (built by ``transforms.models.build_minilm``, loaded with
``tensorflow_hub.load``); embeddings are cached under ``.cache/embeddings/`` keyed by the data
path, split, text template and model fingerprint. Rows with ``entity1``/``entity2`` fields are
embedded through the relation template.

The corpus is train + valid + test (transductive, like the pipeline, which labels every row);
gold labels are passed for valid rows only (tuning labels); test gold is used only to score.
``valid`` figures are therefore in-sample for the methods that use gold rows.

Snorkel baselines (``snorkel``: its LabelModel on the raw train votes; ``epoxy_snorkel``: the
same on votes extended with epoxy's thresholds; ``transfer_snorkel``: softmax regression on the
embeddings of covered train rows, trained on Snorkel's labels) run when ``snorkel`` imports, or
in another interpreter given by ``--snorkel-python`` (a side virtualenv, so that snorkel's pins
stay out of the project's), which this script runs in ``--snorkel-worker`` mode on saved label
matrices. BLAS runs one thread (``OPENBLAS_NUM_THREADS=1`` unless set): on a shared 2-core
machine multi-threaded BLAS is up to 40× slower for the small matrices of the fit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import write_json  # noqa: E402
from transforms.core.end_model import fit_softmax_regression  # noqa: E402
from transforms.core.extension import nearest_voters  # noqa: E402
from transforms.core.knn import exact_knn, l2_normalise  # noqa: E402
from transforms.core.labeler import LabelerConfig, fit_labeler, label_batch  # noqa: E402
from transforms.core.label_models import majority_vote_model  # noqa: E402
from transforms.core.metrics import accuracy, binary_f1, macro_f1  # noqa: E402
from transforms.core.text_template import RELATION_FIELDS, RELATION_TEMPLATE, render_text  # noqa: E402
from transforms.core.votes import ABSTAIN  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL_DIR = os.path.join(REPO, ".cache", "models", "all-MiniLM-L6-v2")
SPLITS = ("train", "valid", "test")


def load_wrench(data_dir: str, max_train: int | None = None) -> dict:
    """Reads a WRENCH directory into arrays per split (train may be absent).

    A train split above ``max_train`` rows is subsampled to ``max_train`` (seed 0).
    """
    with open(os.path.join(data_dir, "label.json"), encoding="utf-8") as handle:
        cardinality = len(json.load(handle))
    drop: set[str] = set()
    labeled = os.path.join(data_dir, "labeled_ids.json")
    if os.path.exists(labeled):
        with open(labeled, encoding="utf-8") as handle:
            drop = set(json.load(handle)["labeled_ids"])
    splits = {}
    for split in SPLITS:
        path = os.path.join(data_dir, f"{split}.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as handle:
            rows = json.load(handle)
        keys = [key for key in rows if not (split == "train" and key in drop)]
        if split == "train" and max_train is not None and len(keys) > max_train:
            pick = np.sort(np.random.default_rng(0).choice(len(keys), max_train, replace=False))
            keys = [keys[i] for i in pick]
        splits[split] = {
            "ids": np.array([f"{split}/{key}" for key in keys]),
            "votes": np.array([rows[key]["weak_labels"] for key in keys], dtype=np.int8),
            "gold": np.array([rows[key]["label"] for key in keys], dtype=np.int64),
            "data": [rows[key]["data"] for key in keys],
        }
    if "train" not in splits:
        splits["train"] = splits["valid"]
    return {"cardinality": cardinality, "splits": splits}


def text_template_for(data: list[dict], choice: str = "auto") -> str | None:
    """``auto``: the relation template when rows carry entity fields, else the plain text."""
    if choice == "text":
        return None
    if choice == "relation":
        return RELATION_TEMPLATE
    return RELATION_TEMPLATE if all(f in data[0] for f in RELATION_FIELDS) else None


def snorkel_probs(
    cardinality: int, fit_votes: np.ndarray, predict: dict[str, np.ndarray], python: str | None
) -> dict[str, np.ndarray] | None:
    """Snorkel LabelModel (defaults, 500 epochs, seed 0) fitted on ``fit_votes``; posteriors of
    each matrix in ``predict``. Runs in ``python`` (``--snorkel-worker``) when snorkel does not
    import here; ``None`` when it is unavailable."""
    try:
        import snorkel  # noqa: F401
    except ImportError:
        if python is None:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            inp, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
            np.savez(inp, cardinality=cardinality, fit_votes=fit_votes, **predict)
            subprocess.run([python, os.path.abspath(__file__), "--snorkel-worker", inp, out], check=True)
            with np.load(out) as result:
                return {name: result[name] for name in predict}
    return _snorkel_in_process(cardinality, fit_votes, predict)


def _snorkel_in_process(
    cardinality: int, fit_votes: np.ndarray, predict: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    from snorkel.labeling.model import LabelModel as SnorkelLabelModel

    model = SnorkelLabelModel(cardinality=cardinality, verbose=False)
    model.fit(fit_votes.astype(np.int64), seed=0, n_epochs=500, progress_bar=False)
    return {name: model.predict_proba(v.astype(np.int64)) for name, v in predict.items()}


def snorkel_worker(inp: str, out: str) -> int:
    """``--snorkel-worker IN OUT``: runs :func:`_snorkel_in_process` on saved matrices."""
    with np.load(inp) as data:
        arrays = {name: data[name] for name in data.files}
    cardinality, fit_votes = int(arrays.pop("cardinality")), arrays.pop("fit_votes")
    np.savez(out, **_snorkel_in_process(cardinality, fit_votes, arrays))
    return 0


def embed_texts(texts: list[str], model_dir: str, cache_key: str) -> np.ndarray:
    """Embeds with the bundled SavedModel, caching the result as .npy."""
    from transforms.models.build_minilm import build_minilm
    from transforms.models.fingerprint import model_fingerprint

    build_minilm(model_dir)
    fingerprint = model_fingerprint(model_dir)
    key = hashlib.sha256(f"{cache_key}\0{fingerprint}".encode()).hexdigest()[:24]
    cache = os.path.join(REPO, ".cache", "embeddings", f"{key}.npy")
    if os.path.exists(cache):
        return np.load(cache)
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops before hub.load)
    import tensorflow_hub as hub

    model = hub.load(model_dir)
    chunks = [np.asarray(model(texts[i : i + 256])) for i in range(0, len(texts), 256)]
    out = np.concatenate(chunks).astype(np.float32)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    np.save(cache, out)
    return out


def exact_nearest_voters(x: np.ndarray, votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest voter of every LF over the whole corpus (k = n - 1)."""
    n, m = votes.shape
    nn_sim = np.full((n, m), -np.inf, np.float32)
    nn_vote = np.full((n, m), ABSTAIN, np.int8)
    for j in range(m):
        voters = np.flatnonzero(votes[:, j] != ABSTAIN)
        if voters.size == 0:
            continue
        sims = x @ x[voters].T
        sims[voters, np.arange(voters.size)] = -np.inf
        best = sims.argmax(axis=1)
        nn_sim[:, j] = sims[np.arange(n), best]
        nn_vote[:, j] = np.where(np.isfinite(nn_sim[:, j]), votes[voters[best], j], ABSTAIN)
    return nn_sim, nn_vote


def knn_voters(x: np.ndarray, votes: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest voters from the top-k neighbours (``None`` = exact over all rows)."""
    if k is None:
        return exact_nearest_voters(x, votes)
    idx, sims = exact_knn(x, k)
    return nearest_voters(sims, votes[idx])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--snorkel-worker"]:
        return snorkel_worker(argv[1], argv[2])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="WRENCH directory")
    parser.add_argument("--metric", choices=("acc", "f1"), default="acc")
    parser.add_argument("--json", default=None, help="write the headline figures here")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    parser.add_argument("--k-sweep", action="store_true", help="epoxy for k in 10, 20, 50, exact")
    parser.add_argument("--ablations", action="store_true", help="epoxy variants (README table)")
    parser.add_argument("--template", choices=("auto", "text", "relation"), default="auto",
                        help="text embedded: auto = relation template when rows have entities")
    parser.add_argument("--max-train", type=int, default=10000,
                        help="subsample a larger train split to this many rows (seed 0)")
    parser.add_argument("--snorkel-python", default=None,
                        help="interpreter with snorkel installed, when it does not import here")
    args = parser.parse_args(argv)
    seconds: dict[str, float] = {}

    data = load_wrench(args.data, args.max_train)
    k = data["cardinality"]
    parts = [data["splits"][s] for s in SPLITS if not (s == "train" and data["splits"]["train"] is data["splits"]["valid"])]
    names = [s for s in SPLITS if not (s == "train" and data["splits"]["train"] is data["splits"]["valid"])]
    ids = np.concatenate([p["ids"] for p in parts])
    votes = np.concatenate([p["votes"] for p in parts])
    gold_all = np.concatenate([p["gold"] for p in parts])
    split_of = np.concatenate([[name] * len(p["ids"]) for name, p in zip(names, parts)])
    rows = [d for p in parts for d in p["data"]]
    template = text_template_for(rows, args.template)
    t0 = time.perf_counter()
    x = embed_texts(
        [render_text(r, template) for r in rows], args.model_dir,
        f"{os.path.abspath(args.data)}\0{','.join(names)}\0{template}",
    )
    x = l2_normalise(x)
    seconds["embed"] = time.perf_counter() - t0

    def score(split: str, pred: np.ndarray) -> float:
        mask = split_of == split
        if args.metric == "acc":
            return accuracy(gold_all[mask], pred[mask])
        if k == 2:
            return binary_f1(gold_all[mask], pred[mask])
        return macro_f1(gold_all[mask], pred[mask], k)

    def both(pred: np.ndarray) -> dict[str, float]:
        return {"test": score("test", pred), "valid": score("valid", pred)}

    tuning_gold = np.where(split_of == "valid", gold_all, -1)
    default_k = LabelerConfig().num_neighbours
    t0 = time.perf_counter()
    nn_sim, nn_vote = knn_voters(x, votes, default_k)
    seconds["knn"] = time.perf_counter() - t0

    methods: dict[str, dict[str, float]] = {}
    mv = majority_vote_model(votes.shape[1], k).predict_proba(votes)
    methods["majority_vote"] = both(mv.argmax(axis=1))

    def run(config: LabelerConfig, sims=nn_sim, nvotes=nn_vote, emb=x):
        fitted = fit_labeler(ids, votes, sims, nvotes, emb, tuning_gold, config)
        return fitted, label_batch(fitted, votes, sims, nvotes, emb)

    lm_config = LabelerConfig(cardinality=k, extension=False, end_model=False)
    fitted_lm, lm = run(lm_config)
    methods["label_model"] = both(lm.label)

    timings, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        fitted, out = run(LabelerConfig(cardinality=k))
        timings.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    seconds["epoxy_fit_and_label"] = min(timings)
    seconds["epoxy_fit_and_label_cpu"] = min(cpu)
    methods["epoxy"] = both(out.label)

    train = (split_of == "train") if "train" in names else (split_of == "valid")
    covered = train & lm.covered
    transfer = fit_softmax_regression(
        x[covered], np.eye(k)[lm.label[covered]], l2=LabelerConfig().end_model_l2, scale=LabelerConfig().end_model_scale
    )
    methods["transfer"] = both(transfer.predict_proba(x).argmax(axis=1))

    extended = out.extended_votes
    t0 = time.perf_counter()
    snorkel = snorkel_probs(k, votes[train], {"raw": votes}, args.snorkel_python)
    if snorkel is None:
        print("snorkel not available: skipping the snorkel baselines (see --snorkel-python)")
    else:
        seconds["snorkel_fit"] = time.perf_counter() - t0
        raw_label = snorkel["raw"].argmax(axis=1)
        methods["snorkel"] = both(raw_label)
        ext = snorkel_probs(k, extended[train], {"ext": extended}, args.snorkel_python)
        methods["epoxy_snorkel"] = both(ext["ext"].argmax(axis=1))
        snorkel_covered = train & (votes != ABSTAIN).any(axis=1)
        lr = fit_softmax_regression(
            x[snorkel_covered], np.eye(k)[raw_label[snorkel_covered]],
            l2=LabelerConfig().end_model_l2, scale=LabelerConfig().end_model_scale,
        )
        methods["transfer_snorkel"] = both(lr.predict_proba(x).argmax(axis=1))
    baselines = [name for name in methods if name not in ("epoxy", "label_model")]
    best = max(baselines, key=lambda name: methods[name]["test"])

    extra: dict[str, float] = {
        "coverage_raw": float((votes != ABSTAIN).any(axis=1).mean()),
        "coverage_extended": float(out.covered.mean()),
        "finite_thresholds": float(np.isfinite(fitted.thresholds).mean()),
        "epoxy_minus_best_baseline_test": methods["epoxy"]["test"] - methods[best]["test"],
        "chosen_end_model_weight": float(fitted.end_model.weight) if fitted.end_model else float("nan"),
        "class_offsets_chosen": float(fitted.end_model is not None and fitted.end_model.offsets is not None),
    }
    offsets = None if fitted.end_model is None or fitted.end_model.offsets is None else fitted.end_model.offsets.tolist()
    print(f"chosen label model: {fitted.label_model.kind}; class offsets: {offsets}; best baseline: {best}")
    if args.k_sweep:
        for kk in (10, 20, 50, None):
            sims, nvotes = knn_voters(x, votes, kk)
            _, sweep = run(LabelerConfig(cardinality=k, num_neighbours=kk or 0), sims, nvotes)
            extra[f"epoxy_test_k{kk or 'exact'}"] = score("test", sweep.label)
    if args.ablations:
        variants = {
            "no_extension": LabelerConfig(cardinality=k, extension=False),
            "no_end_model": LabelerConfig(cardinality=k, end_model=False),
            "end_model_weight_1": LabelerConfig(cardinality=k, end_model_weight=1.0),
            "end_model_weight_0.5": LabelerConfig(cardinality=k, end_model_weight=0.5),
            "softmax_end_model": LabelerConfig(cardinality=k, end_model_solver="softmax"),
            "no_gold_in_label_model": LabelerConfig(cardinality=k, gold_strength=float("inf")),
            "quantile_default_thresholds": LabelerConfig(cardinality=k, thresholds="quantile"),
            "triplet_label_model": LabelerConfig(cardinality=k, label_model="triplet"),
            "moments_label_model": LabelerConfig(cardinality=k, label_model="moments"),
            "majority_vote_label_model": LabelerConfig(cardinality=k, label_model="majority_vote"),
            "naive_bayes_label_model": LabelerConfig(cardinality=k, label_model="naive_bayes"),
            "no_class_offsets": LabelerConfig(cardinality=k, class_offsets=False),
            "selection_error": LabelerConfig(cardinality=k, selection_metric="error"),
            "selection_balanced_error": LabelerConfig(cardinality=k, selection_metric="balanced_error"),
            "selection_brier": LabelerConfig(cardinality=k, selection_metric="brier"),
        }
        for name, config in variants.items():
            _, variant = run(config)
            extra[f"ablation_{name}_test"] = score("test", variant.label)

    t0 = time.perf_counter()
    big = np.where(np.random.default_rng(0).random((1_000_000, 100)) < 0.1, 1, -1).astype(np.int8)
    big_model = majority_vote_model(100, 2)
    big_model = type(big_model)(kind="triplet", cardinality=2, class_balance=np.array([0.5, 0.5]),
                                weights=big_model.weights, accuracies=big_model.accuracies)
    t1 = time.perf_counter()
    big_model.predict_proba(big)
    extra["predict_rows_per_s_100_lfs"] = 1_000_000 / (time.perf_counter() - t1)
    del big, t0

    print(f"data: {args.data}  max_train: {args.max_train}  classes: {k}  LFs: {votes.shape[1]}  rows: {dict(zip(*np.unique(split_of, return_counts=True)))}  template: {template}")
    print(f"metric: {args.metric}")
    for name, figures in methods.items():
        print(f"  {name:15s} test {figures['test']:.4f}  valid {figures['valid']:.4f}")
    for name, value in extra.items():
        print(f"  {name}: {value:.4f}")
    print("seconds:", {key: round(v, 2) for key, v in seconds.items()})
    print("reproduce: .venv/bin/python " + " ".join(["benchmarks/label_quality.py", *sys.argv[1:]]))
    if args.json:
        write_json(
            args.json,
            {"metric": args.metric, "methods": methods, "seconds": seconds, **extra},
            sort_keys=False,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
