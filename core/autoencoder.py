"""The seed's unsupervised transfer: pretrain a convolutional autoencoder on every image available for
training (the labeled training split plus an optional unlabeled folder or zip), announce its
reconstruction loss and a picture grid each epoch, and hand its encoder to the classifier.

The labeled validation images are held out of pretraining: they are the autoencoder's validation set
(its val_loss and the reconstruction grid show images it never trained on), so the classifier's
validation accuracy stays an honest measure even though pretraining needs no labels.

``untrained_encoder()`` skips pretraining (the encoder keeps its random initial weights): the baseline
that the encoder's transfer is measured against (bench/autoencoder_check.py).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from core import ingest, models, runs
from core.callbacks import BestWeights, EventLogger, RunFailed, StopOnNaN, StopOnRequest, StopRequested

import keras

GRID_IMAGES = 8
_skip_pretraining = False


@contextlib.contextmanager
def untrained_encoder():
    """Within this block, ``pretrain`` builds the autoencoder but does not train it (random-encoder baseline).

    Everything else about the run stays the same: the same seeded initial weights, split, head and
    classifier training, so the difference to a normal run is the pretraining alone.
    """
    global _skip_pretraining
    previous, _skip_pretraining = _skip_pretraining, True
    try:
        yield
    finally:
        _skip_pretraining = previous


def pretrain(trainer, dataset, split=None) -> list:
    """Train the autoencoder with L = 1/(2N) sum ||x - x_hat||^2; return its (trained) encoder layers.

    Args:
        trainer: the run's training.Trainer; pretraining reads its ``config``, writes through its
            ``writer``, ``clock`` and ``log``, and starts its training clock (``mark_training_start``).
        dataset: the run's labeled ingest.Dataset.
        split: the run's (train indices, validation indices) into ``dataset``; computed with
            ingest.split(dataset, config.validation_fraction, config.seed), as the Trainer does, if None.
    Raises:
        RunFailed when the loss becomes NaN; StopRequested after a stop request (the autoencoder and
        its pictures are saved first).
    """
    config, writer, log = trainer.config, trainer.writer, trainer.log
    train_idx, val_idx = split if split is not None else ingest.split(
        dataset, config.validation_fraction, config.seed)
    images, val_images = dataset.images[train_idx], dataset.images[val_idx]
    n_unlabeled = 0
    if config.unlabeled:
        with trainer.clock.phase("load_unlabeled"):
            extra = ingest.load_unlabeled(config.unlabeled, config.image_size, policy=config.resize_policy,
                                          progress=lambda f, m: writer.progress("load_unlabeled", f, m))
        writer.event("unlabeled", images=int(len(extra.images)), skipped=extra.skipped)
        log(f"unlabeled: {len(extra.images)} images ({len(extra.skipped)} skipped)")
        if len(extra.images):
            n_unlabeled = int(len(extra.images))
            images = np.concatenate([images, extra.images])
    writer.event("autoencoder_data", train=int(len(images)), labeled=int(len(train_idx)), unlabeled=n_unlabeled,
                 validation=int(len(val_images)), pretrained=not _skip_pretraining)
    autoencoder, encoder_layers = models.build_autoencoder(config.image_size, seed=config.seed)
    autoencoder.compile(optimizer=keras.optimizers.Adam(config.autoencoder_learning_rate),
                        loss=models.reconstruction_loss)
    grid = ReconstructionGrid(writer.path, (val_images if len(val_images) else images)[:GRID_IMAGES])
    if _skip_pretraining:
        log("random-encoder baseline: the autoencoder is not trained")
        grid.write(autoencoder, "final")
        autoencoder.save(Path(writer.path) / "autoencoder.keras")
        return encoder_layers

    steps = max(1, int(np.ceil(len(images) / config.batch_size)))
    logger = EventLogger(writer, "autoencoder", config.autoencoder_epochs, steps)
    stop, nan = StopOnRequest(writer.path), StopOnNaN()
    best = BestWeights(monitor_accuracy=False)  # no labels, no accuracy: the lowest validation loss
    trainer.mark_training_start()
    log(f"pretraining the autoencoder on {len(images)} images ({n_unlabeled} unlabeled); "
        f"{len(val_images)} validation images held out")
    # Targets are the images scaled to 0..1, matching the decoder's sigmoid output.
    images = images.astype("float32")
    val_data = (val_images.astype("float32"), val_images.astype("float32") / 255.0) if len(val_images) else None
    with trainer.clock.phase("autoencoder"):
        autoencoder.fit(images, images / 255.0, validation_data=val_data,
                        epochs=config.autoencoder_epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
                        callbacks=[nan, logger, stop, best, grid])
    if nan.nan:
        raise RunFailed("autoencoder loss became NaN: lower the autoencoder learning rate")
    best.restore()
    grid.write(autoencoder, "final")
    autoencoder.save(Path(writer.path) / "autoencoder.keras")
    if stop.stopped:
        raise StopRequested()
    return encoder_layers


class ReconstructionGrid(keras.callbacks.Callback):
    """After each epoch, save inputs (top row) above their reconstructions (bottom row) as a PNG."""

    def __init__(self, run_dir, images):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.images = np.asarray(images)

    def on_epoch_end(self, epoch, logs=None):
        self.write(self.model, epoch + 1)

    def write(self, model, epoch) -> None:
        if not len(self.images):
            return
        reconstructed = np.asarray(model.predict(self.images.astype("float32"), verbose=0))
        picture = reconstruction_grid(self.images, reconstructed)
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="PNG")
        folder = self.run_dir / "reconstructions"
        folder.mkdir(exist_ok=True)
        name = f"epoch_{epoch:03d}.png" if isinstance(epoch, int) else f"{epoch}.png"
        runs.write_bytes_atomic(folder / name, buffer.getvalue())
        runs.write_bytes_atomic(self.run_dir / "reconstructions.png", buffer.getvalue())


def reconstruction_grid(images: np.ndarray, reconstructed: np.ndarray) -> np.ndarray:
    """Two rows: uint8 originals over reconstructions (0..1 floats), with a 2 px white gutter."""
    size = images.shape[1]
    count = len(images)
    gutter = 2
    grid = np.full((2 * size + 3 * gutter, count * (size + gutter) + gutter, 3), 255, dtype=np.uint8)
    for index in range(count):
        left = gutter + index * (size + gutter)
        grid[gutter:gutter + size, left:left + size] = images[index]
        grid[2 * gutter + size:2 * gutter + 2 * size, left:left + size] = np.clip(
            reconstructed[index] * 255.0, 0, 255).astype(np.uint8)
    return grid
