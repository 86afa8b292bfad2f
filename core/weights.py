"""Where VGG16's pretrained weights come from, and whether they are there before a run starts.

Weights "imagenet" are looked for, in this order, in Keras's own cache (``~/.keras/models``, filled by
Keras's download or by ``python -m core fetch-weights``), in the server's file named by
$TRANSFER_STUDIO_WEIGHTS, and last downloaded through Keras. Weights "none" start at random; any other
value is the path of a VGG16 (no top) weights file, such as one a user uploaded.

Every message here is written for the person in front of the app: it never names a server path, a
download URL or a raw socket error, and it says what to do next.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core import runs

IMAGENET_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_NOTOP_BYTES = 58_889_256


class WeightsError(RuntimeError):
    """The requested pretrained weights cannot be had; the message says what to do instead."""


def imagenet_cache_path() -> Path:
    return Path(os.path.expanduser("~")) / ".keras" / "models" / IMAGENET_NOTOP_FILE


log = logging.getLogger(__name__)

SERVER_WEIGHTS_ENV = "TRANSFER_STUDIO_WEIGHTS"
SERVER_FILE_WORDS = "the server's VGG16 weights file"
FETCH_COMMAND = "python -m core fetch-weights"
# keras.applications downloads VGG16's weights from this host; a server that cannot reach it is offline
# for this purpose, whatever else it can reach.
KERAS_WEIGHTS_HOST = "storage.googleapis.com"
PROBE_TIMEOUT_SECONDS = 3.0
PROBE_KEEP_SECONDS = 60.0  # a page redraws often; ask the network at most once a minute
DOWNLOAD_WORDS = "downloading ImageNet VGG16 weights (58 MB, once)"
CHECK_SIZE = 32  # pixels: the conv weights do not depend on the input size, so check on the smallest
UPLOAD_STEM = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class WeightsStatus:
    """What a run with these weights would start from, known before it starts.

    ``state`` is "ready" (the file is on this server), "download" (Keras will download it at the start
    of the run) or "missing" (a run would fail: ``message`` says what to choose instead).
    ``source`` is "random", "cache", "server_file", "download", "file" or "none".
    """

    state: str
    source: str
    message: str

    @property
    def ready(self) -> bool:
        return self.state != "missing"


# ---------------------------------------------------------------------- the files

def cache_path() -> Path:
    """Where Keras keeps the ImageNet VGG16 (no top) weights, under the name it expects."""
    return imagenet_cache_path()


def server_file() -> Path | None:
    """The operator's weights file ($TRANSFER_STUDIO_WEIGHTS), or None when none is configured."""
    value = os.environ.get(SERVER_WEIGHTS_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _build(path: Path, image_size: int):
    import keras

    return keras.applications.VGG16(include_top=False, weights=str(path), input_shape=(image_size, image_size, 3))


def check_file(path: str | os.PathLike, name: str | None = None) -> None:
    """Raise WeightsError unless ``path`` is a loadable VGG16 (no top) weights file.

    ``name`` is how the message names the file (default: its file name, never its folder)."""
    path = Path(path)
    name = name or path.name
    if path.is_dir():
        raise WeightsError(f"the weights path {name} is a folder: give a VGG16 (no top) weights file, "
                           "or choose weights 'imagenet' or 'none'")
    if not path.is_file():
        raise WeightsError(f"weights file not found: {name}. Choose weights 'imagenet', 'none', "
                           "or a VGG16 (no top) weights file")
    if not path.name.endswith((".h5", ".hdf5", ".keras")):
        raise WeightsError(f"could not load {name}: a weights file ends in .h5 or .weights.h5")
    try:
        _build(path, CHECK_SIZE)
    except Exception as error:  # a wrong or corrupt file: say so instead of a loader traceback
        log.info("weights file %s does not load: %s", path, error)
        raise WeightsError(f"could not load {name}: it does not hold VGG16's convolution weights without the "
                           "top (include_top=False). Give such a file, or choose weights 'imagenet' or 'none'") from error


@lru_cache(maxsize=16)
def _usable(path: str, size: int, modified: float) -> bool:
    try:
        check_file(path)
        return True
    except WeightsError:
        return False


def usable(path: Path | None) -> bool:
    """True when ``path`` is a loadable weights file; checked once per version of the file."""
    try:
        info = path.stat() if path else None
    except OSError:
        return False
    return bool(info) and path.is_file() and _usable(str(path), info.st_size, info.st_mtime)


def imagenet_file() -> tuple[Path, str] | None:
    """(file, source) that weights "imagenet" load without a download: Keras's cache ("cache"), else
    the server's file ("server_file"); None when a run would have to download them."""
    if usable(cache_path()):
        return cache_path(), "cache"
    configured = server_file()
    if configured and usable(configured):
        return configured, "server_file"
    return None


# ---------------------------------------------------------------------- the network

_probe = {"time": 0.0, "result": False}


def _reach_host(timeout: float) -> bool:
    """Whether Keras's weights host answers on its port (the only place this module asks the network)."""
    with socket.create_connection((KERAS_WEIGHTS_HOST, 443), timeout=timeout):
        return True


def can_download() -> bool:
    """Whether this server can reach Keras's weights host now (asked at most once a minute; a name lookup
    that hangs counts as offline after a few seconds)."""
    now = time.monotonic()
    if _probe["time"] and now - _probe["time"] < PROBE_KEEP_SECONDS:
        return _probe["result"]
    answer = {"result": False}

    def ask():
        try:
            answer["result"] = _reach_host(PROBE_TIMEOUT_SECONDS)
        except OSError:
            answer["result"] = False

    asker = threading.Thread(target=ask, daemon=True)  # getaddrinfo itself has no timeout
    asker.start()
    asker.join(PROBE_TIMEOUT_SECONDS + 0.5)
    _probe.update(time=now, result=answer["result"])
    return answer["result"]


# ---------------------------------------------------------------------- before a run

def status(weights: str) -> WeightsStatus:
    """Whether a run with ``weights`` ("imagenet", "none", a file path, or "" for a file not yet given)
    can start, and where its weights would come from, in words."""
    if weights == "none":
        return WeightsStatus("ready", "random", "Random start (no pretrained weights needed).")
    if weights == "imagenet":
        found = imagenet_file()
        if found and found[1] == "cache":
            return WeightsStatus("ready", "cache", "The ImageNet weights are ready on this server.")
        if found:
            return WeightsStatus("ready", "server_file",
                                 f"The ImageNet choice uses {SERVER_FILE_WORDS}, which is ready.")
        broken = (f" ({SERVER_FILE_WORDS} is set up but cannot be loaded: ask whoever runs the server.)"
                  if server_file() else "")
        if can_download():
            return WeightsStatus("download", "download",
                                 "The ImageNet weights are not on this server yet: they download once (58 MB) "
                                 f"when training starts.{broken}")
        return WeightsStatus("missing", "none",
                             "The ImageNet weights are not on this server, and it cannot download them (no "
                             f"internet connection), so a run with them would fail.{broken}")
    if not weights:
        return WeightsStatus("missing", "none", "You chose a weights file, but none is uploaded yet.")
    if Path(weights).is_file():
        return WeightsStatus("ready", "file", "Your uploaded weights file is ready.")
    return WeightsStatus("missing", "none",
                         "Your weights file is no longer on the server (perhaps cleaned up): upload it again.")


# ---------------------------------------------------------------------- loading

def load_base(image_size: int, weights: str = "imagenet", progress=None):
    """keras.applications.VGG16 without its top, with weights "imagenet", "none" or a file path
    (what core.models.load_vgg16_base does). Raises WeightsError in plain words."""
    import keras

    shape = (image_size, image_size, 3)
    if weights == "none":
        return keras.applications.VGG16(include_top=False, weights=None, input_shape=shape)
    if weights == "imagenet":
        found = imagenet_file()
        if found:
            try:
                return _build(found[0], image_size)
            except Exception as error:  # changed since it was checked: download as Keras would
                log.info("weights %s stopped loading: %s", found[0], error)
        download(progress)
        return _build(cache_path(), image_size)
    if not weights:
        raise WeightsError("no weights file was given: upload a VGG16 (no top) weights file, or choose "
                           "weights 'imagenet' or 'none'")
    path = Path(weights).expanduser()
    try:
        return _build(path, image_size)
    except Exception:
        check_file(path)  # a folder, a missing or a wrong file: the WeightsError that says so in words
        raise


def download(progress=None) -> Path:
    """Download the ImageNet VGG16 (no top) weights through Keras into its cache; returns the cache path.

    Offline, raises WeightsError saying what to do (no URL, no socket error)."""
    import keras

    cache = cache_path()
    done = threading.Event()

    def watch_download():
        # Keras's get_file writes straight into the cache path; its size is the progress.
        while not done.wait(0.5):
            if cache.exists():
                progress(min(cache.stat().st_size / IMAGENET_NOTOP_BYTES, 0.99), DOWNLOAD_WORDS)

    if progress:
        progress(0.0, DOWNLOAD_WORDS)
        threading.Thread(target=watch_download, daemon=True).start()
    chatter = io.StringIO()
    try:
        # Keras prints the URL and a progress bar on stdout, which the CLI keeps for results.
        with contextlib.redirect_stdout(chatter):
            keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=(CHECK_SIZE, CHECK_SIZE, 3))
    except Exception as error:
        log.info("ImageNet weights download failed: %s", error)
        reachable = can_download()
        reason = ("the download failed" if reachable
                  else "this server cannot reach the internet")
        raise WeightsError(
            f"could not get the ImageNet VGG16 weights: {reason}. Choose weights 'none' (random start, learns "
            f"slowly) or a VGG16 (no top) weights file, or have the server prepared with `{FETCH_COMMAND}` "
            "(it can install a copy of the file with --from)") from error
    finally:
        done.set()
    if progress:
        progress(1.0, "ImageNet VGG16 weights ready")
    return cache


# ---------------------------------------------------------------------- preparing a server

def install(source: str | os.PathLike) -> Path:
    """Check that ``source`` is a VGG16 (no top) weights file and put it into Keras's cache under the
    name Keras expects, so weights "imagenet" work offline; returns the cache path.

    Keras's own file (.h5) is copied as it is; any other loadable file (a .weights.h5, say) is rewritten
    in that format, since Keras picks the reader by the file name."""
    source = Path(source)
    check_file(source)
    cache = cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=cache.parent, prefix=".installing-", suffix=".h5")
    os.close(handle)
    temporary = Path(temporary)
    try:
        if source.name.endswith(".weights.h5") or not source.name.endswith((".h5", ".hdf5")):
            _write_keras_h5(_build(source, CHECK_SIZE), temporary)
        else:
            shutil.copyfile(source, temporary)
        check_file(temporary, name=source.name)
        os.chmod(temporary, 0o644)
        os.replace(temporary, cache)
    finally:
        temporary.unlink(missing_ok=True)
    _usable.cache_clear()
    return cache


def _write_keras_h5(model, path: Path) -> None:
    """The weights in the layout of Keras's own VGG16 files (read by layer order, as Keras reads them)."""
    import h5py
    import keras

    with h5py.File(path, "w") as out:
        named = [layer for layer in model.layers if layer.weights]
        out.attrs["layer_names"] = [layer.name.encode("utf8") for layer in named]
        out.attrs["backend"] = keras.backend.backend().encode("utf8")
        out.attrs["keras_version"] = keras.__version__.encode("utf8")
        for layer in named:
            group = out.create_group(layer.name)
            names = [f"{layer.name}_{index}".encode("utf8") for index in range(len(layer.weights))]
            group.attrs["weight_names"] = names
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name.decode("utf8"), data=value)


# ---------------------------------------------------------------------- an uploaded file

def uploads_folder(owner: str) -> Path:
    """A session's uploaded weights files: workspace/weights/<owner>/."""
    return runs.workspace() / "weights" / owner


def save_upload(owner: str, filename: str, data: bytes) -> dict:
    """Keep an uploaded weights file for a session after checking it loads; returns {"path", "name"}.

    A file that is not VGG16 (no top) weights is removed again and raises WeightsError naming it by the
    name it was uploaded under."""
    shown = str(filename)[:80]
    stem = UPLOAD_STEM.sub("", shown.rsplit(".", 1)[0].removesuffix(".weights"))[:40] or "weights"
    suffix = ".weights.h5" if shown.endswith(".weights.h5") else ".h5"
    folder = uploads_folder(owner)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(4)}-{stem}{suffix}"
    runs.write_bytes_atomic(path, data)
    try:
        check_file(path, name=shown)
    except WeightsError:
        path.unlink(missing_ok=True)
        raise
    return {"path": str(path), "name": shown}
