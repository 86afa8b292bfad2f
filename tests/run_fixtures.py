"""Tiny run directories built with the real model builders, laid out as core/training.py writes them.

Every kind is trained by core.training itself, as a manual or automatic run makes it: "gap" and "seed" (VGG16
with a Keras head), "autoencoder" (an autoencoder's encoder with a gap head), "svm" and "random_forest" (frozen
VGG16 features and scikit-learn's head) and "auto" (recipe auto: a linear head on pooled features, averaged with
the mirror image). Each is built once per test process and
shared, read-only: a test that writes into a run, itself or through the code it tests (report.html, the
nearest-pictures cache, a model's time stamp...), takes ``own_copy`` of it, so no test sees another's writes.
Each use checks that the shared run is still as it was built (``assert_untouched``).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from core import ingest, models, runs
from core.metrics import classification_metrics

KINDS = ("gap", "seed", "svm", "autoencoder", "auto", "random_forest")
# kinds trained by core.training itself, with these settings on top of the tiny ones
# (a Keras head at 1e-2 for 15 epochs on these 24 pictures; with random weights it may stay near chance: these
# runs are for the pages and tools that read a run, and test_training.py checks that a head learns)
REAL_TRAINER = {"auto": {}, "svm": {"head": "svm", "freeze_depth": 5},
                "random_forest": {"head": "random_forest", "freeze_depth": 5},
                "gap": {"head": "gap", "freeze_depth": 5, "epochs": 15, "learning_rate": 1e-2},
                "seed": {"head": "seed", "freeze_depth": 5, "epochs": 15, "learning_rate": 1e-2},
                "autoencoder": {"model": "autoencoder", "head": "gap", "autoencoder_epochs": 1, "epochs": 15,
                                "learning_rate": 1e-2}}
IMAGE_SIZE = 32
VALIDATION_FRACTION = 0.25
SEED = 0
_built: dict[tuple[str, str], str] = {}
_as_built: dict[str, list] = {}


def cached_run(tmp_path_factory, data_dir: str, kind: str) -> str:
    """The run of ``kind`` trained on ``data_dir``, built on first use in this process."""
    key = (kind, str(data_dir))
    if key not in _built:
        run_dir = tmp_path_factory.mktemp(f"run-{kind}")
        _built[key] = remember(build_run(run_dir, data_dir, kind))
    return assert_untouched(_built[key])


def _files(run_dir) -> list:
    """Every file and folder of a run with its size and modification time."""
    return sorted((str(path.relative_to(run_dir)), path.stat().st_size, path.stat().st_mtime_ns)
                  for path in [Path(run_dir), *Path(run_dir).rglob("*")])


def remember(run_dir):
    """Note a shared run as built, for ``assert_untouched``; returns ``run_dir``."""
    _as_built[str(run_dir)] = _files(run_dir)
    return run_dir


def assert_untouched(run_dir):
    """Fail if anything was written into the shared run since it was built (a test that writes needs
    ``own_copy``); returns ``run_dir``."""
    now, built = _files(run_dir), _as_built[str(run_dir)]
    changed = sorted({row[0] for row in set(now) ^ set(built)})
    assert not changed, f"a test wrote into the shared run {run_dir} (give it own_copy): {changed}"
    return run_dir


def build_run(run_dir, data_dir: str, kind: str) -> str:
    """Train a ``kind`` model on the labeled folder ``data_dir`` (32 px, weights none) and write its run directory."""
    import keras

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind in REAL_TRAINER:
        from core import training
        from core.config import TrainConfig

        config = TrainConfig.from_dict({"weights": "none", "image_size": IMAGE_SIZE, "seed": SEED,
                                        "batch_size": 8, "validation_fraction": VALIDATION_FRACTION,
                                        **REAL_TRAINER[kind]})
        result = training.train(config, data_dir, run_dir)
        assert result.state == "done", result.error
        return str(run_dir)
    keras.utils.set_random_seed(SEED)
    writer = runs.RunWriter(run_dir)
    head = "gap" if kind == "autoencoder" else kind
    config = {"model": "autoencoder" if kind == "autoencoder" else "vgg16", "weights": "none",
              "freeze_depth": 5, "head": head, "image_size": IMAGE_SIZE, "resize_policy": "center_crop",
              "validation_fraction": VALIDATION_FRACTION, "seed": SEED, "epochs": 1, "optimizer": "adam",
              "learning_rate": 1e-2, "batch_size": 8}
    writer.write_json("config.json", config)
    writer.set_status("running", device="CPU (test)", error=None)

    dataset = ingest.load_labeled(data_dir, IMAGE_SIZE)
    train_index, validation_index = ingest.split(dataset, VALIDATION_FRACTION, SEED)
    writer.write_json("dataset.json", {
        **dataset.summary(), "source": str(Path(data_dir).absolute()),
        "split": {"seed": SEED, "validation_fraction": VALIDATION_FRACTION,
                  "train": [dataset.paths[i] for i in train_index],
                  "validation": [dataset.paths[i] for i in validation_index]}})
    writer.write_json("labels.json", list(dataset.classes))
    x_train, x_val = dataset.images[train_index], dataset.images[validation_index]
    y_train, y_val = dataset.labels[train_index], dataset.labels[validation_index]
    n_classes = len(dataset.classes)
    started = time.perf_counter()

    if kind == "autoencoder":
        split = _autoencoder_split(writer, dataset.images, n_classes)
    else:
        split = models.build_vgg16_classifier(n_classes, image_size=IMAGE_SIZE, weights="none", freeze_depth=5,
                                              head=head)
    if kind == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        from core.classifier_files import save_classifier

        features = models.compute_features(split.full, np.concatenate([x_train, x_val]), dtype="float32")
        estimator = make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(random_state=SEED), ensemble=False))
        estimator.fit(features[:len(x_train)], y_train)
        save_classifier(estimator, run_dir)
        val_probabilities = estimator.predict_proba(features[len(x_train):])
        writer.event("epoch", phase=head, epoch=1, epochs=1, seconds=0.1, loss=1.0, accuracy=1.0,
                     val_loss=1.0, val_accuracy=float((val_probabilities.argmax(1) == y_val).mean()))
    else:
        # Train the head on cached features of the frozen part, as training does (exact: no augmentation).
        features = models.compute_features(split.lower, np.concatenate([x_train, x_val]), dtype="float32")
        models.compile_classifier(split.upper, "adam", 1e-2)
        one_hot = keras.utils.to_categorical(np.concatenate([y_train, y_val]), n_classes)
        history = split.upper.fit(features[:len(x_train)], one_hot[:len(x_train)], epochs=15, batch_size=8,
                                  validation_data=(features[len(x_train):], one_hot[len(x_train):]), verbose=0)
        for epoch in range(0, 15, 5):  # a few epoch events are enough for curves
            writer.event("epoch", phase="train", epoch=epoch + 1, epochs=15, seconds=0.1,
                         **{name: float(values[epoch]) for name, values in history.history.items()})
        val_probabilities = np.asarray(split.full.predict(x_val, verbose=0))
    writer.event("phase", name="train", seconds=round(time.perf_counter() - started, 3))
    split.full.save(Path(run_dir) / "model.keras")
    writer.write_json("metrics.json", classification_metrics(y_val, val_probabilities, dataset.classes))
    writer.set_status("done", train_seconds=round(time.perf_counter() - started, 3))
    return str(run_dir)


def _autoencoder_split(writer, images, n_classes):
    """Pretrain the autoencoder for one epoch, write its reconstruction grid, and transfer the encoder."""
    from core import autoencoder

    model, encoder_layers = models.build_autoencoder(IMAGE_SIZE, seed=SEED)
    model.compile(optimizer="adam", loss=models.reconstruction_loss)
    history = model.fit(images.astype("float32"), images.astype("float32") / 255.0, epochs=1, batch_size=16,
                        validation_split=0.1, verbose=0)
    writer.event("epoch", phase="autoencoder", epoch=1, epochs=1, seconds=0.1,
                 loss=float(history.history["loss"][0]), val_loss=float(history.history["val_loss"][0]))
    sample = images[:4]
    grid = autoencoder.reconstruction_grid(sample, np.asarray(model.predict(sample.astype("float32"), verbose=0)))
    from PIL import Image

    Image.fromarray(grid).save(Path(writer.path) / "reconstructions.png")
    return models.build_encoder_classifier(encoder_layers, n_classes, image_size=IMAGE_SIZE, head="gap")


def run_fixture(name: str, *kinds: str):
    """A module-scoped pytest fixture called ``name``: the run directory of one kind, or of each kind in turn."""

    @pytest.fixture(scope="module", name=name, params=list(kinds) if len(kinds) > 1 else None)
    def fixture(request, demo_dir, tmp_path_factory):
        kind = request.param if len(kinds) > 1 else kinds[0]
        run_dir = cached_run(tmp_path_factory, demo_dir, kind)
        yield run_dir
        assert_untouched(run_dir)  # at the end of the module's tests of it

    return fixture


MODEL_SUFFIXES = (".keras", ".skops", ".h5")


def own_copy(run_dir, destination, *, copy_models: bool = False) -> Path:
    """A copy of the run folder ``run_dir`` at ``destination`` (made, with its parents) for a test that writes
    into a run. Every file is copied, keeping its times (caches are keyed by the model's), except the model
    files, which are hard-linked unless ``copy_models``: core replaces a model whole (a new file renamed over
    it), never writes into one, so a link is safe for that; a test that touches the model file itself (its
    time stamp, its bytes) needs ``copy_models``. Not symbolic links: a write through one lands in the
    shared run."""
    def copy(source, target):
        if not copy_models and str(source).endswith(MODEL_SUFFIXES):
            try:
                os.link(source, target)
                return target
            except OSError:  # another file system: copy it
                pass
        return shutil.copy2(source, target)

    shutil.copytree(run_dir, destination, copy_function=copy)
    return Path(destination)


def read(run_dir, name):
    return json.loads((Path(run_dir) / name).read_text())
