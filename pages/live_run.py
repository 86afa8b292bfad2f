"""The live view of one run, shared by the Train and Autoencoder pages: the state in words, one progress
bar through every phase, Stop, the links onward, and the fragment that re-reads the run every second and
reruns the whole page when the run's state changes (so buttons and the sidebar follow). The pages draw
their own pictures of a run (curves, leaderboard, reconstructions) inside ``watch``."""
import time
from typing import Callable

import streamlit as st

from pages import common

POLL_SECONDS = 1.0
ACTIVE = ("queued", "running")
STARTING = "Starting the training process (loading TensorFlow)"
STOP_REQUESTED = "Stop requested: the run stops after the current batch and keeps its best model."


def is_active(status: dict | None) -> bool:
    return bool(status and status.get("state") in ACTIVE)


def show_state(status: dict, after: Callable[[dict], None] | None = None) -> None:
    """The run's state in plain words, coloured by how it ended; ``after`` adds a page's own notes to a
    finished or stopped run (Train explains what its accuracy measures and the best epoch)."""
    words = common.plain(common.describe_state(status), 600)
    state = status.get("state")
    {"failed": st.error, "done": st.success, "stopped": st.warning}.get(state, st.info)(words)
    if after is not None and state in ("done", "stopped"):
        after(status)


def progress(summary: dict, status: dict) -> None:
    """One progress bar for whatever is under way, with its message and the time left."""
    state = status.get("state")
    if state == "queued":
        st.progress(0.0, text=common.describe_state(status))
        return
    if state != "running":
        return
    text = summary["phase_label"] or STARTING
    if summary["training_label"]:
        text += f": {summary['training_label']}"
    elif summary["phase_message"]:
        text += f": {common.plain(summary['phase_message'], 120)}"
    if summary["time_left"] is not None:
        text += f" (about {common.format_seconds(summary['time_left'])} left)"
    elif summary["training_label"]:
        text += " (estimating the time left...)"
    fraction = summary["phase_fraction"]
    if fraction is None:
        # a phase without a measurable fraction still says what it is doing
        started = status.get("times", {}).get("running") or time.time()
        text += f" ... {common.format_seconds(time.time() - started)} so far"
        st.progress(0.0, text=text)
    else:
        st.progress(min(max(float(fraction), 0.0), 1.0), text=text)


def stop(run_id: str, rerun: bool = True) -> None:
    """Ask the run to stop (it stops within a batch and keeps its best model)."""
    common.job_manager().stop(run_id, owner=common.owner())
    st.toast(STOP_REQUESTED)
    if rerun:
        st.rerun()


def next_steps(status: dict) -> None:
    """A finished run's way onward: Evaluate and Predict."""
    if status.get("state") == "done":
        left, right = st.columns(2)
        left.page_link("pages/5_evaluate.py", label="See how it does: Evaluate", icon=":material/fact_check:")
        right.page_link("pages/6_predict.py", label="Try your own pictures: Predict", icon=":material/image_search:")


def follow_state(run_id: str, observed) -> None:
    """When what the page shows of a run (its state, and anything else in ``observed``) changes while the
    fragment redraws it, rerun the whole page so the buttons, the run table and the sidebar follow it."""
    seen = st.session_state.setdefault("_live_run_seen", {})
    if seen.get(run_id) != observed:
        first_look = run_id not in seen
        seen[run_id] = observed
        if not first_look and st.session_state.get("_live_run_in_fragment"):
            st.rerun(scope="app")


@st.fragment(run_every=POLL_SECONDS)
def _poll(render: Callable[[str], None], run_id: str) -> None:
    st.session_state["_live_run_in_fragment"] = True
    try:
        common.run_page(lambda: render(run_id))
    finally:
        st.session_state["_live_run_in_fragment"] = False


def watch(render: Callable[[str], None], run_id: str) -> None:
    """Draw a run with ``render(run_id)``: once if it has ended, else every second until its state
    changes (the script itself never waits for training)."""
    status = common.run_status(run_id)
    if status is None:
        return
    if is_active(status):
        _poll(render, run_id)
    else:
        render(run_id)
