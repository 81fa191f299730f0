"""Seeded corpora for the scale benchmarks: a synthetic four-topic news-like generator, or a
WRENCH set repeated and perturbed to any size, and the keyword LFs that label them.

Synthetic texts are 12 to 60 words: common English filler words plus one to four words of
their topic (and, for 15 % of texts, one word of another topic), so that keyword LFs are
informative but noisy, and texts of one topic embed near each other.

>>> rows = synthetic_rows(3, seed=1)
>>> [sorted(row) for row in rows][0], len({row["id"] for row in rows})
(['id', 'label', 'text'], 3)
"""

from __future__ import annotations

import json
import os

import numpy as np

CLASS_NAMES = ("WORLD", "SPORTS", "BUSINESS", "SCIENCE")
TOPIC_WORDS = (
    "government minister election president war peace treaty embassy border protest parliament refugees",
    "match goal team coach season league player championship score tournament stadium referee",
    "market shares profit company investors bank stocks revenue merger economy earnings trade",
    "research scientists study space planet climate physics genome software computer lab experiment",
)
FILLER = (
    "the of and to in is that it was for on are as with his they at be this from have or by one had "
    "not but what all were when we there can an your which their said if do will each about how up "
    "out them then she many some so these would other into has more her two like him see time could "
    "no make than first been its who now people my made over did down only way find use may water "
    "long little very after words called just where most know get through back much before go good "
    "new write our used me man too any day same right look think also around another came come work "
    "three word must because does part even place well such here take why things help put years "
    "different away again off went old number great tell men say small every found still between "
    "name should home big give air line set own under read last never us left end along while might "
    "next sound below saw something thought both few those always looked show large often together "
    "asked house world going want school important until form food keep children feet land side "
    "without once life enough took sometimes four head above kind began almost live page got earth "
    "need far hand high year mother light country father let night following picture being study "
    "second soon times story since white days ever paper hard near better best across during today "
    "however sure means knew try told young miles sun ways thing whole hear example heard several "
    "change answer room sea against top turned learn point city play toward five using usually"
).split()
NOISE_SHARE = 0.15


def synthetic_rows(n: int, seed: int) -> list[dict]:
    """``n`` seeded news-like rows ``{id, text, label}`` (label = topic index)."""
    rng = np.random.default_rng(seed)
    topics = [words.split() for words in TOPIC_WORDS]
    labels = rng.integers(0, len(CLASS_NAMES), n)
    lengths = rng.integers(12, 61, n)
    topical = rng.integers(1, 5, n)
    filler = np.asarray(FILLER)[rng.integers(0, len(FILLER), int(lengths.sum()))].tolist()
    noisy = rng.random(n) < NOISE_SHARE
    picks = rng.integers(0, 12, (n, 5)).tolist()
    rows, start = [], 0
    for i in range(n):
        words = filler[start : start + int(lengths[i])]
        start += int(lengths[i])
        label = int(labels[i])
        for slot in range(int(topical[i])):
            words[(picks[i][slot] * 7 + slot) % len(words)] = topics[label][picks[i][slot]]
        if noisy[i]:
            words[-1] = topics[(label + 1 + picks[i][4] % 3) % len(topics)][picks[i][0]]
        rows.append({"id": f"doc{i:08d}", "text": " ".join(words), "label": label})
    return rows


def _wrench_split(data_dir: str, split: str) -> list[dict]:
    path = os.path.join(data_dir, f"{split}.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [
            {"text": row["data"]["text"], "label": int(row["label"]), "votes": [int(v) for v in row["weak_labels"]]}
            for row in json.load(handle).values()
        ]


def wrench_class_names(data_dir: str) -> tuple[str, ...]:
    """Class names of a WRENCH set (its ``label.json``, in class-id order)."""
    with open(os.path.join(data_dir, "label.json"), encoding="utf-8") as handle:
        names = json.load(handle)
    return tuple(names[str(label)] for label in range(len(names)))


def wrench_rows(data_dir: str, n: int, dev_rows: int, seed: int) -> tuple[list[dict], list[dict]]:
    """A WRENCH set's train/valid/test texts (with their ``votes``, the set's weak labels)
    repeated to ``n`` rows, and ``dev_rows`` of them (from the valid split first) with gold labels.

    Copy ``r`` > 0 of a text gets ``r`` seeded filler words inserted at seeded positions, so no
    two rows share a text (the cache and the kNN graph see distinct documents).
    """
    dev_source = _wrench_split(data_dir, "valid") + _wrench_split(data_dir, "test")
    source = dev_source + _wrench_split(data_dir, "train")
    if not source:
        raise ValueError(f"{data_dir!r} holds no train/valid/test.json in WRENCH format; pass a WRENCH dataset dir")
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = source[i % len(source)]
        words = base["text"].split()
        for _ in range(i // len(source)):
            words.insert(int(rng.integers(0, len(words) + 1)), FILLER[int(rng.integers(0, len(FILLER)))])
        rows.append({"id": f"doc{i:08d}", "text": " ".join(words), "label": base["label"], "votes": base["votes"]})
    return rows, rows[: min(dev_rows, len(dev_source), n)]


def keyword_lf_source() -> str:
    """Python source of 12 keyword LFs, three per topic of the synthetic generator, each on two
    of the topic's twelve words (so that documents with few topic words stay uncovered)."""
    lines = [
        "from transforms.core.votes import ABSTAIN, labeling_function",
        "",
        f"CLASS_NAMES = {CLASS_NAMES!r}",
    ]
    for label, words in enumerate(TOPIC_WORDS):
        vocabulary = words.split()
        for index in range(3):
            keywords = tuple(vocabulary[index * 4 : index * 4 + 2])
            lines += [
                "",
                "",
                "@labeling_function()",
                f"def {CLASS_NAMES[label].lower()}_{index}(x):",
                f"    return {label} if any(word in x.text.split() for word in {keywords!r}) else ABSTAIN",
            ]
    return "\n".join(lines) + "\n"
