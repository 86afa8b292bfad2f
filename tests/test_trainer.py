"""Each step of the Trainer and each callback of core.callbacks, alone, on tiny real models and data.

The whole run (training.train) has its own tests in test_training.py; here every piece is called by
itself so that a broken piece fails its own test. Configs name freeze_depth explicitly, which keeps
them on the manual recipe these steps implement.
"""
import json

import keras
import numpy as np
import pytest

from core import models, runs, training
from core.callbacks import BestWeights, EventLogger, PhaseClock, StopOnNaN, StopOnRequest, Validation
from core.config import TrainConfig
from core.training import FitInputs, FitOutcome, LoadedData, Trainer

TINY = {"weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8, "seed": 1, "freeze_depth": 4}


def make_trainer(run_dir, **changes) -> Trainer:
    return Trainer(TrainConfig.from_dict({**TINY, **changes}), run_dir)


def events(run_dir, kind):
    return [event for event in runs.read_all_events(run_dir) if event["type"] == kind]


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"


# ---------------------------------------------------------------------- Trainer steps

def test_the_constructor_validates_the_config(run_dir):
    with pytest.raises(ValueError, match="freeze_depth"):
        Trainer(TrainConfig(freeze_depth=9), run_dir)


def test_load_splits_the_data_and_writes_dataset_and_labels(demo_dir, run_dir):
    loaded = make_trainer(run_dir).load(demo_dir)
    assert isinstance(loaded, LoadedData)
    assert len(loaded.train_idx) == 24 and len(loaded.val_idx) == 8 and loaded.n_classes == 4
    assert loaded.x_train.shape == (24, 32, 32, 3) and loaded.y_val.shape == (8,)
    written = json.loads((run_dir / "dataset.json").read_text())
    assert written["split"]["validation"] == [loaded.dataset.paths[i] for i in loaded.val_idx]
    assert json.loads((run_dir / "labels.json").read_text()) == loaded.dataset.classes
    assert [event["name"] for event in events(run_dir, "phase")] == ["load_data"]


def test_build_makes_the_split_vgg16(demo_dir, run_dir):
    trainer = make_trainer(run_dir)
    network = trainer.build(trainer.load(demo_dir))
    assert network.full.output_shape == (None, 4)
    assert network.lower.output_shape == (None, 2, 2, 512)  # blocks 1-4 frozen at 32 px
    assert [event["name"] for event in events(run_dir, "phase")] == ["load_data", "build_model"]


def test_cache_computes_the_frozen_part_once(demo_dir, run_dir, monkeypatch):
    # in float32 here, to compare with predict; bfloat16 has its own tests (test_forward_precision.py)
    monkeypatch.setenv("TRANSFER_STUDIO_CACHE_PRECISION", "float32")
    trainer = make_trainer(run_dir)
    loaded = trainer.load(demo_dir)
    network = trainer.build(loaded)
    inputs = trainer.cache(network, loaded)
    assert isinstance(inputs, FitInputs) and inputs.cached and inputs.model is network.upper
    assert inputs.x_train.shape == (24, 2, 2, 512) and inputs.x_train.dtype == np.float16
    np.testing.assert_allclose(inputs.x_val, network.lower.predict(loaded.x_val.astype("float32"), verbose=0),
                               rtol=1e-2, atol=1e-2)
    assert events(run_dir, "feature_cache")[0]["used"] is True and trainer.train_started is not None
    monkeypatch.setattr(training, "FEATURE_CACHE_DTYPE", "float32")  # the module constant decides
    assert trainer.cache(network, loaded).x_train.dtype == np.float32


def test_cache_off_keeps_images_and_says_why(demo_dir, run_dir):
    trainer = make_trainer(run_dir, cache_features=False)
    loaded = trainer.load(demo_dir)
    network = trainer.build(loaded)
    inputs = trainer.cache(network, loaded)
    assert not inputs.cached and inputs.model is network.full and inputs.x_train.shape == (24, 32, 32, 3)
    assert inputs.feature_cache == {"used": False, "reason": "the cache is switched off"}
    assert trainer.train_started is None  # nothing was computed yet


def test_fit_keras_trains_and_keeps_the_best_epoch(demo_dir, run_dir):
    trainer = make_trainer(run_dir, epochs=2)
    loaded = trainer.load(demo_dir)
    outcome = trainer.fit_keras(trainer.build(loaded), loaded)
    assert isinstance(outcome, FitOutcome) and not outcome.stopped
    assert outcome.val_probabilities.shape == (8, 4)
    np.testing.assert_allclose(outcome.val_probabilities.sum(1), 1, rtol=1e-4)
    epochs = events(run_dir, "epoch")
    assert [(e["phase"], e["epoch"]) for e in epochs] == [("train", 1), ("train", 2)]
    best = max(epochs, key=lambda e: (e["val_accuracy"], -e["val_loss"]))
    assert outcome.best_epoch == best["epoch"] and outcome.feature_cache["used"] is True


def test_fit_keras_two_phases_without_the_cache_train_on_images(demo_dir, run_dir):
    # The head phase freezes every block: without cached features it must fit the full network on images.
    trainer = make_trainer(run_dir, two_phase=True, head_epochs=1, cache_features=False)
    loaded = trainer.load(demo_dir)
    outcome = trainer.fit_keras(trainer.build(loaded), loaded)
    assert [e["phase"] for e in events(run_dir, "epoch")] == ["head", "fine_tune"]
    assert outcome.best_epoch in (1, 2)


def test_fit_classical_fits_an_svm_on_frozen_features(demo_dir, run_dir):
    trainer = make_trainer(run_dir, head="svm")
    loaded = trainer.load(demo_dir)
    outcome = trainer.fit_classical(trainer.build(loaded), loaded)
    assert outcome.best_epoch == 1 and not outcome.stopped and outcome.val_probabilities.shape == (8, 4)
    assert outcome.feature_cache["shape"] == [512]  # pooled block-4 features
    assert [e["phase"] for e in events(run_dir, "epoch")] == ["svm"]
    assert (run_dir / "classifier.skops").exists()


def test_pretrain_trains_the_autoencoder_and_returns_its_encoder(demo_dir, run_dir):
    trainer = make_trainer(run_dir, model="autoencoder", autoencoder_epochs=1)
    loaded = trainer.load(demo_dir)
    encoder_layers = trainer.pretrain(loaded)
    assert encoder_layers and all(layer.name.startswith("encoder_") for layer in encoder_layers)
    assert [e["phase"] for e in events(run_dir, "epoch")] == ["autoencoder"]
    assert events(run_dir, "autoencoder_data")[0]["validation"] == 8
    assert (run_dir / "autoencoder.keras").exists() and (run_dir / "reconstructions.png").exists()
    assert trainer.train_started is not None


def test_save_writes_metrics_model_and_final_status(demo_dir, run_dir):
    trainer = make_trainer(run_dir)
    loaded = trainer.load(demo_dir)
    network = trainer.build(loaded)
    perfect = keras.utils.to_categorical(loaded.y_val, 4)
    result = trainer.save(network, loaded, FitOutcome(perfect, best_epoch=3, stopped=True,
                                                      feature_cache={"used": False, "reason": "test"}))
    assert (result.state, result.val_accuracy) == ("stopped", 1.0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["best_epoch"] == 3
    status = runs.read_status(run_dir)
    assert (status["state"], status["best_epoch"], status["feature_cache"]["reason"]) == ("stopped", 3, "test")
    assert keras.saving.load_model(run_dir / "model.keras").output_shape == (None, 4)


# ---------------------------------------------------------------------- callbacks

def tiny_classifier(seed=0, learning_rate=1e-2):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def tiny_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, keras.utils.to_categorical(np.argmax(x[:, :3], 1), 3)


def test_phase_clock_announces_finished_phases_only(run_dir):
    clock = PhaseClock(runs.RunWriter(run_dir))
    with clock.phase("load_data"):
        pass
    with pytest.raises(RuntimeError):
        with clock.phase("build_model"):
            raise RuntimeError("boom")
    kinds = [(e["type"], e["name"]) for e in runs.read_all_events(run_dir)]
    assert kinds == [("phase_start", "load_data"), ("phase", "load_data"), ("phase_start", "build_model")]


def test_event_logger_writes_batch_and_epoch_events(run_dir):
    x, y = tiny_data()
    logger = EventLogger(runs.RunWriter(run_dir), "fine_tune", epochs=2, steps=4, epoch_offset=3, batch_interval=0)
    tiny_classifier().fit(x, y, validation_data=(x, y), epochs=2, batch_size=8, verbose=0, callbacks=[logger])
    batches = events(run_dir, "batch")
    assert [(b["epoch"], b["batch"]) for b in batches] == [(e, b) for e in (4, 5) for b in (1, 2, 3, 4)]
    assert batches[-1]["fraction"] == 1.0 and batches[0]["steps"] == 4 and batches[0]["phase"] == "fine_tune"
    assert all(b["loss"] > 0 and 0 <= b["accuracy"] <= 1 for b in batches)
    epochs = events(run_dir, "epoch")
    assert [(e["epoch"], e["epochs"]) for e in epochs] == [(4, 5), (5, 5)]
    for key in ("phase", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert key in epochs[0], key
    assert len(logger.history) == 2


def test_validation_scores_each_epoch_as_keras_fit_would(run_dir):
    """Validation puts into the epoch's logs what fit(validation_data=...) would: the callbacks after it (events,
    the best epoch) read the same val_loss and val_accuracy, without fit's second graph."""
    x, y = tiny_data()
    x_val, y_val = tiny_data(n=12, seed=1)
    keras_way, ours = tiny_classifier(seed=2), tiny_classifier(seed=2)
    expected = keras_way.fit(x, y, validation_data=(x_val, y_val), epochs=3, batch_size=8, shuffle=False,
                             verbose=0).history
    validation = Validation(x_val, y_val, batch_size=5)  # batches of 5, 5 and 2: averaged over pictures
    logger = EventLogger(runs.RunWriter(run_dir), "train", epochs=3, steps=4)
    ours.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[validation, logger])
    epochs = events(run_dir, "epoch")
    assert [e["val_loss"] for e in epochs] == pytest.approx(expected["val_loss"], rel=1e-5)
    assert [e["val_accuracy"] for e in epochs] == pytest.approx(expected["val_accuracy"])
    assert len(set(expected["val_loss"])) == 3  # the epochs differ, so a stale score would fail
    np.testing.assert_allclose(validation.predict(ours), keras_way.predict(x_val, verbose=0), rtol=1e-5)


def test_event_logger_throttles_batch_events_but_keeps_each_epochs_last(tmp_path):
    x, y = tiny_data()
    logger = EventLogger(runs.RunWriter(tmp_path), "train", epochs=2, steps=4, batch_interval=3600)
    tiny_classifier().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[logger])
    assert [(b["epoch"], b["batch"]) for b in events(tmp_path, "batch")] == [(1, 1), (1, 4), (2, 4)]


def test_stop_on_request_stops_within_one_batch(run_dir):
    x, y = tiny_data(n=64)
    seen = []

    def request_on_third(batch, logs):
        seen.append(batch)
        if len(seen) == 3:
            runs.request_stop(run_dir)

    stop = StopOnRequest(run_dir)
    history = tiny_classifier().fit(x, y, epochs=10, batch_size=8, verbose=0,
                                    callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=request_on_third),
                                               stop])
    assert stop.stopped and len(seen) == 3 and len(history.history["loss"]) == 1


def test_stop_on_request_leaves_a_run_without_a_request_alone(run_dir):
    x, y = tiny_data()
    stop = StopOnRequest(run_dir)
    history = tiny_classifier().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[stop])
    assert not stop.stopped and len(history.history["loss"]) == 2


def test_stop_on_nan_flags_a_diverging_loss():
    x, y = tiny_data()
    nan = StopOnNaN()
    assert isinstance(nan, keras.callbacks.TerminateOnNaN)
    # A huge learning rate on a linear model's squared loss overflows within a few steps.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(1e10), loss="mse")
    history = model.fit(x * 1e3, y, epochs=20, batch_size=8, verbose=0, callbacks=[nan])
    assert nan.nan and len(history.history["loss"]) < 20
    calm = StopOnNaN()
    tiny_classifier().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[calm])
    assert not calm.nan


def test_best_weights_restores_the_best_epoch_across_two_fits():
    # Two fits over shared layers, like a head on cached features and then the full network: the
    # snapshots are of the full network (weights_model), and epochs count across both fits.
    keras.utils.set_random_seed(0)
    lower, head = keras.layers.Dense(4, name="lower"), keras.layers.Dense(3, activation="softmax", name="head")
    lower.trainable = False
    features_in, images_in = keras.Input((4,)), keras.Input((4,))
    upper, full = keras.Model(features_in, head(features_in)), keras.Model(images_in, head(lower(images_in)))
    x, y = tiny_data()
    features = np.asarray(lower(x))
    best = BestWeights(weights_model=full)
    snapshots, scores = [], []  # per epoch: the full network's weights, (val_accuracy, -val_loss)
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (
        snapshots.append([np.array(w) for w in full.get_weights()]),
        scores.append((logs["val_accuracy"], -logs["val_loss"]))))

    upper.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy", metrics=["accuracy"])
    upper.fit(features, y, validation_data=(features, y), epochs=3, batch_size=8, verbose=0,
              callbacks=[best, record])
    # The second fit starts from scrambled weights at a tiny rate: every epoch of it is worse.
    noise = np.random.default_rng(1)
    full.set_weights([w + noise.normal(0, 5, w.shape).astype(w.dtype) for w in full.get_weights()])
    full.compile(optimizer=keras.optimizers.Adam(1e-6), loss="categorical_crossentropy", metrics=["accuracy"])
    full.fit(x, y, validation_data=(x, y), epochs=2, batch_size=8, verbose=0, callbacks=[best, record])

    assert best.epochs_seen == 5
    # the first of equal scores, as BestWeights keeps it
    assert best.best_epoch == 1 + max(range(len(scores)), key=scores.__getitem__)
    assert best.best_epoch <= 3  # carried over from the first fit
    assert best.restore()
    for restored, kept in zip(full.get_weights(), snapshots[best.best_epoch - 1]):
        np.testing.assert_array_equal(restored, kept)


def test_best_weights_by_loss_alone_and_nothing_to_restore_without_validation():
    best = BestWeights(monitor_accuracy=False)
    assert best._score({"val_accuracy": 0.9, "val_loss": 2.0}) < best._score(
        {"val_accuracy": 0.1, "val_loss": 1.0})
    by_accuracy = BestWeights()
    assert by_accuracy._score({"val_accuracy": 0.9, "val_loss": 2.0}) > by_accuracy._score(
        {"val_accuracy": 0.5, "val_loss": 1.0})
    x, y = tiny_data()
    no_validation = BestWeights()
    tiny_classifier().fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[no_validation])
    assert no_validation.best_epoch is None and not no_validation.restore()


@pytest.mark.parametrize("recipe", ["manual", "auto"])
def test_a_stop_during_the_forward_pass_lands_within_one_batch(demo_dir, run_dir, monkeypatch, recipe):
    """The forward pass is the longest step before the first epoch: a stop must not wait for its end."""
    progress = runs.RunWriter.progress
    seen = []

    def stop_at_first_batch(writer, phase, fraction, message=""):
        if phase == "feature_cache":
            seen.append(fraction)
            if len(seen) == 1:
                runs.request_stop(writer.path)  # the user's click, arriving mid-pass
        return progress(writer, phase, fraction, message)

    monkeypatch.setattr(runs.RunWriter, "progress", stop_at_first_batch)
    config = {**TINY, "batch_size": 16} if recipe == "manual" else {
        key: value for key, value in TINY.items() if key != "freeze_depth"}
    result = training.train(TrainConfig.from_dict(config), demo_dir, run_dir)
    assert result.state == "stopped" and runs.read_status(run_dir)["state"] == "stopped"
    assert seen == [seen[0]] and seen[0] < 1.0  # no batch ran after the one in which the stop came
    assert not (run_dir / "model.keras").exists()


def test_two_phases_fine_tune_at_a_tenth_of_the_rate(demo_dir, run_dir, monkeypatch):
    """The README's two-phase recipe: the head first at the rate, then the unfrozen blocks at a tenth of it."""
    compiled = []
    compile_classifier = models.compile_classifier

    def record(model, optimizer, learning_rate, *args, **kwargs):
        compiled.append((optimizer, learning_rate))
        return compile_classifier(model, optimizer, learning_rate, *args, **kwargs)

    monkeypatch.setattr(models, "compile_classifier", record)
    config = {**TINY, "two_phase": True, "head_epochs": 1, "learning_rate": 0.003}
    assert [(p.name, p.learning_rate) for p in make_trainer(run_dir, **config).phases()] == [
        ("head", 0.003), ("fine_tune", pytest.approx(0.0003))]
    result = training.train(TrainConfig.from_dict(config), demo_dir, run_dir)
    assert result.state == "done", result.error
    assert compiled == [("adam", 0.003), ("adam", pytest.approx(0.0003))]


def test_small_inputs_are_scored_in_larger_batches_images_at_the_training_batch_size():
    assert training.scoring_batch(np.zeros((80, 2, 2, 512), "float16"), 32) == 512  # one call for 80 features
    assert training.scoring_batch(np.zeros((80, 224, 224, 3), "float32"), 32) == 32
