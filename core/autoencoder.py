"""The seed's unsupervised transfer: pretrain a convolutional autoencoder on every image available
(labeled plus optional unlabeled), announce its reconstruction loss and a picture grid each epoch,
and hand its encoder to the classifier.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core import ingest, models, runs

import keras

GRID_IMAGES = 8


def pretrain(config, dataset, writer: runs.RunWriter, clock, state, say) -> list:
    """Train the autoencoder with L = 1/(2N) sum ||x - x_hat||^2; return its (trained) encoder layers."""
    images = dataset.images
    if config.unlabeled:
        with clock.phase("load_unlabeled"):
            extra = ingest.load_unlabeled(config.unlabeled, config.image_size, policy=config.resize_policy,
                                          progress=lambda f, m: writer.progress("load_unlabeled", f, m))
        writer.event("unlabeled", images=int(len(extra.images)), skipped=extra.skipped)
        say(f"unlabeled: {len(extra.images)} images ({len(extra.skipped)} skipped)")
        if len(extra.images):
            images = np.concatenate([images, extra.images])
    autoencoder, encoder_layers = models.build_autoencoder(config.image_size, seed=config.seed)
    autoencoder.compile(optimizer=keras.optimizers.Adam(config.autoencoder_learning_rate),
                        loss=models.reconstruction_loss)
    # Targets are the images scaled to 0..1, matching the decoder's sigmoid output.
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(images))
    n_val = max(1, len(images) // 10) if len(images) >= 10 else 0
    val_images, train_images = images[order[:n_val]], images[order[n_val:]]
    grid_source = (val_images if len(val_images) else train_images)[:GRID_IMAGES]
    steps = max(1, int(np.ceil(len(train_images) / config.batch_size)))
    from core.training import RunEvents, RunFailed

    events = RunEvents(writer, "autoencoder", config.autoencoder_epochs, steps, monitor_accuracy=False)
    grid = ReconstructionGrid(writer.path, grid_source)
    if state["train_started"] is None:
        state["train_started"] = time.perf_counter()
    say(f"pretraining the autoencoder on {len(images)} images")
    with clock.phase("autoencoder"):
        autoencoder.fit(
            train_images.astype("float32"), train_images.astype("float32") / 255.0,
            validation_data=((val_images.astype("float32"), val_images.astype("float32") / 255.0)
                             if len(val_images) else None),
            epochs=config.autoencoder_epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
            callbacks=[events, grid])
    if events.nan:
        raise RunFailed("autoencoder loss became NaN: lower the autoencoder learning rate")
    events.restore_best()
    grid.write(autoencoder, "final")
    autoencoder.save(Path(writer.path) / "autoencoder.keras")
    if events.stopped:
        from core.training import StopRequested
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
