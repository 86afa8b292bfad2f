"""One training configuration, validated in one place; everything else trusts it."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

MODELS = ("vgg16", "autoencoder")
HEADS = ("gap", "seed", "svm", "random_forest")
OPTIMIZERS = ("adam", "sgd")
WEIGHTS_CHOICES = ("imagenet", "none")  # or a path to a weights file
RESIZE_POLICIES = ("center_crop", "pad", "stretch")
PRESETS = ("seed",)
RECIPES = ("auto", "manual")
# Settings that only the manual recipe reads: giving any of them explicitly means "manual", respected exactly.
MANUAL_SETTINGS = ("freeze_depth", "head", "learning_rate", "optimizer", "two_phase", "augment", "preset",
                   "early_stopping", "head_epochs")
CLASSICAL_HEADS = ("svm", "random_forest")
# The autoencoder's default head. Its encoder's features are low-level (three conv stages): averaged
# over the image ("gap") they lose where things are, and on the demo shapes a GAP head on the pretrained
# encoder did no better than on a random one (0.24 vs 0.28 validation accuracy, 3 seeds), while the
# seed's Flatten -> Dense(1024) head keeps the layout and transfers (0.43 vs 0.31 with 10 classifier
# epochs, 0.47 vs 0.40 with 20); bench/autoencoder_check.py.
AUTOENCODER_HEAD = "seed"

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 224


class ConfigError(ValueError):
    """Raised with every bad field at once: ``problems`` maps field -> what is allowed."""

    def __init__(self, problems: dict[str, str]):
        self.problems = dict(problems)
        lines = [f"{name}: {message}" for name, message in self.problems.items()]
        super().__init__("invalid settings: " + "; ".join(lines))


@dataclass
class TrainConfig:
    """Every setting of a training run, with defaults that work on the first try on a CPU.

    The defaults were picked by measuring on the demo data (README, "How the defaults were chosen";
    ``python -m bench.defaults_check``): VGG16 with blocks 1-4 frozen and cached, block 5 and a
    global-average-pooling head trained with Adam at 1e-4 reached 73 % validation accuracy (3 seeds,
    4 classes, 10 epochs) where the frozen network with the same head at Adam 1e-3 reached 39 %, for
    26 s instead of 7 s of training on 320 images at 64 px on 2 CPU cores. 20 epochs, because the
    app's demo data (96 training images, 3 steps an epoch) stayed near 50 % after 10 and reached
    71-79 % after 20.
    """

    recipe: str = "auto"               # "auto": cross-validated choice (core.auto); "manual": the settings below
    model: str = "vgg16"               # "vgg16" or "autoencoder"
    weights: str = "imagenet"          # "imagenet" (Keras download), "none" (random init) or a weights file path
    freeze_depth: int = 4              # first k of VGG16's five conv blocks frozen; 5 = train the head only
    head: str = "gap"                  # "gap", "seed" (Flatten-Dense1024), "svm", "random_forest"
    optimizer: str = "adam"            # "adam" or "sgd" (with momentum)
    learning_rate: float = 1e-4        # safe for pretrained blocks that train (see learning_rate_advice)
    momentum: float = 0.9              # SGD only
    epochs: int = 20                   # small datasets take few steps an epoch (README, "How the defaults were chosen")
    batch_size: int = 32
    image_size: int = 64               # pixels, square; 32..224
    resize_policy: str = "center_crop"
    validation_fraction: float = 0.2
    seed: int = 0
    dropout: float = 0.3               # gap head only
    augment: bool = False              # flip, rotation, zoom (turns the feature cache off)
    early_stopping: bool = False
    patience: int = 3                  # epochs without val_loss improvement before early stopping
    two_phase: bool = False            # head first with the base frozen, then unfreeze to freeze_depth at lr/10
    head_epochs: int = 3               # epochs of the first phase when two_phase
    cache_features: bool = True        # compute the frozen part once (exact when augment is off)
    cache_budget_mb: int = 2048        # above this the run falls back to the uncached path
    mixed_precision: bool = False      # GPU only; ignored on the CPU
    # autoencoder path
    unlabeled: str | None = None       # folder or zip of extra unlabeled images for pretraining
    autoencoder_epochs: int = 10
    autoencoder_learning_rate: float = 1e-3
    fine_tune_encoder: bool = False    # after the head, unfreeze the encoder at lr/10
    # classical heads
    svm_c: float = 1.0
    forest_trees: int = 200
    preset: str | None = None          # "seed": the seed recipe, applied before validation

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build and validate from plain values (JSON, CLI, widgets); unknown keys are errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        problems = {name: f"unknown setting; allowed settings are {', '.join(sorted(known))}"
                    for name in sorted(set(values) - known)}
        values = {name: value for name, value in values.items() if name in known}
        if values.get("model") == "autoencoder" and "head" not in values:
            values["head"] = AUTOENCODER_HEAD
        if "recipe" not in values and (values.get("model", "vgg16") != "vgg16" or any(
                name in values and values[name] is not None for name in MANUAL_SETTINGS)):
            values["recipe"] = "manual"
        if values.get("preset") is not None:
            values = apply_preset(values["preset"], values)
        config = cls(**values)
        try:
            config.validate()
        except ConfigError as error:
            problems.update(error.problems)
        if problems:
            raise ConfigError(problems)
        return config

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    # ------------------------------------------------------------------ derived
    @property
    def classical(self) -> bool:
        return self.head in CLASSICAL_HEADS

    @property
    def uses_feature_cache(self) -> bool:
        """The frozen part is computed once when nothing random runs below the boundary."""
        return self.cache_features and not self.augment and (self.freeze_depth > 0 or self.model == "autoencoder")

    # ------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        """Check every field; raise one ConfigError listing every bad field and what is allowed."""
        problems: dict[str, str] = {}

        def choice(name, allowed):
            value = getattr(self, name)
            if value not in allowed:
                problems[name] = f"got {value!r}; allowed: {', '.join(map(str, allowed))}"

        def integer(name, low, high):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer() and low <= value <= high:
                    setattr(self, name, int(value))
                    return
                if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                    value = int(value)
                    setattr(self, name, value)
                else:
                    problems[name] = f"got {value!r}; expected a whole number from {low} to {high}"
                    return
            if not low <= value <= high:
                problems[name] = f"got {value!r}; expected a whole number from {low} to {high}"

        def number(name, low, high, low_open=True):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    value = float(value)
                    setattr(self, name, value)
                except ValueError:
                    pass
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems[name] = f"got {value!r}; expected a number {'>' if low_open else '>='} {low:g} and <= {high:g}"
                return
            ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
            if not ok:
                problems[name] = f"got {value!r}; expected a number {'>' if low_open else '>='} {low:g} and <= {high:g}"
            else:
                setattr(self, name, float(value))

        def boolean(name):
            value = getattr(self, name)
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                setattr(self, name, value.lower() in ("true", "1", "yes"))
            elif not isinstance(value, bool):
                problems[name] = f"got {value!r}; expected true or false"

        choice("recipe", RECIPES)
        choice("model", MODELS)
        choice("head", HEADS)
        choice("optimizer", OPTIMIZERS)
        choice("resize_policy", RESIZE_POLICIES)
        if self.preset is not None:
            choice("preset", PRESETS)
        if not isinstance(self.weights, str) or not self.weights.strip():
            problems["weights"] = f"got {self.weights!r}; allowed: imagenet, none, or a path to a weights file"
        elif self.weights not in WEIGHTS_CHOICES and not self.weights.endswith((".h5", ".keras")):
            problems["weights"] = (f"got {self.weights!r}; allowed: imagenet, none, or a path to a weights "
                                   "file ending in .h5 or .weights.h5")
        integer("freeze_depth", 0, 5)
        number("learning_rate", 0.0, 1.0)
        number("momentum", 0.0, 0.999, low_open=False)
        integer("epochs", 1, 1000)
        integer("batch_size", 1, 1024)
        integer("image_size", MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        number("validation_fraction", 0.0, 0.9)
        integer("seed", 0, 2**31 - 1)
        number("dropout", 0.0, 0.9, low_open=False)
        for name in ("augment", "early_stopping", "two_phase", "cache_features", "mixed_precision",
                     "fine_tune_encoder"):
            boolean(name)
        integer("patience", 1, 100)
        integer("head_epochs", 1, 1000)
        integer("cache_budget_mb", 1, 1_000_000)
        integer("autoencoder_epochs", 1, 1000)
        number("autoencoder_learning_rate", 0.0, 1.0)
        number("svm_c", 0.0, 1e6)
        integer("forest_trees", 1, 5000)
        if self.unlabeled is not None and (not isinstance(self.unlabeled, str) or not self.unlabeled.strip()):
            problems["unlabeled"] = f"got {self.unlabeled!r}; expected a folder or zip path, or nothing"
        if self.unlabeled is not None and self.model != "autoencoder" and "unlabeled" not in problems:
            problems["unlabeled"] = "unlabeled images are used only by model 'autoencoder'"
        if self.head in CLASSICAL_HEADS and self.freeze_depth == 0 and "freeze_depth" not in problems \
                and self.model == "vgg16":
            problems["freeze_depth"] = (f"got 0 with head {self.head!r}; the svm and random_forest heads fit "
                                        "frozen features: choose a freeze depth from 1 to 5")
        if self.recipe == "auto" and self.model != "vgg16" and "model" not in problems:
            problems["recipe"] = (f"got 'auto' with model {self.model!r}; the auto recipe chooses among VGG16 "
                                  "models: choose recipe 'manual' for the autoencoder")
        if problems:
            raise ConfigError(problems)
        return self

    @property
    def auto(self) -> bool:
        return self.recipe == "auto"


# Recipe auto (core.auto). Below FEW_PER_CLASS pictures in the smallest class, a held-out validation split
# costs the final model too much of its data: every picture trains it, and the metrics shown come from
# cross-validated predictions. The fine-tune candidate (block 5 and a GAP head on cached block-4 output)
# needs FINE_TUNE_MIN_PER_CLASS pictures a class for its held-out part to say anything.
FEW_PER_CLASS = 50
FINE_TUNE_MIN_PER_CLASS = 20

# The largest learning rate that left pretrained blocks intact when they train (Adam or SGD) on the
# demo data; at 1e-3 the unfrozen blocks' features were wrecked within an epoch (bench/results.md).
FINE_TUNE_LEARNING_RATE = 1e-4


def decimal(value) -> str:
    """A number as people write it, never in e-notation: 0.0001, 0.0000013, 0.5, 3 (anything else as text).
    Below 1 it keeps two significant digits, which is all a learning rate needs."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number) or isinstance(value, bool):
        return str(value)
    if number == 0:
        return "0"
    if abs(number) >= 1:
        return f"{number:g}" if abs(number) < 1e6 else f"{number:.0f}"
    digits = 1 - math.floor(math.log10(abs(number)))  # two significant digits
    return f"{number:.{digits}f}".rstrip("0").rstrip(".")


def frozen_words(depth, blocks: int = 5) -> str:
    """A freeze depth in words: "5 of 5 blocks frozen", "none frozen (every block trains)", "1 of 5 blocks
    frozen" (anything but a whole number as text)."""
    try:
        depth = int(depth)
    except (TypeError, ValueError):
        return str(depth)
    return "none frozen (every block trains)" if depth == 0 else f"{depth} of {blocks} blocks frozen"


def learning_rate_advice(values: dict[str, Any]) -> str | None:
    """A warning, in words, when pretrained conv blocks will train with a step large enough to wreck them.

    ``values`` are plain settings (as from_dict takes); None when the settings are safe or not about
    pretrained blocks (weights none, everything frozen, a classical head, or two-phase, which steps the
    unfrozen blocks at a tenth of the rate).
    """
    try:
        depth = int(values.get("freeze_depth", TrainConfig.freeze_depth))
        rate = float(values.get("learning_rate", TrainConfig.learning_rate))
    except (TypeError, ValueError):
        return None
    if (values.get("model", TrainConfig.model) != "vgg16" or values.get("weights", TrainConfig.weights) == "none"
            or depth >= 5
            or values.get("head") in CLASSICAL_HEADS or values.get("two_phase")
            or not rate > FINE_TUNE_LEARNING_RATE * 1.0001):
        return None
    blocks = "Block 5" if depth == 4 else f"Blocks {depth + 1}-5"
    return (f"{blocks} will train from pretrained weights at a learning rate of {decimal(rate)}: a step that "
            f"large can undo what they learned on ImageNet in the first epoch. Use {decimal(FINE_TUNE_LEARNING_RATE)} "
            "or lower when pretrained blocks train, or turn on two-phase fine-tuning (head first, then the blocks "
            "at a tenth of the rate).")


SEED_PRESET = {
    # The seed's code: VGG16 frozen, Flatten -> Dense(1024, relu) -> softmax, SGD(1e-4, momentum 0.9),
    # categorical cross-entropy, 10 epochs.
    "model": "vgg16",
    "weights": "imagenet",
    "freeze_depth": 5,
    "head": "seed",
    "optimizer": "sgd",
    "learning_rate": 1e-4,
    "momentum": 0.9,
    "epochs": 10,
    "augment": False,
    "two_phase": False,
}


def apply_preset(preset: str, values: dict[str, Any]) -> dict[str, Any]:
    """Return values with the preset's settings applied on top (a preset wins over what it names)."""
    if preset not in PRESETS:
        return values  # validate() names the bad preset with the others
    explicit_weights = values.get("weights")
    merged = {**values, **SEED_PRESET, "preset": preset}
    # The seed used ImageNet weights; a user without internet may still point the preset at a file.
    if explicit_weights is not None:
        merged["weights"] = explicit_weights
    return merged


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def field_default(name: str):
    for f in dataclasses.fields(TrainConfig):
        if f.name == name:
            return f.default
    raise KeyError(name)
