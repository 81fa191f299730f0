"""The benchmark's data checks: readme rules against stored votes, and the text-form figures."""

import json

import numpy as np
import pytest

from benchmarks.data_checks import read_splits, split_figures, write_copy
from benchmarks.readme_rules import readme_votes

README = "rules\nham\t( |^)(ok)[^\\w]*( |$)\tok then\nspam\t( |^)(free)[^\\w]*( |$)\tfree gift\n"
TEXTS = ["ok see you", "a free gift", "nothing here", "Free entry now"]
RULE_VOTES = [[0, -1], [-1, 1], [-1, -1], [-1, 1]]


def _write_set(path, valid_votes):
    path.mkdir()
    (path / "label.json").write_text(json.dumps({"0": "HAM", "1": "SPAM"}))
    (path / "readme.txt").write_text(README)
    for split, votes in (("train", RULE_VOTES), ("valid", valid_votes)):
        rows = {str(i): {"data": {"text": t}, "label": int(v[1] == 1), "weak_labels": v}
                for i, (t, v) in enumerate(zip(TEXTS, votes))}
        (path / f"{split}.json").write_text(json.dumps(rows))
    return str(path)


def test_the_rules_reproduce_consistent_votes_and_flag_votes_that_belong_to_other_texts(tmp_path):
    shuffled = [RULE_VOTES[i] for i in (1, 0, 3, 2)]
    data = _write_set(tmp_path / "set", shuffled)
    figures = split_figures(data, read_splits(data))
    assert figures["rules_reproduce_train"] == 1.0
    assert figures["rules_reproduce_valid"] == 0.0
    assert figures["uppercase_train"] == 0.25


def test_readme_votes_recompute_every_split_and_refuse_rules_that_miss_the_train_votes(tmp_path):
    texts = TEXTS * 2
    stored = np.array(RULE_VOTES + [[0, 0]] * 4, np.int8)
    train = np.array([True] * 4 + [False] * 4)
    data = _write_set(tmp_path / "set", RULE_VOTES)
    votes = readme_votes(data, ["HAM", "SPAM"], texts, stored, train)
    assert votes.tolist() == RULE_VOTES * 2
    stored[0] = [-1, -1]
    with pytest.raises(ValueError, match="differ from the stored votes on 1 train rows"):
        readme_votes(data, ["HAM", "SPAM"], texts, stored, train)


def test_the_copy_lower_cases_texts_and_drops_the_first_token_of_the_named_splits(tmp_path):
    data = _write_set(tmp_path / "set", RULE_VOTES)
    out = tmp_path / "copy"
    write_copy(data, read_splits(data), str(out), {"valid"})
    valid = json.loads((out / "valid.json").read_text())
    train = json.loads((out / "train.json").read_text())
    assert [r["data"]["text"] for r in valid.values()] == ["see you", "free gift", "here", "entry now"]
    assert train["3"]["data"]["text"] == "free entry now"
    assert (out / "readme.txt").read_text() == README
