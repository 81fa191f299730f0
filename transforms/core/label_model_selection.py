"""The label model's fit and choice: ``label_model="auto"`` picks a kind (module doc of
:mod:`transforms.core.labeler`), scored on out-of-fold posteriors of the gold rows."""

from __future__ import annotations

import dataclasses

import numpy as np

from transforms.core.extension import extend_votes
from transforms.core.label_models import (
    LabelModel,
    fit_moments,
    fit_naive_bayes,
    fit_triplet,
    majority_vote_model,
)
from transforms.core.labeler_config import (
    GOLD_CANDIDATES,
    GOLD_DEFAULT,
    FitSample,
    LabelerConfig,
    selection_loss,
)
from transforms.core.lf_estimates import triplet_identified
from transforms.core.lf_exceptions import NO_EXCEPTIONS, exception_pairs
from transforms.core.selection import choose, collapses, fold_assignment, out_of_fold_proba
from transforms.core.statistics import LabelStatistics


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


@dataclasses.dataclass(frozen=True)
class ScoredModel:
    """A label model with its out-of-fold posteriors of the gold rows and their losses.

    Attributes:
        model: The fitted label model.
        proba: ``float [g, k]`` out-of-fold posteriors of the gold rows.
        loss: ``float [g]`` their label-model-stage :class:`SelectionLoss`.
    """

    model: LabelModel
    proba: np.ndarray
    loss: np.ndarray


def sample_exceptions(sample: FitSample, config: LabelerConfig) -> np.ndarray:
    """The exception pairs of the sample's own votes (none when ``config.lf_exceptions`` is off)."""
    if not config.lf_exceptions:
        return NO_EXCEPTIONS
    return exception_pairs(sample.votes, config.cardinality)


def select_label_model(
    stats: LabelStatistics,
    gold_votes: np.ndarray,
    gold: np.ndarray,
    config: LabelerConfig,
    exceptions: np.ndarray = NO_EXCEPTIONS,
) -> ScoredModel:
    """Fits ``config.label_model`` (``"auto"``: chooses, see the module doc).

    Args:
        stats: Statistics of the extended votes.
        gold_votes: ``int [g, m]`` extended votes of the gold rows.
        gold: ``int [g]`` their labels.
        config: The labeler config.
        exceptions: Exception pairs the model honours (:func:`sample_exceptions`).

    Returns:
        The model, scored on the gold rows.
    """
    folds = fold_assignment(gold.shape[0], config.folds, config.seed)
    losses = selection_loss(config, gold)

    def scored(model: LabelModel) -> ScoredModel:
        model = dataclasses.replace(model, exceptions=exceptions if len(exceptions) else None)
        if gold.shape[0] == 0:
            return ScoredModel(model, np.zeros((0, stats.cardinality)), np.zeros(0))
        proba = out_of_fold_proba(model, gold_votes, gold, folds, config.gold_strength)
        return ScoredModel(model, proba, losses.of(proba, gold, "label_model"))

    kind = config.label_model
    if kind != "auto":
        return scored(_fit_kind(kind, stats, gold_votes, gold, config))
    mv = majority_vote_model(stats.num_lfs, stats.cardinality)
    if stats.num_lfs < 3:
        return scored(mv)
    if gold.shape[0] < config.min_gold:
        identified = triplet_identified(stats).sum() >= 3
        use_triplet = stats.cardinality == 2 and identified
        return scored(_fit_kind("triplet", stats, gold_votes, gold, config) if use_triplet else mv)
    candidates = {
        kind: scored(_fit_kind(kind, stats, gold_votes, gold, config))
        for kind in (GOLD_DEFAULT, *GOLD_CANDIDATES)
    }
    collapsed = {kind for kind, c in candidates.items() if collapses(c.proba, gold)}
    best = choose({kind: c.loss for kind, c in candidates.items()}, GOLD_DEFAULT, collapsed)
    return candidates[best]


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
    exceptions = sample_exceptions(sample, config)
    return select_label_model(stats, gold_votes, sample.gold[gold], config, exceptions).model
