"""Experiments: the lesson of transfer learning as charts, on the user's own data.

Pick a kind, see the estimated time, start it (a job of the server's job manager, queued like a training run
when every slot is taken), watch the rows fill in, read the charts. core.experiments does the work; this page
lays it out.
"""

import streamlit as st

from core import experiments
from core import weights as vgg16_weights
from pages import common, glossary, weights_panel

POLL_SECONDS = 2.0
DESCRIPTIONS = {
    "freeze-depth": "First a linear probe on the frozen features of each of VGG16's five blocks (seconds each: "
                    "where in the pretrained network the useful features are), then pretrained VGG16 trained "
                    "with 5 of 5 blocks frozen, then 4, 3, 2, 1 and finally none frozen (quick: 5, 3 and none). "
                    "More frozen blocks train faster; the chart shows what that costs in accuracy.",
    "transfer-vs-scratch": "The automatic recipe on pretrained VGG16 (the best of linear heads on blocks 3-5, "
                           "and of fine-tuning block 5 from 20 pictures a class), pretrained VGG16 with every "
                           "block trained, the same network from random weights trained the same way, and the "
                           "autoencoder's encoder, all on the same split. A linear head has no epochs: the per-epoch "
                           "chart shows it as a level line.",
    "data-efficiency": "Transfer (the automatic recipe on pretrained VGG16) against scratch (the same network "
                       "from random weights, trained fully) with 2, 5, 10, 20 and all labeled images per class "
                       "(quick: 2, 5 and all), a few seeds each. The validation images stay the same throughout.",
}
COLUMN_HELP = {"validation accuracy": glossary.explain("validation accuracy"),
               "frozen blocks": glossary.explain("frozen blocks"), "block": glossary.explain("block"),
               "epochs": glossary.explain("epoch"), "seed": glossary.explain("seed"),
               "method": f"{glossary.explain('linear probe')} {glossary.explain('scratch')}"}
ACTIVE_STATES = ("queued", "running")
WHOLE_NUMBERS = ("block", "epochs", "seed", "pictures per class")  # blank where a row has none (a probe's epochs)


def for_people(table: list[dict]) -> list[dict]:
    """The experiment's table as the page shows it: accuracy in percent (drawn as a bar), and a blank cell, not
    "None", where a row has no value (a linear probe has no epochs, a trained run no block)."""
    shown = []
    for row in table:
        line = {}
        for name, value in row.items():
            if name == "validation accuracy":
                value = None if value is None else round(100 * float(value), 1)
            elif name in WHOLE_NUMBERS:
                value = "" if value is None else str(value)
            elif value is None:
                value = ""
            line[name] = value
        shown.append(line)
    return shown


def my_experiments() -> list[dict]:
    """This session's experiments, newest first (rows of the job manager's list: id, path, status,
    queue_position)."""
    return common.job_manager().runs(owner=common.owner(), kind="experiment")


def current_experiment(mine: list[dict]) -> str | None:
    """The id of the experiment this session looks at: the one it picked, else its newest (after a reload)."""
    ids = [item["id"] for item in mine]
    chosen = st.session_state.get("experiment_id")
    if chosen in ids:
        return chosen
    return ids[0] if ids else None


def settings_form(info: dict, running: bool) -> None:
    kind = st.radio("Experiment", experiments.KINDS, format_func=experiments.KIND_TITLES.get, horizontal=True,
                    key="experiment_kind")
    st.caption(DESCRIPTIONS[kind])
    config = common.config()
    weights, image_size = config.get("weights", "imagenet"), int(config.get("image_size", 64))
    left, right = st.columns(2)
    quick = left.toggle("Quick (fewer settings and seeds, for a first look on a CPU)", value=True,
                        key="experiment_quick")
    epochs = right.number_input("Epochs per run", min_value=1, max_value=200, step=1,
                                value=experiments.QUICK_EPOCHS if quick else experiments.DEFAULT_EPOCHS,
                                key=f"experiment_epochs_{quick}")
    st.caption(f"Weights **{weights_panel.in_words(weights)}** and image size **{image_size} px**, as set on the "
               "Model page. Scratch runs always start from random weights.")
    weights_status = vgg16_weights.status(weights)
    if not weights_status.ready:  # the pretrained runs would fail: say so now, not after Start
        st.warning(f"{weights_status.message} Nothing can start: upload a weights file or choose other weights "
                   "on the **Model** page.")
    elif weights == "none":
        st.warning("The weights are set to 'none', so the 'pretrained' runs start from random weights too and "
                   "there is nothing to transfer. Choose ImageNet weights on the Model page to see the lesson.")
    plan = experiments.plan_summary(kind, info["images"], image_size, quick, epochs=int(epochs),
                                    n_classes=len(info["classes"]))
    probes = f" and {plan['probes']} linear probes" if plan["probes"] else ""
    st.info(f"{plan['runs']} models to train{probes} on {info['images']} images: about "
            f"{common.format_seconds(plan['seconds'])} on 2 CPU cores (a GPU is much faster).")
    if st.button("Start the experiment", type="primary", disabled=running or not weights_status.ready,
                 key="experiment_start", help="Finish or stop your running experiment first" if running else None):
        try:  # the job manager queues it when every training slot of the server is taken
            experiment_id = common.job_manager().submit_experiment(
                kind, info["path"], common.owner(), weights=weights, image_size=image_size, epochs=int(epochs),
                quick=quick)
        except (ValueError, FileNotFoundError) as error:
            st.error(f"The experiment could not start: {common.plain(error)}")
            return
        st.session_state["experiment_id"] = st.session_state["experiment_shown"] = experiment_id
        st.rerun()


def experiment_status(experiment_id: str) -> dict:
    """The experiment's status.json as the job manager says it (with queue_position while queued)."""
    return common.job_manager().status(experiment_id, owner=common.owner())


def show_results(experiment_id: str) -> None:
    """State, rows and charts of one experiment: its state from the job manager, its rows from results.json."""
    status = experiment_status(experiment_id)
    path = common.job_manager().root / experiment_id
    results = experiments.read_results(path) or {}
    state = status.get("state")
    rows = results.get("rows") or []
    planned = results.get("planned")
    st.subheader(results.get("title") or "Experiment")
    if state == "queued":
        position = status.get("queue_position")
        st.info("Waiting for a free training slot on this server" +
                (f": number {position} in line." if position else ".") +
                " It starts by itself when a run or experiment ahead of it finishes.")
    elif state == "running":
        done = len(rows)
        text = (f"Step {done + 1} of {planned} is running" if planned else "Loading the images and the weights")
        st.progress(done / planned if planned else 0.0, text=text)
    if state in ACTIVE_STATES:
        if st.button("Stop the experiment", key="experiment_stop"):
            common.job_manager().stop(experiment_id, owner=common.owner())
            st.toast("Stopping after the current batch." if state == "running" else "Taken out of the queue.")
    elif state == "failed":
        st.error(f"The experiment failed: {common.plain(status.get('error') or results.get('error'))}")
    elif state == "stopped" and not planned:
        st.warning("Stopped before it started.")
    elif state == "stopped":
        st.warning(f"Stopped after {len(rows)} of {planned} runs; the rows below are what finished.")
    elif state == "done":
        probes = sum(1 for row in rows if row.get("method") == experiments.PROBE)
        st.success(f"Finished: {len(rows) - probes} models trained." + (f" {probes} linear probes scored."
                                                                          if probes else ""))
    lesson = experiments.headline(results)
    if lesson:
        st.markdown(f"**{lesson}**")
    if rows:
        table = for_people(experiments.table(results, error_words=common.without_workspace_paths))
        columns = {name: st.column_config.Column(name, help=words) for name, words in COLUMN_HELP.items()}
        columns["validation accuracy"] = st.column_config.ProgressColumn(
            "validation accuracy", help=COLUMN_HELP["validation accuracy"], format="%.0f%%", min_value=0,
            max_value=100)
        columns["seconds to train"] = st.column_config.NumberColumn("seconds to train", format="%.1f")
        st.dataframe(table, hide_index=True, key="experiment_rows", column_config=columns)
    for index, figure in enumerate(experiments.figures(results)):
        common.show_chart(figure, key=f"experiment_chart_{index}", width="content")
    charts = experiments.charts_path(path)
    if state not in ACTIVE_STATES and charts is not None:
        st.download_button("Download the charts (HTML, works offline)", data=charts.read_bytes(),
                           file_name=f"{results.get('kind', 'experiment')}-charts.html", mime="text/html",
                           key="experiment_download")


@st.fragment(run_every=POLL_SECONDS)
def live_results(experiment_id: str) -> None:
    """Re-read the experiment every few seconds while it waits or runs; rerun the page when it ends."""
    show_results(experiment_id)
    if experiment_status(experiment_id).get("state") not in ACTIVE_STATES:
        st.rerun()  # the finished view needs no timer


def body() -> None:
    st.title("Experiments")
    st.write("Why transfer learning works, shown on your own images: each experiment trains several "
             "ordinary models and puts their results side by side.")
    info = common.current_dataset()
    if not info:
        st.info("Pick a dataset on the **Data** page first (one click gives the demo data).")
        return
    mine = my_experiments()
    running = any(item["status"].get("state") in ACTIVE_STATES for item in mine)
    settings_form(info, running)
    shown = current_experiment(mine)
    if len(mine) > 1:
        # no state in the labels: a keyed selectbox keeps showing the label it was picked with, so
        # "(Running)" stayed after the experiment finished (seen in Chromium); the state is shown below
        names = {item["id"]: f"{(experiments.read_results(item['path']) or {}).get('title') or 'Experiment'}, "
                             f"started {item['id'][:15]}"
                 for item in mine}
        shown = st.selectbox("Show", list(names), index=list(names).index(shown) if shown in names else 0,
                             format_func=names.get, key="experiment_shown")
        st.session_state["experiment_id"] = shown
    if not shown:
        return
    st.divider()
    if experiment_status(shown).get("state") in ACTIVE_STATES:
        live_results(shown)
    else:
        show_results(shown)
    glossary.show("frozen blocks", "linear probe", "scratch", "validation accuracy", "ImageNet weights",
                  "cross-validation", "epoch", "seed")


common.run_page(body)
