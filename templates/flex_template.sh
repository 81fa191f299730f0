#!/usr/bin/env bash
# Build and launch the epoxy-beam Dataflow Flex Template.
#
#   templates/flex_template.sh build                 # image (Cloud Build) + template spec
#   templates/flex_template.sh launch --input=gs://B/corpus/*.parquet --output=gs://B/labels/x/ \
#       --labeling_functions=gs://B/lfs.py [--NAME=VALUE ...]
#   templates/flex_template.sh rehearse --input=... --output=...   # the image, locally (Docker)
#
# Required environment (nothing is hard-coded):
#   PROJECT          Google Cloud project id
#   REGION           Dataflow region, e.g. us-central1
#   BUCKET           bucket (name or gs://name) for the template spec, staging and temp files
#   IMAGE            the template image, e.g. us-central1-docker.pkg.dev/PROJECT/REPO/epoxy-beam:v1
#   SERVICE_ACCOUNT  (launch) email of the service account the launcher and workers run as
# Optional:
#   TEMPLATE_PATH    template spec (default gs://BUCKET/templates/epoxy-beam.json)
#   BUILDER          cloudbuild (default) or docker (local docker build + push)
#   JOB_NAME         (launch) default epoxy-beam-YYYYMMDD-HHMMSS (UTC)
#   MAX_WORKERS, WORKER_MACHINE_TYPE   (launch) Dataflow worker settings
#   DRY_RUN=1        print the commands (shell-quoted, one per line) instead of running them
# Launch arguments are the job's options as --NAME=VALUE (templates/metadata.json lists them);
# each becomes a template parameter.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
METADATA="$HERE/metadata.json"

die() { echo "flex_template.sh: error: $*" >&2; exit 2; }

require() {
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || die "$name is not set: export $name (see the header of templates/flex_template.sh)"
  done
}

run() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    "$@"
  fi
}

# Sets BUCKET_NAME (BUCKET without gs:// and slashes) and TEMPLATE; not in a subshell, so that
# die() stops the script.
resolve_bucket() {
  BUCKET_NAME="${BUCKET#gs://}"
  BUCKET_NAME="${BUCKET_NAME%/}"
  [[ -n "$BUCKET_NAME" && "$BUCKET_NAME" != */* ]] \
    || die "BUCKET='$BUCKET' is not a bucket: use NAME or gs://NAME (no folder)"
  TEMPLATE="${TEMPLATE_PATH:-gs://$BUCKET_NAME/templates/epoxy-beam.json}"
}

build() {
  require PROJECT REGION BUCKET IMAGE
  resolve_bucket
  local builder="${BUILDER:-cloudbuild}"
  cd "$ROOT"
  case "$builder" in
    cloudbuild)
      run gcloud builds submit --project="$PROJECT" --region="$REGION" \
        --config=templates/cloudbuild.yaml --substitutions="_IMAGE=$IMAGE" .
      ;;
    docker)
      run docker build --file templates/Dockerfile --tag "$IMAGE" .
      run docker push "$IMAGE"
      ;;
    *) die "BUILDER='$builder' is not cloudbuild or docker" ;;
  esac
  run gcloud dataflow flex-template build "$TEMPLATE" --project="$PROJECT" \
    --image="$IMAGE" --sdk-language=PYTHON --metadata-file=templates/metadata.json
}

required_parameters() {
  python3 -c 'import json, sys
for p in json.load(open(sys.argv[1]))["parameters"]:
    if not p.get("isOptional"):
        print(p["name"])' "$METADATA"
}

# --NAME=VALUE -> --parameters=NAME=VALUE (gcloud's ^~^ delimiter when VALUE has a comma).
parameter_flags() {
  local arg name value
  for arg in "$@"; do
    [[ "$arg" =~ ^--([a-z_][a-z0-9_]*)=(.*)$ ]] \
      || die "'$arg' is not --NAME=VALUE: pass each job option as --name=value"
    name="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    if [[ "$value" == *,* ]]; then
      [[ "$value" != *~* ]] || die "--$name='$value' has both ',' and '~': gcloud cannot pass it; use the launch API body (python -m templates.launch_body)"
      echo "--parameters=^~^$name=$value"
    else
      echo "--parameters=$name=$value"
    fi
  done
}

launch() {
  require PROJECT REGION BUCKET IMAGE SERVICE_ACCOUNT
  resolve_bucket
  local name job_name flags
  for name in $(required_parameters); do
    # No `printf | grep -q`: under pipefail, grep -q exiting first can fail printf with SIGPIPE.
    [[ " $* " == *" --$name="* ]] || die "--$name=VALUE is required (templates/metadata.json)"
  done
  job_name="${JOB_NAME:-epoxy-beam-$(date -u +%Y%m%d-%H%M%S)}"
  [[ "$job_name" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ && ${#job_name} -le 63 ]] \
    || die "JOB_NAME='$job_name' is not a Dataflow job name: lowercase [-a-z0-9], starting with a letter, at most 63 characters"
  flags="$(parameter_flags "$@")"
  local -a command=(gcloud dataflow flex-template run "$job_name"
    --project="$PROJECT" --region="$REGION"
    --template-file-gcs-location="$TEMPLATE"
    --service-account-email="$SERVICE_ACCOUNT"
    --staging-location="gs://$BUCKET_NAME/staging/" --temp-location="gs://$BUCKET_NAME/temp/"
    --parameters="sdk_container_image=$IMAGE")
  [[ -z "${MAX_WORKERS:-}" ]] || command+=(--max-workers="$MAX_WORKERS")
  [[ -z "${WORKER_MACHINE_TYPE:-}" ]] || command+=(--worker-machine-type="$WORKER_MACHINE_TYPE")
  while IFS= read -r name; do
    [[ -z "$name" ]] || command+=("$name")
  done <<< "$flags"
  run "${command[@]}"
}

# The image's own entrypoint script on the local FnApiRunner: the current directory is mounted
# at /work, so pass paths under /work (e.g. --input=/work/examples/...).
rehearse() {
  require IMAGE
  run docker run --rm --volume "$PWD:/work" --workdir /work --entrypoint python "$IMAGE" \
    /template/templates/main.py --runner=FnApiRunner "$@"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

case "${1:-}" in
  build) shift; build "$@" ;;
  launch) shift; launch "$@" ;;
  rehearse) shift; rehearse "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; die "unknown sub-command '${1:-}': use build, launch or rehearse" ;;
esac
