#!/usr/bin/env bash
# bench/gpu_check.sh: one offline run on one GPU (H100/H200) that runs the GPU tests and every GPU
# benchmark, then prints one table (bench/gpu_check_summary.py). Under 9 minutes: each step has its
# own `timeout`, and the timeouts add up to 540 s.
#
#   on the GPU machine, from the project root with .gpu/ carried (../shared/README.md):
#       source .gpu/install.sh && bash bench/gpu_check.sh
#   a dry run of the same steps at tiny sizes on a CPU box (~3 min on the 2-core VM):
#       DEVICE=cpu QUICK=1 bash bench/gpu_check.sh
#   once, where there is network, before carrying .gpu/ (the GPU machine has no pytest):
#       bash bench/gpu_check.sh --prepare
#
# Steps: (1) pytest -m gpu with ROBUSTUNE_DEVICE=cuda, then the rest of tests/test_fused.py on the device;
# (2) bench.bench_trainables at the paper's shape (CIFAR-10 3x32x32, WRN-34-1) and (3) at Fashion-MNIST's
# (1x28x28, WRN-16-1 and the quick preset's CNN): LWTA/ReLU train step, fused vs reference LWTA,
# compiled vs eager LWTA (--compile), our PGD vs torchattacks' PGD, a PGD-20 adversarial-training
# step of LWTA and ReLU with its epoch estimate (50 000 / 128 steps at the paper's shape), the loop's
# default precision and layout against fp32 contiguous; (4) trials per hour with 1, 2, 4, 8 trials
# sharing the GPU (bench.bench_packing: the quick CNN, and 1 and 8 WRN-16-1 trials); (5) trials per hour of 1, 2, 4, 8 trials fused into one model
# against the same trials apart (bench.bench_fused: the quick CNN, WRN-16-1 and the paper's WRN-34-1);
# (6) a quick LWTA search, its GPU share sized by --gpus-per-trial auto and its bundles by --fuse auto.
# Outputs (logs, JSON, steps.tsv, the search's experiment and export) go to $OUT_DIR (default: $OUT
# when set, else runs/gpu-check/<UTC time>). Environment: DEVICE (cuda), QUICK (0), PYTHON (python3, or .venv's
# when present and .gpu/install.sh was not sourced), OUT_DIR.
set -euo pipefail

if [ "${1:-}" = "--prepare" ]; then
  [ -d .gpu ] || ../shared/gpu/prepare.sh
  python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu/whl pytest iniconfig pluggy packaging pygments \
    2>&1 | grep -v 'WARNING: Location' || true  # pure-Python wheels, 1.8 MB
  ls .gpu/whl/pytest-*.whl > /dev/null
  du -sh .gpu
  echo "pytest's wheels are in .gpu/whl; .gpu/install.sh installs them with the rest"
  exit 0
fi

DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && [[ "${PYTHONPATH:-}" != */tmp/site* ]]; then
  PY=.venv/bin/python
fi
OUT_DIR=${OUT_DIR:-${OUT:-runs/gpu-check/$(date -u +%Y%m%dT%H%M%SZ)}}
mkdir -p "$OUT_DIR"
: > "$OUT_DIR/steps.tsv"
DATA=()
[ -d .gpu/data ] && DATA=(--data-dir .gpu/data)

if [ "$QUICK" = 1 ]; then
  T_GPU_TESTS=60; T_TESTS=90; T_PAPER=90; T_FMNIST=90; T_PACK=90; T_PACK16=90; T_FUSED=90; T_SEARCH=240
  PACK=(--counts 1,2 --seconds 2 --warmup 1)
  PACK16=(--shape wrn16 --counts 1,2 --seconds 2 --warmup 1)
  FUSED=(--shapes quick --ks 1,2 --repeats 1 --warmup 0)
  SIZE=(--batch 16 --depth 10 --repeats 1 --warmup 0 --steps 2 --at-steps 1 --at-pgd-steps 2)
  PAPER=(--shape cifar10 "${SIZE[@]}")
  FMNIST=(--shape fashion-mnist "${SIZE[@]}")
  SEARCH=(--num-samples 2 --epochs 1 --train-limit 256 --val-limit 64 --test-limit 64 --attacks fgsm,pgd
          --budget pgd.steps=2 --predict-samples 2 --eot-samples 1)
else
  T_GPU_TESTS=60; T_TESTS=20; T_PAPER=55; T_FMNIST=35; T_PACK=85; T_PACK16=70; T_FUSED=120; T_SEARCH=95
  PACK=(--counts 1,2,4,8 --seconds 8 --warmup 3)
  PACK16=(--shape wrn16 --counts 1,8 --seconds 8 --warmup 3)
  FUSED=(--shapes quick,wrn16,paper --ks 1,2,4,8 --repeats 3 --warmup 1)
  PAPER=(--shape cifar10 --depth 34 --at-steps 5 --compile)
  FMNIST=(--shape fashion-mnist --depth 16 --at-steps 5 --compile)
  SEARCH=(--num-samples 4 --epochs 2 --train-limit 4000 --val-limit 400 --test-limit 300 --attacks fgsm,pgd
          --budget pgd.steps=10)
fi
if [ "$DEVICE" = cuda ]; then
  SEARCH+=(--gpus-per-trial auto --cpus-per-trial 2)
else
  SEARCH+=(--gpus-per-trial 0 --cpus-per-trial 1 --max-concurrent 1)
  PAPER+=(--threads 1)
  FMNIST+=(--threads 1)
  PACK+=(--threads 1)
  PACK16+=(--threads 1)
  FUSED+=(--threads 1)
fi

# step NAME SECONDS COMMAND...: run it under `timeout`, keep its output in NAME.log, note its status
step() {
  local name=$1 limit=$2 began rc
  shift 2
  echo "== $name (at most ${limit}s): $*"
  began=$(date +%s)
  set +e
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  rc=$?
  set -e
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - began ))" "$*" >> "$OUT_DIR/steps.tsv"
  tail -n 4 "$OUT_DIR/$name.log" | sed 's/^/   /'
}

began_all=$(date +%s)
echo "gpu_check: device $DEVICE, quick $QUICK, python $PY, outputs in $OUT_DIR"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' | tee "$OUT_DIR/device.txt"

if "$PY" -c 'import pytest' 2>/dev/null; then
  # --continue-on-collection-errors: a test module that cannot import there (a package the GPU
  # machine lacks) must not stop the gpu tests of the others; its error still shows in the counts.
  # -o addopts=-ra: one process (pyproject's -n 2 needs pytest-xdist, which .gpu/ does not carry)
  step pytest-gpu "$T_GPU_TESTS" env ROBUSTUNE_DEVICE="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider -o addopts=-ra -m gpu \
    --continue-on-collection-errors tests
  step pytest-fused "$T_TESTS" env ROBUSTUNE_DEVICE="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider -o addopts=-ra \
    -m "not gpu and not slow" tests/test_fused.py
else
  printf 'pytest\t-\t0\tpytest is not installed: bash bench/gpu_check.sh --prepare where there is network\n' \
    >> "$OUT_DIR/steps.tsv"
  echo "== pytest: not installed here (bash bench/gpu_check.sh --prepare adds its wheels to .gpu/whl)"
fi
step bench-paper "$T_PAPER" "$PY" -m bench.bench_trainables --device "$DEVICE" "${PAPER[@]}" \
  --json "$OUT_DIR/trainables-cifar10.json"
step bench-fmnist "$T_FMNIST" "$PY" -m bench.bench_trainables --device "$DEVICE" "${FMNIST[@]}" \
  --json "$OUT_DIR/trainables-fashion-mnist.json"
step packing "$T_PACK" "$PY" -m bench.bench_packing --device "$DEVICE" "${PACK[@]}" --json "$OUT_DIR/packing.json"
step packing-wrn16 "$T_PACK16" "$PY" -m bench.bench_packing --device "$DEVICE" "${PACK16[@]}" \
  --json "$OUT_DIR/packing-wrn16.json"
step fused "$T_FUSED" "$PY" -m bench.bench_fused --device "$DEVICE" "${FUSED[@]}" --json "$OUT_DIR/fused.json"
# RAY_ADDRESS=local: a fresh local Ray even where a `ray start` cluster runs (ray.init would join it)
step search "$T_SEARCH" env RAY_ADDRESS="${RAY_ADDRESS:-local}" "$PY" -m tuner.search --space lwta --no-live --seed 0 --name gpu-check \
  --storage-path "$OUT_DIR/runs" --export-dir "$OUT_DIR/exports" ${DATA[@]+"${DATA[@]}"} "${SEARCH[@]}"

echo "gpu_check: $(( $(date +%s) - began_all )) s in all"
QUICK_FLAG=()
[ "$QUICK" = 1 ] && QUICK_FLAG=(--quick)
"$PY" -m bench.gpu_check_summary "$OUT_DIR" ${QUICK_FLAG[@]+"${QUICK_FLAG[@]}"} | tee "$OUT_DIR/summary.txt"
