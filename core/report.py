"""One self-contained HTML page about a run, to keep or mail: settings, data, how the model was chosen (recipe
"auto"), curves, metrics, mistakes, Grad-CAM.

Everything is inside the file (Plotly's JavaScript inline, pictures as data: URIs), so it opens offline
and fetches nothing. Every piece of user text (class names, file names, settings) is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core import leaderboard, measured, runs
from core.config import decimal

MAX_MISTAKES = 8
MAX_GRAD_CAM = 4
MAX_SKIPPED_SHOWN = 50
SHOWN_IMAGE_PIXELS = 112
EXPERIMENT_FACTS = ("kind", "state", "error", "data", "settings", "split", "classes")
EXPERIMENT_HIDDEN = {"curve", "run_dir"}  # per-epoch lists and server paths: noise in a table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { border: 1px solid #ddd; padding: .25em .6em; }
th { background: #f4f4f4; text-align: left; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; } .error { color: #a00; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
.gallery figure { margin: 0; text-align: center; font-size: .85em; max-width: 16em; }
.gallery img { image-rendering: pixelated; border: 1px solid #ccc; }
.confusion td { text-align: center; min-width: 3em; }
details.more-settings summary { cursor: pointer; color: #555; }
"""


def _e(value) -> str:
    """HTML-escape any value shown on the page."""
    return html.escape(str(value), quote=True)


def _png_data_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(image: np.ndarray, alt: str, shown_pixels: int = SHOWN_IMAGE_PIXELS) -> str:
    """An <img> with the picture inside, enlarged by a whole factor (crisp pixels) up to ``shown_pixels``."""
    height, width = np.asarray(image).shape[:2]
    scale = max(1, shown_pixels // max(height, width))
    return (f'<img src="{_png_data_uri(image)}" alt="{_e(alt)}" width="{width * scale}" '
            f'height="{height * scale}">')


def _table(header: list, rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="number">{_e(cell)}</td>' if index in numeric else f"<td>{_e(cell)}</td>"
                         for index, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# ---------------------------------------------------------------------- sections

def _summary_section(status: dict, metrics: dict | None) -> str:
    rows = [["state", status.get("state", "unknown")], ["device", status.get("device", "")]]
    if status.get("train_seconds") is not None:
        rows.append(["seconds to train", _number(status["train_seconds"], 1)])
    if metrics:
        measure = measured.measure(metrics.get("evaluation"))
        rows.append([measure.accuracy, _number(metrics.get("accuracy"))])
        rows.append([measure.pictures, metrics.get("n")])
    html_parts = [_table(["", "value"], rows)]
    if status.get("error"):
        html_parts.append(f'<p class="error">error: {_e(status["error"])}</p>')
    return "".join(html_parts)


def source_name(source: str) -> str:
    """How a report names the data a run trained on: the dataset's own name (its manifest's source, e.g.
    "Demo shapes (30 per class)") or the folder's or zip's name, never the server path (a path in the
    workspace holds the session's token, and a report is made to be mailed)."""
    manifest = runs.read_json(Path(source) / "manifest.json") if Path(source).is_dir() else None
    named = manifest.get("source") if isinstance(manifest, dict) else None
    if isinstance(named, str) and named.strip() and "/" not in named:
        return named
    return Path(str(source).replace("\\", "/")).name


def _weights_words(value) -> str:
    return {"imagenet": "ImageNet (pretrained)", "none": "none (random start)"}.get(value, f"the file {value}")


# Each setting a report may name, in words: (label, how its value reads). A run's kind decides which of them
# matter (MAIN_SETTINGS); every other one sits in a folded table under its stored name, for whoever repeats it.
SETTING_WORDS = {
    "model": ("Model", lambda v: {"vgg16": "VGG16", "autoencoder": "autoencoder"}.get(v, str(v))),
    "image_size": ("Image size", lambda v: f"{v} x {v} pixels"),
    "weights": ("Starting weights", _weights_words),
    "freeze_depth": ("Frozen blocks", lambda v: "none frozen (every block trains)" if v == 0
                     else f"{v} of 5 VGG16 blocks frozen"),
    "learning_rate": ("Learning rate", decimal),
    "optimizer": ("Optimizer", lambda v: {"adam": "Adam", "sgd": "SGD with momentum"}.get(v, str(v))),
    "epochs": ("Epochs (passes over the training pictures)", str),
    "batch_size": ("Batch size (pictures per update)", str),
    "head": ("Head (the part that names the class)", lambda v: {
        "gap": "average pooling + softmax", "seed": "Flatten + Dense 1024 + softmax", "svm": "SVM",
        "random_forest": "random forest"}.get(v, str(v))),
    "autoencoder_epochs": ("Autoencoder epochs", str),
    "autoencoder_learning_rate": ("Autoencoder learning rate", decimal),
    "fine_tune_encoder": ("Fine-tune the encoder afterwards", lambda v: "yes" if v else "no"),
    "unlabeled": ("Extra unlabeled pictures", lambda v: "yes" if v else "none"),
}
MAIN_SETTINGS = {  # the settings that shape a run of each kind
    "auto": ("model", "image_size", "weights"),
    "manual": ("freeze_depth", "learning_rate", "optimizer", "epochs", "batch_size", "head", "weights", "image_size"),
    "autoencoder": ("autoencoder_epochs", "autoencoder_learning_rate", "epochs", "head", "fine_tune_encoder",
                    "image_size", "unlabeled"),
}


def run_kind(config: dict) -> str:
    """"autoencoder", "auto" or "manual": which settings shaped the run."""
    if config.get("model") == "autoencoder":
        return "autoencoder"
    return "auto" if config.get("recipe") == "auto" else "manual"


def _config_section(config: dict, run: Path | None = None) -> str:
    """The settings that matter for the run's kind in words, then every other setting folded away
    (a <details> element) under the names the app stores them by."""
    from core.export import shareable_config

    shared = shareable_config(config)
    kind = run_kind(config)
    main = [field for field in MAIN_SETTINGS[kind] if field in shared]
    rows = [[SETTING_WORDS[field][0], SETTING_WORDS[field][1](shared[field])] for field in main if field != "model"]
    if kind == "auto":  # the model is the one the recipe chose
        board = leaderboard.read_file(run) if run is not None else None
        chosen = board.chosen_candidate if board is not None else None
        rows.insert(0, ["Model", "VGG16, chosen automatically" + (f": {chosen.name}" if chosen else "")])
    rest = [[name, json.dumps(value) if isinstance(value, (dict, list)) else value]
            for name, value in sorted(shared.items()) if name not in main]
    words = {"auto": "the automatic recipe", "manual": "the manual recipe", "autoencoder": "the autoencoder"}[kind]
    return (f"<h2>Settings</h2><p>The settings that shaped this run ({words}):</p>"
            + _table(["setting", "value"], rows)
            + f'<details class="more-settings"><summary>Every other setting ({len(rest)}), as the app stores '
              f"them</summary>{_table(['setting', 'value'], rest)}</details>")


def _dataset_section(dataset: dict | None) -> str:
    if not dataset:
        return '<h2>Data</h2><p class="note">no dataset.json: the run stopped before it loaded its images.</p>'
    parts = ["<h2>Data</h2>"]
    if dataset.get("source"):
        parts.append(f"<p>source: <code>{_e(source_name(dataset['source']))}</code></p>")
    split = dataset.get("split") or {}
    if split.get("validation") or not split.get("train"):
        parts.append(f"<p>{_e(len(split.get('train', [])))} training and {_e(len(split.get('validation', [])))} "
                     f"validation images at {_e(dataset.get('image_size', '?'))} px.</p>")
    else:  # recipe auto with few pictures a class: see Results for how the accuracy was measured
        parts.append(f"<p>{_e(len(split['train']))} training images at {_e(dataset.get('image_size', '?'))} px, every "
                     "one of them used to train the model (too few a class to set some aside).</p>")
    counts = dataset.get("counts") or {}
    parts.append(_table(["class", "images"], [[name, count] for name, count in counts.items()], numeric={1}))
    skipped = dataset.get("skipped") or []
    if skipped:
        parts.append(f"<h3>Skipped files ({len(skipped)})</h3>")
        parts.append(_table(["file", "reason"], [[item.get("path", ""), item.get("reason", "")]
                                                   for item in skipped[:MAX_SKIPPED_SHOWN]]))
        if len(skipped) > MAX_SKIPPED_SHOWN:
            parts.append(f'<p class="note">and {len(skipped) - MAX_SKIPPED_SHOWN} more.</p>')
    else:
        parts.append('<p class="note">No file was skipped.</p>')
    return "".join(parts)


class _Plotter:
    """Turns Plotly figures into HTML; the first one carries Plotly's JavaScript inline (never from a CDN)."""

    def __init__(self):
        self.library_included = False

    def __call__(self, figure) -> str:
        import plotly.io as pio

        height = figure.layout.height or 360  # a figure that sizes itself to its rows keeps its height
        figure.update_layout(height=height, margin={"l": 50, "r": 20, "t": 60, "b": 40})
        markup = pio.to_html(figure, full_html=False, include_plotlyjs=not self.library_included,
                             default_height=f"{height}px", config={"displaylogo": False, "responsive": True})
        self.library_included = True
        return markup


def _candidates_section(run: Path, plot: _Plotter) -> str:
    """Recipe "auto": the candidates scored on the training pictures, the one kept and why (nothing for
    a run without a readable candidates.json)."""
    board = leaderboard.read_file(run)
    if board is None:
        return ""
    parts = ["<h2>How the model was chosen</h2>"]
    if board.reason:
        parts.append(f"<p><b>Chosen:</b> {_e(board.reason)}</p>")
    if board.scoring:
        parts.append(f"<p>Every candidate was scored by {_e(board.scoring)}.</p>")
    parts.append(f'<p class="note">{_e(leaderboard.CROSS_VALIDATION_HELP)}</p>')
    if board.measured:
        parts.append(f"<p>{_e(board.measured[:1].upper() + board.measured[1:])} (Results, below).</p>")
    parts.append(plot(leaderboard.figure(board)))
    parts.append(_table(["candidate", "accuracy", "spread", "scored on", "seconds", ""],
                        [[c.name, leaderboard.percent(c.accuracy),
                          "" if c.spread is None else "± " + leaderboard.percent(c.spread), c.scored_on(),
                          "" if c.seconds is None else _number(c.seconds, 1),
                          "chosen" if c.index == board.chosen else ""] for c in board.candidates],
                        numeric={1, 2, 4}))
    return "".join(parts)


def _curves_section(events: list[dict], plot: _Plotter) -> str:
    """Training curves: autoencoder pretraining (if any) and the classifier's loss and accuracy."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    epochs = [event for event in events if event.get("type") == "epoch"]
    pretraining = [event for event in epochs if "autoencoder" in str(event.get("phase", ""))]
    classifier = [event for event in epochs if event not in pretraining]
    auto = any(event.get("phase") in leaderboard.TRAINED_PHASES for event in classifier)
    if auto:  # only what trained epoch by epoch, a curve for each training (each starts at epoch 1)
        classifier = leaderboard.trained_phases(events)
        if not classifier:
            return ('<h2>Training curves</h2><p class="note">None: the chosen model is a linear head on the frozen '
                    "features, fitted in one step rather than epoch by epoch.</p>")
    else:
        classifier = {"": classifier} if classifier else {}
    figures = []
    if pretraining:
        figure = go.Figure()
        for key in ("loss", "val_loss"):
            points = [(event.get("epoch", i + 1), event[key]) for i, event in enumerate(pretraining)
                      if event.get(key) is not None]
            if points:
                figure.add_scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                   name=f"reconstruction {key}")
        figure.update_layout(title="Autoencoder pretraining (reconstruction loss)", xaxis_title="epoch")
        figures.append(figure)
    if classifier:
        figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
        for training, trained in classifier.items():
            trained = [event for event in trained if event.get("type") == "epoch"]
            for column, keys in ((1, ("loss", "val_loss")), (2, ("accuracy", "val_accuracy"))):
                for key in keys:
                    points = [(event.get("epoch", i + 1), event[key], event.get("phase", ""))
                              for i, event in enumerate(trained) if event.get(key) is not None]
                    if points:
                        figure.add_scatter(x=[p[0] for p in points], y=[p[1] for p in points],
                                           mode="lines+markers", name=f"{training} {key}".strip(),
                                           text=[p[2] for p in points], row=1, col=column)
        figure.update_xaxes(title_text="epoch")
        figure.update_layout(title="Classifier training")
        figures.append(figure)
    if not figures:
        return '<h2>Training curves</h2><p class="note">no epoch finished.</p>'
    return "<h2>Training curves</h2>" + "".join(plot(figure) for figure in figures)


def _reconstructions_section(run: Path) -> str:
    path = run / "reconstructions.png"
    if not path.is_file():
        return ""
    try:
        with Image.open(path) as picture:
            grid = np.asarray(picture.convert("RGB"))
    except Exception:
        return ""
    return ("<h2>Autoencoder reconstructions</h2><p>Top row: inputs; bottom row: what the autoencoder rebuilt "
            f"from its bottleneck.</p><div class=\"gallery\"><figure>{_img(grid, 'reconstructions', shown_pixels=720)}</figure></div>")


def _metrics_section(metrics: dict | None) -> str:
    if not metrics:
        return '<h2>Results</h2><p class="note">no metrics.json: the run did not finish.</p>'
    classes = metrics.get("classes", [])
    measure = measured.measure(metrics.get("evaluation"))
    parts = [f"<h2>Results</h2><p>{_e(measure.title)} <b>{_e(_number(metrics.get('accuracy')))}</b> on "
             f"{_e(metrics.get('n', '?'))} images.</p>", f'<p class="note">{_e(measure.explained)}</p>',
             "<h3>Per class</h3>"]
    parts.append(_table(["class", "precision", "recall", "F1", "images"],
                        [[name, _number(row["precision"]), _number(row["recall"]), _number(row["f1"]), row["support"]]
                         for name, row in metrics.get("per_class", {}).items()], numeric={1, 2, 3, 4}))
    matrix = metrics.get("confusion_matrix") or []
    if matrix:
        largest = max(1, max(max(row) for row in matrix))
        head = "<th>true \\ predicted</th>" + "".join(f"<th>{_e(name)}</th>" for name in classes)
        body = []
        for name, row in zip(classes, matrix):
            cells = "".join(
                f'<td style="background: rgba(31, 119, 180, {0.85 * count / largest:.2f}); '
                f'color: {"#fff" if count / largest > 0.5 else "#222"}">{_e(count)}</td>' for count in row)
            body.append(f"<tr><th>{_e(name)}</th>{cells}</tr>")
        parts.append("<h3>Confusion matrix</h3><p class=\"note\">Rows: true class; columns: predicted class.</p>"
                     f'<table class="confusion"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    return "".join(parts)


def _examples_sections(run_dir: Path) -> str:
    """Misclassified validation images and Grad-CAM examples (needs the model and the training images)."""
    from core import evaluation, explain, ingest
    from core.predict import RunFilesError, load_predictor

    try:
        result, dataset = evaluation.evaluate_with_images(run_dir, feature_map=None)
        predictor = load_predictor(run_dir)
    except (RunFilesError, evaluation.EvaluationError, ingest.DatasetError) as error:
        return f'<h2>Examples</h2><p class="note">Images are not shown: {_e(error)}</p>'
    pictures = measured.measure(result.get("evaluation")).pictures
    parts = [f"<h2>Misclassified {_e(pictures.split(',')[0])}</h2>"]
    mistakes = result["misclassified"][:MAX_MISTAKES]
    if mistakes:
        figures = [f"<figure>{_img(dataset.images[row['index']], row['path'])}<figcaption>{_e(row['path'])}<br>"
                   f"true <b>{_e(row['true'])}</b>, predicted <b>{_e(row['predicted'])}</b> "
                   f"({_e(_number(row['confidence'], 2))})</figcaption></figure>" for row in mistakes]
        parts.append(f'<p>{len(result["misclassified"])} of {result["n"]} wrong ({_e(pictures)}); the most '
                     f'confident mistakes:</p><div class="gallery">{"".join(figures)}</div>')
    else:
        parts.append(f"<p>None: all {result['n']} are right ({_e(pictures)}).</p>")

    parts.append("<h2>Grad-CAM</h2>")
    if explain.explains_class(predictor):
        parts.append("<p>Where the model looked: red areas raised the score of the predicted class most.</p>")
    else:
        parts.append("<p>The scikit-learn head has no gradient, so these maps are class-agnostic: red areas are "
                     "where the frozen network's features are strongest.</p>")
    chosen, seen = [], set()
    for row in result["predictions"]:  # one image per class first, then any
        if row["true"] not in seen:
            seen.add(row["true"])
            chosen.append(row)
    chosen = chosen[:MAX_GRAD_CAM]
    figures = []
    for row in chosen:
        image = dataset.images[row["index"]]
        try:
            heatmap = explain.grad_cam(predictor, image)
        except RunFilesError as error:
            parts.append(f'<p class="note">Grad-CAM is not available: {_e(error)}</p>')
            break
        figures.append(f"<figure>{_img(image, row['path'])} {_img(explain.overlay(image, heatmap), 'Grad-CAM')}"
                       f"<figcaption>{_e(row['path'])}<br>true <b>{_e(row['true'])}</b>, predicted "
                       f"<b>{_e(row['predicted'])}</b></figcaption></figure>")
    parts.append(f'<div class="gallery">{"".join(figures)}</div>')
    return "".join(parts)


def _experiment_section(results: dict, plot) -> str:
    """An experiment (core.experiments results): its headline, settings, charts, summary and rows."""
    from core import experiments

    title = results.get("title") or results.get("kind") or "Experiment"
    parts = [f"<h2>Experiment: {_e(title)}</h2>"]
    headline = experiments.headline(results) if results.get("rows") else None
    if headline:
        parts.append(f"<p><b>{_e(headline)}</b></p>")
    from core.export import shareable_config

    shown = dict(results)  # no server path leaves the server: the data by name, weights by file name
    if isinstance(shown.get("data"), str):
        shown["data"] = source_name(shown["data"])
    if isinstance(shown.get("settings"), dict):
        shown["settings"] = shareable_config(shown["settings"])
    facts = [[key, _cell(shown[key])] for key in EXPERIMENT_FACTS if shown.get(key) not in (None, "", [], {})]
    if facts:
        parts.append(_table(["", "value"], facts))
    parts += [plot(figure) for figure in experiments.figures(results)] if results.get("rows") else []
    summary = [{experiments.column_words(column): value for column, value in row.items()
                if column not in EXPERIMENT_HIDDEN}
               for row in results.get("summary") or [] if isinstance(row, dict)]
    for name, rows in (("Summary", summary), ("Runs", experiments.table(results, error_words=runs.without_workspace_paths))):
        if rows:
            columns: list[str] = []
            for row in rows:
                columns += [column for column in row if column not in columns]
            parts.append(f"<h3>{name}</h3>" + _table(columns, [[_cell(row.get(column, "")) for column in columns]
                                                              for row in rows]))
    return "".join(parts)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return _number(value, 4)


# ---------------------------------------------------------------------- the page

def build_report(run_dir: str | os.PathLike, experiment_results: dict | None = None) -> str:
    """The run's report as one self-contained HTML page (no file or URL outside it is needed).

    Works for finished, failed and stopped runs: sections whose files are missing say so instead.
    ``experiment_results`` (e.g. a freeze-depth sweep) adds a section with its rows as a table.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder not found: {run}")
    config = runs.read_json(run / "config.json") or {}
    status = runs.read_status(run) or {}
    dataset = runs.read_json(run / "dataset.json")
    metrics = runs.read_json(run / "metrics.json")
    events = runs.read_all_events(run)
    model_name = {"vgg16": "VGG16", "autoencoder": "autoencoder encoder"}.get(config.get("model"), "model")
    title = f"Transfer Studio report: {run.name}"
    plot = _Plotter()
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=\"note\">{_e(model_name)} with a {_e(config.get('head', '?'))} head; report written "
        f"{_e(time.strftime('%Y-%m-%d %H:%M'))}.</p>",
        _summary_section(status, metrics),
        _config_section(config, run),
        _dataset_section(dataset),
        _candidates_section(run, plot),
        _curves_section(events, plot),
        _reconstructions_section(run),
        _metrics_section(metrics),
    ]
    if (run / "model.keras").is_file() and dataset:
        body.append(_examples_sections(run))
    if experiment_results:
        body.append(_experiment_section(experiment_results, plot))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(run_dir: str | os.PathLike, experiment_results: dict | None = None) -> str:
    """Write RUN_DIR/report.html (atomically) and return its path."""
    path = Path(run_dir) / "report.html"
    runs.write_bytes_atomic(path, build_report(run_dir, experiment_results).encode("utf-8"))
    return str(path)
