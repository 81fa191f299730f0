"""Seconds from an LF edit to new labels + metrics, with the iterate session.

Usage::

    python benchmarks/iterate.py --n 1000000 --lfs 100 [--json OUT] [--full_run_n 2000]

A synthetic corpus of ``n`` texts (8 words each from a 2000-word vocabulary whose words lean to
one of 2 classes), ``--lfs`` keyword LFs (:func:`pipelines.iterate.keyword_lf`, one word each),
a kNN graph of 20 neighbours per row drawn inside the row's topic (similarities descending),
384-d embeddings (topic centre + noise) and 2000 dev rows (half tuning, half held out) are put
in a :class:`pipelines.iterate.Session` directly (the cache loader is tested in
``tests/test_iterate.py``). Then one LF is edited (a second keyword added):

* ``apply_seconds``: applying the edited LF (vectorised, pyarrow compute) and its nearest voters;
* ``relabel_seconds``: :meth:`Session.relabel` (thresholds, statistics, label model, end model,
  labels of every row, LF table, dev metrics), the median of ``--repeats`` runs.

``full_run_seconds``: the same edit done by a full ``weak_label`` pipeline run (FnApiRunner, the
tiny test model) reading embeddings and graph from ``--cache_dir``, at ``--full_run_n`` rows
(a full run at ``n`` takes far longer: see the printed note); ``relabel_seconds_at_full_run_n``
is the session's time at that size, for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.iterate import Session, keyword_lf  # noqa: E402
from transforms.core.knn import l2_normalise  # noqa: E402
from transforms.core.labeler import LabelerConfig  # noqa: E402

VOCABULARY = 2000
TOPICS = 200


def synthetic_corpus(n: int, seed: int = 0) -> dict:
    """Texts, gold classes, topics, a kNN graph and embeddings."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, TOPICS, n)
    y = topic % 2
    word_class = np.arange(VOCABULARY) % 2
    class_words = [np.flatnonzero(word_class == c) for c in (0, 1)]
    own = rng.random((n, 8)) < 0.7
    pick = rng.integers(0, VOCABULARY // 2, (n, 8))
    words = np.where(own, np.take(np.stack(class_words), y, axis=0)[np.arange(n)[:, None], pick],
                     rng.integers(0, VOCABULARY, (n, 8)))  # fmt: skip
    texts = [" ".join(f"w{w}" for w in row) for row in words]
    order = np.argsort(topic, kind="stable")
    starts = np.searchsorted(topic[order], np.arange(TOPICS))
    sizes = np.bincount(topic, minlength=TOPICS)
    k = 20
    offsets = rng.integers(0, np.maximum(sizes[topic], 1)[:, None], (n, k))
    neighbours = order[starts[topic][:, None] + offsets]
    neighbours = np.where(neighbours == np.arange(n)[:, None], (neighbours + 1) % n, neighbours)
    sims = np.sort(rng.uniform(0.3, 0.95, (n, k)).astype(np.float32), axis=1)[:, ::-1].copy()
    centres = rng.normal(size=(TOPICS, 384)).astype(np.float32)
    embeddings = np.empty((n, 384), np.float32)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        noise = rng.normal(size=(stop - start, 384)).astype(np.float32)
        embeddings[start:stop] = l2_normalise(centres[topic[start:stop]] + 2.0 * noise)
    return {"texts": texts, "y": y, "neighbours": neighbours, "sims": sims, "embeddings": embeddings}


def build_session(corpus: dict, num_lfs: int, config: LabelerConfig) -> Session:
    """A session over the synthetic corpus with ``num_lfs`` keyword LFs."""
    n = len(corpus["texts"])
    ids = np.asarray([f"d{i:08d}" for i in range(n)])
    dev = np.zeros(n, bool)
    dev[np.linspace(0, n - 1, min(n, 2000)).astype(np.int64)] = True
    tune = dev & (np.arange(n) % 2 == 0)
    texts = pa.array(corpus["texts"])
    lfs = [keyword_lf(f"kw_{j}", [f"w{j}"], j % 2) for j in range(num_lfs)]
    votes = np.stack([lf.vectorised(texts) for lf in lfs], axis=1)
    return Session(
        ids=ids,
        texts=texts,
        fields_json=None,
        gold=np.where(tune, corpus["y"], -1),
        eval_gold=np.where(dev, corpus["y"], -1),
        split=np.where(tune, "tune", np.where(dev, "holdout", "corpus")),
        neighbours=corpus["neighbours"],
        sims=corpus["sims"],
        embeddings=corpus["embeddings"] if config.end_model else None,
        lfs=lfs,
        votes=votes,
        config=config,
    )


def time_edit(session: Session, repeats: int) -> tuple[float, float, str]:
    """Edits LF 0 (adds a keyword), relabels ``repeats`` times; returns apply, relabel, digest."""
    start = time.perf_counter()
    session.set_lf(keyword_lf("kw_0", ["w0", "w2"], 0))
    apply_seconds = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        result = session.relabel()
        times.append(result.seconds)
    return apply_seconds, statistics.median(times), result.format()


def full_run(n: int, num_lfs: int, workdir: str) -> tuple[float, float]:
    """A cached full pipeline run after the same edit, and the session's relabel, at ``n`` rows."""
    from pipelines import weak_label
    from transforms.models.tiny import build_tiny_text_model

    corpus = synthetic_corpus(n, seed=1)
    model = os.path.join(workdir, "tiny_model")
    build_tiny_text_model(model)
    data = os.path.join(workdir, "corpus.jsonl")
    with open(data, "w") as handle:
        for i, (text, y) in enumerate(zip(corpus["texts"], corpus["y"])):
            handle.write(json.dumps({"id": f"d{i:08d}", "text": text, "label": int(y)}) + "\n")
    header = "from pipelines.iterate import keyword_lf\n"
    lines = [f'kw_{j} = keyword_lf("kw_{j}", ["w{j}"], {j % 2})' for j in range(num_lfs)]
    edited = list(lines)
    edited[0] = 'kw_0 = keyword_lf("kw_0", ["w0", "w2"], 0)'
    lf_files = []
    names = ", ".join(f"kw_{j}" for j in range(num_lfs))
    for name, body in (("lfs.py", lines), ("edited.py", edited)):
        path = os.path.join(workdir, name)
        with open(path, "w") as handle:
            handle.write(header + "\n".join(body) + f"\nLFS = [{names}]\n")
        lf_files.append(path)
    cache = os.path.join(workdir, "cache")
    argv = ["--input", data, "--dev_input", data, "--model", model, "--cache_dir", cache,
            "--runner=FnApiRunner", "--holdout_fraction", "0.5"]  # fmt: skip
    weak_label.run(argv + ["--labeling_functions", lf_files[0], "--output", os.path.join(workdir, "o1")])
    start = time.perf_counter()
    weak_label.run(argv + ["--labeling_functions", lf_files[1], "--output", os.path.join(workdir, "o2")])
    full_seconds = time.perf_counter() - start
    session = Session.open(cache)
    session.set_lf(keyword_lf("kw_0", ["w0", "w2"], 0))
    return full_seconds, session.relabel().seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--lfs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--end_model", type=int, default=1, help="1 = the default config, 0 = no end model")
    parser.add_argument("--full_run_n", type=int, default=2000, help="0 = skip the full pipeline run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    corpus = synthetic_corpus(args.n)
    config = LabelerConfig(end_model=bool(args.end_model))
    session = build_session(corpus, args.lfs, config)
    open_seconds = time.perf_counter() - start
    apply_seconds, relabel_seconds, digest = time_edit(session, args.repeats)
    print("\n".join(digest.splitlines()[-3:]))
    result = {
        "n": args.n,
        "lfs": args.lfs,
        "end_model": bool(args.end_model),
        "relabel_seconds": relabel_seconds,
        "apply_seconds": apply_seconds,
        "setup_seconds": open_seconds,
    }
    if args.full_run_n:
        with tempfile.TemporaryDirectory(prefix="epoxy-iterate-bench-") as workdir:
            full_seconds, small_relabel = full_run(args.full_run_n, args.lfs, workdir)
        result.update(
            full_run_seconds=full_seconds,
            full_run_n=args.full_run_n,
            relabel_seconds_at_full_run_n=small_relabel,
        )
    print(f"n={args.n} lfs={args.lfs} end_model={bool(args.end_model)}: relabel {relabel_seconds:.3f}s "
          f"(median of {args.repeats}), edited LF apply + re-extend {apply_seconds:.3f}s, session setup "
          f"{open_seconds:.1f}s")
    if args.full_run_n:
        print(f"full pipeline run from cache at n={args.full_run_n}: {result['full_run_seconds']:.1f}s vs "
              f"session relabel {result['relabel_seconds_at_full_run_n']:.3f}s at that n")
    command = "python benchmarks/iterate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"reproduce: {command}")
    if args.json:
        result["command"] = command
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
