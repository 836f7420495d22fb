#!/usr/bin/env bash
# The search on the Ray cluster this node belongs to, its state on the storage every node mounts, so
# that trials on any node checkpoint into it and `--resume` works after the head is replaced:
#   ray submit cluster/ray-cluster.yaml cluster/submit.sh -- --space lwta --preset paper --download
#   ray submit cluster/ray-cluster.yaml cluster/submit.sh -- --space lwta --preset paper --resume
# (`ray submit` copies this file to the head's home folder and runs it there, in the container.)
# The flags after -- are the search's own. ROBUSTUNE_SHARED (default /shared) is the shared folder:
# experiments in runs/, exports in exports/, datasets in data/. The Optuna study is a journal file
# beside the experiment (SQLite must not live on NFS).
set -euo pipefail
shared="${ROBUSTUNE_SHARED:-/shared}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
exec "${ROBUSTUNE_PYTHON:-python}" -m tuner.search --address auto --storage-path "$shared/runs" \
    --export-dir "$shared/exports" --data-dir "$shared/data" --study-storage journal --no-live "$@"
