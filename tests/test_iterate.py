"""The iterate session: an LF edit relabels from the cache exactly like a full pipeline run."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import cli, weak_label
from pipelines.iterate import Session, changed_lfs, keyword_lf, lf_fingerprint, regex_lf
from tests.conftest import LF_SOURCE
from transforms.labeling_functions import load_lf_set

EDITED_SOURCE = (
    LF_SOURCE.replace(
        'return 0 if "love" in x.text else ABSTAIN',
        'return 0 if "love" in x.text or "beautiful" in x.text else ABSTAIN',
    ).replace(
        '''@labeling_function()
def short(x):
    return 0 if len(x.text.split()) < 5 else ABSTAIN
''',
        "",
    )
    + '''
from pipelines.iterate import keyword_lf

has_free = keyword_lf("has_free", ["free", "win"], 1)
'''
)


def _argv(files, model, output, lfs, *extra):
    return [
        "--input", files["corpus"], "--dev_input", files["dev"], "--labeling_functions", lfs,
        "--model", model, "--output", output, "--num_neighbours", "5", "--runner=FnApiRunner", *extra,
    ]  # fmt: skip


def test_keyword_and_regex_lfs_vectorised_forms_match_row_forms():
    texts = ["Win FREE stuff", "free", "nothing here", "see https://x.y", "Http only"]
    for lf in (keyword_lf("k", ["free", "win"], 1), regex_lf("r", r"https?://", 0)):
        rows = [lf({"text": t}) for t in texts]
        assert lf.vectorised(pa.array(texts)).tolist() == rows


def test_lf_fingerprint_changes_with_the_code():
    a, b = keyword_lf("k", ["free"], 1), keyword_lf("k", ["free", "win"], 1)
    assert lf_fingerprint(a) == lf_fingerprint(keyword_lf("k", ["free"], 1))
    assert lf_fingerprint(a) != lf_fingerprint(b)


def test_session_edit_equals_a_full_run_with_the_edited_file(corpus_files, tiny_model, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    weak_label.run(_argv(corpus_files, tiny_model, str(tmp_path / "first"), corpus_files["lfs"], "--cache_dir", cache))
    edited = tmp_path / "edited_lfs.py"
    edited.write_text(EDITED_SOURCE)
    weak_label.run(_argv(corpus_files, tiny_model, str(tmp_path / "full"), str(edited)))
    full = {row["id"]: row for row in pq.read_table(f"{tmp_path}/full/labels").to_pylist()}

    session = Session.open(cache)
    assert session.lf_names == load_lf_set(corpus_files["lfs"]).names
    new_lfs = load_lf_set(str(edited)).lfs
    changed, removed = changed_lfs(session, new_lfs)
    assert [lf.name for lf in changed] == ["has_love", "has_free"] and removed == ["short"]
    for name in removed:
        session.remove_lf(name)
    for lf in changed:
        session.set_lf(lf)
    session.reorder([lf.name for lf in new_lfs])
    result = session.relabel()

    assert result.ids.tolist() == sorted(full)
    for i, doc_id in enumerate(result.ids):
        assert result.labels.extended_votes[i].tolist() == full[doc_id]["extended_votes"], doc_id
        assert int(result.labels.label[i]) == full[doc_id]["label"], doc_id
        np.testing.assert_allclose(result.labels.probs[i], full[doc_id]["probs"], atol=1e-4)
    assert set(result.metrics) == {"tune", "holdout"}
    assert [row["name"] for row in result.lf_table][-1] == "has_free"

    labels_out = tmp_path / "iterated.parquet"
    code = cli.main(["iterate", "--cache_dir", cache, "--labeling_functions", str(edited),
                     "--labels_out", str(labels_out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "applied has_free" in printed and "holdout: accuracy" in printed
    cli_labels = pq.read_table(labels_out).to_pylist()
    assert [row["label"] for row in cli_labels] == [full[row["id"]]["label"] for row in cli_labels]


def test_open_without_a_snapshot_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="run the pipeline with --cache_dir first"):
        Session.open(str(tmp_path))
