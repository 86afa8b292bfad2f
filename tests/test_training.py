"""Training writes the whole run directory; the feature cache gives the uncached result; failures are plain words."""
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from core import callbacks, evaluation, ingest, models, runs, training
from core.config import TrainConfig

# The manual recipe, exactly as set (recipe auto has its own tests in test_recipe_auto.py).
TINY = {"recipe": "manual", "weights": "none", "image_size": 32, "epochs": 2, "batch_size": 8, "seed": 1}


def tiny(**changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **changes})


def test_run_directory_has_every_file(demo_dir, tmp_path):
    run = tmp_path / "run"
    result = training.train(tiny(), demo_dir, run)
    assert result.state == "done", result.error
    for name in ("config.json", "status.json", "events.jsonl", "dataset.json", "model.keras", "labels.json",
                 "metrics.json"):
        assert (run / name).exists(), name
    status = runs.read_status(run)
    assert status["state"] == "done" and status["device"].startswith(("CPU", "GPU"))
    assert status["train_seconds"] > 0 and status["error"] is None
    config = json.loads((run / "config.json").read_text())
    assert config["image_size"] == 32 and config["freeze_depth"] == 4
    dataset = json.loads((run / "dataset.json").read_text())
    assert dataset["classes"] == json.loads((run / "labels.json").read_text())
    assert set(dataset["counts"].values()) == {8}
    assert len(dataset["split"]["validation"]) == 4 * 2 and len(dataset["split"]["train"]) == 4 * 6
    assert not set(dataset["split"]["validation"]) & set(dataset["split"]["train"])
    events = runs.read_all_events(run)
    kinds = {event["type"] for event in events}
    assert {"phase", "epoch", "batch", "progress", "feature_cache"} <= kinds
    epochs = [e for e in events if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for key in ("phase", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert key in epochs[0]
    phases = {e["name"] for e in events if e["type"] == "phase"}
    assert {"load_data", "build_model", "feature_cache", "train", "save"} <= phases
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.array(metrics["confusion_matrix"]).sum() == 8
    assert set(metrics["per_class"]) == set(dataset["classes"])
    loaded = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert loaded.output_shape == (None, 4)


@pytest.mark.parametrize("cache_dtype,tolerance", [("float32", 2e-3), ("float16", 5e-2)])
def test_cached_training_equals_uncached(demo_dir, tmp_path, monkeypatch, cache_dtype, tolerance):
    """Training blocks 4-5 + head on cached block-3 features gives the same model as on images.

    With a float32 cache the two paths agree to float round-off; the product's float16 cache adds
    its rounding on top and still makes the same decisions.
    """
    monkeypatch.setattr(training, "FEATURE_CACHE_DTYPE", cache_dtype)
    settings = dict(freeze_depth=3, dropout=0.0, learning_rate=1e-4, epochs=2, head="gap")
    cached = training.train(tiny(**settings), demo_dir, tmp_path / "cached")
    plain = training.train(tiny(**settings, cache_features=False), demo_dir, tmp_path / "plain")
    assert cached.state == plain.state == "done"
    cache_events = [e for e in runs.read_all_events(tmp_path / "cached") if e["type"] == "feature_cache"]
    assert cache_events[0]["used"] is True and cache_events[0]["shape"] == [4, 4, 256]
    assert [e for e in runs.read_all_events(tmp_path / "plain") if e["type"] == "feature_cache"][0]["used"] is False
    images = ingest.load_labeled(demo_dir, 32).images.astype("float32")
    a = keras.saving.load_model(tmp_path / "cached" / "model.keras").predict(images, verbose=0)
    b = keras.saving.load_model(tmp_path / "plain" / "model.keras").predict(images, verbose=0)
    print(f"{cache_dtype} cache: max probability difference {np.abs(a - b).max():.2e}")
    np.testing.assert_allclose(a, b, atol=tolerance)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95
    assert cached.val_accuracy == pytest.approx(plain.val_accuracy, abs=0.13)


def test_cache_over_budget_falls_back_and_says_so(demo_dir, tmp_path):
    result = training.train(tiny(freeze_depth=1, image_size=48, cache_budget_mb=1, epochs=1), demo_dir, tmp_path / "r")
    assert result.state == "done"
    event = [e for e in runs.read_all_events(tmp_path / "r") if e["type"] == "feature_cache"][0]
    assert event["used"] is False and "budget" in event["reason"]


def test_augmentation_turns_the_cache_off_with_a_reason(demo_dir, tmp_path):
    result = training.train(tiny(augment=True, epochs=1), demo_dir, tmp_path / "r")
    assert result.state == "done"
    event = [e for e in runs.read_all_events(tmp_path / "r") if e["type"] == "feature_cache"][0]
    assert event["used"] is False and "augmentation" in event["reason"]


def test_nan_loss_ends_the_run_with_advice(demo_dir, tmp_path, monkeypatch):
    # A random VGG16 is too tame to diverge on 24 tiny images, so the divergence is injected: the
    # loss is made to become NaN on the third batch. Everything else (fit, callbacks, run files) is real.
    original_compile = models.compile_classifier
    calls = {"n": 0}

    def diverging_loss(y_true, y_pred):
        calls["n"] += 1
        loss = keras.losses.categorical_crossentropy(y_true, y_pred)
        return loss * keras.ops.log(keras.ops.cast(calls["n"] < 3, "float32") - 0.5)

    def compile_with_diverging_loss(model, optimizer, learning_rate, momentum=0.9, **options):
        original_compile(model, optimizer, learning_rate, momentum, **options)
        model.compile(optimizer=model.optimizer, loss=diverging_loss, metrics=["accuracy"], run_eagerly=True)
        return model

    monkeypatch.setattr(models, "compile_classifier", compile_with_diverging_loss)
    result = training.train(tiny(epochs=5), demo_dir, tmp_path / "r")
    assert result.state == "failed"
    assert result.error == "loss became NaN: lower the learning rate"
    assert runs.read_status(tmp_path / "r")["error"] == result.error
    assert [e for e in runs.read_all_events(tmp_path / "r") if e["type"] == "error"]


def test_stop_request_stops_within_one_batch_and_leaves_a_model(demo_dir, tmp_path):
    run = tmp_path / "r"

    # Request the stop from inside: after the 3rd batch event the stop file appears.
    original = callbacks.StopOnRequest.on_train_batch_end
    seen = []

    def on_batch_end(self, batch, logs=None):
        seen.append(batch)
        if len(seen) == 3:
            runs.request_stop(run)
        original(self, batch, logs)

    callbacks.StopOnRequest.on_train_batch_end = on_batch_end
    try:
        result = training.train(tiny(epochs=50, batch_size=2), demo_dir, run)
    finally:
        callbacks.StopOnRequest.on_train_batch_end = original
    assert result.state == "stopped"
    assert len(seen) == 3  # not one batch more
    model = keras.saving.load_model(run / "model.keras")
    assert model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0).shape == (1, 4)


def test_two_phase_fine_tuning_runs_head_then_unfrozen_blocks(demo_dir, tmp_path):
    result = training.train(tiny(freeze_depth=4, two_phase=True, head_epochs=1, epochs=1), demo_dir, tmp_path / "r")
    assert result.state == "done", result.error
    phases = [e["phase"] for e in runs.read_all_events(tmp_path / "r") if e["type"] == "epoch"]
    assert phases == ["head", "fine_tune"]


@pytest.mark.parametrize("head", ["seed", "svm", "random_forest"])
def test_other_heads(demo_dir, tmp_path, head):
    result = training.train(tiny(head=head, epochs=1, forest_trees=20), demo_dir, tmp_path / head)
    assert result.state == "done", result.error
    # the accuracy reported is the kept model's on the validation pictures: recomputed from the model itself
    run = tmp_path / head
    validation = json.loads((run / "dataset.json").read_text())["split"]["validation"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert result.val_accuracy == metrics["accuracy"] == runs.read_status(run)["val_accuracy"]
    assert metrics["n"] == len(validation) and sum(map(sum, metrics["confusion_matrix"])) == len(validation)
    assert evaluation.evaluate(run)["accuracy"] == pytest.approx(result.val_accuracy)
    if head in ("svm", "random_forest"):
        assert (tmp_path / head / "classifier.skops").exists() and not (tmp_path / head / "classifier.joblib").exists()


def test_too_small_a_class_fails_with_the_class_name(tmp_path, demo_dir):
    data = tmp_path / "data"
    for name, count in (("big", 6), ("tiny", 1)):
        (data / name).mkdir(parents=True)
        for i, source in enumerate(sorted(Path(demo_dir, "circle").iterdir())[:count]):
            (data / name / f"{i}.png").write_bytes(source.read_bytes())
    result = training.train(tiny(), str(data), tmp_path / "r")
    assert result.state == "failed" and "tiny" in result.error


def test_offline_imagenet_fails_in_plain_words(demo_dir, tmp_path, monkeypatch):
    """Offline whatever machine runs it: an empty Keras cache (a fresh HOME), no server weights file, and name
    lookups refused (the network alone is mocked; Keras's own download runs and fails as it would offline)."""
    import socket

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TRANSFER_STUDIO_WEIGHTS", raising=False)
    lookup = socket.getaddrinfo

    def offline(host, *args, **kwargs):
        if host not in ("localhost", "127.0.0.1", "::1", None):
            raise socket.gaierror(-2, "Name or service not known")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    assert not models.imagenet_cache_path().exists()
    result = training.train(tiny(weights="imagenet"), demo_dir, tmp_path / "r")
    assert result.state == "failed"
    assert "ImageNet" in result.error and "'none'" in result.error
    assert "Traceback" not in (tmp_path / "r" / "status.json").read_text()


def test_autoencoder_run_follows_the_same_contract(demo_dir, tmp_path):
    run = tmp_path / "ae"
    result = training.train(tiny(model="autoencoder", autoencoder_epochs=2, epochs=1), demo_dir, run)
    assert result.state == "done", result.error
    events = runs.read_all_events(run)
    ae_epochs = [e for e in events if e["type"] == "epoch" and "autoencoder" in e["phase"]]
    assert len(ae_epochs) == 2 and ae_epochs[0]["loss"] > 0
    assert (run / "reconstructions.png").exists()
    assert (run / "reconstructions" / "epoch_002.png").exists()
    for name in ("model.keras", "labels.json", "metrics.json", "dataset.json"):
        assert (run / name).exists()


def test_pretrained_features_beat_random_init(pretrained_weights, tmp_path):
    """Real pretrained features (offline VGG16) transfer better than a random VGG16 on a small set.

    The offline backbone is VGG16 fine-tuned for edge detection, so its block-5 features are weak on
    shapes; its block-4 features (freeze depth 4) are strong, and clearly beat random-VGG16 ones.
    """
    from core import demo_data

    data = demo_data.write_demo_data(str(tmp_path / "demo"), per_class=40, size=64, seed=3)
    settings = dict(image_size=64, head="svm", freeze_depth=4, seed=0, validation_fraction=0.3)
    pretrained = training.train(tiny(**settings, weights=pretrained_weights), data, tmp_path / "pre")
    random_init = training.train(tiny(**settings, weights="none"), data, tmp_path / "rand")
    print(f"val accuracy: pretrained {pretrained.val_accuracy:.3f}, random {random_init.val_accuracy:.3f}")
    assert pretrained.state == random_init.state == "done"
    assert pretrained.val_accuracy >= random_init.val_accuracy + 0.15
    assert pretrained.val_accuracy >= 0.45  # chance is 0.25


def test_a_given_split_is_used_and_recorded(demo_dir, tmp_path):
    dataset = ingest.load_labeled(demo_dir, 32)
    train_idx = np.flatnonzero(np.arange(len(dataset.labels)) % 4 != 0)
    val_idx = np.flatnonzero(np.arange(len(dataset.labels)) % 4 == 0)
    run = tmp_path / "given"
    result = training.train(tiny(epochs=1), demo_dir, run, dataset=dataset, split=(train_idx, val_idx))
    assert result.state == "done", result.error
    recorded = json.loads((run / "dataset.json").read_text())["split"]
    assert recorded["validation"] == [dataset.paths[i] for i in val_idx]
    assert recorded["train"] == [dataset.paths[i] for i in train_idx]


def test_a_given_split_that_overlaps_fails_in_plain_words(demo_dir, tmp_path):
    dataset = ingest.load_labeled(demo_dir, 32)
    result = training.train(tiny(epochs=1), demo_dir, tmp_path / "bad", dataset=dataset, split=([0, 1, 2], [2, 3]))
    assert result.state == "failed" and "same image for training and validation" in result.error


def test_the_gap_head_starts_at_every_class_equally_likely(demo_dir, tmp_path):
    """A readable first loss: ln(4) for 4 classes, not the 30-130 of random weights on VGG16's activations."""
    result = training.train(tiny(freeze_depth=4, epochs=1), demo_dir, tmp_path / "r")
    assert result.state == "done", result.error
    first = [e for e in runs.read_all_events(tmp_path / "r") if e["type"] == "batch"][0]
    assert first["batch"] == 1 and first["loss"] == pytest.approx(np.log(4), abs=1e-3)


@pytest.mark.parametrize("head", ["svm", "random_forest"])
def test_a_classical_heads_one_point_on_the_curve_is_its_reported_accuracy(demo_dir, tmp_path, head):
    run = tmp_path / head
    result = training.train(TrainConfig.from_dict({**TINY, "head": head, "forest_trees": 20}), demo_dir, run)
    (epoch,) = [e for e in runs.read_all_events(run) if e["type"] == "epoch"]
    assert epoch["val_accuracy"] == pytest.approx(result.val_accuracy)


def test_a_keras_head_learns_from_its_labels(pretrained_weights, tmp_path):
    """The Keras path (fit_keras) above chance on pretrained features: labels that no longer match their
    pictures (a shuffle in the wrong place) bring it to chance. Measured: 0.60, and 0.27 with shuffled labels."""
    from core import demo_data

    data = demo_data.write_demo_data(str(tmp_path / "demo"), per_class=40, size=64, seed=3)
    config = TrainConfig.from_dict({"recipe": "manual", "image_size": 64, "head": "gap", "freeze_depth": 4,
                                    "seed": 0, "validation_fraction": 0.3, "weights": pretrained_weights,
                                    "epochs": 10, "learning_rate": 1e-3})
    result = training.train(config, data, tmp_path / "run")
    assert result.state == "done", result.error
    assert result.val_accuracy >= 0.45  # chance is 0.25
