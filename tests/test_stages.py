"""The Beam stages: DoFns as plain objects, composite transforms on beam.Create."""

from __future__ import annotations

import functools
import pickle

import apache_beam as beam
import numpy as np
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP

from tests.conftest import LF_SOURCE
from transforms.apply_lfs import BATCH_ROWS, LF_FAILURES_TAG, VOTES_TAG, ApplyLFs, ApplyLFsFn, VoteSource
from transforms.core.extension import nearest_voters
from transforms.core.labeler import LabelerConfig, fit_labeler
from transforms.core.statistics import LabelStatistics
from transforms.dead_letter import DEAD_LETTER_TAG
from transforms.core.record_arrays import array_field, pack_arrays
from transforms.documents import AttachGold, is_holdout, join_record, record_fields
from transforms.extend import NearestVoters
from transforms.label import FitLabeler
from transforms.labeling_functions import load_lf_set_from_source
from transforms.statistics import BatchedArrayCombineFn

FAILING_LFS = '''
from transforms.core.votes import ABSTAIN, labeling_function

@labeling_function()
def crashes_on_x(x):
    if "x" in x.text:
        raise KeyError("boom")
    return 1

@labeling_function()
def returns_string(x):
    return "1"
'''


def _doc(doc_id: str, text: str, **fields) -> dict:
    return {"id": doc_id, "text": text, "fields": fields, "source": f"t:{doc_id}", "split": "corpus"}


def _source(lf_source: str = LF_SOURCE, **kwargs) -> VoteSource:
    lf_set = load_lf_set_from_source(lf_source, "lfs.py")
    return VoteSource.from_lf_set(lf_set, cardinality=2, **kwargs)


def _apply(fn: ApplyLFsFn, *docs: dict) -> list[tuple[str, object]]:
    """The DoFn as a plain object: one bundle of ``docs``; its outputs as ``(tag, value)``.

    The fn votes in batches, so outputs may come from ``process`` or ``finish_bundle``; each is a
    windowed value carrying its document's window.
    """
    fn.start_bundle()
    outputs = [out for doc in docs for out in fn.process(doc, window=GlobalWindow(), timestamp=MIN_TIMESTAMP)]
    outputs += list(fn.finish_bundle())
    assert all(out.value.windows == [GlobalWindow()] for out in outputs)
    return [(out.tag, out.value.value) for out in outputs]


def test_apply_fn_as_plain_object():
    fn = ApplyLFsFn(_source(votes_field="", num_column_votes=0))
    fn.setup()
    ((tag, value),) = _apply(fn, _doc("a", "subscribe http now"))
    assert tag == VOTES_TAG
    assert value[0] == "a"
    assert value[1].tolist() == [1, 1, -1, -1, -1, 0]


def test_apply_fn_votes_in_batches_and_keeps_the_input_order():
    fn = ApplyLFsFn(_source(votes_field="", num_column_votes=0))
    fn.setup()
    docs = [_doc(f"d{i:04d}", "subscribe" if i % 3 else "song") for i in range(BATCH_ROWS + 10)]
    fn.start_bundle()
    early = [out for doc in docs for out in fn.process(doc, window=GlobalWindow(), timestamp=MIN_TIMESTAMP)]
    late = list(fn.finish_bundle())
    assert len(early) == BATCH_ROWS and len(late) == 10  # a full batch is voted on at once
    assert [out.value.value[0] for out in early + late] == [doc["id"] for doc in docs]


def test_apply_fn_routes_lf_failures_and_keeps_the_row():
    fn = ApplyLFsFn(_source(FAILING_LFS, votes_field="", num_column_votes=0))
    fn.setup()
    by_tag = {}
    for tag, value in _apply(fn, _doc("a", "xyz")):
        by_tag.setdefault(tag, []).append(value)
    assert by_tag[VOTES_TAG][0][1].tolist() == [-1, -1]
    assert sorted(by_tag[LF_FAILURES_TAG]) == [("crashes_on_x", 1), ("returns_string", 1)]
    causes = sorted(dead.cause for dead in by_tag[DEAD_LETTER_TAG])
    assert causes == ["lf_exception", "lf_invalid_value"]
    assert all(not dead.counts_as_input_row for dead in by_tag[DEAD_LETTER_TAG])
    assert "KeyError" in by_tag[DEAD_LETTER_TAG][0].message + by_tag[DEAD_LETTER_TAG][1].message


def test_apply_fn_pickles_without_live_lfs():
    fn = ApplyLFsFn(_source(votes_field="", num_column_votes=0))
    clone = pickle.loads(pickle.dumps(fn))
    clone.setup()
    assert _apply(clone, _doc("a", "song"))[0][1][1].tolist()[3] == 0


def test_votes_column_appends_and_bad_lists_go_to_dead_letter():
    fn = ApplyLFsFn(_source(votes_field="weak", num_column_votes=2))
    fn.setup()
    ((_, good),) = _apply(fn, _doc("a", "song", weak=[1, -1]))
    assert good[1].tolist() == [-1, -1, -1, 0, -1, 0, 1, -1]
    for bad in ([1], [1, 7], "1,1", None, [True, 0]):
        ((tag, dead),) = _apply(fn, _doc("b", "song", weak=bad))
        assert tag == DEAD_LETTER_TAG and dead.cause == "bad_votes"


def test_apply_transform():
    docs = [_doc("a", "check http"), _doc("b", "love song")]
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        applied = pipeline | beam.Create(docs) | ApplyLFs(_source(votes_field="", num_column_votes=0))
        votes = applied[VOTES_TAG] | beam.MapTuple(lambda doc_id, v: (doc_id, v.tolist()))
        assert_that(
            votes,
            equal_to([("a", [-1, 1, 1, -1, -1, 0]), ("b", [-1, -1, -1, 0, 0, 0])]),
        )


def test_nearest_voters_transform_matches_core():
    rng = np.random.default_rng(0)
    n, k, m = 30, 4, 3
    ids = [f"d{i:02d}" for i in range(n)]
    votes = np.where(rng.random((n, m)) < 0.3, rng.integers(0, 2, (n, m)), -1).astype(np.int8)
    neighbours = {}
    for i in range(n):
        others = rng.choice([j for j in range(n) if j != i], k, replace=False)
        sims = np.sort(rng.random(k).astype(np.float32))[::-1]
        neighbours[ids[i]] = ([ids[j] for j in others], sims)
    expected = {}
    for i in range(n):
        nb_ids, sims = neighbours[ids[i]]
        nn_sim, nn_vote = nearest_voters(sims[None], votes[[ids.index(j) for j in nb_ids]][None])
        if np.isfinite(nn_sim).any():
            expected[ids[i]] = (nn_sim[0].tolist(), nn_vote[0].tolist())
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        result = {
            "neighbours": pipeline | "N" >> beam.Create(list(neighbours.items())),
            "votes": pipeline | "V" >> beam.Create(list(zip(ids, votes))),
        } | NearestVoters()
        assert_that(
            result | beam.MapTuple(lambda d, v: (d, (v[0].tolist(), v[1].tolist()))),
            equal_to(list(expected.items())),
        )


def test_batched_combine_fn_contract_and_beam_equals_direct_add():
    rng = np.random.default_rng(1)
    votes = np.where(rng.random((500, 4)) < 0.5, rng.integers(0, 3, (500, 4)), -1).astype(np.int8)
    direct = LabelStatistics.empty(4, 3).add(votes)
    fn = BatchedArrayCombineFn(functools.partial(LabelStatistics.empty, 4, 3), batch_size=64)
    accumulators = []
    for part in np.array_split(votes, 7):
        acc = fn.create_accumulator()
        for row in part:
            acc = fn.add_input(acc, row)
        accumulators.append(pickle.loads(pickle.dumps(acc)))
    merged = fn.merge_accumulators(iter(accumulators))
    assert fn.extract_output(merged) == direct
    assert fn.extract_output(fn.create_accumulator()).n == 0
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        stats = pipeline | beam.Create(list(votes)) | beam.CombineGlobally(fn)
        assert_that(stats | beam.Map(lambda s: s == direct), equal_to([True]))


def test_attach_gold_merges_dev_rows_and_splits_by_id_hash():
    corpus = [_doc(f"d{i}", f"text {i}") for i in range(20)]
    dev = [dict(_doc(f"d{i}", f"text {i}"), label=i % 2) for i in range(10)]
    dev.append(dict(_doc("extra", "only in dev"), label=1))
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        docs = (
            pipeline
            | "C" >> beam.Create(corpus)
            | AttachGold(pipeline | "D" >> beam.Create(dev), holdout_fraction=0.5)
        )
        summary = docs | beam.Map(lambda d: (d["id"], d["split"], d["gold"], d["eval_gold"]))
        expected = [(f"d{i}", "corpus", -1, None) for i in range(10, 20)]
        for i in list(range(10)) + ["extra"]:
            doc_id = f"d{i}" if i != "extra" else "extra"
            label = 1 if i == "extra" else i % 2
            holdout = is_holdout(doc_id, 0.5)
            expected.append(
                (doc_id, "holdout" if holdout else "tune", -1 if holdout else label, label)
            )
        assert_that(summary, equal_to(expected))


def test_join_record_routes_missing_embedding():
    doc = record_fields(dict(_doc("a", "t"), gold=-1, eval_gold=None, split="corpus", source="c.jsonl:3"))[1]
    out = list(join_record(("a", {"docs": [doc], "votes": [np.array([1], np.int8)], "nearest": [], "embeddings": []}), 1))
    assert out[0].tag == DEAD_LETTER_TAG and out[0].value.cause == "missing_embedding"
    assert out[0].value.source == "c.jsonl:3" and "row c.jsonl:3" in out[0].value.message
    out = list(join_record(("a", {"docs": [doc], "votes": [], "nearest": [], "embeddings": [np.ones(2)]}), 1))
    assert out == []  # already dead-lettered by the apply stage
    (record,) = join_record(
        ("a", {"docs": [doc], "votes": [np.array([1], np.int8)], "nearest": [], "embeddings": [np.ones(2)]}), 1
    )
    assert array_field(record, "nn_sim").tolist() == [-np.inf] and array_field(record, "nn_vote").tolist() == [-1]
    assert all(isinstance(record[name], bytes) for name in ("votes", "nn_sim", "nn_vote", "embedding"))


def test_fit_labeler_transform_equals_in_memory_fit():
    rng = np.random.default_rng(2)
    n, m, d = 120, 5, 8
    y = rng.integers(0, 2, n)
    votes = np.where(rng.random((n, m)) < 0.5, np.where(rng.random((n, m)) < 0.8, y[:, None], 1 - y[:, None]), -1).astype(np.int8)
    nn_sim = rng.random((n, m)).astype(np.float32)
    nn_vote = np.where(rng.random((n, m)) < 0.7, y[:, None], 1 - y[:, None]).astype(np.int8)
    embeddings = (rng.normal(size=(n, d)) + y[:, None]).astype(np.float32)
    gold = np.where(rng.random(n) < 0.4, y, -1)
    ids = np.array([f"r{i:03d}" for i in range(n)])
    config = LabelerConfig(cardinality=2, sample_size=50)
    reference = fit_labeler(ids, votes, nn_sim, nn_vote, embeddings, gold, config, [f"lf{j}" for j in range(m)])
    records = [
        {"id": ids[i], "split": "corpus", "gold": int(gold[i]), "eval_gold": None,
         **pack_arrays(votes=votes[i], nn_sim=nn_sim[i], nn_vote=nn_vote[i], embedding=embeddings[i])}
        for i in rng.permutation(n)
    ]  # fmt: skip
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        fit = pipeline | beam.Create(records) | FitLabeler([f"lf{j}" for j in range(m)], config)
        assert_that(
            fit["fitted"] | beam.Map(lambda f: f.to_dict()),
            equal_to([reference.to_dict()]),
        )
