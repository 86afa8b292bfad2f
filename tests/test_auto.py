"""Recipe auto's parts: cross-validated linear candidates, the choice, and the Keras model that carries the fit."""
import numpy as np
import pytest

import keras

from core import auto, models


def _blobs(n_per_class=10, n_classes=3, dims=16, separation=3.0, seed=0):
    """Features where each class sits around its own centre; block 4 separates, block 3 is noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    centres = rng.normal(size=(n_classes, dims)) * separation
    informative = centres[labels] + rng.normal(size=(len(labels), dims))
    noise = rng.normal(size=(len(labels), dims))
    return {3: noise.astype("float32"), 4: informative.astype("float32")}, labels


def test_cross_validation_prefers_the_block_that_separates_the_classes():
    features, labels = _blobs()
    seen = []
    candidates = auto.score_linear(features, None, labels, n_classes=3, strengths=(0.1, 1.0),
                                   on_candidate=seen.append)
    assert [c.name for c in seen] == [c.name for c in candidates]  # announced as scored, in order
    assert len(candidates) == 4 and {c.block for c in candidates} == {3, 4}
    winner = candidates[auto.best(candidates)]
    assert winner.block == 4 and winner.cv_accuracy >= 0.9
    noise = [c for c in candidates if c.block == 3]
    assert max(c.cv_accuracy for c in noise) < 0.7  # chance is 1/3: scored on pictures the fit did not see
    assert winner.folds == 5 and winner.oof_probabilities.shape == (30, 3)
    np.testing.assert_allclose(winner.oof_probabilities.sum(1), 1.0, atol=1e-6)
    # the out-of-fold predictions are the ones the accuracy was computed from
    assert (winner.oof_probabilities.argmax(1) == labels).mean() == pytest.approx(winner.cv_accuracy, abs=0.05)


def test_folds_never_exceed_the_smallest_class():
    assert auto.n_folds(np.array([0, 0, 1, 1, 1, 1])) == 2
    assert auto.n_folds(np.repeat(np.arange(4), 3)) == 3
    assert auto.n_folds(np.repeat(np.arange(4), 30)) == 5


def test_ties_go_to_the_lower_log_loss_and_fine_tuning_must_beat_its_paired_baseline():
    a = auto.Candidate("a", "linear", 3, "avg", "logistic", 0.1, 0.9, 0.0, 5, None, 0.1, cv_log_loss=0.6)
    b = auto.Candidate("b", "linear", 4, "avg", "logistic", 0.1, 0.9, 0.0, 5, None, 0.1, cv_log_loss=0.4)
    c = auto.Candidate("c", "fine_tune", 5, "avg", "gap", None, 0.95, None, None, 24, 9.0, cv_log_loss=0.7,
                       baseline_accuracy=0.96, baseline_log_loss=0.3)
    # 95 % on 24 held-out pictures is above 90 % in cross-validation, but the linear head scored 96 % on
    # those same 24 pictures: the linear head stays
    assert auto.best([a, b, c]) == 1
    assert auto.reason([a, b, c], 1) == (
        "features from block 4 + a linear head: 90% in cross-validation, ahead of block 3 features at 90% "
        "(same accuracy, more confident predictions); fine-tuning block 5 scored 95% on 24 held-out training "
        "pictures, against 96% for the linear head")
    c.baseline_accuracy = 0.80
    assert auto.best([a, b, c]) == 2
    assert auto.reason([a, b, c], 2) == ("fine-tuning block 5: 95% on 24 held-out training pictures, where the "
                                         "best linear head scored 80% on the same pictures")
    c.baseline_accuracy, c.baseline_log_loss = 0.95, 0.8  # same accuracy: the more confident one wins
    assert auto.best([a, b, c]) == 2


def test_flipped_copies_are_extra_training_rows_with_the_same_labels():
    features, labels = _blobs(n_per_class=6)
    plain = auto.fit_linear(features[4], None, labels, 1.0, n_classes=3)
    doubled = auto.fit_linear(features[4], features[4], labels, 1.0, n_classes=3)
    # the same rows twice is the same data at half the regularization: the weights grow
    assert np.abs(doubled.coef).sum() > np.abs(plain.coef).sum()
    mirrored = auto.fit_linear(features[4], features[4][:, ::-1], labels, 1.0, n_classes=3)
    assert not np.allclose(mirrored.coef, plain.coef)


def test_a_binary_fit_becomes_a_two_way_softmax():
    features, labels = _blobs(n_classes=2)
    fit = auto.fit_linear(features[4], None, labels, 1.0, n_classes=2)
    from sklearn.linear_model import LogisticRegression

    x = (features[4] - fit.mean) / fit.scale
    reference = LogisticRegression(C=1.0, max_iter=300, tol=1e-3).fit(x, labels).predict_proba(x)
    np.testing.assert_allclose(fit.predict_proba(features[4]), reference, atol=1e-6)


def test_the_keras_model_computes_the_fitted_probabilities(tmp_path):
    """VGG16 to block 3 -> GAP -> sqrt -> Dense(fit) gives what the NumPy fit gives, and survives safe_mode loading."""
    base = models.load_vgg16_base(32, "none")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(12, 32, 32, 3)).astype("float32")
    labels = np.repeat(np.arange(3), 4)
    extractor = auto.feature_extractor(base, 32, keep_maps=4)
    features, maps = auto.extract(extractor, images, keep_maps=4, batch_size=5)
    assert set(features) == {3, 4, 5} and features[3].shape == (12, 256) and features[5].shape == (12, 512)
    assert maps.shape == (12, 2, 2, 512) and maps.dtype == np.float16
    assert (features[4] >= 0).all()  # square roots of averaged ReLU output
    flipped, _ = auto.extract(extractor, images, flip=True)
    assert not np.allclose(flipped[3], features[3])
    fit = auto.fit_linear(features[3], flipped[3], labels, 0.1, n_classes=3)
    model = auto.build_linear_classifier(base, 3, fit, image_size=32, n_classes=3)
    chain = auto.mirror_chain(model)
    assert chain is not None and "block4_conv1" not in [layer.name for layer in chain.layers]
    # the chain answers for the picture as it is; the model averages that with the mirror image's answer
    np.testing.assert_allclose(chain.predict(images, verbose=0), fit.predict_proba(features[3]), atol=1e-4)
    expected = fit.predict_proba(features[3], flipped[3])
    assert not np.allclose(expected, fit.predict_proba(features[3]), atol=1e-3)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-4)
    np.testing.assert_allclose(model.predict(images[:, :, ::-1], verbose=0), expected, atol=1e-4)  # mirror-blind
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-4)
    assert auto.mirror_chain(loaded) is not None
