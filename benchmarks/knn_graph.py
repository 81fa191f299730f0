"""Recall and speed of the partitioned ScaNN kNN graph against exact blocked search.

Usage::

    python benchmarks/knn_graph.py --n 100000 --dim 384 [--k 10] [--json OUT]
        [--real /work/shared/data] [--partition_rows 100000] [--spill 0 (auto)]

* **Synthetic** (``--n``, ``--dim``): clustered vectors with a low intrinsic dimension (a mixture of
  ``n / 1000`` Gaussian clusters in 32 latent dimensions, randomly projected to ``dim`` and
  perturbed by isotropic noise), generated in chunks, seed 0.
* **Real** (``--real DIR``): youtube + trec texts (train/valid/test) embedded with the project's
  all-MiniLM-L6-v2 SavedModel (cached under ``.cache/embeddings/``), with their real LF votes.

The approximate graph is :func:`transforms.knn_graph.knn_graph_in_memory`: the Beam stage's own
steps (centroids, home/spill partitions, groups capped at ``max_group_rows``, a ScaNN index per
group, exact re-scoring, merge) in one process. The exact reference is a blocked numpy matmul
(the algorithm of :func:`transforms.core.knn.exact_knn`) over a sample of ``--exact_sample``
queries against the whole corpus; ``seconds_exact`` is that time scaled to ``n`` queries (marked
``exact_extrapolated``). ``recall`` = recall@k on the sample, counting ties: a returned neighbour
is a hit when its exact similarity is at least the k-th exact similarity (less
:data:`TIE_TOLERANCE`), so that among duplicates (real corpora repeat texts: identical vectors)
any of the tied rows is a true neighbour, as in ANN-Benchmarks' threshold recall.
``recall_ids`` is the plain id-overlap recall, which counts a tied duplicate as a miss.

``extension_disagreement``: share of (document, LF) cells of the sample whose *extended* vote
differs between the kNN graph and exact Epoxy (nearest voter over all of the LF's voters), with
per-LF thresholds = the 0.5 quantile of the LF's voters' nearest-voter similarity. Then the
per-LF exact fallback (:func:`transforms.core.knn_merge.exact_nearest_voters` over the voters of
every LF whose coverage is at most ``--fallback_max_voters``) replaces those LFs' columns:
``extension_disagreement_with_fallback``; ``fallback_seconds`` is its cost scaled to ``n``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import write_json  # noqa: E402
from transforms.core.extension import extend_votes, nearest_voters  # noqa: E402
from transforms.core.knn import l2_normalise  # noqa: E402
from transforms.core.knn_merge import exact_nearest_voters, searched_partitions  # noqa: E402
from transforms.core.labeler import quantile_thresholds  # noqa: E402
from transforms.core.votes import ABSTAIN  # noqa: E402
from transforms.knn_graph import knn_graph_in_memory  # noqa: E402
from transforms.neighbours import NeighbourConfig  # noqa: E402


def synthetic_vectors(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors ``float32 [n, dim]`` and their cluster ids."""
    rng = np.random.default_rng(seed)
    clusters = max(10, n // 1000)
    latent = 32
    centres = rng.normal(size=(clusters, latent)).astype(np.float32) * 2.0
    projection = rng.normal(size=(latent, dim)).astype(np.float32) / np.sqrt(latent)
    labels = rng.integers(0, clusters, n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        z = centres[labels[start:stop]] + rng.normal(size=(stop - start, latent)).astype(np.float32)
        x = z @ projection + 0.3 * rng.normal(size=(stop - start, dim)).astype(np.float32)
        out[start:stop] = l2_normalise(x)
    return out, labels


def synthetic_votes(labels: np.ndarray, num_lfs: int, seed: int = 1) -> np.ndarray:
    """LFs that vote on a few clusters each (class = cluster parity, 85% accurate), coverage
    from 0.05% to 10%."""
    rng = np.random.default_rng(seed)
    n = labels.size
    clusters = int(labels.max()) + 1
    votes = np.full((n, num_lfs), ABSTAIN, np.int8)
    coverages = np.geomspace(0.0005, 0.1, num_lfs)
    for j, coverage in enumerate(coverages):
        chosen = rng.choice(clusters, max(1, clusters // 10), replace=False)
        in_chosen = np.isin(labels, chosen)
        p = min(1.0, coverage * n / max(1, in_chosen.sum()))
        fire = in_chosen & (rng.random(n) < p)
        truth = labels % 2
        vote = np.where(rng.random(n) < 0.85, truth, 1 - truth)
        votes[fire, j] = vote[fire]
    return votes


TIE_TOLERANCE = 1e-5


def tie_aware_recall(
    x: np.ndarray, rows: np.ndarray, approx: np.ndarray, exact: np.ndarray
) -> float:
    """Mean share of ``approx [q, k]`` neighbours of ``rows`` whose exact similarity reaches the
    k-th of ``exact [q, k]`` (less :data:`TIE_TOLERANCE`); missing slots (``-1``) are misses.

    >>> x = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8], [0.0, 1.0]], np.float32)
    >>> exact = np.array([[1]])  # row 0's nearest: row 1, tied with its duplicate row 2
    >>> tie_aware_recall(x, np.array([0]), np.array([[2]]), exact), tie_aware_recall(x, np.array([0]), np.array([[3]]), exact)
    (1.0, 0.0)
    """
    kth = np.einsum("qd,qd->q", x[rows], x[exact[:, -1]])
    sims = np.einsum("qd,qkd->qk", x[rows], x[np.maximum(approx, 0)])
    hits = (sims >= kth[:, None] - TIE_TOLERANCE) & (approx >= 0) & (approx != rows[:, None])
    return float(hits.mean())


def exact_sample(
    x: np.ndarray, rows: np.ndarray, k: int, block_size: int = 256
) -> tuple[np.ndarray, float]:
    """Exact top-k (self excluded) of ``rows`` by blocked matmul; returns (indices, seconds)."""
    start_time = time.perf_counter()
    out = np.empty((rows.size, k), np.int64)
    for start in range(0, rows.size, block_size):
        block_rows = rows[start : start + block_size]
        sims = x[block_rows] @ x.T
        sims[np.arange(block_rows.size), block_rows] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[start : start + block_rows.size] = np.take_along_axis(part, order, axis=1)
    return out, time.perf_counter() - start_time


def extension_disagreement(
    x: np.ndarray,
    votes: np.ndarray,
    neighbours: np.ndarray,
    sims: np.ndarray,
    rows: np.ndarray,
    fallback_max_voters: int,
) -> dict[str, float]:
    """Disagreement of graph-based vs exact extension on ``rows``, without and with fallback."""
    pos = np.maximum(neighbours[rows], 0)
    neighbour_votes = np.where(neighbours[rows][..., None] >= 0, votes[pos], ABSTAIN)
    g_sim, g_vote = nearest_voters(sims[rows], neighbour_votes)
    thresholds = quantile_thresholds(votes[rows], g_sim, 0.5)
    m = votes.shape[1]
    e_sim = np.empty_like(g_sim)
    e_vote = np.empty_like(g_vote)
    f_sim, f_vote = g_sim.copy(), g_vote.copy()
    fallback_seconds = 0.0
    fallback_lfs = 0
    for j in range(m):
        voters = np.flatnonzero(votes[:, j] != ABSTAIN)
        start = time.perf_counter()
        e_sim[:, j], e_vote[:, j] = exact_nearest_voters(x[rows], rows, x[voters], voters, votes[voters, j])
        elapsed = time.perf_counter() - start
        if voters.size <= fallback_max_voters:
            fallback_lfs += 1
            fallback_seconds += elapsed * x.shape[0] / rows.size
            f_sim[:, j], f_vote[:, j] = e_sim[:, j], e_vote[:, j]
    local = votes[rows]
    graph = extend_votes(local, g_sim, g_vote, thresholds)
    exact = extend_votes(local, e_sim, e_vote, thresholds)
    fallback = extend_votes(local, f_sim, f_vote, thresholds)
    return {
        "extension_disagreement": float((graph != exact).mean()),
        "extension_disagreement_with_fallback": float((fallback != exact).mean()),
        "nearest_voter_beyond_k": float((np.isfinite(e_sim) & ~np.isfinite(g_sim)).mean()),
        "fallback_lfs": float(fallback_lfs),
        "fallback_seconds": fallback_seconds,
    }


def run_case(
    name: str, x: np.ndarray, votes: np.ndarray, args: argparse.Namespace
) -> dict[str, float]:
    """Approximate graph, exact sample, recall, speed-up, shuffle bytes, disagreement."""
    n = x.shape[0]
    config = NeighbourConfig(
        num_neighbours=args.k,
        partition_rows=args.partition_rows,
        spill=args.spill,
        max_group_rows=args.max_group_rows,
        leaves_to_search_share=args.leaves_to_search_share,
        brute_force_max_rows=args.brute_force_max_rows,
        reorder_multiplier=args.reorder_multiplier,
        tree_training_rows=args.tree_training_rows,
        quantizer_training_rows=args.quantizer_training_rows,
    )
    start = time.perf_counter()
    neighbours, sims, figures = knn_graph_in_memory(x, config)
    seconds_approx = time.perf_counter() - start
    rng = np.random.default_rng(7)
    rows = np.sort(rng.choice(n, min(n, args.exact_sample), replace=False))
    exact, exact_seconds = exact_sample(x, rows, args.k)
    recall_ids = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(neighbours[rows], exact)]))
    seconds_exact = exact_seconds * n / rows.size
    result = {
        "case": name,
        "n": n,
        "k": args.k,
        "dim": int(x.shape[1]),
        "recall": tie_aware_recall(x, rows, neighbours[rows], exact),
        "recall_ids": recall_ids,
        "seconds_approx": seconds_approx,
        "seconds_exact": seconds_exact,
        "exact_extrapolated": rows.size < n,
        "speedup": seconds_exact / seconds_approx,
        "shuffle_bytes": figures["shuffle_bytes"],
        "shuffle_bytes_per_row": figures["shuffle_bytes"] / n,
        "partitions": figures["partitions"],
        "groups": figures["groups"],
        "max_group_rows": figures["max_group_rows"],
        "spill": args.spill,
        "spill_used": float(searched_partitions(args.spill, int(figures["partitions"]))),
    }
    if votes is not None:
        result.update(extension_disagreement(x, votes, neighbours, sims, rows, args.fallback_max_voters))
    return result


def real_corpus(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """youtube + trec embeddings (MiniLM) and their LF votes (block-diagonal: own LFs only)."""
    from benchmarks.wrench import DEFAULT_MODEL_DIR, embed_texts, load_wrench

    vectors, vote_blocks = [], []
    for name in ("youtube", "trec"):
        path = os.path.join(data_dir, name)
        data = load_wrench(path)
        for split in ("train", "valid", "test"):
            part = data["splits"][split]
            texts = [row["text"] for row in part["data"]]
            vectors.append(embed_texts(texts, DEFAULT_MODEL_DIR, f"{path}\0{split}\0text"))
            vote_blocks.append((name, part["votes"]))
    widths = {name: block.shape[1] for name, block in vote_blocks}
    offsets = {"youtube": 0, "trec": widths["youtube"]}
    total = sum(widths.values())
    rows = []
    for name, block in vote_blocks:
        padded = np.full((block.shape[0], total), ABSTAIN, np.int8)
        padded[:, offsets[name] : offsets[name] + block.shape[1]] = block
        rows.append(padded)
    return l2_normalise(np.concatenate(vectors)), np.concatenate(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--lfs", type=int, default=20, help="synthetic LFs for the disagreement")
    parser.add_argument("--partition_rows", type=int, default=NeighbourConfig.partition_rows)
    parser.add_argument("--spill", type=int, default=NeighbourConfig.spill)
    parser.add_argument("--max_group_rows", type=int, default=NeighbourConfig.max_group_rows)
    parser.add_argument("--leaves_to_search_share", type=float, default=NeighbourConfig.leaves_to_search_share)
    parser.add_argument("--brute_force_max_rows", type=int, default=NeighbourConfig.brute_force_max_rows)
    parser.add_argument("--reorder_multiplier", type=int, default=NeighbourConfig.reorder_multiplier)
    parser.add_argument("--tree_training_rows", type=int, default=NeighbourConfig.tree_training_rows)
    parser.add_argument("--quantizer_training_rows", type=int, default=NeighbourConfig.quantizer_training_rows)
    parser.add_argument("--exact_sample", type=int, default=1000)
    parser.add_argument("--fallback_max_voters", type=int, default=2000)
    parser.add_argument("--real", default=None, help="WRENCH data root with youtube/ and trec/")
    parser.add_argument("--real_partition_rows", type=int, default=2000)
    parser.add_argument("--json", default=None, help="write the headline figures here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    x, labels = synthetic_vectors(args.n, args.dim)
    votes = synthetic_votes(labels, args.lfs)
    print(f"generated {args.n} x {args.dim} synthetic vectors in {time.perf_counter() - start:.1f}s")
    results = [run_case("synthetic", x, votes, args)]
    del x
    if args.real:
        real_x, real_votes = real_corpus(args.real)
        real_args = argparse.Namespace(**{**vars(args), "partition_rows": args.real_partition_rows})
        results.append(run_case("real_minilm_youtube_trec", real_x, real_votes, real_args))
    for result in results:
        print(f"[{result['case']}] n={result['n']} k={result['k']} partitions={result['partitions']:.0f} "
              f"spill={result['spill']} (used {result['spill_used']:.0f}) groups={result['groups']:.0f}")
        print(f"  recall@{result['k']} = {result['recall']:.4f} (on {min(result['n'], args.exact_sample)} queries)")
        print(f"  approx {result['seconds_approx']:.1f}s, exact {result['seconds_exact']:.1f}s"
              f"{' (extrapolated from the sample)' if result['exact_extrapolated'] else ''}, "
              f"speed-up {result['speedup']:.1f}x")
        print(f"  shuffle {result['shuffle_bytes'] / 1e9:.3f} GB ({result['shuffle_bytes_per_row']:.0f} B/row)")
        if "extension_disagreement" in result:
            print(f"  extension disagreement vs exact Epoxy: {result['extension_disagreement']:.5f} of cells; "
                  f"with the per-LF fallback ({result['fallback_lfs']:.0f} LFs, "
                  f"{result['fallback_seconds']:.1f}s at n): {result['extension_disagreement_with_fallback']:.5f}")
    command = "python benchmarks/knn_graph.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"reproduce: {command}")
    if args.json:
        headline = dict(results[0])
        for result in results[1:]:
            headline.update({f"{result['case']}_{key}": value for key, value in result.items() if key != "case"})
        headline["command"] = command
        write_json(args.json, headline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
