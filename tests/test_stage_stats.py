"""Per-stage row counts and timings: in summary.json, the report, the console and Beam counters."""

from __future__ import annotations

import json
import logging

from apache_beam.metrics.metric import MetricsFilter

from pipelines import weak_label

STAGES = ["read", "embed", "neighbours", "apply_lfs", "join", "fit", "label", "write_labels"]


def test_stage_rows_and_times_reach_summary_report_console_and_counters(
    corpus_files, tiny_model, tmp_path, caplog
):
    output = tmp_path / "out"
    argv = [
        "--input", corpus_files["corpus"],
        "--dev_input", corpus_files["dev"],
        "--labeling_functions", corpus_files["lfs"],
        "--model", tiny_model,
        "--output", str(output),
        "--num_neighbours", "5",
        "--runner=FnApiRunner",
    ]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="transforms.stage_stats"):
        result = weak_label.run(argv)
    summary = json.loads((output / "summary.json").read_text())
    stages = {stage["stage"]: stage for stage in summary["stages"]}
    assert [stage["stage"] for stage in summary["stages"]] == STAGES
    for name in ("read", "embed", "neighbours", "apply_lfs", "join", "label"):
        assert stages[name]["rows"] == 90, name
    assert stages["fit"]["rows"] == 1 and stages["write_labels"]["rows"] == 1
    for stage in summary["stages"]:
        assert 0 <= stage["first_s"] <= stage["done_s"] <= summary["run"]["wall_seconds"] + 1
    assert stages["read"]["done_s"] <= stages["label"]["done_s"]  # labels need every document
    ended = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage ")]
    assert sorted(line.split(":")[0] for line in ended) == sorted(f"stage {s}" for s in STAGES)
    assert 'id="stages"' in (output / "report.html").read_text()
    counters = result.metrics().query(MetricsFilter().with_name("stage/read/rows"))["counters"]
    assert sum(counter.committed for counter in counters) == 90
