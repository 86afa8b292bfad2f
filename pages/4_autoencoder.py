"""Autoencoder page: pretrain a convolutional autoencoder on every picture (labels not needed),
watch its reconstructions sharpen epoch by epoch, then see its encoder transferred to a classifier.

The run goes through the same job manager as a VGG16 run (model="autoencoder"); a fragment
re-reads the run's events and reconstructions.png every second (``pages.live_run``, shared with the Train
page), so the script never waits.
"""
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core import datasets, runs
from core.config import AUTOENCODER_HEAD, HEADS, TrainConfig
from pages import common, glossary, live_run

KEY = "ae::"                     # widget keys: ae::<setting>
SETTINGS = "autoencoder_settings"  # session state: this page's settings, kept across page switches
AE_LEARNING_RATES = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2]
IMAGE_SIZES = [32, 48, 64, 96, 128]
HEAD_LABELS = {"gap": "Global average pooling + softmax (small, fast)",
               "seed": "Flatten + Dense 1024 + softmax (the seed recipe)",
               "svm": "SVM on the encoder's features", "random_forest": "Random forest on the encoder's features"}


# ---------------------------------------------------------------------- settings

def settings() -> dict:
    """This page's settings, first taken from the session's training settings (Model page)."""
    if SETTINGS not in st.session_state:
        base = common.config()
        st.session_state[SETTINGS] = {
            "autoencoder_epochs": int(base.get("autoencoder_epochs") or TrainConfig.autoencoder_epochs),
            "autoencoder_learning_rate": nearest(base.get("autoencoder_learning_rate"), AE_LEARNING_RATES),
            "epochs": int(base.get("epochs") or TrainConfig.epochs),
            "head": AUTOENCODER_HEAD,  # the Model page's head is VGG16's; this path has its own default
            "fine_tune_encoder": bool(base.get("fine_tune_encoder")),
            "image_size": nearest(base.get("image_size"), IMAGE_SIZES),
            "use_unlabeled": True,
        }
    return st.session_state[SETTINGS]


def nearest(value, options):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return options[len(options) // 2]
    return min(options, key=lambda option: abs(np.log(option) - np.log(max(value, 1e-12))))


def widget_key(name: str, values: dict) -> str:
    """Seed a widget from the saved settings the first time it is drawn (and after a page switch)."""
    key = KEY + name
    if key not in st.session_state:
        st.session_state[key] = values[name]
    return key


def settings_form(values: dict) -> None:
    left, right = st.columns(2)
    with left:
        st.markdown("**1. Autoencoder (no labels needed)**")
        values["autoencoder_epochs"] = st.number_input(
            "Autoencoder epochs", min_value=1, max_value=200, step=1, key=widget_key("autoencoder_epochs", values),
            help="Passes over every picture while the autoencoder learns to rebuild them.")
        values["autoencoder_learning_rate"] = st.select_slider(
            "Autoencoder learning rate", AE_LEARNING_RATES, key=widget_key("autoencoder_learning_rate", values),
            format_func=glossary.decimal, help=glossary.explain("learning rate"))
        values["image_size"] = st.select_slider(
            "Image size (pixels)", IMAGE_SIZES, key=widget_key("image_size", values),
            help="Smaller trains much faster; 32 or 64 suits the demo pictures.")
    with right:
        st.markdown("**2. Transfer: a classifier on the encoder**")
        values["head"] = st.selectbox("Head", list(HEADS), key=widget_key("head", values),
                                      format_func=lambda head: HEAD_LABELS.get(head, head),
                                      help=glossary.explain("head"))
        values["epochs"] = st.number_input("Classifier epochs", min_value=1, max_value=200, step=1,
                                           key=widget_key("epochs", values), help=glossary.explain("epoch"))
        values["fine_tune_encoder"] = st.checkbox(
            "Fine-tune the encoder afterwards (at a tenth of the learning rate)",
            key=widget_key("fine_tune_encoder", values),
            disabled=values["head"] in ("svm", "random_forest"),
            help="First the encoder stays frozen and only the head learns; then the encoder may adapt too.")
    unlabeled_section(values)


def unlabeled_section(values: dict) -> None:
    unlabeled = st.session_state.get("unlabeled")
    if unlabeled:
        values["use_unlabeled"] = st.checkbox(
            f"Also learn from the unlabeled set ({unlabeled['images']} pictures)",
            key=widget_key("use_unlabeled", values))
        if unlabeled.get("skipped"):
            st.caption(f"Skipped from the unlabeled set: {skipped_words(unlabeled['skipped'])}.")
    else:
        st.caption("The autoencoder learns from your labeled pictures. Extra pictures without labels help it "
                   "more: add some below or on the Data page's Unlabeled tab.")
    with st.expander("Upload an unlabeled set" if not unlabeled else "Replace the unlabeled set"):
        files = st.file_uploader("Pictures without labels, or one zip of them", accept_multiple_files=True,
                                 key="ae_unlabeled_files")
        if st.button("Use these pictures", key="ae_use_unlabeled", disabled=not files):
            with st.spinner("Reading the pictures..."):
                saved = save_unlabeled(files)
            if saved:
                st.rerun()


def skipped_words(skipped: list[dict], shown: int = 5) -> str:
    words = "; ".join(f"{common.plain(item.get('path'), 60)} ({common.plain(item.get('reason'), 120)})"
                      for item in skipped[:shown])
    return words + (f" and {len(skipped) - shown} more" if len(skipped) > shown else "")


def save_unlabeled(files) -> bool:
    """Keep uploaded pictures (or one zip) as the session's unlabeled set, as the Data page does."""
    dataset = datasets.read_unlabeled([(f.name, f.getvalue()) for f in files], common.STORAGE_SIZE,
                                      policy=common.STORAGE_POLICY)
    if len(dataset.images) == 0:
        st.error("None of those files is a usable picture, so nothing was kept: " + skipped_words(dataset.skipped))
        return False
    folder = datasets.save_unlabeled(dataset, runs.workspace(), common.owner())
    st.session_state["unlabeled"] = {"path": str(folder), "images": int(len(dataset.images)),
                                     "skipped": list(dataset.skipped)}
    return True


def start_run(values: dict, info: dict) -> None:
    unlabeled = st.session_state.get("unlabeled")
    chosen = {key: values[key] for key in ("autoencoder_epochs", "autoencoder_learning_rate", "epochs", "head",
                                           "fine_tune_encoder", "image_size")}
    chosen["autoencoder_epochs"], chosen["epochs"] = int(chosen["autoencoder_epochs"]), int(chosen["epochs"])
    chosen["fine_tune_encoder"] = bool(chosen["fine_tune_encoder"]) and values["head"] not in ("svm", "random_forest")
    # the autoencoder path is always the manual recipe (auto chooses among VGG16 models only), and it reads no
    # VGG16 weights: the Model page's weights choice (ImageNet missing here, a file not yet uploaded) never
    # blocks it, and no uploaded file's server path is filed with the run
    settings_values = {**common.config(), **chosen, "model": "autoencoder", "recipe": "manual", "preset": None,
                       "two_phase": False, "weights": "none",
                       "unlabeled": unlabeled["path"] if unlabeled and values.get("use_unlabeled") else None}
    config, problems = common.validate_config(settings_values)
    if problems:
        common.show_config_problems(problems)
        return
    run_id = common.job_manager().submit(config, info["path"], common.owner())
    common.set_current_run(run_id)
    st.session_state["ae_run"] = run_id
    st.session_state["ae_run_pick"] = run_id  # the run picker below shows the new run
    st.rerun()


# ---------------------------------------------------------------------- watching a run

def run_label(config: dict, run_id: str) -> str:
    return (f"{run_id} ({config.get('autoencoder_epochs')} autoencoder + {config.get('epochs')} classifier epochs, "
            f"{config.get('image_size')} px, head {glossary.head_words(config.get('head'))})")


def autoencoder_runs() -> list[dict]:
    return [row for row in common.my_runs() if row["config"].get("model") == "autoencoder"]


def reconstruction_figure(events: list[dict]) -> go.Figure:
    epochs = [e for e in events if e.get("type") == "epoch" and e.get("phase") == "autoencoder"]
    batches = [e for e in events if e.get("type") == "batch" and e.get("phase") == "autoencoder"]
    figure = go.Figure()
    if batches:
        figure.add_trace(go.Scatter(x=[e["epoch"] - 1 + e["batch"] / max(1, e["steps"]) for e in batches],
                                    y=[e.get("loss") for e in batches], mode="lines", name="each batch",
                                    line=dict(color="#1f77b4", width=1), opacity=0.35))
    for key, dash, name in (("loss", "solid", "training"), ("val_loss", "dash", "validation")):
        values = [e.get(key) for e in epochs]
        if any(v is not None for v in values):
            figure.add_trace(go.Scatter(x=[e["epoch"] for e in epochs], y=values, mode="lines+markers", name=name,
                                        line=dict(color="#1f77b4", dash=dash, width=2)))
    figure.update_layout(title="Reconstruction loss (lower is better)", height=320, uirevision="keep",
                         margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="center", x=0.5),
                         xaxis_title="epoch", yaxis_title="reconstruction loss")
    figure.update_xaxes(rangemode="tozero")
    top = common.loss_top([y for trace in figure.data for y in (trace.y or ())],
                          [v for e in epochs for v in (e.get("loss"), e.get("val_loss"))])
    if top is not None:  # the first batches' loss would flatten the rest of the curve
        figure.update_yaxes(range=[0, top])
    return figure


def show_grid(data: bytes, caption: str) -> None:
    """A reconstruction grid, as wide as its column so small pictures stay visible."""
    st.image(data, caption=caption, width="stretch")


def reconstructions(run_path: Path, epochs_done: int, total: int, finished: bool) -> None:
    latest = run_path / "reconstructions.png"
    history = sorted((run_path / "reconstructions").glob("epoch_*.png"))
    if finished and len(history) > 1:
        numbers = [int(p.stem.split("_")[1]) for p in history]
        picked = st.select_slider("Reconstructions after epoch", numbers, value=numbers[-1],
                                  key=f"ae_epoch::{run_path.name}")
        show_grid(history[numbers.index(picked)].read_bytes(),
                  f"Top row: inputs. Bottom row: the autoencoder's reconstructions after epoch {picked}.")
    elif latest.is_file():
        show_grid(latest.read_bytes(), "Top row: inputs. Bottom row: reconstructions after epoch "
                                       f"{epochs_done}{f' of {total}' if total else ''}.")
    else:
        st.caption("The reconstruction grid appears after the first autoencoder epoch.")


def render_run(run_id: str) -> None:
    status = common.run_status(run_id)
    if status is None:
        st.warning("This run is not available any more.")
        return
    state = status.get("state")
    events = common.new_events(run_id)
    summary = common.summarize_events(events)
    head, stop = st.columns([5, 1])
    head.markdown(f"**Run** `{run_id}`")
    if stop.button("Stop", key=f"ae_stop::{run_id}", disabled=not live_run.is_active(status)):
        live_run.stop(run_id, rerun=False)
    live_run.show_state(status)
    live_run.progress(summary, status)
    ae_epochs = [e for e in summary["epochs"] if e.get("phase") == "autoencoder"]
    total = ae_epochs[-1].get("epochs") if ae_epochs else None
    curve, grid = st.columns([2, 3])
    with curve:
        if ae_epochs or any(b.get("phase") == "autoencoder" for b in summary["batches"]):
            common.show_chart(reconstruction_figure(events), key=f"ae_loss::{run_id}")
            if len(ae_epochs) >= 2 and ae_epochs[0].get("loss"):
                drop = 1 - ae_epochs[-1]["loss"] / ae_epochs[0]["loss"]
                st.caption(f"Reconstruction loss {glossary.decimal(ae_epochs[0]['loss'])} after epoch 1, "
                           f"{glossary.decimal(ae_epochs[-1]['loss'])} after epoch {ae_epochs[-1]['epoch']} "
                           f"({drop:.0%} lower).", help=glossary.explain("reconstruction loss"))
        elif live_run.is_active(status):
            st.caption("The reconstruction loss curve appears with the first autoencoder batch.")
    with grid:
        reconstructions(common.run_dir(run_id), len(ae_epochs), total, finished=not live_run.is_active(status))
    classifier = [e for e in summary["epochs"] + summary["batches"] if e.get("phase") != "autoencoder"]
    if classifier:
        st.markdown("**The transferred classifier** (encoder frozen, then fine-tuned if chosen)")
        common.show_chart(common.curves_figure({run_id: events}), key=f"ae_curves::{run_id}")
    elif ae_epochs and live_run.is_active(status):
        st.caption("After the autoencoder, its encoder is frozen and a classifier head trains on the labeled "
                   "pictures: its curves appear here.")
    live_run.next_steps(status)
    live_run.follow_state(run_id, state)


def watched_run(rows: list[dict]) -> str | None:
    """The autoencoder run to show: picked here, else the current run if it is one, else the newest."""
    ids = [row["id"] for row in rows]
    if not ids:
        return None
    preferred = st.session_state.get("ae_run")
    if preferred not in ids:
        preferred = common.current_run() if common.current_run() in ids else ids[0]
    if len(ids) == 1:
        return ids[0]
    by_id = {row["id"]: row for row in rows}
    chosen = st.selectbox("Autoencoder run", ids, index=ids.index(preferred), key="ae_run_pick",
                          format_func=lambda run_id: run_label(by_id[run_id]["config"], run_id))
    st.session_state["ae_run"] = chosen
    return chosen


def main() -> None:
    st.title("Autoencoder")
    st.caption("Unsupervised transfer: an autoencoder learns to squeeze every picture through a small bottleneck "
               "and rebuild it, with no labels at all. Its encoder then becomes the frozen base of a classifier.")
    info = common.current_dataset()
    values = settings()
    if info:
        st.markdown(f"**Dataset:** {common.plain(info['name'])}, {info['images']} pictures, "
                    f"{len(info['classes'])} classes")
    else:
        st.info("No dataset yet. Go to the **Data** page and pick the demo data or upload pictures; then come "
                "back here to pretrain the autoencoder.")
        st.page_link("pages/1_data.py", label="Go to Data", icon=":material/photo_library:")
    settings_form(values)
    glossary.show("autoencoder", "encoder", "reconstruction loss", "head", "epoch", "learning rate", "fine-tuning")
    if st.button("Start autoencoder run", type="primary", key="ae_start", disabled=not info):
        start_run(values, info)
    rows = autoencoder_runs()
    if not rows:
        st.caption("Your autoencoder runs show here: the reconstruction loss, the pictures it rebuilds, then the "
                   "transferred classifier's curves.")
        return
    st.divider()
    live_run.watch(render_run, watched_run(rows))


common.run_page(main)
