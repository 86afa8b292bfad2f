"""The classical heads' files: written and read in skops's format, never as a pickle.

A pickle runs its author's code when loaded, and a run's files travel (an exported bundle has exactly a
run's layout), so a classifier is stored with skops.io and loaded only when every type in it is one of
the few scikit-learn types our heads are made of. Anything else is refused in plain words.
"""
from __future__ import annotations

import os
from pathlib import Path

CLASSIFIER_FILE = "classifier.skops"
# The types a linear SVM (standardised, calibrated) or a random forest holds beyond skops's own defaults.
TRUSTED_TYPES = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",
)


class UntrustedClassifierError(RuntimeError):
    """A classifier file holds types this app does not load; the message says what to do."""


def save_classifier(estimator, run_dir: str | os.PathLike) -> Path:
    import skops.io

    path = Path(run_dir) / CLASSIFIER_FILE
    tmp = path.with_name(".tmp-" + path.name)
    skops.io.dump(estimator, tmp)
    os.replace(tmp, path)
    return path


def load_classifier(path: str | os.PathLike):
    """Load a classifier file, refusing any type outside TRUSTED_TYPES (and skops's safe defaults)."""
    import skops.io

    try:
        unknown = skops.io.get_untrusted_types(file=str(path))
    except Exception as error:
        raise UntrustedClassifierError(f"{Path(path).name} is not a readable classifier file "
                                       f"({type(error).__name__}): train the run again") from None
    refused = [name for name in unknown if name not in TRUSTED_TYPES]
    if refused:
        raise UntrustedClassifierError(f"{Path(path).name} holds types this app does not load "
                                       f"({', '.join(refused[:3])}): it was not made by this app's training")
    return skops.io.load(str(path), trusted=list(unknown))
