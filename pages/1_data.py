"""Data page: the current dataset as class cards a teacher edits (add a class, rename or delete one, see its
pictures and delete some, add pictures by upload or camera), a new empty dataset, the demo set, a zip, and an
unlabeled set. core.datasets makes every change; the page lays out widgets and shows one message at a time:
each action replaces the message of the one before, next to where it was done."""
from __future__ import annotations

from typing import Callable

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core import datasets, demo_data, ingest, photo_demo, runs
from core.datasets import count_words
from pages import camera_burst, common

THUMBNAILS_PER_CARD = 8
THUMBNAIL_SIZE = 64
GRID_COLUMNS = 8        # pictures a row when a class's pictures are shown to delete some
MOST_SHOWN = 200        # pictures shown at once in that grid (each has its own button)
CAMERA_WIDTH = 480      # pixels on screen: big enough to aim, small enough to see the card's count above
ONE_A_CLICK, BURST = "One a click", "A burst"
BURST_SIZES = [3, 5, 10, 20, 30]
MESSAGE = "data_message"


# ---------------------------------------------------------------------- one message at a time

def say(kind: str, text: str, where: str = "top", skipped: list[dict] | None = None) -> None:
    """Replace the page's message: ``kind`` is success, info, warning or error; ``where`` is the place it
    shows (the top, the classes, one class's card, the add-a-class card); ``skipped`` files get a table."""
    st.session_state[MESSAGE] = {"kind": kind, "text": text, "where": where, "skipped": list(skipped or [])}


def show_message(where: str) -> None:
    message = st.session_state.get(MESSAGE)
    if not message or message["where"] != where:
        return
    getattr(st, message["kind"])(message["text"])
    if message["skipped"]:
        report_table(message["skipped"])


def act(where: str, change: Callable[[], None]) -> bool:
    """Run one change; a failure becomes the page's message (in plain words) at ``where``."""
    try:
        change()
    except DataPageError as error:
        say("error", common.plain(str(error), 600), where)
        return False
    except Exception as error:  # noqa: BLE001 - shown to the user, the traceback goes to the log
        say("error", common.explain(error), where)
        common.log.warning("data page: %s: %s", type(error).__name__, error)
        return False
    return True


def skipped_words(skipped: list[dict]) -> str:
    if not skipped:
        return ""
    verb = "was" if len(skipped) == 1 else "were"
    return f" {count_words(len(skipped), 'file')} {verb} skipped; the table says why."


def report_ingest(added: int, skipped: list[dict], what: str, where: str = "top") -> None:
    """The message after pictures came in: how many were added, and the skipped files with the reasons."""
    text = f"Added {count_words(added)} {what}." + skipped_words(skipped)
    say("success" if added and not skipped else "warning", text, where, skipped)


def report_table(skipped: list[dict]) -> None:
    """The skipped files and why, as a table (cells are plain text, never HTML or Markdown)."""
    rows = [{"file": str(item.get("path", "")), "why it was skipped": str(item.get("reason", ""))}
            for item in skipped]
    st.dataframe(rows, hide_index=True, width="stretch")


# ---------------------------------------------------------------------- the current dataset

def make_current(folder) -> dict:
    """Make a saved dataset folder the session's current dataset (what Train uses); return its info."""
    info = common.dataset_info(folder, datasets.name_of(folder))
    common.set_current_dataset(info)
    return info


def current_or_new_folder() -> str:
    """The current dataset's folder; with none, a new empty "My pictures" made current."""
    info = common.current_dataset()
    if info:
        return info["path"]
    return make_current(datasets.create(common.datasets_root(), datasets.DEFAULT_NAME, common.STORAGE_SIZE))["path"]


def progress_bar(text: str):
    """An st.progress bar and the (fraction, message) callback core's loaders report to."""
    bar = st.progress(0.0, text=text)

    def report(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=common.plain(message or text, 120))

    return bar, report


def next_round(name: str) -> None:
    """Empty the inputs keyed by this round counter (a new key is a new, empty widget)."""
    st.session_state[name] = st.session_state.get(name, 0) + 1


def add_pictures(class_name: str, files: list[tuple[str, bytes]], where: str, what: str,
                 progress=None) -> bool:
    """Add files to a class of the current dataset (one made if there is none); True when any was added."""
    result = {}

    def change():
        datasets.checked_class_name(class_name)  # a bad name is refused before a new dataset is started for it
        added = datasets.add_pictures(current_or_new_folder(), class_name, files, policy=common.STORAGE_POLICY,
                                      progress=progress)
        result["added"] = added
        if added.added:
            make_current(added.folder)

    if not act(where, change):
        return False
    added = result["added"]
    if not added.added:
        say("error", f"None of {'that file' if len(files) == 1 else f'those {len(files)} files'} is a usable "
            "picture, so nothing was added. The table says why.", where, added.skipped)
        return False
    report_ingest(added.added, added.skipped, f"to {common.plain(class_name.strip(), 100)} {what}", where)
    return True


# ---------------------------------------------------------------------- sources

def demo_section() -> None:
    per_class, size = common.demo_size()
    st.write(f"Generated pictures of {len(demo_data.CLASSES)} shapes ({', '.join(demo_data.CLASSES)}), "
             f"{per_class} per class at {size} px. Good for a first run: it needs nothing from you.")
    if st.button("Use the demo data", type="primary", key="use_demo"):
        bar, report = progress_bar("Drawing the demo pictures...")
        dataset = demo_data.as_dataset(per_class=per_class, size=size, seed=0)
        report(0.7, "Saving the demo dataset...")
        if act("top", lambda: common.save_dataset(dataset, f"Demo shapes ({per_class} per class)")):
            report_ingest(len(dataset.images), dataset.skipped, "from the demo data")
        st.rerun()
    photos_section(per_class)


def photos_section(per_class: int) -> None:
    """The real-photo demo beside the shapes: downloaded once through Keras, then from its cache."""
    cached = photo_demo.cached_root() is not None
    st.write(f"Or real photographs: {photo_demo.TITLE}, {len(photo_demo.CLASSES)} kinds of flower "
             f"({', '.join(photo_demo.CLASSES)}), {per_class} per class. "
             + ("They are on this server already." if cached else
                f"The first use downloads them (about {photo_demo.ABOUT_MB} MB) and keeps them on the server."))
    if st.button("Use the flower photos", key="use_photos"):
        bar, report = progress_bar("Getting the flower photos...")
        result = {}

        def change():
            try:
                dataset = photo_demo.as_dataset(per_class=per_class, size=common.STORAGE_SIZE, progress=report)
            except photo_demo.PhotoDemoUnavailable as error:
                raise DataPageError(str(error)[:1].upper() + str(error)[1:] + ".") from None
            report(0.95, "Saving the flower photos...")
            common.save_dataset(dataset, f"Flower photos ({per_class} per class)")
            result["dataset"] = dataset

        if act("top", change):
            report_ingest(len(result["dataset"].images), result["dataset"].skipped, "of flowers")
        st.rerun()


class DataPageError(Exception):
    """A message already written for the user (shown as it is)."""


def new_dataset_section() -> None:
    st.write("Start an empty dataset, then add its classes below: each class by upload or with the camera. "
             "The dataset you have now stays saved on the server for the runs that used it.")
    name = st.text_input("Name of the new dataset", value=datasets.DEFAULT_NAME, key="new_dataset_name",
                         max_chars=datasets.MAX_NAME)
    if st.button("Start a new dataset", key="new_dataset", type="primary"):
        if act("top", lambda: make_current(datasets.create(common.datasets_root(), name, common.STORAGE_SIZE))):
            say("success", f"Started {common.plain(datasets.name_of(common.current_dataset()['path']))}: "
                "add its first class below.", "classes")
        st.rerun()


def zip_section() -> None:
    st.write("A zip with one folder per class (images inside each). It replaces the current dataset.")
    archive = st.file_uploader("Zip of class folders", type=["zip"], key="zip_file")
    if st.button("Use this zip", key="use_zip", disabled=archive is None):
        bar, report = progress_bar("Reading the zip...")
        loaded = {}

        def change():
            loaded["dataset"] = ingest.from_zip(archive.getvalue(), common.STORAGE_SIZE,
                                                policy=common.STORAGE_POLICY, progress=report)
            if len(loaded["dataset"].images):
                common.save_dataset(loaded["dataset"], f"Zip: {archive.name}")

        if act("top", change):
            dataset = loaded["dataset"]
            if len(dataset.images) == 0:
                say("error", "No usable image was found in that zip: it needs one folder per class with pictures "
                    "inside. The table says what was skipped.", "top", dataset.skipped)
            else:
                report_ingest(len(dataset.images), dataset.skipped, f"from the zip {common.plain(archive.name)}")
        st.rerun()


def unlabeled_section() -> None:
    st.write("Optional, for the Autoencoder page: pictures without labels (a zip, or many files). The "
             "autoencoder learns from them first, then its encoder is transferred to a classifier.")
    files = st.file_uploader("Unlabeled pictures or one zip", accept_multiple_files=True, key="unlabeled_files")
    if st.button("Use as the unlabeled set", key="use_unlabeled", disabled=not files):
        bar, report = progress_bar("Reading the unlabeled pictures...")

        def change():
            dataset = datasets.read_unlabeled([(f.name, f.getvalue()) for f in files], common.STORAGE_SIZE,
                                              policy=common.STORAGE_POLICY, progress=report)
            if len(dataset.images) == 0:
                say("error", "None of those files is a usable picture; nothing was kept. The table says why.",
                    "top", dataset.skipped)
                return
            folder = datasets.save_unlabeled(dataset, runs.workspace(), common.owner())
            st.session_state["unlabeled"] = {"path": str(folder), "images": int(len(dataset.images)),
                                             "skipped": list(dataset.skipped)}
            say("success" if not dataset.skipped else "warning",
                f"Unlabeled set ready: {count_words(len(dataset.images))}. The Autoencoder page uses it."
                + skipped_words(dataset.skipped), "top", dataset.skipped)

        act("top", change)
        st.rerun()
    unlabeled = st.session_state.get("unlabeled")
    if unlabeled:
        st.caption(f"Unlabeled set: {count_words(unlabeled['images'])}, "
                   f"{count_words(len(unlabeled['skipped']), 'file')} skipped.")


# ---------------------------------------------------------------------- class cards

@st.cache_data(max_entries=2000, show_spinner=False)
def thumbnail(folder: str, picture: str) -> np.ndarray:
    # a dataset folder never changes once written, so (folder, picture) names one picture for good
    return datasets.thumbnail(folder, picture, THUMBNAIL_SIZE)


def class_card(info: dict, card: datasets.ClassCard, index: int) -> None:
    name, where = card.name, f"class:{card.name}"
    with st.container(border=True, key=f"class_card_{index}"):
        st.markdown(f"**{common.plain(name)}** · {count_words(card.count)}")
        show_message(where)
        if card.pictures:
            st.image([thumbnail(info["path"], p) for p in card.pictures[:THUMBNAILS_PER_CARD]], width=THUMBNAIL_SIZE)
        else:
            st.caption("No pictures yet: add some by upload or with the camera.")
        buttons = st.container(horizontal=True)
        with buttons.popover("Add pictures", icon=":material/add_photo_alternate:"):
            upload_into(name)
        filming = st.session_state.get("camera_class") == name
        if buttons.button("Stop the camera" if filming else "Camera", key=f"camera_toggle::{name}",
                          icon=":material/photo_camera:"):
            st.session_state["camera_class"] = None if filming else name
            st.rerun()
        with buttons.popover("Rename", icon=":material/edit:"):
            rename_form(name)
        with buttons.popover("Delete class", icon=":material/delete:"):
            st.write(f"Delete **{common.plain(name)}** and its {count_words(card.count)}? This cannot be undone.")
            if st.button(f"Delete {common.plain(name, 60)}", key=f"delete_class::{name}", type="primary"):
                if act(where, lambda: make_current(datasets.delete_class(info["path"], name))):
                    say("success", f"Deleted the class {common.plain(name)} and its {count_words(card.count)}.",
                        "classes")
                st.rerun()
        if filming:
            camera(name)
        if card.pictures and st.toggle("See all its pictures, delete some", key=f"see_all::{name}"):
            picture_grid(info, card, where)


def upload_into(name: str) -> None:
    round_key = st.session_state.get("upload_round", 0)
    files = st.file_uploader(f"Pictures of {common.plain(name, 60)} (JPEG, PNG, WebP, GIF, BMP, TIFF)",
                             accept_multiple_files=True, key=f"card_files::{name}::{round_key}")
    if st.button(f"Add to {common.plain(name, 60)}", key=f"card_add::{name}", disabled=not files, type="primary"):
        bar, report = progress_bar("Reading the pictures...")
        if add_pictures(name, [(f.name, f.getvalue()) for f in files], f"class:{name}", "by upload", report):
            next_round("upload_round")  # empties the uploaders
        st.rerun()


def rename_form(name: str) -> None:
    new_name = st.text_input("New name", value=name, key=f"rename_to::{name}", max_chars=ingest.MAX_CLASS_NAME)
    if st.button("Rename", key=f"rename::{name}", type="primary"):
        if act(f"class:{name}", lambda: make_current(datasets.rename_class(common.current_dataset()["path"], name,
                                                                           new_name))):
            renamed = datasets.checked_class_name(new_name)
            say("success", f"Renamed {common.plain(name)} to {common.plain(renamed)}.", f"class:{renamed}")
            st.session_state.pop(f"rename_to::{name}", None)
            if st.session_state.get("camera_class") == name:
                st.session_state["camera_class"] = renamed  # a camera that was on stays on
        st.rerun()


def camera(name: str) -> None:
    mode = st.segmented_control("Photos", [ONE_A_CLICK, BURST], default=ONE_A_CLICK, key="camera_mode")
    if mode == BURST:
        count = st.select_slider("Photos in a burst", BURST_SIZES, value=10, key="burst_size")
        photos = camera_burst.burst(f"burst::{name}", count, common.STORAGE_SIZE, f"Take {count} photos")
        st.caption(f"One click takes {count} photos, {camera_burst.INTERVAL_MS / 1000:g} s apart: turn the object "
                   "or move the camera a little while it runs. They all go into this class.")
        if photos:
            add_photos(name, photos)
            st.rerun()
        return
    round_key = st.session_state.get("camera_round", 0)
    key = f"camera_{round_key}"
    st.camera_input(f"A photo for {common.plain(name, 60)}", key=key, on_change=photo_taken, args=(name, key),
                    width=CAMERA_WIDTH)
    st.caption("Each click on **Take Photo** adds the photo to this class at once, and the camera is ready for "
               "the next one: point, click, point, click.")


def photo_taken(name: str, key: str) -> None:
    """on_change of the camera: the photo goes into the class at once; a new camera widget takes the next."""
    photo = st.session_state.get(key)
    if photo is None:
        return
    add_photos(name, [photo.getvalue()])
    next_round("camera_round")


def add_photos(name: str, photos: list[bytes]) -> None:
    """Camera photos into a class, named camera-0001.jpg, camera-0002.jpg, ... across the session."""
    taken = st.session_state.get("photos_taken", 0)
    st.session_state["photos_taken"] = taken + len(photos)
    add_pictures(name, [(f"camera-{taken + n:04d}.jpg", photo) for n, photo in enumerate(photos, start=1)],
                 f"class:{name}", "with the camera")


def picture_grid(info: dict, card: datasets.ClassCard, where: str) -> None:
    shown = card.pictures[:MOST_SHOWN]
    if len(shown) < card.count:
        st.caption(f"The first {len(shown)} of its {count_words(card.count)}.")
    columns = st.columns(GRID_COLUMNS)
    for number, picture in enumerate(shown):
        with columns[number % GRID_COLUMNS]:
            st.image(thumbnail(info["path"], picture), width=THUMBNAIL_SIZE)
            if st.button("Delete", key=f"delete_picture::{picture}", icon=":material/close:", type="tertiary"):
                if act(where, lambda: make_current(datasets.delete_picture(info["path"], picture))):
                    say("success", f"Deleted a picture of {common.plain(card.name)}: "
                        f"{count_words(card.count - 1)} left.", where)
                st.rerun()


def add_class_card() -> None:
    with st.container(border=True, key="add_class_card"):
        st.markdown("**Add a class**")
        show_message("add_class")
        round_key = st.session_state.get("add_class_round", 0)
        name = st.text_input("Class name", key=f"add_class_name_{round_key}", placeholder="e.g. cats",
                             max_chars=ingest.MAX_CLASS_NAME)
        files = st.file_uploader("Its pictures (or add them later, by upload or with the camera)",
                                 accept_multiple_files=True, key=f"add_class_files_{round_key}")
        if st.button("Add the class", key="add_class", type="primary"):
            if files:
                bar, report = progress_bar("Reading the pictures...")
                done = add_pictures(name, [(f.name, f.getvalue()) for f in files], "add_class", "by upload", report)
            else:
                def add_empty_class():
                    datasets.checked_class_name(name)  # a bad name is refused before a dataset is started for it
                    make_current(datasets.add_class(current_or_new_folder(), name))

                done = act("add_class", add_empty_class)
                if done:
                    say("success", f"Added the class {common.plain(datasets.checked_class_name(name))}: now add its "
                        "pictures, by upload or with the camera.", "add_class")
            if done:
                next_round("add_class_round")  # empties the name and the uploader for the next class
            st.rerun()


def class_chart(info: dict) -> go.Figure:
    names = list(info["counts"].keys())
    figure = go.Figure(go.Bar(x=[common.plotly_text(n) for n in names], y=[info["counts"][n] for n in names],
                              marker_color="#4c78a8", text=[info["counts"][n] for n in names],
                              textposition="outside"))
    figure.update_layout(height=280, margin=dict(l=10, r=10, t=30, b=10), yaxis_title="pictures",
                         title="Pictures per class")
    return figure


def dataset_view(info: dict) -> None:
    st.subheader("Current dataset")
    st.markdown(f"**{common.plain(info['name'])}**: {count_words(info['images'])} in "
                f"{count_words(len(info['classes']), 'class')}")
    small = [name for name, count in info["counts"].items() if count < 5]
    if len(info["classes"]) < 2:
        st.info("Add a second class: a classifier needs at least two." if info["classes"] else
                "No classes yet: add the first one below.")
    elif small:
        st.info("Few pictures in: " + ", ".join(common.plain(n) for n in small)
                + ". Training needs at least 2 per class and works better with 10 or more.")
    show_message("classes")
    for index, card in enumerate(datasets.class_cards(info["path"])):
        class_card(info, card, index)
    add_class_card()
    if info["classes"]:
        st.plotly_chart(class_chart(info), width="stretch", key="class_counts")
    if info["skipped"]:
        with st.expander(f"{count_words(len(info['skipped']), 'file')} left out of this dataset"):
            report_table(info["skipped"])
    if st.button("Clear the dataset", key="clear_dataset"):
        common.set_current_dataset(None)
        st.session_state.pop(MESSAGE, None)
        st.rerun()


def main() -> None:
    st.title("Data")
    st.caption("Bring labeled pictures: one class per label. Everything is checked and resized on the server; "
               "bad files are skipped and listed, never fatal.")
    show_message("top")
    demo, new, archive, unlabeled = st.tabs(["Demo data", "New dataset", "Zip", "Unlabeled (autoencoder)"])
    with demo:
        common.run_page(demo_section)
    with new:
        common.run_page(new_dataset_section)
    with archive:
        common.run_page(zip_section)
    with unlabeled:
        common.run_page(unlabeled_section)
    info = common.current_dataset()
    if info:
        dataset_view(info)
    else:
        st.info("No dataset yet. Start with **Use the demo data**, start a **New dataset**, or add a first class "
                "here:")
        show_message("classes")
        add_class_card()


common.run_page(main)
