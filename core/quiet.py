"""Importing Keras without TensorFlow's native start-up chatter on stderr (the command line and warm workers)."""
from __future__ import annotations

import os
import sys


def import_keras_quietly() -> None:
    """Import Keras (and its backend) with the native start-up chatter kept off stderr.

    TensorFlow's C++ side prints a few lines ("All log messages before absl::InitializeLog() ...",
    "Could not find cuda drivers ...") before any log level applies; on the command line stderr is for
    progress and one-line errors, so file descriptor 2 points at /dev/null for the import alone. An
    import that fails still raises, and its error is printed as the usual one line.
    """
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import keras  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
