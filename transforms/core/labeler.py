"""The labeler: thresholds → extension → statistics → label model → end model → labels.

:func:`label_batch` is the one per-batch function behind the Beam DoFn, the in-memory path and
the cached re-label path; :func:`fit_labeler` is the in-memory fit, running exactly the steps the
pipeline runs, in the same order:

1. :func:`select_fit_sample`: every gold row plus the ``sample_size`` rows with the smallest
   :func:`sample_priority` (a bounded, deterministic sample).
2. :func:`choose_thresholds` on the sample.
3. :class:`LabelStatistics` over ``extend_votes`` of **all** rows (one CombineFn pass).
4. :func:`fit_label_model` from those statistics (+ the sample's gold rows).
5. :func:`fit_end_model` on the sample.

Default thresholds (``thresholds="auto"``): LF ``j``'s threshold is the ``q``-quantile of the
nearest-voter similarity among the rows ``j`` itself voted on ("extend ``j`` as far as its own
voters are from each other"), with ``q = threshold_quantile`` (0.5) when there are fewer than
``min_gold`` gold rows; with enough gold rows ``q`` is chosen from :data:`QUANTILE_GRID` (which
includes "no extension") by ``folds``-fold cross-validation of the label model on the gold rows.

>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 60)
>>> votes = np.where(rng.random((60, 5)) < 0.6, np.where(rng.random((60, 5)) < 0.8, y[:, None],
...     1 - y[:, None]), -1).astype(np.int8)
>>> nn_sim = np.full((60, 5), -np.inf, np.float32); nn_vote = np.full((60, 5), -1, np.int8)
>>> ids = np.array([f"d{i}" for i in range(60)]); gold = np.full(60, -1)
>>> fitted = fit_labeler(ids, votes, nn_sim, nn_vote, None, gold, LabelerConfig(end_model=False))
>>> out = label_batch(fitted, votes, nn_sim, nn_vote, None)
>>> float((out.label == y)[out.covered].mean()) > 0.8
True
>>> FittedLabeler.from_dict(fitted.to_dict()).thresholds.tolist() == fitted.thresholds.tolist()
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from transforms.core.end_model import EndModel, fit_softmax_regression
from transforms.core.extension import extend_votes
from transforms.core.ids import stable_hash
from transforms.core.label_models import LabelModel, fit_triplet, majority_vote_model
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN

LABEL_MODELS = ("auto", "majority_vote", "triplet")
THRESHOLD_MODES = ("auto", "quantile", "none")
# Candidate quantile levels for the gold-tuned global choice; 1.01 = no extension.
QUANTILE_GRID = (1.01, 0.9, 0.75, 0.5, 0.25, 0.1)
_NO_EXTENSION = np.float32(np.inf)


@dataclasses.dataclass(frozen=True)
class LabelerConfig:
    """How to fit the labeler; the defaults are the pipeline's default configuration.

    Attributes:
        cardinality: Number of classes ``k``.
        label_model: ``"auto"`` (triplet; majority vote below 3 LFs), ``"triplet"`` or
            ``"majority_vote"``.
        triplet_aggregation: ``"median"`` or ``"mean"`` over triplets.
        class_balance: A given prior ``[k]``; ``None`` = from gold rows, else estimated.
        gold_strength: Pseudo-votes of the unsupervised LF estimate against gold rows.
        extension: Extend LFs to their neighbours (Epoxy).
        thresholds: ``"auto"`` (see the module doc), ``"quantile"`` (always
            ``threshold_quantile``) or ``"none"``.
        threshold_quantile: The quantile level used without enough gold rows.
        min_gold: Gold rows needed before thresholds are tuned on them.
        folds: Cross-validation folds over the gold rows.
        end_model: Train softmax regression on the embeddings of the fit sample.
        end_model_weight: ``α`` in ``probs ∝ label_model^(1-α) · end_model^α`` on covered rows;
            rows without any vote take the end model's probabilities.
        end_model_l2: L2 penalty of the end model.
        end_model_scale: Input scale (inverse temperature) of the end model.
        sample_size: Corpus rows in the bounded fit sample (gold rows come on top).
        num_neighbours: Neighbours per row the pipeline retrieves for the extension.
        seed: Seed for the cross-validation folds.
    """

    cardinality: int = 2
    label_model: str = "auto"
    triplet_aggregation: str = "median"
    class_balance: tuple[float, ...] | None = None
    gold_strength: float = 10.0
    extension: bool = True
    thresholds: str = "auto"
    threshold_quantile: float = 0.5
    min_gold: int = 30
    folds: int = 5
    end_model: bool = True
    end_model_weight: float = 1.0
    end_model_l2: float = 1e-3
    end_model_scale: float = 10.0
    sample_size: int = 20000
    num_neighbours: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.cardinality < 2:
            raise ValueError(f"cardinality={self.cardinality} is invalid: need at least 2")
        if self.label_model not in LABEL_MODELS:
            raise ValueError(f"label_model={self.label_model!r} is unknown: use one of {LABEL_MODELS}")
        if self.thresholds not in THRESHOLD_MODES:
            raise ValueError(f"thresholds={self.thresholds!r} is unknown: use one of {THRESHOLD_MODES}")
        if not 0.0 <= self.end_model_weight <= 1.0:
            raise ValueError(f"end_model_weight={self.end_model_weight} must be in [0, 1]")
        if self.sample_size < 1:
            raise ValueError(f"sample_size={self.sample_size} must be at least 1")


@dataclasses.dataclass(frozen=True)
class FitSample:
    """The bounded sample the fit reads row by row (everything else comes from statistics).

    Attributes:
        ids: ``str [s]``.
        votes: ``int8 [s, m]``.
        nn_sim: ``float32 [s, m]``.
        nn_vote: ``int8 [s, m]``.
        embeddings: ``float32 [s, d]`` or ``None``.
        gold: ``int [s]`` tuning labels, ``-1`` = unknown (holdout gold is never passed in).
    """

    ids: np.ndarray
    votes: np.ndarray
    nn_sim: np.ndarray
    nn_vote: np.ndarray
    embeddings: np.ndarray | None
    gold: np.ndarray


@dataclasses.dataclass(frozen=True)
class LabelBatch:
    """Labels of a batch of rows.

    Attributes:
        extended_votes: ``int8 [n, m]``.
        probs: ``float32 [n, k]`` final probabilities.
        label: ``int [n]`` argmax of ``probs`` (ties go to the lowest class).
        label_model_probs: ``float32 [n, k]``.
        covered: ``bool [n]`` any vote after extension.
    """

    extended_votes: np.ndarray
    probs: np.ndarray
    label: np.ndarray
    label_model_probs: np.ndarray
    covered: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class FittedLabeler:
    """Everything :func:`label_batch` needs; JSON-serialisable."""

    lf_names: tuple[str, ...]
    cardinality: int
    thresholds: np.ndarray
    label_model: LabelModel
    end_model: EndModel | None
    config: LabelerConfig

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict (infinite thresholds are written as ``null``)."""
        return {
            "lf_names": list(self.lf_names),
            "cardinality": self.cardinality,
            "thresholds": [None if not np.isfinite(t) else float(t) for t in self.thresholds],
            "label_model": self.label_model.to_dict(),
            "end_model": None if self.end_model is None else self.end_model.to_dict(),
            "config": {
                **dataclasses.asdict(self.config),
                "class_balance": None
                if self.config.class_balance is None
                else list(self.config.class_balance),
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FittedLabeler":
        """Inverse of :meth:`to_dict`."""
        config = dict(d["config"])
        if config.get("class_balance") is not None:
            config["class_balance"] = tuple(config["class_balance"])
        return cls(
            lf_names=tuple(d["lf_names"]),
            cardinality=int(d["cardinality"]),
            thresholds=np.array(
                [np.inf if t is None else t for t in d["thresholds"]], dtype=np.float32
            ),
            label_model=LabelModel.from_dict(d["label_model"]),
            end_model=None if d["end_model"] is None else EndModel.from_dict(d["end_model"]),
            config=LabelerConfig(**config),
        )


def sample_priority(doc_id: str) -> int:
    """The pipeline keeps the ``sample_size`` rows with the smallest priority (+ gold rows)."""
    return stable_hash(doc_id)


def select_fit_sample(
    ids: np.ndarray,
    votes: np.ndarray,
    nn_sim: np.ndarray,
    nn_vote: np.ndarray,
    embeddings: np.ndarray | None,
    gold: np.ndarray,
    sample_size: int,
) -> FitSample:
    """Selects every gold row plus the ``sample_size`` rows of smallest :func:`sample_priority`."""
    ids = np.asarray(ids).astype(str)
    gold = np.asarray(gold, dtype=np.int64)
    priority = np.array([sample_priority(i) for i in ids], dtype=np.uint64)
    keep = np.zeros(len(ids), bool)
    keep[np.argsort(priority, kind="stable")[:sample_size]] = True
    keep |= gold >= 0
    rows = np.flatnonzero(keep)
    return FitSample(
        ids=ids[rows],
        votes=np.asarray(votes)[rows],
        nn_sim=np.asarray(nn_sim)[rows],
        nn_vote=np.asarray(nn_vote)[rows],
        embeddings=None if embeddings is None else np.asarray(embeddings)[rows],
        gold=gold[rows],
    )


def quantile_thresholds(votes: np.ndarray, nn_sim: np.ndarray, level: float) -> np.ndarray:
    """Per LF: the ``level``-quantile of ``nn_sim`` over rows the LF voted on (``inf`` if none).

    A level above 1 disables the extension.
    """
    m = votes.shape[1]
    out = np.full(m, _NO_EXTENSION, np.float32)
    if level > 1.0:
        return out
    for j in range(m):
        sims = nn_sim[(votes[:, j] != ABSTAIN) & np.isfinite(nn_sim[:, j]), j]
        if sims.size >= 2:
            out[j] = np.quantile(sims, level)
    return out


def _fit_on_gold_subset(
    stats: LabelStatistics,
    sample: FitSample,
    thresholds: np.ndarray,
    gold_rows: np.ndarray,
    config: LabelerConfig,
) -> LabelModel:
    sub = dataclasses.replace(sample, gold=np.where(gold_rows, sample.gold, -1))
    return fit_label_model(stats, sub, thresholds, config)


def choose_thresholds(sample: FitSample, config: LabelerConfig) -> np.ndarray:
    """Chooses per-LF extension thresholds ``float32 [m]`` (see the module doc)."""
    m = sample.votes.shape[1]
    if not config.extension or config.thresholds == "none":
        return np.full(m, _NO_EXTENSION, np.float32)
    gold_idx = np.flatnonzero(sample.gold >= 0)
    if config.thresholds == "quantile" or gold_idx.size < config.min_gold:
        return quantile_thresholds(sample.votes, sample.nn_sim, config.threshold_quantile)
    rng = np.random.default_rng(config.seed)
    fold_of = np.empty(sample.gold.shape[0], np.int64)
    fold_of[gold_idx] = rng.permutation(gold_idx.size) % config.folds
    best_level, best_score = config.threshold_quantile, -np.inf
    for level in QUANTILE_GRID:
        thresholds = quantile_thresholds(sample.votes, sample.nn_sim, level)
        extended = extend_votes(sample.votes, sample.nn_sim, sample.nn_vote, thresholds)
        stats = LabelStatistics.empty(extended.shape[1], config.cardinality).add(extended)
        correct = 0
        for fold in range(config.folds):
            held = gold_idx[fold_of[gold_idx] == fold]
            train = (sample.gold >= 0) & (fold_of != fold)
            model = _fit_on_gold_subset(stats, sample, thresholds, train, config)
            pred = model.predict_proba(extended[held]).argmax(axis=1)
            correct += int((pred == sample.gold[held]).sum())
        if correct > best_score:
            best_level, best_score = level, correct
    return quantile_thresholds(sample.votes, sample.nn_sim, best_level)


def fit_label_model(
    stats: LabelStatistics, sample: FitSample, thresholds: np.ndarray, config: LabelerConfig
) -> LabelModel:
    """Fits the label model from corpus statistics of extended votes (+ the sample's gold rows).

    Raises:
        ValueError: if the statistics are empty (``n = 0``).
    """
    if stats.n == 0:
        raise ValueError("cannot fit a label model on 0 rows: the corpus is empty")
    kind = config.label_model
    if kind == "auto":
        kind = "triplet" if stats.num_lfs >= 3 else "majority_vote"
    if kind == "majority_vote":
        return majority_vote_model(stats.num_lfs, stats.cardinality)
    gold = sample.gold >= 0
    gold_votes = extend_votes(
        sample.votes[gold], sample.nn_sim[gold], sample.nn_vote[gold], thresholds
    )
    return fit_triplet(
        stats,
        aggregation=config.triplet_aggregation,
        class_balance=None if config.class_balance is None else np.asarray(config.class_balance),
        gold_votes=gold_votes,
        gold=sample.gold[gold],
        gold_strength=config.gold_strength,
    )


def fit_end_model(
    sample: FitSample, thresholds: np.ndarray, label_model: LabelModel, config: LabelerConfig
) -> EndModel | None:
    """Trains the end model on the sample: label-model posteriors of covered rows, gold rows
    with their gold label. Returns ``None`` when disabled or without embeddings."""
    if not config.end_model or sample.embeddings is None:
        return None
    extended = extend_votes(sample.votes, sample.nn_sim, sample.nn_vote, thresholds)
    targets = label_model.predict_proba(extended).astype(np.float64)
    gold = sample.gold >= 0
    targets[gold] = np.eye(config.cardinality)[sample.gold[gold]]
    use = gold | (extended != ABSTAIN).any(axis=1)
    if not use.any():
        return None
    return fit_softmax_regression(
        sample.embeddings[use],
        targets[use],
        l2=config.end_model_l2,
        scale=config.end_model_scale,
    )


def label_batch(
    fitted: FittedLabeler,
    votes: np.ndarray,
    nn_sim: np.ndarray,
    nn_vote: np.ndarray,
    embeddings: np.ndarray | None,
) -> LabelBatch:
    """Labels a batch from its cached per-row arrays (the one labelling function)."""
    extended = extend_votes(votes, nn_sim, nn_vote, fitted.thresholds)
    lm = fitted.label_model.predict_proba(extended)
    covered = (extended != ABSTAIN).any(axis=1)
    probs = lm
    if fitted.end_model is not None and embeddings is not None:
        em = fitted.end_model.predict_proba(embeddings)
        alpha = fitted.config.end_model_weight
        mixed = np.exp((1 - alpha) * np.log(np.maximum(lm, 1e-6)) + alpha * np.log(np.maximum(em, 1e-6)))
        mixed /= mixed.sum(axis=1, keepdims=True)
        probs = np.where(covered[:, None], mixed, em).astype(np.float32)
    return LabelBatch(
        extended_votes=extended,
        probs=probs,
        label=probs.argmax(axis=1),
        label_model_probs=lm,
        covered=covered,
    )


def fit_labeler(
    ids: np.ndarray,
    votes: np.ndarray,
    nn_sim: np.ndarray,
    nn_vote: np.ndarray,
    embeddings: np.ndarray | None,
    gold: np.ndarray,
    config: LabelerConfig = LabelerConfig(),
    lf_names: Sequence[str] | None = None,
) -> FittedLabeler:
    """The in-memory fit: exactly the pipeline's steps, in the pipeline's order."""
    votes = np.asarray(votes)
    m = votes.shape[1]
    names = tuple(lf_names) if lf_names is not None else tuple(f"lf_{j}" for j in range(m))
    if len(names) != m:
        raise ValueError(f"{len(names)} LF names for {m} vote columns: give one name per LF")
    sample = select_fit_sample(ids, votes, nn_sim, nn_vote, embeddings, gold, config.sample_size)
    thresholds = choose_thresholds(sample, config)
    stats = LabelStatistics.empty(m, config.cardinality)
    for start in range(0, votes.shape[0], 65536):
        stop = start + 65536
        stats.add(extend_votes(votes[start:stop], nn_sim[start:stop], nn_vote[start:stop], thresholds))
    label_model = fit_label_model(stats, sample, thresholds, config)
    end_model = fit_end_model(sample, thresholds, label_model, config)
    return FittedLabeler(
        lf_names=names,
        cardinality=config.cardinality,
        thresholds=thresholds,
        label_model=label_model,
        end_model=end_model,
        config=config,
    )
