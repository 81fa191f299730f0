"""The nightly DAG imports in a real Airflow (DagBag) and launches the body launch_body builds.

Runs where Apache Airflow and its Google provider are installed (a separate environment: see
docs/deploy.md, "Run nightly"); skipped visibly elsewhere. The DAG is loaded as it is deployed:
the DAG file, launch_body.py and the JSON settings side by side in a DAGs folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

pytestmark = pytest.mark.airflow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "templates")


@pytest.fixture()
def dags_folder(tmp_path, monkeypatch):
    """A DAGs folder laid out as docs/deploy.md says, with the example settings."""
    pytest.importorskip("airflow", reason="needs apache-airflow (pip install -e '.[airflow]')")
    pytest.importorskip(
        "airflow.providers.google.cloud.operators.dataflow",
        reason="needs apache-airflow-providers-google and -apache-beam",
    )
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(os.path.join(TEMPLATES, "airflow", "epoxy_beam_nightly.py"), folder)
    shutil.copy(os.path.join(TEMPLATES, "launch_body.py"), folder)
    shutil.copy(os.path.join(TEMPLATES, "airflow", "epoxy_beam_nightly.example.json"),
                folder / "epoxy_beam_nightly.json")  # fmt: skip
    monkeypatch.syspath_prepend(str(folder))  # Airflow puts the DAGs folder on sys.path
    monkeypatch.delitem(sys.modules, "launch_body", raising=False)
    return folder


def _dagbag(folder):
    from airflow.models import DagBag

    return DagBag(dag_folder=str(folder), include_examples=False)


def test_dag_imports_without_errors(dags_folder):
    bag = _dagbag(dags_folder)
    assert bag.import_errors == {}
    assert list(bag.dags) == ["epoxy_beam_nightly"]
    dag = bag.dags["epoxy_beam_nightly"]  # .dags, not get_dag(): no metadata database needed
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert [task.task_id for task in dag.tasks] == ["label_corpus"]


def test_task_is_a_deferrable_flex_template_launch_of_the_dated_body(dags_folder):
    from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

    task = _dagbag(dags_folder).dags["epoxy_beam_nightly"].get_task("label_corpus")
    assert isinstance(task, DataflowStartFlexTemplateOperator)
    assert task.deferrable is True
    assert task.wait_until_finished is False  # deferred: the triggerer waits, not a worker slot
    assert task.append_job_name is False  # the dated name is the per-night lock
    settings = json.loads((dags_folder / "epoxy_beam_nightly.json").read_text())
    assert (task.project_id, task.location) == (settings["project"], settings["region"])
    rendered = task.render_template(task.body, {"ds": "2024-05-01", "ds_nodash": "20240501"})
    launch = rendered["launchParameter"]
    assert launch["jobName"] == "epoxy-beam-nightly-20240501"
    assert launch["parameters"]["output"] == f"{settings['bucket']}/labels/2024-05-01/"
    assert launch["parameters"]["cache_dir"] == f"{settings['bucket']}/cache/"
    assert launch["environment"]["sdkContainerImage"] == settings["image"]


def test_missing_settings_file_is_an_import_error_naming_the_fix(dags_folder):
    (dags_folder / "epoxy_beam_nightly.json").unlink()
    errors = _dagbag(dags_folder).import_errors
    (message,) = errors.values()
    assert "epoxy_beam_nightly.json does not exist" in message
    assert "epoxy_beam_nightly.example.json" in message
