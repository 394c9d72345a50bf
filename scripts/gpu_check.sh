#!/usr/bin/env bash
# The cost of the `paper` profile on this machine's GPU: for each image experiment, a few hundred
# training steps at the paper's model sizes and one evaluation sample batch; reports steps per
# second, seconds per sample batch and peak GPU memory, and projects the paper profile's hours.
#
#   scripts/gpu_check.sh [OUT_DIR] [STEPS]        (defaults: gpu_check/ and 300)
#
# Environment: PYTHON (default .venv/bin/python if present, else python3), DEVICE (default cuda;
# DEVICE=cpu STEPS=2 checks the script itself on a CPU), PROFILE (default paper), EVAL_BATCH
# (samples in the timed sample batch, default 64; the evaluation itself samples 1024 at once),
# NAMES (space-separated experiments; default: the registered image experiments).
# quarter-digits needs MNIST's IDX files ($LDRKIT_MNIST, see ldrkit.systems.digit_sources.load_mnist); without
# them it is timed on scikit-learn's digits resized to the same 28 px (same image size and model),
# and the table says so. Nothing is downloaded.
# Writes OUT_DIR/bench_train.json, OUT_DIR/bench_train.md and OUT_DIR/environment.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check}
STEPS=${2:-${STEPS:-300}}
DEVICE=${DEVICE:-cuda}
PROFILE=${PROFILE:-paper}
EVAL_BATCH=${EVAL_BATCH:-64}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA GPU visible to torch ($("$PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA build:", torch.version.cuda)')). Run it on a machine with a CUDA GPU and a CUDA build of torch, or DEVICE=cpu STEPS=2 to check the script." >&2
  exit 2
fi

mkdir -p "$OUT"
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  git rev-parse HEAD 2>/dev/null || true
  "$PYTHON" -c "import torch, accelerate, diffusers; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| accelerate', accelerate.__version__, '| diffusers', diffusers.__version__)"
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
} > "$OUT/environment.txt"
cat "$OUT/environment.txt"

# shellcheck disable=SC2086
"$PYTHON" -m ldrkit bench train ${NAMES:-} --profile "$PROFILE" --steps "$STEPS" --device "$DEVICE" \
  --eval-batch "$EVAL_BATCH" --substitute-mnist --out "$OUT"
echo "gpu_check: wrote $OUT/bench_train.md and $OUT/bench_train.json"
