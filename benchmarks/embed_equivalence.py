"""Equivalence of the MiniLM SavedModel with the PyTorch sentence-transformers reference.

Embeds the built-in varied corpus (``tests.model_fixtures.varied_texts``: empty, whitespace,
accents, ligatures, full-width, emoji, CJK, RTL scripts, control and zero-width characters,
URLs, special-token strings, texts beyond 256 wordpieces) plus, optionally, the texts of WRENCH
dataset directories, with both engines, and reports per-text cosine and token-id agreement.

Usage::

    python benchmarks/embed_equivalence.py [--data /work/shared/data/youtube ...] \\
        [--model models/all-MiniLM-L6-v2] [--json benchmarks/results/embed_equivalence.json]

Needs ``sentence-transformers`` (``pip install -e '.[reference]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_io import finish  # noqa: E402
from benchmarks.embed_throughput import cosines, read_wrench_texts  # noqa: E402
from tests.model_fixtures import varied_texts  # noqa: E402
from transforms.embed import length_sorted_inference, load_text_model  # noqa: E402
from transforms.models.build_minilm import build_minilm, default_source_dir  # noqa: E402

THRESHOLD = 0.999


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the comparison, prints the worst texts and writes ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", default=[], help="WRENCH dataset dir (repeatable)")
    parser.add_argument("--model", default="models/all-MiniLM-L6-v2", help="SavedModel dir (built if absent)")
    parser.add_argument("--json", default=None, help="write the headline figures here")
    args = parser.parse_args(argv)

    import tensorflow as tf
    from sentence_transformers import SentenceTransformer

    texts = varied_texts()
    n_varied = len(texts)
    for data_dir in args.data:
        texts += read_wrench_texts(data_dir)
    build_minilm(args.model)
    model = load_text_model(args.model)
    reference = SentenceTransformer(default_source_dir(), device="cpu")
    ours = length_sorted_inference(model, texts)
    theirs = reference.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    cos = cosines(ours, theirs)

    our_ids = model.tokenize(tf.constant(texts))
    our_lengths = our_ids["lengths"].numpy()
    our_ids = our_ids["input_ids"].numpy()
    max_length = reference.max_seq_length
    mismatched = sum(
        our_ids[i, : our_lengths[i]].tolist()
        != reference.tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        for i, text in enumerate(texts)
    )
    for i in np.argsort(cos)[:5]:
        print(f"  cosine {cos[i]:.7f} tokens {our_lengths[i]:3d}  {texts[i][:70]!r}")
    figures = {
        "count": len(texts),
        "varied_count": n_varied,
        "wrench_count": len(texts) - n_varied,
        "truncated_count": int((our_lengths == max_length).sum()),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "below_threshold": int((cos < THRESHOLD).sum()),
        "threshold": THRESHOLD,
        "token_id_mismatches": int(mismatched),
    }
    print(json.dumps(figures, indent=2))
    finish(figures, args.json)
    return 0 if figures["below_threshold"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
