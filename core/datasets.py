"""A session's labeled datasets as a teacher works on them: save one, start an empty one, add pictures to a
named class, add, rename or delete a class, delete a picture, and list the classes with their pictures;
and the unlabeled sets the autoencoder learns from.

A dataset is a folder as ``ingest.save_dataset`` writes it: ``<class>/<number>.png`` and ``manifest.json``
(classes, counts, skipped, image_size, source: the dataset's name, files). A folder is never changed once
written: every edit writes a new version beside it in the session's datasets folder, built under a
temporary name (``<id>.tmp``) and renamed into place, its unchanged pictures hard-linked from the version
before (copied where a link cannot be made). So a run training on an earlier version is never disturbed, a
load cached by folder path stays right, and the newest folder is the session's current dataset after a
reload. Version ids sort in the order they were made, even for several edits within one second.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from core import ingest
from core.images import IMAGE_EXTENSIONS, load_image

MAX_NAME = 100            # characters of a dataset's name
DEFAULT_NAME = "My pictures"


class DatasetEditError(ValueError):
    """An edit that cannot be made (a bad or taken class name, a class or picture that is not there); the
    message says what to do instead."""


@dataclass(frozen=True)
class ClassCard:
    """One class of a dataset: its name and its pictures (paths relative to the dataset folder,
    "cats/00003.png", in the order training reads them)."""

    name: str
    pictures: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.pictures)


@dataclass(frozen=True)
class Added:
    """What ``add_pictures`` did: the folder now current (a new version, or the old one when nothing was
    kept), how many pictures were added, and each file left out with the reason."""

    folder: Path
    added: int
    skipped: list[dict]


def count_words(count: int, noun: str = "picture") -> str:
    """"1 picture", "2 pictures", "0 pictures"; "1 class", "3 classes"."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}" + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def checked_class_name(name) -> str:
    """``name`` as it will be stored (stripped, NFC), or DatasetEditError saying what breaks the one rule for
    class names (``ingest.class_name_problem``)."""
    try:
        return ingest.checked_class_name(name)
    except ingest.DatasetError as error:
        raise DatasetEditError(str(error)) from None


# ---------------------------------------------------------------------------------------------------
# Whole datasets


def new_id(root: str | os.PathLike) -> str:
    """A new version's folder name under ``root``: the time, and later in sort order than every folder
    already there (so the newest is found by sorting, even within one second or after a clock step back)."""
    root = Path(root)
    candidate = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    existing = [p.name for p in root.iterdir() if "." not in p.name] if root.is_dir() else []
    newest = max(existing, default="")
    if candidate <= newest:
        candidate = f"{newest}{secrets.token_hex(1)}"  # newest is a prefix of it, so it sorts after
    return candidate


def save(dataset: ingest.Dataset, root: str | os.PathLike, name: str) -> Path:
    """Write a loaded Dataset (labeled or unlabeled) as a new folder under ``root``; return the folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / new_id(root)
    ingest.save_dataset(dataset, str(folder), source=_checked_name(name))
    return folder


UNLABELED_NAME = "unlabeled upload"


def read_unlabeled(files: Iterable[tuple[str, bytes]], image_size: int, *, policy: str = "center_crop",
                   progress: Callable | None = None) -> ingest.Dataset:
    """Pictures without labels from uploaded (file name, bytes) pairs: the first zip among them (pictures
    at any depth), else every file; labels all -1. Files that are not usable pictures are skipped, each
    with its reason (an empty result means none was usable)."""
    files = list(files)
    zips = [(name, data) for name, data in files if name.lower().endswith(".zip")]
    if zips:
        return ingest.load_unlabeled(zips[0][1], image_size, policy=policy, progress=progress)
    labeled = ingest.from_uploads([(name, data, "unlabeled") for name, data in files], image_size,
                                  policy=policy, progress=progress)
    return ingest.Dataset(labeled.images, np.full(len(labeled.images), -1, dtype=np.int64), [],
                          labeled.paths, labeled.skipped, labeled.image_size)


def save_unlabeled(dataset: ingest.Dataset, workspace: str | os.PathLike, owner: str) -> Path:
    """Keep an unlabeled set under the owner's unlabeled folder of the workspace; return its folder."""
    return save(dataset, Path(workspace) / "unlabeled" / owner, UNLABELED_NAME)


def create(root: str | os.PathLike, name: str, image_size: int) -> Path:
    """Start a new, empty dataset called ``name`` (its pictures will be stored at ``image_size`` pixels)
    under ``root``; return its folder. Classes and pictures are added with the edits below."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer number of pixels; got {image_size!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"classes": [], "counts": {}, "skipped": [], "image_size": int(image_size),
                "source": _checked_name(name), "files": []}
    return _write_version(root, {}, manifest, source_folder=None)


def name_of(folder: str | os.PathLike) -> str:
    """The dataset's name as saved in its manifest (the folder's name when it has none)."""
    folder = Path(folder)
    return str(_manifest(folder).get("source") or folder.name)


def class_cards(folder: str | os.PathLike) -> list[ClassCard]:
    """The dataset's classes in order (sorted, as training numbers them), empty classes included."""
    folder = Path(folder)
    cards = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            pictures = sorted(f"{entry.name}/{picture.name}" for picture in os.scandir(entry.path)
                              if picture.is_file(follow_symlinks=False) and _is_picture(picture.name))
            cards.append(ClassCard(entry.name, tuple(pictures)))
    return cards


def thumbnail(folder: str | os.PathLike, picture: str, size: int) -> np.ndarray:
    """One picture of the dataset as a ``size`` x ``size`` uint8 RGB array."""
    return load_image(_picture_path(Path(folder), picture).read_bytes(), size, "center_crop")


# ---------------------------------------------------------------------------------------------------
# Edits: each returns the new version's folder (beside ``folder``, which is left as it was)


def add_pictures(folder: str | os.PathLike, class_name: str, files: Iterable[tuple[str, bytes]], *,
                 policy: str = "center_crop", limits: ingest.Limits | None = None,
                 progress: Callable[[float, str], None] | None = None) -> Added:
    """Add uploaded or camera pictures, ``(file name, bytes)`` pairs, to the class ``class_name`` (made if it
    is new). Files are judged by content; each one that is not a usable picture is skipped with the reason,
    and the good ones are kept. With nothing kept, no new version is written."""
    folder = Path(folder)
    class_name = checked_class_name(class_name)
    manifest = _manifest(folder)
    loaded = ingest.from_uploads([(file_name, data, class_name) for file_name, data in files],
                                 int(manifest.get("image_size") or 0) or _stored_size(folder), policy=policy,
                                 limits=limits, progress=progress)
    if len(loaded.images) == 0:
        return Added(folder, 0, list(loaded.skipped))
    layout = _layout(folder)
    entries = layout.setdefault(class_name, [])
    number = _next_number(entries)
    for offset, (picture, source) in enumerate(zip(loaded.images, loaded.paths)):
        entries.append(_Entry(f"{number + offset:05d}.png", source, picture=picture))
    return Added(_write_version(folder.parent, layout, manifest, folder), int(len(loaded.images)),
                 list(loaded.skipped))


def add_class(folder: str | os.PathLike, class_name: str) -> Path:
    """Add an empty class (pictures come later, by upload or camera)."""
    folder = Path(folder)
    class_name = checked_class_name(class_name)
    layout = _layout(folder)
    if class_name in layout:
        raise DatasetEditError(f'there is already a class called "{class_name}": pick another name')
    layout[class_name] = []
    return _write_version(folder.parent, layout, _manifest(folder), folder)


def rename_class(folder: str | os.PathLike, old_name: str, new_name: str) -> Path:
    """Give the class ``old_name`` the name ``new_name`` (the same rule as every class name)."""
    folder = Path(folder)
    layout = _layout(folder)
    _require_class(layout, old_name)
    new_name = checked_class_name(new_name)
    if new_name == old_name:
        raise DatasetEditError(f'the class is already called "{new_name}"')
    if new_name in layout:
        raise DatasetEditError(f'there is already a class called "{new_name}": pick another name, or delete '
                               "that class first")
    layout = {(new_name if name == old_name else name): entries for name, entries in layout.items()}
    return _write_version(folder.parent, layout, _manifest(folder), folder)


def delete_class(folder: str | os.PathLike, class_name: str) -> Path:
    """Remove a class and its pictures from the dataset."""
    folder = Path(folder)
    layout = _layout(folder)
    _require_class(layout, class_name)
    del layout[class_name]
    return _write_version(folder.parent, layout, _manifest(folder), folder)


def delete_picture(folder: str | os.PathLike, picture: str) -> Path:
    """Remove one picture ("cats/00003.png", as ``class_cards`` lists it); its class stays, even if empty."""
    folder = Path(folder)
    _picture_path(folder, picture)
    class_name, file_name = picture.split("/")
    layout = _layout(folder)
    layout[class_name] = [entry for entry in layout[class_name] if entry.file != file_name]
    return _write_version(folder.parent, layout, _manifest(folder), folder)


# ---------------------------------------------------------------------------------------------------
# Internals


@dataclass
class _Entry:
    """One picture of a version being written: its file name in the class folder, where it first came from,
    and either its pixels (new) or its path in the previous version (kept, linked)."""

    file: str
    source: str | None
    picture: np.ndarray | None = None
    kept_from: str | None = None


def _is_picture(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _checked_name(name) -> str:
    name = " ".join(str(name if name is not None else "").split())
    if not name:
        return DEFAULT_NAME
    return name[:MAX_NAME]


def _manifest(folder: Path) -> dict:
    try:
        with open(folder / ingest.MANIFEST_NAME, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise DatasetEditError("that dataset is not there any more: load or start a dataset again") from None
    except ValueError:
        manifest = {}
    return manifest if isinstance(manifest, dict) else {}


def _stored_size(folder: Path) -> int:
    """The pixel size of a dataset whose manifest does not say: that of its first picture (256 if none)."""
    for card in class_cards(folder):
        for picture in card.pictures:
            with Image.open(folder / picture) as image:
                return int(image.size[0])
    return 256


def _layout(folder: Path) -> dict[str, list[_Entry]]:
    """The current version as {class: entries kept from it}, sources taken from the manifest."""
    sources = {item.get("file"): item.get("source") for item in _manifest(folder).get("files") or []
               if isinstance(item, dict)}
    return {card.name: [_Entry(picture.split("/", 1)[1], sources.get(picture), kept_from=picture)
                        for picture in card.pictures]
            for card in class_cards(folder)}


def _require_class(layout: dict, class_name: str) -> None:
    if class_name not in layout:
        raise DatasetEditError(f'there is no class called "{class_name}" in this dataset any more: '
                               "reload the page to see it as it is")


def _picture_path(folder: Path, picture: str) -> Path:
    """The file of a picture named as ``class_cards`` names it; anything else (another folder, the manifest,
    a path that climbs out) is refused."""
    parts = str(picture).split("/")
    if (len(parts) != 2 or any(part in ("", ".", "..") or part.startswith(".") for part in parts)
            or "\\" in str(picture) or not _is_picture(parts[1])):
        raise DatasetEditError(f'"{picture}" is not a picture of this dataset')
    path = folder / parts[0] / parts[1]
    if not path.is_file() or path.is_symlink():
        raise DatasetEditError(f'the picture "{picture}" is not in this dataset any more: reload the page')
    return path


def _next_number(entries: list[_Entry]) -> int:
    numbers = [int(stem) for stem in (os.path.splitext(entry.file)[0] for entry in entries) if stem.isdigit()]
    return max(numbers, default=-1) + 1


def _write_version(root: Path, layout: dict[str, list[_Entry]], manifest: dict, source_folder: Path | None) -> Path:
    """Write ``layout`` as a new version under ``root``, atomically: a temporary folder renamed into place."""
    target = root / new_id(root)
    temporary = Path(str(target) + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    classes = sorted(layout)
    files = []
    try:
        temporary.mkdir(parents=True)
        for class_name in classes:
            (temporary / class_name).mkdir()
            for entry in layout[class_name]:
                destination = temporary / class_name / entry.file
                if entry.picture is not None:
                    # low compression, as ingest.save_dataset: written once, read once per run
                    Image.fromarray(np.asarray(entry.picture, dtype=np.uint8)).save(destination, compress_level=1)
                else:
                    _link_or_copy(source_folder / entry.kept_from, destination)
                files.append({"file": f"{class_name}/{entry.file}", "source": entry.source})
        manifest = {**manifest, "classes": classes,
                    "counts": {name: len(layout[name]) for name in classes}, "files": files}
        with open(temporary / ingest.MANIFEST_NAME, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, ensure_ascii=False, indent=1)
        os.replace(temporary, target)
    except BaseException:
        # a full disk or a bad name must not leave a half-written <id>.tmp behind
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def _link_or_copy(source: Path, destination: Path) -> None:
    # A hard link costs no space and the picture never changes (versions are never written to);
    # a file system without links (or another device) gets a copy.
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)
