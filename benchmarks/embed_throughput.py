"""Sentences/second of the MiniLM SavedModel (precision variants) vs the PyTorch reference.

Both engines embed the same texts with the same batch size in the same process; runs
alternate (TF, reference, TF, reference, ...) so that load from other processes hits both
alike, and the best run of each is reported. Both sort texts by length before batching
(sentence-transformers' ``encode`` does it internally; the TF side uses the pipeline's own
``transforms.embed.length_sorted_inference``).

``--variants`` runs several ways of executing the same model in the same interleaved loop:

* ``fp32``: the SavedModel as the pipeline runs it (always run: it is the cosine baseline);
* ``bf16``: the same SavedModel with ``EmbedConfig(precision="bf16")``, i.e. TF's oneDNN
  bfloat16 auto-mixed-precision rewrite (``transforms.embed.apply_precision``);
* ``xla``: the encoder XLA-compiled (``tf.function(jit_compile=True)``) for a handful of padded
  lengths (:data:`XLA_BUCKETS`) and a fixed row count, so that compiled shapes are reused; the
  encoder is built in memory from the same weights because the SavedModel fuses tokenizer
  (string ops, not XLA-compilable) and encoder in one signature.

A variant may carry its own model batch size, ``NAME@N`` (e.g. ``bf16@64``); without one it
uses ``--batch-size``. Each variant's vectors are compared with the fp32 vectors of the same texts (min and mean
cosine). The fp32 SavedModel matches the PyTorch reference at min cosine 0.9999998
(``benchmarks/results/embed_throughput.json``), so cosine against fp32 is the proxy for cosine
against the reference when sentence-transformers is not installed.

Share of peak: useful encoder FLOPs (real tokens only, no padding) per second divided by the
peak float32 FLOP/s of a large matmul measured on the same cores (best of TF and numpy,
2048 x 2048 x 2048), measured before and after the runs, the higher figure kept (under load
from other processes a single measurement reads low and inflates the share); the bf16 variant is also given against the measured bf16 matmul peak.

Usage::

    python benchmarks/embed_throughput.py --data /work/shared/data/trec --data /work/shared/data/youtube \\
        [--model models/all-MiniLM-L6-v2] [--batch-size 16] [--limit 2000] [--repeats 3] \\
        [--variants fp32,bf16,xla] [--json OUT]

Without ``sentence-transformers`` installed the reference figures are printed as absent and
written as null.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import finish  # noqa: E402
from transforms.embed import apply_precision, length_sorted_inference, load_text_model  # noqa: E402
from transforms.models.build_minilm import build_minilm, default_source_dir  # noqa: E402
from transforms.models.minilm import BertConfig, MiniLMEmbedder, load_source  # noqa: E402

VARIANTS = ("fp32", "bf16", "xla")
XLA_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256)


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
    results: dict[str, float] = {}
    ta = tf.constant(a)
    tf.matmul(ta, ta).numpy()
    best = min(_timed(lambda: tf.matmul(ta, ta).numpy()) for _ in range(repeats))
    results["tf.matmul"] = 2.0 * size**3 / best
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    results["numpy @"] = 2.0 * size**3 / best
    how = max(results, key=results.get)
    return results[how], f"{how} {size}x{size}x{size} float32, best of {repeats}"


def peak_bf16_flops(size: int = 2048, repeats: int = 5) -> float:
    """Best measured bfloat16 ``tf.matmul`` FLOP/s (oneDNN's bf16 kernels where the CPU has them)."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal((size, size), seed=(0, 0)), tf.bfloat16)
    tf.matmul(a, a).numpy()
    return 2.0 * size**3 / min(_timed(lambda: tf.matmul(a, a).numpy()) for _ in range(repeats))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


class BucketedXlaEncoder:
    """Callable like the SavedModel (``tf.string [n]`` -> ``float32 [n, d]``), XLA-compiled.

    Tokenises with the module's tokenizer, pads the ids to the next of :data:`XLA_BUCKETS` and
    the rows to ``rows``, and runs the encoder under ``tf.function(jit_compile=True)``, so at
    most ``len(XLA_BUCKETS)`` shapes are ever compiled.

    Args:
        module: The in-memory :class:`MiniLMEmbedder`.
        rows: Row count every call is padded to (the model batch size).
    """

    def __init__(self, module: MiniLMEmbedder, rows: int) -> None:
        import tensorflow as tf

        self._module = module
        self._rows = rows
        self._encode = tf.function(lambda ids, lengths: module.encoder(ids, lengths), jit_compile=True)

    def __call__(self, texts: Any) -> np.ndarray:
        """Embeds up to ``rows`` texts."""
        tokens = self._module.tokenize(texts)
        ids, lengths = tokens["input_ids"].numpy(), tokens["lengths"].numpy()
        count, width = ids.shape
        if count > self._rows:
            raise ValueError(f"{count} texts in one call exceed rows={self._rows}; call with at most {self._rows}")
        bucket = next(size for size in XLA_BUCKETS if size >= width)
        padded_ids = np.zeros((self._rows, bucket), np.int32)
        padded_ids[:count, :width] = ids
        padded_lengths = np.zeros(self._rows, np.int32)
        padded_lengths[:count] = lengths
        return self._encode(padded_ids, padded_lengths).numpy()[:count]


def build_engines(variants: Sequence[str], model: Any, batch_size: int) -> dict[str, Callable[[list[str]], np.ndarray]]:
    """One ``texts -> unit vectors`` function per variant (fp32 first), plus ``reference`` if installed."""

    def with_precision(precision: str, target: object, rows: int) -> Callable[[list[str]], np.ndarray]:
        def run(texts: list[str]) -> np.ndarray:
            apply_precision(precision)
            return length_sorted_inference(target, texts, {"model_batch_size": rows})

        return run

    engines = {}
    for variant in ["fp32", *[name for name in variants if name != "fp32"]]:
        kind, _, rows_text = variant.partition("@")
        rows = int(rows_text or batch_size)
        if kind == "xla":
            weights, vocab, config = load_source(default_source_dir())
            engines[variant] = with_precision("fp32", BucketedXlaEncoder(MiniLMEmbedder(weights, vocab, config), rows), rows)
        else:
            engines[variant] = with_precision(kind, model, rows)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("reference: sentence-transformers is not installed (pip install -e '.[reference]'); "
              "cosine is against the fp32 SavedModel")
        return engines
    reference = SentenceTransformer(default_source_dir(), device="cpu")
    engines["reference"] = lambda texts: reference.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    return engines


def measure_dataset(engines: dict[str, Callable[[list[str]], np.ndarray]], texts: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Best time and cosine against fp32 of each engine on ``texts`` (runs interleaved)."""
    vectors = {name: run(texts) for name, run in engines.items()}  # warm-up: tracing, compiling
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(repeats):
        for name, run in engines.items():
            run(texts[:16])  # untimed: re-optimisation after a precision switch
            times[name].append(_timed(lambda: run(texts)))
    rows = {}
    for name in engines:
        cos = cosines(vectors[name], vectors["fp32"])
        rows[name] = {"best_s": min(times[name]), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
    return rows


def _is_variant(name: str) -> bool:
    kind, at, rows = name.partition("@")
    return kind in VARIANTS and (not at or (rows.isdigit() and int(rows) > 0))


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and prints the figures (and writes ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True, help="WRENCH dataset dir (repeatable)")
    parser.add_argument("--model", default="models/all-MiniLM-L6-v2", help="SavedModel dir (built if absent)")
    parser.add_argument("--batch-size", type=int, default=16, help="texts per model call, all engines")
    parser.add_argument("--limit", type=int, default=2000, help="texts per dataset")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--variants", default="fp32", help=f"comma-separated, of {','.join(VARIANTS)}, each optionally @BATCH_SIZE"
    )
    parser.add_argument("--json", default=None, help="write the headline figures here")
    args = parser.parse_args(argv)
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = sorted(name for name in variants if not _is_variant(name))
    if unknown:
        parser.error(f"--variants {args.variants!r} names {unknown}, not NAME or NAME@BATCH_SIZE with NAME in "
            f"{list(VARIANTS)}; e.g. --variants fp32,bf16,xla,bf16@64")

    import tensorflow as tf

    load_before = os.getloadavg()[0]
    peaks = [peak_flops()]
    build_minilm(args.model)
    model = load_text_model(args.model)
    engines = build_engines(variants, model, args.batch_size)
    config = BertConfig.from_model_dir(default_source_dir())
    per_dataset = {}
    for data_dir in args.data:
        texts = read_wrench_texts(data_dir)[: args.limit]
        lengths = model.tokenize(tf.constant(texts))["lengths"].numpy()
        name = os.path.basename(os.path.normpath(data_dir))
        per_dataset[name] = {"texts": len(texts), "flops": encoder_flops(config, lengths), "rows": measure_dataset(engines, texts, args.repeats)}
        print(f"{name}: {len(texts)} texts, {lengths.mean():.1f} tokens/text; " + "; ".join(
            f"{engine} {len(texts) / row['best_s']:.1f}/s cos min {row['min_cosine']:.7f}"
            for engine, row in per_dataset[name]["rows"].items()
        ))
    apply_precision("fp32")
    peak, how = max([*peaks, peak_flops()])
    peak_bf16 = peak_bf16_flops()
    headline = summarise(per_dataset, peak, peak_bf16)
    headline.update(
        peak_gflops=peak / 1e9,
        peak_bf16_gflops=peak_bf16 / 1e9,
        batch_size=args.batch_size,
        variants=",".join(engines),
        tf_intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
        cpu_count=os.cpu_count(),
        load_average_1m_start=load_before,
        load_average_1m_end=os.getloadavg()[0],
    )
    print(f"peak: {peak / 1e9:.1f} GFLOP/s ({how}); bf16 tf.matmul {peak_bf16 / 1e9:.1f} GFLOP/s")
    for engine in engines:
        print(f"{engine}: {headline[f'{engine}_per_s']:.1f} texts/s, {headline[f'{engine}_peak_flops_share']:.1%} of the "
              f"fp32 peak, cosine vs fp32 min {headline[f'{engine}_min_cosine']:.7f} mean {headline[f'{engine}_mean_cosine']:.7f}")
    print(f"1-minute load average: {load_before:.1f} at start, {headline['load_average_1m_end']:.1f} at end "
          f"({os.cpu_count()} CPUs; other processes share them, hence the interleaved runs)")
    print(json.dumps(headline, indent=2))
    finish(headline, args.json)
    return 0


def summarise(per_dataset: dict[str, dict], peak: float, peak_bf16: float) -> dict[str, float]:
    """Flat headline keys ``{engine}_per_s``, ``_peak_flops_share``, ``_min_cosine``, ``_mean_cosine``."""
    total_texts = sum(entry["texts"] for entry in per_dataset.values())
    total_flops = sum(entry["flops"] for entry in per_dataset.values())
    headline: dict[str, float] = {"texts": total_texts}
    for engine in next(iter(per_dataset.values()))["rows"]:
        rows = [entry["rows"][engine] for entry in per_dataset.values()]
        seconds = sum(row["best_s"] for row in rows)
        headline[f"{engine}_per_s"] = total_texts / seconds
        headline[f"{engine}_peak_flops_share"] = total_flops / seconds / peak
        headline[f"{engine}_min_cosine"] = min(row["min_cosine"] for row in rows)
        headline[f"{engine}_mean_cosine"] = float(
            np.average([row["mean_cosine"] for row in rows], weights=[entry["texts"] for entry in per_dataset.values()])
        )
        if engine == "fp32":  # the keys of the runs before --variants existed
            headline["tf_per_s"], headline["peak_flops_share"] = headline["fp32_per_s"], headline["fp32_peak_flops_share"]
        if engine == "reference":
            headline["ratio"] = headline["fp32_per_s"] / headline["reference_per_s"]
        if engine.startswith("bf16"):
            headline[f"{engine}_bf16_peak_flops_share"] = total_flops / seconds / peak_bf16
    return headline


if __name__ == "__main__":
    sys.exit(main())
