"""The nightly launch body: the flexTemplates.launch request, built without Airflow."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from pipelines.options import option_fields
from templates.launch_body import (
    AIRFLOW_DS,
    MAX_JOB_NAME,
    NightlyJob,
    job_name,
    launch_body,
    launch_url,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = dict(
    project="acme-labels",
    region="europe-west4",
    bucket="gs://acme-epoxy",
    image="europe-west4-docker.pkg.dev/acme-labels/ml/epoxy-beam:v7",
    service_account="epoxy@acme-labels.iam.gserviceaccount.com",
    input="gs://acme-epoxy/corpus/*.parquet",
    labeling_functions="gs://acme-epoxy/lfs.py",
)


def _job(**changes) -> NightlyJob:
    return NightlyJob(**{**JOB, **changes})


def test_body_has_the_shape_of_the_launch_api():
    job = _job(parameters={"dev_input": "gs://acme-epoxy/dev.parquet", "num_neighbours": 30,
                           "extension": False, "holdout_fraction": 0.25},
               max_workers=40, machine_type="n2-standard-8")  # fmt: skip
    body = launch_body(job, "2024-05-01")
    assert list(body) == ["launchParameter"]
    launch = body["launchParameter"]
    assert set(launch) == {"jobName", "containerSpecGcsPath", "parameters", "environment"}
    assert launch["jobName"] == "epoxy-beam-nightly-20240501"
    assert launch["containerSpecGcsPath"] == "gs://acme-epoxy/templates/epoxy-beam.json"
    assert launch["parameters"] == {
        "cache_dir": "gs://acme-epoxy/cache/",
        "dev_input": "gs://acme-epoxy/dev.parquet",
        "extension": "false",
        "holdout_fraction": "0.25",
        "input": "gs://acme-epoxy/corpus/*.parquet",
        "labeling_functions": "gs://acme-epoxy/lfs.py",
        "num_neighbours": "30",
        "output": "gs://acme-epoxy/labels/2024-05-01/",
    }
    assert launch["environment"] == {
        "serviceAccountEmail": "epoxy@acme-labels.iam.gserviceaccount.com",
        "tempLocation": "gs://acme-epoxy/temp/",
        "stagingLocation": "gs://acme-epoxy/staging/",
        "sdkContainerImage": JOB["image"],
        "maxWorkers": 40,
        "machineType": "n2-standard-8",
    }


def test_every_parameter_is_a_string_naming_a_job_option():
    job = _job(parameters={"seed": 3, "end_model": True, "class_names": "HAM,SPAM"})
    parameters = launch_body(job, "2024-05-01")["launchParameter"]["parameters"]
    assert all(isinstance(value, str) for value in parameters.values())
    assert set(parameters) <= {field.name for field in option_fields()}
    with pytest.raises(ValueError, match=r"parameter value \[1, 2\] is a list"):
        launch_body(_job(parameters={"lf_names": [1, 2]}), "2024-05-01")


def test_each_night_writes_its_own_prefix_and_shares_one_cache():
    nights = [launch_body(_job(), day)["launchParameter"] for day in ("2024-05-01", "2024-05-02")]
    assert [n["parameters"]["output"] for n in nights] == [
        "gs://acme-epoxy/labels/2024-05-01/", "gs://acme-epoxy/labels/2024-05-02/"
    ]  # fmt: skip
    assert {n["parameters"]["cache_dir"] for n in nights} == {"gs://acme-epoxy/cache/"}
    assert nights[0]["jobName"] != nights[1]["jobName"]
    assert nights[0]["parameters"]["input"] == nights[1]["parameters"]["input"]


def test_airflow_body_carries_the_ds_macros():
    launch = launch_body(_job(), AIRFLOW_DS)["launchParameter"]
    assert launch["parameters"]["output"] == "gs://acme-epoxy/labels/{{ ds }}/"
    assert launch["jobName"] == "epoxy-beam-nightly-{{ ds_nodash }}"
    rendered = launch["jobName"].replace("{{ ds_nodash }}", "20240501")
    assert rendered == launch_body(_job(), "2024-05-01")["launchParameter"]["jobName"]


@pytest.mark.parametrize(
    "prefix, expected",
    [
        ("epoxy-beam-nightly", "epoxy-beam-nightly-20240501"),
        ("Team_A Epoxy", "team-a-epoxy-20240501"),
        ("x" * (MAX_JOB_NAME - 9), "x" * (MAX_JOB_NAME - 9) + "-20240501"),
    ],
)
def test_job_names_follow_dataflow_rules(prefix, expected):
    name = job_name(prefix, "2024-05-01")
    assert name == expected
    assert len(name) <= MAX_JOB_NAME
    assert name == name.lower() and set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert name[0].isalpha() and name[-1].isalnum()


@pytest.mark.parametrize(
    "prefix, message",
    [
        ("x" * (MAX_JOB_NAME - 8), "within 63 characters"),
        ("2024-run", "start with a letter"),
        ("___", "start with a letter"),
    ],
)
def test_bad_job_prefixes_are_refused_at_construction(prefix, message):
    with pytest.raises(ValueError, match=message):
        _job(job_prefix=prefix)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"project": ""}, "NightlyJob.project is empty"),
        ({"bucket": "gs://acme/sub"}, "is not a bucket name"),
        ({"parameters": {"output": "gs://elsewhere/"}}, r"parameters \['output'\] are set by"),
        ({"max_workers": -1}, "max_workers=-1"),
    ],
)
def test_bad_settings_name_the_value_and_the_fix(changes, message):
    with pytest.raises(ValueError, match=message):
        launch_body(_job(**changes), "2024-05-01")


@pytest.mark.parametrize("run_date", ["2024-5-1", "20240501", "yesterday", "{{ ds_nodash }}"])
def test_run_date_is_an_iso_date_or_the_ds_macro(run_date):
    with pytest.raises(ValueError, match="run_date"):
        launch_body(_job(), run_date)


def test_bucket_may_be_given_without_the_scheme_and_template_path_overridden():
    launch = launch_body(_job(bucket="acme-epoxy/", template_path="gs://t/spec.json"), "2024-05-01")
    assert launch["launchParameter"]["containerSpecGcsPath"] == "gs://t/spec.json"
    assert launch["launchParameter"]["parameters"]["cache_dir"] == "gs://acme-epoxy/cache/"


def test_cli_prints_the_body_for_cloud_scheduler():
    argv = [f"--{name}={value}" for name, value in JOB.items()]
    argv += ["--run_date=2024-05-01", "--parameter=text_field=CONTENT", "--max_workers=8"]
    result = subprocess.run(
        [sys.executable, "-m", "templates.launch_body", *argv],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    expected = launch_body(
        _job(parameters={"text_field": "CONTENT"}, max_workers=8), "2024-05-01"
    )  # fmt: skip
    assert json.loads(result.stdout) == expected
    bad = subprocess.run(
        [sys.executable, "-m", "templates.launch_body", *argv, "--job_prefix=9lives"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and "launch_body: error: job prefix '9lives'" in bad.stderr
    assert launch_url("acme-labels", "europe-west4") == (
        "https://dataflow.googleapis.com/v1b3/projects/acme-labels/locations/europe-west4"
        "/flexTemplates:launch"
    )


def test_module_imports_only_the_standard_library():
    with open(os.path.join(ROOT, "templates", "launch_body.py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}  # fmt: skip
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}  # fmt: skip
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules


def test_body_parses_as_the_dataflow_api_request():
    types = pytest.importorskip(
        "google.cloud.dataflow_v1beta3.types",
        reason="needs google-cloud-dataflow-client (the Dataflow API's own message types)",
    )
    body = launch_body(_job(parameters={"seed": 1}, max_workers=5, machine_type="n2-standard-4"),
                       "2024-05-01")  # fmt: skip
    request = types.LaunchFlexTemplateRequest.from_json(json.dumps(body))
    launch = request.launch_parameter
    assert launch.job_name == "epoxy-beam-nightly-20240501"
    assert launch.environment.max_workers == 5
    assert launch.environment.sdk_container_image == JOB["image"]
    assert dict(launch.parameters)["seed"] == "1"
