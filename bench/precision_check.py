"""The seed preset with its feature cache computed in float32 and in bfloat16 (TRANSFER_STUDIO_CACHE_PRECISION):
paired seeds, the same split and random start, one process.

    python -m bench.precision_check shapes 0 10 WEIGHTS          # 400 demo shapes, 64 px: final validation accuracy
    python -m bench.precision_check dev 0 5 WEIGHTS DEV_FOLDER   # real photos (real_devset.py): + test accuracy

One JSON line per seed. Issue 15: whether the bfloat16 forward pass (2x faster on a CPU with avx512_bf16) keeps
the accuracy.
"""
import json
import os
import sys
import tempfile
import time

from core.quiet import import_keras_quietly

import_keras_quietly()
import keras  # noqa: E402

from core import evaluation, runs, training  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from core.demo_data import write_demo_data  # noqa: E402

which, first, last, W = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dev = sys.argv[5] if len(sys.argv) > 5 else None
work = tempfile.mkdtemp(prefix="precision-check-")
data = os.path.join(dev, "train") if which == "dev" else write_demo_data(os.path.join(work, "shapes"),
                                                                      per_class=100, size=64, seed=0)
for seed in range(first, last):
    row = {"set": which, "seed": seed}
    for precision in ("float32", "bfloat16"):
        os.environ["TRANSFER_STUDIO_CACHE_PRECISION"] = precision
        keras.backend.clear_session()
        cfg = TrainConfig.from_dict({"weights": W, "image_size": 64, "preset": "seed", "seed": seed})
        run_dir = f"{work}/{which}-{precision}-{seed}"
        t = time.perf_counter()
        result = training.train(cfg, data, run_dir)
        secs = time.perf_counter() - t
        if result.state != "done":
            sys.exit(f"seed {seed}, {precision}: the run ended {result.state}: {result.error}")
        epochs = [e for e in runs.read_all_events(run_dir) if e["type"] == "epoch" and "val_accuracy" in e]
        row[precision] = round(epochs[-1]["val_accuracy"] * 100, 1)
        if which == "dev":
            tested = evaluation.evaluate(run_dir, os.path.join(dev, "test"), feature_map=None)
            row[precision + "_test"] = round(tested["accuracy"] * 100, 1)
        row[precision + "_s"] = round(secs, 1)
    print(json.dumps(row), flush=True)
