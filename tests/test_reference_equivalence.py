"""The TF SavedModel against the PyTorch sentence-transformers reference (optional, heavy).

Runs only with the ``reference`` extra installed (``pip install -e '.[reference]'``); skipped
visibly otherwise. Full figures on 8.5k texts: ``benchmarks/embed_equivalence.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.model_fixtures import minilm_model_path, varied_texts
from transforms.embed import length_sorted_inference, load_text_model
from transforms.models.build_minilm import default_source_dir

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def reference():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    return sentence_transformers.SentenceTransformer(default_source_dir(), device="cpu")


@pytest.fixture(scope="module")
def texts():
    return varied_texts()


def test_every_varied_text_matches_reference_cosine(reference, texts, tmp_path_factory):
    model = load_text_model(minilm_model_path(tmp_path_factory))
    ours = length_sorted_inference(model, texts)
    theirs = reference.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    cosines = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    worst = int(np.argmin(cosines))
    assert len(texts) >= 500
    assert cosines.min() >= 0.999, f"cosine {cosines[worst]:.6f} on {texts[worst]!r}"


def test_token_ids_match_reference_tokenizer(reference, texts, tmp_path_factory):
    model = load_text_model(minilm_model_path(tmp_path_factory))
    tokens = model.tokenize(tf.constant(texts))
    ids, lengths = tokens["input_ids"].numpy(), tokens["lengths"].numpy()
    mismatched = [
        text
        for row, text in enumerate(texts)
        if ids[row, : lengths[row]].tolist()
        != reference.tokenizer(text, truncation=True, max_length=reference.max_seq_length)["input_ids"]
    ]
    assert mismatched == []
