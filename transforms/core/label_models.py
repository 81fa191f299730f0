"""Label models fitted in closed form from :class:`~transforms.core.statistics.LabelStatistics`.

Every model is a table of per-LF log-weights ``W[j, c, y]`` (added to class ``y``'s score when
LF ``j`` votes ``c``; an abstain adds nothing) plus a log class prior, so prediction is a
vectorised weight lookup: ``score[y] = log π_y + Σ_j W[j, λ_j, y]``, ``probs = softmax(score)``.

* ``majority_vote``: ``W = identity``; the posterior is uniform over the tied top classes.
* ``triplet``: FlyingSquid's triplet method (Fu et al. 2020) in closed form. For binary tasks,
  with ``λ, Y ∈ {-1, +1}`` and abstain = 0, conditional independence gives
  ``E[λ_i λ_j] = a_i a_j`` with ``a_i = E[λ_i Y]``, hence
  ``|a_i| = sqrt(|E[λ_i λ_j] E[λ_i λ_k] / E[λ_j λ_k]|)`` aggregated over all triplets (median or
  mean). For ``k > 2`` the same is done on one-vs-rest indicators, one class at a time. The
  accuracy of LF ``i`` given that it votes is ``(1 + a_i / p_i) / 2`` (``p_i`` its coverage), and
  the naive-Bayes posterior with abstains uninformative is exact under the model.
* ``moments``: a class-conditional model fitted to the full one-hot co-vote matrix
  ``E[1{λ_i = c} 1{λ_j = c'}]`` (:attr:`LabelStatistics.joint`), as Snorkel's matrix completion:
  with ``θ_ic = P(Y | λ_i = c)`` and ``p_ic = P(λ_i = c)``, conditional independence gives
  ``P(λ_i = c, λ_j = c') = p_ic p_jc' Σ_y θ_ic[y] θ_jc'[y] / π_y`` for ``i ≠ j``. The ``θ`` are
  fitted by weighted least squares on these "lifts" (weight = expected co-vote count), so every
  class pair (not only one-vs-rest) and every unipolar LF informs the fit.
* ``naive_bayes``: majority vote's assumption as the unsupervised estimate (every LF has
  ``P(Y = c | λ_j = c) = DEFAULT_ACCURACY``), so with dev labels it is "majority vote that
  learns from the dev rows which LFs to trust" (:func:`fit_naive_bayes`).
* Dev labels (rows with gold in the fit sample) refine the estimates by Dirichlet shrinkage:
  ``P(Y | λ_j = c) = (gold counts + s · unsupervised estimate) / (gold votes + s)``, so an LF
  with few gold-labelled votes keeps its unsupervised estimate.

Degenerate inputs never give NaN: fewer than 3 LFs, an LF that never votes, or a triplet whose
denominator is 0 fall back to :data:`~transforms.core.lf_estimates.DEFAULT_ACCURACY`
(documented per function); ``n = 0`` raises.

>>> from transforms.core.statistics import LabelStatistics
>>> L = np.array([[1, 1, -1], [0, 1, 0], [-1, -1, -1], [0, 0, 0], [1, -1, 1]], np.int8)
>>> mv = majority_vote_model(num_lfs=3, cardinality=2)
>>> mv.predict_proba(L).tolist()
[[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]
>>> stats = LabelStatistics.empty(3, 2).add(L)
>>> model = fit_triplet(stats)
>>> model.predict_proba(L).argmax(axis=1).tolist()
[1, 0, 0, 0, 1]
>>> LabelModel.from_dict(model.to_dict()).predict_proba(L).round(4).tolist() == \\
...     model.predict_proba(L).round(4).tolist()
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from transforms.core.lf_exceptions import apply_exceptions
from transforms.core.lf_estimates import (
    default_precision,
    estimate_class_balance,
    moment_precision,
    precision_tables,
    triplet_accuracies,
    vote_shares,
)
from transforms.core.statistics import LabelStatistics

_ROWS_PER_CHUNK = 1 << 15


@dataclasses.dataclass(frozen=True, eq=False)
class LabelModel:
    """A fitted label model: per-LF weight tables and a class prior.

    Attributes:
        kind: ``"majority_vote"``, ``"triplet"`` or ``"moments"``.
        cardinality: ``k``.
        class_balance: ``float64 [k]`` prior ``π``.
        weights: ``float64 [m, k, k]``; ``W[j, c, y]`` is added to class ``y`` when LF ``j``
            votes ``c``.
        accuracies: ``float64 [m]`` estimated P(vote is correct | LF votes), for the analysis.
        hard: If True (majority vote) the posterior is uniform over the top-scoring classes.
        prior: ``float64 [m, k, k]`` the unsupervised ``P(Y | λ_j = c)`` before the gold rows
            refined it (``None`` for majority vote); kept for cross-validation on gold rows.
        exceptions: ``int64 [p, 2]`` exception pairs ``(narrow, broad)``: the broad LF's vote
            is ignored where the narrow one votes another class
            (:mod:`transforms.core.lf_exceptions`); ``None``: none.
    """

    kind: str
    cardinality: int
    class_balance: np.ndarray
    weights: np.ndarray
    accuracies: np.ndarray
    hard: bool = False
    prior: np.ndarray | None = None
    exceptions: np.ndarray | None = None

    @property
    def num_lfs(self) -> int:
        """``m``."""
        return int(self.weights.shape[0])

    def scores(self, votes: np.ndarray) -> np.ndarray:
        """Returns the unnormalised log-scores ``float64 [n, k]`` of a label matrix."""
        votes = np.asarray(votes)
        if votes.ndim != 2 or votes.shape[1] != self.num_lfs:
            raise ValueError(
                f"votes has shape {votes.shape}; this model was fitted on {self.num_lfs} LFs"
            )
        if self.exceptions is not None:
            votes = apply_exceptions(votes, self.exceptions)
        k = self.cardinality
        prior = np.zeros(k) if self.hard else np.log(self.class_balance)
        out = np.empty((votes.shape[0], k), np.float64)
        # float64: a row's score must not depend on the batch it is in (BLAS kernels for
        # different batch shapes sum in different orders; float32 shows it in the last bits).
        tables = [self.weights[:, c, :].astype(np.float64) for c in range(k)]
        for start in range(0, votes.shape[0], _ROWS_PER_CHUNK):
            block = votes[start : start + _ROWS_PER_CHUNK]
            acc = np.zeros((block.shape[0], k), np.float64)
            for c in range(k):
                acc += (block == c).astype(np.float64) @ tables[c]
            out[start : start + _ROWS_PER_CHUNK] = acc + prior
        return out

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        """Returns the posterior ``float32 [n, k]`` for ``int [n, m]`` votes."""
        s = self.scores(votes)
        if self.hard:
            top = np.isclose(s, s.max(axis=1, keepdims=True))
            return (top / top.sum(axis=1, keepdims=True)).astype(np.float32)
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict (an unknown accuracy, NaN, is written as ``null``)."""
        return {
            "kind": self.kind,
            "cardinality": self.cardinality,
            "class_balance": self.class_balance.tolist(),
            "weights": self.weights.tolist(),
            "accuracies": [None if np.isnan(a) else float(a) for a in self.accuracies],
            "hard": self.hard,
            "prior": None if self.prior is None else self.prior.tolist(),
            "exceptions": None if self.exceptions is None else self.exceptions.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelModel":
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=d["kind"],
            cardinality=int(d["cardinality"]),
            class_balance=np.asarray(d["class_balance"], np.float64),
            weights=np.asarray(d["weights"], np.float64),
            accuracies=np.array(
                [np.nan if a is None else a for a in d["accuracies"]], np.float64
            ),
            hard=bool(d["hard"]),
            prior=None if d.get("prior") is None else np.asarray(d["prior"], np.float64),
            exceptions=(
                None if d.get("exceptions") is None
                else np.asarray(d["exceptions"], np.int64).reshape(-1, 2)
            ),
        )


def majority_vote_model(num_lfs: int, cardinality: int) -> LabelModel:
    """Returns the majority-vote baseline (ties, and rows without votes, are uniform)."""
    weights = np.tile(np.eye(cardinality)[None], (num_lfs, 1, 1))
    return LabelModel(
        kind="majority_vote",
        cardinality=cardinality,
        class_balance=np.full(cardinality, 1.0 / cardinality),
        weights=weights,
        accuracies=np.full(num_lfs, np.nan),
        hard=True,
    )


def shrink_with_gold(
    prec: np.ndarray, votes: np.ndarray, gold: np.ndarray, strength: float
) -> np.ndarray:
    """Dirichlet posterior mean of ``P(Y | λ_j = c)`` given gold-labelled rows.

    Args:
        prec: ``[m, k, k]`` prior (unsupervised) estimate.
        votes: ``int [g, m]`` votes of the gold rows (extended, as the model will see them).
        gold: ``int [g]`` their gold classes.
        strength: Pseudo-count ``s`` of the prior; ``inf`` ignores the gold rows.
    """
    if not np.isfinite(strength) or votes.shape[0] == 0:
        return prec
    return shrink_with_counts(prec, gold_vote_counts(votes, gold, prec.shape[1]), strength)


def gold_vote_counts(votes: np.ndarray, gold: np.ndarray, cardinality: int) -> np.ndarray:
    """``float64 [m, k, k]``: gold rows where LF ``j`` votes ``c`` and the gold class is ``y``."""
    votes, gold = np.asarray(votes), np.asarray(gold)
    m, k = votes.shape[1], cardinality
    rows, cols = np.nonzero(votes >= 0)
    code = (cols * k + votes[rows, cols].astype(np.int64)) * k + gold[rows]
    return np.bincount(code, minlength=m * k * k).reshape(m, k, k).astype(np.float64)


def shrink_with_counts(prec: np.ndarray, counts: np.ndarray, strength: float) -> np.ndarray:
    """``(counts + s · prec) / (Σ_y counts + s)``: the Dirichlet posterior mean (``s = inf``:
    ``prec``)."""
    if not np.isfinite(strength):
        return prec
    return (counts + strength * prec) / (counts.sum(axis=2, keepdims=True) + strength)


def gold_class_balance(gold: np.ndarray, cardinality: int) -> np.ndarray:
    """Class balance of gold labels with add-one smoothing."""
    counts = np.bincount(gold, minlength=cardinality).astype(np.float64) + 1.0
    return counts / counts.sum()


def model_from_precision(
    kind: str,
    prec: np.ndarray,
    class_balance: np.ndarray,
    accuracies: np.ndarray,
    prior: np.ndarray | None = None,
) -> LabelModel:
    """Builds the naive-Bayes weight table ``W = log P(Y | λ_j = c) - log π``."""
    return LabelModel(
        kind=kind,
        cardinality=prec.shape[1],
        class_balance=class_balance,
        weights=naive_bayes_weights(prec, class_balance),
        accuracies=accuracies,
        prior=prior,
    )


def naive_bayes_weights(prec: np.ndarray, class_balance: np.ndarray) -> np.ndarray:
    """``W = log P(Y | λ_j = c) - log π`` with ``P`` floored at 1e-3 and renormalised."""
    prec = np.clip(prec, 1e-3, 1.0)
    prec = prec / prec.sum(axis=-1, keepdims=True)
    return np.log(prec) - np.log(class_balance)


def lf_accuracies(stats: LabelStatistics, prec: np.ndarray) -> np.ndarray:
    """Estimated P(vote is correct | LF votes) ``[m]`` (NaN for an LF that never votes)."""
    counts = stats.class_counts.astype(np.float64)
    voted = counts.sum(axis=1)
    diag = np.einsum("jcc->jc", prec)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(voted > 0, (counts * diag).sum(axis=1) / np.maximum(voted, 1), np.nan)


def fit_triplet(
    stats: LabelStatistics,
    *,
    aggregation: str = "median",
    class_balance: np.ndarray | None = None,
    gold_votes: np.ndarray | None = None,
    gold: np.ndarray | None = None,
    gold_strength: float = 10.0,
) -> LabelModel:
    """Fits the triplet label model from statistics (and, optionally, gold-labelled rows).

    Args:
        stats: Statistics of the (extended) label matrix of the whole corpus.
        aggregation: ``"median"`` (robust, default) or ``"mean"`` over triplets.
        class_balance: ``[k]`` prior; ``None`` = from the gold rows if any, else estimated.
        gold_votes: ``int [g, m]`` votes of gold-labelled rows, or ``None``.
        gold: ``int [g]`` their labels.
        gold_strength: Pseudo-count of the unsupervised estimate against gold votes.

    Returns:
        A :class:`LabelModel` of kind ``"triplet"``.

    Raises:
        ValueError: if ``stats.n == 0``.
    """
    if stats.n == 0:
        raise ValueError("cannot fit a label model on 0 rows: the statistics are empty")
    acc = triplet_accuracies(stats, aggregation)
    has_gold = gold is not None and gold_votes is not None and len(gold) > 0
    pi = resolve_class_balance(stats, class_balance, gold if has_gold else None)
    if pi is None:
        pi = estimate_class_balance(stats, acc)
    prior = precision_tables(acc, pi, vote_shares(stats))
    prec = prior
    if has_gold:
        prec = shrink_with_gold(prior, np.asarray(gold_votes), np.asarray(gold), gold_strength)
    return model_from_precision("triplet", prec, pi, lf_accuracies(stats, prec), prior)


def resolve_class_balance(
    stats: LabelStatistics, class_balance: np.ndarray | None, gold: np.ndarray | None
) -> np.ndarray | None:
    """The given prior (validated), else the gold rows' balance, else ``None`` (estimate it).

    Raises:
        ValueError: if a given prior is not ``k`` positive values summing to 1.
    """
    k = stats.cardinality
    if class_balance is not None:
        pi = np.asarray(class_balance, np.float64)
        if pi.shape != (k,) or np.any(pi <= 0) or not np.isclose(pi.sum(), 1.0):
            raise ValueError(
                f"class_balance={pi.tolist()} is invalid: give {k} positive values summing to 1"
            )
        return pi
    if gold is not None and len(gold) > 0:
        return gold_class_balance(np.asarray(gold), k)
    return None


def fit_moments(
    stats: LabelStatistics,
    *,
    class_balance: np.ndarray | None = None,
    gold_votes: np.ndarray | None = None,
    gold: np.ndarray | None = None,
    gold_strength: float = 10.0,
) -> LabelModel:
    """Fits the class-conditional ``moments`` model (module doc) from statistics (+ gold rows).

    Without a given or gold class balance ``π`` is uniform.

    Raises:
        ValueError: if ``stats.n == 0`` or ``class_balance`` is invalid.
    """
    return _fit_with_gold_shrinkage(
        "moments", moment_precision, stats, class_balance, gold_votes, gold, gold_strength
    )


def fit_naive_bayes(
    stats: LabelStatistics,
    *,
    class_balance: np.ndarray | None = None,
    gold_votes: np.ndarray | None = None,
    gold: np.ndarray | None = None,
    gold_strength: float = 10.0,
) -> LabelModel:
    """Naive Bayes whose unsupervised estimate is majority vote's assumption, refined by gold.

    Every LF starts at ``P(Y = c | λ_j = c) =`` :data:`~transforms.core.lf_estimates.DEFAULT_ACCURACY` (equal weights, as
    majority vote; :func:`default_precision`), and the gold rows move each LF's table by
    Dirichlet shrinkage. Where the unsupervised models are worse than majority vote (sparse,
    unipolar multi-class LFs) this is "majority vote that learns from the gold rows which LFs
    to trust".

    Raises:
        ValueError: if ``stats.n == 0`` or ``class_balance`` is invalid.
    """
    return _fit_with_gold_shrinkage(
        "naive_bayes", default_precision, stats, class_balance, gold_votes, gold, gold_strength
    )


def _fit_with_gold_shrinkage(
    kind: str,
    unsupervised_precision: Callable[[LabelStatistics, np.ndarray], np.ndarray],
    stats: LabelStatistics,
    class_balance: np.ndarray | None,
    gold_votes: np.ndarray | None,
    gold: np.ndarray | None,
    gold_strength: float,
) -> LabelModel:
    """An unsupervised precision table (uniform prior without a class balance), shrunk toward
    the gold rows' counts: the common body of :func:`fit_moments` and :func:`fit_naive_bayes`."""
    if stats.n == 0:
        raise ValueError("cannot fit a label model on 0 rows: the statistics are empty")
    pi = resolve_class_balance(stats, class_balance, gold)
    if pi is None:
        pi = np.full(stats.cardinality, 1.0 / stats.cardinality)
    prior = unsupervised_precision(stats, pi)
    prec = prior
    if gold is not None and gold_votes is not None and len(gold) > 0:
        prec = shrink_with_gold(prior, np.asarray(gold_votes), np.asarray(gold), gold_strength)
    return model_from_precision(kind, prec, pi, lf_accuracies(stats, prec), prior)
