"""``--metric`` / ``--positive_class``: validated in preflight, honoured by the pipeline's fit."""

from __future__ import annotations

import json

import pytest

from pipelines import weak_label
from pipelines.options import parse_options
from tests.test_pipeline_e2e import _argv


def _plan(files, model, tmp_path, *extra):
    options, _ = parse_options(_argv(files, model, str(tmp_path / "out"), *extra))
    return weak_label.preflight(options)


def test_positive_class_is_a_class_name_or_id(corpus_files, tiny_model, tmp_path):
    config = _plan(corpus_files, tiny_model, tmp_path, "--metric", "f1", "--positive_class", "spam").labeler_config()
    assert (config.metric, config.positive_class) == ("f1", 1)
    config = _plan(corpus_files, tiny_model, tmp_path, "--metric", "f1", "--positive_class", "0").labeler_config()
    assert config.positive_class == 0
    assert _plan(corpus_files, tiny_model, tmp_path).labeler_config().metric == "auto"


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--positive_class", "EGGS"), r"--positive_class='EGGS' is not one of the classes \['HAM', 'SPAM'\]"),
        (("--metric", "auc"), r"metric='auc' is unknown"),
    ],
)
def test_bad_metric_options_fail_in_preflight(corpus_files, tiny_model, tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        _plan(corpus_files, tiny_model, tmp_path, *extra)


def test_the_pipeline_fits_with_the_metric(corpus_files, tiny_model, tmp_path):
    output = tmp_path / "out"
    weak_label.run(_argv(corpus_files, tiny_model, str(output), "--metric", "macro_f1"))
    model = json.loads((output / "model.json").read_text())
    assert model["config"]["metric"] == "macro_f1"
    assert model["end_model"]["gold_weight"] in (1.0, 4.0, 16.0, "inf")
    summary = json.loads((output / "summary.json").read_text())
    assert summary["label_model"]["metric"] == "macro_f1"
    assert summary["label_model"]["end_model_gold_weight"] == model["end_model"]["gold_weight"]
