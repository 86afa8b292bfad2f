"""The seed recipe as the seed's code wrote it, in plain Keras, without anything from core.

VGG16 with every layer frozen, Flatten -> Dense(1024, relu) -> Dense(softmax), SGD(1e-4,
momentum 0.9), categorical cross-entropy, 10 epochs of ``model.fit`` on the images: the frozen
convolutions run again on every image in every epoch. This is the baseline the feature cache is
measured against, so it deliberately shares no code with core's training.
"""
from __future__ import annotations

import time

import numpy as np

import keras
from keras.applications.vgg16 import VGG16, preprocess_input


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.epochs: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epochs.append({"epoch": epoch + 1, "seconds": round(time.perf_counter() - self._started, 3),
                            **{key: float(value) for key, value in logs.items()}})


def train_seed_recipe(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *,
                      n_classes: int, weights: str, epochs: int = 10, batch_size: int = 32,
                      learning_rate: float = 1e-4, momentum: float = 0.9, seed: int = 0) -> dict:
    """Train the seed recipe on raw images (0..255 RGB) with integer labels.

    Args:
        weights: "imagenet", a VGG16 no-top weights file, or "none" for a random start.
        epochs, batch_size, learning_rate, momentum: the seed's settings by default.
    Returns:
        dict with fit_seconds (the whole model.fit, validation included), per-epoch records,
        final_val_accuracy (last epoch), best_val_accuracy and the model.
    """
    keras.utils.set_random_seed(seed)
    image_size = x_train.shape[1]
    base = VGG16(weights=None if weights == "none" else weights, include_top=False,
                 input_shape=(image_size, image_size, 3))
    for layer in base.layers:
        layer.trainable = False
    model = keras.Sequential([
        base,
        keras.layers.Flatten(),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(n_classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    # preprocess_input works in place on float arrays: give it copies.
    inputs_train = preprocess_input(np.array(x_train, dtype="float32"))
    inputs_val = preprocess_input(np.array(x_val, dtype="float32"))
    targets_train = keras.utils.to_categorical(y_train, n_classes)
    targets_val = keras.utils.to_categorical(y_val, n_classes)

    timer = _EpochTimer()
    started = time.perf_counter()
    model.fit(inputs_train, targets_train, validation_data=(inputs_val, targets_val), epochs=epochs,
              batch_size=batch_size, shuffle=True, verbose=0, callbacks=[timer])
    fit_seconds = time.perf_counter() - started
    val_accuracies = [record["val_accuracy"] for record in timer.epochs]
    return {
        "fit_seconds": round(fit_seconds, 3),
        "epochs": timer.epochs,
        "final_val_accuracy": val_accuracies[-1],
        "best_val_accuracy": max(val_accuracies),
        "model": model,
    }
