#!/usr/bin/env bash
# Run a search on the cluster this node belongs to; experiment state on shared storage so that
# `--resume` works from any node. Usage: cluster/submit.sh --space lwta --preset paper [...]
set -euo pipefail
cd "$(dirname "$0")/.."
storage="${ROBUSTUNE_STORAGE:-s3://robustune-runs}"
exec .venv/bin/python -m tuner.search --address auto --storage-path "$storage" --no-live "$@"
