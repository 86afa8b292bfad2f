"""The one config object: defaults, JSON round-trip, the seed preset and one error listing every bad field."""
import math

import pytest

from core.config import ConfigError, TrainConfig, SEED_PRESET, field_names

NUMERIC_FIELDS = {
    "freeze_depth": (0, 5), "learning_rate": None, "momentum": None, "epochs": (1, 1000),
    "batch_size": (1, 1024), "image_size": (32, 224), "validation_fraction": None, "seed": None,
    "dropout": None, "patience": (1, 100), "head_epochs": (1, 1000), "cache_budget_mb": None,
    "autoencoder_epochs": (1, 1000), "autoencoder_learning_rate": None, "svm_c": None, "forest_trees": None,
}
CHOICE_FIELDS = ("model", "head", "optimizer", "resize_policy", "preset")


def test_defaults_are_valid_and_round_trip_through_json():
    config = TrainConfig().validate()
    again = TrainConfig.from_json(config.to_json())
    assert again == config
    assert config.freeze_depth == 4 and config.head == "gap" and config.image_size == 64
    assert config.learning_rate == pytest.approx(1e-4)  # measured defaults (README)


def test_the_defaults_are_the_ones_the_readme_promises():
    """The README's sentence on the manual defaults, read back into numbers, is the whole default config."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    sentence = " ".join(readme.split("The manual recipe's defaults are the fine-tune candidate's settings:", 1)[1]
                        .split(".\n", 1)[0].split())
    assert sentence == ("blocks 1-4 frozen, a GAP head, Adam at 1e-4, 20 epochs, batch size 32, 64 px, "
                        "a 20 % validation split")
    config = TrainConfig()
    assert (config.recipe, config.model, config.weights) == ("auto", "vgg16", "imagenet")
    assert (config.freeze_depth, config.head, config.optimizer, config.learning_rate, config.epochs,
            config.batch_size, config.image_size, config.validation_fraction) == (4, "gap", "adam", 1e-4, 20, 32,
                                                                                  64, 0.2)


def test_seed_preset_reproduces_the_seed_recipe():
    config = TrainConfig.from_dict({"preset": "seed", "weights": "none", "learning_rate": 0.5})
    assert config.head == "seed" and config.optimizer == "sgd" and config.freeze_depth == 5
    assert config.learning_rate == pytest.approx(1e-4) and config.momentum == pytest.approx(0.9)
    assert config.epochs == 10
    assert config.weights == "none"  # an explicit weights choice survives the preset
    assert TrainConfig.from_dict({"preset": "seed"}).weights == SEED_PRESET["weights"] == "imagenet"


ZERO_ALLOWED = ("freeze_depth", "seed", "momentum", "dropout")
BAD_NUMBERS = [
    (name, bad) for name in sorted(NUMERIC_FIELDS)
    for bad in [0, -1, math.nan, 1e12, "abc", [1], None] if not (bad == 0 and name in ZERO_ALLOWED)
]


@pytest.mark.parametrize("name,bad", BAD_NUMBERS)
def test_bad_numbers_name_the_field_and_what_is_allowed(name, bad):
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({name: bad})
    assert name in caught.value.problems
    message = caught.value.problems[name]
    assert repr(bad) in message or str(bad) in message
    assert "expected" in message


@pytest.mark.parametrize("name", CHOICE_FIELDS)
def test_unknown_choices_list_the_allowed_values(name):
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({name: "bogus"})
    assert name in caught.value.problems
    assert "allowed" in str(caught.value)


def test_one_error_lists_every_bad_field():
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"epochs": 0, "learning_rate": -1, "head": "xgboost", "image_size": 1000,
                               "augment": "maybe", "unknown_knob": 3})
    assert set(caught.value.problems) == {"epochs", "learning_rate", "head", "image_size", "augment",
                                          "unknown_knob"}
    text = str(caught.value)
    assert "32 to 224" in text and "gap" in text


def test_strings_from_the_cli_are_converted():
    config = TrainConfig.from_dict({"epochs": "3", "learning_rate": "1e-3", "augment": "true", "weights": "none"})
    assert config.epochs == 3 and config.learning_rate == 1e-3 and config.augment is True


def test_weights_must_be_a_choice_or_a_weights_file():
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"weights": "resnet"})
    assert "imagenet, none" in caught.value.problems["weights"]
    assert TrainConfig.from_dict({"weights": "/tmp/w.weights.h5"}).weights.endswith(".h5")


def test_unlabeled_images_belong_to_the_autoencoder():
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"unlabeled": "/data/x.zip"})
    assert "autoencoder" in caught.value.problems["unlabeled"]
    assert TrainConfig.from_dict({"model": "autoencoder", "unlabeled": "/data/x.zip"}).unlabeled


def test_cache_is_used_only_when_exact():
    assert TrainConfig(freeze_depth=3).uses_feature_cache
    assert not TrainConfig(freeze_depth=3, augment=True).uses_feature_cache
    assert not TrainConfig(freeze_depth=0).uses_feature_cache
    assert "learning_rate" in field_names()


def test_the_autoencoder_defaults_to_the_seed_head_unless_one_is_chosen():
    assert TrainConfig.from_dict({"model": "autoencoder"}).head == "seed"
    assert TrainConfig.from_dict({"model": "autoencoder", "head": "gap"}).head == "gap"
    assert TrainConfig.from_dict({}).head == "gap"  # VGG16 keeps the pooled head
    config = TrainConfig.from_dict({"model": "autoencoder"})
    assert TrainConfig.from_json(config.to_json()) == config


def test_a_large_step_on_pretrained_blocks_gets_advice():
    from core.config import learning_rate_advice

    advice = learning_rate_advice({"freeze_depth": 3, "learning_rate": 1e-3})
    assert advice and "Blocks 4-5 will train" in advice and "0.001" in advice and "0.0001" in advice
    assert learning_rate_advice({"freeze_depth": 4, "learning_rate": 1.6e-4}).startswith("Block 5 will train")
    assert learning_rate_advice({"freeze_depth": 3, "learning_rate": 1e-4}) is None
    assert learning_rate_advice({"freeze_depth": 5, "learning_rate": 1e-2}) is None  # only the head trains
    assert learning_rate_advice({"freeze_depth": 0, "learning_rate": 1e-3, "weights": "none"}) is None
    assert learning_rate_advice({"freeze_depth": 2, "learning_rate": 1e-3, "two_phase": True}) is None
    assert learning_rate_advice({"freeze_depth": "x"}) is None
