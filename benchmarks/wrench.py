"""WRENCH-format data sets as the arrays the labeler reads: votes, embeddings, nearest voters.

A directory holds ``train.json`` (optional: without it ``valid.json`` is the unlabelled pool),
``valid.json``, ``test.json`` and ``label.json``; a ``labeled_ids.json`` lists train rows to drop
(the LF exemplars of TREC, as in WRENCH). Documents are embedded with the project's bundled
all-MiniLM-L6-v2 SavedModel (built by ``transforms.models.build_minilm``, loaded with
``tensorflow_hub.load``); embeddings are cached under ``.cache/embeddings/`` keyed by the data
path, split, text template and model fingerprint. Rows with ``entity1``/``entity2`` fields are
embedded through the relation template.

The corpus is train + valid + test (transductive, like the pipeline, which labels every row);
test gold is used only to score.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from benchmarks.readme_rules import readme_votes
from transforms.core.extension import nearest_voters
from transforms.core.knn import exact_knn, l2_normalise
from transforms.core.labeler import LabelerConfig
from transforms.core.metrics import accuracy, binary_f1, macro_f1
from transforms.core.text_template import RELATION_FIELDS, RELATION_TEMPLATE, render_text
from transforms.core.votes import ABSTAIN

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


@dataclasses.dataclass(frozen=True)
class WrenchTask:
    """One data set as arrays over the whole corpus (train + valid + test rows).

    Attributes:
        name: The directory's base name.
        cardinality: Number of classes.
        metric: ``"acc"`` or ``"f1"`` (F1 of class 1 for binary, macro-F1 otherwise).
        ids, votes, gold, split: ``[n]`` / ``int8 [n, m]`` / ``int [n]`` / ``str [n]``.
        embeddings: ``float32 [n, d]`` L2-normalised.
        nn_sim, nn_vote: nearest voters from the top-``k`` neighbours (``k`` = the default).
    """

    name: str
    cardinality: int
    metric: str
    ids: np.ndarray
    votes: np.ndarray
    gold: np.ndarray
    split: np.ndarray
    embeddings: np.ndarray
    nn_sim: np.ndarray
    nn_vote: np.ndarray

    @property
    def train(self) -> np.ndarray:
        """``bool [n]`` the unlabelled pool (train, or valid when there is no train split)."""
        has_train = bool((self.split == "train").any())
        return self.split == ("train" if has_train else "valid")

    def score(self, rows: np.ndarray, pred: np.ndarray) -> float:
        """The task metric of ``pred [n]`` on ``rows`` (a mask or a split name)."""
        mask = self.split == rows if isinstance(rows, str) else rows
        if self.metric == "acc":
            return accuracy(self.gold[mask], pred[mask])
        if self.cardinality == 2:
            return binary_f1(self.gold[mask], pred[mask])
        return macro_f1(self.gold[mask], pred[mask], self.cardinality)


def load_task(
    data_dir: str, metric: str, model_dir: str = DEFAULT_MODEL_DIR, max_train: int | None = 10000,
    template: str = "auto", votes_from: str = "stored",
) -> WrenchTask:
    """Reads, embeds (cached) and indexes one WRENCH directory.

    ``votes_from="rules"`` replaces the stored votes by the readme's rules applied to each
    row's text (:mod:`benchmarks.readme_rules`; a data check).
    """
    data = load_wrench(data_dir, max_train)
    splits = data["splits"]
    names = [s for s in SPLITS if not (s == "train" and splits["train"] is splits["valid"])]
    parts = [splits[s] for s in names]
    rows = [d for p in parts for d in p["data"]]
    chosen = text_template_for(rows, template)
    x = embed_texts(
        [render_text(r, chosen) for r in rows], model_dir,
        f"{os.path.abspath(data_dir)}\0{','.join(names)}\0{chosen}",
    )
    x = l2_normalise(x)
    votes = np.concatenate([p["votes"] for p in parts])
    split = np.concatenate([[name] * len(p["ids"]) for name, p in zip(names, parts)])
    if votes_from == "rules":
        with open(os.path.join(data_dir, "label.json"), encoding="utf-8") as handle:
            class_names = list(json.load(handle).values())
        texts = [str(r.get("text", "")) if isinstance(r, dict) else str(r) for r in rows]
        votes = readme_votes(data_dir, class_names, texts, votes, split == "train")
    elif votes_from != "stored":
        raise ValueError(f"votes_from={votes_from!r} is unknown: use 'stored' or 'rules'")
    nn_sim, nn_vote = knn_voters(x, votes, LabelerConfig().num_neighbours)
    return WrenchTask(
        name=os.path.basename(os.path.normpath(data_dir)),
        cardinality=data["cardinality"],
        metric=metric,
        ids=np.concatenate([p["ids"] for p in parts]),
        votes=votes,
        gold=np.concatenate([p["gold"] for p in parts]),
        split=split,
        embeddings=x,
        nn_sim=nn_sim,
        nn_vote=nn_vote,
    )
