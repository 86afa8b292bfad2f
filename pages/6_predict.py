"""Predict page: pictures in (upload one or many, or the camera), the model's classes out as bars (every
class, up to 10), Grad-CAM and the nearest training pictures to say why, a batch table as CSV, and the model
bundle and HTML report to take away. Bad files are warned about by name; the rest still predict."""
import pandas as pd
import streamlit as st

from pages import common, share_view

NEAREST = 5


# ---------------------------------------------------------------------- cached core calls

@st.cache_data(show_spinner=False, max_entries=64)
def predictions(run_dir: str, stamp: int, files: tuple, top_k: int) -> list[dict]:
    from core import predict

    return predict.predict_files(run_dir, list(files), top_k=top_k)


@st.cache_data(show_spinner=False, max_entries=64)
def explanation(run_dir: str, stamp: int, data: bytes, k: int) -> dict:
    """Grad-CAM overlay for the predicted class and the k nearest training pictures of one file."""
    from core import explain, predict

    predictor = predict.load_predictor(run_dir)
    image = predictor.load_file(data)
    heatmap = explain.grad_cam(predictor, image)
    return {"image": image, "overlay": explain.overlay(image, heatmap),
            "nearest": explain.nearest_training_images(run_dir, image, k=k)}


@st.cache_data(show_spinner=False, max_entries=8)
def bundle(run_dir: str, stamp: int) -> bytes:
    from core import export

    return export.bundle_zip(run_dir)


@st.cache_data(show_spinner=False, max_entries=8)
def report(run_dir: str, stamp: int) -> str:
    from core import report as run_report

    return run_report.build_report(run_dir)


# ---------------------------------------------------------------------- drawing

def picture_inputs() -> list[tuple[str, bytes]]:
    files = st.file_uploader("Pictures to classify (drag and drop one or many)", accept_multiple_files=True,
                             key="predict_files")
    pictures = [(f.name, f.getvalue()) for f in files or []]
    if st.toggle("Use the camera", key="predict_camera_on"):
        photo = st.camera_input("Take a picture", key="predict_camera")
        if photo is not None:
            pictures.append(("camera photo", photo.getvalue()))
    return pictures


def show_predictions(row: dict, pictures: list[tuple[str, bytes]], top_k: int) -> None:
    run_dir, stamp = row["path"], common.model_stamp(row)
    with st.spinner("Predicting..."):
        rows = predictions(run_dir, stamp, tuple(pictures), top_k)
    bad = [r for r in rows if "error" in r]
    good = [(r, data) for r, (_, data) in zip(rows, pictures) if "error" not in r]
    for r in bad:
        st.warning(f"{common.plain(r['file'], 120)} was not predicted: {common.plain(r['error'], 300)}")
    for index, (r, data) in enumerate(good):
        with st.container(border=True):
            picture, bars = st.columns([1, 4])
            picture.image(data, caption=common.plain(r["file"], 80), width=160)
            bars.markdown(f"**{common.plain(r['label'], 80)}** ({r['confidence']:.1%} sure)")
            bars.plotly_chart(common.probability_bars(r), width="stretch", key=f"bars::{index}",
                              config={"displayModeBar": False})
    if good:
        explain_section(row, good)
    if len(rows) > 1 or bad:
        batch_table(rows)


def explain_section(row: dict, good: list[tuple[dict, bytes]]) -> None:
    st.subheader("Why?")
    index = 0
    if len(good) > 1:
        names = [f"{i + 1}. {r['file']} ({r['label']})" for i, (r, _) in enumerate(good)]
        index = st.selectbox("Explain the prediction for", range(len(good)), key="explain_pick",
                             format_func=lambda i: names[i])
    result, data = good[index]
    with st.spinner("Computing Grad-CAM and the nearest training pictures..."):
        try:
            why = explanation(row["path"], common.model_stamp(row), data, NEAREST)
        except Exception as error:  # noqa: BLE001 - the predictions above stay useful without it
            common.show_error(error)
            return
    left, right, _ = st.columns([1, 1, 2])
    left.image(why["image"], caption="What the model sees (resized as in training)", width="stretch")
    right.image(why["overlay"], caption=gradcam_caption(row, result), width="stretch")
    nearest = why["nearest"]
    if nearest:
        st.markdown("**The most similar training pictures** (by the model's features)")
        columns = st.columns(max(len(nearest), 6))
        for column, item in zip(columns, nearest):
            caption = common.plain(item.get("label", ""), 40)
            distance = item.get("distance")
            if distance is not None:
                caption += " · the same picture" if distance < 1e-4 else f" · distance {distance:.3f}"
            column.image(item["image"], caption=caption, width="stretch")


def gradcam_caption(row: dict, result: dict) -> str:
    from core import explain, predict

    if explain.explains_class(predict.load_predictor(row["path"])):
        return f"Grad-CAM: red is where it looked to decide \"{common.plain(result['label'], 60)}\""
    return "Where the frozen network's features are strongest (an SVM or forest head has no gradient)"


def batch_table(rows: list[dict]) -> None:
    from core import predict

    st.subheader("All pictures")
    table = pd.DataFrame([{"file": str(r["file"]), "prediction": str(r.get("label", "")),
                           "confidence": r.get("confidence"), "problem": str(r.get("error", ""))} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"confidence": st.column_config.ProgressColumn(
                     "confidence", format="percent", min_value=0.0, max_value=1.0)})
    st.download_button("Download the table (CSV)", predict.predictions_csv(rows), file_name="predictions.csv",
                       mime="text/csv", key="download_csv", icon=":material/download:", on_click="ignore")


def downloads(row: dict) -> None:
    st.subheader("Take the model with you")
    run_dir, stamp = row["path"], common.model_stamp(row)
    left, right = st.columns(2)
    with left:
        st.caption("The model (model.keras), its class names (labels.json) and its settings, as one zip.")
        try:
            st.download_button("Download the model bundle (zip)", bundle(run_dir, stamp),
                               file_name=f"model-{row['id']}.zip", mime="application/zip", key="download_bundle",
                               icon=":material/deployed_code:", on_click="ignore")
        except Exception as error:  # noqa: BLE001 - the report beside it may still work
            common.show_error(error)
    with right:
        st.caption("One HTML file with the settings, curves, confusion matrix and examples; it opens offline.")
        ready = st.session_state.setdefault("_reports_built", set())
        if (run_dir, stamp) not in ready:
            if st.button("Build the HTML report", key="build_report", icon=":material/description:"):
                with st.spinner("Building the report (evaluating the model, drawing Grad-CAM examples)..."):
                    try:
                        report(run_dir, stamp)
                        ready.add((run_dir, stamp))
                        st.rerun()  # the download button takes the build button's place
                    except Exception as error:  # noqa: BLE001
                        common.show_error(error)
        if (run_dir, stamp) in ready:
            st.download_button("Download the HTML report", report(run_dir, stamp), file_name=f"report-{row['id']}.html",
                               mime="text/html", key="download_report", icon=":material/download:",
                               on_click="ignore")


def main() -> None:
    st.title("Predict")
    row = common.pick_model_run("predict_run", "Model (one of your trained models)",
                                "come back here to try it on your own pictures.")
    if row is None:
        return
    pictures = picture_inputs()
    if pictures:
        show_predictions(row, pictures, common.MAX_CLASSES_SHOWN)  # core clips it to the model's classes
    else:
        st.caption("Upload pictures (or turn on the camera) to see what the model thinks they are.")
    st.divider()
    downloads(row)
    share_view.render_owner_panel(row)  # make, list and revoke read-only share links to this model


common.run_page(main)
