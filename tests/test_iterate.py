"""The iterate session: an LF edit relabels from the cache exactly like a full pipeline run."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import cli, weak_label
from pipelines.iterate import Session, changed_lfs
from transforms import ABSTAIN, keyword_lf, labeling_function, regex_lf
from transforms.core.lfs import lf_fingerprint
from tests.conftest import LF_SOURCE
from transforms.core.labeler import DEFAULT_BLEND, LabelerConfig, label_batch
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
from transforms import keyword_lf

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
    lowered = pa.array([t.lower() for t in texts])
    assert keyword_lf("k", ["Free", "WIN"], 1).vectorised_lower(lowered).tolist() == [1, 1, -1, -1, -1]
    assert keyword_lf("k", ["FREE"], 1, lower=False).vectorised_lower is None


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

    session = Session.open(cache, corpus_files["lfs"])
    assert session.lf_names == load_lf_set(corpus_files["lfs"]).names
    assert session.applied_on_open == []  # every cached column is reused: same fingerprints
    new_lfs = load_lf_set(str(edited)).lfs
    changed, removed = changed_lfs(session, new_lfs)
    assert [lf.name for lf in changed] == ["has_love", "has_free"] and removed == ["short"]
    assert session.sync(new_lfs) == (["has_love", "has_free"], ["short"])
    assert session.lf_names == [lf.name for lf in new_lfs]
    result = session.relabel(refit="full")

    assert result.ids.tolist() == sorted(full)
    for i, doc_id in enumerate(result.ids):
        assert result.labels.extended_votes[i].tolist() == full[doc_id]["extended_votes"], doc_id
        assert int(result.labels.label[i]) == full[doc_id]["label"], doc_id
        np.testing.assert_allclose(result.labels.probs[i], full[doc_id]["probs"], atol=1e-4)
    assert set(result.metrics) == {"tune", "holdout"}
    assert [row["lf"] for row in result.lf_table][-1] == "has_free"
    again = session.relabel(refit="fast")  # no edit since the full fit: the same labels
    assert again.refit == "fast"
    np.testing.assert_array_equal(again.labels.label, result.labels.label)
    np.testing.assert_allclose(again.labels.probs, result.labels.probs, atol=1e-6)

    labels_out = tmp_path / "iterated.parquet"
    code = cli.main(["iterate", "--cache_dir", cache, "--labeling_functions", str(edited),
                     "--labels_out", str(labels_out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "applied has_free" in printed and "holdout: accuracy" in printed and "applied has_song" not in printed
    cli_labels = pq.read_table(labels_out).to_pylist()
    assert [row["label"] for row in cli_labels] == [full[row["id"]]["label"] for row in cli_labels]


def test_open_without_a_snapshot_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="run the pipeline with --cache_dir first"):
        Session.open(str(tmp_path), "unused_lfs.py")


def test_open_never_runs_code_from_the_cache_and_checks_its_schema_version(corpus_files, tiny_model, tmp_path):
    cache = tmp_path / "cache"
    weak_label.run(_argv(corpus_files, tiny_model, str(tmp_path / "out"), corpus_files["lfs"], "--cache_dir", str(cache)))
    manifest_path = cache / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    marker = tmp_path / "pwned"
    manifest["snapshot"]["lf_source"] = (
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transforms import labeling_function\n"
        "@labeling_function()\ndef evil(x):\n    return 1\n"
    )
    manifest["snapshot"]["lf_fingerprints"]["has_link"] = "not-the-fingerprint"
    manifest_path.write_text(json.dumps(manifest))
    session = Session.open(str(cache), corpus_files["lfs"])
    assert not marker.exists()  # the cache's LF source is data, never executed
    assert session.lf_names == load_lf_set(corpus_files["lfs"]).names  # the named file's LFs
    assert session.applied_on_open == ["has_link"]  # its recorded fingerprint differs: re-applied
    assert "pwned" in session.cached_lf_source  # kept for display only
    assert session.relabel(refit="full").lf_table[1]["lf"] == "has_link"

    manifest_path.write_text(json.dumps({**manifest, "schema_version": 0}))
    with pytest.raises(ValueError, match="schema_version 0 .*reads schema_version 1"):
        Session.open(str(cache), corpus_files["lfs"])
    manifest_path.write_text(json.dumps(manifest))
    (embeddings_manifest,) = cache.glob("embeddings/*/manifest.json")
    embeddings_manifest.write_text(json.dumps({**json.loads(embeddings_manifest.read_text()), "schema_version": 0}))
    with pytest.raises(ValueError, match="embeddings manifest .*schema_version 0"):
        Session.open(str(cache), corpus_files["lfs"])


def test_lf_failures_are_counted_sampled_and_shown():
    session = _synthetic_session(LabelerConfig(end_model=False))

    @labeling_function()
    def fragile(x):
        if x["text"].startswith("w1"):
            raise KeyError("boom")
        return 2 if x["text"].startswith("w2") else ABSTAIN  # 2: invalid for 2 classes

    session.set_lf(fragile)
    rows = session.texts.to_pylist()
    expected = sum(text.startswith(("w1", "w2")) for text in rows)
    assert expected > 0 and session.lf_failures["fragile"] == expected
    samples = session.lf_failure_samples["fragile"]
    assert len(samples) == min(expected, 20) and samples[0]["id"] < samples[-1]["id"]
    assert {sample["cause"] for sample in samples} <= {"exception", "invalid_value"}
    result = session.relabel(refit="full")
    assert result.lf_table[-1]["failures"] == expected
    assert f"LF failures (abstained there): fragile {expected}" in result.format()
    session.remove_lf("fragile")
    assert "fragile" not in session.lf_failures


def _synthetic_session(config, n=600, num_lfs=8, seed=0, positive_rate=None, biased_lfs=0, separation=2.0):
    """A small session over random texts (words ``w0..w39`` leaning to the row's class).

    ``positive_rate`` makes class 1 rarer, ``biased_lfs`` extra LFs vote class 0 on words of
    class 1 and ``separation`` is how far the embeddings of the classes lie apart: together
    they make the end model under-predict class 1, so that class offsets are chosen.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n) if positive_rate is None else (rng.random(n) < positive_rate).astype(int)
    words = np.where(rng.random((n, 6)) < 0.7, 2 * rng.integers(0, 20, (n, 6)) + y[:, None],
                     rng.integers(0, 40, (n, 6)))  # fmt: skip
    texts = pa.array([" ".join(f"w{w}x" for w in row) for row in words])
    same = [np.flatnonzero(y == c) for c in (0, 1)]
    neighbours = np.stack([rng.choice(same[c], 6) for c in y])
    neighbours[rng.random(neighbours.shape) < 0.1] = -1
    sims = np.sort(rng.choice(np.linspace(0.3, 0.9, 7), neighbours.shape), axis=1)[:, ::-1]
    sims = np.where(neighbours >= 0, sims, -np.inf).astype(np.float32)
    dev = rng.random(n) < 0.3
    tune = dev & (rng.random(n) < 0.5)
    lfs = [keyword_lf(f"kw_{j}", [f"w{j}x"], j % 2) for j in range(num_lfs)]
    lfs += [keyword_lf(f"bias_{j}", [f"w{2 * j + 21}x"], 0) for j in range(biased_lfs)]
    embeddings = (rng.normal(size=(n, 16)) + separation * y[:, None]).astype(np.float32)
    return Session(
        ids=np.asarray([f"d{i:05d}" for i in range(n)]), texts=texts, fields_json=None,
        gold=np.where(tune, y, -1), eval_gold=np.where(dev, y, -1),
        split=np.where(tune, "tune", np.where(dev, "holdout", "corpus")),
        neighbours=neighbours, sims=sims, embeddings=embeddings if config.end_model else None,
        lfs=lfs, votes=np.stack([lf.vectorised(texts) for lf in lfs], axis=1), config=config,
    )  # fmt: skip


def _edit(session):
    session.set_lf(keyword_lf("kw_1", ["w1x", "w3x", "w5x"], 1))
    session.remove_lf("kw_4")
    session.set_lf(keyword_lf("kw_new", ["w6x", "w8x"], 0))
    session.reorder(["kw_new"] + [name for name in session.lf_names if name != "kw_new"])
    session.set_lf(keyword_lf("kw_2", ["w10x"], 0))


@pytest.mark.parametrize("label_model", ["triplet", "moments", "majority_vote"])
def test_fast_refit_equals_full_refit_when_the_choices_are_pinned(label_model):
    config = LabelerConfig(thresholds="quantile", label_model=label_model, end_model=False)
    session = _synthetic_session(config)
    assert session.relabel().refit == "full"  # no full fit yet: fast falls back to full
    _edit(session)
    fast = session.relabel(refit="fast")
    assert fast.refit == "fast"
    extended = fast.labels.extended_votes.copy()
    full = session.relabel(refit="full")
    np.testing.assert_array_equal(fast.fitted.thresholds, full.fitted.thresholds)
    np.testing.assert_array_equal(extended, full.labels.extended_votes)
    np.testing.assert_allclose(fast.fitted.label_model.weights, full.fitted.label_model.weights, atol=1e-9)
    np.testing.assert_array_equal(fast.labels.label, full.labels.label)
    np.testing.assert_allclose(fast.labels.probs, full.labels.probs, atol=1e-6)
    np.testing.assert_array_equal(fast.labels.covered, full.labels.covered)
    assert repr(fast.lf_table) == repr(full.lf_table) and fast.metrics == full.metrics  # NaN-safe


def test_fast_refit_labels_equal_label_batch_of_its_fitted_labeler_with_the_pinned_end_model():
    session = _synthetic_session(LabelerConfig(min_gold=20))
    first = session.relabel(refit="full")
    _edit(session)
    fast = session.relabel()
    assert fast.fitted.end_model is first.fitted.end_model
    expected = label_batch(fast.fitted, session.votes, session.nn_sim, session.nn_vote, session.embeddings)
    np.testing.assert_array_equal(fast.labels.extended_votes, expected.extended_votes)
    np.testing.assert_allclose(fast.labels.probs, expected.probs, atol=1e-6)
    np.testing.assert_array_equal(fast.labels.label, expected.label)
    with pytest.raises(ValueError, match="refit='slow' is unknown"):
        session.relabel(refit="slow")


def test_fast_relabel_equals_the_full_refit_when_offsets_alpha_and_extension_are_chosen():
    """The fast path scores through the labeler's one ``blend`` (class offsets included)."""
    # Seeded data on which the gold rows choose class offsets, alpha != default and extension
    # (two candidates, so that a change of the selection rules does not silently void the test).
    for seed, biased_lfs in ((1, 3), (1, 4)):
        session = _synthetic_session(
            LabelerConfig(), n=1500, seed=seed, positive_rate=0.35, biased_lfs=biased_lfs, separation=1.25
        )
        full = session.relabel(refit="full")
        fitted = full.fitted
        end = fitted.end_model
        if end.offsets is not None and np.any(end.offsets) and end.weight != DEFAULT_BLEND:
            break
    else:
        pytest.fail("no seeded session chose class offsets and alpha != default: pick new seeds")
    assert np.isfinite(fitted.thresholds).all()
    again = session.relabel()  # no edit: the same labels as the full refit
    assert again.refit == "fast"
    np.testing.assert_array_equal(again.labels.label, full.labels.label)
    np.testing.assert_allclose(again.labels.probs, full.labels.probs, atol=1e-6, rtol=0)
    _edit(session)
    fast = session.relabel()
    assert fast.refit == "fast" and fast.fitted.end_model is fitted.end_model
    expected = label_batch(fast.fitted, session.votes, session.nn_sim, session.nn_vote, session.embeddings)
    np.testing.assert_array_equal(fast.labels.label, expected.label)
    np.testing.assert_allclose(fast.labels.probs, expected.probs, atol=1e-6, rtol=0)
    np.testing.assert_allclose(fast.labels.label_model_probs, expected.label_model_probs, atol=1e-6, rtol=0)


WORD_LF_SOURCE = '''
from transforms import ABSTAIN, labeling_function

WORDS = ["w1x"]


def tokens(x):
    return {"text": x["text"], "tokens": x["text"].split()}


@labeling_function(pre=[tokens])
def has_word(x):
    return 1 if any(word in x["tokens"] for word in WORDS) else ABSTAIN
'''


def test_editing_a_module_level_list_or_a_preprocessor_changes_the_fingerprint_and_the_votes(tmp_path):
    session = _synthetic_session(LabelerConfig(end_model=False))
    path = tmp_path / "lfs.py"
    path.write_text(WORD_LF_SOURCE)
    (first,) = load_lf_set(str(path)).lfs
    session.set_lf(first)
    before = session.votes[:, -1].copy()
    assert changed_lfs(session, [*session.lfs]) == ([], [])
    path.write_text(WORD_LF_SOURCE.replace('WORDS = ["w1x"]', 'WORDS = ["w1x", "w3x"]'))
    (more_words,) = load_lf_set(str(path)).lfs
    changed, removed = changed_lfs(session, [*session.lfs[:-1], more_words])
    assert [lf.name for lf in changed] == ["has_word"] and removed == []
    session.set_lf(more_words)
    assert (session.votes[:, -1] != before).any()  # the new word's votes are in use
    path.write_text(WORD_LF_SOURCE.replace('x["text"].split()', 'x["text"].split()[:1]'))
    (first_token,) = load_lf_set(str(path)).lfs
    assert lf_fingerprint(first_token) not in {lf_fingerprint(first), lf_fingerprint(more_words)}
    path.write_text(WORD_LF_SOURCE)
    assert lf_fingerprint(load_lf_set(str(path)).lfs[0]) == lf_fingerprint(first)


def test_a_session_without_lfs_applies_them_all_and_survives_removing_the_last():
    """A cache whose every vote column is stale opens with no LF; removing every LF is allowed."""
    full = _synthetic_session(LabelerConfig(end_model=False))
    n = len(full.ids)
    neighbours = np.where(full.graph.neighbours < n, full.graph.neighbours, -1)  # slots by similarity
    empty = Session(
        ids=full.ids, texts=full.texts, fields_json=None, gold=full.gold, eval_gold=full.eval_gold,
        split=full.split, neighbours=neighbours, sims=full.graph.sims, embeddings=None,
        lfs=[], votes=np.empty((n, 0), np.int8), config=full.config,
    )  # fmt: skip
    with pytest.raises(ValueError, match="no LF"):
        empty.relabel()
    assert empty.sync(full.lfs) == (full.lf_names, [])
    assert empty.raw_stats == full.raw_stats
    expected, got = full.relabel(refit="full"), empty.relabel(refit="full")
    np.testing.assert_array_equal(got.labels.label, expected.labels.label)
    assert repr(got.lf_table) == repr(expected.lf_table)
    for name in full.lf_names:
        empty.remove_lf(name)
    assert empty.lf_names == [] and empty.raw_stats is None
    empty.set_lf(full.lfs[0])
    assert empty.relabel().lf_table[0]["lf"] == full.lfs[0].name
