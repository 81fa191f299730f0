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

The task metric (``metric``, :func:`selection_loss`): every choice below minimises a per-row
loss whose mean is exactly ``1 -`` the metric on the gold rows scored
(:func:`~transforms.core.selection.row_losses`): the error for ``"accuracy"``, the balanced
error, ``1 - macro-F1`` or ``1 - F1`` of ``positive_class``. ``"auto"`` is imbalance-aware:
macro-F1 for a binary task whose gold rows show a class below 20 %, else accuracy. The label
model (an intermediate that teaches the end model) is scored by the balanced error when the
task metric is accuracy. Each choice compares candidates with a default on out-of-fold
predictions of the same gold rows and adopts the best only if it wins by one standard error
(:func:`~transforms.core.selection.choose`); a candidate that predicts one class for nearly
every gold row while the gold rows show ≥ 5 % of another class
(:func:`~transforms.core.selection.collapses`) is never adopted.

Default thresholds (``thresholds="auto"``): LF ``j``'s threshold is the ``q``-quantile of the
nearest-voter similarity among the rows ``j`` itself voted on ("extend ``j`` as far as its own
voters are from each other"), with ``q = threshold_quantile`` (0.75) when there are fewer than
``min_gold`` gold rows; with enough gold rows each level of :data:`QUANTILE_GRID` (which
includes "no extension") is scored by ``folds``-fold cross-validation of the label model (of
the kind chosen at the default level :data:`GOLD_DEFAULT_QUANTILE`, 0.5) on the gold rows. (An
unverified extension is kept shorter: the gold-free level was chosen on the five dev sets'
valid splits, which a gold-free fit never sees.) Without gold rows the extension is also
checked (:func:`~transforms.core.extension_check.extension_agrees`): when the votes it would
add do not agree with the other LFs beyond chance (kappa not positive by two standard errors),
the embeddings do not carry the task and there is no extension.

Default label model (``label_model="auto"``): with enough gold rows, the better of ``triplet``
and ``moments`` if it beats the default ``naive_bayes``: majority vote's assumption (every LF
equally accurate) refined LF by LF by the gold rows — unlike hard majority vote its posteriors
are soft, so the end model can overrule a vote the gold rows show to be unreliable. Without
enough gold rows: ``triplet`` for binary tasks whose LFs overlap enough for the triplets to
identify at least 3 LFs' accuracies (:func:`~transforms.core.lf_estimates.triplet_identified`;
LFs that never overlap give majority vote), and majority vote for multi-class ones (the
unsupervised multi-class estimates are worse than majority vote on TREC, SemEval and ChemProt:
``benchmarks/README.md``).
Whatever the kind, with ``lf_exceptions`` the model ignores a broad LF's vote where a narrow LF
that fires only inside it votes another class (:mod:`~transforms.core.lf_exceptions`, pairs
found in the sample's own votes, no gold row read).

End model, its recipe and weight (:func:`fit_end_model`): a closed-form ridge classifier on the
sample's embeddings. Candidate training sets (:data:`GOLD_WEIGHT_GRID`): the label model's
posteriors of covered rows plus the gold rows counted ``w`` = 1 (default), 4 or 16 times, or the
gold rows alone (a plain classifier on the tuning rows, "Sup-valid"); each is crossed with the
blend weights ``α`` of :data:`BLEND_GRID` (final ``probs ∝ label_model^(1-α) · end_model^α`` on
covered rows, the end model alone elsewhere). Every pair is scored on out-of-fold final
probabilities of the gold rows (label-model posteriors refined without the row's fold, blended
with an end model trained without it), against the default ``(w = 1, α = 0.5)``. When the gold
rows carry more signal than the LFs, the gold-heavy recipes win; when the LFs are good, the
default stays. Without enough gold rows: ``w = 1``; ``α = 0.75`` when the extension is in use
(it passed the gold-free check), else ``0.5`` (:func:`~transforms.core.end_model_fit.gold_free_blend`).

Class offsets (``class_offsets=True``): log offsets ``b [k]`` multiply the final probabilities
by ``exp(b)`` (a decision-threshold / class-prior correction: an end model trained on soft
label-model targets under-predicts a rare class). They are searched on the chosen recipe's
out-of-fold final probabilities by :func:`~transforms.core.selection.fit_offsets` and kept only
if the *nested* cross-validated loss of that search beats no offsets by the same test. Without
enough gold rows they make the sample's final labels take each class at the label model's
estimated class balance (:func:`~transforms.core.selection.prior_matching_offsets`; not for
majority vote, whose uniform prior is not an estimate).

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

from transforms.core.end_model import EndModel, blend, log_probs
from transforms.core.end_model_fit import EndModelData, choose_offsets, fit_end_model
from transforms.core.extension import extend_votes
from transforms.core.extension_check import extension_agrees
from transforms.core.ids import stable_hash
from transforms.core.label_model_selection import (
    ScoredModel,
    fit_label_model,
    sample_exceptions,
    select_label_model,
)
from transforms.core.label_models import LabelModel
from transforms.core.labeler_config import (
    BLEND_GRID,
    DEFAULT_BLEND,
    DEFAULT_GOLD_WEIGHT,
    GOLD_CANDIDATES,
    GOLD_FREE_EXTENDED_BLEND,
    GOLD_DEFAULT,
    GOLD_DEFAULT_QUANTILE,
    GOLD_WEIGHT_GRID,
    LABEL_MODELS,
    METRICS,
    NO_EXTENSION,
    QUANTILE_GRID,
    THRESHOLD_MODES,
    FitSample,
    LabelerConfig,
    SelectionLoss,
    selection_loss,
)
from transforms.core.selection import choose, collapses
from transforms.core.statistics import LabelStatistics
from transforms.core.votes import ABSTAIN

__all__ = [
    "BLEND_GRID", "DEFAULT_BLEND", "DEFAULT_GOLD_WEIGHT", "GOLD_CANDIDATES", "GOLD_DEFAULT",
    "GOLD_DEFAULT_QUANTILE", "GOLD_FREE_EXTENDED_BLEND",
    "GOLD_WEIGHT_GRID", "LABEL_MODELS", "METRICS", "QUANTILE_GRID", "THRESHOLD_MODES",
    "EndModelData", "FitSample", "FittedLabeler", "LabelBatch", "LabelerConfig", "ScoredModel",
    "SelectionLoss", "blend", "choose_offsets", "choose_thresholds", "fit_end_model",
    "fit_label_model", "fit_labeler", "fit_models", "label_batch", "log_probs", "quantile_thresholds", "sample_priority",
    "sample_exceptions", "select_fit_sample", "select_label_model", "selection_loss",
]


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
    out = np.full(m, NO_EXTENSION, np.float32)
    if level > 1.0:
        return out
    for j in range(m):
        sims = nn_sim[(votes[:, j] != ABSTAIN) & np.isfinite(nn_sim[:, j]), j]
        if sims.size >= 2:
            out[j] = np.quantile(sims, level)
    return out


def choose_thresholds(sample: FitSample, config: LabelerConfig) -> np.ndarray:
    """Chooses per-LF extension thresholds ``float32 [m]`` (see the module doc)."""
    m = sample.votes.shape[1]
    if not config.extension or config.thresholds == "none":
        return np.full(m, NO_EXTENSION, np.float32)
    gold = sample.gold >= 0
    if config.thresholds == "quantile" or gold.sum() < config.min_gold:
        thresholds = quantile_thresholds(sample.votes, sample.nn_sim, config.threshold_quantile)
        if config.thresholds == "auto" and not extension_agrees(sample, thresholds, config):
            return np.full(m, NO_EXTENSION, np.float32)
        return thresholds
    levels = dict.fromkeys((GOLD_DEFAULT_QUANTILE, *QUANTILE_GRID))
    loss, collapsed = {}, set()
    exceptions = sample_exceptions(sample, config)
    for level in levels:
        thresholds = quantile_thresholds(sample.votes, sample.nn_sim, level)
        extended = extend_votes(sample.votes, sample.nn_sim, sample.nn_vote, thresholds)
        stats = LabelStatistics.empty(m, config.cardinality).add(extended)
        scored = select_label_model(stats, extended[gold], sample.gold[gold], config, exceptions)
        loss[level] = scored.loss
        if collapses(scored.proba, sample.gold[gold]):
            collapsed.add(level)
        # The kind chosen at the default level scores the other levels (half the fits).
        config = dataclasses.replace(config, label_model=scored.model.kind)
    best = choose(loss, GOLD_DEFAULT_QUANTILE, collapsed)
    return quantile_thresholds(sample.votes, sample.nn_sim, best)


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
