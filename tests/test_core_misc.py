"""ids, kNN, metrics, text templates and the LF analysis."""

import numpy as np
import pytest

from transforms.core.analysis import LF_TABLE_KEYS, lf_table
from transforms.core.ids import content_id, stable_hash
from transforms.core.knn import exact_knn
from transforms.core.metrics import accuracy, macro_f1
from transforms.core.statistics import LabelStatistics
from transforms.core.text_template import RELATION_TEMPLATE, render_text


def test_ids_are_stable_and_distinct():
    assert stable_hash("a") == 0x40F89E395B66422F  # blake2b-64 of "a", fixed forever
    assert stable_hash("a") != stable_hash("b")
    assert content_id("a") == "ca978112ca1bbdca"


@pytest.mark.parametrize("block_size", [1, 7, 4096])
def test_exact_knn_matches_brute_force(block_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    x[10] = x[3]  # exact duplicate: tie broken by index
    idx, sims = exact_knn(x, 5, block_size=block_size)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    full = xn @ xn.T
    np.fill_diagonal(full, -np.inf)
    for i in range(50):
        order = sorted(range(50), key=lambda j: (-round(float(full[i, j]), 5), j))[:5]
        assert idx[i].tolist() == order
    assert (np.diff(sims, axis=1) <= 1e-6).all()
    with pytest.raises(ValueError, match="k=50"):
        exact_knn(x, 50)


def test_metrics_against_hand_counts():
    assert accuracy(np.array([1, 1]), np.array([1, 0])) == 0.5
    assert macro_f1(np.array([0, 0, 1]), np.array([0, 0, 1]), 2) == 1.0
    with pytest.raises(ValueError, match="empty"):
        accuracy(np.array([]), np.array([]))


def test_render_text_relation_template():
    row = {"text": "t", "entity1": "A", "entity2": "B", "span1": [0, 1]}
    assert render_text(row, RELATION_TEMPLATE) == "A [SEP] B [SEP] t"
    with pytest.raises(ValueError, match="'entity2'"):
        render_text({"text": "t", "entity1": "A"}, RELATION_TEMPLATE)
    with pytest.raises(ValueError, match="positional"):
        render_text(row, "{} {text}")


def test_lf_table_matches_row_counts():
    rng = np.random.default_rng(0)
    votes = np.where(rng.random((200, 4)) < 0.3, rng.integers(0, 3, (200, 4)), -1).astype(np.int8)
    gold = rng.integers(0, 3, 50)
    rows = lf_table(list("abcd"), LabelStatistics.empty(4, 3).add(votes), gold_votes=votes[:50], gold=gold)
    for j, row in enumerate(rows):
        assert tuple(row) == LF_TABLE_KEYS
        voted = votes[:, j] >= 0
        others = np.delete(votes, j, axis=1)
        assert row["coverage"] == pytest.approx(voted.mean())
        assert row["overlaps"] == pytest.approx((voted & (others >= 0).any(1)).mean())
        conflict = voted & ((others >= 0) & (others != votes[:, [j]])).any(1)
        assert row["conflicts"] == pytest.approx(conflict.mean())
        dev = votes[:50, j] >= 0
        assert row["correct"] == int((votes[:50, j][dev] == gold[dev]).sum())
        assert row["correct"] + row["incorrect"] == int(dev.sum())
        assert row["coverage_extended"] is None and row["estimated_accuracy"] is None
    with pytest.raises(ValueError, match="3 LF names"):
        lf_table(list("abc"), LabelStatistics.empty(4, 3))
