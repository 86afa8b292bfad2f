"""A real-photo demo beside the generated shapes: TensorFlow's flower photos, downloaded once through Keras.

``keras.utils.get_file`` fetches the archive (about 220 MB, 3,670 photos of daisies, dandelions, roses,
sunflowers and tulips; the Keras and TensorFlow tutorials' own example) into Keras's cache
(``~/.keras/datasets``) and unpacks it; later calls use the cache and need no network. A demo dataset is a
few photos a class, picked evenly over each class's sorted files, read through ``core.ingest`` like any
folder (so the same limits and checks apply).

``TRANSFER_STUDIO_PHOTO_DEMO_URL`` replaces the download address: an operator's mirror, or a local
``file://`` archive in tests. Without the network (and nothing cached) ``PhotoDemoUnavailable`` says so
in plain words, with the way forward.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

from core import ingest

ORIGIN = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
URL_ENV = "TRANSFER_STUDIO_PHOTO_DEMO_URL"
ARCHIVE_NAME = "flower_photos.tgz"  # Keras unpacks it into flower_photos_extracted/ in its datasets cache
ABOUT_MB = 220
TITLE = "Flower photos (TensorFlow's example set)"
CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
DEFAULT_PER_CLASS = 30

ProgressFn = Callable[[float, str], None]


class PhotoDemoUnavailable(RuntimeError):
    """The photos are neither cached nor reachable; the message says what to do."""


def origin() -> str:
    return os.environ.get(URL_ENV) or ORIGIN


def keras_datasets() -> Path:
    """Keras's datasets cache, beside the models cache the weights use (core.models)."""
    return Path(os.path.expanduser("~")) / ".keras" / "datasets"


def cached_root() -> Path | None:
    """The unpacked photos' class folders when they are in Keras's cache already, else None."""
    base = keras_datasets() / "flower_photos_extracted"
    return _class_root(base) if base.is_dir() else None


def fetch(progress: ProgressFn | None = None) -> Path:
    """The folder of class folders, downloaded and unpacked on first use (Keras's cache after that)."""
    cached = cached_root()
    if cached is not None:
        return cached
    import keras

    stop = threading.Event()
    # Keras falls back to /tmp/.keras when its cache folder is missing: make it, so the photos stay put
    keras_datasets().mkdir(parents=True, exist_ok=True)
    target = keras_datasets() / ARCHIVE_NAME
    watcher = threading.Thread(target=_watch, args=(target, stop, progress), daemon=True) if progress else None
    if watcher:
        watcher.start()
    try:
        extracted = keras.utils.get_file(fname=ARCHIVE_NAME, origin=origin(), extract=True,
                                         cache_dir=str(keras_datasets().parent))
    except Exception:  # network, HTTP, a broken archive: one plain sentence, never the URL or errno
        raise PhotoDemoUnavailable(
            "the flower photos could not be downloaded (this server cannot reach the download, or it was cut "
            "off): use the generated shapes, or ask the operator to run `python -m core photo-demo` on this "
            "server once while it can reach the internet") from None
    finally:
        stop.set()
        if watcher:
            watcher.join(timeout=2)
    root = _class_root(Path(extracted))
    if root is None:
        raise PhotoDemoUnavailable("the downloaded flower photos do not hold the expected class folders: "
                                   "delete ~/.keras/datasets/flower_photos* on the server and try again")
    if progress:
        progress(1.0, "downloaded")
    return root


def as_dataset(per_class: int = DEFAULT_PER_CLASS, size: int = 64, progress: ProgressFn | None = None,
               policy: str = "center_crop") -> ingest.Dataset:
    """``per_class`` photos of each flower at ``size`` pixels, read through core.ingest."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 2:
        raise ValueError(f"per_class must be an integer of at least 2; got {per_class!r}")
    root = fetch(progress)
    with tempfile.TemporaryDirectory(prefix="photo-demo-") as scratch:
        for folder in sorted(path for path in root.iterdir() if path.is_dir() and not path.is_symlink()):
            files = sorted(path for path in folder.iterdir() if path.is_file() and not path.is_symlink())
            chosen = files if len(files) <= per_class else [
                files[round(index * (len(files) - 1) / (per_class - 1))] for index in range(per_class)]
            (Path(scratch) / folder.name).mkdir()
            for path in chosen:
                shutil.copyfile(path, Path(scratch) / folder.name / path.name)
        dataset = ingest.from_folder(scratch, size, policy=policy)
    return dataset


def _class_root(base: Path) -> Path | None:
    """``base`` or the one folder inside it (the archive's own flower_photos/) that holds class folders."""
    for candidate in (base, base / "flower_photos"):
        if candidate.is_dir() and sum((candidate / name).is_dir() for name in CLASSES) == len(CLASSES):
            return candidate
    return None


def _watch(target: Path, stop: threading.Event, progress: ProgressFn) -> None:
    """Report the download's size as it grows (Keras's own progress bar prints to the terminal only)."""
    while not stop.wait(0.5):
        try:
            got = target.stat().st_size / 2**20
        except OSError:
            continue
        progress(min(got / ABOUT_MB, 0.99), f"downloading the flower photos: {got:.0f} of about {ABOUT_MB} MB")
