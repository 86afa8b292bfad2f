"""Turn folders, zips, uploads and camera photos into a clean Dataset, skipping and reporting bad files.

Every loader reads untrusted input: a bad file never raises, it is listed in ``Dataset.skipped`` with
a reason in plain words. Zips are read in memory, member by member, under byte and count limits;
nothing is ever extracted to disk.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable

import numpy as np
from PIL import Image

from core.images import IMAGE_EXTENSIONS, RESIZE_POLICIES, ImageError, load_image

ProgressFn = Callable[[float, str], None]  # fraction 0..1, message

MANIFEST_NAME = "manifest.json"
# Folder clutter that operating systems write: ignored silently rather than reported as skipped.
_CLUTTER_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
_READ_CHUNK_BYTES = 1 << 20


class DatasetError(ValueError):
    """The input as a whole cannot be used; the message names the problem and the fix."""


@dataclass
class Limits:
    """Guards against hostile or accidental huge input; every one can be raised or lowered."""

    max_members: int = 20_000  # zip members considered
    max_member_bytes: int = 50_000_000  # per file / zip member, uncompressed
    max_total_bytes: int = 2_000_000_000  # sum of uncompressed bytes read from one zip
    max_pixels: int = 40_000_000
    # Decoding costs time by pixels, not bytes: a 16 MB zip of blank 40-megapixel PNGs would decode for
    # hours. The declared sizes are read from each file's header first and summed; over this, the whole
    # input is refused in one line before any picture is decoded (about 1,600 twelve-megapixel photos fit).
    max_total_pixels: int = 20_000_000_000


@dataclass(eq=False)
class Dataset:
    """Images ready for a model, their labels, and the report of what was left out."""

    images: np.ndarray  # uint8 (N, size, size, 3)
    labels: np.ndarray  # int64 (N,), -1 for unlabeled
    classes: list[str]  # sorted class names; [] for unlabeled
    paths: list[str]  # source path of each kept image, relative to the source root
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"} for every file not kept
    image_size: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Class name -> images kept, classes with no images included."""
        per_label = np.bincount(self.labels[self.labels >= 0], minlength=len(self.classes))
        return {name: int(per_label[index]) for index, name in enumerate(self.classes)}

    def summary(self) -> dict:
        """The JSON-ready report: classes, counts, skipped, image_size, total."""
        return {"classes": list(self.classes), "counts": self.counts, "skipped": list(self.skipped),
                "image_size": self.image_size, "total": int(len(self.images))}

    def subset(self, indices) -> "Dataset":
        """The images at ``indices`` with the same classes (and the same skipped report)."""
        indices = np.asarray(indices, dtype=np.int64)
        return Dataset(self.images[indices], self.labels[indices], list(self.classes),
                       [self.paths[i] for i in indices], list(self.skipped), self.image_size)

    def __repr__(self) -> str:
        return (f"Dataset({len(self.images)} images at {self.image_size} px, classes={self.classes}, "
                f"{len(self.skipped)} skipped)")


# ---------------------------------------------------------------------------------------------------
# Loaders


def from_folder(path, image_size: int, *, policy: str = "center_crop", limits: Limits | None = None,
                progress: ProgressFn | None = None) -> Dataset:
    """Load a labeled folder: one subfolder per class, images at any depth inside it.

    Files directly in the root are skipped ("not in a class folder"); hidden files and OS clutter are
    ignored; an empty class folder stays a class with 0 images. A ``manifest.json`` written by
    ``save_dataset`` carries its skipped report into the result.
    """
    root = _existing_folder(path)
    _check_request(image_size, policy)
    limits = limits or Limits()
    candidates, skipped, classes = [], _manifest_skipped(root), set()
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    counted = len(entries)
    _check_entry_count(counted, limits, "folder")
    for entry in entries:
        if _is_clutter(entry.name):
            continue
        if entry.is_symlink():
            skipped.append({"path": entry.name, "reason": LINK_REASON})
        elif entry.is_dir() and (problem := class_name_problem(_clean_name(entry.name))):
            skipped.append({"path": entry.name, "reason": problem})
        elif entry.is_dir():
            class_name = _clean_name(entry.name)
            classes.add(class_name)
            files, links, counted = _files_below(entry.path, prefix=entry.name, limits=limits, counted=counted)
            skipped.extend({"path": link, "reason": LINK_REASON} for link in links)
            for relative in files:
                candidates.append(_file_candidate(root, relative, class_name, limits))
        elif entry.name != MANIFEST_NAME:
            skipped.append({"path": entry.name, "reason": "not in a class folder"})
    return _build(candidates, sorted(classes), skipped, image_size, policy, limits, progress)


def from_zip(source: str | bytes | os.PathLike | BinaryIO, image_size: int, *, policy: str = "center_crop",
             limits: Limits | None = None, progress: ProgressFn | None = None) -> Dataset:
    """Load a labeled zip laid out like a folder; a single top folder around the class folders is stripped.

    Members are read in memory under ``limits``; unsafe names, oversized members and members past the
    count or total-bytes limits are skipped with a reason. Raises DatasetError if it is not a zip.
    """
    _check_request(image_size, policy)
    limits = limits or Limits()
    with _open_zip(source) as archive:
        reader = _ZipReader(archive, limits)
        members, skipped = reader.members()
        strip_top = _single_top_folder(members)
        candidates, classes = [], set()
        for parts, info in members:
            parts = parts[1:] if strip_top else parts
            if info.is_dir():
                if parts and not class_name_problem(_clean_name(parts[0])):
                    classes.add(_clean_name(parts[0]))
                continue
            if parts == [MANIFEST_NAME]:
                continue  # a zipped save_dataset folder: its manifest is not a stray file
            if len(parts) < 2:
                skipped.append({"path": "/".join(parts), "reason": "not in a class folder"})
                continue
            class_name = _clean_name(parts[0])
            problem = class_name_problem(class_name)
            if problem:
                skipped.append({"path": "/".join(parts), "reason": problem})
                continue
            classes.add(class_name)
            candidates.append(reader.candidate("/".join(parts), info, class_name))
        return _build(candidates, sorted(classes), skipped, image_size, policy, limits, progress)


def from_uploads(files: Iterable[tuple[str, bytes, str]], image_size: int, *, policy: str = "center_crop",
                 limits: Limits | None = None, progress: ProgressFn | None = None) -> Dataset:
    """Load (file name, bytes, class name) triples, e.g. from ``st.file_uploader`` or ``st.camera_input``.

    Class names become folder names later, so empty names and names with path separators or ".." raise
    DatasetError. Files are recognised by content, not by their name.
    """
    _check_request(image_size, policy)
    limits = limits or Limits()
    candidates, classes = [], set()
    for file_name, data, class_name in files:
        class_name = checked_class_name(class_name)
        classes.add(class_name)
        shown_name = str(file_name).replace("\\", "/").rsplit("/", 1)[-1] or "unnamed"
        candidates.append(_Candidate(f"{class_name}/{shown_name}", class_name, lambda data=data: bytes(data),
                                     lambda data=data: bytes(data[:_HEADER_BYTES])))
    return _build(candidates, sorted(classes), [], image_size, policy, limits, progress)


def load_unlabeled(source, image_size: int, *, policy: str = "center_crop", limits: Limits | None = None,
                   progress: ProgressFn | None = None) -> Dataset:
    """Load every image at any depth of a folder or zip (path or bytes); labels are all -1, classes []."""
    _check_request(image_size, policy)
    limits = limits or Limits()
    if _is_zip_source(source):
        with _open_zip(source) as archive:
            reader = _ZipReader(archive, limits)
            members, skipped = reader.members()
            candidates = [reader.candidate("/".join(parts), info, None)
                          for parts, info in members if not info.is_dir()]
            return _build(candidates, [], skipped, image_size, policy, limits, progress)
    root = _existing_folder(source)
    files, links, _ = _files_below(root, prefix="", limits=limits)
    candidates = [_file_candidate(root, relative, None, limits) for relative in files if relative != MANIFEST_NAME]
    skipped = _manifest_skipped(root) + [{"path": link, "reason": LINK_REASON} for link in links]
    return _build(candidates, [], skipped, image_size, policy, limits, progress)


def load_labeled(source, image_size: int, **kw) -> Dataset:
    """Load a labeled dataset from a folder, or from a zip given as a path, bytes or a file object."""
    if _is_zip_source(source):
        return from_zip(source, image_size, **kw)
    return from_folder(source, image_size, **kw)


# ---------------------------------------------------------------------------------------------------
# Splitting and combining


def check_trainable(dataset: Dataset, validation_fraction: float) -> None:
    """Raise DatasetError, naming the class and the fix, unless ``split`` can give every class both
    a training and a validation image."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be between 0 and 1 (exclusive); got {validation_fraction!r}")
    counts = dataset.counts
    with_images = [name for name, count in counts.items() if count > 0]
    if len(with_images) < 2:
        found = f'found {len(with_images)}' + (f' ("{with_images[0]}")' if with_images else "")
        raise DatasetError(f"need at least 2 classes with images; {found}: add a folder per class")
    problems = []
    for name, count in counts.items():
        if count == 0:
            problems.append(f'class "{name}" has no images: add images to it or remove the folder')
        elif count < 2:
            problems.append(f'class "{name}" has 1 image; the validation split needs at least 2 per class '
                            f'(1 to train, 1 to validate): add images to "{name}"')
    if problems:
        raise DatasetError("; ".join(problems))


def split(dataset: Dataset, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split into sorted (train, validation) index arrays.

    Each class gives round(n * validation_fraction) images to validation, but at least 1, and keeps at
    least 1 for training. Calls ``check_trainable`` first.
    """
    check_trainable(dataset, validation_fraction)
    rng = np.random.default_rng(seed)
    train, validation = [], []
    for label in range(len(dataset.classes)):
        members = rng.permutation(np.flatnonzero(dataset.labels == label))
        # floor(x + 0.5) rather than round(): Python's round sends 2.5 to 2, which surprises people.
        n_validation = min(max(1, math.floor(len(members) * validation_fraction + 0.5)), len(members) - 1)
        validation.append(members[:n_validation])
        train.append(members[n_validation:])
    return (np.sort(np.concatenate(train)).astype(np.int64),
            np.sort(np.concatenate(validation)).astype(np.int64))


def merge(a: Dataset, b: Dataset) -> Dataset:
    """Both datasets in one, classes united (re-indexed, sorted); e.g. uploads added to an existing set."""
    if a.image_size != b.image_size:
        raise DatasetError(f"cannot merge images of {a.image_size} px with images of {b.image_size} px: "
                           "load both at the same image_size")
    classes = sorted(set(a.classes) | set(b.classes))

    def relabel(dataset: Dataset) -> np.ndarray:
        new_index = np.array([classes.index(name) for name in dataset.classes] + [-1], dtype=np.int64)
        return new_index[dataset.labels]  # label -1 picks the trailing -1

    return Dataset(np.concatenate([a.images, b.images]), np.concatenate([relabel(a), relabel(b)]), classes,
                   a.paths + b.paths, a.skipped + b.skipped, a.image_size)


# ---------------------------------------------------------------------------------------------------
# Storing


def save_dataset(dataset_or_pictures, out_dir, *, source: str | None = None) -> str:
    """Write ``out_dir/<class>/<n:05d>.png`` per image and ``out_dir/manifest.json``; return out_dir.

    Accepts a Dataset or an ``(images, labels, classes)`` tuple as ``demo_data.generate`` returns.
    Unlabeled images go to ``out_dir/unlabeled/``. The folder is built as ``out_dir + ".tmp"`` and then
    swapped in, so a reader never sees half a dataset. The manifest holds classes, counts, skipped,
    image_size, source, and ``files``: each stored file with the path it came from.
    """
    dataset = _as_dataset(dataset_or_pictures)
    labeled = bool(dataset.classes)
    if labeled and np.any(dataset.labels < 0):
        raise DatasetError("dataset mixes labeled and unlabeled images: save them separately")
    out_dir = os.fspath(out_dir)
    temporary = out_dir + ".tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        _write_dataset(dataset, labeled, temporary, source)
        _swap_in(temporary, out_dir)
    except BaseException:
        # a full disk or a bad name must not leave a half-written <id>.tmp behind to fill the disk further
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out_dir


def _write_dataset(dataset: Dataset, labeled: bool, temporary: str, source: str | None) -> None:
    folders = dataset.classes if labeled else ["unlabeled"]
    for folder in folders:
        os.makedirs(os.path.join(temporary, folder))
    files, written = [], dict.fromkeys(folders, 0)
    for index, picture in enumerate(dataset.images):
        folder = folders[int(dataset.labels[index])] if labeled else "unlabeled"
        relative = f"{folder}/{written[folder]:05d}.png"
        written[folder] += 1
        # Low compression: these files are written once per ingest and read once per run.
        Image.fromarray(np.asarray(picture, dtype=np.uint8)).save(os.path.join(temporary, relative),
                                                                  compress_level=1)
        files.append({"file": relative, "source": dataset.paths[index] if index < len(dataset.paths) else None})
    manifest = {"classes": list(dataset.classes), "counts": dataset.counts, "skipped": list(dataset.skipped),
                "image_size": int(dataset.image_size), "source": source, "files": files}
    with open(os.path.join(temporary, MANIFEST_NAME), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, ensure_ascii=False, indent=1)


# ---------------------------------------------------------------------------------------------------
# Internals: candidates and building


@dataclass
class _Candidate:
    """One file that may become an image: where it is shown to come from, and how to read it."""

    path: str
    class_name: str | None
    read: Callable[[], bytes]  # raises _Skip with a reason
    peek: Callable[[], bytes] | None = None  # the first bytes, enough for the header; None: use read


class _Skip(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Progress:
    """Reports to a ProgressFn at most about a hundred times, however many files there are."""

    def __init__(self, callback: ProgressFn | None, total: int):
        self.callback, self.total, self.last = callback, total, -1.0

    def __call__(self, done: int, message: str, force: bool = False) -> None:
        if self.callback is None:
            return
        fraction = done / self.total if self.total else 1.0
        if force or fraction - self.last >= 0.01:
            self.last = fraction
            self.callback(min(1.0, fraction), message)


def _build(candidates: list[_Candidate], classes: list[str], skipped: list[dict], image_size: int,
           policy: str, limits: Limits, progress: ProgressFn | None) -> Dataset:
    """Read and decode every candidate; keep the good ones, report the rest."""
    candidates = sorted(candidates, key=lambda candidate: candidate.path)
    _check_total_pixels(candidates, limits)
    report = _Progress(progress, len(candidates))
    report(0, f"reading {len(candidates)} files", force=True)
    label_of = {name: index for index, name in enumerate(classes)}
    images, labels, paths = [], [], []
    for done, candidate in enumerate(candidates):
        try:
            picture = load_image(candidate.read(), image_size, policy,
                                 max_pixels=limits.max_pixels, max_bytes=limits.max_member_bytes)
        except (_Skip, ImageError) as problem:
            skipped.append({"path": candidate.path, "reason": problem.reason})
        else:
            images.append(picture)
            labels.append(label_of[candidate.class_name] if candidate.class_name is not None else -1)
            paths.append(candidate.path)
        report(done + 1, f"read {done + 1} of {len(candidates)} files")
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), dtype=np.uint8)
    report(len(candidates), f"{len(images)} images kept, {len(skipped)} skipped", force=True)
    return Dataset(stacked, np.asarray(labels, dtype=np.int64), list(classes), paths, skipped, image_size)


_HEADER_BYTES = 1 << 16


def _declared_pixels(head: bytes) -> int:
    """Width x height from a file's header (0 when the header cannot tell: the file is judged when read)."""
    try:
        with Image.open(io.BytesIO(head)) as image:
            width, height = image.size
            return int(width) * int(height)
    except Exception:  # not an image, a truncated header, a bomb Pillow refuses: decided when read
        return 0


def _check_total_pixels(candidates: list[_Candidate], limits: Limits) -> None:
    total = 0
    for candidate in candidates:
        try:
            head = candidate.peek() if candidate.peek else candidate.read()[:_HEADER_BYTES]
        except _Skip:
            continue
        total += _declared_pixels(head)
        if total > limits.max_total_pixels:
            raise DatasetError(f"the pictures add up to more than {limits.max_total_pixels / 1e6:,.0f} megapixels, "
                               "the limit for one load: use fewer pictures, or smaller ones (1-2 megapixels "
                               "is plenty for training)")


def _check_request(image_size, policy) -> None:
    # Checked before any file is read, so a typo is one clear error rather than N skipped files.
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(RESIZE_POLICIES)}; got {policy!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer number of pixels; got {image_size!r}")


def _is_clutter(name: str) -> bool:
    return name.startswith(".") or name.lower() in _CLUTTER_NAMES


def _clean_name(name: str) -> str:
    # macOS writes decomposed Unicode (NFD) names: "é" from a Mac folder must equal "é" typed in the app.
    return unicodedata.normalize("NFC", name)


MAX_CLASS_NAME = 100  # characters; a class name becomes a folder name, and file systems stop at 255 bytes
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}


def class_name_problem(name: str) -> str | None:
    """What is wrong with a class name, in words, or None: the one rule for uploads, zips and folders."""
    if not name.strip() or all(ch in _INVISIBLE or ch.isspace() for ch in name):
        return "a class name is empty: give every class a name"
    if "/" in name or "\\" in name or ".." in name:
        return f'class name "{name}" contains "/", "\\" or "..": use a plain name'
    if name.startswith(".") or any(not ch.isprintable() or ch in _INVISIBLE for ch in name):
        return f'class name {name!r} starts with a dot or has control or invisible characters: use a plain name'
    if len(name) > MAX_CLASS_NAME:
        return f"class name {name[:40]!r}... has {len(name)} characters, over {MAX_CLASS_NAME}: use a shorter name"
    return None


def checked_class_name(name) -> str:
    """``name`` as every loader stores it (stripped, NFC), or DatasetError naming what breaks the one rule."""
    cleaned = _clean_name(str(name if name is not None else "").strip())
    problem = class_name_problem(cleaned)
    if problem:
        raise DatasetError(problem)
    return cleaned


def _as_dataset(dataset_or_pictures) -> Dataset:
    if isinstance(dataset_or_pictures, Dataset):
        return dataset_or_pictures
    images, labels, classes = dataset_or_pictures
    images = np.asarray(images, dtype=np.uint8)
    classes = list(classes)
    paths = [f"{classes[label] if label >= 0 else 'unlabeled'}/{index:05d}.png"
             for index, label in enumerate(np.asarray(labels))]
    return Dataset(images, np.asarray(labels, dtype=np.int64), classes, paths, [], int(images.shape[1]))


def _swap_in(temporary: str, out_dir: str) -> None:
    """Replace out_dir by the finished temporary folder (os.replace cannot overwrite a full folder)."""
    previous = out_dir + ".old"
    shutil.rmtree(previous, ignore_errors=True)
    if os.path.exists(out_dir):
        os.replace(out_dir, previous)
    os.replace(temporary, out_dir)
    shutil.rmtree(previous, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# Internals: folders


def _existing_folder(path) -> str:
    try:
        root = os.fspath(path)
    except TypeError:
        raise DatasetError(f"expected a folder path, got {type(path).__name__}") from None
    if not os.path.exists(root):
        raise DatasetError(f'"{root}" does not exist: check the path')
    if not os.path.isdir(root):
        raise DatasetError(f'"{root}" is not a folder')
    return root


# One rule for links in folders: they are not followed (a class folder linked to /usr, or to its own
# parent, would read a whole disk or loop); each is reported as skipped, with what to do instead.
LINK_REASON = "a link, not followed: copy the file or folder in instead"


def _check_entry_count(count: int, limits: Limits, what: str) -> None:
    if count > limits.max_members:
        raise DatasetError(f"the {what} has more than {limits.max_members} entries (files and folders together), "
                           f"the limit: split it into smaller {what}s")


def _files_below(folder: str, prefix: str, *, limits: Limits, counted: int = 0) -> tuple[list[str], list[str], int]:
    """(files, links, entries): relative paths ("prefix/sub/name") of the non-hidden files at any depth under
    folder, of the links met on the way (not followed), and ``counted`` plus the entries seen here. Every
    entry counts toward limits.max_members."""
    found, links = [], []
    entries = counted
    for current, subfolders, names in os.walk(folder):
        relative_dir = os.path.relpath(current, folder).replace(os.sep, "/")

        def relative(name):
            return "/".join(part for part in (prefix, relative_dir, name) if part and part != ".")

        subfolders[:], linked_folders = _not_links(current, subfolders)
        entries += len(subfolders) + len(names)
        _check_entry_count(entries, limits, "folder")
        files, linked_files = _not_links(current, names)
        links += [relative(name) for name in linked_folders + linked_files]
        found += [relative(name) for name in files]
    return found, links, entries


def _not_links(folder: str, names: list[str]) -> tuple[list[str], list[str]]:
    """The non-clutter ``names`` in ``folder``, sorted, split into (not links, links)."""
    kept, links = [], []
    for name in sorted(names):
        if not _is_clutter(name):
            (links if os.path.islink(os.path.join(folder, name)) else kept).append(name)
    return kept, links


def _file_candidate(root: str, relative: str, class_name: str | None, limits: Limits) -> _Candidate:
    full_path = os.path.join(root, *relative.split("/"))
    cap = limits.max_member_bytes

    def read_start(count: int, check_size: bool) -> bytes:
        """The file's first ``count`` bytes; a file over the cap (by its size) is skipped when ``check_size``."""
        _require_image_extension(relative)
        try:
            status = os.stat(full_path, follow_symlinks=False)
            if not stat.S_ISREG(status.st_mode):
                # a named pipe or a device would block or never end: only regular files are read
                raise _Skip("not a regular file")
            if check_size and status.st_size > cap:
                raise _Skip(_too_large_reason(status.st_size, cap))
            with open(full_path, "rb") as handle:
                return handle.read(count)
        except OSError as error:
            raise _Skip(f"could not read file ({error.strerror or error})") from None

    def read() -> bytes:
        # Read one byte past the cap: a file that grew since stat() is still caught.
        data = read_start(cap + 1, check_size=True)
        if len(data) > cap:
            raise _Skip(_too_large_reason(len(data), cap))
        return data

    return _Candidate(relative, class_name, read, lambda: read_start(_HEADER_BYTES, check_size=False))


def _require_image_extension(path: str) -> None:
    # Folders and zips hold all sorts of files; only image extensions are worth decoding. (Uploads are
    # judged by content instead: a camera or a browser may name a file anything.)
    extension = os.path.splitext(path)[1].lower()
    if extension not in IMAGE_EXTENSIONS:
        raise _Skip(f"not an image file ({extension or 'no extension'})")


def _manifest_skipped(root: str) -> list[dict]:
    """The skipped report saved by save_dataset, so it survives a save and a reload."""
    try:
        with open(os.path.join(root, MANIFEST_NAME), encoding="utf-8") as handle:
            entries = json.load(handle).get("skipped", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [{"path": str(entry.get("path", "")), "reason": str(entry.get("reason", ""))}
            for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def _too_large_reason(size: int, limit: int) -> str:
    return f"too large: {math.ceil(size / 100_000) / 10:g} MB, limit {limit / 1e6:g} MB"


# ---------------------------------------------------------------------------------------------------
# Internals: zips


def _is_zip_source(source) -> bool:
    """Bytes and file objects are zips; a path is a zip when it is a file, a folder otherwise."""
    if isinstance(source, (bytes, bytearray, memoryview)) or hasattr(source, "read"):
        return True
    try:
        path = os.fspath(source)
    except TypeError:
        raise DatasetError(f"expected a folder, a zip file or zip bytes, got {type(source).__name__}") from None
    if not os.path.exists(path):
        raise DatasetError(f'"{path}" does not exist: check the path')
    return os.path.isfile(path)


def _open_zip(source) -> zipfile.ZipFile:
    if isinstance(source, (bytes, bytearray, memoryview)):
        shown, opened = "the uploaded file", io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        shown, opened = f'"{getattr(source, "name", "the uploaded file")}"', source
    else:
        shown, opened = f'"{os.fspath(source)}"', os.fspath(source)
        if not os.path.isfile(opened):
            raise DatasetError(f"{shown} does not exist: check the path")
    try:
        return zipfile.ZipFile(opened)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError, IndexError) as error:
        raise DatasetError(f"{shown} is not a valid zip file ({error})") from None


def _member_parts(info: zipfile.ZipInfo) -> list[str] | None:
    """The member's path parts, or None if the name is unsafe ('..', absolute, drive letter)."""
    name = info.filename
    if not info.flag_bits & 0x800:
        # Without the UTF-8 flag zipfile decodes as cp437; many zip tools write UTF-8 anyway.
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    return [_clean_name(part) for part in parts]


def _single_top_folder(members: list[tuple[list[str], zipfile.ZipInfo]]) -> bool:
    """True when everything sits in one top folder that itself holds class folders."""
    tops = {parts[0] for parts, _ in members if parts}
    has_class_folders_below = any(len(parts) >= (2 if info.is_dir() else 3) for parts, info in members)
    return len(tops) == 1 and has_class_folders_below


class _ZipReader:
    """Reads members in memory under the per-member and total uncompressed byte limits."""

    def __init__(self, archive: zipfile.ZipFile, limits: Limits):
        self.archive, self.limits, self.total_read = archive, limits, 0

    def members(self) -> tuple[list[tuple[list[str], zipfile.ZipInfo]], list[dict]]:
        """Safe, non-clutter members (path parts, info) up to max_members, and the skipped report."""
        kept, skipped = [], []
        entries = self.archive.infolist()
        # every entry counts, folders too: 20,000 empty folder entries would each become a class
        _check_entry_count(len(entries), self.limits, "zip")
        for info in entries:
            parts = _member_parts(info)
            if parts is None:
                if not info.is_dir():
                    skipped.append({"path": info.filename, "reason": "unsafe path in zip"})
                continue
            if parts and not any(_is_clutter(part) for part in parts):
                kept.append((parts, info))
        kept.sort(key=lambda member: member[1].filename)
        return kept, skipped

    def candidate(self, path: str, info: zipfile.ZipInfo, class_name: str | None) -> _Candidate:
        return _Candidate(path, class_name, lambda: self.read(info), lambda: self.peek(info))

    def peek(self, info: zipfile.ZipInfo) -> bytes:
        """The member's first bytes (its header), read apart from the byte budget."""
        _require_image_extension(info.filename)
        if info.flag_bits & 0x1:
            raise _Skip("encrypted zip member")
        try:
            with self.archive.open(info) as member:
                return member.read(_HEADER_BYTES)
        except Exception:
            raise _Skip("corrupt zip member") from None

    def read(self, info: zipfile.ZipInfo) -> bytes:
        _require_image_extension(info.filename)
        member_cap, total_cap = self.limits.max_member_bytes, self.limits.max_total_bytes
        if info.flag_bits & 0x1:
            raise _Skip("encrypted zip member: cannot be read without a password")
        if info.file_size > member_cap:
            raise _Skip(_too_large_reason(info.file_size, member_cap))
        if self.total_read + info.file_size > total_cap:
            raise _Skip(f"not read: the zip's uncompressed total would pass the limit of {total_cap / 1e6:g} MB")
        chunks, size = [], 0
        try:
            with self.archive.open(info) as member:
                # Read in chunks and count: the sizes in a zip header are whatever its author wrote.
                while chunk := member.read(_READ_CHUNK_BYTES):
                    size += len(chunk)
                    self.total_read += len(chunk)
                    if size > member_cap:
                        raise _Skip(f"too large (more than {member_cap / 1e6:g} MB uncompressed)")
                    if self.total_read > total_cap:
                        raise _Skip(f"not read: the zip's uncompressed total passed the limit of "
                                    f"{total_cap / 1e6:g} MB")
                    chunks.append(chunk)
        except _Skip:
            raise
        except Exception as error:  # BadZipFile (bad CRC), zlib.error, unsupported compression, ...
            raise _Skip(f"corrupt zip member ({error})") from None
        return b"".join(chunks)
