"""Train page: start and stop a run, watch it live (state in words, a progress bar through every
phase, the auto recipe's leaderboard of candidates, loss and accuracy curves), and compare this
session's runs. The script never waits for training: a fragment re-reads the run's events every second."""
from pathlib import Path

import streamlit as st

from core import leaderboard, measured, runs
from pages import common, glossary
from pages import live_run, weights_panel

START_WAITS_FOR_WEIGHTS = ("Start is off: the chosen weights are not on this server. Start from random weights "
                           "or upload a weights file above.")


def start_run(config, info: dict) -> None:
    run_id = common.job_manager().submit(config, info["path"], common.owner())
    common.set_current_run(run_id)
    st.rerun()


def controls(weights_ready: bool) -> None:
    """The dataset and settings a run would use, and Start and Stop. Start is off, with the reason beside it,
    without a dataset or while the chosen weights are not on this server (``weights_panel.notice``)."""
    values = common.config()
    info = common.current_dataset()
    config, problems = common.validate_config(values)
    if info:
        st.markdown(f"**Dataset:** {common.plain(info['name'])}, {info['images']} pictures, "
                    f"{len(info['classes'])} classes")
    else:
        st.warning("No dataset yet: pick one on the **Data** page first.")
    recipe, details = common.settings_parts(values)
    st.markdown(f"**Settings ({recipe.lower()}):** {common.plain(details, 400)} (change them on the **Model** page)")
    if problems:
        common.show_config_problems(problems)
    run_id = common.current_run()
    status = common.run_status(run_id) if run_id else None
    active = live_run.is_active(status)
    buttons = st.container(horizontal=True, vertical_alignment="center")
    if buttons.button("Start training", type="primary", key="start", disabled=not info or not weights_ready):
        if problems:
            st.error("Nothing was started: fix the settings named above first.")
        else:
            start_run(config, info)
    if buttons.button("Stop", key="stop", disabled=not active):
        live_run.stop(run_id)
    if info and not weights_ready:
        buttons.caption(START_WAITS_FOR_WEIGHTS)


def show_state(status: dict) -> None:
    live_run.show_state(status, after=finished_notes)


def finished_notes(status: dict) -> None:
    """Under a finished or stopped run's state: what its accuracy measures, and the best epoch."""
    measure = common.run_measure(status)
    if (status.get("state") == "done" and isinstance(status.get("val_accuracy"), (int, float))
            and measure.evaluation != "validation_split"):
        st.caption(measure.explained)
    best_epoch_note(status)


def best_epoch_note(status: dict) -> None:
    """Why the accuracy in the headline can be higher than where the validation curve ends."""
    best, run_id = status.get("best_epoch"), status.get("id")
    if (isinstance(best, int) and isinstance(status.get("val_accuracy"), (int, float)) and run_id
            and common.run_measure(status).evaluation == "validation_split" and recipe(run_id) != "auto"):
        st.caption(f"The accuracy above is the best epoch's (epoch {best}): that epoch's model is the one kept, so "
                   "the validation curve below may end lower if training went on after it.")


def phase_notes(summary: dict) -> None:
    notes = []
    for name, seconds in summary["phases_done"].items():
        if isinstance(seconds, (int, float)):
            notes.append(f"{common.PHASE_WORDS.get(name, name.replace('_', ' ')).split(' (')[0]}: {seconds:.1f} s")
    cache = summary["feature_cache"]
    if cache is not None:
        if cache.get("used"):
            megabytes = (cache.get("bytes") or 0) / 2**20
            notes.append(f"the frozen blocks ran once and their output was saved (feature cache, {megabytes:.1f} MB)")
        else:
            notes.append(f"feature cache off: {common.plain(cache.get('reason', ''), 200)}")
    if notes:
        st.caption(" · ".join(notes), help=glossary.explain("feature cache") if cache is not None else None)


def render_run(run_id: str) -> None:
    """The live view of one run; re-run every second by the fragment while the run is active."""
    status = common.run_status(run_id)
    if status is None:
        st.warning("This run is not available any more.")
        return
    events = common.new_events(run_id)
    summary = common.summarize_events(events)
    st.markdown(f"**Run** `{run_id}`")
    show_state(status)
    live_run.progress(summary, status)
    phase_notes(summary)
    board = common.show_candidates(run_id, events)  # recipe "auto" only: its main picture
    if board is not None or recipe(run_id) == "auto":
        auto_curves(run_id, events, status, board)
    elif summary["epochs"] or summary["batches"]:
        common.show_chart(common.curves_figure({run_id: events}), key=f"curves-{run_id}")
    elif status.get("state") == "running":
        st.caption("The curves appear with the first training batch.")
    live_run.next_steps(status)
    live_run.follow_state(run_id, (status.get("state"), bool(status.get("device"))))  # the sidebar names the device


def recipe(run_id: str) -> str | None:
    return (runs.read_json(common.run_dir(run_id) / "config.json") or {}).get("recipe")


def auto_curves(run_id: str, events: list[dict], status: dict, board) -> None:
    """Recipe auto, below its leaderboard: curves only for what trained epoch by epoch (fine-tuning), one
    per training, since a linear head is fitted in one step (a lone point is no curve)."""
    curves = leaderboard.trained_phases(events)
    if curves:
        st.markdown("**Fine-tuning, epoch by epoch**")
        st.caption("The fine-tuning candidate learns from most of the training pictures; its validation "
                   "curves are measured on the training pictures held out from it."
                   + (" The final model then learns from every training picture." if len(curves) > 1 else ""))
        common.show_chart(common.curves_figure(curves, label_traces=True), key=f"curves-{run_id}")
    elif status.get("state") == "done" and board and board.chosen_candidate and board.chosen_candidate.folds:
        # a linear head won (scored by folds): its one fit is no curve
        st.caption("No curves to draw: the chosen model is a linear head on the frozen features, fitted in "
                   "one step rather than epoch by epoch.")


@st.cache_data(show_spinner=False, max_entries=256)
def finished_events(path: str, size: int) -> list[dict]:
    """All events of a run, cached by the events file's size (a finished run's never changes)."""
    return runs.read_all_events(path)


def run_events(row: dict) -> list[dict]:
    events_file = Path(row["path"]) / "events.jsonl"
    size = events_file.stat().st_size if events_file.exists() else 0
    return finished_events(row["path"], size)


def runs_table() -> None:
    rows = common.my_runs()
    st.subheader("Your runs")
    if not rows:
        st.caption("None yet. Runs are private to this browser session (bookmark the page to keep them).")
        return
    table = []
    for row in rows:
        config, status = row["config"], row["status"]
        accuracy = status.get("val_accuracy")
        automatic = config.get("recipe") == "auto"  # its manual settings below are unused defaults
        table.append({
            "run": row["id"],
            "state": common.STATE_WORDS.get(status.get("state"), status.get("state", "?"))
                     + (f" (number {row['queue_position']} in line)" if row.get("queue_position") else ""),
            "accuracy": (f"{accuracy:.0%} ({measured.of_run(row['path']).short})"
                         if isinstance(accuracy, (int, float)) else ""),
            "seconds to train": status.get("train_seconds"),
            "how": "automatic" if automatic else "manual",
            # an automatic run chooses these itself (its leaderboard says what): no "None" in the table
            "frozen blocks": "chosen" if automatic else glossary.frozen_words(config.get("freeze_depth")),
            "head": "chosen" if automatic else glossary.head_words(config.get("head")),
            "learning rate": "" if automatic else glossary.decimal(config.get("learning_rate") or 0),
            "epochs": config.get("epochs"),
            "image size": config.get("image_size"),
            "weights": config.get("weights") if config.get("weights") in ("imagenet", "none") else "file",
        })
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "accuracy": st.column_config.TextColumn("accuracy", help=glossary.explain("accuracy")),
        "seconds to train": st.column_config.NumberColumn("seconds to train", format="%.0f"),
        "frozen blocks": st.column_config.TextColumn("frozen blocks", help=glossary.explain("frozen blocks")),
        "head": st.column_config.TextColumn("head", help=glossary.explain("head")),
        "learning rate": st.column_config.TextColumn("learning rate", help=glossary.explain("learning rate")),
        "epochs": st.column_config.NumberColumn("epochs", help=glossary.explain("epoch"))})
    ids = [row["id"] for row in rows]
    current = common.current_run()
    follow_current_run(ids, current)
    watch, compare = st.columns([1, 2])
    chosen = watch.selectbox("Watch run", ids, key="watch_run")
    if chosen != current and watch.button("Show this run", key="show_run"):
        common.set_current_run(chosen)
        st.rerun()
    picked = compare.multiselect("Overlay the curves of", ids, key="overlay_runs")
    if len(picked) > 1:
        by_id = {row["id"]: row for row in rows}
        names = legend_names([by_id[run_id] for run_id in picked])
        curves, without = {}, []
        for run_id in picked:
            events = run_events(by_id[run_id])
            if by_id[run_id]["config"].get("recipe") == "auto":  # the final model's epochs, if it had any
                events = leaderboard.trained_phases(events).get(leaderboard.TRAINED_PHASES["final_fit"])
                if not events:
                    without.append(run_id)
                    continue
            curves[names[run_id] + ":"] = events
        if without:
            st.caption("No curves for " + ", ".join(f"`{run_id}`" for run_id in without)
                       + ": automatic runs whose final model is a linear head, fitted in one step (or not yet).")
        if curves:
            figure = common.curves_figure(curves, batch_line=False)
            # the legend names settings, so it runs long: hang it below the axis titles, not over them
            figure.update_layout(legend=dict(yanchor="top", y=-0.3), height=360 + 20 * len(curves))
            common.show_chart(figure, key="overlay")


def follow_current_run(ids: list[str], current: str | None) -> None:
    """Point the "Watch run" and "Overlay" pickers at the current run whenever it changes (a run started,
    or one picked here or on another page); a picker otherwise keeps its own value, the run before. The
    overlay keeps what else was picked, the run before included, so the new run is compared with it."""
    state = st.session_state
    if current in ids and current != state.get("_pickers_follow"):
        state["_pickers_follow"] = current
        state["watch_run"] = current
        state["overlay_runs"] = [current] + [run_id for run_id in state.get("overlay_runs", []) if run_id != current]
    # a picker's value must be one of today's runs (a widget left unshown for a page switch is forgotten)
    if state.get("watch_run") not in ids:
        state["watch_run"] = current if current in ids else ids[0]
    overlay = [run_id for run_id in state.get("overlay_runs", []) if run_id in ids]
    state["overlay_runs"] = overlay if "overlay_runs" in state else [state["watch_run"]]


SETTING_WORDS = (  # (setting, its value in a legend): what tells runs apart, in the Model page's words
    ("recipe", lambda value: "automatic" if value == "auto" else "manual"),
    ("model", lambda value: {"vgg16": "VGG16", "autoencoder": "autoencoder"}.get(value, str(value))),
    ("weights", lambda value: f"weights {value if value in ('imagenet', 'none') else 'file'}"),
    ("freeze_depth", glossary.frozen_words),
    ("head", lambda value: f"head {glossary.head_words(value)}"),
    ("optimizer", glossary.optimizer_words),
    ("learning_rate", lambda value: f"learning rate {glossary.decimal(value)}"),
    ("epochs", lambda value: f"{value} epochs"),
    ("batch_size", lambda value: f"batch {value}"),
    ("image_size", lambda value: f"{value} px"),
    ("augment", lambda value: "augmentation" if value else "no augmentation"),
    ("two_phase", lambda value: "two phases" if value else "one phase"),
)
AUTO_SETTINGS = {"recipe", "model", "weights", "epochs", "image_size"}  # the rest are unused defaults there


def legend_names(rows: list[dict]) -> dict[str, str]:
    """Each run named by the settings in which these runs differ ("learning rate 0.001, 3 epochs"), not by
    its id; a run whose settings match another's is told apart by its start time."""
    def used(row: dict) -> dict:
        config = row["config"]
        return {field: config.get(field) for field, _ in SETTING_WORDS
                if config.get("recipe") != "auto" or field in AUTO_SETTINGS}

    settings = {row["id"]: used(row) for row in rows}
    differ = [(field, words) for field, words in SETTING_WORDS
              if len({repr(values.get(field)) for values in settings.values()}) > 1]
    names = {}
    for row in rows:
        values = settings[row["id"]]
        names[row["id"]] = ", ".join(words(values[field]) for field, words in differ
                                     if values.get(field) is not None)
    alike = {name for name in names.values() if not name or list(names.values()).count(name) > 1}
    return {run_id: ", ".join(filter(None, [name, started_at(run_id)])) if name in alike else name
            for run_id, name in names.items()}


def started_at(run_id: str) -> str:
    """"started 14:05:31" from a run id (its first part is the start time, 20260101-140531-...)."""
    stamp = run_id.split("-")[1] if run_id.count("-") >= 2 else ""
    if len(stamp) == 6 and stamp.isdigit():
        return f"started {stamp[:2]}:{stamp[2:4]}:{stamp[4:]}"
    return run_id


def main() -> None:
    st.title("Train")
    weights_ready = weights_panel.notice()  # the weights are there, or the other choices in place (before Start)
    controls(weights_ready)
    run_id = common.current_run()
    if run_id:
        live_run.watch(render_run, run_id)
    runs_table()
    glossary.show("epoch", "loss", "accuracy", "validation accuracy", "feature cache", "frozen blocks", "head",
                  "learning rate", "cross-validation", "fine-tuning")


common.run_page(main)
