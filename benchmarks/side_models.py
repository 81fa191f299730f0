"""Snorkel and FlyingSquid label models, run in a side interpreter on saved label matrices.

Their pins (PyTorch, pandas, pgmpy) stay out of the project's environment: give a side
virtualenv with ``--snorkel-python`` (``python3.11 -m venv /tmp/snorkel-venv &&
/tmp/snorkel-venv/bin/pip install torch==2.13.0 snorkel==0.10.0 flyingsquid==0.0.0a0
pgmpy==0.1.26``); :func:`side_model_probs` runs this file there in worker mode. Without one,
they run in process when they import, else the baselines are skipped (and the benchmark says so).

- ``snorkel``: ``snorkel.labeling.model.LabelModel`` (defaults, 500 epochs, seed 0).
- ``flyingsquid``: ``flyingsquid.label_model.LabelModel`` fitted with ``triplet_median`` and the
  class balance of the tuning rows (binary tasks only: FlyingSquid's model is binary).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

KINDS = ("snorkel", "flyingsquid")


def _snorkel(cardinality: int, fit_votes: np.ndarray, balance: np.ndarray, predict: dict) -> dict:
    from snorkel.labeling.model import LabelModel

    model = LabelModel(cardinality=cardinality, verbose=False)
    model.fit(fit_votes.astype(np.int64), seed=0, n_epochs=500, progress_bar=False)
    return {name: model.predict_proba(v.astype(np.int64)) for name, v in predict.items()}


def _to_signed(votes: np.ndarray) -> np.ndarray:
    """WRENCH binary votes (0, 1, -1 = abstain) → FlyingSquid's (-1, +1, 0 = abstain)."""
    return np.where(votes < 0, 0, 2 * votes.astype(np.int64) - 1)


def _flyingsquid(cardinality: int, fit_votes: np.ndarray, balance: np.ndarray, predict: dict) -> dict:
    from flyingsquid.label_model import LabelModel

    model = LabelModel(fit_votes.shape[1])
    model.fit(_to_signed(fit_votes), class_balance=balance, solve_method="triplet_median")
    out = {}
    for name, votes in predict.items():
        p1 = np.asarray(model.predict_proba_marginalized(_to_signed(votes)), np.float64)
        out[name] = np.stack([1.0 - p1, p1], axis=1)
    return out


RUNNERS = {"snorkel": _snorkel, "flyingsquid": _flyingsquid}


def _importable(kind: str) -> bool:
    try:
        __import__("snorkel" if kind == "snorkel" else "flyingsquid")
    except ImportError:
        return False
    return True


def side_model_probs(
    kind: str,
    cardinality: int,
    fit_votes: np.ndarray,
    class_balance: np.ndarray,
    predict: dict[str, np.ndarray],
    python: str | None,
) -> dict[str, np.ndarray] | None:
    """Posteriors of each matrix in ``predict`` from the ``kind`` model fitted on ``fit_votes``;
    ``None`` when it is unavailable (or FlyingSquid on a multi-class task)."""
    if kind == "flyingsquid" and cardinality != 2:
        return None
    if _importable(kind):
        return RUNNERS[kind](cardinality, fit_votes, class_balance, predict)
    if python is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inp, cardinality=cardinality, fit_votes=fit_votes, class_balance=class_balance,
                 **{f"predict_{name}": v for name, v in predict.items()})
        subprocess.run([python, os.path.abspath(__file__), kind, inp, out], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with np.load(out) as result:
            return {name: result[name] for name in predict}


def worker(kind: str, inp: str, out: str) -> int:
    """``side_models.py KIND IN OUT``: fits and predicts on saved matrices."""
    with np.load(inp) as data:
        arrays = {name: data[name] for name in data.files}
    predict = {name[len("predict_"):]: v for name, v in arrays.items() if name.startswith("predict_")}
    result = RUNNERS[kind](int(arrays["cardinality"]), arrays["fit_votes"], arrays["class_balance"], predict)
    np.savez(out, **result)
    return 0


if __name__ == "__main__":
    sys.exit(worker(*sys.argv[1:4]))
