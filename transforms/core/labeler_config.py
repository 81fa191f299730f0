"""The labeler's configuration, its fit sample and the losses its gold-row choices minimise.

>>> LabelerConfig(cardinality=3).metric
'auto'
>>> selection_loss(LabelerConfig(), np.array([0] * 95 + [1] * 5))
SelectionLoss(final='macro_f1', label_model='macro_f1', positive_class=1)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from transforms.core.selection import resolve_loss, row_losses

LABEL_MODELS = ("auto", "majority_vote", "triplet", "moments", "naive_bayes")
THRESHOLD_MODES = ("auto", "quantile", "none")
METRICS = ("auto", "accuracy", "balanced_accuracy", "macro_f1", "f1")
# With enough gold rows, ``label_model="auto"`` adopts the best candidate only if it beats the
# default (majority vote refined by the gold rows).
GOLD_CANDIDATES = ("triplet", "moments")
GOLD_DEFAULT = "naive_bayes"
# Candidate quantile levels for the gold-tuned global choice; 1.01 = no extension.
QUANTILE_GRID = (1.01, 0.9, 0.75, 0.5, 0.25, 0.1)
# With enough gold rows the level is chosen on them against this default (the gold-free level is
# ``LabelerConfig.threshold_quantile``: benchmarks/README.md, round 6).
GOLD_DEFAULT_QUANTILE = 0.5
NO_EXTENSION = np.float32(np.inf)
# Candidate end-model weights α, and the default (equal geometric pooling of the two models).
BLEND_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_BLEND = 0.5
# Without gold rows: α when the extension is in use (the gold-free check found that neighbours
# share the class, so the embeddings carry the task), else DEFAULT_BLEND. Chosen on the
# gold-free valid figures of the five dev sets (benchmarks/README.md, round 10).
GOLD_FREE_EXTENDED_BLEND = 0.75
# End-model training sets: weak targets of covered rows + the gold rows counted ``w`` times;
# ``inf`` = the gold rows alone (a plain classifier on the tuning rows). 1 is the default.
GOLD_WEIGHT_GRID = (1.0, 4.0, 16.0, np.inf)
DEFAULT_GOLD_WEIGHT = 1.0



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
        threshold_quantile: The quantile level used without enough gold rows (with them the
            level is chosen on the gold rows against :data:`GOLD_DEFAULT_QUANTILE`).
        min_gold: Gold rows needed before thresholds are tuned on them.
        lf_exceptions: The label model ignores a broad LF's vote where a narrow LF that fires
            only inside it votes another class (:mod:`transforms.core.lf_exceptions`).
        folds: Cross-validation folds over the gold rows.
        metric: The task metric every gold-row choice serves (:func:`selection_loss`):
            ``"accuracy"``, ``"balanced_accuracy"``, ``"macro_f1"``, ``"f1"`` (of
            ``positive_class``) or ``"auto"``: macro-F1 when the gold rows show a rare class
            (:func:`~transforms.core.selection.resolve_loss`), else accuracy.
        positive_class: The class whose F1 ``metric="f1"`` means (default 1 for binary tasks).
        end_model: Train the ridge end model on the embeddings of the fit sample.
        end_model_weight: ``α`` in ``probs ∝ label_model^(1-α) · end_model^α`` on covered rows;
            rows without any vote take the end model's probabilities. ``None``: chosen on the
            gold rows (see the module doc).
        end_model_gold_weight: The end model's training set: weak targets plus the gold rows
            counted this many times (``inf``: the gold rows alone). ``None``: chosen on the gold
            rows from :data:`GOLD_WEIGHT_GRID`.
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
    threshold_quantile: float = 0.75
    min_gold: int = 30
    lf_exceptions: bool = True
    folds: int = 5
    metric: str = "auto"
    positive_class: int | None = None
    end_model: bool = True
    end_model_weight: float | None = None
    end_model_gold_weight: float | None = None
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
        if self.end_model_gold_weight is not None and not self.end_model_gold_weight >= 1.0:
            raise ValueError(
                f"end_model_gold_weight={self.end_model_gold_weight} must be at least 1 "
                "(inf = the gold rows alone) or None (chosen on the gold rows)"
            )
        if self.metric not in METRICS:
            raise ValueError(f"metric={self.metric!r} is unknown: use one of {METRICS}")
        if self.positive_class is not None and not 0 <= self.positive_class < self.cardinality:
            raise ValueError(
                f"positive_class={self.positive_class} is not a class id: use 0..{self.cardinality - 1}"
            )
        if self.metric == "f1" and self.positive_class is None and self.cardinality != 2:
            raise ValueError(
                f"metric='f1' with {self.cardinality} classes needs positive_class: name the class "
                "whose F1 counts, or use metric='macro_f1'"
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
class SelectionLoss:
    """The per-row losses the gold-row choices minimise (:func:`selection_loss`).

    Attributes:
        final: Loss of the final labels (end-model recipe, ``α``, class offsets).
        label_model: Loss of the label model's posteriors (label-model kind, extension level).
        positive_class: The class of ``"f1"``.
    """

    final: str
    label_model: str
    positive_class: int = 1

    def of(self, proba: np.ndarray, gold: np.ndarray, stage: str = "final") -> np.ndarray:
        """Per-row losses of ``proba [g, k]`` at ``stage`` (``"final"`` or ``"label_model"``)."""
        loss = self.final if stage == "final" else self.label_model
        return row_losses(proba, gold, loss, self.positive_class)


def selection_loss(config: LabelerConfig, gold: np.ndarray) -> SelectionLoss:
    """The losses of the task ``config.metric`` on these gold labels.

    The final labels are scored by the metric's own per-row loss
    (:func:`~transforms.core.selection.resolve_loss`). The label model is an intermediate: it
    teaches the end model, so when the task metric is plain accuracy it is scored by the
    balanced error (a rare class must not be lost before the end model sees it).

    >>> selection_loss(LabelerConfig(), np.array([0] * 95 + [1] * 5))
    SelectionLoss(final='macro_f1', label_model='macro_f1', positive_class=1)
    >>> selection_loss(LabelerConfig(metric="accuracy"), np.arange(10) % 2).label_model
    'balanced_error'
    """
    final = resolve_loss(config.metric, gold, config.cardinality)
    positive = 1 if config.positive_class is None else config.positive_class
    return SelectionLoss(
        final=final, label_model="balanced_error" if final == "error" else final,
        positive_class=positive,
    )
