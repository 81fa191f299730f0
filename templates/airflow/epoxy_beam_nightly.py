"""Nightly epoxy-beam run on Dataflow: one Flex Template launch per day, deferrable.

Deploy (``docs/deploy.md``, "Run nightly"): copy into the DAGs folder this file,
``templates/launch_body.py`` and ``epoxy_beam_nightly.json`` (your copy of
``templates/airflow/epoxy_beam_nightly.example.json``: the :class:`launch_body.NightlyJob`
fields). Each night labels the whole corpus into ``gs://BUCKET/labels/<ds>/`` and reuses
``gs://BUCKET/cache/``, so only new or changed documents are embedded. ``max_active_runs=1``:
nights share the cache and run one after another. The job name ``<prefix>-<ds_nodash>`` is
fixed per night, so a retry cannot start a second active job for the same night (Dataflow
refuses a second active job of the same name in a region).
"""

from __future__ import annotations

import datetime
import json
import os

from airflow import DAG
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

from launch_body import AIRFLOW_DS, NightlyJob, launch_body

CONFIG_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "epoxy_beam_nightly.json")


def load_job(path: str = CONFIG_FILE) -> NightlyJob:
    """The nightly job's settings from the JSON file next to this DAG.

    Raises:
        ValueError: naming the file and the fix when it is missing or not valid.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return NightlyJob(**json.load(handle))
    except FileNotFoundError:
        raise ValueError(
            f"{path} does not exist: copy templates/airflow/epoxy_beam_nightly.example.json "
            "there and fill in your project, region, bucket, image, service account, input and "
            "labeling functions"
        ) from None
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{path} is not a valid NightlyJob JSON object: {error}") from None


JOB = load_job()

with DAG(
    dag_id="epoxy_beam_nightly",
    description="Weak labels for the growing corpus, nightly on Dataflow (incremental via cache)",
    schedule="0 2 * * *",
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(minutes=15)},
    tags=["epoxy-beam", "dataflow"],
    doc_md=__doc__,
) as dag:
    DataflowStartFlexTemplateOperator(
        task_id="label_corpus",
        project_id=JOB.project,
        location=JOB.region,
        body=launch_body(JOB, AIRFLOW_DS),
        deferrable=True,
        append_job_name=False,
    )
