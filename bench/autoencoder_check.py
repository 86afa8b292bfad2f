"""Does the autoencoder's encoder transfer? The issue's "done when" check, measured on the demo data.

``python -m bench.autoencoder_check [--seeds 0 1 2] [--per-class 30] [--size 64] [--set key=value ...]``

For each seed it trains, with core.training.train and the default settings (model autoencoder,
weights none, plus any --set overrides), two runs on the same data, split, head and classifier
training:

* encoder: the autoencoder pretrained as usual, its encoder transferred;
* random: the same run with the autoencoder left untrained (autoencoder.untrained_encoder()), so the
  encoder keeps the same seeded random initial weights.

It prints the reconstruction loss of the first and last autoencoder epoch and their ratio (the issue
asks for <= 0.5), each run's validation accuracy, and mean +- std over the seeds. A run reports the
accuracy of its best epoch, chosen on the validation split itself, which flatters both arms alike on
24 validation images; the last epoch's accuracy is printed beside it. Slow (about a minute
per seed on 2 CPU cores): it is a measurement, not a test, and it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from core import autoencoder, demo_data, runs, training  # noqa: E402
from core.config import TrainConfig  # noqa: E402


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def autoencoder_losses(run_dir) -> list[float]:
    return [event["loss"] for event in runs.read_all_events(run_dir)
            if event.get("type") == "epoch" and event.get("phase") == "autoencoder"]


def last_epoch_accuracy(run_dir) -> float:
    """Validation accuracy of the classifier's last epoch (the run's reported accuracy is its best epoch's)."""
    epochs = [event for event in runs.read_all_events(run_dir)
              if event.get("type") == "epoch" and event.get("phase") != "autoencoder" and "val_accuracy" in event]
    return float(epochs[-1]["val_accuracy"])


def mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5
    return f"{mean:.3f} +- {std:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--data", help="a labeled folder to use instead of generated demo data")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for both runs, e.g. --set head=seed (repeatable)")
    parser.add_argument("--out", help="keep the run directories here (default: a temporary folder)")
    args = parser.parse_args(argv)

    overrides = dict(item.split("=", 1) for item in args.set)
    settings = {"model": "autoencoder", "weights": "none", "image_size": args.size,
                **{key: parse_value(value) for key, value in overrides.items()}}
    work = Path(args.out or tempfile.mkdtemp(prefix="autoencoder_check_"))
    data = args.data or demo_data.write_demo_data(work / "demo", per_class=args.per_class, size=args.size)
    print(f"data: {data}; settings: {settings}; runs in {work}", flush=True)

    rows = []
    for seed in args.seeds:
        config = TrainConfig.from_dict({**settings, "seed": seed})
        started = time.perf_counter()
        trained = training.train(config, data, work / f"encoder_seed{seed}")
        seconds = time.perf_counter() - started
        with autoencoder.untrained_encoder():
            random = training.train(config, data, work / f"random_seed{seed}")
        for result in (trained, random):
            if result.state != "done":
                print(f"seed {seed}: run {result.run_dir} {result.state}: {result.error}", file=sys.stderr)
                return 1
        losses = autoencoder_losses(trained.run_dir)
        row = {"seed": seed, "first_loss": losses[0], "last_loss": losses[-1], "ratio": losses[-1] / losses[0],
               "encoder": trained.val_accuracy, "random": random.val_accuracy, "seconds": seconds,
               "encoder_last": last_epoch_accuracy(trained.run_dir), "random_last": last_epoch_accuracy(random.run_dir)}
        rows.append(row)
        print(f"seed {seed}: AE loss {row['first_loss']:.1f} -> {row['last_loss']:.1f} (ratio {row['ratio']:.2f}); "
              f"val accuracy encoder {row['encoder']:.3f} vs random {row['random']:.3f} "
              f"(last epoch {row['encoder_last']:.3f} vs {row['random_last']:.3f}); "
              f"encoder run {seconds:.0f} s", flush=True)

    print()
    print(f"AE loss first {mean_std([r['first_loss'] for r in rows])}, last {mean_std([r['last_loss'] for r in rows])}, "
          f"ratio {mean_std([r['ratio'] for r in rows])} (done-when: <= 0.5)")
    print(f"val accuracy over seeds {args.seeds}: encoder {mean_std([r['encoder'] for r in rows])}, "
          f"random {mean_std([r['random'] for r in rows])}, "
          f"difference {mean_std([r['encoder'] - r['random'] for r in rows])} (best epoch, as the runs report)")
    print(f"last-epoch val accuracy: encoder {mean_std([r['encoder_last'] for r in rows])}, "
          f"random {mean_std([r['random_last'] for r in rows])}, "
          f"difference {mean_std([r['encoder_last'] - r['random_last'] for r in rows])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
