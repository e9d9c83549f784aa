#!/usr/bin/env bash
# Run a kerastune recipe on a Cloud TPU VM, keeping its run directory in a bucket so a preempted
# (spot) VM picks up where it stopped.
#
#   tpu/launch.sh RECIPE gs://BUCKET/runs/NAME [key=value ...]
#
# RECIPE names tpu/configs/RECIPE.toml. Before training, whatever an earlier VM left in the bucket
# (checkpoints, history.csv) is copied back, and the recipe resumes from its newest checkpoint; while
# it trains, the run directory is copied up every SYNC_SECONDS (default 300) and once more at the end.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 RECIPE gs://BUCKET/runs/NAME [key=value ...]" >&2
  exit 2
fi
recipe=$1
remote=${2%/}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
config="$here/configs/$recipe.toml"
[ -f "$config" ] || { echo "no TPU config for '$recipe' ($config)" >&2; exit 2; }
local_dir=${LOCAL_RUN_DIR:-runs/$(basename "$remote")}
export KERAS_BACKEND=${KERAS_BACKEND:-jax}

mkdir -p "$local_dir"
gcloud storage rsync --recursive "$remote" "$local_dir" 2>/dev/null || echo "no earlier run at $remote: starting fresh"

( while sleep "${SYNC_SECONDS:-300}"; do gcloud storage rsync --recursive "$local_dir" "$remote" >/dev/null 2>&1 || true; done ) &
syncer=$!
trap 'kill $syncer 2>/dev/null || true; gcloud storage rsync --recursive "$local_dir" "$remote"' EXIT

kerastune run "$config" --set "output_dir=$local_dir" "$@"
