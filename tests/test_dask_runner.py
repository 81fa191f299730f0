"""The job on a real Dask cluster: ``distributed.LocalCluster`` with 2 worker processes (loopback).

Labels must equal the FnApiRunner run's; probabilities agree within ``PROBS_ATOL`` (the label
model and end model are fitted once, in one task, on both runners; only the order in which
partial statistics are summed differs). A worker that dies fails the run with a clear message.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from pipelines import weak_label
from pipelines.runners import SHORT_NAMES, resolve_runner_name
from transforms.labeling_functions import load_lf_set

dask = pytest.importorskip("dask", reason="the dask extra (pip install -e '.[dask]') is not installed")
distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

PROBS_ATOL = 1e-6  # documented in README "Choosing the runner"
BOUNDED_FAILURE_SECONDS = 120

KILLER_LF = '''
import os
from transforms.core.votes import ABSTAIN, labeling_function


@labeling_function()
def crashes_the_worker(x):
    if x.text:
        os._exit(17)  # a segfaulting C extension or the OOM killer, as the worker sees it
    return ABSTAIN
'''


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes; a task whose worker dies is not retried (keeps the test short)."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as local_cluster:
            yield local_cluster


def _argv(files, model, output, *runner):
    return [
        "--input", files["corpus"],
        "--dev_input", files["dev"],
        "--labeling_functions", files["lfs"],
        "--model", model,
        "--output", output,
        "--num_neighbours", "5",
        *runner,
    ]  # fmt: skip


def _labels(output: str) -> dict[str, dict]:
    rows = pq.read_table(f"{output}/labels/part-00000-of-00001.parquet").to_pylist()
    return {row["id"]: row for row in rows}


def test_short_runner_name_maps_to_the_override():
    FULL_NAME = SHORT_NAMES["daskrunner"]
    assert resolve_runner_name(["--runner=DaskRunner", "--x=1"]) == [f"--runner={FULL_NAME}", "--x=1"]
    assert resolve_runner_name(["--runner", "DaskRunner"]) == ["--runner", FULL_NAME]
    assert resolve_runner_name(["--runner=FnApiRunner"]) == ["--runner=FnApiRunner"]


def test_lf_set_pickles_as_source_not_as_a_launcher_only_module(corpus_files, tmp_path):
    lf_set = load_lf_set(corpus_files["lfs"])
    assert lf_set.lfs[0].f.__module__.startswith("epoxy_lfs_")  # the synthetic module
    payload = pickle.dumps(lf_set)
    assert b"epoxy_lfs_" not in payload
    (tmp_path / "lf_set.pkl").write_bytes(payload)
    fresh = subprocess.run(  # a process that never loaded the LF file, like a worker
        [sys.executable, "-c", "import pickle,sys; s = pickle.load(open(sys.argv[1], 'rb')); "
         "print(','.join(s.names))", str(tmp_path / "lf_set.pkl")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert fresh.stdout.strip() == ",".join(lf_set.names)


def test_dask_cluster_labels_equal_fnapi_runner(cluster, corpus_files, tiny_model, tmp_path):
    fnapi, on_dask = str(tmp_path / "fnapi"), str(tmp_path / "dask")
    weak_label.run(_argv(corpus_files, tiny_model, fnapi, "--runner=FnApiRunner"))
    weak_label.run(
        _argv(
            corpus_files, tiny_model, on_dask,
            "--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}",
        )
    )  # fmt: skip
    expected, actual = _labels(fnapi), _labels(on_dask)
    assert sorted(actual) == sorted(expected) and len(actual) == 90
    for doc_id, row in actual.items():
        assert row["label"] == expected[doc_id]["label"], doc_id
        assert row["extended_votes"] == expected[doc_id]["extended_votes"], doc_id
        assert row["probs"] == pytest.approx(expected[doc_id]["probs"], abs=PROBS_ATOL), doc_id
    assert (tmp_path / "dask" / "_SUCCESS").exists()
    stage_rows = [  # the per-stage counts travel in the data, so Dask reports them too
        [(stage["stage"], stage["rows"]) for stage in json.loads(open(f"{out}/summary.json").read())["stages"]]
        for out in (fnapi, on_dask)
    ]
    assert stage_rows[0] == stage_rows[1] and stage_rows[0][0] == ("read", 90)


def test_a_dead_worker_fails_the_run_clearly_and_in_bounded_time(cluster, corpus_files, tiny_model, tmp_path):
    killer = tmp_path / "killer_lfs.py"
    killer.write_text(KILLER_LF)
    files = dict(corpus_files, lfs=str(killer))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="a Dask worker died while running task"):
        weak_label.run(
            _argv(
                files, tiny_model, str(tmp_path / "out"),
                "--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}",
            )
        )  # fmt: skip
    assert time.monotonic() - started < BOUNDED_FAILURE_SECONDS
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_a_cluster_without_workers_fails_after_the_timeout(corpus_files, tiny_model, tmp_path):
    with distributed.LocalCluster(
        n_workers=0, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as empty:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="has had no worker for"):
            weak_label.run(
                _argv(
                    corpus_files, tiny_model, str(tmp_path / "out"),
                    "--runner=DaskRunner", f"--dask_client_address={empty.scheduler_address}",
                    "--dask_no_worker_timeout=2",
                )
            )  # fmt: skip
        assert time.monotonic() - started < 60
