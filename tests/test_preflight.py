"""Preflight: every check fails before any pipeline starts, naming the bad value and the fix."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from apache_beam.io.filesystems import FileSystems

from pipelines import weak_label
from pipelines.options import parse_options
from tests.conftest import LF_SOURCE

REPO = os.path.join(os.path.dirname(__file__), os.pardir)


@pytest.fixture()
def files(tmp_path):
    """A tiny valid job: 6 corpus rows, 4 labelled dev rows, the shared LF file."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": f"check out song {i}"}) + "\n" for i in range(6))
    )
    dev = tmp_path / "dev.jsonl"
    dev.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": "t", "label": i % 2}) + "\n" for i in range(4))
    )
    lfs = tmp_path / "lfs.py"
    lfs.write_text(LF_SOURCE)
    return {"corpus": str(corpus), "dev": str(dev), "lfs": str(lfs), "tmp": tmp_path}


def _preflight(files, valid_model: str, **changes: str):
    args = {
        "--input": files["corpus"],
        "--dev_input": files["dev"],
        "--labeling_functions": files["lfs"],
        "--model": valid_model,
        "--output": str(files["tmp"] / "out"),
    }
    args.update({f"--{name}": value for name, value in changes.items()})
    argv = [item for pair in args.items() for item in pair]
    options, _ = parse_options(argv)
    return weak_label.preflight(options)


def _fails(files, valid_model: str, match: str, **changes: str) -> None:
    with pytest.raises(ValueError, match=match):
        _preflight(files, valid_model, **changes)


def test_a_valid_job_passes(files, tiny_model):
    plan = _preflight(files, tiny_model)
    assert plan.class_names == ("HAM", "SPAM") and plan.embedding_dim > 0
    assert plan.lf_names[:2] == ("has_subscribe", "has_link")


def test_empty_input_glob(files, tiny_model):
    _fails(
        files, tiny_model, r"'/nonexistent/\*\.jsonl' matches no file",
        input="/nonexistent/*.jsonl",
    )  # fmt: skip


def test_input_that_cannot_be_opened(files, tiny_model, monkeypatch):
    # Tests run as root here, so a chmod-ed file would still open: the denial is simulated.
    (files["tmp"] / "shard.jsonl").write_text(json.dumps({"id": "x", "text": "y"}) + "\n")
    real_open = FileSystems.open

    def deny_shard(path, *args, **kwargs):
        if path.endswith("shard.jsonl"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(FileSystems, "open", deny_shard)
    pattern = str(files["tmp"] / "*.jsonl")
    _fails(
        files, tiny_model, r"shard\.jsonl', which cannot be read \(PermissionError",
        input=pattern,
    )  # fmt: skip


def test_input_with_no_readable_file(files, tiny_model):
    (files["tmp"] / "a.parquet").write_bytes(b"PAR1 not parquet")
    _fails(
        files, tiny_model, r"no file matched by .* is readable: .*a\.parquet",
        input=str(files["tmp"] / "*.parquet"),
    )  # fmt: skip


def test_input_with_unknown_extension(files, tiny_model):
    (files["tmp"] / "rows.txt").write_text("x\n")
    _fails(
        files, tiny_model, r"cannot infer the format of .*rows\.txt",
        input=str(files["tmp"] / "*.txt"),
    )  # fmt: skip


def test_csv_without_the_text_column(files, tiny_model):
    (files["tmp"] / "c.csv").write_text("id,body\n1,hello\n")
    _fails(files, tiny_model, r"has no column \['text'\]", input=str(files["tmp"] / "c.csv"))


def test_model_that_does_not_load(files, tiny_model):
    empty = files["tmp"] / "not_a_model"
    empty.mkdir()
    _fails(files, tiny_model, r"'.*not_a_model': could not be loaded", model=str(empty))


def test_model_returning_the_wrong_shape(files, tiny_model):
    import tensorflow as tf

    class LengthsModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts):
            return tf.cast(tf.strings.length(texts), tf.float32)  # [n], not [n, d]

    path = str(files["tmp"] / "wrong_shape_model")
    tf.saved_model.save(LengthsModel(), path)
    _fails(files, tiny_model, r"returned shape \[2\] for 2 strings, not \[2, d\]", model=path)


def test_lf_file_that_does_not_import(files, tiny_model):
    bad = files["tmp"] / "broken_lfs.py"
    bad.write_text("def oops(:\n")
    _fails(
        files, tiny_model, r"'.*broken_lfs\.py' failed to import: SyntaxError",
        labeling_functions=str(bad),
    )  # fmt: skip


def test_lf_file_raising_at_import(files, tiny_model):
    bad = files["tmp"] / "raising_lfs.py"
    bad.write_text("import a_module_that_does_not_exist\n")
    _fails(files, tiny_model, r"failed to import: ModuleNotFoundError", labeling_functions=str(bad))


def test_lf_file_without_lfs(files, tiny_model):
    empty = files["tmp"] / "no_lfs.py"
    empty.write_text("CLASS_NAMES = ('HAM', 'SPAM')\n")
    _fails(files, tiny_model, r"defines no labeling function", labeling_functions=str(empty))


def test_lf_file_that_does_not_exist(files, tiny_model):
    _fails(
        files, tiny_model, r"'/nowhere/lfs\.py' does not exist",
        labeling_functions="/nowhere/lfs.py",
    )  # fmt: skip


def test_duplicate_lf_names(files, tiny_model):
    twice = files["tmp"] / "twice.py"
    twice.write_text(
        "from transforms.core.votes import ABSTAIN, labeling_function\n"
        "@labeling_function(name='same')\ndef a(x):\n    return ABSTAIN\n"
        "@labeling_function(name='same')\ndef b(x):\n    return ABSTAIN\n"
    )
    _fails(files, tiny_model, r"duplicate LF names \['same'\]", labeling_functions=str(twice))


def test_lf_names_clashing_with_the_votes_column(files, tiny_model):
    corpus = files["tmp"] / "voted.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "t", "weak": [1, -1]}) + "\n")
    _fails(
        files, tiny_model, r"repeat a name",
        input=str(corpus), votes_field="weak", lf_names="has_link,other",
    )  # fmt: skip


def test_output_not_writable(files, tiny_model):
    blocker = files["tmp"] / "a_file"
    blocker.write_text("not a directory")
    _fails(files, tiny_model, r"'.*a_file/out' is not writable", output=str(blocker / "out"))


def test_cache_dir_not_writable(files, tiny_model):
    blocker = files["tmp"] / "a_file"
    blocker.write_text("not a directory")
    _fails(files, tiny_model, r"'.*a_file/cache' is not writable", cache_dir=str(blocker / "cache"))


def test_dev_input_without_the_label_field(files, tiny_model):
    unlabelled = files["tmp"] / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps({"id": "d1", "text": "t", "gold": 1}) + "\n")
    _fails(
        files, tiny_model, r"no value in field 'label' in any of its 1 rows \(fields: \['gold'\]\)",
        dev_input=str(unlabelled),
    )  # fmt: skip


def test_dev_csv_without_the_label_column(files, tiny_model):
    unlabelled = files["tmp"] / "unlabelled.csv"
    unlabelled.write_text("id,text\nd1,t\n")
    _fails(files, tiny_model, r"has no column \['label'\]", dev_input=str(unlabelled))


def test_dev_label_out_of_range(files, tiny_model):
    dev = files["tmp"] / "dev3.jsonl"
    dev.write_text(json.dumps({"id": "d1", "text": "t", "label": 2}) + "\n")
    _fails(
        files, tiny_model, r"'label' = 2 is not one of the 2 classes \['HAM', 'SPAM'\]",
        dev_input=str(dev),
    )  # fmt: skip


def test_lf_class_names_against_cardinality(files, tiny_model):
    _fails(
        files, tiny_model, r"--cardinality=3 but CLASS_NAMES of '.*lfs\.py' lists 2",
        cardinality="3",
    )  # fmt: skip


def test_class_names_against_the_lf_file(files, tiny_model):
    _fails(
        files, tiny_model, r"--class_names \['NEG', 'POS'\] differ from CLASS_NAMES",
        class_names="NEG,POS",
    )  # fmt: skip


@pytest.mark.parametrize(
    "option, value, match",
    [
        ("holdout_fraction", "1.5", r"--holdout_fraction=1.5 must be in \[0, 1\)"),
        ("max_lf_failure_rate", "1.5", r"--max_lf_failure_rate=1.5 must be in \[0, 1\]"),
        ("num_neighbours", "0", r"--num_neighbours=0 must be at least 1"),
        ("max_text_chars", "0", r"--max_text_chars=0 must be at least 1"),
    ],
)
def test_numeric_options_out_of_range(files, tiny_model, option, value, match):
    _fails(files, tiny_model, match, **{option: value})


def test_no_votes_at_all(files, tiny_model):
    _fails(files, tiny_model, r"no votes: pass --labeling_functions", labeling_functions="")


def test_command_line_prints_one_line_and_exits_2(files):
    completed = subprocess.run(
        [
            sys.executable, "-m", "pipelines.weak_label",
            "--input", "/nonexistent/*.jsonl", "--output", str(files["tmp"] / "out"),
            "--labeling_functions", files["lfs"],
        ],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 2, completed.stderr[-2000:]
    lines = completed.stderr.splitlines()
    errors = [line for line in lines if line.startswith("epoxy-beam: error:")]
    assert len(errors) == 1 and "'/nonexistent/*.jsonl' matches no file" in errors[0]
    assert "Traceback" not in completed.stderr
    assert not (files["tmp"] / "out").exists()


# ------------------------------------------------------------- issue 14: errors a person can act on


def test_dev_labels_as_class_names_in_any_case_pass(files, tiny_model):
    dev = files["tmp"] / "named.jsonl"
    dev.write_text("".join(
        json.dumps({"id": f"d{i}", "text": "t", "label": label}) + "\n"
        for i, label in enumerate(["ham", "SPAM", "Ham", " spam "])
    ))  # fmt: skip
    _preflight(files, tiny_model, dev_input=str(dev))


def test_dev_labels_that_map_to_no_class_are_rejected(files, tiny_model):
    dev = files["tmp"] / "other_names.jsonl"
    dev.write_text("".join(
        json.dumps({"id": f"d{i}", "text": "t", "label": label}) + "\n"
        for i, label in enumerate(["good", "bad", "good", "bad"])
    ))  # fmt: skip
    _fails(
        files, tiny_model,
        r"4 of 4 labels in 'label' map to no class \(e.g. \['bad', 'good'\]\); labels must be "
        r"class ids 0..1 or names in \['HAM', 'SPAM'\] \(any case\): set CLASS_NAMES",
        dev_input=str(dev),
    )  # fmt: skip


def test_an_empty_dev_file_is_rejected(files, tiny_model):
    dev = files["tmp"] / "empty.jsonl"
    dev.write_text("")
    _fails(files, tiny_model, r"--dev_input '.*empty\.jsonl' holds no readable row", dev_input=str(dev))


def test_vote_width_is_the_majority_not_the_first_row(files, tiny_model):
    corpus = files["tmp"] / "voted.jsonl"
    rows = [{"id": "odd", "text": "t", "weak": [1, -1, 0]}] + [
        {"id": f"r{i}", "text": "t", "weak": [1, -1]} for i in range(5)
    ]
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows))
    plan = _preflight(files, tiny_model, input=str(corpus), votes_field="weak")
    assert plan.lf_names[-2:] == ("lf_0", "lf_1") and "lf_2" not in plan.lf_names
    plan = _preflight(files, tiny_model, input=str(corpus), votes_field="weak", lf_names="a,b,c")
    assert plan.lf_names[-3:] == ("a", "b", "c")  # --lf_names decides when given


@pytest.mark.parametrize(
    "option, value, match",
    [
        ("seed", "-5", r"--seed=-5 must be a non-negative integer .*; pass e\.g\. --seed 5"),
        ("max_dead_letter_rate", "2", r"--max_dead_letter_rate=2.0 must be in \[0, 1\]"),
        ("lf_timeout_s", "-1", r"--lf_timeout_s=-1.0 must be in \[0, 86400\] seconds"),
    ],
)
def test_new_numeric_options_out_of_range(files, tiny_model, option, value, match):
    _fails(files, tiny_model, match, **{option: value})


def test_lf_file_in_latin1_names_the_file_and_the_encoding(files, tiny_model):
    latin1 = files["tmp"] / "latin1_lfs.py"
    latin1.write_bytes(LF_SOURCE.replace("HAM", "caf\xe9").encode("latin-1"))
    _fails(
        files, tiny_model,
        r"--labeling_functions file '.*latin1_lfs\.py' is not UTF-8 \(byte 0xe9 in line 4 is "
        r"not utf-8\); re-save it as UTF-8 \(e\.g\. iconv -f latin1 -t utf-8 .*# -\*- coding: "
        r"latin-1 -\*-",
        labeling_functions=str(latin1),
    )  # fmt: skip
    declared = files["tmp"] / "declared_lfs.py"
    declared.write_bytes(b"# -*- coding: latin-1 -*-\n" + latin1.read_bytes())
    _fails(files, tiny_model, r"\['caf\xe9', 'SPAM'\]", labeling_functions=str(declared),
           class_names="X,Y")  # the declared encoding is honoured  # fmt: skip


def test_a_single_class_name_names_class_names(files, tiny_model):
    one = files["tmp"] / "one_class.py"
    one.write_text(LF_SOURCE.replace('CLASS_NAMES = ("HAM", "SPAM")', 'CLASS_NAMES = ("ONLY",)'))
    dev = files["tmp"] / "dev0.jsonl"
    dev.write_text(json.dumps({"id": "d1", "text": "t", "label": 0}) + "\n")
    _fails(
        files, tiny_model,
        r"CLASS_NAMES in --labeling_functions '.*one_class\.py' = \('ONLY',\) lists 1 class; a "
        r"task has at least 2 classes",
        labeling_functions=str(one), dev_input=str(dev),
    )  # fmt: skip


def test_a_directory_as_input_suggests_a_glob(files, tiny_model):
    directory = files["tmp"] / "corpus_dir"
    directory.mkdir()
    (directory / "part-0.jsonl").write_text(json.dumps({"id": "x", "text": "y"}) + "\n")
    _fails(
        files, tiny_model,
        r"corpus pattern '.*corpus_dir' is a directory; an input names files: use "
        r"'.*corpus_dir/\*\.jsonl'",
        input=str(directory),
    )  # fmt: skip


def test_a_file_name_with_a_comma_is_read_when_escaped_or_given_by_repeated_input(files, tiny_model):
    odd = files["tmp"] / "corpus,v2.jsonl"
    odd.write_text(json.dumps({"id": "x", "text": "y"}) + "\n")
    _fails(files, tiny_model, r"matches no file; .*escape one in a file name as '\\,' or repeat "
           r"--input", input=str(odd))  # fmt: skip
    escaped = str(odd).replace(",", "\\,")
    assert _preflight(files, tiny_model, input=escaped).options.input == escaped
    options, _ = parse_options(["--input", escaped, "--input", files["corpus"], "--output", "o"])
    assert options.input == f"{escaped},{files['corpus']}"
    weak_label.preflight(dataclasses.replace(
        _preflight(files, tiny_model).options, input=options.input
    ))  # fmt: skip


def _fresh_env() -> dict:
    """The environment of a fresh shell: this test process set TF_CPP_MIN_LOG_LEVEL when it
    imported pipelines, and a child must not inherit the quiet."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "TF_ENABLE_ONEDNN"))}


FAILING_RUN_LFS = LF_SOURCE + '''
import sys


@labeling_function()
def always_crashes(x):
    print("noise " * 20000)
    raise KeyError("missing resource")
'''


def test_a_failed_run_prints_one_line_naming_the_log_and_keeps_the_console_quiet(files, tiny_model):
    lfs = files["tmp"] / "failing_run_lfs.py"
    lfs.write_text(FAILING_RUN_LFS)
    output = files["tmp"] / "out"
    completed = subprocess.run(
        [
            sys.executable, "-m", "pipelines.weak_label",
            "--input", files["corpus"], "--output", str(output), "--labeling_functions", str(lfs),
            "--model", tiny_model, "--num_neighbours", "3", "--runner=FnApiRunner",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False, env=_fresh_env(),
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr[-3000:]
    console = completed.stdout + completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr[-3000:]
    assert lines[0].startswith("epoxy-beam: run failed: ValueError: LF failures above "
                               "--max_lf_failure_rate=0.1: 'always_crashes' failed on 6 of 6")
    log = lines[0].split("traceback in ", 1)[1].split(";", 1)[0]
    assert log.startswith(str(output / "_staging-")) and log.endswith("epoxy-beam.log")
    with open(log, encoding="utf-8") as handle:
        assert "Traceback (most recent call last)" in handle.read()
    for noise in ("oneDNN", "cuda", "CUDA", "pkg_resources", "apitools", "noise noise", "Traceback"):
        assert noise not in console, noise
    assert len(console) < 5000


def test_verbose_brings_the_library_logs_back(files):
    env = _fresh_env()
    completed = subprocess.run(
        [
            sys.executable, "-m", "pipelines.weak_label", "--verbose", "true",
            "--input", "/nonexistent/*.jsonl", "--output", str(files["tmp"] / "out"),
            "--labeling_functions", files["lfs"],
        ],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert completed.returncode == 2
    # TensorFlow's start-up notices, hidden without --verbose (see the test above).
    assert "oneDNN" in completed.stderr or "cuda" in completed.stderr.lower()


def test_importing_pipelines_keeps_onednn_on():
    # The quiet console once set TF_ENABLE_ONEDNN_OPTS=0, which also switched off oneDNN's
    # kernels and made --precision bf16 a silent fp32.
    code = "import os, pipelines; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset'))"
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
        check=True, env=_fresh_env(),
    )  # fmt: skip
    assert completed.stdout.strip() == "unset"


# ------------------------------------------------------------- --embed_precision


def test_embed_precision_reaches_the_embed_config_and_the_cache_plan(files, tiny_model):
    assert _preflight(files, tiny_model).embed_config().precision == "fp32"
    plan = _preflight(files, tiny_model, embed_precision="bf16", cache_dir=str(files["tmp"] / "cache"))
    config = plan.embed_config()
    assert (config.model_path, config.precision) == (tiny_model, "bf16")
    cache = weak_label.cache_plan(plan, weak_label.neighbour_config(plan))
    assert cache.precision == "bf16"


def test_a_bad_embed_precision_fails_preflight_in_one_line_naming_value_rule_and_fix(files, tiny_model):
    with pytest.raises(ValueError) as error:
        _preflight(files, tiny_model, embed_precision="fp16")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("--embed_precision='fp16' is not one of fp32, bf16: pass --embed_precision fp32")


def test_bf16_without_a_text_model_is_refused(files, tiny_model):
    _fails(
        files, tiny_model, r"--embed_precision='bf16' applies to the text model only.*drop --embed_precision",
        embed_precision="bf16", embedding_field="vector",
    )  # fmt: skip


def test_a_negative_fallback_bound_fails_preflight(files, tiny_model):
    _fails(
        files, tiny_model, r"--fallback_max_voters=-1 must be at least 1, or 0 for no exact fallback",
        fallback_max_voters="-1",
    )  # fmt: skip
