"""``--embedding_field``: precomputed vectors through the real pipeline (FnApiRunner).

The pipeline's labels must equal the in-memory reference (unit vectors, exact kNN, the same core
fit and label functions); bad vectors are dead-lettered with their cause and counted.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import weak_label
from transforms.core.document import lf_row
from transforms.core.extension import nearest_voters
from transforms.core.knn import exact_knn
from transforms.core.labeler import LabelerConfig, fit_labeler, label_batch
from transforms.core.vectors import unit_rows
from transforms.core.votes import apply_lfs
from transforms.labeling_functions import load_lf_set

NUM_NEIGHBOURS = 5
DIM = 8

LF_SOURCE = '''
from transforms import ABSTAIN, labeling_function


@labeling_function()
def high_score(x):
    return 1 if x.score > 0.8 else ABSTAIN


@labeling_function()
def low_score(x):
    return 0 if x.score < 0.2 else ABSTAIN


@labeling_function()
def late_frame(x):
    return 1 if x["frame"] % 7 == 0 and x.score > 0.5 else ABSTAIN
'''

BAD_ROWS = [
    ({"id": "bad_len", "frame": 1, "score": 0.5, "vec": [0.1] * (DIM - 1)}, "wrong_vector_dimension"),
    ({"id": "bad_str", "frame": 2, "score": 0.5, "vec": [0.1] * (DIM - 1) + ["x"]}, "non_numeric_vector"),
    ({"id": "bad_nan", "frame": 3, "score": 0.5, "vec": [float("nan")] + [0.1] * (DIM - 1)}, "non_finite_vector"),
    ({"id": "bad_inf", "frame": 4, "score": 0.5, "vec": [1e999] + [0.1] * (DIM - 1)}, "non_finite_vector"),
    ({"id": "bad_type", "frame": 5, "score": 0.5, "vec": "0.1,0.2"}, "not_a_vector"),
    ({"id": "bad_none", "frame": 6, "score": 0.5}, "missing_vector"),
    ({"id": "bad_zero", "frame": 7, "score": 0.5, "vec": [0.0] * DIM}, "zero_vector"),
]


def _seeded_rows(n: int = 80) -> list[dict]:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((2, DIM)) * 2.0
    rows = []
    for i in range(n):
        label = i % 2
        vector = centres[label] + rng.standard_normal(DIM)
        score = float(np.clip(rng.normal(0.75 if label else 0.25, 0.2), 0, 1))
        rows.append({"id": f"f{i:03d}", "frame": i, "score": score, "vec": vector.tolist(), "label": label})
    return rows


@pytest.fixture()
def vector_corpus(tmp_path):
    rows = _seeded_rows()
    corpus = tmp_path / "frames.jsonl"
    lines = [json.dumps({k: v for k, v in row.items() if k != "label"}) for row in rows]
    lines += [json.dumps(row) for row, _ in BAD_ROWS]  # json.dumps writes NaN / Infinity literals
    corpus.write_text("\n".join(lines) + "\n")
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    return {"rows": rows, "corpus": str(corpus), "lfs": str(lfs)}


def _run(files, output, *extra):
    weak_label.run(
        [
            "--input", files["corpus"], "--labeling_functions", files["lfs"], "--output", output,
            "--embedding_field", "vec", "--num_neighbours", str(NUM_NEIGHBOURS),
            "--model", "/nonexistent/model/never/loaded", "--runner=FnApiRunner", *extra,
        ]
    )  # fmt: skip


def _reference(rows: list[dict], lf_path: str) -> dict[str, dict]:
    rows = sorted(rows, key=lambda row: row["id"])
    ids = np.array([row["id"] for row in rows])
    embeddings = unit_rows([row["vec"] for row in rows])
    lf_set = load_lf_set(lf_path)
    docs = [{"id": r["id"], "text": "", "fields": {k: v for k, v in r.items() if k not in ("id", "label")}} for r in rows]
    votes = np.stack([apply_lfs(lf_set.lfs, lf_row(doc), 2)[0] for doc in docs])
    indices, sims = exact_knn(embeddings, NUM_NEIGHBOURS)
    nn_sim, nn_vote = nearest_voters(sims, votes[indices])
    config = LabelerConfig(cardinality=2, num_neighbours=NUM_NEIGHBOURS)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, embeddings, np.full(len(rows), -1), config, lf_set.names)
    batch = label_batch(fitted, votes, nn_sim, nn_vote, embeddings)
    return {
        row["id"]: {"label": int(batch.label[i]), "probs": batch.probs[i], "extended_votes": batch.extended_votes[i].tolist()}
        for i, row in enumerate(rows)
    }


def test_embedding_field_matches_in_memory_reference_and_dead_letters_bad_vectors(vector_corpus, tmp_path):
    output = tmp_path / "out"
    _run(vector_corpus, str(output))
    labels = pq.read_table(output / "labels" / "part-00000-of-00001.parquet").to_pylist()
    reference = _reference(vector_corpus["rows"], vector_corpus["lfs"])
    assert [row["id"] for row in labels] == sorted(reference)
    for row in labels:
        expected = reference[row["id"]]
        assert row["extended_votes"] == expected["extended_votes"], row["id"]
        assert row["label"] == expected["label"], row["id"]
        np.testing.assert_allclose(row["probs"], expected["probs"], atol=1e-4)
    assert sum(row["extended_votes"] != row["votes"] for row in labels) > 0  # extension ran
    dead = [json.loads(line) for line in (output / "errors" / "dead_letter-00000-of-00001.jsonl").read_text().splitlines()]
    assert {row["doc_id"]: row["cause"] for row in dead} == {row["id"]: cause for row, cause in BAD_ROWS}
    assert all(row["stage"] == "embed" and "--embedding_field 'vec'" in row["message"] for row in dead)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["rows"]["input"] == len(vector_corpus["rows"]) + len(BAD_ROWS)
    assert summary["rows"]["labelled"] == len(vector_corpus["rows"])
    assert summary["rows"]["accounted"] is True
    assert summary["rows"]["dead_letter_by_cause"]["embed/non_finite_vector"] == 2


def test_parquet_list_column_and_cache_keyed_by_vector_hash(vector_corpus, tmp_path):
    rows = vector_corpus["rows"][:40]
    table = pa.table(
        {
            "id": [r["id"] for r in rows],
            "frame": [r["frame"] for r in rows],
            "score": [r["score"] for r in rows],
            "vec": pa.array([r["vec"] for r in rows], pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, tmp_path / "frames.parquet")
    files = dict(vector_corpus, corpus=str(tmp_path / "frames.parquet"))
    cache = str(tmp_path / "cache")
    _run(files, str(tmp_path / "a"), "--cache_dir", cache)
    _run(files, str(tmp_path / "b"), "--cache_dir", cache)
    second = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert second["rows"]["labelled"] == 40
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["snapshot"]["model_fingerprint"].startswith("vectors-")
    first_labels = pq.read_table(tmp_path / "a" / "labels").to_pylist()
    second_labels = pq.read_table(tmp_path / "b" / "labels").to_pylist()
    assert [r["probs"] for r in first_labels] == [r["probs"] for r in second_labels]


def test_no_valid_vector_is_a_preflight_error(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "vec": "nope"}\n')
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    with pytest.raises(ValueError, match="--embedding_field 'vec' holds no list of numbers"):
        _run({"corpus": str(corpus), "lfs": str(lfs)}, str(tmp_path / "out"))
