"""A cheap end model on embeddings, trained on soft labels: closed-form ridge
(:func:`fit_ridge_classifier`, the labeler's) or softmax regression (:func:`fit_softmax_regression`,
the benchmarks' transfer baselines).

Trained on the bounded fit sample (label-model posteriors of covered rows, plus gold rows) and
applied per row, it costs the pipeline no extra shuffle, and it labels rows no LF covers.

>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(200, 5)).astype(np.float32)
>>> y = (x[:, 0] > 0).astype(int)
>>> model = fit_softmax_regression(x, np.eye(2)[y], l2=1e-3)
>>> float((model.predict_proba(x).argmax(1) == y).mean()) > 0.95
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from transforms.core.knn import l2_normalise


@dataclasses.dataclass(frozen=True, eq=False)
class EndModel:
    """Softmax regression on L2-normalised embeddings.

    Attributes:
        weights: ``float32 [d, k]``.
        bias: ``float32 [k]``.
        scale: Inputs are normalised then multiplied by ``scale``.
        weight: ``α``, the weight of this model against the label model on covered rows
            (chosen by the labeler at fit time).
        offsets: ``float64 [k]`` log class offsets added to the labeler's final (blended)
            log-probabilities on every row (chosen by the labeler on the gold rows; ``None`` =
            no offsets).
        gold_weight: How the training set counted the gold rows against the weak targets of
            covered rows (``inf``: trained on the gold rows alone).
    """

    weights: np.ndarray
    bias: np.ndarray
    scale: float
    weight: float = 1.0
    offsets: np.ndarray | None = None
    gold_weight: float = 1.0

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Returns ``float32 [n, k]`` class probabilities."""
        x = l2_normalise(embeddings) * self.scale
        if x.shape[1] != self.weights.shape[0]:
            raise ValueError(
                f"embeddings have dimension {x.shape[1]}; the end model was trained on "
                f"{self.weights.shape[0]}: use the same embedder"
            )
        logits = x.astype(np.float64) @ self.weights.astype(np.float64) + self.bias
        return _softmax(logits).astype(np.float32)

    def predict_augmented(self, xb: np.ndarray) -> np.ndarray:
        """``float64 [n, k]`` probabilities of rows already passed through :func:`augment` with
        this model's scale (the cross-validation inside a fit)."""
        logits = xb[:, :-1] @ self.weights.astype(np.float64) + self.bias
        return _softmax(logits)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        return {
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
            "scale": self.scale,
            "weight": self.weight,
            "offsets": None if self.offsets is None else self.offsets.tolist(),
            "gold_weight": "inf" if np.isinf(self.gold_weight) else self.gold_weight,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EndModel":
        """Inverse of :meth:`to_dict`."""
        return cls(
            weights=np.asarray(d["weights"], np.float32),
            bias=np.asarray(d["bias"], np.float32),
            scale=float(d["scale"]),
            weight=float(d.get("weight", 1.0)),
            offsets=None if d.get("offsets") is None else np.asarray(d["offsets"], np.float64),
            gold_weight=float(d.get("gold_weight", 1.0)),
        )


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_softmax_regression(
    embeddings: np.ndarray,
    targets: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    l2: float = 1e-4,
    scale: float = 1.0,
    iterations: int = 300,
    init: EndModel | None = None,
) -> EndModel:
    """Fits softmax regression to soft targets by Nesterov-accelerated gradient descent.

    The loss is the weighted mean cross-entropy plus ``l2/2 · ||W||²``; with unit-norm inputs
    the step ``1 / (scale² + l2)`` is safe, so there is no learning rate to tune.

    Args:
        embeddings: ``float [s, d]``.
        targets: ``float [s, k]`` rows summing to 1 (posteriors or one-hot gold).
        sample_weight: ``float [s]``; default all ones.
        l2: L2 penalty on the weights.
        scale: Multiplier of the normalised inputs (a temperature).
        iterations: Gradient steps.
        init: A model to start from (a warm start needs fewer ``iterations``).

    Returns:
        The fitted :class:`EndModel`.

    Raises:
        ValueError: if there are no rows or the shapes disagree.
    """
    x = l2_normalise(embeddings) * np.float32(scale)
    t = np.asarray(targets, np.float32)
    if x.shape[0] == 0 or t.shape[0] != x.shape[0]:
        raise ValueError(
            f"need at least one training row and one target per row; got {x.shape[0]} rows "
            f"and {t.shape[0]} targets"
        )
    w = np.ones(x.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    w = (w / w.sum()).astype(np.float32)
    d, k = x.shape[1], t.shape[1]
    params = np.zeros((d + 1, k), np.float32)
    if init is not None:
        params[:d], params[d] = init.weights, init.bias
    xb = np.hstack([x, np.ones((x.shape[0], 1), np.float32)])
    step = np.float32(1.0 / (scale**2 + 1.0 + l2))
    velocity = params.copy()
    for it in range(iterations):
        p = _softmax(xb @ velocity)
        grad = xb.T @ ((p - t) * w[:, None])
        grad[:d] += np.float32(l2) * velocity[:d]
        new = velocity - step * grad
        velocity = new + np.float32(it / (it + 3)) * (new - params)
        params = new
    return EndModel(
        weights=params[:d].astype(np.float32), bias=params[d].astype(np.float32), scale=scale
    )


# Ridge penalties tried (relative to the mean eigenvalue of the Gram matrix) and temperatures.
RIDGE_GRID = tuple(10.0 ** np.arange(-4.0, 1.5, 1.0))
TEMPERATURE_GRID = tuple(10.0 ** np.arange(0.0, 2.51, 0.25))


def augment(embeddings: np.ndarray, scale: float) -> np.ndarray:
    """``float64 [s, d+1]``: the rows L2-normalised, times ``scale``, with a bias column of 1."""
    x = l2_normalise(embeddings).astype(np.float64) * scale
    return np.hstack([x, np.ones((x.shape[0], 1))])


@dataclasses.dataclass(frozen=True, eq=False)
class RidgeRows:
    """A group of training rows of :func:`ridge_on_rows` with its sufficient statistics.

    Attributes:
        augmented: ``float64 [s, d+1]`` rows through :func:`augment`.
        targets: ``float64 [s, k]``.
        gram: ``augmented.T @ augmented``.
        cross: ``augmented.T @ targets``.
        total: ``Σ targets²``.
    """

    augmented: np.ndarray
    targets: np.ndarray
    gram: np.ndarray
    cross: np.ndarray
    total: float

    @classmethod
    def of(cls, augmented: np.ndarray, targets: np.ndarray) -> "RidgeRows":
        """Computes the statistics of ``augmented [s, d+1]`` rows with ``targets [s, k]``."""
        t = np.asarray(targets, np.float64)
        return cls(augmented, t, augmented.T @ augmented, augmented.T @ t, float((t * t).sum()))


def fit_ridge_classifier(embeddings: np.ndarray, targets: np.ndarray, *, scale: float = 1.0) -> EndModel:
    """Closed-form end model: ridge regression on (soft) targets, then a softmax temperature
    (:func:`ridge_on_rows` on one group of rows).

    Args:
        embeddings: ``float [s, d]``.
        targets: ``float [s, k]`` rows summing to 1.
        scale: Multiplier of the normalised inputs (kept in :class:`EndModel`).

    Raises:
        ValueError: if there are no rows or the shapes disagree.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 5)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(int)
    >>> model = fit_ridge_classifier(x, np.eye(2)[y])
    >>> float((model.predict_proba(x).argmax(1) == y).mean()) > 0.95
    True
    """
    t = np.asarray(targets, np.float64)
    if len(embeddings) == 0 or t.shape[0] != len(embeddings):
        raise ValueError(
            f"need at least one training row and one target per row; got {len(embeddings)} rows "
            f"and {t.shape[0]} targets"
        )
    return ridge_on_rows([(RidgeRows.of(augment(embeddings, scale), t), 1.0)], scale)


def ridge_on_rows(groups: Sequence[tuple[RidgeRows, float]], scale: float) -> EndModel:
    """Ridge regression on groups of rows, each counted ``weight`` times, then a temperature.

    One eigendecomposition of the weighted Gram matrix serves every penalty of
    :data:`RIDGE_GRID` (relative to the mean eigenvalue); the penalty with the smallest
    generalised cross-validation error ``RSS / (1 - tr(H)/s)²`` wins (RSS in closed form in the
    eigenbasis), and the temperature of :data:`TEMPERATURE_GRID` with the smallest weighted
    cross-entropy against the targets turns the scores into probabilities. No iteration, no
    learning rate; a group's statistics are computed once and shared by every fit that uses it
    (the labeler's cross-validation refits on the same weak rows many times).

    Args:
        groups: ``(rows, weight)`` pairs; a row of weight ``w`` counts as ``w`` copies of itself.
        scale: The input scale the rows were augmented with (kept in :class:`EndModel`).
    """
    gram = sum(weight * rows.gram for rows, weight in groups)
    cross = sum(weight * rows.cross for rows, weight in groups)
    total = sum(weight * rows.total for rows, weight in groups)
    s = sum(weight * rows.targets.shape[0] for rows, weight in groups)
    if s == 0:
        raise ValueError("the end model has no rows to fit on: give it weak or gold rows")
    d = gram.shape[0] - 1
    evals, evecs = np.linalg.eigh(gram)
    evals = np.maximum(evals, 0.0)
    rotated = evecs.T @ cross  # [d+1, k]
    power = (rotated**2).sum(axis=1)  # [d+1]
    unit = evals.mean()
    best = (np.inf, 0.0)
    for penalty in RIDGE_GRID:
        shrink = 1.0 / (evals + penalty * unit)
        # RSS = |t|² - 2 Σ r²/(e+λ) + Σ e r²/(e+λ)² in the eigenbasis (weighted rows).
        rss = total - float((power * shrink * (2.0 - evals * shrink)).sum())
        dof = float((evals * shrink).sum())
        gcv = max(rss, 0.0) / max(1.0 - dof / s, 1e-6) ** 2
        if gcv < best[0]:
            best = (gcv, penalty)
    params = evecs @ (rotated / (evals + best[1] * unit)[:, None])
    losses = np.zeros(len(TEMPERATURE_GRID))
    for rows, weight in groups:
        scores = rows.augmented @ params
        scores -= scores.mean(axis=1, keepdims=True)
        for i, tau in enumerate(TEMPERATURE_GRID):
            log_p = np.log(np.maximum(_softmax(tau * scores), 1e-12))
            losses[i] -= weight * float((rows.targets * log_p).sum())
    tau = TEMPERATURE_GRID[int(np.argmin(losses))]
    return EndModel(
        weights=(tau * params[:d]).astype(np.float32),
        bias=(tau * params[d]).astype(np.float32),
        scale=scale,
    )


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
