"""Model builders: freeze depth, parameter counts, preprocessing in one place, weights errors, the split."""
import numpy as np
import pytest

import keras

from core import models


@pytest.mark.parametrize("freeze_depth", [0, 2, 5])
def test_freeze_depth_freezes_the_first_k_blocks(freeze_depth):
    split = models.build_vgg16_classifier(3, image_size=32, weights="none", freeze_depth=freeze_depth)
    for layer in split.full.layers:
        block = models.vgg16_layer_block(layer.name)
        if block is not None and layer.weights:
            assert layer.trainable == (block > freeze_depth), layer.name
    summary = models.freeze_summary(freeze_depth, 32, 3, "gap")
    trainable, frozen = models.count_params(split.full)
    assert trainable == summary["trainable_params"]
    assert frozen == summary["frozen_params"] + 12  # + the fixed 1x1 preprocessing conv
    assert [b["frozen"] for b in summary["blocks"]] == [b <= freeze_depth for b in range(1, 6)]


def test_block_parameter_counts_match_keras():
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    for row in models.block_param_counts():
        actual = sum(layer.count_params() for layer in base.layers if layer.name.startswith(row["name"] + "_"))
        assert actual == row["params"]
    assert sum(r["params"] for r in models.block_param_counts()) == base.count_params()


def test_head_parameter_counts():
    assert models.head_param_count("gap", 64, 4) == 512 * 4 + 4
    assert models.head_param_count("seed", 64, 4) == 2 * 2 * 512 * 1024 + 1024 + 1024 * 4 + 4
    split = models.build_vgg16_classifier(4, image_size=64, weights="none", head="seed")
    assert models.count_params(split.upper)[0] == models.head_param_count("seed", 64, 4)


def test_preprocessing_matches_keras_caffe_mode():
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    layer = models.caffe_preprocess_layer()
    np.testing.assert_allclose(np.asarray(layer(images)), expected, atol=1e-4)
    np.testing.assert_allclose(models.caffe_preprocess(images), expected, atol=1e-4)


@pytest.mark.parametrize("freeze_depth", [1, 3, 5])
def test_lower_then_upper_equals_full(freeze_depth):
    split = models.build_vgg16_classifier(3, image_size=32, weights="none", freeze_depth=freeze_depth, dropout=0)
    images = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    full = split.full.predict(images, verbose=0)
    features = split.lower.predict(images, verbose=0)
    assert features.shape[1:] == models.boundary_shape(freeze_depth, 32)
    np.testing.assert_allclose(split.upper.predict(features, verbose=0), full, atol=1e-5)


def test_augmentation_or_depth_zero_leaves_nothing_to_cache():
    assert models.build_vgg16_classifier(2, image_size=32, weights="none", freeze_depth=0).lower is None
    assert models.build_vgg16_classifier(2, image_size=32, weights="none", augment=True).lower is None


def test_offline_imagenet_fails_with_a_way_forward(tmp_path, monkeypatch):
    # A fresh home has no cached weights, and this machine has no internet: the real download fails.
    monkeypatch.setenv("HOME", str(tmp_path))
    if models.imagenet_cache_path().exists():
        pytest.skip("ImageNet weights are cached here")
    steps = []
    try:
        models.load_vgg16_base(32, "imagenet", progress=lambda f, m: steps.append(f))
    except models.WeightsError as error:
        text = str(error)
        assert "fetch-weights" in text and "'none'" in text  # what to do, in words
        assert "/" not in text and "Errno" not in text  # no server path, URL or socket error
        assert steps and steps[0] == 0.0  # the download announced itself before failing
    else:
        pytest.skip("this machine can reach the Keras weights host")


def test_missing_or_wrong_weights_file(tmp_path):
    with pytest.raises(models.WeightsError, match="not found"):
        models.load_vgg16_base(32, str(tmp_path / "nope.weights.h5"))
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(models.WeightsError, match="could not load"):
        models.load_vgg16_base(32, str(bad))


def test_saved_classifier_loads_in_safe_mode(tmp_path):
    split = models.build_vgg16_classifier(2, image_size=32, weights="none")
    split.full.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    images = np.full((1, 32, 32, 3), 128, dtype="float32")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), split.full.predict(images, verbose=0), atol=1e-6)


def test_reconstruction_loss_is_half_the_mean_per_image_squared_error():
    x = np.zeros((2, 4, 4, 3), dtype="float32")
    x_hat = np.ones((2, 4, 4, 3), dtype="float32")
    x_hat[1] *= 2
    # image 0: 48 * 1 = 48, image 1: 48 * 4 = 192 -> 0.5 * mean(48, 192) = 60
    assert float(models.reconstruction_loss(x, x_hat)) == pytest.approx(60.0)


def test_encoder_classifier_shares_the_autoencoder_encoder():
    autoencoder, encoder_layers = models.build_autoencoder(32)
    split = models.build_encoder_classifier(encoder_layers, 3, image_size=32)
    assert split.lower.output_shape[1:] == (4, 4, 128)
    assert all(not layer.trainable for layer in encoder_layers)
    assert split.full.get_layer("encoder_conv1") is autoencoder.get_layer("encoder_conv1")
