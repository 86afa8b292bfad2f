"""An experiment's plan: its kinds, the runs each trains (in order, with their settings), and how long it will take.

Three kinds, each a plan of runs on one labeled dataset, all on the same validation split:

* ``freeze-depth``: a linear probe on the frozen features of each VGG16 block (1-5: how far up the
  pretrained network the useful features are), then pretrained VGG16 with k = 5, 4, 3, 2, 1, 0 blocks
  frozen and the rest trained (what training more of it buys); validation accuracy and time of each.
* ``transfer-vs-scratch``: the automatic recipe on pretrained VGG16 (what transfer gives in practice),
  the same pretrained network with every block trained, that network from random weights trained the
  same way, and the autoencoder's encoder; validation accuracy per epoch and at the end.
* ``data-efficiency``: ``transfer`` (the automatic recipe on pretrained VGG16) against ``scratch`` (the
  same network from random weights, trained fully) as the labeled images per class grow, a few seeds per
  point, the validation set fixed and every training subset drawn from the training split.

core.experiment_runner trains a plan, core.experiment_charts draws and words its results.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.config import AUTOENCODER_HEAD, FINE_TUNE_MIN_PER_CLASS, frozen_words

KINDS = ("freeze-depth", "transfer-vs-scratch", "data-efficiency")
KIND_TITLES = {
    "freeze-depth": "How many blocks to freeze",
    "transfer-vs-scratch": "Transfer against training from scratch",
    "data-efficiency": "How many labeled images you need",
}

DEFAULT_EPOCHS = 10
QUICK_EPOCHS = 5
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0
FREEZE_DEPTHS = (5, 4, 3, 2, 1, 0)
QUICK_FREEZE_DEPTHS = (5, 3, 0)            # both ends and the middle: the lesson with half the runs
# freeze-depth's linear probes, quick or not: each costs one forward pass up to its block and a second of
# fitting, so even blocks 1 and 2 (64 and 128 features) are cheap enough to show where along the network
# the transferable features are. On the demo data at 64 px (offline pretrained weights, 24 per class
# training): blocks 1-5 gave 0.42, 0.42, 0.58, 0.88, 0.50 in 1-5 s each; k = 5, 3, 0 gave 0.50, 0.50, 0.58
# in 5-45 s.
PROBE_BLOCKS = (1, 2, 3, 4, 5)
PER_CLASS_SIZES = (2, 5, 10, 20)           # plus "all" of the training split
QUICK_PER_CLASS_SIZES = (2, 5)
SEEDS = (0, 1, 2)
QUICK_SEEDS = (0, 1)

# transfer-vs-scratch and data-efficiency's "transfer" is the automatic recipe (core.auto): what a user
# of the app gets from pretrained weights by default, not one hand-picked setting (blocks 1-4 frozen, the
# earlier choice here) that may be the wrong one for their data. Quick data-efficiency on real photographs
# (8 classes of crops, 10 a class, offline pretrained weights, 64 px): transfer 0.84 and 0.94 at 2 and 5 a
# class (a second or two of training), scratch 0.125 (chance) at both.
TRANSFER = {"recipe": "auto"}
# "scratch" is manual: random weights, every block trained, at the fine-tuning step below.
SCRATCH = {"recipe": "manual", "weights": "none", "freeze_depth": 0}
# transfer-vs-scratch keeps one fine-tuning arm, the exact twin of scratch: the same network, every block
# trained, the same optimizer, rate and epochs, only the starting weights differ. Its per-epoch curve
# beside scratch's is the lesson of the experiment in one picture; the automatic recipe, which has no
# epochs (or fine-tunes block 5 only), cannot show it. The old sweep over k = 4, 3, 2 with a "best k"
# is freeze-depth's lesson and stays there. On the demo data (quick, 64 px) the twin rose 0.25 -> 0.58 in
# 5 epochs while scratch stayed at 0.25, and the automatic recipe's level line was at 0.88.
TWIN_FREEZE_DEPTH = 0

# Learning rates per kind of training. A head on frozen features takes the default step; unfrozen
# pretrained blocks take a tenth of it, since a large step wrecks the features they carry; a network
# from random weights takes the same small step, so scratch and fine-tuning differ only in where they start.
HEAD_LEARNING_RATE = 1e-3
FINE_TUNE_LEARNING_RATE = 1e-4
SCRATCH_LEARNING_RATE = 1e-4

PROBE = "linear probe"

# The time estimate: VGG16's multiply-adds at the run's image size over a measured CPU rate, plus a
# fixed cost per run (building, saving and evaluating the model). Measured on 2 shared CPU cores.
CPU_MACS_PER_SECOND = 30e9
SECONDS_PER_RUN = 8.0
SECONDS_PER_PROBE = 3.0     # loading the weights and the cross-validated logistic regressions


# ---------------------------------------------------------------------- the plan

@dataclass
class PlannedRun:
    """One step of an experiment: a training run (or a linear probe), how a chart names it, its config changes."""

    name: str                       # run id under OUT/runs/
    method: str                     # transfer, fine-tune, scratch, autoencoder, linear probe
    label: str                      # how charts and tables name it
    settings: dict                  # TrainConfig fields on top of the experiment's base config
    fields: dict = field(default_factory=dict)  # the varied settings, copied into the row
    per_class: int | None = None    # data-efficiency: labeled training images per class; None = all
    seed: int = 0                   # data-efficiency: which draw of the training subset
    block: int | None = None        # linear probe: the VGG16 block whose pooled output the probe reads

    @property
    def is_probe(self) -> bool:
        return self.method == PROBE

    @property
    def recipe(self) -> str:
        return self.settings["recipe"]


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown experiment kind {kind!r}; allowed: {', '.join(KINDS)}")
    return kind


def plan_runs(kind: str, *, quick: bool = False, train_per_class: int = 24) -> list[PlannedRun]:
    """The runs an experiment trains, in order (freeze-depth: its linear probes first).

    Args:
        kind: one of KINDS.
        quick: fewer settings (and seeds) for a first look on a CPU.
        train_per_class: the fewest training-split images of any class; data-efficiency sizes above
            it are left out, and "all" is the whole training split.
    """
    check_kind(kind)
    if kind == "freeze-depth":
        # the probes first: they take seconds, so the first rows appear before the first model trains
        planned = [PlannedRun(f"{index:02d}-probe-b{block}", PROBE, f"block {block} + linear head", {**TRANSFER},
                              {"block": block}, block=block) for index, block in enumerate(PROBE_BLOCKS)]
        return planned + [_fine_tune_run(len(planned) + index, k) for index, k in
                          enumerate(QUICK_FREEZE_DEPTHS if quick else FREEZE_DEPTHS)]
    if kind == "transfer-vs-scratch":
        return [
            PlannedRun("00-transfer-auto", "transfer", "pretrained, automatic recipe", {**TRANSFER}),
            _fine_tune_run(1, TWIN_FREEZE_DEPTH, method="fine-tune",
                           label="pretrained, every block trained"),
            PlannedRun("02-scratch", "scratch", "random weights, every block trained",
                       {**SCRATCH, "learning_rate": SCRATCH_LEARNING_RATE}, {"freeze_depth": 0}),
            PlannedRun("03-autoencoder", "autoencoder", "autoencoder's encoder",
                       {"recipe": "manual", "model": "autoencoder", "head": AUTOENCODER_HEAD,
                        "learning_rate": HEAD_LEARNING_RATE}, {"freeze_depth": None}),
        ]
    sizes = [n for n in (QUICK_PER_CLASS_SIZES if quick else PER_CLASS_SIZES) if n < train_per_class]
    planned = []
    for per_class in sizes + [None]:
        for seed in (QUICK_SEEDS if quick else SEEDS):
            if per_class is None and seed != 0:
                continue  # the whole split is the same draw for every seed; one model init is enough
            size_name = "all" if per_class is None else str(per_class)
            for method in ("transfer", "scratch"):
                if method == "transfer":
                    settings, fields = {**TRANSFER}, {}
                else:
                    settings, fields = {**SCRATCH, "learning_rate": SCRATCH_LEARNING_RATE}, {"freeze_depth": 0}
                planned.append(PlannedRun(
                    f"{len(planned):02d}-{method}-n{size_name}-s{seed}", method, method, {**settings, "seed": seed},
                    fields, per_class=per_class, seed=seed))
    return planned


def _fine_tune_run(index: int, k: int, method: str = "transfer", label: str | None = None) -> PlannedRun:
    """Pretrained VGG16 with its first k blocks frozen and the rest trained (the manual recipe, said explicitly:
    the base config's recipe is auto)."""
    return PlannedRun(f"{index:02d}-k{k}", method, label or frozen_words(k),
                      {"recipe": "manual", "freeze_depth": k, "learning_rate": _learning_rate(k)},
                      {"freeze_depth": k})


def _learning_rate(freeze_depth: int) -> float:
    return HEAD_LEARNING_RATE if freeze_depth == 5 else FINE_TUNE_LEARNING_RATE


# ---------------------------------------------------------------------- the time estimate

def _vgg16_block_macs(image_size: int) -> list[float]:
    """Multiply-adds of each VGG16 conv block for one image of the given size."""
    from core.models import VGG16_BLOCKS

    macs, in_channels, side = [], 3, float(image_size)
    for _, (filters, convs) in VGG16_BLOCKS.items():
        block = 0.0
        for _ in range(convs):
            block += side * side * 9 * in_channels * filters
            in_channels = filters
        macs.append(block)
        side /= 2
    return macs


def _autoencoder_macs(image_size: int) -> float:
    from core.models import AUTOENCODER_FILTERS

    total, in_channels, side = 0.0, 3, float(image_size)
    for filters in AUTOENCODER_FILTERS:  # encoder; the decoder mirrors it
        total += side * side * 9 * in_channels * filters
        in_channels, side = filters, side / 2
    return 2 * total


def _run_seconds(planned: PlannedRun, n_train: int, n_val: int, image_size: int, epochs: int,
                 macs_per_second: float, n_classes: int = 4) -> float:
    """Cost of one step of the plan.

    A manual run: its frozen part once (the feature cache), its trainable part per epoch x 3 for backprop.
    The automatic recipe and a probe: one forward pass over the training pictures, their mirror images
    and the validation pictures (up to the probe's block), plus fitting the linear heads; the automatic
    recipe also fine-tunes block 5 twice (candidate, then final fit) when every class has enough pictures.
    """
    if planned.settings.get("model") == "autoencoder":
        autoencoder = _autoencoder_macs(image_size)
        return SECONDS_PER_RUN + (epochs * (n_train + n_val) * 3 * autoencoder
                                  + (n_train + n_val) * autoencoder / 2) / macs_per_second
    blocks = _vgg16_block_macs(image_size)
    if planned.is_probe:
        return SECONDS_PER_PROBE + (2 * n_train + n_val) * sum(blocks[:planned.block]) / macs_per_second
    if planned.recipe == "auto":
        macs = (2 * n_train + n_val) * sum(blocks)
        if n_train // max(1, n_classes) >= FINE_TUNE_MIN_PER_CLASS:
            macs += 2 * epochs * (3 * n_train + n_val) * blocks[4]
        return SECONDS_PER_RUN + SECONDS_PER_PROBE + macs / macs_per_second
    k = planned.settings["freeze_depth"]
    frozen, trainable = sum(blocks[:k]), sum(blocks[k:])
    macs = (n_train + n_val) * frozen + epochs * (3 * n_train + n_val) * trainable + n_val * trainable
    return SECONDS_PER_RUN + macs / macs_per_second


def estimate_seconds(kind: str, n_images: int, image_size: int = 64, quick: bool = False, *,
                     epochs: int | None = None, n_classes: int = 4,
                     macs_per_second: float = CPU_MACS_PER_SECOND) -> float:
    """Rough wall time of an experiment on the CPU, for the page to show before it starts.

    Args:
        kind: one of KINDS.
        n_images: labeled images in the dataset (all classes).
        image_size: the square input size of every run.
        quick: the quick plan.
        epochs: epochs per run (default: the experiment's default).
        n_classes: classes in the dataset (data-efficiency sizes are per class).
        macs_per_second: the machine's training speed; the default was measured on 2 shared CPU cores.
    """
    return plan_summary(kind, n_images, image_size, quick, epochs=epochs, n_classes=n_classes,
                        macs_per_second=macs_per_second)["seconds"]


def plan_summary(kind: str, n_images: int, image_size: int = 64, quick: bool = False, *,
                 epochs: int | None = None, n_classes: int = 4,
                 macs_per_second: float = CPU_MACS_PER_SECOND) -> dict:
    """{"runs": how many models the experiment trains, "probes": how many linear probes it scores besides,
    "seconds": the estimate of both} (see estimate_seconds)."""
    check_kind(kind)
    if n_images < 2 or n_classes < 2:
        return {"runs": 0, "probes": 0, "seconds": 0.0}
    epochs = epochs or (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    n_val = max(n_classes, round(n_images * VALIDATION_FRACTION))
    n_train = max(n_classes, n_images - n_val)
    planned = plan_runs(kind, quick=quick, train_per_class=max(1, n_train // n_classes))
    total = 0.0
    for run in planned:
        train_images = n_train if run.per_class is None else run.per_class * n_classes
        run_epochs = equal_step_epochs(epochs, n_train, train_images) if kind == "data-efficiency" else epochs
        total += _run_seconds(run, train_images, n_val, image_size, run_epochs, macs_per_second, n_classes)
    probes = sum(run.is_probe for run in planned)
    return {"runs": len(planned) - probes, "probes": probes, "seconds": total}


def equal_step_epochs(epochs: int, n_train_all: int, n_train: int, batch_size: int = 32) -> int:
    """Epochs that give a run on ``n_train`` images the optimizer steps of ``epochs`` on all of them.

    Data-efficiency compares models by how many labels they saw, not by how many updates: with a
    fixed epoch count, 2 images per class would get one step an epoch and stop before learning.
    """
    steps = epochs * math.ceil(n_train_all / batch_size)
    return max(1, math.ceil(steps / math.ceil(max(1, n_train) / batch_size)))

