"""An experiment's linear probe (core.experiments.linear_probe) is scored on the validation pictures of its split.
With every validation label moved one class on, a picture is right under at most one of the two labellings, so
the two accuracies add up to at most 1 (scored on the training pictures instead, both would be near 1); the
training labels are the same, so the probe chooses the same regularization both times. Pretrained block-4
features (the offline VGG16), so that the probe learns something and the sum can be told from chance."""
import dataclasses

from core import experiments, ingest
from core.config import TrainConfig


def test_the_linear_probe_is_scored_on_the_validation_pictures(demo_dir, pretrained_weights):
    dataset = ingest.load_labeled(demo_dir, 32)
    split = ingest.split(dataset, 0.25, 0)
    validation = split[1]
    config = TrainConfig.from_dict({"weights": pretrained_weights, "image_size": 32, "seed": 0})
    true = experiments.linear_probe(config, dataset, split, 4)
    moved = dataset.labels.copy()
    moved[validation] = (moved[validation] + 1) % len(dataset.classes)
    shifted = experiments.linear_probe(config, dataclasses.replace(dataset, labels=moved), split, 4)
    assert true["regularization"] == shifted["regularization"]
    for result in (true, shifted):  # a share of the validation pictures
        assert abs(result["val_accuracy"] * len(validation) - round(result["val_accuracy"] * len(validation))) < 1e-3
    assert true["val_accuracy"] + shifted["val_accuracy"] <= 1.0, (true, shifted)
    assert true["val_accuracy"] >= 0.5  # chance is 0.25
