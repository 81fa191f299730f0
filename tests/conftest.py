"""Shared fixtures: the tiny SavedModel and a small synthetic corpus with LFs and dev labels."""

from __future__ import annotations

import json
import random

import pytest

from tests.model_fixtures import tiny_model_path

SPAM_WORDS = ["subscribe", "channel", "check", "out", "http", "free", "win", "my", "video", "plz"]
HAM_WORDS = ["love", "song", "beautiful", "voice", "dance", "music", "best", "great", "lyrics", "cool"]
FILLER = ["the", "this", "is", "so", "and", "really", "a", "it", "you", "we", "all", "time"]

LF_SOURCE = '''
from transforms.core.votes import ABSTAIN, labeling_function

CLASS_NAMES = ("HAM", "SPAM")


@labeling_function()
def has_subscribe(x):
    return 1 if "subscribe" in x.text else ABSTAIN


@labeling_function()
def has_link(x):
    return 1 if "http" in x["text"] else ABSTAIN


@labeling_function()
def has_check(x):
    return 1 if "check" in x.text else ABSTAIN


@labeling_function()
def has_song(x):
    return 0 if "song" in x.text else ABSTAIN


@labeling_function()
def has_love(x):
    return 0 if "love" in x.text else ABSTAIN


@labeling_function()
def short(x):
    return 0 if len(x.text.split()) < 5 else ABSTAIN
'''


def make_corpus(n: int, seed: int = 0) -> list[dict]:
    """``n`` unique synthetic comments with a gold ``label`` (1 = spam)."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = rng.random() < 0.5
        words = rng.sample(SPAM_WORDS if label else HAM_WORDS, rng.randint(1, 3))
        words += rng.sample(FILLER, rng.randint(1, 6))
        if rng.random() < 0.15:  # some noise: a word of the other class
            words.append(rng.choice(HAM_WORDS if label else SPAM_WORDS))
        rng.shuffle(words)
        text = " ".join(words)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"id": f"doc{len(rows):04d}", "text": text, "label": int(label)})
    return rows


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """The tiny TF-Hub text model (built once per session)."""
    return tiny_model_path(tmp_path_factory)


@pytest.fixture()
def corpus_files(tmp_path):
    """A 90-row JSONL corpus (labels removed), a 40-row labelled dev file and an LF file."""
    rows = make_corpus(90)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows)
    )
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows[:40]))
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    return {"rows": rows, "corpus": str(corpus), "dev": str(dev), "lfs": str(lfs)}
