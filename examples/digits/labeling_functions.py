"""LFs for the digits example: 0 vs 1 from simple statistics of the 8x8 image.

Each row is a non-text document: the LF sees the row's other fields, here ``x.pixels`` (64
intensities in [0, 1], row-major), not a text (``x.text`` is ``""``). The thresholds are round
numbers picked by eye from a few images, not fitted to the gold labels.
"""

import numpy as np

from transforms import ABSTAIN, labeling_function

CLASS_NAMES = ("ZERO", "ONE")
ZERO, ONE = 0, 1


def _image(x) -> np.ndarray:
    return np.asarray(x.pixels, dtype=np.float32).reshape(8, 8)


def _centre_ink(x) -> float:
    return float(_image(x)[2:6, 3:5].mean())


def _inked_columns(x) -> int:
    return int((_image(x).max(axis=0) > 0.5).sum())


@labeling_function()
def hollow_centre(x):
    """A zero has a hole in the middle."""
    return ZERO if _centre_ink(x) < 0.1 else ABSTAIN


@labeling_function()
def solid_centre(x):
    """A one has its stroke down the middle."""
    return ONE if _centre_ink(x) > 0.9 else ABSTAIN


@labeling_function()
def narrow(x):
    """A one is narrow: at most two columns with strong ink."""
    return ONE if _inked_columns(x) <= 2 else ABSTAIN
