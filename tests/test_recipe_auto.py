"""Recipe auto end to end: the default run scores candidates, keeps the best, and leaves an ordinary run."""
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from core import auto, evaluation, predict, runs, training
from core.config import ConfigError, TrainConfig

TINY = {"weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8, "seed": 1}


def read(run, name):
    return json.loads((run / name).read_text())


def test_the_default_is_auto_and_explicit_settings_mean_manual():
    assert TrainConfig().recipe == "auto"
    assert TrainConfig.from_dict({"epochs": 3, "image_size": 48}).recipe == "auto"
    for explicit in ({"freeze_depth": 3}, {"head": "svm"}, {"learning_rate": 1e-3}, {"optimizer": "sgd"},
                     {"preset": "seed"}, {"model": "autoencoder"}, {"two_phase": True}, {"augment": True}):
        assert TrainConfig.from_dict(explicit).recipe == "manual", explicit
    assert TrainConfig.from_dict({"recipe": "auto", "freeze_depth": 3}).recipe == "auto"
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"recipe": "auto", "model": "autoencoder"})
    assert "recipe" in caught.value.problems and "manual" in caught.value.problems["recipe"]
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"recipe": "best"})
    assert "auto, manual" in caught.value.problems["recipe"]


def test_an_auto_run_scores_candidates_and_leaves_an_ordinary_run(demo_dir, tmp_path):
    run = tmp_path / "run"
    result = training.train(TrainConfig.from_dict(TINY), demo_dir, run)
    assert result.state == "done", result.error
    # 8 pictures a class: no validation split, every picture trains the final model
    dataset = read(run, "dataset.json")
    assert dataset["split"]["validation"] == [] and len(dataset["split"]["train"]) == 32
    board = read(run, "candidates.json")
    linear = [c for c in board["candidates"] if c["kind"] == "linear"]
    assert len(linear) == len(auto.FEATURE_BLOCKS) * len(auto.STRENGTHS)
    assert not [c for c in board["candidates"] if c["kind"] == "fine_tune"]  # too few pictures to try it
    keys = [(c["cv_accuracy"], -c["cv_log_loss"]) for c in board["candidates"]]
    assert board["chosen"] == keys.index(max(keys))
    winner = board["candidates"][board["chosen"]]
    assert board["reason"].startswith(f"features from block {winner['block']} + a linear head")
    assert board["evaluation"] == "cross_validation" and "5-fold cross-validation on the 32" in board["scoring"]
    events = runs.read_all_events(run)
    announced = [e for e in events if e["type"] == "candidate"]
    assert [e["name"] for e in announced] == [c["name"] for c in board["candidates"]]
    assert [e for e in events if e["type"] == "recipe"][0]["chosen"] == board["chosen"]
    phases = [e["name"] for e in events if e["type"] == "phase"]
    assert phases == ["load_data", "build_model", "feature_cache", "candidates", "final_fit", "save"]
    # the metrics are the chosen candidate's cross-validated predictions, over every picture
    metrics = read(run, "metrics.json")
    assert metrics["evaluation"] == "cross_validation" and metrics["n"] == 32
    assert metrics["accuracy"] == pytest.approx(winner["cv_accuracy"], abs=0.07)
    assert runs.read_status(run)["val_accuracy"] == metrics["accuracy"] == result.val_accuracy
    # the model is a plain Keras model: the mean of a chain (VGG16 up to the chosen block, pooling, one
    # Dense layer) over the picture and its mirror image
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    names = [layer.name for layer in auto.mirror_chain(model).layers]
    assert f"block{winner['block']}_conv3" in names and names[-1] == "predictions"
    assert f"block{winner['block'] + 1}_conv1" not in names
    # the Evaluate page's default view is those same held-out predictions, with their pictures
    shown = evaluation.evaluate(run)
    assert shown["confusion_matrix"] == metrics["confusion_matrix"]
    assert shown["data"].startswith("cross-validated predictions")
    # and the model predicts, explains and ranks like any run's
    predictor = predict.load_predictor(run)
    assert predictor.feature_layer == f"block{winner['block']}_conv3"
    first = sorted(Path(demo_dir).glob("*/*"))[0]
    row = predict.predict_files(run, [(first.name, first.read_bytes())])[0]
    assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_enough_pictures_keep_a_validation_split(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(auto, "FEW_PER_CLASS", 5)
    run = tmp_path / "run"
    result = training.train(TrainConfig.from_dict({**TINY, "validation_fraction": 0.25}), demo_dir, run)
    assert result.state == "done", result.error
    dataset = read(run, "dataset.json")
    assert len(dataset["split"]["validation"]) == 8 and len(dataset["split"]["train"]) == 24
    metrics = read(run, "metrics.json")
    assert metrics["evaluation"] == "validation_split" and metrics["n"] == 8
    assert read(run, "candidates.json")["evaluation"] == "validation_split"
    assert not (run / training.HELD_OUT_PREDICTIONS).exists()
    assert evaluation.evaluate(run)["accuracy"] == pytest.approx(metrics["accuracy"])


def test_fine_tuning_is_a_candidate_when_every_class_has_enough_pictures(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(auto, "FINE_TUNE_MIN_PER_CLASS", 8)
    run = tmp_path / "run"
    result = training.train(TrainConfig.from_dict({**TINY, "epochs": 2}), demo_dir, run)
    assert result.state == "done", result.error
    board = read(run, "candidates.json")
    tuned = [c for c in board["candidates"] if c["kind"] == "fine_tune"]
    assert len(tuned) == 1 and tuned[0]["held_out"] == 8 and tuned[0]["block"] == 5
    assert 0.0 <= tuned[0]["baseline_accuracy"] <= 1.0 and tuned[0]["baseline_log_loss"] > 0
    chosen = board["candidates"][board["chosen"]]
    beats_baseline = (tuned[0]["cv_accuracy"], -tuned[0]["cv_log_loss"]) > (tuned[0]["baseline_accuracy"],
                                                                           -tuned[0]["baseline_log_loss"])
    assert (chosen["kind"] == "fine_tune") == beats_baseline
    assert "held-out" in board["scoring"]
    events = runs.read_all_events(run)
    candidate_epochs = [e for e in events if e["type"] == "epoch" and e["phase"] == "fine_tune_candidate"]
    assert [e["epoch"] for e in candidate_epochs] == [1, 2]


def test_fine_tuning_wins_when_it_scores_best(demo_dir, tmp_path, monkeypatch):
    """Force the fine-tune candidate to the top: the final model is then block 5 + GAP head, trained on all."""
    monkeypatch.setattr(auto, "FINE_TUNE_MIN_PER_CLASS", 8)
    real_best = auto.best
    monkeypatch.setattr(auto, "best", lambda candidates: next(
        (i for i, c in enumerate(candidates) if c.kind == "fine_tune"), real_best(candidates)))
    run = tmp_path / "run"
    result = training.train(TrainConfig.from_dict(TINY), demo_dir, run)
    assert result.state == "done", result.error
    board = read(run, "candidates.json")
    assert board["candidates"][board["chosen"]]["kind"] == "fine_tune"
    assert board["evaluation"] == "held_out"
    names = [layer.name for layer in keras.saving.load_model(run / "model.keras", safe_mode=True).layers]
    assert "block5_conv3" in names and "head_pool" in names
    final = [e for e in runs.read_all_events(run) if e["type"] == "epoch" and e["phase"] == "final_fit"]
    assert len(final) == 1
    metrics = read(run, "metrics.json")
    assert metrics["evaluation"] == "held_out" and metrics["n"] == 8
    assert evaluation.evaluate(run)["confusion_matrix"] == metrics["confusion_matrix"]


def test_a_stop_during_scoring_still_leaves_the_best_model_so_far(demo_dir, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real_score = auto.score_linear

    def stop_after_two(*args, on_candidate=None, should_stop=None, **kwargs):
        def announce(candidate):
            on_candidate(candidate)
            if candidate.block == 3 and candidate.regularization == auto.STRENGTHS[1]:
                runs.request_stop(run)
        return real_score(*args, on_candidate=announce, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(auto, "score_linear", stop_after_two)
    result = training.train(TrainConfig.from_dict(TINY), demo_dir, run)
    assert result.state == "stopped"
    board = read(run, "candidates.json")
    assert len(board["candidates"]) == 2
    assert (run / "model.keras").exists() and read(run, "metrics.json")["n"] == 32


def test_the_auto_steps_one_by_one(demo_dir, tmp_path):
    """auto_features, score_candidates and fit_winner, called alone as a notebook would."""
    trainer = training.Trainer(TrainConfig.from_dict(TINY), tmp_path / "run")
    loaded = trainer.load(demo_dir)
    features = trainer.auto_features(loaded)
    assert {block: part.shape for block, part in features.train.items()} == {3: (32, 256), 4: (32, 512),
                                                                           5: (32, 512)}
    assert features.flipped[3].shape == (32, 256) and not np.allclose(features.flipped[3], features.train[3])
    assert features.train_maps is None  # 8 pictures a class: no fine-tune candidate, no maps kept
    board = trainer.score_candidates(loaded, features)
    assert len(board.candidates) == 9 and board.evaluation == "cross_validation" and not board.stopped
    assert (tmp_path / "run" / "candidates.json").exists()
    network, outcome = trainer.fit_winner(loaded, features, board)
    winner = board.candidates[board.chosen]
    np.testing.assert_allclose(outcome.val_probabilities, winner.oof_probabilities)
    assert list(outcome.metric_labels) == list(loaded.y_train)
    images = loaded.x_train[:4].astype("float32")
    fit = auto.fit_linear(features.train[winner.block], features.flipped[winner.block], loaded.y_train,
                          winner.regularization, n_classes=4)
    np.testing.assert_allclose(network.full.predict(images, verbose=0),
                               fit.predict_proba(features.train[winner.block][:4],
                                                 features.flipped[winner.block][:4]), atol=1e-4)


def test_a_winning_fine_tune_keeps_its_best_epoch_and_is_the_model_it_trained(demo_dir, tmp_path, monkeypatch):
    """With a validation split, fine-tuning's final fit keeps its best epoch (here forced to be the first): the
    saved model's validation loss is that epoch's. Random weights on purpose: the saved network's frozen blocks
    1-4 must be the ones that computed the cached maps it trained on (a VGG16 built afresh draws others)."""
    from core import callbacks

    monkeypatch.setattr(auto, "FEW_PER_CLASS", 5)
    monkeypatch.setattr(auto, "FINE_TUNE_MIN_PER_CLASS", 6)
    real_best = auto.best
    monkeypatch.setattr(auto, "best", lambda candidates: next(
        (i for i, c in enumerate(candidates) if c.kind == "fine_tune"), real_best(candidates)))
    monkeypatch.setattr(callbacks.BestWeights, "_score", lambda self, record: (-self.epochs_seen,))  # epoch 1 wins
    monkeypatch.setattr(training, "FINE_TUNE_LEARNING_RATE", 1e-2)  # so that the epochs differ
    run = tmp_path / "run"
    result = training.train(TrainConfig.from_dict({**TINY, "epochs": 3, "validation_fraction": 0.25}), demo_dir, run)
    assert result.state == "done", result.error
    board = read(run, "candidates.json")
    assert board["candidates"][board["chosen"]]["kind"] == "fine_tune" and board["evaluation"] == "validation_split"
    final = [e for e in runs.read_all_events(run) if e["type"] == "epoch" and e["phase"] == "final_fit"]
    assert len(final) == 3 and abs(final[0]["val_loss"] - final[-1]["val_loss"]) > 1e-3
    validation = evaluation.run_split(run)
    probabilities = predict.load_predictor(run).predict_proba(validation.images)
    picked = probabilities[np.arange(len(validation.labels)), validation.labels]
    assert float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0)))) == pytest.approx(final[0]["val_loss"], rel=1e-2)
