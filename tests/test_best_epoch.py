"""The best epoch is the one kept: a run whose first epoch scores best ends with that epoch's weights, in the
classifier (its validation loss and accuracy are the first epoch's, in metrics.json and in a fresh evaluation
of the saved model) and in the autoencoder's pretraining (the final reconstruction grid is the first epoch's).
One tiny autoencoder run (32 px, 2 pretraining and 2 classifier epochs) covers both restores."""
import json

import numpy as np
import pytest

from core import callbacks, evaluation, predict, runs, training
from core.config import TrainConfig


def test_the_first_epoch_scoring_best_is_the_one_kept(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks.BestWeights, "_score", lambda self, record: (-self.epochs_seen,))  # epoch 1 wins
    run = tmp_path / "run"
    config = TrainConfig.from_dict({"model": "autoencoder", "weights": "none", "image_size": 32, "seed": 1,
                                    "batch_size": 8, "epochs": 2, "autoencoder_epochs": 2, "learning_rate": 1e-3,
                                    "cache_features": False})  # Keras's val_loss on the network the model saves
    result = training.train(config, demo_dir, run)
    assert result.state == "done", result.error

    # the autoencoder: its final grid (drawn after the restore) is the first epoch's, not the second's
    grids = {name: (run / "reconstructions" / f"{name}.png").read_bytes() for name in ("epoch_001", "epoch_002", "final")}
    assert grids["epoch_001"] != grids["epoch_002"]  # the epochs differ, so the comparison below can fail
    assert grids["final"] == grids["epoch_001"]

    # the classifier: what the saved model does on the validation pictures is what epoch 1 measured
    epochs = [e for e in runs.read_all_events(run) if e["type"] == "epoch" and e["phase"] != "autoencoder"]
    first, second = epochs
    assert abs(first["val_loss"] - second["val_loss"]) > 1e-3  # the epochs differ here too
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == 1 and metrics["accuracy"] == pytest.approx(first["val_accuracy"])
    validation = evaluation.run_split(run)
    probabilities = predict.load_predictor(run).predict_proba(validation.images)
    picked = probabilities[np.arange(len(validation.labels)), validation.labels]
    loss = float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))
    assert loss == pytest.approx(first["val_loss"], rel=1e-4)
    assert evaluation.evaluate(run)["accuracy"] == pytest.approx(first["val_accuracy"])
