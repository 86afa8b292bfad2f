"""Plain words for students, on by default (issue 11): the pages show no jargon ("1.0e-04", "k = 5 ... 0",
"2 conv x 64", raw column names, "Macro F1", "PCA component"), every term has its explanation on hover or
in the page's glossary, the report shows the settings that matter for the run's kind and folds the rest
away, and the charts tell their story (the learning-rate finder clipped above a spike, the loss on a scale
that a wild first batch does not flatten, Plotly's toolbar clear of the titles)."""
import importlib.util
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import REPO_ROOT, app_env, assert_no_exception, plotly_specs, shown_text, start_app  # noqa: F401
from core import report
from core.config import TrainConfig

MODEL = "pages/2_model.py"
TRAIN = "pages/3_train.py"
OWNER = "test-owner-plain-words-01"
RUN_ID = "20260101-000000-plainwords1"
JARGON = re.compile(r"\de-0\d|\d\.\de[-+]|k = \d|conv x|val_accuracy|train_seconds|freeze_depth|Macro F1|"
                    r"PCA|component \d", re.IGNORECASE)


@pytest.fixture(autouse=True)
def weights_can_be_had(monkeypatch):
    """The network alone is mocked as reachable, so the pages' weights verdict does not hang on this machine."""
    from core import weights

    monkeypatch.setattr(weights, "_reach_host", lambda timeout: True)
    monkeypatch.setattr(weights, "_probe", {"time": 0.0, "result": False})


def page_words(at) -> str:
    """What a student reads: the shown text, every widget's label, help and (formatted) options, table
    columns, and the texts drawn in the charts."""
    parts = [shown_text(at)]
    kinds = ("button", "slider", "select_slider", "selectbox", "radio", "number_input", "checkbox", "toggle")
    for kind in kinds:
        for widget in getattr(at, kind):
            parts += [str(widget.label), str(widget.help or "")]
            parts += [str(option) for option in getattr(widget, "options", []) or []]
    parts += [str(m.help or "") for m in at.metric]
    parts += [" ".join(map(str, frame.value.columns)) for frame in at.dataframe]
    for spec in plotly_specs(at).values():
        layout = spec["layout"]
        parts += [json.dumps(layout.get("title", "")), json.dumps(layout.get("annotations", []))]
        parts += [json.dumps(axis.get("title", "")) for name, axis in layout.items() if name.startswith(("xaxis", "yaxis"))]
        parts += [json.dumps(trace.get("text", "")) + str(trace.get("name", "")) for trace in spec["data"]]
    return "\n".join(parts)


def glossaries(at) -> list[str]:
    return [expander.label for expander in at.expander if "Words on this page" in expander.label]


def test_the_model_page_says_its_terms_in_words_and_explains_them(app_env):
    at = start_app(page=MODEL)
    assert glossaries(at), "the automatic recipe's glossary"
    at.radio(key="cfg::recipe").set_value("manual").run()
    assert_no_exception(at)
    words = page_words(at)
    assert not JARGON.search(words), JARGON.search(words)
    assert "0.0001" in at.select_slider(key="cfg::learning_rate").options
    assert "Now: 4 of 5 blocks frozen." in words
    at.slider(key="cfg::freeze_depth").set_value(0).run()
    assert "none frozen" in shown_text(at)
    at.slider(key="cfg::freeze_depth").set_value(2).run()
    diagram = json.dumps(plotly_specs(at)["freeze_diagram"])
    assert "2 convolution layers,<br>64 filters" in diagram and "saved here once per picture" in diagram
    # every setting and number has its explanation on hover, and the page has its glossary
    for kind, key in (("slider", "cfg::freeze_depth"), ("selectbox", "cfg::head"), ("radio", "cfg::optimizer"),
                      ("select_slider", "cfg::learning_rate"), ("number_input", "cfg::epochs"),
                      ("number_input", "cfg::batch_size"), ("checkbox", "cfg::augment")):
        assert getattr(at, kind)(key=key).help, key
    assert all(m.help for m in at.metric)
    assert glossaries(at)
    glossary_text = " ".join(str(md.value) for expander in at.expander if "Words on this page" in expander.label
                             for md in expander.markdown)
    assert "**Learning rate**" in glossary_text and "**Frozen blocks**" in glossary_text


def write_run(workspace: Path) -> Path:
    """A finished manual run of OWNER on disk, as the job manager files it, with a wild first batch."""
    run = workspace / "runs" / RUN_ID
    run.mkdir(parents=True)
    (run / "job.json").write_text(json.dumps({"owner": OWNER, "data": str(workspace), "submitted": 0}))
    (run / "config.json").write_text(TrainConfig.from_dict({"recipe": "manual", "weights": "none"}).to_json())
    (run / "status.json").write_text(json.dumps({"state": "done", "val_accuracy": 0.75, "train_seconds": 12.5,
                                                 "best_epoch": 2}))
    events = [{"type": "batch", "phase": "train", "epoch": 1, "batch": b, "steps": 4, "loss": loss,
               "accuracy": 0.5, "fraction": b / 8} for b, loss in zip(range(1, 5), (40.0, 1.4, 1.2, 1.1))]
    events += [{"type": "epoch", "phase": "train", "epoch": e, "epochs": 2, "loss": loss, "val_loss": loss + 0.1,
                "accuracy": 0.6, "val_accuracy": 0.7} for e, loss in ((1, 1.3), (2, 0.9))]
    (run / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in events))
    return run


def test_the_train_page_table_is_in_words_and_its_loss_chart_is_scaled(app_env):
    write_run(app_env)
    at = start_app({"session": OWNER, "run": RUN_ID}, page=TRAIN)
    words = page_words(at)
    assert not JARGON.search(words), JARGON.search(words)
    columns = list(at.dataframe[0].value.columns)
    assert "seconds to train" in columns and "train_seconds" not in columns, columns
    row = at.dataframe[0].value.iloc[0]
    assert row["learning rate"] == "0.0001" and row["frozen blocks"] == "4 of 5 blocks frozen"
    assert row["state"] == "Finished" and row["head"] == "average pooling"
    assert glossaries(at)
    chart = at.get("plotly_chart")[0]
    loss_axis = json.loads(chart.proto.spec)["layout"]["yaxis"]["range"]
    assert 1.3 <= loss_axis[1] < 5, loss_axis  # the first batch's 40 goes off the top
    config = json.loads(chart.proto.config)
    assert config["displayModeBar"] == "hover", config  # the toolbar only while the pointer is on the chart
    assert json.loads(chart.proto.spec)["layout"]["margin"]["t"] >= 60  # and above the subplot titles


def load_page(name: str, monkeypatch):
    """A page file as a module, without running its body (its functions, for one figure or one row)."""
    from pages import common

    monkeypatch.setattr(common, "run_page", lambda body: None)
    spec = importlib.util.spec_from_file_location(f"page_{Path(name).stem}", REPO_ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_learning_rate_finder_plot_is_clipped_above_a_spike(monkeypatch):
    model_page = load_page(MODEL, monkeypatch)
    rates = [10 ** (-6 + k * 0.3) for k in range(21)]
    losses = [1.4, 1.39, 1.38, 1.3, 1.1, 0.8, 0.6, 0.55, 0.6, 0.9, 1.5, 3, 9, 40, 300, 2000, 1e4, 5e4, 1e5, 2e5, 1e6]
    figure, clipped = model_page.finder_figure({"learning_rates": rates, "losses": losses, "suggested": 1e-4})
    low, high = figure.layout.yaxis.range
    assert clipped and low <= 0.55 and 1.4 < high < 5.0, (low, high)  # a few times the starting loss
    assert "cut off" in figure.layout.yaxis.title.text
    calm = [1.4, 1.2, 1.0, 0.8, 0.9, 1.3]
    figure, clipped = model_page.finder_figure({"learning_rates": rates[:6], "losses": calm, "suggested": 1e-5})
    assert not clipped and figure.layout.yaxis.range[1] >= 1.4


def test_evaluate_says_average_f1_and_feature_map_in_words(monkeypatch):
    evaluate = load_page("pages/5_evaluate.py", monkeypatch)
    figure = evaluate.feature_map_figure({"x": [0.0, 1.0], "y": [1.0, 0.0], "labels": ["a", "b"],
                                          "paths": ["a/1.png", "b/1.png"], "method": "pca"}, ["a", "b"])
    titles = " ".join([figure.layout.title.text, figure.layout.xaxis.title.text, figure.layout.yaxis.title.text])
    assert "map of the pictures' features (2-D projection)" in titles and not JARGON.search(titles), titles

    def metrics():
        from pathlib import Path as P
        import importlib.util as u

        from pages import common
        common.run_page = lambda body: None
        spec = u.spec_from_file_location("evaluate_page", P.cwd() / "pages" / "5_evaluate.py")
        page = u.module_from_spec(spec)
        spec.loader.exec_module(page)
        page.metrics_row({"accuracy": 0.5, "n": 4, "misclassified": [{}, {}], "data": "a zip", "classes": ["a", "b"],
                          "per_class": {"a": {"f1": 0.5}, "b": {"f1": 0.7}}})

    monkeypatch.chdir(REPO_ROOT)
    at = AppTest.from_function(metrics).run()
    assert_no_exception(at)
    shown = {m.label: m for m in at.metric}
    assert "Macro F1" not in shown and shown["Average F1 over classes"].value == "0.60"
    assert "macro F1" in shown["Average F1 over classes"].help and shown["Accuracy"].help


def test_the_experiments_table_and_description_are_in_words(demo_dir, app_env):
    from test_app_experiments import finished_experiment, page

    rows = [{"method": "transfer", "label": f"k={depth}", "freeze_depth": depth, "val_accuracy": 0.5,
             "train_seconds": 3.0, "epochs": 1, "state": "done", "error": None, "curve": [0.5]} for depth in (5, 0)]
    finished_experiment("freeze-depth", {"kind": "freeze-depth", "title": "Freeze depth", "state": "done",
                                         "planned": 2, "rows": rows})
    at = page(demo_dir).run()
    assert_no_exception(at)
    table = at.dataframe[0].value
    assert {"validation accuracy", "seconds to train", "frozen blocks"} <= set(table.columns), table.columns
    assert list(table["frozen blocks"]) == ["5 of 5 blocks frozen", "none frozen (every block trains)"]
    assert list(table["run"]) == ["5 of 5 blocks frozen", "none frozen (every block trains)"]  # older "k=" labels
    text = page_words(at)  # the description, the lesson, the charts' labels
    assert "5 of 5 blocks frozen" in text and not re.search(r"\bk ?=|\bk (frozen|blocks)", text), text
    assert glossaries(at)


def write_report_run(tmp_path: Path, **settings) -> Path:
    (tmp_path / "config.json").write_text(TrainConfig.from_dict(settings).to_json())
    (tmp_path / "status.json").write_text(json.dumps({"state": "done", "train_seconds": 3.0}))
    return tmp_path


def settings_of(page: str) -> tuple[str, str]:
    """(the settings shown, the settings folded away) of a report."""
    section = page[page.index("<h2>Settings</h2>"):page.index("<h2>Data</h2>")]
    shown, folded = section.split("<details", 1)
    return shown, folded


@pytest.mark.parametrize("settings, shown_words, folded_names", [
    ({"recipe": "manual", "learning_rate": 1e-5, "freeze_depth": 5, "optimizer": "sgd"},
     ["0.00001", "5 of 5 VGG16 blocks frozen", "SGD with momentum", "Batch size", "average pooling"],
     ["dropout", "seed", "validation_fraction"]),
    ({"recipe": "auto", "image_size": 48}, ["VGG16, chosen automatically", "48 x 48 pixels", "ImageNet"],
     ["learning_rate", "freeze_depth", "optimizer", "batch_size"]),
    ({"recipe": "manual", "model": "autoencoder", "head": "gap", "autoencoder_learning_rate": 2e-3},
     ["Autoencoder epochs", "0.002", "Fine-tune the encoder"], ["freeze_depth", "optimizer"]),
])
def test_the_report_shows_the_settings_of_the_runs_kind_in_words_and_folds_the_rest(
        tmp_path, settings, shown_words, folded_names):
    shown, folded = settings_of(report.build_report(write_report_run(tmp_path, **settings)))
    for words in shown_words:
        assert words in shown, (words, shown)
    assert "<summary>" in folded and folded.rstrip().endswith("</details>")
    for name in folded_names:
        assert f"<td>{name}</td>" in folded and name not in shown, name
    assert not re.search(r"\de-0\d|_", shown.replace("<h2>", "")), shown
