"""The autoencoder path: the seed's loss, per-epoch events and reconstruction grids, unlabeled images in
pretraining (validation images held out), the pretrained encoder inside the saved classifier, the
fine-tuning phases and the random-encoder baseline. Tiny runs (32 px, 2 autoencoder epochs); the
accuracy comparison lives in bench/autoencoder_check.py, not here.
"""
import json
import numpy as np
import pytest
from PIL import Image

import keras

from core import autoencoder, callbacks, demo_data, ingest, models, runs, training
from core.config import TrainConfig

TINY = {"model": "autoencoder", "weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8, "seed": 1,
        "autoencoder_epochs": 2}
N_UNLABELED = 8


def tiny(**changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **changes})


@pytest.fixture(scope="module")
def unlabeled_dir(tmp_path_factory):
    images, _, _ = demo_data.generate(per_class=N_UNLABELED // 4, size=32, seed=7)
    folder = tmp_path_factory.mktemp("unlabeled")
    for index, picture in enumerate(images):
        Image.fromarray(picture).save(folder / f"extra_{index}.png")
    return str(folder)


@pytest.fixture(scope="module")
def pretrained_run(demo_dir, unlabeled_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("ae") / "run"
    result = training.train(tiny(unlabeled=unlabeled_dir), demo_dir, run)
    assert result.state == "done", result.error
    return run


def encoder_weights(model):
    return {layer.name: [np.asarray(w) for w in layer.get_weights()]
            for layer in model.layers if layer.name.startswith("encoder_") and layer.get_weights()}


def test_reconstruction_loss_is_the_seed_formula():
    rng = np.random.default_rng(0)
    x = rng.random((5, 6, 6, 3)).astype("float32")
    x_hat = rng.random((5, 6, 6, 3)).astype("float32")
    expected = np.sum((x - x_hat) ** 2) / (2 * len(x))  # L = 1/(2N) sum_i ||x_i - x_hat_i||^2
    assert float(models.reconstruction_loss(x, x_hat)) == pytest.approx(expected, rel=1e-5)
    assert float(models.reconstruction_loss(x, x)) == 0.0


def test_each_epoch_has_an_event_and_a_reconstruction_grid(pretrained_run):
    events = runs.read_all_events(pretrained_run)
    epochs = [e for e in events if e["type"] == "epoch" and e["phase"] == "autoencoder"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(e["loss"] > 0 and e["val_loss"] > 0 for e in epochs)
    for name in ("epoch_001.png", "epoch_002.png", "final.png"):
        assert (pretrained_run / "reconstructions" / name).exists(), name
    grid = np.asarray(Image.open(pretrained_run / "reconstructions.png"))
    assert grid.shape[0] == 2 * 32 + 3 * 2  # inputs over reconstructions
    classifier_epochs = [e for e in events if e["type"] == "epoch" and e["phase"] != "autoencoder"]
    assert classifier_epochs and all("val_accuracy" in e for e in classifier_epochs)


def test_unlabeled_images_join_pretraining_and_validation_is_held_out(pretrained_run, demo_dir):
    events = runs.read_all_events(pretrained_run)
    assert [e["images"] for e in events if e["type"] == "unlabeled"] == [N_UNLABELED]
    data = next(e for e in events if e["type"] == "autoencoder_data")
    train_idx, val_idx = ingest.split(ingest.load_labeled(demo_dir, 32), 0.2, 1)
    assert data["labeled"] == len(train_idx) and data["unlabeled"] == N_UNLABELED
    assert data["train"] == len(train_idx) + N_UNLABELED and data["validation"] == len(val_idx)
    assert data["pretrained"] is True


def test_saved_classifier_carries_the_pretrained_encoder(pretrained_run):
    pretrained = keras.saving.load_model(pretrained_run / "autoencoder.keras", safe_mode=True)
    classifier = keras.saving.load_model(pretrained_run / "model.keras", safe_mode=True)
    expected, got = encoder_weights(pretrained), encoder_weights(classifier)
    assert set(got) == set(expected) and "encoder_conv3" in got and "encoder_norm3" in got
    for name in expected:
        for a, b in zip(expected[name], got[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    # ... and pretraining changed them: they are not the seeded initial weights
    initial = encoder_weights(models.build_autoencoder(32, seed=1)[0])
    assert not np.allclose(initial["encoder_conv1"][0], got["encoder_conv1"][0])


def test_fine_tune_encoder_runs_the_head_then_the_encoder(demo_dir, tmp_path):
    run = tmp_path / "ft"
    result = training.train(tiny(fine_tune_encoder=True, epochs=2, autoencoder_epochs=1), demo_dir, run)
    assert result.state == "done", result.error
    epochs = [e for e in runs.read_all_events(run) if e["type"] == "epoch" and e["phase"] != "autoencoder"]
    assert [(e["phase"], e["epoch"]) for e in epochs] == [("head", 1), ("head", 2), ("fine_tune_encoder", 3)]
    keras.saving.load_model(run / "model.keras", safe_mode=True)


def test_untrained_encoder_is_the_random_baseline(demo_dir, tmp_path):
    run = tmp_path / "random"
    with autoencoder.untrained_encoder():
        result = training.train(tiny(), demo_dir, run)
    assert result.state == "done", result.error
    events = runs.read_all_events(run)
    assert not [e for e in events if e["type"] == "epoch" and e["phase"] == "autoencoder"]
    assert next(e for e in events if e["type"] == "autoencoder_data")["pretrained"] is False
    classifier = keras.saving.load_model(run / "model.keras", safe_mode=True)
    initial = encoder_weights(models.build_autoencoder(32, seed=1)[0])
    got = encoder_weights(classifier)
    for name in initial:
        for a, b in zip(initial[name], got[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    # the switch is scoped: the next run pretrains again
    assert autoencoder._skip_pretraining is False


def test_best_epoch_in_the_cached_head_phase_is_restored_onto_the_full_network(demo_dir, tmp_path, monkeypatch):
    # Force the first epoch (cached head phase) to score best, so the end of the run restores weights
    # snapshotted while the head trained on cached features onto the full network fine-tuned after it.
    monkeypatch.setattr(callbacks.BestWeights, "_score", lambda self, record: (-self.epochs_seen,))
    run = tmp_path / "best-first"
    result = training.train(tiny(fine_tune_encoder=True, epochs=2, autoencoder_epochs=1), demo_dir, run)
    assert result.state == "done", result.error
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == 1
    keras.saving.load_model(run / "model.keras", safe_mode=True)


def test_the_encoder_fine_tunes_at_a_tenth_of_the_rate(tmp_path):
    trainer = training.Trainer(TrainConfig.from_dict({**TINY, "fine_tune_encoder": True, "epochs": 2,
                                                      "learning_rate": 0.003}), tmp_path / "run")
    assert [(phase.name, phase.learning_rate) for phase in trainer.phases()] == [
        ("head", 0.003), ("fine_tune_encoder", pytest.approx(0.0003))]
