"""The learning-rate range test: train for a few hundred steps while the learning rate rises
exponentially, record the loss at each step, and suggest a value a little before the loss bottoms out.

It trains on cached frozen features when the config allows it, so it costs one forward pass
plus seconds, and it never touches the model a real run will train (a fresh one is built).
"""
from __future__ import annotations

import math

import numpy as np

from core import ingest, models
from core.config import TrainConfig

import keras


class _RisingLearningRate(keras.callbacks.Callback):
    def __init__(self, learning_rates, progress=None):
        super().__init__()
        self.learning_rates = learning_rates
        self.losses: list[float] = []
        self.step = 0
        self.progress = progress
        self.best = math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(float(self.learning_rates[self.step]))

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.losses.append(loss)
        self.step += 1
        if math.isfinite(loss):
            self.best = min(self.best, loss)
        # Past the point where the loss explodes, nothing more is learned.
        if not math.isfinite(loss) or loss > 4 * self.best or self.step >= len(self.learning_rates):
            self.model.stop_training = True
        if self.progress and self.step % 10 == 0:
            self.progress(self.step / len(self.learning_rates), f"learning-rate test: step {self.step}")


def find_learning_rate(config: TrainConfig, dataset: ingest.Dataset, *, steps: int = 100, min_lr: float = 1e-6,
                       max_lr: float = 1.0, progress=None) -> dict:
    """Run the range test for ``config``'s model on ``dataset`` (at config.image_size).

    Returns {"learning_rates", "losses", "suggested"}: the suggestion is the rate at the steepest
    fall of the smoothed loss, a common rule that lands about a decade below the minimum.
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"need 0 < min_lr < max_lr, got {min_lr} and {max_lr}")
    if steps < 10:
        raise ValueError(f"steps must be at least 10, got {steps}")
    keras.utils.set_random_seed(config.seed)
    n_classes = len(dataset.classes)
    labels = keras.utils.to_categorical(dataset.labels, n_classes)
    if config.model == "autoencoder":
        _, encoder_layers = models.build_autoencoder(config.image_size, seed=config.seed)
        split = models.build_encoder_classifier(encoder_layers, n_classes, image_size=config.image_size,
                                                head="gap" if config.classical else config.head,
                                                dropout=config.dropout, seed=config.seed)
    else:
        split = models.build_vgg16_classifier(
            n_classes, image_size=config.image_size, weights=config.weights, freeze_depth=config.freeze_depth,
            head="gap" if config.classical else config.head, dropout=config.dropout, augment=config.augment,
            seed=config.seed)
    inputs, model = dataset.images.astype("float32"), split.full
    if split.lower is not None and config.uses_feature_cache:
        inputs = models.compute_features(split.lower, dataset.images, batch_size=32, progress=progress,
                                         message="caching frozen features").astype("float32")
        model = split.upper
    models.compile_classifier(model, config.optimizer, min_lr, config.momentum)
    learning_rates = np.geomspace(min_lr, max_lr, steps)
    batch_size = min(config.batch_size, len(inputs))
    epochs = math.ceil(steps / max(1, math.ceil(len(inputs) / batch_size)))
    recorder = _RisingLearningRate(learning_rates, progress)
    model.fit(inputs, labels, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=[recorder])
    losses = recorder.losses
    used = learning_rates[: len(losses)]
    return {"learning_rates": used.tolist(), "losses": losses, "suggested": suggest(used, losses)}


def suggest(learning_rates, losses) -> float:
    """The learning rate at the steepest descent of the exponentially smoothed loss."""
    losses = np.asarray(losses, dtype=float)
    finite = np.isfinite(losses)
    if finite.sum() < 5:
        return float(learning_rates[0])
    smoothed, average = [], losses[finite][0]
    for value in losses:
        if math.isfinite(value):
            average = 0.9 * average + 0.1 * value
        smoothed.append(average)
    smoothed = np.asarray(smoothed)
    slopes = np.gradient(smoothed, np.log10(learning_rates))
    # Ignore the warm-up tail of the smoothing and the blow-up at the end.
    window = slice(len(slopes) // 10, max(len(slopes) // 10 + 1, int(len(slopes) * 0.9)))
    index = window.start + int(np.argmin(slopes[window]))
    return float(learning_rates[index])
