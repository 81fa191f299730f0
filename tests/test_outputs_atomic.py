"""--output safety: no overlap with the input, no foreign files touched, atomic commit, one writer.

Real runs of the pipeline (tiny TF-Hub model, FnApiRunner); the commit is crashed at every
file-system step (as a ``kill -9`` would stop it) and the output is checked to be, at each of
those instants, the complete previous run or the complete new one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from pipelines import commit as commit_module
from pipelines import weak_label
from pipelines.options import parse_options
from pipelines.output_guard import OutputLock

REPO = os.path.join(os.path.dirname(__file__), os.pardir)
LABELS = "labels/part-00000-of-00001.parquet"


def _argv(corpus_files, model: str, output: str, *extra: str) -> list[str]:
    return [
        "--input", corpus_files["corpus"], "--dev_input", corpus_files["dev"],
        "--labeling_functions", corpus_files["lfs"], "--model", model, "--output", output,
        "--num_neighbours", "5", "--runner=FnApiRunner", *extra,
    ]  # fmt: skip


def _preflight(argv: list[str]):
    options, _ = parse_options(argv)
    return weak_label.preflight(options)


@pytest.mark.parametrize(
    "layout, match",
    [
        ("equal", r"reads from inside the output directory"),
        ("inside", r"matches what the run writes"),
        ("containing", r"reads from inside the output directory"),
    ],
)
def test_output_overlapping_an_input_glob_is_refused(corpus_files, tiny_model, tmp_path, layout, match):
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    shutil.copy(corpus_files["corpus"], data / "in" / "corpus.jsonl")
    pattern, output = {
        "equal": (str(data / "in" / "*.jsonl"), str(data / "in")),
        "inside": (str(data / "in" / "*"), str(data / "in" / "out")),
        "containing": (str(data / "in" / "*.jsonl"), str(data)),
    }[layout]
    argv = _argv(corpus_files, tiny_model, output)
    argv[argv.index("--input") + 1] = pattern
    with pytest.raises(ValueError, match=rf"--output .* overlaps --input: .*{match}"):
        _preflight(argv)
    argv[argv.index("--output") + 1] = str(tmp_path / "elsewhere")
    _preflight(argv)  # the same input with an output outside it passes


def test_a_non_empty_directory_that_is_no_output_is_refused_unless_overwrite(
    corpus_files, tiny_model, tmp_path
):
    output = tmp_path / "my_project"
    (output / "labels").mkdir(parents=True)
    (output / "notes.txt").write_text("my own notes")
    (output / "labels" / "mine.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"non-empty directory that is not an epoxy-beam output "
                       r"\(it holds \['notes.txt'\]\).*--overwrite"):
        _preflight(_argv(corpus_files, tiny_model, str(output)))
    assert (output / "notes.txt").read_text() == "my own notes"
    weak_label.run(_argv(corpus_files, tiny_model, str(output), "--overwrite", "true"))
    assert (output / "notes.txt").read_text() == "my own notes"
    assert (output / "_SUCCESS").exists()


def _summary(output) -> dict:
    with open(os.path.join(output, "summary.json"), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def committed(tmp_path_factory, tiny_model):
    """A real output, and a real second run's staged files (not yet committed)."""
    from tests.conftest import LF_SOURCE, make_corpus

    root = tmp_path_factory.mktemp("atomic")
    rows = make_corpus(60)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows)
    )
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:20]))
    (root / "lfs.py").write_text(LF_SOURCE)
    files = {"corpus": str(root / "corpus.jsonl"), "dev": str(root / "dev.jsonl"),
             "lfs": str(root / "lfs.py")}  # fmt: skip
    first = str(root / "out")
    weak_label.run(_argv(files, tiny_model, first))
    second = str(root / "second")
    weak_label.run(_argv(files, tiny_model, second, "--seed", "7"))
    return {"root": root, "first": first, "second": second, "files": files, "model": tiny_model}


def test_a_second_run_into_the_same_output_swaps_it_and_keeps_the_documented_paths(committed, tmp_path):
    output = str(tmp_path / "out")
    shutil.copytree(committed["first"], output, symlinks=True)
    before = os.readlink(os.path.join(output, "current"))
    weak_label.run(_argv(committed["files"], committed["model"], output, "--seed", "3"))
    after = os.readlink(os.path.join(output, "current"))
    assert before != after and after.startswith("_runs/")
    assert _summary(output)["options"]["seed"] == 3
    assert pq.read_table(os.path.join(output, LABELS)).num_rows == 60
    assert sorted(os.listdir(os.path.join(output, "_runs"))) == sorted(
        [os.path.basename(before), os.path.basename(after)]
    )  # the previous run is kept for readers still in it
    assert not [name for name in os.listdir(output) if name.startswith(("_staging", "_lock"))]


class _Crash(BaseException):
    """Stands for kill -9: raised at the n-th file-system step of the commit."""


def _crash_at(monkeypatch, step: int) -> list[int]:
    calls = [0]
    for name in ("rename", "replace", "symlink", "remove", "unlink", "rmdir"):
        real = getattr(os, name)

        def fake(*args, _real=real, **kwargs):
            calls[0] += 1
            if calls[0] == step:
                raise _Crash(step)
            return _real(*args, **kwargs)

        monkeypatch.setattr(commit_module.os, name, fake)
    return calls


def _complete_run(output: str) -> int:
    """The seed of the complete run ``output`` shows; fails if it shows no complete run."""
    assert os.path.exists(os.path.join(output, "_SUCCESS"))
    summary = _summary(output)
    assert pq.read_table(os.path.join(output, LABELS)).num_rows == summary["rows"]["labelled"]
    with open(os.path.join(output, "model.json"), encoding="utf-8") as handle:
        assert json.load(handle)["lf_names"]
    return summary["options"]["seed"]


def test_a_crash_at_any_step_of_the_commit_leaves_the_old_or_the_new_output(
    committed, tmp_path, monkeypatch
):
    new_run = os.path.join(committed["second"], os.readlink(os.path.join(committed["second"], "current")))
    seen = []
    for step in range(1, 40):
        output = str(tmp_path / f"out{step}")
        shutil.copytree(committed["first"], output, symlinks=True)
        staging = os.path.join(output, "_staging-new")
        shutil.copytree(new_run, staging)
        os.remove(os.path.join(staging, "_SUCCESS"))
        calls = _crash_at(monkeypatch, step)
        try:
            commit_module.publish(staging, output, "new", [])
            finished = True
        except _Crash:
            finished = False
        monkeypatch.undo()
        seen.append(_complete_run(output))
        if finished:
            break
    assert finished and calls[0] >= 3, "the commit never completed"
    assert seen[0] == 0 and seen[-1] == 7  # crashes early show the old run, late ones the new
    assert set(seen) == {0, 7}


SLOW_LF = """

import time


@labeling_function()
def slow(x):
    time.sleep(0.2)  # keeps the first run going while the second one starts
    return ABSTAIN
"""


def test_a_second_concurrent_run_into_one_output_fails_clearly(committed, tmp_path):
    output = str(tmp_path / "shared")
    slow_lfs = tmp_path / "slow_lfs.py"
    with open(committed["files"]["lfs"], encoding="utf-8") as handle:
        slow_lfs.write_text(handle.read() + SLOW_LF)
    argv = _argv(committed["files"], committed["model"], output)
    argv[argv.index("--labeling_functions") + 1] = str(slow_lfs)
    first = subprocess.Popen(
        [sys.executable, "-m", "pipelines.weak_label", *argv],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not os.path.exists(os.path.join(output, "_lock")):
            assert first.poll() is None, first.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        with pytest.raises(ValueError, match=r"is locked by another epoxy-beam run \(run \w+, "
                           r"pid \d+ .*wait for it to finish, pick another --output"):
            weak_label.run(_argv(committed["files"], committed["model"], output))
    finally:
        _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-2000:]
    assert _complete_run(output) == 0 and not os.path.exists(os.path.join(output, "_lock"))


def test_a_lock_left_by_a_killed_run_is_taken_over(committed, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lock = OutputLock(str(output), "old")
    (output / "_lock").write_text(json.dumps({**lock._facts(), "pid": int(dead.stdout)}))
    weak_label.run(_argv(committed["files"], committed["model"], str(output)))
    assert _complete_run(str(output)) == 0


def test_an_output_of_the_older_unversioned_layout_is_taken_over(committed, tmp_path):
    output = tmp_path / "old_layout"
    current = os.path.join(committed["first"], os.readlink(os.path.join(committed["first"], "current")))
    shutil.copytree(current, output)  # real labels/, errors/, summary.json, _SUCCESS
    weak_label.run(_argv(committed["files"], committed["model"], str(output), "--seed", "5"))
    assert os.path.islink(output / "labels") and _complete_run(str(output)) == 5
