"""The end model's fit: its training recipe, its blend weight and the class offsets, chosen on
the gold rows (the recipes are described in :mod:`transforms.core.labeler`). Without enough gold
rows the recipe takes its default, the weight :func:`gold_free_blend` and the offsets match the
label model's class balance (:func:`~transforms.core.selection.prior_matching_offsets`)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from transforms.core.end_model import EndModel, RidgeRows, augment, blend, log_probs, ridge_on_rows
from transforms.core.extension import extend_votes
from transforms.core.label_models import LabelModel
from transforms.core.labeler_config import (
    BLEND_GRID,
    DEFAULT_BLEND,
    DEFAULT_GOLD_WEIGHT,
    GOLD_FREE_EXTENDED_BLEND,
    GOLD_WEIGHT_GRID,
    FitSample,
    LabelerConfig,
    SelectionLoss,
    selection_loss,
)
from transforms.core.selection import (
    choose,
    collapses,
    cross_validated_offsets,
    fold_assignment,
    out_of_fold_proba,
    prior_matching_offsets,
)
from transforms.core.votes import ABSTAIN


@dataclasses.dataclass(frozen=True)
class EndModelData:
    """The end model's training rows in the fit sample.

    Attributes:
        augmented: ``float64 [s, d+1]`` the sample's embeddings through
            :func:`~transforms.core.end_model.augment`.
        targets: ``float [s, k]`` label-model posteriors; gold rows one-hot.
        weak: ``bool [s]`` covered rows without a gold label (weak targets).
        gold: ``bool [s]`` gold rows.
        covered: ``bool [s]`` rows with a vote after extension.
        scale: The end model's input scale.
    """

    augmented: np.ndarray
    targets: np.ndarray
    weak: np.ndarray
    gold: np.ndarray
    covered: np.ndarray
    scale: float

    @functools.cached_property
    def weak_rows(self) -> RidgeRows:
        """The weak rows and their statistics (shared by every fit)."""
        return RidgeRows.of(self.augmented[self.weak], self.targets[self.weak])

    def fit(self, gold_weight: float, gold_rows: np.ndarray | None = None) -> EndModel:
        """Ridge end model on the weak rows + ``gold_rows`` (default: every gold row) counted
        ``gold_weight`` times; ``gold_weight = inf``: on those gold rows alone."""
        gold_rows = np.flatnonzero(self.gold) if gold_rows is None else gold_rows
        gold = RidgeRows.of(self.augmented[gold_rows], self.targets[gold_rows])
        if np.isinf(gold_weight):
            groups = [(gold, 1.0)]
        else:
            groups = [(self.weak_rows, 1.0), (gold, gold_weight)]
        return dataclasses.replace(ridge_on_rows(groups, self.scale), gold_weight=float(gold_weight))

    def out_of_fold(self, gold_weight: float, folds: np.ndarray) -> np.ndarray:
        """``[g, k]`` end-model probabilities of the gold rows, each from :meth:`fit` without
        the row's fold (the final recipe, so that the choices see what the final model does)."""
        gold_rows = np.flatnonzero(self.gold)
        out = np.empty((gold_rows.size, self.targets.shape[1]))
        for fold in np.unique(folds):
            model = self.fit(gold_weight, gold_rows[folds != fold])
            held = self.augmented[gold_rows[folds == fold]]
            out[folds == fold] = model.predict_augmented(held)
        return out


def fit_end_model(
    sample: FitSample, thresholds: np.ndarray, label_model: LabelModel, config: LabelerConfig
) -> EndModel | None:
    """Trains the end model on the sample and chooses its recipe, its blend weight ``α`` and
    the class offsets on the gold rows (see the module doc). Returns ``None`` when disabled or
    without embeddings."""
    if not config.end_model or sample.embeddings is None:
        return None
    extended = extend_votes(sample.votes, sample.nn_sim, sample.nn_vote, thresholds)
    covered = (extended != ABSTAIN).any(axis=1)
    posteriors = label_model.predict_proba(extended)
    targets = posteriors.astype(np.float64)
    gold = sample.gold >= 0
    targets[gold] = np.eye(config.cardinality)[sample.gold[gold]]
    weak = covered & ~gold
    if not (gold | covered).any():
        return None
    data = EndModelData(
        augmented=augment(sample.embeddings, config.end_model_scale), targets=targets, weak=weak,
        gold=gold, covered=covered, scale=config.end_model_scale,
    )
    if gold.sum() < config.min_gold or not weak.any():
        gold_weight = config.end_model_gold_weight or DEFAULT_GOLD_WEIGHT
        if np.isinf(gold_weight) and not gold.any():
            gold_weight = DEFAULT_GOLD_WEIGHT  # no tuning rows to train a gold-only model on
        alpha = gold_free_blend(thresholds) if config.end_model_weight is None else config.end_model_weight
        model = dataclasses.replace(data.fit(gold_weight), weight=float(alpha))
        offsets = _prior_offsets(data, posteriors, label_model, model, config)
        return dataclasses.replace(model, offsets=offsets)
    gold_weight, alpha, offsets = _choose_recipe(data, extended, label_model, sample.gold[gold], config)
    return dataclasses.replace(data.fit(gold_weight), weight=float(alpha), offsets=offsets)


def gold_free_blend(thresholds: np.ndarray) -> float:
    """``α`` without enough gold rows: :data:`GOLD_FREE_EXTENDED_BLEND` when some LF is extended
    (without gold the extension survives only if its votes agree with the other LFs, i.e. the
    neighbours share the class, so the embeddings carry the task), else :data:`DEFAULT_BLEND`.

    >>> gold_free_blend(np.array([0.8, np.inf])), gold_free_blend(np.array([np.inf, np.inf]))
    (0.75, 0.5)
    """
    return GOLD_FREE_EXTENDED_BLEND if bool(np.isfinite(thresholds).any()) else DEFAULT_BLEND


def _prior_offsets(
    data: EndModelData, posteriors: np.ndarray, label_model: LabelModel, model: EndModel,
    config: LabelerConfig,
) -> np.ndarray | None:
    """Gold-free class offsets: the final labels of the sample take each class at the label
    model's class balance (:func:`~transforms.core.selection.prior_matching_offsets`). ``None``
    when offsets are off or the label model has no estimated balance (majority vote)."""
    if not config.class_offsets or label_model.hard:
        return None
    final = blend(posteriors, model.predict_augmented(data.augmented), data.covered, model.weight)
    return prior_matching_offsets(log_probs(final), label_model.class_balance)


def _choose_recipe(
    data: EndModelData,
    extended: np.ndarray,
    label_model: LabelModel,
    gold: np.ndarray,
    config: LabelerConfig,
) -> tuple[float, float, np.ndarray | None]:
    """``(gold weight, α, offsets)`` by cross-validation on the gold rows: every recipe of
    :data:`GOLD_WEIGHT_GRID` × :data:`BLEND_GRID` is scored on out-of-fold final probabilities
    (label-model posteriors refined without the row's fold, blended with an end model trained
    without it) and must beat the default (weight 1, ``α = 0.5``) by :func:`beats`; a recipe
    whose predictions collapse is never adopted. Offsets are then searched on the chosen
    recipe's out-of-fold probabilities (:func:`choose_offsets`)."""
    folds = fold_assignment(gold.size, config.folds, config.seed)
    losses = selection_loss(config, gold)
    covered = data.covered[data.gold]
    lm = out_of_fold_proba(label_model, extended[data.gold], gold, folds, config.gold_strength)
    weights = (config.end_model_gold_weight,) if config.end_model_gold_weight else GOLD_WEIGHT_GRID
    alphas = (config.end_model_weight,) if config.end_model_weight is not None else BLEND_GRID
    default = (weights[0] if len(weights) == 1 else DEFAULT_GOLD_WEIGHT,
               alphas[0] if len(alphas) == 1 else DEFAULT_BLEND)
    proba = {}
    for weight in weights:
        em = data.out_of_fold(weight, folds)
        for alpha in alphas:
            proba[weight, alpha] = blend(lm, em, covered, alpha)
    loss = {key: losses.of(p, gold) for key, p in proba.items()}
    collapsed = {key for key, p in proba.items() if collapses(p, gold)}
    chosen = choose(loss, default, collapsed)
    offsets = None
    if config.class_offsets:
        offsets = choose_offsets(proba[chosen], gold, folds, losses)
    return chosen[0], chosen[1], offsets


def choose_offsets(
    proba: np.ndarray, gold: np.ndarray, folds: np.ndarray, losses: SelectionLoss
) -> np.ndarray | None:
    """Log class offsets of the final probabilities, or ``None`` when they do not clearly help.

    Args:
        proba: ``[g, k]`` out-of-sample final probabilities of the gold rows (the label model's
            out-of-fold posteriors blended with end models trained without the row's fold).
        gold: ``int [g]`` their labels.
        folds: ``int [g]`` fold of each gold row.
        losses: The selection losses (the ``final`` one is used).
    """
    log_proba = log_probs(proba)
    offsets, loss, shifted = cross_validated_offsets(
        log_proba, gold, folds, losses.final, losses.positive_class
    )
    base = losses.of(proba, gold)
    adopt = {"offsets": loss, "none": base}
    collapsed = {key for key, p in (("offsets", shifted), ("none", proba)) if collapses(p, gold)}
    if not np.any(offsets) or choose(adopt, "none", collapsed) == "none":
        return None
    return offsets
