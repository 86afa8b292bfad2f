"""Data page: the demo set in one click, per-class uploads, a zip, camera photos, an unlabeled set;
then the dataset as a class-count chart, thumbnails per class and the report of skipped files."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core import demo_data, ingest, runs
from pages import common

THUMBNAILS_PER_CLASS = 8
THUMBNAIL_SIZE = 64


def progress_bar(text: str):
    """An st.progress bar and the (fraction, message) callback core's loaders report to."""
    bar = st.progress(0.0, text=text)

    def report(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=common.plain(message or text, 120))

    return bar, report


def remember_report(added: int, dataset: ingest.Dataset, what: str) -> None:
    """What the last ingest kept and skipped, shown once after the rerun."""
    st.session_state["last_ingest"] = {"what": what, "added": added, "skipped": list(dataset.skipped)}


def add_to_current(new: ingest.Dataset, what: str) -> None:
    """Merge freshly ingested images into the current dataset (if any) and save the result."""
    if len(new.images) == 0:
        remember_report(0, new, what)
        return
    current = common.current_dataset()
    combined, name = new, "My pictures"
    if current:
        combined = ingest.merge(common.load_dataset(current["path"], common.STORAGE_SIZE), new)
        name = current["name"] if current["name"].endswith("My pictures") else current["name"] + " + My pictures"
    common.save_dataset(combined, name)
    remember_report(len(new.images), new, what)


def demo_section() -> None:
    per_class, size = common.demo_size()
    st.write(f"Generated pictures of {len(demo_data.CLASSES)} shapes ({', '.join(demo_data.CLASSES)}), "
             f"{per_class} per class at {size} px. Good for a first run: it needs nothing from you.")
    if st.button("Use the demo data", type="primary", key="use_demo"):
        bar, report = progress_bar("Drawing the demo pictures...")
        dataset = demo_data.as_dataset(per_class=per_class, size=size, seed=0)
        report(0.7, "Saving the demo dataset...")
        common.save_dataset(dataset, f"Demo shapes ({per_class} per class)")
        report(1.0, "Done")
        remember_report(len(dataset.images), dataset, "demo data")
        st.rerun()


def upload_section() -> None:
    st.write("Give a class name, drop its pictures (JPEG, PNG, WebP, GIF, BMP, TIFF), and add them. "
             "Repeat for each class. Files that are not usable images are skipped and listed below.")
    round_key = st.session_state.setdefault("upload_round", 0)
    class_name = st.text_input("Class name", key=f"upload_class_{round_key}", placeholder="e.g. cats")
    files = st.file_uploader("Pictures of this class", accept_multiple_files=True, key=f"upload_files_{round_key}")
    if st.button("Add these pictures", key="add_uploads", disabled=not files):
        if not class_name.strip():
            st.warning("Type a class name first: it is the label these pictures get.")
            return
        bar, report = progress_bar("Reading the pictures...")
        new = ingest.from_uploads([(f.name, f.getvalue(), class_name) for f in files],
                                  common.STORAGE_SIZE, policy=common.STORAGE_POLICY, progress=report)
        add_to_current(new, f"{len(files)} uploaded files")
        st.session_state["upload_round"] = round_key + 1  # empties the uploader for the next class
        st.rerun()


def zip_section() -> None:
    st.write("A zip with one folder per class (images inside each). It replaces the current dataset.")
    archive = st.file_uploader("Zip of class folders", type=["zip"], key="zip_file")
    if st.button("Use this zip", key="use_zip", disabled=archive is None):
        bar, report = progress_bar("Reading the zip...")
        dataset = ingest.from_zip(archive.getvalue(), common.STORAGE_SIZE, policy=common.STORAGE_POLICY,
                                  progress=report)
        if len(dataset.images) == 0:
            remember_report(0, dataset, f"zip {archive.name}")
            st.error("No usable image was found in that zip: it needs one folder per class with pictures "
                     "inside. See what was skipped below.")
            show_last_report()
            return
        common.save_dataset(dataset, f"Zip: {archive.name}")
        remember_report(len(dataset.images), dataset, f"zip {archive.name}")
        st.rerun()


def camera_section() -> None:
    st.write("Take photos with this device's camera and add each to a class.")
    if not st.toggle("Turn on the camera", key="camera_on"):
        return
    current = common.current_dataset()
    known = current["classes"] if current else []
    choice = st.selectbox("Class", known + ["A new class..."], key="camera_class_choice") if known else None
    class_name = choice
    if not known or choice == "A new class...":
        class_name = st.text_input("New class name", key="camera_new_class")
    photo = st.camera_input("Photo", key=f"camera_{st.session_state.get('camera_round', 0)}")
    if st.button("Add the photo", key="add_photo", disabled=photo is None):
        if not (class_name or "").strip():
            st.warning("Type a class name first.")
            return
        count = st.session_state.get("camera_round", 0) + 1
        new = ingest.from_uploads([(f"camera-{count:03d}.jpg", photo.getvalue(), class_name)],
                                  common.STORAGE_SIZE, policy=common.STORAGE_POLICY)
        add_to_current(new, "camera photo")
        st.session_state["camera_round"] = count
        st.rerun()


def unlabeled_section() -> None:
    st.write("Optional, for the Autoencoder page: pictures without labels (a zip, or many files). The "
             "autoencoder learns from them first, then its encoder is transferred to a classifier.")
    files = st.file_uploader("Unlabeled pictures or one zip", accept_multiple_files=True, key="unlabeled_files")
    if st.button("Use as the unlabeled set", key="use_unlabeled", disabled=not files):
        bar, report = progress_bar("Reading the unlabeled pictures...")
        zips = [f for f in files if f.name.lower().endswith(".zip")]
        if zips:
            dataset = ingest.load_unlabeled(zips[0].getvalue(), common.STORAGE_SIZE, policy=common.STORAGE_POLICY,
                                            progress=report)
        else:
            labeled = ingest.from_uploads([(f.name, f.getvalue(), "unlabeled") for f in files],
                                          common.STORAGE_SIZE, policy=common.STORAGE_POLICY, progress=report)
            dataset = ingest.Dataset(labeled.images, np.full(len(labeled.images), -1, dtype=np.int64), [],
                                     labeled.paths, labeled.skipped, labeled.image_size)
        if len(dataset.images) == 0:
            st.error("None of those files is a usable picture; nothing was kept.")
            report_table(dataset.skipped)
            return
        folder = runs.workspace() / "unlabeled" / common.owner() / common.new_dataset_id()
        ingest.save_dataset(dataset, str(folder), source="unlabeled upload")
        st.session_state["unlabeled"] = {"path": str(folder), "images": int(len(dataset.images)),
                                         "skipped": list(dataset.skipped)}
        st.rerun()
    unlabeled = st.session_state.get("unlabeled")
    if unlabeled:
        st.success(f"Unlabeled set ready: {unlabeled['images']} pictures "
                   f"({len(unlabeled['skipped'])} skipped). The Autoencoder page uses it.")
        if unlabeled["skipped"]:
            report_table(unlabeled["skipped"])


def report_table(skipped: list[dict]) -> None:
    """The skipped files and why, as a table (cells are plain text, never HTML or Markdown)."""
    rows = [{"file": str(item.get("path", "")), "why it was skipped": str(item.get("reason", ""))}
            for item in skipped]
    st.dataframe(rows, hide_index=True, width="stretch")


def show_last_report() -> None:
    last = st.session_state.get("last_ingest")
    if not last:
        return
    skipped = last["skipped"]
    message = f"Added {last['added']} pictures from the {common.plain(last['what'])}."
    if skipped:
        st.warning(message + f" {len(skipped)} files were skipped; the table says why.")
        report_table(skipped)
    elif last["added"]:
        st.success(message)
    else:
        st.warning(message)


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
    st.markdown(f"**{common.plain(info['name'])}**: {info['images']} pictures in {len(info['classes'])} classes")
    small = [name for name, count in info["counts"].items() if count < 5]
    if len(info["classes"]) < 2:
        st.info("Add a second class: a classifier needs at least two.")
    elif small:
        st.info("Few pictures in: " + ", ".join(common.plain(n) for n in small)
                + ". Training needs at least 2 per class and works better with 10 or more.")
    st.plotly_chart(class_chart(info), width="stretch", key="class_counts")
    thumbs = common.load_dataset(info["path"], THUMBNAIL_SIZE)
    for index, name in enumerate(thumbs.classes):
        picks = np.flatnonzero(thumbs.labels == index)[:THUMBNAILS_PER_CLASS]
        st.markdown(f"**{common.plain(name)}**: {info['counts'].get(name, len(picks))} pictures")
        if len(picks):
            st.image([np.asarray(thumbs.images[i], dtype=np.uint8) for i in picks], width=THUMBNAIL_SIZE)
    if info["skipped"]:
        with st.expander(f"{len(info['skipped'])} files were left out of this dataset"):
            report_table(info["skipped"])
    if st.button("Clear the dataset", key="clear_dataset"):
        common.set_current_dataset(None)
        st.session_state.pop("last_ingest", None)
        st.rerun()


def main() -> None:
    st.title("Data")
    st.caption("Bring labeled pictures: one class per label. Everything is checked and resized on the server; "
               "bad files are skipped and listed, never fatal.")
    show_last_report()
    demo, upload, archive, camera, unlabeled = st.tabs(
        ["Demo data", "Upload per class", "Zip", "Camera", "Unlabeled (autoencoder)"])
    with demo:
        common.run_page(demo_section)
    with upload:
        common.run_page(upload_section)
    with archive:
        common.run_page(zip_section)
    with camera:
        common.run_page(camera_section)
    with unlabeled:
        common.run_page(unlabeled_section)
    info = common.current_dataset()
    if info:
        dataset_view(info)
    else:
        st.info("No dataset yet. Start with **Use the demo data**, or upload your own pictures.")


common.run_page(main)
