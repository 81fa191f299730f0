"""Sentences/second of the MiniLM SavedModel vs the PyTorch sentence-transformers reference.

Both engines embed the same texts with the same batch size in the same process; runs
alternate (TF, reference, TF, reference, ...) so that load from other processes hits both
alike, and the best run of each is reported. Both sort texts by length before batching
(sentence-transformers' ``encode`` does it internally; the TF side uses the pipeline's own
``transforms.embed.length_sorted_inference``).

Share of peak: useful encoder FLOPs (real tokens only, no padding) per second divided by the
peak float32 FLOP/s of a large matmul measured on the same cores (best of TF and numpy,
2048 x 2048 x 2048).

Usage::

    python benchmarks/embed_throughput.py --data /work/shared/data/trec --data /work/shared/data/youtube \\
        [--model models/all-MiniLM-L6-v2] [--batch-size 16] [--limit 2000] [--repeats 3] [--json OUT]

Without ``sentence-transformers`` installed the reference figures are printed as absent and
written as null.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from typing import Callable, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import write_json  # noqa: E402
from transforms.embed import length_sorted_inference, load_text_model  # noqa: E402
from transforms.models.build_minilm import build_minilm, default_source_dir  # noqa: E402
from transforms.models.minilm import BertConfig  # noqa: E402


def read_wrench_texts(data_dir: str) -> list[str]:
    """Texts of a WRENCH dataset directory (train, valid, test splits, in that order)."""
    texts = []
    for split in ("train", "valid", "test"):
        path = os.path.join(data_dir, f"{split}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                texts += [row["data"]["text"] for row in json.load(handle).values()]
    if not texts:
        raise ValueError(f"{data_dir!r} holds no train/valid/test.json in WRENCH format; pass a WRENCH dataset dir")
    return texts


def encoder_flops(config: BertConfig, lengths: np.ndarray) -> float:
    """Useful float32 FLOPs of the encoder for texts of the given token lengths (no padding).

    Per token and layer: 2*h*(3h + h + 2*ffn) for the dense layers, 4*h*L for attention
    scores and the weighted sum (L = the text's length).
    """
    h, ffn = config.hidden_size, config.intermediate_size
    dense = 2.0 * h * (4 * h + 2 * ffn)
    per_text = lengths * dense + 4.0 * h * lengths.astype(np.float64) ** 2
    return float(config.num_hidden_layers * per_text.sum())


def peak_flops(size: int = 2048, repeats: int = 5) -> tuple[float, str]:
    """Best measured float32 matmul FLOP/s on this machine, TF and numpy; returns (value, how)."""
    import tensorflow as tf

    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    results = {}
    ta = tf.constant(a)
    tf.matmul(ta, ta).numpy()
    best = min(_timed(lambda: tf.matmul(ta, ta).numpy()) for _ in range(repeats))
    results["tf.matmul"] = 2.0 * size**3 / best
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    results["numpy @"] = 2.0 * size**3 / best
    how = max(results, key=results.get)
    return results[how], f"{how} {size}x{size}x{size} float32, best of {repeats}"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and prints the figures (and writes ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True, help="WRENCH dataset dir (repeatable)")
    parser.add_argument("--model", default="models/all-MiniLM-L6-v2", help="SavedModel dir (built if absent)")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per model call, both engines")
    parser.add_argument("--limit", type=int, default=2000, help="texts per dataset")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the headline figures here")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    build_minilm(args.model)
    model = load_text_model(args.model)
    config = BertConfig.from_model_dir(default_source_dir())
    try:
        from sentence_transformers import SentenceTransformer

        reference = SentenceTransformer(default_source_dir(), device="cpu")
    except ImportError:
        reference = None
        print("reference: sentence-transformers is not installed (pip install -e '.[reference]'); reporting TF only")

    import tensorflow as tf

    figures: dict[str, dict[str, float]] = {}
    tf_all, ref_all = [], []
    for data_dir in args.data:
        texts = read_wrench_texts(data_dir)[: args.limit]
        lengths = model.tokenize(tf.constant(texts))["lengths"].numpy()
        run_tf = lambda: length_sorted_inference(model, texts, {"model_batch_size": args.batch_size})  # noqa: E731
        run_ref = lambda: reference.encode(  # noqa: E731
            texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        tf_vectors = run_tf()  # warm-up (graph tracing)
        ref_vectors = run_ref() if reference else None
        tf_times, ref_times = [], []
        for _ in range(args.repeats):
            tf_times.append(_timed(run_tf))
            if reference:
                ref_times.append(_timed(run_ref))
        name = os.path.basename(os.path.normpath(data_dir))
        row = {
            "texts": len(texts),
            "mean_tokens": float(lengths.mean()),
            "tf_per_s": len(texts) / min(tf_times),
            "flops": encoder_flops(config, lengths),
            "tf_best_s": min(tf_times),
        }
        if reference:
            cos = cosines(tf_vectors, ref_vectors)
            row.update(reference_per_s=len(texts) / min(ref_times), min_cosine=float(cos.min()), mean_cosine=float(cos.mean()))
            ref_all.append(min(ref_times))
            row["ref_best_s"] = min(ref_times)
        figures[name] = row
        tf_all.append(min(tf_times))
        print(
            f"{name}: {len(texts)} texts, {row['mean_tokens']:.1f} tokens/text; TF {row['tf_per_s']:.1f}/s"
            + (
                f", reference {row['reference_per_s']:.1f}/s, ratio {row['tf_per_s'] / row['reference_per_s']:.3f}, "
                f"cosine min {row['min_cosine']:.7f} mean {row['mean_cosine']:.7f}"
                if reference
                else ""
            )
        )
    total_texts = sum(row["texts"] for row in figures.values())
    total_flops = sum(row["flops"] for row in figures.values())
    peak, how = peak_flops()
    tf_per_s = total_texts / sum(tf_all)
    share = (total_flops / sum(tf_all)) / peak
    headline = {
        "tf_per_s": tf_per_s,
        "reference_per_s": total_texts / sum(ref_all) if reference else None,
        "ratio": (tf_per_s / (total_texts / sum(ref_all))) if reference else None,
        "peak_flops_share": share,
        "min_cosine": min(row["min_cosine"] for row in figures.values()) if reference else None,
        "mean_cosine": (
            float(np.average([row["mean_cosine"] for row in figures.values()], weights=[row["texts"] for row in figures.values()]))
            if reference
            else None
        ),
        "peak_gflops": peak / 1e9,
        "batch_size": args.batch_size,
        "texts": total_texts,
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_start": load_before,
        "load_average_1m_end": os.getloadavg()[0],
    }
    if reference:
        import torch

        headline["torch_threads"] = torch.get_num_threads()
    print(f"peak: {peak / 1e9:.1f} GFLOP/s ({how}); TF encoder achieves {share:.1%} of it")
    print(f"1-minute load average: {load_before:.1f} at start, {headline['load_average_1m_end']:.1f} at end "
          f"({os.cpu_count()} CPUs; other processes share them, hence the interleaved runs)")
    print(json.dumps(headline, indent=2))
    print("reproduce: " + shlex.join([sys.executable, *sys.argv]))
    if args.json:
        write_json(args.json, headline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
