#!/usr/bin/env bash
# Set up robustune on a fresh machine: a venv in .venv, the package (editable), and the embedded
# Fashion-MNIST data from Debian's dataset-fashion-mnist package when apt is available.
#   ./setup.sh         runtime dependencies
#   ./setup.sh --dev   plus pytest, ruff, torchattacks, hypothesis, import-linter and mlflow (what the tests need)
set -euo pipefail
cd "$(dirname "$0")"
venv="${ROBUSTUNE_VENV:-.venv}"
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"${pip[@]}" -e ".${extras}"
if [ -n "$extras" ]; then  # see pyproject.toml: its requests pin would send pip's resolver backtracking against mlflow
    "${pip[@]}" --no-deps "torchattacks>=3.5"
fi

data=/usr/share/datasets/fashion-mnist
if [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "setup.sh: Fashion-MNIST not found in $data. Install it with 'sudo apt-get install" \
             "dataset-fashion-mnist', or put the four *-ubyte.gz files in a folder and pass --data-dir." >&2
    fi
fi
# the tests open the search's results page in a real headless browser
if [ "${1:-}" = "--dev" ] && ! command -v chromium >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
            || echo "setup.sh: could not install chromium: the results-page test will be skipped" >&2
    else
        echo "setup.sh: no chromium: the results-page test will be skipped (install it with 'sudo apt-get install" \
             "chromium')" >&2
    fi
fi
echo "setup.sh: ready ($("$venv/bin/python" -c 'import torch, ray, optuna; print(f"torch {torch.__version__}, ray {ray.__version__}, optuna {optuna.__version__}")'))"
