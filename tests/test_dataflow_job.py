"""The job translates for Dataflow, checked offline (no credentials, no GCS, nothing submitted).

``--runner=DataflowRunner --dry_run`` makes Beam build the whole Dataflow job (its overrides,
the portable pipeline proto, the worker environment) and return before the service call. Beam
2.77 writes ``--dataflow_job_file`` only in that skipped call, so this test reads the built job
itself (``result.job``: ``proto_pipeline``, the exact proto Dataflow would stage, and ``proto``),
with the flags the Flex Template launch sets (``templates/flex_template.sh``: the image as
``sdk_container_image``, staging and temp locations, no requirements or setup file).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines import weak_label

pytest.importorskip(
    "apache_beam.runners.dataflow.internal.apiclient",
    reason="the dataflow extra (apache-beam[gcp]) is not installed",
)

IMAGE = "us-central1-docker.pkg.dev/offline-project/repo/epoxy-beam:v1"
STAGES = {
    "ReadCorpus", "AttachGold", "EmbedInput", "Embed", "Neighbours", "ApplyLFs",
    "NearestVoters", "JoinRecords", "Fit", "Label", "StageStats", "WriteLabels",
    "WriteDeadLetters", "Summarise", "WriteSummary", "WriteReport", "WriteModel", "Commit",
}  # fmt: skip
PICKLED_DOFN_URN = "beam:dofn:pickled_python_info:v1"

UNPICKLE_ALL = """
import sys
from apache_beam.internal import pickler
from apache_beam.portability.api import beam_runner_api_pb2
pipeline = beam_runner_api_pb2.Pipeline.FromString(open(sys.argv[1], "rb").read())
count = 0
for transform in pipeline.components.transforms.values():
    if transform.spec.urn != "beam:transform:pardo:v1":
        continue
    payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
    if payload.do_fn.urn == "{urn}":
        pickler.loads(payload.do_fn.payload)
        count += 1
print(count)
""".replace("{urn}", PICKLED_DOFN_URN)


@pytest.fixture(scope="module")
def dataflow_job(tmp_path_factory, tiny_model):
    from tests.conftest import LF_SOURCE, make_corpus

    root = tmp_path_factory.mktemp("dataflow")
    rows = make_corpus(30)
    (root / "corpus.jsonl").write_text("".join(f'{{"id": "{r["id"]}", "text": "{r["text"]}"}}\n' for r in rows))
    (root / "lfs.py").write_text(LF_SOURCE)
    argv = [
        "--input", str(root / "corpus.jsonl"),
        "--labeling_functions", str(root / "lfs.py"),
        "--model", tiny_model,
        "--output", str(root / "out"),
        "--runner=DataflowRunner", "--dry_run=True",
        "--project=offline-project", "--region=us-central1",
        "--staging_location=gs://offline-bucket/staging/", "--temp_location=gs://offline-bucket/temp/",
        "--sdk_location=container", f"--sdk_container_image={IMAGE}",
    ]  # fmt: skip
    return weak_label.run(argv, wait=False).job


def test_every_stage_is_in_the_dataflow_job(dataflow_job):
    pipeline = dataflow_job.proto_pipeline
    top_level = {
        pipeline.components.transforms[t].unique_name for t in pipeline.root_transform_ids
    } | {t.unique_name for t in pipeline.components.transforms.values() if "/" not in t.unique_name}
    assert STAGES <= top_level, sorted(STAGES - top_level)
    assert dataflow_job.proto.type.name == "JOB_TYPE_BATCH"


def test_workers_run_the_template_image_and_nothing_is_staged(dataflow_job):
    from apache_beam.options.pipeline_options import SetupOptions
    from apache_beam.portability.api import beam_runner_api_pb2

    environments = list(dataflow_job.proto_pipeline.components.environments.values())
    assert environments
    for environment in environments:
        payload = beam_runner_api_pb2.DockerPayload.FromString(environment.payload)
        assert payload.container_image == IMAGE
        staged = [dep.role_urn for dep in environment.dependencies]
        assert all("requirements" not in urn for urn in staged), staged
    setup = dataflow_job.options.view_as(SetupOptions)
    assert not setup.requirements_file and not setup.setup_file and not setup.extra_packages


def test_every_dofn_unpickles_in_a_process_without_the_launchers_modules(dataflow_job, tmp_path):
    proto = tmp_path / "pipeline.pb"
    proto.write_bytes(dataflow_job.proto_pipeline.SerializeToString())
    fresh = subprocess.run(
        [sys.executable, "-c", UNPICKLE_ALL, str(proto)], capture_output=True, text=True
    )
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert int(fresh.stdout.strip().splitlines()[-1]) > 50  # the job's DoFns, all of them
