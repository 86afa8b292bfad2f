"""Shared UI helpers for every page: the session's owner token, the one job manager, the current
dataset and run, plain-words errors, user text shown as text, the live-run summary, and the sidebar.

Pages call these and stay short; nothing here trains or touches pixels (that is core's work).
The functions below are a contract with every page file: keep their names and meanings stable.

State kept per browser session (``st.session_state``):
    "owner"    the session's random owner token (also in the URL as ``?session=``)
    "run_id"   the current run (also in the URL as ``?run=``), or absent
    "dataset"  the current dataset's info dict (see ``dataset_info``), or absent
    "config"   the training settings as a plain dict (TrainConfig fields), validated on use
    "unlabeled" {"path", "images", "skipped"} of an unlabeled image set for the autoencoder, or absent
"""
from __future__ import annotations

import contextlib
import errno
import html
import logging
import math
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from core import jobs, measured, runs, sessions
from core.config import ConfigError, TrainConfig
from pages import glossary

log = logging.getLogger("transfer_studio.app")

OWNER_PARAM = "session"          # URL query parameter holding the owner token
RUN_PARAM = "run"                # URL query parameter holding the current run id
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9_-]{12,64}$")
STORAGE_SIZE = 256               # pixels: datasets are stored at this size; runs resize to their own
STORAGE_POLICY = "center_crop"
DEMO_PER_CLASS_ENV = "TRANSFER_STUDIO_DEMO_PER_CLASS"   # tests and demos make the demo data tiny
DEMO_SIZE_ENV = "TRANSFER_STUDIO_DEMO_SIZE"
LR_STEPS_ENV = "TRANSFER_STUDIO_LR_STEPS"

STATE_WORDS = {
    "queued": "Waiting for a free training slot",
    "running": "Training",
    "done": "Finished",
    "failed": "Failed",
    "stopped": "Stopped",
}

PHASE_WORDS = {
    "load_data": "Loading the images",
    "load_unlabeled": "Loading the unlabeled images",
    "build_model": "Building the model",
    "weights": "Getting the ImageNet weights",
    "feature_cache": "Computing the frozen part's features (once; everything after reuses them)",
    "train": "Training",
    "head": "Training the head (base frozen)",
    "fine_tune": "Fine-tuning the unfrozen blocks",
    "fine_tune_encoder": "Fine-tuning the encoder",
    "autoencoder": "Pretraining the autoencoder",
    "svm": "Fitting the SVM",
    "random_forest": "Fitting the random forest",
    # recipe auto
    "candidates": "Scoring the candidate models (cross-validation on the training pictures)",
    "fine_tune_candidate": "Trying fine-tuning block 5 (a candidate, scored on held-out training pictures)",
    "final_fit": "Training the chosen model on every training picture",
    "save": "Saving the model",
}


# ---------------------------------------------------------------------- user text

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&=^\"'])")


def plain(text: Any, limit: int = 300) -> str:
    """User text (file and class names, core messages quoting them) made safe for any Streamlit
    label that renders Markdown: every Markdown/HTML/directive character is backslash-escaped and
    newlines flattened, so "<b>x</b>" or "[click](javascript:...)" shows literally; a path in the server's
    workspace is said in words (``without_workspace_paths``)."""
    value = without_workspace_paths(str(text))
    if len(value) > limit:
        value = value[:limit] + "..."
    value = re.sub(r"[\r\n\t]+", " ", value)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", value)


WORKSPACE_PATH_WORDS = runs.WORKSPACE_PATH_WORDS
without_workspace_paths = runs.without_workspace_paths


def plotly_text(text: Any, limit: int = 60) -> str:
    """User text for Plotly labels, which understand a few HTML tags: escape <, > and & as entities.

    Quotes stay as they are: with no "<" left no tag (and so no attribute) can form, and Plotly shows
    "&quot;" literally (a class called 'say "hi"' read 'say &quot;hi&quot;')."""
    value = str(text)
    if len(value) > limit:
        value = value[:limit] + "..."
    return html.escape(value, quote=False)


# ---------------------------------------------------------------------- session owner and URL

def owner() -> str:
    """This browser session's owner token: from the URL (?session=) so a reload keeps it,
    else a new random one. Every run and dataset the session makes is filed under it."""
    token = st.session_state.get("owner")
    if not token:
        from_url = st.query_params.get(OWNER_PARAM)
        if sessions.is_issued(from_url):
            token = from_url
        else:
            # only tokens this server minted are accepted: a link with a made-up token gets a fresh session
            if from_url:
                st.session_state["session_note"] = ("That link's session is not known on this server, so this "
                                                    "is a new session: its runs and datasets start empty.")
            try:
                token = sessions.issue_token()
            except OSError:
                # an unusable workspace is explained where the page writes to it; this visit still works,
                # but its link cannot bring it back
                token = secrets.token_urlsafe(18)
        st.session_state["owner"] = token
    return token


def sync_query_params() -> None:
    """Put the owner token and current run id into the URL (a page switch clears the query
    string, so this runs on every script run); attach to a run named in the URL first.

    A run id from the URL that is malformed or not this session's is refused with an st.error.
    """
    me = owner()
    requested = st.query_params.get(RUN_PARAM)
    if requested and requested != st.session_state.get("run_id"):
        try:
            runs.validate_run_id(requested)
            job_manager().status(requested, owner=me)
            if runs.job_kind(job_manager().root / requested) != "train":
                st.error(f"{plain(requested, 80)} is one of your experiments, not a training run: its results "
                         "are on the Experiments page.")
                requested = None
        except runs.RunIdError:
            st.error(f"The link names a run id that is not valid: {plain(requested, 80)}. A run id has "
                     "only letters, digits, '-' and '_'. Pick one of your runs on the Train page.")
            requested = None
        except (jobs.RunNotFound, PermissionError):
            st.error(f"There is no run {plain(requested, 80)} in this browser session. Runs are private "
                     "to the session that started them; pick one of your runs on the Train page.")
            requested = None
        if requested:
            st.session_state["run_id"] = requested
        elif RUN_PARAM in st.query_params:
            del st.query_params[RUN_PARAM]
    if st.query_params.get(OWNER_PARAM) != me:
        st.query_params[OWNER_PARAM] = me
    run_id = st.session_state.get("run_id")
    if run_id and st.query_params.get(RUN_PARAM) != run_id:
        st.query_params[RUN_PARAM] = run_id
    note = st.session_state.pop("session_note", None)
    if note:
        st.info(note)


# ---------------------------------------------------------------------- shared resources

@st.cache_resource(show_spinner=False)
def _job_manager_for(root: str) -> jobs.JobManager:
    return jobs.JobManager(root=root)


def job_manager() -> jobs.JobManager:
    """The one JobManager of this server (per runs folder), shared by every session."""
    return _job_manager_for(str(runs.runs_root()))


def trains_on() -> str:
    """Where runs train, in words: this machine's device, or the Ray cluster runs are sent to."""
    from core import executors

    if executors.executor_name() == "ray":
        return "a Ray cluster: each run on a machine with a free slot"
    return device()


@st.cache_resource(show_spinner=False)
def device() -> str:
    """The device runs train on, in words ("CPU (2 cores, tensorflow)", "GPU: ..."); imports TF once."""
    from core import backend

    return backend.describe_device()


@st.cache_resource(show_spinner=False, max_entries=16)
def load_dataset(path: str, image_size: int):
    """A saved dataset folder loaded at ``image_size`` (an ingest.Dataset). Dataset folders are
    never changed after they are written (a change makes a new one), so the path is a safe key."""
    from core import ingest

    return ingest.load_labeled(path, image_size)


# ---------------------------------------------------------------------- datasets

def datasets_root() -> Path:
    """This session's dataset folders: workspace/datasets/<owner>/<dataset id>/."""
    return runs.workspace() / "datasets" / owner()


def new_dataset_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def dataset_info(path: str | Path, name: str, summary: dict | None = None) -> dict:
    """The current-dataset record kept in session state: id, name, path, classes, counts, images,
    skipped (list of {"path", "reason"}). ``summary`` is Dataset.summary() when at hand."""
    path = Path(path)
    summary = summary or runs.read_json(path / "manifest.json", {}) or {}
    counts = dict(summary.get("counts") or {})
    classes = list(summary.get("classes") or counts.keys())
    return {
        "id": path.name,
        "name": name,
        "path": str(path),
        "classes": classes,
        "counts": counts,
        "images": int(sum(counts.values())),
        "skipped": list(summary.get("skipped") or []),
    }


def save_dataset(dataset, name: str) -> dict:
    """Write a Dataset under this session's folder, make it current and return its info.
    Each save is a new folder, so a run that trains on an earlier version is never disturbed."""
    from core import datasets

    folder = datasets.save(dataset, datasets_root(), name)  # the manifest keeps the name for a reload
    info = dataset_info(folder, datasets.name_of(folder), dataset.summary())
    set_current_dataset(info)
    return info


def set_current_dataset(info: dict | None) -> None:
    """Make ``info`` the current dataset; None means the user cleared it (no restore from disk)."""
    st.session_state["dataset"] = info


def current_dataset() -> dict | None:
    """The session's current dataset info; after a reload, the newest one this owner saved."""
    if "dataset" in st.session_state and st.session_state["dataset"] is None:
        return None  # cleared on purpose
    info = st.session_state.get("dataset")
    if info and Path(info["path"]).is_dir():
        return info
    root = datasets_root()
    if not root.is_dir():
        return None
    for folder in sorted((p for p in root.iterdir() if p.is_dir() and "." not in p.name), reverse=True):
        if (folder / "manifest.json").is_file():
            manifest = runs.read_json(folder / "manifest.json", {}) or {}
            info = dataset_info(folder, manifest.get("source") or folder.name, manifest)
            st.session_state["dataset"] = info
            return info
    return None


def demo_size() -> tuple[int, int]:
    """(images per class, pixels) of the demo data: 30 x 64 px unless the environment says less."""
    per_class = _env_int(DEMO_PER_CLASS_ENV, 30, 2, 500)
    size = _env_int(DEMO_SIZE_ENV, 64, 16, 256)
    return per_class, size


def _env_int(name: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(os.environ.get(name, default)), low), high)
    except ValueError:
        return default


# ---------------------------------------------------------------------- settings

def config() -> dict:
    """The session's training settings (a dict of TrainConfig fields). The first time a browser session
    needs them, on whichever page that is (a reload, a deep link), they are the ones the session kept on the
    server, else the defaults: every page reads them here, so every page finds them restored."""
    if "config" not in st.session_state:
        from pages import weights_panel  # it builds on this module

        weights_panel.restore()
        st.session_state.setdefault("config", TrainConfig().to_dict())
    return st.session_state["config"]


def validate_config(values: dict) -> tuple[TrainConfig | None, dict[str, str]]:
    """(TrainConfig, {}) when the settings are valid, else (None, {field: what is allowed})."""
    try:
        return TrainConfig.from_dict(dict(values)), {}
    except ConfigError as error:
        return None, error.problems
    except (TypeError, ValueError) as error:  # a value of a type the dataclass cannot take at all
        return None, {"settings": str(error)}


def settings_summary(values: dict) -> str:
    """The settings in one line of words (plain text: wrap in ``plain`` for Markdown): "Automatic: ..."
    or "Manual: ..."."""
    recipe, details = settings_parts(values)
    return f"{recipe}: {details}"


def settings_parts(values: dict) -> tuple[str, str]:
    """The settings as (recipe, details) in words: ("Automatic", "VGG16 (weights none), ..., 32 px"), for a
    line that names the recipe in its own way. Recipe "auto" names only what it reads; settings without
    a recipe are read as manual (they predate auto)."""
    weights = values.get("weights")
    weights = weights if weights in ("imagenet", "none") else "uploaded file"
    if values.get("recipe") == "auto":
        # core.auto's candidates (FEATURE_BLOCKS, the block-5 fine-tune), named here without importing Keras
        return "Automatic", (f"VGG16 (weights {weights}), the best of linear heads on blocks 3-5 or fine-tuning "
                             f"block 5, chosen by cross-validation, {values.get('image_size')} px")
    rate = glossary.decimal(values.get("learning_rate"))  # 0.0001, not 1.0e-04
    model = {"vgg16": "VGG16", "autoencoder": "Autoencoder"}.get(values.get("model", "vgg16"), values.get("model"))
    return "Manual", (f"{model}, weights {weights}, {values.get('freeze_depth')} of 5 blocks "
                      f"frozen, head {glossary.head_words(values.get('head'))}, "
                      f"{glossary.optimizer_words(values.get('optimizer'))} at learning rate {rate}, "
                      f"{values.get('epochs')} epochs, batch {values.get('batch_size')}, {values.get('image_size')} px"
                      + (", augmentation" if values.get("augment") else "")
                      + (", two-phase" if values.get("two_phase") else ""))


FIELD_LABELS = {
    "recipe": "How to train", "learning_rate": "Learning rate", "freeze_depth": "Frozen blocks", "epochs": "Epochs",
    "batch_size": "Batch size", "image_size": "Image size", "weights": "Weights", "head": "Head",
    "optimizer": "Optimizer", "momentum": "Momentum", "head_epochs": "Head epochs (two-phase)",
    "validation_fraction": "Validation share", "dropout": "Dropout", "augment": "Augmentation",
}


def field_words(name: str) -> str:
    """A setting as the Model page labels it ("Learning rate"), not by its name in code (learning_rate)."""
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


def show_config_problems(problems: dict[str, str]) -> None:
    """One st.error naming every bad setting and what is allowed."""
    # the settings' own names (learning_rate) are for code; a student reads the Model page's labels
    lines = [f"- **{field_words(name)}**: {plain(message)}" for name, message in problems.items()]
    st.error("These settings are not allowed, so nothing was started. Fix them on the Model page:\n\n"
             + "\n".join(lines))


# ---------------------------------------------------------------------- runs

def current_run() -> str | None:
    return st.session_state.get("run_id")


def set_current_run(run_id: str | None) -> None:
    """Make ``run_id`` the run the pages show, and put it into the URL (None forgets it)."""
    if run_id is None:
        st.session_state.pop("run_id", None)
        if RUN_PARAM in st.query_params:
            del st.query_params[RUN_PARAM]
        return
    runs.validate_run_id(run_id)
    st.session_state["run_id"] = run_id
    st.query_params[RUN_PARAM] = run_id


def run_status(run_id: str | None = None) -> dict | None:
    """status.json (+ queue_position) of one of this session's runs, or None when there is none."""
    run_id = run_id or current_run()
    if not run_id:
        return None
    try:
        return job_manager().status(run_id, owner=owner())
    except (jobs.RunNotFound, PermissionError, runs.RunIdError):
        return None


def my_runs() -> list[dict]:
    """This session's runs, newest first (rows of JobManager.runs)."""
    return job_manager().runs(owner=owner())


def run_dir(run_id: str) -> Path:
    """The folder of one of this session's runs; refuses other sessions' runs and bad ids."""
    job_manager().status(run_id, owner=owner())  # raises RunNotFound / PermissionError / RunIdError
    return runs.run_path(run_id)


def new_events(run_id: str) -> list[dict]:
    """Every event of a run so far, read incrementally: only the bytes appended since the last
    call are parsed (the offset and the events live in session state, per run)."""
    key = f"_events::{run_id}"
    seen = st.session_state.get(key) or {"offset": 0, "events": []}
    fresh, offset = runs.read_events(run_dir(run_id), seen["offset"])
    if fresh:
        seen = {"offset": offset, "events": seen["events"] + fresh}
        st.session_state[key] = seen
    elif key not in st.session_state:
        st.session_state[key] = seen
    return seen["events"]


def describe_state(status: dict | None) -> str:
    """A run's state in plain words: queued with position, running on which device, failed why."""
    if not status:
        return "No run yet"
    state = status.get("state")
    if state == "queued":
        position = status.get("queue_position")
        return ("Queued: waiting for a free training slot" +
                (f" (number {position} in line)" if position else ""))
    if state == "running":
        if not status.get("device"):
            return "Starting the training process"
        return f"Training on {status['device']}"
    if state == "done":
        accuracy = status.get("val_accuracy")
        seconds = status.get("train_seconds")
        parts = ["Finished"]
        if isinstance(accuracy, (int, float)):
            parts.append(run_measure(status).percent(accuracy))
        if isinstance(seconds, (int, float)):
            parts.append(f"{seconds:.0f} s of training")
        return ", ".join(parts)
    if state == "failed":
        return f"Failed: {status.get('error') or 'the run ended without saying why'}"
    if state == "stopped":
        return "Stopped on request" + (f" ({status['error']})" if status.get("error") else "")
    return STATE_WORDS.get(state, str(state))


def run_measure(status: dict) -> measured.Measure:
    """How the run of ``status`` (a JobManager status, which carries the run's ``id``) measured its
    accuracy, from its metrics.json; a status without an id falls back to its own "evaluation"."""
    run_id = status.get("id")
    if isinstance(run_id, str) and runs.RUN_ID_PATTERN.match(run_id):
        return measured.of_run(runs.run_path(run_id))
    return measured.measure(status.get("evaluation"))


def run_label(row: dict) -> str:
    """A finished run in a picker, by its id, model, recipe and accuracy named as it was measured (a row
    of ``my_runs``): "20260101-... (VGG16, automatic, cross-validated accuracy 25%)"."""
    config, status = row["config"], row["status"]
    if config.get("model") == "autoencoder":
        model = f"autoencoder, head {glossary.head_words(config.get('head'))}"
    elif config.get("recipe") == "auto":
        model = "VGG16, automatic"
    else:
        model = f"VGG16, head {glossary.head_words(config.get('head'))}"
    accuracy = status.get("val_accuracy")
    if isinstance(accuracy, (int, float)):
        model += ", " + measured.of_run(row["path"]).percent(accuracy)
    return f"{row['id']} ({model})"


# ---------------------------------------------------------------------- live run summary

def summarize_events(events: list[dict], now: float | None = None) -> dict:
    """What a watcher needs from a run's events: the phase under way with its progress bar,
    finished phases, per-epoch and per-batch records, the feature-cache note and any error.

    Returns {"phase": name or None, "phase_label", "phase_fraction" (0..1 or None),
    "phase_message", "phases_done": {name: seconds}, "epochs": [...], "batches": [...],
    "feature_cache": event or None, "error": message or None, "time_left": seconds or None,
    "training_label"}.
    """
    now = time.time() if now is None else now
    done: dict[str, float] = {}
    progress: dict[str, dict] = {}
    epochs, batches = [], []
    cache, error, current = None, None, None
    for event in events:
        kind = event.get("type")
        if kind == "phase_start":
            current = event.get("name")
        elif kind == "phase":
            done[event.get("name")] = event.get("seconds")
            if current == event.get("name"):
                current = None
        elif kind == "progress":
            progress[event.get("phase")] = event
        elif kind == "epoch":
            epochs.append(event)
        elif kind == "batch":
            batches.append(event)
        elif kind == "feature_cache":
            cache = event
        elif kind == "error":
            error = event.get("message")
    # A progress phase (weights download) can run inside another phase (build_model): show the
    # innermost one that is moving and not finished.
    fraction, message, label = None, "", PHASE_WORDS.get(current, (current or "").replace("_", " ").capitalize())
    active_progress = [p for name, p in progress.items() if name not in done and p.get("fraction", 0) < 1]
    if active_progress:
        latest = max(active_progress, key=lambda p: p.get("time", 0))
        fraction, message = latest.get("fraction"), latest.get("message", "")
        label = PHASE_WORDS.get(latest.get("phase"), label)
    time_left, training_label = None, ""
    last_batch = batches[-1] if batches else None
    if current and last_batch and last_batch.get("phase") == current:
        fraction = float(last_batch.get("fraction") or 0)
        phase_epochs = _phase_epochs(epochs, last_batch)
        training_label = (f"epoch {last_batch.get('epoch')}"
                          + (f" of {phase_epochs}" if phase_epochs else "")
                          + f", batch {last_batch.get('batch')} of {last_batch.get('steps')}")
        # Pace from the phase's first batch to its latest: the first batch also pays for building
        # the training graph, so counting from the phase start would overstate the time left.
        first = next(b for b in batches if b.get("phase") == current)
        first_fraction = float(first.get("fraction") or 0)
        if fraction > first_fraction and last_batch.get("time") and first.get("time"):
            seconds_per_fraction = (last_batch["time"] - first["time"]) / (fraction - first_fraction)
            time_left = max(0.0, seconds_per_fraction * (1 - fraction) - (now - last_batch["time"]))
    return {"phase": current, "phase_label": label, "phase_fraction": fraction, "phase_message": message,
            "phases_done": done, "epochs": epochs, "batches": batches, "feature_cache": cache, "error": error,
            "time_left": time_left, "training_label": training_label}


def _phase_epochs(epochs: list[dict], batch: dict) -> int | None:
    """Epoch count of the phase a batch belongs to (from an epoch event of that phase, or the
    batch's fraction: fraction = (epoch_in_phase - 1 + batch/steps) / epochs)."""
    for record in reversed(epochs):
        if record.get("phase") == batch.get("phase") and record.get("epochs"):
            return int(record["epochs"])
    return None


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def curves_figure(runs_events: dict[str, list[dict]], *, batch_line: bool = True, height: int = 360,
                  label_traces: bool | None = None):
    """Plotly figure: loss (left) and accuracy (right) against epoch, training and validation
    per epoch, plus a thin running per-batch line. ``runs_events`` maps a label to a run's events
    (several runs overlay). The autoencoder's reconstruction epochs are left out (other scale).
    Trace names start with the label when there are several (``label_traces`` True: always)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.1)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    single = len(runs_events) == 1 if label_traces is None else not label_traces
    for index, (label, events) in enumerate(runs_events.items()):
        colour = palette[index % len(palette)]
        name = "" if single else plotly_text(label) + " "
        epochs = [e for e in events if e.get("type") == "epoch" and e.get("phase") != "autoencoder"]
        batches = [e for e in events if e.get("type") == "batch" and e.get("phase") != "autoencoder"]
        if batch_line and batches:
            x = [e["epoch"] - 1 + e["batch"] / max(1, e["steps"]) for e in batches]
            mode = "lines" if len(batches) > 2 else "lines+markers"  # one point draws no line
            figure.add_trace(go.Scatter(x=x, y=[e.get("loss") for e in batches], mode=mode,
                                        name=f"{name}loss (each batch)", line=dict(color=colour, width=1),
                                        opacity=0.35, legendgroup=label), row=1, col=1)
            if any(e.get("accuracy") is not None for e in batches):
                figure.add_trace(go.Scatter(x=x, y=[e.get("accuracy") for e in batches], mode=mode,
                                            name=f"{name}accuracy (each batch)", opacity=0.35,
                                            line=dict(color=colour, width=1), legendgroup=label,
                                            showlegend=False), row=1, col=2)
        x = [e["epoch"] for e in epochs]
        for key, dash, col, what in (("loss", "solid", 1, "training loss"), ("val_loss", "dash", 1, "validation loss"),
                                     ("accuracy", "solid", 2, "training accuracy"),
                                     ("val_accuracy", "dash", 2, "validation accuracy")):
            values = [e.get(key) for e in epochs]
            if any(v is not None for v in values):
                figure.add_trace(go.Scatter(x=x, y=values, mode="lines+markers", name=f"{name}{what}",
                                            line=dict(color=colour, dash=dash, width=2),
                                            legendgroup=label), row=1, col=col)
    figure.update_xaxes(title_text="epoch", rangemode="tozero")
    losses = [y for trace in figure.data if trace.xaxis in (None, "x") for y in (trace.y or ())]
    top = loss_top(losses, [y for trace in figure.data if trace.xaxis in (None, "x") and "each batch" not in
                            (trace.name or "") for y in (trace.y or ())])
    if top is not None:
        figure.update_yaxes(range=[0, top], row=1, col=1)
    figure.update_yaxes(range=[0, 1.02], row=1, col=2)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.25), uirevision="keep")
    return figure


def loss_top(losses: list, epoch_losses: list) -> float | None:
    """The top of a loss axis that shows the story: every per-epoch loss, and the batch losses up to three
    times their median (one wild batch at the start would squash the rest of the curve into a flat line)."""
    finite = sorted(v for v in losses if isinstance(v, (int, float)) and math.isfinite(v))
    if not finite:
        return None
    median = finite[len(finite) // 2]
    epochs = [v for v in epoch_losses if isinstance(v, (int, float)) and math.isfinite(v)]
    return 1.1 * max([min(finite[-1], 3 * median)] + epochs) or None


CHART_TOP_MARGIN = 64  # pixels above the plot: Plotly's toolbar (about 30) and a title line, apart


def room_for_toolbar(figure):
    """Keep Plotly's toolbar off a figure's titles: the toolbar shows only while the pointer is on the chart,
    in a top margin tall enough to hold it above the title, which sits just over the plot. Returns ``figure``."""
    margin = figure.layout.margin
    figure.update_layout(margin=dict(t=max(margin.t or 0, CHART_TOP_MARGIN)))
    if figure.layout.title.text:
        figure.update_layout(title=dict(yref="paper", y=1, yanchor="bottom", pad=dict(b=8)))
    return figure


CHART_CONFIG = {"displayModeBar": "hover", "displaylogo": False}


def show_chart(figure, key: str, **kwargs):
    """``st.plotly_chart`` for every page's charts: full width, the toolbar on hover only and clear of the
    titles (``room_for_toolbar``). ``config`` in ``kwargs`` adds to CHART_CONFIG. Returns Streamlit's value."""
    config = {**CHART_CONFIG, **kwargs.pop("config", {})}
    kwargs.setdefault("width", "stretch")
    return st.plotly_chart(room_for_toolbar(figure), key=key, config=config, **kwargs)


def show_candidates(run_id: str, events: list[dict]):
    """The auto recipe's leaderboard of one run: the choice in one sentence, then a bar per candidate
    (filling in from the events while the run scores them, from candidates.json once written).
    Shows nothing for a run that scored no candidates, or whose candidates cannot be read.
    Returns the core.leaderboard.Leaderboard shown, or None."""
    from core import leaderboard

    board = leaderboard.read(run_dir(run_id), events)
    if board is None:
        return None
    st.subheader("Candidates")
    if board.reason:
        st.markdown(f"**Chosen:** {plain(board.reason, 400)}")
    notes = [plain(board.scoring, 400) if board.scoring else "Scored by cross-validation on the training pictures"]
    if not board.scoring_done:
        notes.append(f"{len(board.candidates)}" + (f" of {board.total}" if board.total else "") + " scored so far")
    if board.measured:
        notes.append(board.measured)
    st.caption(" · ".join(notes), help=leaderboard.CROSS_VALIDATION_HELP)
    st.plotly_chart(leaderboard.figure(board), width="stretch", key=f"candidates-{run_id}",
                    config={"displayModeBar": False})
    return board


# ---------------------------------------------------------------------- errors

def explain(error: BaseException) -> str:
    """An exception from core (or the system) in plain words with what to do next (Markdown-safe)."""
    from core import models

    try:
        from core import ingest
        dataset_error: tuple = (ingest.DatasetError,)
    except ImportError:
        dataset_error = ()
    if isinstance(error, ConfigError):
        return "These settings are not allowed: " + "; ".join(
            f"{field_words(name)}: {plain(message)}" for name, message in error.problems.items())
    if dataset_error and isinstance(error, dataset_error):
        return f"The images could not be used: {plain(error)}"
    if isinstance(error, models.WeightsError):
        return f"The model's weights could not be loaded: {plain(error)}"
    if isinstance(error, runs.RunIdError):
        return f"{plain(error)}. Pick one of your runs on the Train page."
    if isinstance(error, jobs.RunNotFound):
        return "That run does not exist any more. Pick one of your runs on the Train page."
    if type(error).__module__.split(".")[0] == "core":
        # core's own exception classes (EvaluationError, ModelFileError, ImageError, ...) carry
        # messages written for the user, naming the fix
        message = str(error) or type(error).__name__
        return plain(message[:1].upper() + message[1:], 600)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return ("The server's disk is full, so nothing could be saved. Finished runs are kept; ask whoever "
                "runs the server to free space in the workspace folder, then try again.")
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return ("The server cannot write to its workspace folder. Ask whoever runs it to check the "
                "permissions of TRANSFER_STUDIO_HOME, then try again.")
    if isinstance(error, PermissionError):
        return "That belongs to another browser session; each session sees only its own runs."
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return "The server ran out of memory: use fewer or smaller images, a smaller image size or batch size."
    if isinstance(error, FileNotFoundError):
        return ("A file the app needs is missing (perhaps cleaned up on the server). Load the dataset again on "
                "the Data page, or start a new run.")
    if isinstance(error, OSError):
        return (f"The server could not read or write its workspace folder ({plain(error.strerror or error)}). "
                "Ask whoever runs it to check TRANSFER_STUDIO_HOME (space, permissions), then try again.")
    return (f"Something went wrong ({type(error).__name__}). Try again; if it keeps happening, reload the "
            "page. The details are in the server log.")


def show_error(error: BaseException) -> None:
    """st.error with the plain-words explanation; the traceback goes to the server log only."""
    if isinstance(error, ConfigError):
        show_config_problems(error.problems)
    else:
        st.error(explain(error))
    log.warning("shown to the user as an error: %s: %s", type(error).__name__, error,
                exc_info=not isinstance(error, (ConfigError, runs.RunIdError)))


PAGE_FILES = (  # (file under pages/, title, icon); the first is the default page
    ("1_data.py", "Data", ":material/photo_library:"),
    ("2_model.py", "Model", ":material/tune:"),
    ("3_train.py", "Train", ":material/monitoring:"),
    ("4_autoencoder.py", "Autoencoder", ":material/compress:"),
    ("5_evaluate.py", "Evaluate", ":material/fact_check:"),
    ("6_predict.py", "Predict", ":material/image_search:"),
    ("7_experiments.py", "Experiments", ":material/science:"),
)
DEFAULT_PAGE_NAME = "home"  # the default page's own name: Streamlit serves it at "/" and needs a name it reserves


def navigation_pages() -> list:
    """The pages of ``PAGE_FILES`` for ``st.navigation``. Streamlit serves the default page only at "/" and
    answers "Page not found" for its name, so the default page (Data) is listed again, hidden, under the
    name of its file: /data, as a user would type it, opens it too."""
    pages = [st.Page(f"pages/{name}", title=title, icon=icon, default=index == 0,
                     url_path=DEFAULT_PAGE_NAME if index == 0 else None)
             for index, (name, title, icon) in enumerate(PAGE_FILES)]
    name, title, icon = PAGE_FILES[0]
    return pages + [st.Page(f"pages/{name}", title=title, icon=icon, visibility="hidden")]


def app_frame():
    """What ``streamlit_app.py`` does on every script run: page config, the navigation over the page
    files, the URL's session and run, the sidebar frame. Returns the page ``st.navigation`` chose."""
    st.set_page_config(page_title="Transfer Studio", page_icon=":material/model_training:", layout="wide")
    from pages import share_view

    if share_view.requested():  # a share link (?share=): the shared model's preview alone, with no session
        share_view.show_alone()  # ends the script run
    from pages import login_gate

    gated = login_gate.needs_sign_in()  # sign-in configured and nobody signed in: the sign-in screen alone
    page = st.navigation(navigation_pages(), position="hidden" if gated else "sidebar")
    if gated:
        login_gate.sign_in_screen()  # ends the script run
    login_gate.adopt_user()
    run_page(sync_query_params)
    run_page(sidebar)
    return page


def ran_without_entry_point() -> bool:
    """True when Streamlit ran a page file straight from ``pages/`` instead of through
    ``streamlit_app.py``. A real server does that once: a deep link (``/model?session=...``) arriving
    before any session has run the entry point is served the old "pages directory" way (raw file names,
    ``common`` among them, in the sidebar; no frame), because Streamlit only leaves that mode when
    ``st.navigation`` runs. (AppTest re-enters the mode on every run of a page.) The switch is a
    Streamlit internal, ``PagesManager.uses_pages_directory``, read defensively: if it moves, such a
    link merely looks plainer."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - a future Streamlit
        return False
    return bool(getattr(PagesManager, "uses_pages_directory", False))


def page_scope():
    """After ``app_frame`` inside a page file: give the page's widgets the identity they get when
    ``streamlit_app.py`` runs the page (``st.navigation`` switched the active script to the entry
    point's), so a click made on the previous run still reaches its widget. Streamlit internals,
    read defensively."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    try:
        return ctx.run_with_active_hash(ctx.pages_manager.current_page_script_hash)
    except AttributeError:  # pragma: no cover - a future Streamlit
        return contextlib.nullcontext()


def run_page(body: Callable[[], None]) -> None:
    """Run a page's body; any exception becomes an st.error in plain words, never a traceback.
    (Streamlit's own rerun/stop signals are BaseExceptions and pass through untouched.)
    A page reached without the entry point (a deep link first thing after a server start) builds the
    app's navigation and frame itself first; ``st.navigation`` resolves to this same page (same URL
    path), so the page just goes on, with the query string and any click of this run intact."""
    try:
        scope = contextlib.nullcontext()
        if ran_without_entry_point():
            app_frame()
            scope = page_scope()
        with scope:
            body()
    except Exception as error:  # noqa: BLE001 - the last line of defence for a page
        show_error(error)


# ---------------------------------------------------------------------- the frame

def sidebar() -> None:
    """The frame on every page: the training device, the current dataset, the current run."""
    with st.sidebar:
        st.caption("Trains on")
        try:
            st.markdown(f"**{plain(trains_on())}**")
        except Exception as error:  # noqa: BLE001
            st.warning(explain(error))
        st.caption("Dataset")
        info = current_dataset()
        if info:
            classes = ", ".join(info["classes"][:6]) + (" ..." if len(info["classes"]) > 6 else "")
            from core.datasets import count_words

            st.markdown(f"**{plain(info['name'])}**  \n{count_words(info['images'])}, "
                        f"{count_words(len(info['classes']), 'class')}: {plain(classes)}")
        else:
            st.markdown("None yet: pick one on the **Data** page.")
        st.caption("Run")
        run_id = current_run()
        status = run_status(run_id) if run_id else None
        if run_id and status:
            st.markdown(f"`{run_id}`  \n{plain(describe_state(status), 200)}")
        else:
            st.markdown("None yet: start one on the **Train** page.")


# ---------------------------------------------------------------------- runs that kept a model (Evaluate, Predict)

MODEL_STATES = ("done", "stopped")   # a stopped run keeps its best epoch's model, as a finished one does


def runs_with_model() -> list[dict]:
    """This session's runs that have a model to use, newest first: finished ones, and stopped ones that
    had trained far enough to save theirs (rows of ``my_runs``)."""
    return [row for row in my_runs()
            if row["status"].get("state") in MODEL_STATES and (Path(row["path"]) / "model.keras").is_file()]


def model_run_label(row: dict) -> str:
    """``run_label``, with a stopped run said to be stopped (its model is the best epoch before the stop)."""
    label = run_label(row)
    if row["status"].get("state") == "stopped":
        label += ", stopped early (its best epoch kept)"
    return label


def model_stamp(row: dict) -> int:
    """Changes whenever the run's model file does, so cached answers never outlive a retrained model."""
    return (Path(row["path"]) / "model.keras").stat().st_mtime_ns


def pick_model_run(key: str, label: str, when_none: str) -> dict | None:
    """The run picker of the pages that use a trained model: one of ``runs_with_model`` (the current run
    when it is one), which becomes the current run when picked. With none, ``when_none`` (Markdown: what
    the page will do once there is a model) and a link to the Train page; returns None."""
    rows = runs_with_model()
    if not rows:
        st.info("No trained model yet. Train one on the **Train** page (or the **Autoencoder** page); when it "
                f"has finished, or was stopped after an epoch, {when_none}")
        st.page_link("pages/3_train.py", label="Go to Train", icon=":material/monitoring:")
        return None
    by_id = {row["id"]: row for row in rows}
    ids = list(by_id)
    current = current_run()
    chosen = st.selectbox(label, ids, index=ids.index(current) if current in ids else 0, key=key,
                          format_func=lambda run_id: model_run_label(by_id[run_id]),
                          on_change=lambda: set_current_run(st.session_state[key]))
    if run_status() is None:  # no current run (a fresh tab): the run shown here becomes it
        set_current_run(chosen)
    return by_id[chosen]


# ---------------------------------------------------------------------- predictions

MAX_CLASSES_SHOWN = 10  # Predict and a share link: every class of a small model; the 10 likeliest of a bigger one


def probability_bars(row: dict, compact: bool = False):
    """One picture's classes as horizontal bars, the likeliest on top and in colour, each with its number.
    ``compact`` (a share link, often on a phone): whole percents, shorter labels, thinner bars."""
    import plotly.graph_objects as go

    top = list(reversed(row["top"]))  # the most likely class on top
    values = [item["probability"] for item in top]
    figure = go.Figure(go.Bar(x=values, y=[plotly_text(item["label"], 30 if compact else 40) for item in top],
                              orientation="h", text=[f"{v:.0%}" if compact else f"{v:.1%}" for v in values],
                              textposition="auto", textangle=0,
                              marker_color=["#9aa9bd"] * (len(top) - 1) + ["#f28e2b"],
                              hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    figure.update_layout(height=(60 + 30 * len(top)) if compact else (70 + 34 * len(top)),
                         margin=dict(l=10, r=10, t=10, b=30),
                         xaxis=dict(range=[0, 1], tickformat=".0%", title=None if compact else "probability"))
    return figure
