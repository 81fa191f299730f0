"""The per-LF exact fallback in the pipeline equals a brute-force reference (exact Epoxy)."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that

from pipelines import weak_label
from transforms.core.diagnostics import source_hash
from transforms.core.knn import exact_knn, l2_normalise
from transforms.core.votes import ABSTAIN
from transforms.embed import load_text_model
from transforms.exact_fallback import ExactFallback
from transforms.extend import NearestVoters


def _reference_nearest(x: np.ndarray, column: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brute force: each row's most similar voter of one LF over all its voters (never itself)."""
    voters = np.flatnonzero(column != ABSTAIN)
    sims = (x.astype(np.float64) @ x[voters].astype(np.float64).T).astype(np.float32)
    sims[np.arange(len(x))[:, None] == voters[None, :]] = -np.inf
    if voters.size == 0:
        return np.full(len(x), -np.inf, np.float32), np.full(len(x), -1), np.full(len(x), -1)
    best = sims.argmax(axis=1)
    has = np.isfinite(sims.max(axis=1))
    return np.where(has, sims.max(axis=1), -np.inf), np.where(has, column[voters[best]], -1), np.where(has, voters[best], -1)


def _reference_from_graph(neighbours, sims, column):
    """The graph path: the most similar neighbour that voted (first on ties)."""
    n = len(neighbours)
    nn_sim, nn_vote, nn_row = np.full(n, -np.inf, np.float32), np.full(n, -1), np.full(n, -1)
    for i in range(n):
        for row, sim in zip(neighbours[i], sims[i]):
            if column[row] != ABSTAIN:
                nn_sim[i], nn_vote[i], nn_row[i] = sim, column[row], row
                break
    return nn_sim, nn_vote, nn_row


def test_the_stage_makes_small_lfs_exact_and_keeps_the_graph_for_the_others():
    rng = np.random.default_rng(7)
    n, k = 200, 4
    x = l2_normalise(rng.normal(size=(n, 8)).astype(np.float32))
    ids = [f"d{i:03d}" for i in range(n)]
    votes = np.full((n, 3), ABSTAIN, np.int8)
    for lf, count in enumerate((6, 40, 120)):  # LFs 0 and 1 have <= 50 voters, LF 2 has more
        rows = rng.choice(n, count, replace=False)
        votes[rows, lf] = rng.integers(0, 2, count)
    neighbours, sims = exact_knn(x, k)
    expected = {}
    graph_only_misses = 0
    for lf in range(3):
        if lf < 2:
            nn_sim, nn_vote, nn_row = _reference_nearest(x, votes[:, lf])
            graph_only_misses += int(np.sum(~np.isfinite(_reference_from_graph(neighbours, sims, votes[:, lf])[0])))
        else:
            nn_sim, nn_vote, nn_row = _reference_from_graph(neighbours, sims, votes[:, lf])
        expected[lf] = (nn_sim, nn_vote, np.where(nn_row >= 0, [source_hash(ids[r]) for r in nn_row], 0))
    assert graph_only_misses > 100  # the fallback has something to fix: most rows have no voter in the graph

    def check(actual):
        got = dict(actual)
        assert sorted(got) == ids  # every document has exact columns, also those no neighbour voted on
        for lf in range(3):
            sim = np.array([got[i][0][lf] for i in ids])
            np.testing.assert_allclose(sim, expected[lf][0], rtol=1e-5, atol=1e-6, err_msg=f"LF {lf}")
            assert np.array_equal([got[i][1][lf] for i in ids], expected[lf][1]), lf
            assert np.array_equal(np.array([got[i][2][lf] for i in ids], np.uint64), np.uint64(expected[lf][2])), lf

    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as pipeline:
        graph = pipeline | "Graph" >> beam.Create(
            [(ids[i], ([ids[j] for j in neighbours[i]], sims[i])) for i in range(n)]
        )
        vote_rows = pipeline | "Votes" >> beam.Create([(ids[i], votes[i]) for i in range(n)])
        embeddings = pipeline | "Embeddings" >> beam.Create([(ids[i], x[i] * 3.0) for i in range(n)])
        nearest = {"neighbours": graph, "votes": vote_rows} | NearestVoters()
        exact = {"nearest": nearest, "votes": vote_rows, "embeddings": embeddings} | ExactFallback(3, 50)
        assert_that(exact, check)


def test_the_job_extends_like_exact_epoxy_with_the_fallback_on(corpus_files, tiny_model, tmp_path):
    output = tmp_path / "out"
    result = weak_label.run([
        "--input", corpus_files["corpus"], "--dev_input", corpus_files["dev"],
        "--labeling_functions", corpus_files["lfs"], "--model", tiny_model, "--output", str(output),
        "--num_neighbours", "2", "--thresholds", "quantile", "--fallback_max_voters", "1000",
        "--runner=FnApiRunner",
    ])  # fmt: skip
    counters = {m.key.metric.name: m.committed for m in result.metrics().query(MetricsFilter())["counters"]}
    labels = sorted(pq.read_table(output / "labels").to_pylist(), key=lambda row: row["id"])
    model = json.loads((output / "model.json").read_text())
    thresholds = np.array([np.inf if t is None else t for t in model["thresholds"]], np.float32)
    texts = {row["id"]: row["text"] for row in corpus_files["rows"]}
    import tensorflow as tf

    x = l2_normalise(np.asarray(load_text_model(tiny_model)(tf.constant([texts[r["id"]] for r in labels]))))
    votes = np.array([r["votes"] for r in labels], np.int8)
    extended = votes.copy()
    for lf in range(votes.shape[1]):
        nn_sim, nn_vote, _ = _reference_nearest(x, votes[:, lf])
        copy = (votes[:, lf] == ABSTAIN) & (nn_vote != ABSTAIN) & (nn_sim >= thresholds[lf])
        extended[copy, lf] = nn_vote[copy]
    assert counters["extension/exact_fallback_lfs"] == int(np.sum(np.any(votes != ABSTAIN, axis=0)))
    assert np.isfinite(thresholds).any()  # the extension is on, so the comparison means something
    mismatched = [r["id"] for r, e in zip(labels, extended) if r["extended_votes"] != e.tolist()]
    assert not mismatched, mismatched[:5]


def test_the_stage_refuses_a_bound_below_one():
    with pytest.raises(ValueError, match="max_voters=0 must be at least 1"):
        ExactFallback(3, 0)


def test_an_iterate_session_applies_the_runs_fallback_like_the_pipeline(corpus_files, tiny_model, tmp_path):
    from pipelines.iterate import Session
    from tests.test_iterate import EDITED_SOURCE, _argv
    from transforms.labeling_functions import load_lf_set

    bound = ("--fallback_max_voters", "12")
    cache = str(tmp_path / "cache")
    weak_label.run(_argv(corpus_files, tiny_model, str(tmp_path / "first"), corpus_files["lfs"], "--cache_dir", cache, *bound))
    edited = tmp_path / "edited_lfs.py"
    edited.write_text(EDITED_SOURCE)
    weak_label.run(_argv(corpus_files, tiny_model, str(tmp_path / "full"), str(edited), *bound))
    full = {row["id"]: row for row in pq.read_table(f"{tmp_path}/full/labels").to_pylist()}
    voters = np.sum(np.array([row["votes"] for row in full.values()]) != ABSTAIN, axis=0)
    assert voters.min() <= 12 < voters.max()  # both paths: exact for some LFs, the graph for others

    session = Session.open(cache, corpus_files["lfs"])
    session.sync(load_lf_set(str(edited)).lfs)
    result = session.relabel(refit="full")
    assert result.ids.tolist() == sorted(full)
    for i, doc_id in enumerate(result.ids):
        assert result.labels.extended_votes[i].tolist() == full[doc_id]["extended_votes"], doc_id
        assert int(result.labels.label[i]) == full[doc_id]["label"], doc_id
        np.testing.assert_allclose(result.labels.probs[i], full[doc_id]["probs"], atol=1e-4)
