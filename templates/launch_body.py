"""The request body of ``projects.locations.flexTemplates.launch`` for one nightly run.

Standard library only (no Airflow, no Beam): the Airflow DAG imports it, and it prints the body
for any other scheduler (Cloud Scheduler, a cron job with ``curl``)::

    python -m templates.launch_body --project my-proj --region us-central1 \\
        --bucket gs://my-bucket --image us-central1-docker.pkg.dev/my-proj/repo/epoxy-beam:v1 \\
        --service_account epoxy@my-proj.iam.gserviceaccount.com \\
        --input 'gs://my-bucket/corpus/*.parquet' --labeling_functions gs://my-bucket/lfs.py \\
        --run_date 2024-05-01 > body.json

Every night writes to its own dated prefix ``gs://BUCKET/labels/<date>/`` and reuses one
artifacts cache ``gs://BUCKET/cache/``, so a night embeds only new or changed documents.
Parameter values are strings, as the launch API requires. ``run_date`` is an ISO date, or
Airflow's ``{{ ds }}`` (the DAG's logical date, rendered by Airflow).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import re
import sys
from typing import Any, Mapping, Sequence

AIRFLOW_DS = "{{ ds }}"
AIRFLOW_DS_NODASH = "{{ ds_nodash }}"
MAX_JOB_NAME = 63
JOB_NAME_PATTERN = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
TEMPLATE_FILE = "templates/epoxy-beam.json"
# Set by launch_body() itself: passing them in `parameters` would be ambiguous.
RESERVED_PARAMETERS = ("input", "output", "cache_dir", "labeling_functions")


@dataclasses.dataclass(frozen=True)
class NightlyJob:
    """What every nightly launch needs. Nothing has a cloud default: all of it is the user's.

    Attributes:
        project: Google Cloud project id.
        region: Dataflow region, e.g. ``us-central1``.
        bucket: ``gs://BUCKET`` (or ``BUCKET``) holding the template spec, temp, staging,
            the dated outputs and the cache.
        image: The template image (``templates/Dockerfile``); workers run it too.
        service_account: Email of the service account the launcher and workers run as.
        input: The corpus (``--input``): the whole, growing corpus, every night.
        labeling_functions: ``gs://`` path of the LF file (``--labeling_functions``).
        parameters: Further job options by name (``dev_input``, ``text_field``, ...); values
            are converted to strings (booleans as ``true``/``false``).
        template_path: The template spec; default ``gs://BUCKET/templates/epoxy-beam.json``.
        job_prefix: Job names are ``<job_prefix>-<YYYYMMDD>``.
        max_workers: Autoscaling ceiling; 0 leaves Dataflow's default.
        machine_type: Worker machine type; empty leaves Dataflow's default.
    """

    project: str
    region: str
    bucket: str
    image: str
    service_account: str
    input: str
    labeling_functions: str
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    template_path: str = ""
    job_prefix: str = "epoxy-beam-nightly"
    max_workers: int = 0
    machine_type: str = ""

    def __post_init__(self) -> None:
        for name in ("project", "region", "bucket", "image", "service_account", "input",
                     "labeling_functions"):  # fmt: skip
            if not str(getattr(self, name)).strip():
                raise ValueError(f"NightlyJob.{name} is empty: it is required, pass a value")
        reserved = sorted(set(self.parameters) & set(RESERVED_PARAMETERS))
        if reserved:
            raise ValueError(
                f"parameters {reserved} are set by the nightly launch itself (input and "
                "labeling_functions are NightlyJob fields; output and cache_dir derive from the "
                "bucket): remove them from NightlyJob.parameters"
            )
        if self.max_workers < 0:
            raise ValueError(f"max_workers={self.max_workers} is negative: use 0 (default) or more")
        job_name(self.job_prefix, "2000-01-01")  # fails early on a bad prefix

    @property
    def bucket_url(self) -> str:
        """``gs://BUCKET`` without a trailing slash."""
        return bucket_url(self.bucket)

    @property
    def template_spec(self) -> str:
        """The template spec's ``gs://`` path."""
        return self.template_path or f"{self.bucket_url}/{TEMPLATE_FILE}"


def bucket_url(bucket: str) -> str:
    """``gs://BUCKET`` for ``BUCKET``, ``gs://BUCKET`` or ``gs://BUCKET/``.

    >>> bucket_url("my-bucket"), bucket_url("gs://my-bucket/")
    ('gs://my-bucket', 'gs://my-bucket')
    """
    name = bucket.strip().removeprefix("gs://").rstrip("/")
    if not name or "/" in name:
        raise ValueError(
            f"bucket {bucket!r} is not a bucket name: pass BUCKET or gs://BUCKET (no folder)"
        )
    return f"gs://{name}"


def dated_output(bucket: str, run_date: str) -> str:
    """The night's output prefix.

    >>> dated_output("gs://b", "2024-05-01")
    'gs://b/labels/2024-05-01/'
    >>> dated_output("b", "{{ ds }}")
    'gs://b/labels/{{ ds }}/'
    """
    _check_run_date(run_date)
    return f"{bucket_url(bucket)}/labels/{run_date}/"


def cache_dir(bucket: str) -> str:
    """The artifacts cache every night shares.

    >>> cache_dir("gs://b")
    'gs://b/cache/'
    """
    return f"{bucket_url(bucket)}/cache/"


def job_name(prefix: str, run_date: str) -> str:
    """``<prefix>-<YYYYMMDD>``, checked against Dataflow's job name rules.

    The prefix is lowercased and every run of characters outside ``[-a-z0-9]`` becomes ``-``.

    >>> job_name("Epoxy_Beam nightly", "2024-05-01")
    'epoxy-beam-nightly-20240501'
    >>> job_name("epoxy-beam-nightly", "{{ ds }}")
    'epoxy-beam-nightly-{{ ds_nodash }}'

    Raises:
        ValueError: if the name does not start with a letter or is longer than 63 characters.
    """
    _check_run_date(run_date)
    date = AIRFLOW_DS_NODASH if run_date == AIRFLOW_DS else run_date.replace("-", "")
    clean = re.sub(r"[^-a-z0-9]+", "-", prefix.strip().lower()).strip("-")
    rendered = f"{clean}-{'0' * 8}"  # the length and shape of the name once the date is rendered
    if not JOB_NAME_PATTERN.fullmatch(rendered) or len(rendered) > MAX_JOB_NAME:
        raise ValueError(
            f"job prefix {prefix!r} gives job names like {rendered!r}: Dataflow job names are "
            f"lowercase [-a-z0-9], start with a letter and here stay within {MAX_JOB_NAME} "
            f"characters; use a prefix of 1 to {MAX_JOB_NAME - 9} characters starting with a letter"
        )
    return f"{clean}-{date}"


def _check_run_date(run_date: str) -> None:
    if run_date == AIRFLOW_DS:
        return
    try:
        datetime.date.fromisoformat(run_date)
    except ValueError:
        raise ValueError(
            f"run_date {run_date!r} is not an ISO date: pass YYYY-MM-DD, or {AIRFLOW_DS!r} in an "
            "Airflow DAG"
        ) from None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", run_date):
        raise ValueError(f"run_date {run_date!r} must be written YYYY-MM-DD")


def parameter_string(value: Any) -> str:
    """A launch parameter value as a string (the API's ``map<string, string>``).

    >>> [parameter_string(v) for v in (True, False, 20, 0.5, "x")]
    ['true', 'false', '20', '0.5', 'x']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(
        f"parameter value {value!r} is a {type(value).__name__}: pass a string, number or boolean"
    )


def launch_body(job: NightlyJob, run_date: str) -> dict[str, Any]:
    """The ``flexTemplates.launch`` request body of the night ``run_date``.

    Args:
        job: The nightly job's settings.
        run_date: ``YYYY-MM-DD``, or ``"{{ ds }}"`` for Airflow to render.

    Returns:
        ``{"launchParameter": {"jobName", "containerSpecGcsPath", "parameters", "environment"}}``.
    """
    bucket = job.bucket_url
    parameters = {name: parameter_string(value) for name, value in job.parameters.items()}
    parameters.update(
        input=job.input,
        labeling_functions=job.labeling_functions,
        output=dated_output(bucket, run_date),
        cache_dir=cache_dir(bucket),
    )
    environment: dict[str, Any] = {
        "serviceAccountEmail": job.service_account,
        "tempLocation": f"{bucket}/temp/",
        "stagingLocation": f"{bucket}/staging/",
        "sdkContainerImage": job.image,
    }
    if job.max_workers:
        environment["maxWorkers"] = job.max_workers
    if job.machine_type:
        environment["machineType"] = job.machine_type
    return {
        "launchParameter": {
            "jobName": job_name(job.job_prefix, run_date),
            "containerSpecGcsPath": job.template_spec,
            "parameters": dict(sorted(parameters.items())),
            "environment": environment,
        }
    }


def launch_url(project: str, region: str) -> str:
    """The REST endpoint a scheduler POSTs the body to.

    >>> launch_url("p", "us-central1")
    'https://dataflow.googleapis.com/v1b3/projects/p/locations/us-central1/flexTemplates:launch'
    """
    return (
        f"https://dataflow.googleapis.com/v1b3/projects/{project}/locations/{region}"
        "/flexTemplates:launch"
    )


def _parse_parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. text_field=CONTENT)")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m templates.launch_body``."""
    parser = argparse.ArgumentParser(
        prog="python -m templates.launch_body",
        description="Print the flexTemplates.launch request body of one nightly run.",
    )
    for name in ("project", "region", "bucket", "image", "service_account", "input",
                 "labeling_functions"):  # fmt: skip
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--run_date", default=datetime.date.today().isoformat(),
                        help="YYYY-MM-DD (default: today)")  # fmt: skip
    parser.add_argument("--template_path", default="")
    parser.add_argument("--job_prefix", default=NightlyJob.job_prefix)
    parser.add_argument("--max_workers", type=int, default=0)
    parser.add_argument("--machine_type", default="")
    parser.add_argument("--parameter", action="append", type=_parse_parameter, default=[],
                        metavar="NAME=VALUE", help="a further job option; repeatable")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the body as JSON; a bad value prints one line and exits 2."""
    args = vars(build_parser().parse_args(argv))
    run_date = args.pop("run_date")
    args["parameters"] = dict(args.pop("parameter"))
    try:
        body = launch_body(NightlyJob(**args), run_date)
    except ValueError as error:
        print(f"launch_body: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
