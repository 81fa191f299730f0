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
``min_gold`` gold rows; with enough gold rows each level of :data:`QUANTILE_GRID` (which
includes "no extension") is scored by ``folds``-fold cross-validation of the label model (of
the kind chosen at the default level) on the gold rows, and the best level replaces the default only if its per-row loss is lower by more
than one standard error (:func:`transforms.core.selection.beats`).

Default label model (``label_model="auto"``): with enough gold rows, the better of ``triplet``
and ``moments`` by cross-validated balanced error on the gold rows, adopted only if it beats
the default by the same test; the default is ``naive_bayes``, majority vote's assumption (every
LF equally accurate) refined LF by LF by the gold rows — unlike hard majority vote its
posteriors are soft, so the end model can overrule a vote the gold rows show to be unreliable.
Without enough gold rows: ``triplet`` for binary tasks and majority vote for multi-class ones
(the unsupervised multi-class estimates are worse than majority vote on TREC, SemEval and
ChemProt: ``benchmarks/README.md``).

Default end-model weight (``end_model_weight=None``): the end model is first trained without
the gold rows; its predictions on the gold rows and the label model's out-of-fold predictions
choose ``α`` from :data:`BLEND_GRID` by error (same test against :data:`DEFAULT_BLEND`); the
final end model is then trained with the gold rows (ridge: sharing the first's Gram matrix). Without enough gold rows
``α = DEFAULT_BLEND``.

Class offsets (``class_offsets=True``): log offsets ``b [k]`` multiply the final probabilities
by ``exp(b)`` (a decision-threshold / class-prior correction: an end model trained on soft
label-model targets under-predicts a rare class). They are searched on the gold rows'
out-of-sample final probabilities (label-model out-of-fold posteriors blended with ridge end
models trained without each row's fold; the softmax solver uses its gold-free end model) by
:func:`~transforms.core.selection.fit_offsets`,
and kept only if the *nested* cross-validated error of that search beats no offsets by the same
one-standard-error test; else no offsets.

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

from transforms.core.end_model import (
    EndModel,
    augmented_gram,
    fit_ridge_classifier,
    fit_softmax_regression,
)
from transforms.core.extension import extend_votes
from transforms.core.ids import stable_hash
from transforms.core.label_models import (
    LabelModel,
    fit_moments,
    fit_naive_bayes,
    fit_triplet,
    majority_vote_model,
)
from transforms.core.selection import (
    beats,
    cross_validated_offsets,
    fold_assignment,
    out_of_fold_proba,
    row_losses,
)
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN

LABEL_MODELS = ("auto", "majority_vote", "triplet", "moments", "naive_bayes")
THRESHOLD_MODES = ("auto", "quantile", "none")
END_MODEL_SOLVERS = ("ridge", "softmax")
SELECTION_METRICS = ("auto", "error", "balanced_error", "brier")
# With enough gold rows, ``label_model="auto"`` adopts the best candidate only if it beats the
# default (majority vote refined by the gold rows).
GOLD_CANDIDATES = ("triplet", "moments")
GOLD_DEFAULT = "naive_bayes"
# Candidate quantile levels for the gold-tuned global choice; 1.01 = no extension.
QUANTILE_GRID = (1.01, 0.9, 0.75, 0.5, 0.25, 0.1)
_NO_EXTENSION = np.float32(np.inf)
# Candidate end-model weights α, and the default (equal geometric pooling of the two models).
BLEND_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_BLEND = 0.5


@dataclasses.dataclass(frozen=True)
class LabelerConfig:
    """How to fit the labeler; the defaults are the pipeline's default configuration.

    Attributes:
        cardinality: Number of classes ``k``.
        label_model: ``"auto"`` (see the module doc), ``"triplet"``, ``"moments"`` or
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
        selection_metric: The per-row loss the gold-row choices minimise
            (:func:`~transforms.core.selection.row_losses`). ``"auto"``: the balanced error for
            the label model and the extension level (the label model must get rare classes
            right: it teaches the end model; plain accuracy cannot see them on imbalanced sets
            such as SMS) and the error for the end-model weight (the final labels); or one of
            ``"error"``, ``"balanced_error"``, ``"brier"`` for every choice.
        end_model: Train softmax regression on the embeddings of the fit sample.
        end_model_weight: ``α`` in ``probs ∝ label_model^(1-α) · end_model^α`` on covered rows;
            rows without any vote take the end model's probabilities. ``None``: chosen on the
            gold rows (see the module doc).
        end_model_solver: ``"ridge"`` (closed form, penalty by leave-one-out error, see
            :func:`~transforms.core.end_model.fit_ridge_classifier`) or ``"softmax"``
            (softmax regression by gradient descent, ``end_model_l2``; ~50× slower).
        end_model_l2: L2 penalty of the softmax end model.
        end_model_scale: Input scale (inverse temperature) of the end model.
        class_offsets: Choose log class offsets of the final probabilities on the gold rows
            (see the module doc); they are kept only if their nested cross-validated loss beats
            no offsets.
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
    selection_metric: str = "auto"
    end_model: bool = True
    end_model_weight: float | None = None
    end_model_solver: str = "ridge"
    end_model_l2: float = 1e-3
    end_model_scale: float = 10.0
    class_offsets: bool = True
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
        if self.end_model_weight is not None and not 0.0 <= self.end_model_weight <= 1.0:
            raise ValueError(f"end_model_weight={self.end_model_weight} must be in [0, 1]")
        if self.end_model_solver not in END_MODEL_SOLVERS:
            raise ValueError(
                f"end_model_solver={self.end_model_solver!r} is unknown: use one of {END_MODEL_SOLVERS}"
            )
        if self.selection_metric not in SELECTION_METRICS:
            raise ValueError(
                f"selection_metric={self.selection_metric!r} is unknown: use one of {SELECTION_METRICS}"
            )
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


def _metric(config: LabelerConfig, choice: str) -> str:
    """The loss of one gold-row choice (``"label_model"`` or ``"blend"``) under the config."""
    if config.selection_metric != "auto":
        return config.selection_metric
    return "balanced_error" if choice == "label_model" else "error"


def choose_thresholds(sample: FitSample, config: LabelerConfig) -> np.ndarray:
    """Chooses per-LF extension thresholds ``float32 [m]`` (see the module doc)."""
    m = sample.votes.shape[1]
    if not config.extension or config.thresholds == "none":
        return np.full(m, _NO_EXTENSION, np.float32)
    gold = sample.gold >= 0
    if config.thresholds == "quantile" or gold.sum() < config.min_gold:
        return quantile_thresholds(sample.votes, sample.nn_sim, config.threshold_quantile)
    levels = dict.fromkeys((config.threshold_quantile, *QUANTILE_GRID))
    loss = {}
    for level in levels:
        thresholds = quantile_thresholds(sample.votes, sample.nn_sim, level)
        extended = extend_votes(sample.votes, sample.nn_sim, sample.nn_vote, thresholds)
        stats = LabelStatistics.empty(m, config.cardinality).add(extended)
        model, loss[level] = select_label_model(stats, extended[gold], sample.gold[gold], config)
        # The kind chosen at the default level scores the other levels (half the fits).
        config = dataclasses.replace(config, label_model=model.kind)
    best = min(levels, key=lambda level: float(loss[level].sum()))
    if not beats(loss[best], loss[config.threshold_quantile]):
        best = config.threshold_quantile
    return quantile_thresholds(sample.votes, sample.nn_sim, best)


def _fit_kind(
    kind: str, stats: LabelStatistics, gold_votes: np.ndarray, gold: np.ndarray, config: LabelerConfig
) -> LabelModel:
    if kind == "majority_vote":
        return majority_vote_model(stats.num_lfs, stats.cardinality)
    prior = None if config.class_balance is None else np.asarray(config.class_balance)
    if kind == "naive_bayes":
        return fit_naive_bayes(
            stats, class_balance=prior, gold_votes=gold_votes, gold=gold,
            gold_strength=config.gold_strength,
        )
    if kind == "moments":
        return fit_moments(
            stats, class_balance=prior, gold_votes=gold_votes, gold=gold,
            gold_strength=config.gold_strength,
        )
    return fit_triplet(
        stats, aggregation=config.triplet_aggregation, class_balance=prior,
        gold_votes=gold_votes, gold=gold, gold_strength=config.gold_strength,
    )


def select_label_model(
    stats: LabelStatistics, gold_votes: np.ndarray, gold: np.ndarray, config: LabelerConfig
) -> tuple[LabelModel, np.ndarray]:
    """Fits ``config.label_model`` (``"auto"``: chooses, see the module doc).

    Args:
        stats: Statistics of the extended votes.
        gold_votes: ``int [g, m]`` extended votes of the gold rows.
        gold: ``int [g]`` their labels.
        config: The labeler config.

    Returns:
        ``(model, loss)``: the model and ``float [g]`` the ``config.selection_metric`` loss of
        its out-of-fold posterior of each gold row.
    """
    folds = fold_assignment(gold.shape[0], config.folds, config.seed)

    def loss_of(model: LabelModel) -> np.ndarray:
        if gold.shape[0] == 0:
            return np.zeros(0)
        proba = out_of_fold_proba(model, gold_votes, gold, folds, config.gold_strength)
        return row_losses(proba, gold, _metric(config, "label_model"))

    kind = config.label_model
    if kind != "auto":
        model = _fit_kind(kind, stats, gold_votes, gold, config)
        return model, loss_of(model)
    mv = majority_vote_model(stats.num_lfs, stats.cardinality)
    if stats.num_lfs < 3:
        return mv, loss_of(mv)
    if gold.shape[0] < config.min_gold:
        model = _fit_kind("triplet", stats, gold_votes, gold, config) if stats.cardinality == 2 else mv
        return model, loss_of(model)
    candidates = [_fit_kind(k, stats, gold_votes, gold, config) for k in GOLD_CANDIDATES]
    scored = [(model, loss_of(model)) for model in candidates]
    best, best_loss = min(scored, key=lambda pair: float(pair[1].sum()))
    default = _fit_kind(GOLD_DEFAULT, stats, gold_votes, gold, config)
    default_loss = loss_of(default)
    if beats(best_loss, default_loss):
        return best, best_loss
    return default, default_loss


def fit_label_model(
    stats: LabelStatistics, sample: FitSample, thresholds: np.ndarray, config: LabelerConfig
) -> LabelModel:
    """Fits the label model from corpus statistics of extended votes (+ the sample's gold rows).

    Raises:
        ValueError: if the statistics are empty (``n = 0``).
    """
    if stats.n == 0:
        raise ValueError("cannot fit a label model on 0 rows: the corpus is empty")
    gold = sample.gold >= 0
    gold_votes = extend_votes(
        sample.votes[gold], sample.nn_sim[gold], sample.nn_vote[gold], thresholds
    )
    return select_label_model(stats, gold_votes, sample.gold[gold], config)[0]


def log_probs(probs: np.ndarray) -> np.ndarray:
    """``log(max(float64(probs), 1e-6))``: the log-probabilities :func:`blend` mixes."""
    return np.log(np.maximum(np.asarray(probs, np.float64), 1e-6))


def blend(
    lm: np.ndarray,
    em: np.ndarray,
    covered: np.ndarray,
    alpha: float,
    offsets: np.ndarray | None = None,
    log_em: np.ndarray | None = None,
) -> np.ndarray:
    """``lm^(1-α) · em^α`` (normalised) on covered rows, ``em`` elsewhere; ``float32 [n, k]``.
    With ``offsets`` ``[k]``, every row is then multiplied by ``exp(offsets)`` and renormalised.
    ``log_em``: :func:`log_probs` of ``em`` when the caller keeps it (a fixed end model).

    Computed in float64 and rounded to float32, so that a row's result does not depend on its
    position in the batch (numpy's SIMD and scalar ``exp``/``log`` may differ in the last bit).
    """
    lm64, em64 = np.asarray(lm, np.float64), np.asarray(em, np.float64)
    log_em = log_probs(em64) if log_em is None else log_em
    mixed = np.exp((1 - alpha) * log_probs(lm64) + alpha * log_em)
    mixed /= mixed.sum(axis=1, keepdims=True)
    out = np.where(covered[:, None], mixed, em64)
    if offsets is not None:
        out = out * np.exp(np.asarray(offsets, np.float64))
        out /= out.sum(axis=1, keepdims=True)
    return out.astype(np.float32)


def fit_end_model(
    sample: FitSample, thresholds: np.ndarray, label_model: LabelModel, config: LabelerConfig
) -> EndModel | None:
    """Trains the end model on the sample: label-model posteriors of covered rows, gold rows
    with their gold label; chooses its blend weight ``α`` (see the module doc). Returns ``None``
    when disabled or without embeddings."""
    if not config.end_model or sample.embeddings is None:
        return None
    extended = extend_votes(sample.votes, sample.nn_sim, sample.nn_vote, thresholds)
    covered = (extended != ABSTAIN).any(axis=1)
    targets = label_model.predict_proba(extended).astype(np.float64)
    gold = sample.gold >= 0
    targets[gold] = np.eye(config.cardinality)[sample.gold[gold]]
    use = gold | covered
    if not use.any():
        return None
    scale = config.end_model_scale
    alpha = config.end_model_weight
    unlabelled = use & ~gold
    tune = gold.sum() >= config.min_gold and unlabelled.any()
    if alpha is None and not tune:
        alpha = DEFAULT_BLEND
    ridge = config.end_model_solver == "ridge"
    gram = augmented_gram(sample.embeddings[unlabelled], scale) if ridge else None
    init = None
    offsets = None
    if tune and (alpha is None or config.class_offsets):
        if ridge:
            init = fit_ridge_classifier(
                sample.embeddings[unlabelled], targets[unlabelled], scale=scale, gram=gram
            )
        else:
            init = fit_softmax_regression(
                sample.embeddings[unlabelled], targets[unlabelled], l2=config.end_model_l2,
                scale=scale,
            )
        em = init.predict_proba(sample.embeddings[gold])
        folds = fold_assignment(int(gold.sum()), config.folds, config.seed)
        lm = out_of_fold_proba(
            label_model, extended[gold], sample.gold[gold], folds, config.gold_strength
        )
        metric = _metric(config, "blend")
        if alpha is None:
            loss = {
                a: row_losses(blend(lm, em, covered[gold], a), sample.gold[gold], metric)
                for a in dict.fromkeys((DEFAULT_BLEND, *BLEND_GRID))
            }
            alpha = min(loss, key=lambda a: float(loss[a].sum()))
            if not beats(loss[alpha], loss[DEFAULT_BLEND]):
                alpha = DEFAULT_BLEND
        if config.class_offsets:
            if ridge:
                em = _out_of_fold_ridge(sample.embeddings, targets, unlabelled, gold, folds, gram, scale)
            offsets = choose_offsets(
                blend(lm, em, covered[gold], alpha), sample.gold[gold], folds, metric
            )
    if ridge:
        model = fit_ridge_classifier(
            sample.embeddings[use], targets[use], scale=scale,
            gram=gram + augmented_gram(sample.embeddings[gold], scale),
        )
    else:
        model = fit_softmax_regression(
            sample.embeddings[use], targets[use], l2=config.end_model_l2, scale=scale, init=init
        )
    return dataclasses.replace(model, weight=float(alpha), offsets=offsets)


def _out_of_fold_ridge(
    embeddings: np.ndarray,
    targets: np.ndarray,
    unlabelled: np.ndarray,
    gold: np.ndarray,
    folds: np.ndarray,
    gram: np.ndarray,
    scale: float,
) -> np.ndarray:
    """``[g, k]`` end-model probabilities of the gold rows, each from the ridge end model
    trained as the final one is (label-model targets + gold rows) but without its own fold."""
    gold_rows = np.flatnonzero(gold)
    out = np.empty((gold_rows.size, targets.shape[1]))
    for fold in np.unique(folds):
        train_gold = gold_rows[folds != fold]
        rows = np.concatenate([np.flatnonzero(unlabelled), train_gold])
        model = fit_ridge_classifier(
            embeddings[rows], targets[rows], scale=scale,
            gram=gram + augmented_gram(embeddings[train_gold], scale),
        )
        out[folds == fold] = model.predict_proba(embeddings[gold_rows[folds == fold]])
    return out


def choose_offsets(
    proba: np.ndarray, gold: np.ndarray, folds: np.ndarray, metric: str
) -> np.ndarray | None:
    """Log class offsets of the final probabilities, or ``None`` when they do not clearly help.

    Args:
        proba: ``[g, k]`` out-of-sample final probabilities of the gold rows (the label model's
            out-of-fold posteriors blended with ridge end models trained without the row's
            fold; with the softmax solver, with the end model trained without gold rows).
        gold: ``int [g]`` their labels.
        folds: ``int [g]`` fold of each gold row.
        metric: The per-row loss (:func:`~transforms.core.selection.row_losses`).
    """
    log_proba = np.log(np.maximum(np.asarray(proba, np.float64), 1e-6))
    offsets, loss = cross_validated_offsets(log_proba, gold, folds, metric)
    base = row_losses(proba, gold, metric)
    if not np.any(offsets) or not beats(loss, base):
        return None
    return offsets


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
        probs = blend(lm, em, covered, fitted.end_model.weight, fitted.end_model.offsets)
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
    return fit_models(names, config, sample, thresholds, stats)


def fit_models(
    lf_names: Sequence[str],
    config: LabelerConfig,
    sample: FitSample,
    thresholds: np.ndarray,
    stats: LabelStatistics,
) -> FittedLabeler:
    """Steps 4 and 5 of the fit: the label model, then the end model, as a :class:`FittedLabeler`.

    The one place they are fitted: :func:`fit_labeler`, the Beam fit stage and the iterate
    session's full refit all call it with their own sample, thresholds and statistics.
    """
    label_model = fit_label_model(stats, sample, thresholds, config)
    end_model = fit_end_model(sample, thresholds, label_model, config)
    return FittedLabeler(
        lf_names=tuple(lf_names),
        cardinality=config.cardinality,
        thresholds=thresholds,
        label_model=label_model,
        end_model=end_model,
        config=config,
    )
