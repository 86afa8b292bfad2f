#!/usr/bin/env bash
# One command on a machine with an NVIDIA GPU: prints the GPU, trains the demo data at 224 px with mixed
# precision, cached and uncached, prints training images per second, writes bench/gpu_results.json
# (the next `python -m bench` shows it in results.md under "On a GPU").
#
#   bash bench/gpu_check.sh [python -m bench.gpu options, e.g. --per-class 100 --epochs 10]
#
# It uses a virtual environment ($GPU_VENV, default ~/.venvs/transfer-studio-gpu; it sees the system's
# packages). TensorFlow is tried first (tensorflow[and-cuda]); where TensorFlow cannot be installed or
# cannot see the GPU, the core runs under KERAS_BACKEND=jax with jax[cuda12] instead.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${GPU_VENV:-$HOME/.venvs/transfer-studio-gpu}"
PYTHON="${PYTHON:-python3}"

echo "== GPU (nvidia-smi)"
if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; then
  echo "nvidia-smi failed: this machine has no NVIDIA GPU or driver" >&2
  exit 1
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"

app_packages() { python -c "import keras, numpy, PIL, sklearn, plotly, psutil, h5py" 2>/dev/null; }
tensorflow_sees_gpu() {
  KERAS_BACKEND=tensorflow python -c "import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)" 2>/dev/null
}
jax_sees_gpu() {
  KERAS_BACKEND=jax python -c "import sys, jax; sys.exit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 1)" 2>/dev/null
}

backend=""
if app_packages && tensorflow_sees_gpu; then
  backend=tensorflow
else
  echo "== installing the requirements with tensorflow[and-cuda]"
  if pip install -q -r requirements.txt "tensorflow[and-cuda]==2.21.0" && tensorflow_sees_gpu; then
    backend=tensorflow
  else
    echo "== TensorFlow cannot use the GPU here; falling back to KERAS_BACKEND=jax with jax[cuda12]"
    grep -v '^tensorflow' requirements.txt > "$VENV/requirements-without-tensorflow.txt"
    if pip install -q -r "$VENV/requirements-without-tensorflow.txt" "jax[cuda12]==0.10.2" && jax_sees_gpu; then
      backend=jax
    fi
  fi
fi
if [ -z "$backend" ]; then
  echo "neither TensorFlow nor JAX can use the GPU from $VENV; see the pip messages above" >&2
  exit 1
fi

echo "== training with KERAS_BACKEND=$backend, mixed precision on"
KERAS_BACKEND="$backend" python -m bench.gpu "$@"
