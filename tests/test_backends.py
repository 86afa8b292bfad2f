"""One codebase, any Keras backend: core stays backend-agnostic and trains under JAX too."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "core"


def test_core_never_imports_streamlit_or_tensorflow_outside_backend():
    for path in CORE.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+streamlit", text, re.M), path.name
        if path.name != "backend.py":
            assert not re.search(r"^\s*(import|from)\s+tensorflow", text, re.M), path.name
            assert not re.search(r"\btf\.", text), path.name


SMOKE = r"""
import json, sys
import numpy as np
import keras
from core import training, runs
from core.config import TrainConfig
result = training.train(TrainConfig.from_dict({"weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8,
                                               "freeze_depth": 4}), sys.argv[1], sys.argv[2])
model = keras.saving.load_model(sys.argv[2] + "/model.keras")
probabilities = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
print(json.dumps({"backend": keras.backend.backend(), "state": result.state, "error": result.error,
                  "device": runs.read_status(sys.argv[2])["device"], "sums": probabilities.sum(1).tolist()}))
"""


def test_jax_backend_builds_trains_one_epoch_and_predicts(demo_dir, tmp_path):
    pytest.importorskip("jax", reason="JAX is not installed (pip install -r requirements-dev.txt)")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(CORE.parent)}
    done = subprocess.run([sys.executable, "-c", SMOKE, demo_dir, str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=CORE.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["state"] == "done", result["error"]
    assert "jax" in result["device"]
    assert result["sums"] == pytest.approx([1.0, 1.0], abs=1e-4)
