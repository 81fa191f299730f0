"""Seconds from an LF edit to new labels + metrics, with the iterate session.

Usage::

    python benchmarks/iterate.py --n 1000000 --lfs 100 [--json OUT] [--full_run_n 2000] [--studio_repeats 3]

A synthetic corpus of ``n`` texts (8 words each from a 2000-word vocabulary ``w0000..w1999``
whose words lean to one of 2 classes), ``--lfs`` keyword LFs
(:func:`transforms.keyword_lf`, one word each; zero-padded words, so that an LF matches
one word, not every word it is a prefix of), a kNN graph of 20 neighbours per row drawn inside
the row's topic (similarities descending), 384-d embeddings (topic centre + noise) and 2000 dev
rows (half tuning, half held out) are put in a :class:`pipelines.iterate.Session` directly (the
cache loader is tested in ``tests/test_iterate.py``). After one full refit (``full_refit_seconds``,
the pipeline's fit), LF 0 is edited ``--repeats`` times (a second keyword added, a different one
each time), each followed by ``Session.relabel(refit="fast")``:

``--heavy_edit 1`` adds a 3-character prefix instead (``w02`` matches 100 words, about a third
of the rows), so the edited LF's extended column changes on most rows.

* ``apply_seconds``: applying the edited LF (vectorised, pyarrow compute), median;
* ``relabel_seconds``: everything after the apply until new labels of every row, LF table and
  dev metrics (nearest voters from the cached graph, threshold, extension, statistics update,
  label model refit, scores, end-model blend), median; ``relabel_seconds_first`` /
  ``relabel_seconds_max`` the first and the slowest edit.

* ``max_prob_diff_fast_vs_full`` / ``labels_differing_fast_vs_full``: the fast path against the
  full one with the same pinned choices: a fast relabel without an edit against the full
  refit, and after the edits against ``label_batch`` of the fitted labeler it returns;
* ``studio_round_trip_seconds`` (``--studio_repeats``, median; ``_max``): one edit in the LF
  studio over HTTP: POST the edited LF file, the server re-applies the changed LF and
  relabels (fast) and answers the page's JSON (the browser's render is not included).

``full_run_seconds``: the same edit done by a full ``weak_label`` pipeline run (FnApiRunner, the
tiny test model) reading embeddings and graph from ``--cache_dir``, at ``--full_run_n`` rows
(a full run at ``n`` takes far longer); ``relabel_seconds_at_full_run_n`` is the session's fast
relabel at that size (after a full refit of the cached snapshot), for the ratio.
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

from benchmarks.results_io import write_json  # noqa: E402
from pipelines.iterate import Session  # noqa: E402
from transforms import keyword_lf  # noqa: E402
from transforms.core.knn import l2_normalise  # noqa: E402
from transforms.core.labeler import LabelerConfig, label_batch  # noqa: E402

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
    texts = [" ".join(f"w{w:04d}" for w in row) for row in words]
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
    lfs = [keyword_lf(f"kw_{j}", [word(j)], j % 2) for j in range(num_lfs)]
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


def time_edits(session: Session, repeats: int, heavy: bool = False) -> dict:
    """A full refit, then ``repeats`` edits of LF 0 (a second keyword added, a different one
    each time), each followed by a fast relabel. ``heavy``: the keyword is a 3-character
    prefix (``w02``: 100 words, about a third of the rows), so the edit changes most rows.

    Returns:
        ``full_refit_seconds``; per edit the median ``apply_seconds`` (the LF's vectorised
        apply) and ``relabel_seconds`` (everything after the apply: nearest voters, threshold,
        extension, statistics, label model, scores of every row, LF table, dev metrics), the
        first and the slowest edit, and the last result's text.
    """
    full = session.relabel(refit="full")
    unedited = session.relabel(refit="fast")  # no edit: must equal the full refit
    diff_unedited = float(np.abs(unedited.labels.probs - full.labels.probs).max())
    applies, relabels = [], []
    for repeat in range(repeats):
        start = time.perf_counter()
        keyword = f"w{(2 + 2 * repeat) % 20:02d}" if heavy else word(2 + 2 * repeat)
        session.set_lf(keyword_lf("kw_0", [word(0), keyword], 0))
        set_seconds = time.perf_counter() - start
        result = session.relabel(refit="fast")
        applies.append(session.last_apply_seconds)
        relabels.append(set_seconds - session.last_apply_seconds + result.seconds)
    expected = label_batch(result.fitted, session.votes, session.nn_sim, session.nn_vote, session.embeddings)
    return {
        "full_refit_seconds": full.seconds,
        # fast vs full with the same pinned choices: unedited (vs the full refit) and after the
        # edits (vs label_batch of the fitted labeler the fast path returns).
        "max_prob_diff_fast_vs_full": max(diff_unedited, float(np.abs(result.labels.probs - expected.probs).max())),
        "labels_differing_fast_vs_full": int((result.labels.label != expected.label).sum())
        + int((unedited.labels.label != full.labels.label).sum()),
        "apply_seconds": statistics.median(applies),
        "relabel_seconds": statistics.median(relabels),
        "relabel_seconds_first": relabels[0],
        "relabel_seconds_max": max(relabels),
        "text": result.format(),
    }


def time_studio_edits(session: Session, num_lfs: int, repeats: int, workdir: str) -> dict:
    """The studio's round trip for one edit: POST the edited LF file over HTTP, the server
    re-applies the changed LF, relabels (fast) and answers the page's JSON; median of
    ``repeats`` edits (the browser's render is not included)."""
    import requests

    from pipelines.studio import Studio, serve

    path = os.path.join(workdir, "studio_lfs.py")
    lines = [f'kw_{j} = keyword_lf("kw_{j}", ["{word(j)}"], {j % 2})' for j in range(num_lfs)]
    with open(path, "w") as handle:
        handle.write(LF_FILE_HEADER + "\n".join(lines) + "\n")
    server = serve(Studio(session, path, os.path.join(workdir, "export"), result=session.relabel(refit="full")))
    token = server.url.split("token=")[1]
    base = server.url.split("/?")[0]
    trips, sizes = [], []
    try:
        for repeat in range(repeats):
            lines[0] = f'kw_0 = keyword_lf("kw_0", ["{word(0)}", "{word(40 + 2 * repeat)}"], 0)'
            start = time.perf_counter()
            response = requests.post(base + "/api/source", json={"source": LF_FILE_HEADER + "\n".join(lines) + "\n"},
                                     headers={"X-Studio-Token": token}, timeout=600)  # fmt: skip
            trips.append(time.perf_counter() - start)
            state = response.json()
            assert state["applied"] == ["kw_0"], state.get("error")
            sizes.append(len(response.content))
    finally:
        server.stop()
    return {"studio_round_trip_seconds": statistics.median(trips), "studio_round_trip_seconds_max": max(trips),
            "studio_response_bytes": statistics.median(sizes)}  # fmt: skip


LF_FILE_HEADER = "from transforms import keyword_lf\n"


def word(j: int) -> str:
    """The ``j``-th vocabulary word (zero-padded: no word is a substring of another)."""
    return f"w{j:04d}"


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
    header = LF_FILE_HEADER
    lines = [f'kw_{j} = keyword_lf("kw_{j}", ["{word(j)}"], {j % 2})' for j in range(num_lfs)]
    edited = list(lines)
    edited[0] = f'kw_0 = keyword_lf("kw_0", ["{word(0)}", "{word(2)}"], 0)'
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
    session = Session.open(cache, lf_files[0])
    session.relabel(refit="full")
    start = time.perf_counter()
    session.set_lf(keyword_lf("kw_0", [word(0), word(2)], 0))
    set_seconds = time.perf_counter() - start - session.last_apply_seconds
    return full_seconds, set_seconds + session.relabel(refit="fast").seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--lfs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--end_model", type=int, default=1, help="1 = the default config, 0 = no end model")
    parser.add_argument("--full_run_n", type=int, default=2000, help="0 = skip the full pipeline run")
    parser.add_argument("--heavy_edit", type=int, default=0,
                        help="1 = the edit adds a word prefix matching ~1/3 of the rows")  # fmt: skip
    parser.add_argument("--studio_repeats", type=int, default=3, help="studio edits over HTTP (0 = skip)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    corpus = synthetic_corpus(args.n)
    config = LabelerConfig(end_model=bool(args.end_model))
    session = build_session(corpus, args.lfs, config)
    open_seconds = time.perf_counter() - start
    timed = time_edits(session, args.repeats, heavy=bool(args.heavy_edit))
    print("\n".join(timed.pop("text").splitlines()[-3:]))
    if args.studio_repeats:
        with tempfile.TemporaryDirectory(prefix="epoxy-studio-bench-") as workdir:
            timed.update(time_studio_edits(session, args.lfs, args.studio_repeats, workdir))
    result = {"n": args.n, "lfs": args.lfs, "end_model": bool(args.end_model),
              "heavy_edit": bool(args.heavy_edit), **timed,
              "setup_seconds": open_seconds, "load_average_1min": os.getloadavg()[0]}  # fmt: skip
    if args.full_run_n:
        with tempfile.TemporaryDirectory(prefix="epoxy-iterate-bench-") as workdir:
            full_seconds, small_relabel = full_run(args.full_run_n, args.lfs, workdir)
        result.update(
            full_run_seconds=full_seconds,
            full_run_n=args.full_run_n,
            relabel_seconds_at_full_run_n=small_relabel,
        )
    print(f"n={args.n} lfs={args.lfs} end_model={bool(args.end_model)}: relabel {result['relabel_seconds']:.3f}s "
          f"(median of {args.repeats} edits; first {result['relabel_seconds_first']:.3f}s, max "
          f"{result['relabel_seconds_max']:.3f}s), edited LF apply {result['apply_seconds']:.3f}s, full "
          f"refit {result['full_refit_seconds']:.1f}s, session setup {open_seconds:.1f}s, load average "
          f"{result['load_average_1min']:.1f}")
    print(f"fast vs full (same pinned choices): max probability difference "
          f"{result['max_prob_diff_fast_vs_full']:.2e}, labels differing {result['labels_differing_fast_vs_full']}")
    if args.studio_repeats:
        print(f"studio round trip for one edit (HTTP, server side): {result['studio_round_trip_seconds']:.3f}s "
              f"median of {args.studio_repeats} (max {result['studio_round_trip_seconds_max']:.3f}s)")
    if args.full_run_n:
        print(f"full pipeline run from cache at n={args.full_run_n}: {result['full_run_seconds']:.1f}s vs "
              f"session relabel {result['relabel_seconds_at_full_run_n']:.3f}s at that n")
    command = "python benchmarks/iterate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"reproduce: {command}")
    if args.json:
        result["command"] = command
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
