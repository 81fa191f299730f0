"""A cheap end model: L2-regularised softmax regression on embeddings, trained on soft labels.

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
from typing import Any

import numpy as np

from transforms.core.knn import l2_normalise


@dataclasses.dataclass(frozen=True, eq=False)
class EndModel:
    """Softmax regression on L2-normalised embeddings.

    Attributes:
        weights: ``float32 [d, k]``.
        bias: ``float32 [k]``.
        scale: Inputs are normalised then multiplied by ``scale``.
    """

    weights: np.ndarray
    bias: np.ndarray
    scale: float

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Returns ``float32 [n, k]`` class probabilities."""
        x = l2_normalise(embeddings) * self.scale
        if x.shape[1] != self.weights.shape[0]:
            raise ValueError(
                f"embeddings have dimension {x.shape[1]}; the end model was trained on "
                f"{self.weights.shape[0]}: use the same embedder"
            )
        return _softmax(x @ self.weights + self.bias).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict."""
        return {"weights": self.weights.tolist(), "bias": self.bias.tolist(), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EndModel":
        """Inverse of :meth:`to_dict`."""
        return cls(
            weights=np.asarray(d["weights"], np.float32),
            bias=np.asarray(d["bias"], np.float32),
            scale=float(d["scale"]),
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
