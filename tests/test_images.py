"""``--modality image``: a tiny image SavedModel loaded through ``tensorflow_hub``, real decoding.

PNG and JPEG bytes (Parquet binary), a local path, and a corrupt image that must be
dead-lettered; the stage's vectors equal the model applied to TensorFlow-decoded pixels; the
whole job runs under FnApiRunner and under the multi-process DirectRunner.
"""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from pipelines import weak_label
from transforms.core.vectors import unit_rows
from transforms.images import (
    EmbedImages,
    ImageEmbedConfig,
    ImageEmbeddingModelHandler,
    decode_image,
    image_bytes,
    load_image_model,
    model_image_size,
    preflight_image_model,
)
from transforms.models.tiny_image import build_tiny_image_model

LF_SOURCE = '''
from transforms import ABSTAIN, labeling_function


@labeling_function()
def bright(x):
    return 1 if x.brightness > 0.6 else ABSTAIN


@labeling_function()
def dark(x):
    return 0 if x.brightness < 0.4 else ABSTAIN
'''
CORRUPT = b"\x89PNG\r\n\x1a\n" + b"not really a png"


@pytest.fixture(scope="module")
def image_model(tmp_path_factory) -> str:
    return build_tiny_image_model(str(tmp_path_factory.mktemp("tiny_image")), size=16, dim=16)


def _image(seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    level = 0.2 if seed % 2 == 0 else 0.8
    pixels = np.clip(rng.normal(level, 0.1, (12, 12, 3)), 0, 1)
    pixels[: seed % 6 + 2, :, :] = 1.0 - level  # a stripe whose height varies
    return (pixels * 255).astype(np.uint8), float(pixels.mean())


def _encoded(seed: int) -> tuple[bytes, float]:
    pixels, brightness = _image(seed)
    encode = tf.io.encode_png if seed % 3 else tf.io.encode_jpeg
    return encode(pixels).numpy(), brightness


@pytest.fixture()
def image_corpus(tmp_path):
    rows = []
    for seed in range(30):
        data, brightness = _encoded(seed)
        rows.append({"id": f"img{seed:02d}", "frame": seed, "brightness": brightness, "image": data})
    path_image = tmp_path / "on_disk.png"
    path_image.write_bytes(_encoded(1)[0])
    rows.append({"id": "from_path", "frame": 30, "brightness": 0.9, "image": str(path_image).encode()})
    rows.append({"id": "corrupt", "frame": 31, "brightness": 0.5, "image": CORRUPT})
    corpus = tmp_path / "frames.parquet"
    pq.write_table(pa.Table.from_pylist(rows), corpus)
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    return {"rows": rows, "corpus": str(corpus), "lfs": str(lfs)}


def test_model_size_read_from_signature_and_preflight(image_model):
    model = load_image_model(image_model)
    assert model_image_size(model) == (16, 16)
    assert preflight_image_model(image_model) == (16, (16, 16))
    with pytest.raises(ValueError, match="image model '/nonexistent' failed"):
        preflight_image_model("/nonexistent")


def test_png_and_jpeg_decode_and_corrupt_bytes_name_the_problem():
    pixels, _ = _image(4)
    png = decode_image(tf.io.encode_png(pixels).numpy(), (16, 16))
    jpeg = decode_image(tf.io.encode_jpeg(pixels, quality=95).numpy(), (16, 16))
    assert png.shape == jpeg.shape == (16, 16, 3) and png.dtype == np.float32
    assert 0.0 <= png.min() and png.max() <= 1.0
    assert np.abs(png - jpeg).mean() < 0.05  # same picture through two codecs
    with pytest.raises(ValueError, match="no decodable JPEG/PNG"):
        decode_image(CORRUPT, (16, 16))
    with pytest.raises(OSError, match="cannot be read"):
        image_bytes("/nonexistent/picture.png")


def test_stage_embeds_like_the_model_and_dead_letters_the_corrupt_image(image_model, image_corpus):
    rows = [r for r in image_corpus["rows"] if r["id"].startswith("img")][:6] + image_corpus["rows"][-1:]
    docs = [{"id": r["id"], "text": "", "fields": {"image": r["image"]}, "source": r["id"]} for r in rows]
    model = load_image_model(image_model)
    pixels = np.stack([decode_image(r["image"], (16, 16)) for r in rows[:6]])
    expected = unit_rows(np.asarray(model(tf.constant(pixels))))
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        out = pipeline | beam.Create(docs) | EmbedImages(ImageEmbedConfig(image_model, "image", (16, 16)))
        vectors = out["embeddings"] | beam.MapTuple(lambda doc_id, v: (doc_id, np.round(v, 5).tolist()))
        assert_that(
            vectors,
            equal_to([(r["id"], np.round(v, 5).tolist()) for r, v in zip(rows, expected)]),
            label="vectors",
        )
        causes = out["dead_letter"] | beam.Map(lambda dead: (dead.doc_id, dead.stage, dead.cause))
        assert_that(causes, equal_to([("corrupt", "embed", "undecodable_image")]), label="dead")
        assert_that(out["documents"] | beam.Map(lambda d: d["id"]), equal_to([r["id"] for r in rows[:6]]), label="docs")


def test_handler_uses_an_injected_inference_fn_and_normalises():
    handler = ImageEmbeddingModelHandler("unused", inference_fn=lambda model, batch, args: np.full((len(batch), 2), 3.0))
    vectors = handler.run_inference([np.zeros((4, 4, 3), np.float32)] * 3, model=None)
    np.testing.assert_allclose(np.stack(vectors), np.full((3, 2), 2**-0.5), rtol=1e-6)


@pytest.mark.parametrize(
    "runner",
    [["--runner=FnApiRunner"], ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]],
    ids=["fnapi", "direct_multi_processing"],
)
def test_image_job_end_to_end(image_model, image_corpus, tmp_path, runner):
    output = tmp_path / "out"
    weak_label.run(
        [
            "--input", image_corpus["corpus"], "--labeling_functions", image_corpus["lfs"],
            "--output", str(output), "--modality", "image", "--image_field", "image",
            "--model", image_model, "--num_neighbours", "4", *runner,
        ]
    )  # fmt: skip
    summary = json.loads((output / "summary.json").read_text())
    assert summary["rows"]["input"] == 32 and summary["rows"]["labelled"] == 31
    assert summary["rows"]["dead_letter_by_cause"] == {"embed/undecodable_image": 1}
    assert summary["rows"]["accounted"] is True
    labels = {row["id"]: row for row in pq.read_table(output / "labels").to_pylist()}
    assert "from_path" in labels and "corrupt" not in labels
    report = (output / "report.html").read_text()
    assert '<img class="thumbnail" alt="" src="data:image/' in report and "brightness=" in report
    bright = [row["label"] for row in labels.values() if row["votes"] == [1, -1]]
    assert bright and all(label == 1 for label in bright)
