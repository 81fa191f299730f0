"""Runs the digits example twice (precomputed pixel vectors; images + the tiny image model).

    python -m examples.digits.run [--output_root /tmp/epoxy-digits]

Prints, per run, LF coverage before and after extension and the accuracy of the labels against
the bundled gold labels (``data/gold.csv``, never seen by the pipeline).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile

import pyarrow.parquet as pq

from pipelines import weak_label
from transforms.models.tiny_image import build_tiny_image_model

HERE = os.path.dirname(os.path.abspath(__file__))
COMMON = [
    "--input", os.path.join(HERE, "data", "digits.parquet"),
    "--labeling_functions", os.path.join(HERE, "labeling_functions.py"),
    "--num_neighbours", "10", "--runner=FnApiRunner",
]  # fmt: skip


def score(output: str) -> dict[str, float]:
    """Coverage (from summary.json) and accuracy of the written labels against gold.csv."""
    with open(os.path.join(HERE, "data", "gold.csv"), encoding="utf-8") as handle:
        gold = {row["id"]: int(row["label"]) for row in csv.DictReader(handle)}
    with open(os.path.join(output, "summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    labels = pq.read_table(os.path.join(output, "labels")).to_pylist()
    covered = [row for row in labels if any(vote >= 0 for vote in row["extended_votes"])]
    return {
        "labelled": len(labels),
        "coverage_before": summary["coverage"]["before_extension"],
        "coverage_after": summary["coverage"]["after_extension"],
        "accuracy_all": sum(row["label"] == gold[row["id"]] for row in labels) / len(labels),
        "accuracy_covered": sum(row["label"] == gold[row["id"]] for row in covered) / max(len(covered), 1),
    }


def main() -> None:
    """Runs both configurations and prints a Markdown table of their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_root", default=os.path.join(tempfile.gettempdir(), "epoxy-digits"))
    root = parser.parse_args().output_root
    model = build_tiny_image_model(os.path.join(root, "tiny_image_model"), size=16, dim=32)
    runs = {
        "--embedding_field pixels": ["--embedding_field", "pixels"],
        "--modality image (tiny stand-in model)": ["--modality", "image", "--image_field", "image", "--model", model],
    }
    results = {}
    for name, extra in runs.items():
        output = os.path.join(root, extra[1])
        weak_label.run(COMMON + extra + ["--output", output])
        results[name] = score(output)
    print("| run | labelled | coverage before | coverage after | accuracy (all) | accuracy (covered) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| `{name}` | {r['labelled']} | {r['coverage_before']:.1%} | {r['coverage_after']:.1%} | "
            f"{r['accuracy_all']:.1%} | {r['accuracy_covered']:.1%} |"
        )


if __name__ == "__main__":
    main()
