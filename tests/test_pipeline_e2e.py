"""End to end: the pipeline on FnApiRunner against an in-memory numpy reference."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import weak_label
from transforms.core.document import lf_row
from transforms.core.extension import nearest_voters
from transforms.core.knn import exact_knn
from transforms.core.labeler import LabelerConfig, fit_labeler, label_batch
from transforms.core.votes import apply_lfs
from transforms.documents import is_holdout
from transforms import knn_groups
from transforms.embed import load_text_model
from transforms.knn_shuffle import write_chunk
from transforms.labeling_functions import load_lf_set

NUM_NEIGHBOURS = 5


def _argv(files, model, output, *extra):
    return [
        "--input", files["corpus"],
        "--dev_input", files["dev"],
        "--labeling_functions", files["lfs"],
        "--model", model,
        "--output", output,
        "--num_neighbours", str(NUM_NEIGHBOURS),
        "--runner=FnApiRunner",
        *extra,
    ]  # fmt: skip


def _read_labels(output: str) -> list[dict]:
    return pq.read_table(f"{output}/labels/part-00000-of-00001.parquet").to_pylist()


def _reference(files, model_path: str) -> dict[str, dict]:
    """The same job in plain numpy: embed, exact kNN, apply LFs, nearest voters, fit, label."""
    rows = sorted(files["rows"], key=lambda row: row["id"])
    dev_ids = {row["id"] for row in files["rows"][:40]}
    ids = np.array([row["id"] for row in rows])
    texts = [row["text"] for row in rows]
    model = load_text_model(model_path)
    embeddings = np.asarray(model(texts), np.float32)
    lf_set = load_lf_set(files["lfs"])
    votes = np.stack([apply_lfs(lf_set.lfs, lf_row(r), 2)[0] for r in rows])
    indices, sims = exact_knn(embeddings, NUM_NEIGHBOURS)
    nn_sim, nn_vote = nearest_voters(sims, votes[indices])
    gold = np.array(
        [
            row["label"] if row["id"] in dev_ids and not is_holdout(row["id"], 0.5) else -1
            for row in rows
        ]
    )
    config = LabelerConfig(cardinality=2, num_neighbours=NUM_NEIGHBOURS)
    fitted = fit_labeler(ids, votes, nn_sim, nn_vote, embeddings, gold, config, lf_set.names)
    batch = label_batch(fitted, votes, nn_sim, nn_vote, embeddings)
    return {
        row["id"]: {
            "label": int(batch.label[i]),
            "probs": batch.probs[i],
            "extended_votes": batch.extended_votes[i].tolist(),
            "votes": votes[i].tolist(),
        }
        for i, row in enumerate(rows)
    }


def test_pipeline_matches_in_memory_reference(corpus_files, tiny_model, tmp_path):
    output = str(tmp_path / "out")
    weak_label.run(_argv(corpus_files, tiny_model, output))
    labels = _read_labels(output)
    reference = _reference(corpus_files, tiny_model)
    assert [row["id"] for row in labels] == sorted(reference)
    for row in labels:
        expected = reference[row["id"]]
        assert row["votes"] == expected["votes"], row["id"]
        assert row["extended_votes"] == expected["extended_votes"], row["id"]
        assert row["label"] == expected["label"], row["id"]
        np.testing.assert_allclose(row["probs"], expected["probs"], atol=1e-4)
    extended_somewhere = sum(
        row["extended_votes"] != row["votes"] for row in labels
    )
    assert extended_somewhere > 0  # the extension really ran


def test_summary_accounts_for_every_row_and_reports_dev_metrics(corpus_files, tiny_model, tmp_path):
    output = str(tmp_path / "out")
    weak_label.run(_argv(corpus_files, tiny_model, output))
    with open(f"{output}/summary.json") as handle:
        summary = json.load(handle)
    assert summary["rows"]["input"] == 90
    assert summary["rows"]["labelled"] == 90
    assert summary["rows"]["accounted"] is True
    assert summary["coverage"]["after_extension"] >= summary["coverage"]["before_extension"]
    holdout_rows = sum(is_holdout(r["id"], 0.5) for r in corpus_files["rows"][:40])
    assert summary["metrics"]["holdout"]["epoxy"]["rows"] == holdout_rows
    assert [lf["lf"] for lf in summary["lfs"]] == [
        "has_subscribe", "has_link", "has_check", "has_song", "has_love", "short"
    ]  # fmt: skip
    with open(f"{output}/model.json") as handle:
        assert json.load(handle)["lf_names"][0] == "has_subscribe"
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert not list((tmp_path / "out").glob("_staging-*"))


def test_two_runs_write_identical_labels(corpus_files, tiny_model, tmp_path, monkeypatch):
    """Also: the kNN rows through files in a named directory, then through Beam's shuffle."""
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    shuffle_dir = tmp_path / "knn"
    shuffle_dir.mkdir()
    written: list[str] = []
    monkeypatch.setattr(knn_groups, "write_chunk", lambda *a: written.append(write_chunk(*a)) or written[-1])
    weak_label.run(_argv(corpus_files, tiny_model, first, "--knn_shuffle_dir", str(shuffle_dir)))
    assert written and all(path.startswith(str(shuffle_dir)) for path in written)
    assert not list(shuffle_dir.iterdir())  # the run's shuffle files are gone
    del written[:]
    weak_label.run(_argv(corpus_files, tiny_model, second, "--knn_shuffle_dir", "none"))
    assert not written
    for name in ("labels/part-00000-of-00001.parquet", "errors/dead_letter-00000-of-00001.jsonl"):
        with open(f"{first}/{name}", "rb") as a, open(f"{second}/{name}", "rb") as b:
            assert a.read() == b.read(), name


def test_a_failed_run_leaves_no_knn_shuffle_files(corpus_files, tiny_model, tmp_path, monkeypatch):
    def fail(self, keyed, merge_buckets):
        raise RuntimeError("search failed on purpose")

    monkeypatch.setattr(knn_groups.SearchGroupFn, "process", fail)
    shuffle_dir = tmp_path / "knn"
    shuffle_dir.mkdir()
    argv = _argv(corpus_files, tiny_model, str(tmp_path / "out"), "--knn_shuffle_dir", str(shuffle_dir))
    with pytest.raises(weak_label.RunFailed, match="search failed on purpose"):
        weak_label.run(argv)
    assert not list(shuffle_dir.iterdir())  # the chunks were written, then removed by run()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--input": "/nonexistent/*.jsonl"}, "/nonexistent"),
        ({"--labeling_functions": "/nonexistent/lfs.py"}, "does not exist"),
        ({"--model": "/nonexistent/model"}, "embedding model '/nonexistent/model'"),
        ({"--holdout_fraction": "1.5"}, "holdout_fraction=1.5"),
        ({"--cardinality": "3"}, "--cardinality=3"),
        ({"--class_names": "A,B,C"}, "differ from CLASS_NAMES"),
    ],
)
def test_preflight_names_the_bad_value(corpus_files, tiny_model, tmp_path, change, message):
    argv = _argv(corpus_files, tiny_model, str(tmp_path / "out"))
    for flag, value in change.items():
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        weak_label.run(argv)
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_precomputed_votes_column(tmp_path, tiny_model):
    rows = [
        {"id": f"r{i}", "text": f"row {i} text {'spam' if i % 2 else 'ham'}", "weak": [i % 2, -1, i % 2]}
        for i in range(30)
    ]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = str(tmp_path / "out")
    weak_label.run(
        [
            "--input", str(corpus), "--votes_field", "weak", "--lf_names", "a,b,c",
            "--model", tiny_model, "--output", output, "--num_neighbours", "3",
            "--runner=FnApiRunner",
        ]
    )  # fmt: skip
    labels = {row["id"]: row for row in _read_labels(output)}
    assert len(labels) == 30
    assert labels["r3"]["votes"] == [1, -1, 1] and labels["r3"]["label"] == 1
    assert labels["r4"]["label"] == 0
