"""How a run's accuracy was measured, in the words every page and the report use.

A run's metrics.json says, under "evaluation", which pictures its accuracy comes from:

* "validation_split": pictures set aside before training (the manual recipe; recipe auto from 50 pictures
  a class). The model never saw them.
* "cross_validation": recipe auto with fewer pictures. Every picture trained the final model, so none is
  left to test it on; the accuracy is that of the chosen candidate's cross-validated predictions, each
  picture predicted by a model that did not see it.
* "held_out": the same, when fine-tuning won: the fine-tuning candidate's accuracy on the training
  pictures held out from its training (the final model then learned from them too).

Calling the last two "validation accuracy" would claim a test the run never made, so nothing outside this
module names the measure itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.runs import read_json

DEFAULT = "validation_split"   # runs written before metrics.json said how it measured


@dataclass(frozen=True)
class Measure:
    """One way of measuring a run's accuracy, in words."""

    evaluation: str    # the metrics.json value
    accuracy: str      # the run's accuracy named in a sentence: "cross-validated accuracy"
    short: str         # in a table cell beside the number: "cross-validated"
    pictures: str      # the pictures it was measured on: "validation pictures"
    data: str          # those pictures and their predictions, as core.evaluation's result["data"] says
    help: str          # one sentence on what the measure means, for a tooltip or a note

    @property
    def title(self) -> str:
        """The accuracy's name at the start of a line or as a label: "Cross-validated accuracy"."""
        return self.accuracy[:1].upper() + self.accuracy[1:]

    @property
    def explained(self) -> str:
        """The name and its meaning, one sentence: "Cross-validated accuracy: each picture was ... ."."""
        return f"{self.title}: {self.help}."

    def percent(self, value: float) -> str:
        """The accuracy in a sentence: "cross-validated accuracy 25%"."""
        return f"{self.accuracy} {value:.0%}"


MEASURES = {measure.evaluation: measure for measure in (
    Measure("validation_split", "validation accuracy", "validation", "validation pictures", "validation split",
            "measured on pictures set aside before training: the model never saw them"),
    Measure("cross_validation", "cross-validated accuracy", "cross-validated", "training pictures, cross-validated",
            "cross-validated predictions on the training pictures (each picture predicted by a model that did "
            "not see it)",
            "each picture was predicted by a model that did not see it; with this few pictures none were set "
            "aside, so every one of them trained the final model"),
    Measure("held_out", "accuracy on held-out training pictures", "held-out", "held-out training pictures",
            "training pictures held out from the chosen candidate's training",
            "the fine-tuning candidate was scored on training pictures held out from its training; the final "
            "model then learned from them too"),
)}


def measure(evaluation: str | None) -> Measure:
    """The Measure of a metrics.json "evaluation" value; the validation split when it is absent or unknown."""
    return MEASURES.get(evaluation, MEASURES[DEFAULT]) if isinstance(evaluation, str) else MEASURES[DEFAULT]


def evaluation_of(run_dir: str | os.PathLike) -> str:
    """The run's metrics.json "evaluation" ("validation_split" when the file or the field is missing)."""
    try:
        metrics = read_json(Path(run_dir) / "metrics.json")
    except (OSError, ValueError):  # unreadable (bad UTF-8, a folder in its place): say nothing special
        metrics = None
    value = metrics.get("evaluation") if isinstance(metrics, dict) else None
    return value if isinstance(value, str) and value in MEASURES else DEFAULT


def of_run(run_dir: str | os.PathLike) -> Measure:
    """How the run in ``run_dir`` measured its accuracy."""
    return MEASURES[evaluation_of(run_dir)]
