"""A shared model, read-only: what a share link (``/?share=TOKEN``, core.shares) opens, and the owner's panel
on the Predict page that makes, lists and revokes such links.

The preview is the whole app for its visitor: the model card (classes, accuracy and how it was measured,
pictures per class, settings in plain words, the confusion matrix) and live testing (pictures uploaded or
taken with the camera). It has no navigation, no sidebar, no session (``common.owner`` is never called, so
no session token is minted or shown), and shows no dataset name, run id, server path or other run. Every
script run resolves the token again, so a revoked link stops working at its visitor's next click.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import streamlit as st

from core import measured, runs, shares
from pages import common

log = logging.getLogger("transfer_studio.share")

SHARE_PARAM = "share"          # URL query parameter holding a share token


# ---------------------------------------------------------------------- the app, for a share link

def requested() -> bool:
    """True when the URL is a share link: the visitor gets the preview alone."""
    return SHARE_PARAM in st.query_params


def show_alone() -> None:
    """Run the preview as the app's only page (hidden navigation, nothing in the sidebar), then end the
    script run, so nothing of the app's frame (session, navigation, sidebar) runs after it. Any other
    query parameter is dropped from the URL: a forwarded share link never carries a session."""
    for name in [name for name in st.query_params if name != SHARE_PARAM]:
        del st.query_params[name]
    st.navigation([st.Page(preview, title="Shared model", icon=":material/share:", default=True)],
                  position="hidden").run()
    st.stop()


def preview() -> None:
    """The page a share link opens: the model card and live testing, or a plain reason why not."""
    try:
        link = shares.resolve(st.query_params.get(SHARE_PARAM))
    except shares.ShareError as error:
        st.title("Shared model")
        st.warning(str(error), icon=":material/link_off:")
        return
    try:
        headline(link.run_dir)
        live_testing(link.run_dir)  # before the details: on a phone, trying it should not need much scrolling
        st.divider()
        about(link.run_dir)
    except Exception as error:  # noqa: BLE001 - a visitor sees plain words, never a traceback or a path
        log.warning("share preview failed: %s: %s", type(error).__name__, error, exc_info=True)
        st.error("This shared model cannot be shown right now. Try again in a moment; if it keeps happening, "
                 "ask the person who shared it.")


# ---------------------------------------------------------------------- the model card

def headline(run_dir: Path) -> None:
    """What the model tells apart and how often it is right, as it was measured."""
    classes = [str(name) for name in runs.read_json(run_dir / "labels.json", [])]
    metrics = runs.read_json(run_dir / "metrics.json")
    st.title("Shared model")
    st.markdown(f"It tells **{len(classes)} classes** of pictures apart: "
                + ", ".join(f"**{common.plain(name, 60)}**" for name in classes) + ".")
    st.caption("Shared read-only from Transfer Studio: try it on your own pictures below.")
    if (runs.read_status(run_dir) or {}).get("state") == "stopped":
        st.caption("Its training was stopped early; this is its best model before the stop.")
    if isinstance(metrics, dict) and isinstance(metrics.get("accuracy"), (int, float)):
        measure = measured.measure(metrics.get("evaluation"))
        st.metric(measure.title, f"{metrics['accuracy']:.0%}", help=measure.help)
        st.caption(f"On {metrics.get('n', '?')} {common.plain(measure.pictures)}: {common.plain(measure.help)}.")
    else:
        st.caption("No accuracy was measured: the training stopped before it could be.")


def about(run_dir: Path) -> None:
    """The rest of the model card: pictures per class, the settings in words, the confusion matrix."""
    from core import leaderboard

    classes = [str(name) for name in runs.read_json(run_dir / "labels.json", [])]
    metrics = runs.read_json(run_dir / "metrics.json")
    dataset = runs.read_json(run_dir / "dataset.json", {}) or {}
    st.header("About this model")
    counts = dataset.get("counts") or {}
    if counts:
        st.subheader("Pictures it learned from")
        set_aside = len((dataset.get("split") or {}).get("validation") or [])
        st.caption(f"{sum(counts.values())} pictures in all"
                   + (f", {set_aside} of them set aside to measure the accuracy." if set_aside else "."))
        st.plotly_chart(counts_figure(counts), width="stretch", key="share_counts",
                        config={"displayModeBar": False})

    st.subheader("How it was trained")
    recipe, details = common.settings_parts(runs.read_json(run_dir / "config.json", {}) or {})
    st.markdown(f"**{recipe}:** {common.plain(details, 400)}.")
    board = leaderboard.read_file(run_dir)
    if board is not None and board.reason:
        st.markdown(f"**Chosen:** {common.plain(board.reason, 400)}")
    seconds = (runs.read_status(run_dir) or {}).get("train_seconds")
    if isinstance(seconds, (int, float)):
        st.caption(f"Training took {common.format_seconds(seconds)}.")

    matrix = metrics.get("confusion_matrix") if isinstance(metrics, dict) else None
    if matrix and len(matrix) == len(classes):
        st.subheader("Where it goes wrong")
        st.caption("Each row is a true class, each column what the model said; the diagonal is right.")
        st.plotly_chart(confusion_figure(matrix, classes), width="stretch", key="share_confusion",
                        config={"displayModeBar": False})


def counts_figure(counts: dict[str, int]):
    import plotly.graph_objects as go

    names = [common.plotly_text(name, 30) for name in counts]
    figure = go.Figure(go.Bar(x=list(counts.values()), y=names, orientation="h", text=list(counts.values()),
                              textposition="auto", textangle=0, marker_color="#4c78a8",
                              hovertemplate="%{y}: %{x} pictures<extra></extra>"))
    figure.update_layout(height=60 + 30 * len(names), margin=dict(l=10, r=10, t=10, b=30),
                         xaxis=dict(title="pictures", rangemode="tozero"), yaxis=dict(autorange="reversed"))
    return figure


def confusion_figure(matrix: list[list[int]], classes: list[str]):
    """Counts as a heatmap (rows: true class, columns: predicted). The Evaluate page's chart opens a cell's
    pictures; this one is only a picture, since a visitor may not see the owner's pictures."""
    import plotly.graph_objects as go

    names = [common.plotly_text(name, 20) for name in classes]
    figure = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", showscale=False, text=matrix,
                                  texttemplate="%{text}", xgap=2, ygap=2,
                                  hovertemplate="true: %{y}<br>predicted: %{x}<br>pictures: %{z}<extra></extra>"))
    figure.update_layout(height=max(260, min(520, 60 * len(classes) + 120)), margin=dict(l=10, r=10, t=10, b=10),
                         dragmode=False)
    figure.update_xaxes(title="predicted", side="bottom", fixedrange=True)
    figure.update_yaxes(title="true", autorange="reversed", fixedrange=True)
    return figure


# ---------------------------------------------------------------------- live testing

@st.cache_data(show_spinner=False, max_entries=64)
def predictions(run_dir: str, stamp: int, files: tuple, top_k: int) -> list[dict]:
    from core import predict

    return predict.predict_files(run_dir, list(files), top_k=top_k)


def live_testing(run_dir: Path) -> None:
    st.header("Try it")
    files = st.file_uploader("Pictures to classify (one or many)", accept_multiple_files=True, key="share_files")
    pictures = [(f.name, f.getvalue()) for f in files or []]
    if st.toggle("Use the camera", key="share_camera_on"):
        photo = st.camera_input("Take a picture", key="share_camera")
        if photo is not None:
            pictures.append(("camera photo", photo.getvalue()))
    if not pictures:
        st.caption("Upload pictures (or turn on the camera) to see what the model thinks they are.")
        return
    stamp = (run_dir / "model.keras").stat().st_mtime_ns  # a retrained model never gets stale answers
    with st.spinner("Predicting..."):
        rows = predictions(str(run_dir), stamp, tuple(pictures), common.MAX_CLASSES_SHOWN)
    for index, (row, (_, data)) in enumerate(zip(rows, pictures)):
        if "error" in row:
            st.warning(f"{common.plain(row['file'], 120)} was not predicted: {common.plain(row['error'], 300)}")
            continue
        with st.container(border=True):
            picture, bars = st.columns([1, 3])
            picture.image(data, caption=common.plain(row["file"], 80), width=140)
            bars.markdown(f"**{common.plain(row['label'], 80)}** ({row['confidence']:.0%} sure)")
            bars.plotly_chart(common.probability_bars(row, compact=True), width="stretch",
                              key=f"share_bars::{index}", config={"displayModeBar": False})
    if len(rows) > 1:
        import pandas as pd

        st.dataframe(pd.DataFrame([{"picture": str(r["file"]), "prediction": str(r.get("label", "")),
                                    "sure": r.get("confidence"), "problem": str(r.get("error", ""))} for r in rows]),
                     hide_index=True, width="stretch", column_config={"sure": st.column_config.ProgressColumn(
                         "sure", format="percent", min_value=0.0, max_value=1.0)})


# ---------------------------------------------------------------------- the owner's panel (Predict page)

def render_owner_panel(row: dict) -> None:
    """Below the chosen model on the Predict page (``row``: one of ``common.runs_with_model``): make a share
    link to it, see its links, revoke one. A link's URL is shown when it is made (and for the rest of this
    browser session): only its hash is kept on the server, so a lost link is revoked and made anew."""
    me = common.owner()
    made = st.session_state.setdefault("_share_urls", {})  # link id -> URL, this browser session's
    st.divider()
    st.subheader("Share this model")
    st.caption("A link that opens this model's card and lets whoever has it try the model on their own "
               "pictures, and nothing else: not your pictures, runs or settings. Revoke it when you are done.")
    if st.button("Share", key="share_make", icon=":material/share:"):
        token, link = shares.create(row["id"], me)
        made[link.id] = share_url(token)
    listed = shares.links(me, run_id=row["id"])
    now = time.time()
    for link in listed:
        with st.container(border=True):
            age = common.format_seconds(max(0.0, now - link.created)) or "0 s"
            if not link.active:
                st.markdown(f"Made {age} ago, **revoked**: it now tells whoever opens it that it was revoked.")
                continue
            url = made.get(link.id)
            if url:
                st.code(url, language=None, wrap_lines=True)  # with a copy button
                st.markdown(f"Made {age} ago, **active**: send this link to whoever should try the model.")
            else:
                st.markdown(f"Made {age} ago, **active**. Its address was shown when it was made; only a "
                            "fingerprint of it is kept here, so if it is lost, revoke it and share again.")
            if st.button("Revoke", key=f"share_revoke::{link.id}", icon=":material/link_off:"):
                shares.revoke(link.id, me)
                st.rerun()
    if not listed:
        st.caption("No share links to this model yet.")


def share_url(token: str) -> str:
    """The link for ``token``: the app's root URL (as the browser sees it, without this page's path) with
    ``?share=``; a relative link where the URL is unknown (AppTest)."""
    url = (st.context.url or "").rstrip("/")
    page_paths = {re.sub(r"^[0-9]+_", "", Path(name).stem) for name, _, _ in common.PAGE_FILES}
    head, _, last = url.rpartition("/")
    if last in page_paths and "://" in head:
        url = head
    return f"{url}/?{SHARE_PARAM}={token}"
