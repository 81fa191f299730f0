"""The options class is the one source of truth for --help and the README's table."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipelines.options import (
    WeakLabelOptions,
    build_parser,
    option_fields,
    options_markdown_table,
    parse_options,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_options_table_is_generated_from_the_options_class():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    start = readme.index("<!-- options-table:start")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- options-table:end -->")
    assert readme[start:end].strip() == options_markdown_table(), (
        "README options table is stale: paste the output of `python -m pipelines.options`"
    )


def test_help_lists_every_option_with_its_default():
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.weak_label", "--help"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    flat = "".join(result.stdout.split())  # argparse wraps lines, even inside words at "-"
    for field in option_fields():
        assert f"--{field.name}" in flat
        if not field.metadata["required"]:
            assert "".join(f"(default: {field.default})".split()) in flat, field.name


def test_parse_options_types_and_passes_beam_flags_through():
    options, beam_args = parse_options(
        ["--input", "a.csv", "--output", "o", "--num_neighbours", "7", "--extension", "false",
         "--holdout_fraction", "0.25", "--runner=FnApiRunner", "--direct_num_workers=2"]
    )  # fmt: skip
    assert options == WeakLabelOptions(
        input="a.csv", output="o", num_neighbours=7, extension=False, holdout_fraction=0.25
    )
    assert beam_args == ["--runner=FnApiRunner", "--direct_num_workers=2"]


def test_bad_boolean_is_a_clear_usage_error(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--input", "a", "--output", "o", "--extension", "maybe"])
    assert "'maybe' is not a boolean" in capsys.readouterr().err


def test_required_options_are_required(capsys):
    with pytest.raises(SystemExit):
        parse_options([])
    assert "--input" in capsys.readouterr().err


def test_an_unquoted_glob_expanded_by_the_shell_is_an_error(capsys):
    with pytest.raises(SystemExit):
        parse_options(["--input", "a.csv", "b.csv", "--output", "o"])
    assert "quote globs" in capsys.readouterr().err


def test_beam_flags_with_separate_values_pass_through():
    _, beam_args = parse_options(["--input", "a", "--output", "o", "--project", "p", "--runner", "FnApiRunner"])
    assert beam_args == ["--project", "p", "--runner", "FnApiRunner"]


def test_embed_precision_defaults_to_fp32_and_parses_bf16():
    options, _ = parse_options(["--input", "a.csv", "--output", "o"])
    assert options.embed_precision == "fp32"
    options, beam_args = parse_options(["--input", "a.csv", "--output", "o", "--embed_precision", "bf16"])
    assert options.embed_precision == "bf16" and beam_args == []
