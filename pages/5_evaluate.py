"""Evaluate page: how one of this session's trained models (a finished run, or a stopped one with the best
epoch it kept) does on its validation pictures (without a validation split, on its cross-validated
predictions) or on a labeled zip: the metrics, with the accuracy named as it was measured, a confusion matrix
whose cells open the pictures behind them, per-class bars, a 2-D map of the model's features, and a Grad-CAM
gallery. Evaluations are cached by run and model file."""
import hashlib
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from pages import common, glossary

GALLERY = 8          # Grad-CAM pictures in the gallery
CELL_LIMIT = 24      # pictures shown for one confusion-matrix cell
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
           "#bab0ac"]


# ---------------------------------------------------------------------- cached core calls

@st.cache_resource(show_spinner=False, max_entries=8)
def evaluation(run_dir: str, stamp: int, data_digest: str | None, _data: bytes | None = None):
    """(result, dataset) of core.evaluation, shared read-only by every rerun and session of this model."""
    from core import evaluation as core_evaluation

    return core_evaluation.evaluate_with_images(run_dir, _data)


@st.cache_data(show_spinner=False, max_entries=32)
def gradcam_gallery(run_dir: str, stamp: int, data_digest: str | None, indices: tuple, _dataset) -> list:
    from core import explain, predict

    predictor = predict.load_predictor(run_dir)
    return [explain.overlay(_dataset.images[i], explain.grad_cam(predictor, _dataset.images[i])) for i in indices]


def class_explained(run_dir: str) -> bool:
    from core import explain, predict

    return explain.explains_class(predict.load_predictor(run_dir))


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


# ---------------------------------------------------------------------- figures

def confusion_figure(matrix: list[list[int]], classes: list[str]) -> go.Figure:
    """Counts as a heatmap (rows: true class, columns: predicted). Heatmap cells send no selection
    events in Streamlit, so an invisible square marker sits on each cell to be clicked."""
    n = len(classes)
    names = [common.plotly_text(name, 30) for name in classes]
    cells = [(t, p) for t in range(n) for p in range(n)]
    hover = "true: %{customdata[2]}<br>predicted: %{customdata[3]}<br>pictures: %{customdata[4]}<extra></extra>"
    figure = go.Figure()
    figure.add_trace(go.Heatmap(z=matrix, x=list(range(n)), y=list(range(n)), colorscale="Blues", showscale=False,
                                text=matrix, texttemplate="%{text}", textfont=dict(size=16), hoverinfo="skip",
                                xgap=2, ygap=2))
    figure.add_trace(go.Scatter(
        x=[p for _, p in cells], y=[t for t, _ in cells], mode="markers", showlegend=False,
        customdata=[[t, p, names[t], names[p], matrix[t][p]] for t, p in cells], hovertemplate=hover,
        marker=dict(symbol="square", size=max(18, int(300 / max(n, 1))), color="rgba(0,0,0,0)",
                    line=dict(width=0)),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1))))
    side = max(320, min(640, 90 * n + 120))
    figure.update_layout(height=side, margin=dict(l=10, r=10, t=30, b=10), clickmode="event+select",
                         dragmode=False, title="Confusion matrix: click a cell to see its pictures")
    figure.update_xaxes(title="predicted class", tickvals=list(range(n)), ticktext=names, side="bottom",
                        showgrid=False, zeroline=False, range=[-0.5, n - 0.5], fixedrange=True)
    figure.update_yaxes(title="true class", tickvals=list(range(n)), ticktext=names, autorange="reversed",
                        showgrid=False, zeroline=False, fixedrange=True)
    return figure


def per_class_figure(result: dict) -> go.Figure:
    classes = result["classes"]
    names = [common.plotly_text(name, 30) for name in classes]
    figure = go.Figure()
    for metric, colour in (("precision", "#4c78a8"), ("recall", "#f58518"), ("f1", "#54a24b")):
        values = [result["per_class"][name][metric] for name in classes]
        figure.add_trace(go.Bar(x=names, y=values, name="F1" if metric == "f1" else metric, marker_color=colour,
                                text=[f"{v:.2f}" for v in values], textposition="outside",
                                hovertemplate="%{x}: %{y:.2f}<extra>" + metric + "</extra>"))
    figure.update_layout(barmode="group", height=360, margin=dict(l=10, r=10, t=30, b=10), title="Per class",
                         yaxis=dict(range=[0, 1.15], title="score"), legend=dict(orientation="h", y=-0.2))
    return figure


def feature_map_figure(points: dict, classes: list[str]) -> go.Figure:
    figure = go.Figure()
    predicted = points.get("predicted") or points["labels"]
    for index, name in enumerate(classes):
        where = [i for i, label in enumerate(points["labels"]) if label == name]
        if not where:
            continue
        wrong = [predicted[i] != name for i in where]
        colour = PALETTE[index % len(PALETTE)]
        # A legend entry of its own: the legend would otherwise copy the first point's symbol (maybe an x).
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=common.plotly_text(name, 30),
                                    legendgroup=str(index), marker=dict(size=11, color=colour)))
        figure.add_trace(go.Scatter(
            x=[points["x"][i] for i in where], y=[points["y"][i] for i in where], mode="markers",
            name=common.plotly_text(name, 30), legendgroup=str(index), showlegend=False,
            marker=dict(size=11, color=colour,
                        symbol=["x" if bad else "circle" for bad in wrong], line=dict(width=1, color="white")),
            customdata=[[common.plotly_text(points["paths"][i], 60), common.plotly_text(predicted[i], 30)]
                        for i in where],
            hovertemplate="%{customdata[0]}<br>predicted: %{customdata[1]}<extra>" + common.plotly_text(name, 30)
                          + "</extra>"))
    figure.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10),
                         title="What the model sees: a map of the pictures' features (2-D projection)",
                         xaxis_title="map across (the direction the features differ most)",
                         yaxis_title="map up (the next most)")
    return figure


# ---------------------------------------------------------------------- sections

def metrics_row(result: dict) -> None:
    from core import measured

    per_class = result["per_class"].values()
    macro_f1 = sum(item["f1"] for item in per_class) / max(1, len(result["per_class"]))
    a, b, c, d = st.columns(4)
    if result.get("evaluation"):  # the run's own pictures: say how they measure it
        measure = measured.measure(result["evaluation"])
        a.metric(measure.title, f"{result['accuracy']:.1%}", help=measure.explained)
    else:
        a.metric("Accuracy", f"{result['accuracy']:.1%}",
                 help=f"{glossary.explain('accuracy')} Here: on the pictures of the zip.")
    b.metric("Pictures evaluated", result["n"])
    c.metric("Mistakes", len(result["misclassified"]))
    d.metric("Average F1 over classes", f"{macro_f1:.2f}",
             help=f"{glossary.explain('average F1 over classes')} {glossary.explain('F1')}")
    st.caption(f"Measured on: {common.plain(result.get('data', ''), 300)}")
    if result.get("skipped"):
        st.warning(f"{len(result['skipped'])} pictures were left out of the evaluation: "
                   + "; ".join(f"{common.plain(s.get('path'), 60)}: {common.plain(s.get('reason'), 120)}"
                               for s in result["skipped"][:5]) + (" ..." if len(result["skipped"]) > 5 else ""))


def confusion_section(row: dict, result: dict, dataset) -> None:
    from core import evaluation as core_evaluation

    classes, matrix = result["classes"], result["confusion_matrix"]
    names = [str(name) for name in classes]
    chart_key, pick_key, seen_key = f"cm::{row['id']}", f"cm_cell::{row['id']}", f"_cm_click::{row['id']}"
    event = common.show_chart(confusion_figure(matrix, classes), key=chart_key, on_select="rerun",
                              selection_mode="points", config={"displayModeBar": False})
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    clicked = None
    for point in points:
        data = point.get("customdata")
        if data and len(data) >= 2:
            clicked = (int(data[0]), int(data[1]))
    # Apply a click once; afterwards the selectbox (also the keyboard's way in) is the one truth.
    if clicked is not None and st.session_state.get(seen_key) != clicked:
        st.session_state[seen_key] = clicked
        st.session_state[pick_key] = clicked
    cells = [(t, p) for t in range(len(names)) for p in range(len(names))]
    cells.sort(key=lambda cell: (cell[0] == cell[1], -matrix[cell[0]][cell[1]]))  # mistakes first, biggest first
    choice = st.selectbox(
        "Pictures behind a cell", cells, index=None, key=pick_key, placeholder="Click a cell, or choose one here",
        format_func=lambda cell: (f"true {names[cell[0]]}, predicted {names[cell[1]]} "
                                  f"({count(matrix[cell[0]][cell[1]], 'picture')})"))
    if choice is None:
        return
    true, predicted = names[choice[0]], names[choice[1]]
    examples = core_evaluation.cell_examples(result, dataset, true, predicted, limit=CELL_LIMIT)
    verdict = "right" if true == predicted else "wrong"
    if not examples:
        st.caption(f"No picture of {common.plain(true)} was predicted as {common.plain(predicted)}.")
        return
    st.markdown(f"**{count(len(examples), 'picture')} of {common.plain(true)} predicted as {common.plain(predicted)}** "
                f"({verdict}), most confident first")
    st.image([image for _, image in examples], width=96,
             caption=[f"{common.plain(Path(item['path']).name, 30)} · {item['confidence']:.0%}"
                      for item, _ in examples])


def gallery_section(row: dict, result: dict, dataset, digest: str | None) -> None:
    predictions = result["predictions"]
    mistakes = [item["index"] for item in result["misclassified"]]
    right = [item["index"] for item in sorted(predictions, key=lambda item: -item["confidence"])
             if item["true"] == item["predicted"]]
    # Up to half mistakes, the rest confident right answers; whichever runs short, the other fills in.
    shown_mistakes = mistakes[:max(GALLERY // 2, GALLERY - len(right))]
    indices = tuple(shown_mistakes + right[:GALLERY - len(shown_mistakes)])
    if not indices:
        return
    with st.spinner("Drawing Grad-CAM for the gallery..."):
        overlays = gradcam_gallery(row["path"], common.model_stamp(row), digest, indices, dataset)
    captions = []
    for index in indices:
        item = predictions[index]
        if item["true"] == item["predicted"]:
            captions.append(f"✓ {common.plain(item['true'], 30)} ({item['confidence']:.0%})")
        else:
            captions.append(f"✗ {common.plain(item['true'], 30)}, said {common.plain(item['predicted'], 30)} "
                            f"({item['confidence']:.0%})")
    st.subheader("Grad-CAM gallery", help=glossary.explain("Grad-CAM"))
    if class_explained(row["path"]):
        st.caption("Red marks the regions that pushed the model towards its answer. Mistakes first.")
    else:
        st.caption("This head (SVM or random forest) has no gradient, so the map shows where the frozen network's "
                   "features are strongest, not the evidence for one class. Mistakes first.")
    st.image(overlays, caption=captions, width=104)


OWN_PICTURES = "Its own pictures"


def data_choice(row: dict) -> tuple[str | None, bytes | None]:
    """(digest, zip bytes) of a labeled zip to evaluate on, or (None, None) for the run's own pictures (its
    validation split, or without one the predictions it stored, each by a model that did not see the picture)."""
    from core import measured

    own = f"Its {measured.of_run(row['path']).pictures}"
    source = st.radio("Evaluate on", [OWN_PICTURES, "A labeled zip (one folder per class)"], horizontal=True,
                      key="eval_source", format_func=lambda option: own if option == OWN_PICTURES else option)
    if source == OWN_PICTURES:
        return None, None
    upload = st.file_uploader("Labeled zip", type=["zip"], key="eval_zip")
    if upload is None:
        st.caption("Upload a zip with one folder per class, named like the model's classes.")
        return "", None
    data = upload.getvalue()
    return hashlib.sha256(data).hexdigest(), data


def main() -> None:
    st.title("Evaluate")
    row = common.pick_model_run("evaluate_run", "Run (one of your trained models)",
                                "its evaluation shows here.")
    if row is None:
        return
    digest, data = data_choice(row)
    if digest == "":
        return
    with st.spinner("Evaluating the model..."):
        result, dataset = evaluation(row["path"], common.model_stamp(row), digest, data)
    metrics_row(result)
    left, right = st.columns([1, 1])
    with left:
        confusion_section(row, result, dataset)
    with right:
        common.show_chart(per_class_figure(result), key="per_class", config={"displayModeBar": False})
    if result.get("feature_map"):
        common.show_chart(feature_map_figure(result["feature_map"], result["classes"]), key="feature_map")
        st.caption("Each dot is a picture, coloured by its true class; an x marks a mistake. Classes that sit apart "
                   "are easy for the model; mixed clouds are where it gets confused.",
                   help=glossary.explain("feature map"))
    try:  # the metrics above stay useful without the gallery
        gallery_section(row, result, dataset, digest)
    except Exception as error:  # noqa: BLE001
        common.show_error(error)
    glossary.show("accuracy", "confusion matrix", "precision", "recall", "F1", "average F1 over classes",
                  "feature map", "features", "Grad-CAM", "cross-validation")


common.run_page(main)
