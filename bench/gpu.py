"""Images per second of cached and uncached training on a GPU (what bench/gpu_check.sh runs).

``python -m bench.gpu [--image-size 224] [--per-class 50] [--epochs 5] [--out bench/gpu_results.json]``
trains the demo data through core at freeze depths 5 and 4, with and without the feature cache,
mixed precision on, and writes the figures that results.md shows under "On a GPU".
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import machine, measure, report, run  # noqa: E402


def nvidia_smi_name() -> str | None:
    try:
        completed = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip().splitlines()[0] if completed.returncode == 0 and completed.stdout.strip() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--per-class", type=int, default=50, help="demo images per class (4 classes)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default="auto", help="auto, none, imagenet or a weights file")
    parser.add_argument("--out", default=str(report.GPU_RESULTS))
    args = parser.parse_args(argv)

    from core import backend, demo_data, ingest

    device = backend.configure_device(mixed_precision=True)
    gpu_name = nvidia_smi_name()
    print(f"nvidia-smi: {gpu_name or 'not available'}", flush=True)
    print(f"core device: {device}", flush=True)
    weights, weights_note = run.resolve_weights(args.weights)
    print(f"weights: {weights_note}", flush=True)
    plan = dataclasses.replace(measure.FULL, name="gpu", image_size=args.image_size, per_class=args.per_class,
                               batch_size=args.batch_size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="transfer-studio-gpu-") as scratch:
        work = Path(scratch)
        data_dir = work / "data"
        demo_data.write_demo_data(str(data_dir), per_class=plan.per_class, size=plan.image_size, seed=plan.seed)
        dataset = ingest.load_labeled(str(data_dir), plan.image_size)
        train_idx, val_idx = ingest.split(dataset, 0.2, plan.seed)
        context = measure.Context(plan=plan, weights=weights, work=work, data_dir=data_dir, dataset=dataset,
                                  train_idx=train_idx, val_idx=val_idx, log=run.log)
        for depth in (5, 4):
            for cached in (True, False):
                summary = measure.core_run(context, f"k{depth}_{'cached' if cached else 'uncached'}",
                                           freeze_depth=depth, cache_features=cached, mixed_precision=True,
                                           epochs=args.epochs)
                steady = measure.steady_epoch_seconds(summary["epoch_seconds"])
                row = {
                    "freeze_depth": depth, "cached": cached,
                    "train_seconds": summary["train_seconds"],
                    # every training image once per epoch, the one-off cache included
                    "train_images_per_second": len(train_idx) * args.epochs / summary["train_seconds"],
                    "steady_epoch_seconds": steady,
                    "epoch_images_per_second": len(train_idx) / steady if steady else None,
                    "cache_seconds": summary["cache_seconds"],
                    "val_accuracy": summary["val_accuracy"],
                    "device": summary["device"],
                }
                rows.append(row)
                print(f"freeze depth {depth}, {'cached' if cached else 'uncached'}: "
                      f"{row['train_images_per_second']:.0f} training images/s "
                      f"({row['train_seconds']:.1f} s for {args.epochs} epochs of {len(train_idx)} images; "
                      f"steady epoch {steady} s)", flush=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "gpu_name": gpu_name,
        "device": device,
        "backend": backend.name(),
        "mixed_precision": True,
        "images": len(dataset.labels),
        "train_images": int(len(train_idx)),
        "image_size": plan.image_size,
        "epochs": args.epochs,
        "batch_size": plan.batch_size,
        "weights": weights_note,
        "machine": machine.describe(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
