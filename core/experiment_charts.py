"""An experiment's results for people: the summary per point, the table and the one-sentence lesson in words,
and the charts (Plotly figures for the page and the report, one offline HTML file beside results.json)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np

from core import runs
from core.config import frozen_words
from core.experiment_plan import KIND_TITLES, PROBE

CHARTS_FILE = "charts.html"


# ---------------------------------------------------------------------- in words

def summarize(results: dict) -> list[dict]:
    """Per point (method, and per_class for data-efficiency): mean and spread of validation accuracy."""
    groups: dict[tuple, list[dict]] = {}
    for row in results.get("rows", []):
        if row.get("val_accuracy") is None:
            continue
        key = (row["method"], row.get("label"), row.get("per_class"))
        groups.setdefault(key, []).append(row)
    summary = []
    for (method, label, per_class), rows in groups.items():
        accuracies = np.array([row["val_accuracy"] for row in rows], dtype=float)
        item = {"method": method, "label": label, "mean": round(float(accuracies.mean()), 4),
                "std": round(float(accuracies.std()), 4), "n": len(rows),
                "train_seconds": round(float(np.mean([row["train_seconds"] or 0 for row in rows])), 3)}
        if per_class is not None:
            item.update(per_class=per_class, all=bool(rows[0].get("all")))
        for name in ("freeze_depth", "block"):
            if name in rows[0]:
                item[name] = rows[0][name]
        summary.append(item)
    if results.get("kind") == "data-efficiency":
        summary.sort(key=lambda item: (item["method"], item.get("per_class", 0)))
    return summary


COLUMN_WORDS = {  # a row's keys (results.json keeps them) as a table on screen or in a report says them
    "method": "method", "label": "run", "block": "block", "freeze_depth": "frozen blocks",
    "per_class": "pictures per class", "seed": "seed", "chosen": "chosen by the automatic recipe",
    "val_accuracy": "validation accuracy", "train_seconds": "seconds to train", "epochs": "epochs",
    "state": "state", "error": "error", "run": "run id", "mean": "mean validation accuracy",
    "std": "spread (standard deviation)", "n": "runs", "all": "every picture"}
# the varied settings of each kind; "chosen" is what the automatic recipe picked (empty for other rows)
SETTING_COLUMNS = {"freeze-depth": ["block", "freeze_depth"], "transfer-vs-scratch": ["freeze_depth", "chosen"],
                   "data-efficiency": ["per_class", "seed", "chosen"]}
STATE_WORDS = {"done": "finished", "failed": "failed", "stopped": "stopped", "running": "training"}
_OLDER_LABEL = re.compile(r"^k ?= ?(\d)$")  # experiments saved before labels were words: "k=5"


def column_words(column: str) -> str:
    """A results row's key as a table heading says it ("val_accuracy" -> "validation accuracy")."""
    return COLUMN_WORDS.get(column, column.replace("_", " "))


def table(results: dict, *, error_words: Callable[[str], str] = str) -> list[dict]:
    """An experiment's rows as a table says them: the varied settings, accuracy, seconds, state, with column
    names and values in words ("frozen blocks": "4 of 5 blocks frozen"), and the run folder by its name
    only. ``error_words`` rewrites an error message (the app hides workspace paths with it)."""
    columns = ["method", "label"] + SETTING_COLUMNS.get(results.get("kind"), []) + [
        "val_accuracy", "train_seconds", "epochs", "state", "error"]
    lines = []
    for row in results.get("rows") or []:
        if not isinstance(row, dict):
            continue
        line = {column: row.get(column) for column in columns}
        line["run"] = str(row.get("run_dir") or "").replace("\\", "/").rsplit("/", 1)[-1]  # a probe has none
        if line["error"]:
            line["error"] = error_words(str(line["error"]))
        if line.get("freeze_depth") is not None:
            line["freeze_depth"] = frozen_words(line["freeze_depth"])
        line["state"] = STATE_WORDS.get(line["state"], line["state"])
        older = _OLDER_LABEL.match(str(line["label"] or ""))
        if older:
            line["label"] = frozen_words(older.group(1))
        lines.append({column_words(column): value for column, value in line.items()})
    return lines


def headline(results: dict) -> str | None:
    """The experiment's lesson in one sentence, from its rows so far (None before there is one)."""
    summary = results.get("summary") or summarize(results)
    kind = results.get("kind")
    if kind == "data-efficiency":
        def mean_at_most(method, limit=10):
            points = [item for item in summary if item["method"] == method and not item.get("all")
                      and item["per_class"] <= limit]
            return np.mean([item["mean"] for item in points]) if points else None

        transfer, scratch = mean_at_most("transfer"), mean_at_most("scratch")
        if transfer is None or scratch is None:
            return None
        return (f"With 10 or fewer labeled images per class, transfer reached {transfer:.0%} validation accuracy "
                f"on average and training from scratch {scratch:.0%}.")
    rows = [row for row in results.get("rows", []) if row.get("val_accuracy") is not None]
    if kind == "freeze-depth" and rows:
        probes = [row for row in rows if row["method"] == PROBE]
        tuned = [row for row in rows if row["method"] != PROBE]
        lesson = None
        if tuned:  # ties: more frozen, the cheaper run
            best = max(tuned, key=lambda row: (row["val_accuracy"], row["freeze_depth"]))
            fastest = min(tuned, key=lambda row: row["train_seconds"] or 0)
            lesson = (f"{frozen_words(best['freeze_depth'])} at {best['val_accuracy']:.0%}; fastest: "
                      f"{frozen_words(fastest['freeze_depth'])} in {fastest['train_seconds'] or 0:.0f} s")
        if probes:  # ties: the shallower block, the cheaper probe
            best = max(probes, key=lambda row: (row["val_accuracy"], -row["block"]))
            probe = (f"a linear probe on block {best['block']} at {best['val_accuracy']:.0%} "
                     f"({best['train_seconds'] or 0:.0f} s)")
            lesson = probe + (f"; with blocks frozen and the rest trained, {lesson}" if lesson else "")
        return f"Best so far: {lesson}."
    if kind == "transfer-vs-scratch" and rows:
        by_method = {row["method"]: row for row in rows}
        if "transfer" in by_method and "scratch" in by_method:
            transfer, scratch = by_method["transfer"], by_method["scratch"]
            return (f"Transfer (the automatic recipe) reached {transfer['val_accuracy']:.0%} validation accuracy "
                    f"in {transfer['train_seconds'] or 0:.0f} s; the same network from random weights "
                    f"{scratch['val_accuracy']:.0%} in {scratch['train_seconds'] or 0:.0f} s.")
        best = max(rows, key=lambda row: row["val_accuracy"])
        return f"Best so far: {best['label']} at {best['val_accuracy']:.0%}."
    return None


# ---------------------------------------------------------------------- charts

def figures(results: dict) -> list:
    """The experiment's charts as Plotly figures (for the page, the report and charts.html)."""
    rows = [row for row in results.get("rows", []) if row.get("val_accuracy") is not None]
    if not rows:
        return []
    kind = results.get("kind")
    if kind == "freeze-depth":
        return [_freeze_depth_figure(rows)]
    if kind == "transfer-vs-scratch":
        return _transfer_vs_scratch_figures(rows)
    if kind == "data-efficiency":
        return [_data_efficiency_figure(results)]
    return []


def _freeze_depth_figure(rows):
    """Left to right, the pretrained network used more and more: a linear head on the frozen features of
    block 1, ..., block 5, then k = 5, ..., 0 frozen blocks with the rest trained."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    probes = sorted((row for row in rows if row["method"] == PROBE), key=lambda row: row["block"])
    tuned = sorted((row for row in rows if row["method"] != PROBE), key=lambda row: -row["freeze_depth"])
    probe_x = [f"block {row['block']} + linear" for row in probes]
    tuned_x = [frozen_words(row["freeze_depth"]) for row in tuned]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(go.Bar(x=probe_x + tuned_x, y=[row["train_seconds"] for row in probes + tuned],
                            name="training time (s)", marker_color="rgba(150, 150, 150, 0.45)"), secondary_y=True)
    if probes:
        figure.add_trace(go.Scatter(x=probe_x, y=[row["val_accuracy"] for row in probes],
                                    name="linear probe on a frozen block's features", mode="lines+markers",
                                    line={"width": 3, "dash": "dot"}, marker={"symbol": "diamond", "size": 10}),
                         secondary_y=False)
    if tuned:
        figure.add_trace(go.Scatter(x=tuned_x, y=[row["val_accuracy"] for row in tuned],
                                    name="some blocks frozen, the rest trained", mode="lines+markers",
                                    line={"width": 3}), secondary_y=False)
    figure.update_layout(title="Validation accuracy and training time by frozen blocks, after a linear probe on "
                               "each block", legend={"orientation": "h", "y": -0.25})
    figure.update_xaxes(title_text="left: a linear head on the frozen output of one block; right: blocks frozen, "
                                   "the rest trained (5 of 5: only the head trains; none: everything trains)",
                        categoryorder="array", categoryarray=probe_x + tuned_x)
    figure.update_yaxes(title_text="validation accuracy", range=[0, 1.05], secondary_y=False)
    figure.update_yaxes(title_text="training time (s)", secondary_y=True, showgrid=False)
    return figure


def _transfer_vs_scratch_figures(rows):
    import plotly.graph_objects as go

    longest = max(len(row["curve"]) for row in rows)
    curves = go.Figure()
    for row in rows:
        curves.add_trace(_curve_trace(row, longest))
    curves.update_layout(title="Validation accuracy per epoch, same split", xaxis_title="epoch",
                         yaxis_title="validation accuracy", yaxis_range=[0, 1.05])
    bars = go.Figure(go.Bar(x=[row["label"] for row in rows], y=[row["val_accuracy"] for row in rows],
                            text=[f"{row['val_accuracy']:.2f}" for row in rows], textposition="outside"))
    bars.update_layout(title="Final validation accuracy (best epoch)", yaxis_title="validation accuracy",
                       yaxis_range=[0, 1.1])
    return [curves, bars]


def _curve_trace(row: dict, longest: int):
    """A row's validation accuracy per epoch. A model without epochs (the automatic recipe's linear head,
    fitted in one go) is a dotted level line across the chart, so it reads as the bar the curves must reach."""
    import plotly.graph_objects as go

    curve = row.get("curve") or [row["val_accuracy"]]
    if len(curve) > 1 or longest <= 1:
        return go.Scatter(x=list(range(1, len(curve) + 1)), y=curve, mode="lines+markers", name=row["label"])
    return go.Scatter(x=[1, longest], y=[curve[-1]] * 2, mode="lines", line={"dash": "dot", "width": 3},
                      name=f"{row['label']} (no epochs: fitted in one go)",
                      hovertemplate=f"{row['label']}: %{{y:.2f}}<extra></extra>")


def _data_efficiency_figure(results):
    import plotly.graph_objects as go

    figure = go.Figure()
    for method, name in (("transfer", "transfer (pretrained VGG16, automatic recipe)"),
                         ("scratch", "scratch (same network, random weights, trained fully)")):
        points = sorted((item for item in results.get("summary") or summarize(results) if item["method"] == method),
                        key=lambda item: item["per_class"])
        if not points:
            continue
        figure.add_trace(go.Scatter(
            x=[item["per_class"] for item in points], y=[item["mean"] for item in points], name=name,
            mode="lines+markers", error_y={"type": "data", "array": [item["std"] for item in points], "visible": True},
            customdata=[[item["n"], "all" if item.get("all") else item["per_class"]] for item in points],
            hovertemplate="%{customdata[1]} per class: %{y:.2f} (mean of %{customdata[0]}, bar = std)"))
    figure.update_layout(title="Validation accuracy by labeled images per class (mean of seeds, bars = std)",
                         xaxis_title="labeled training images per class", yaxis_title="validation accuracy",
                         yaxis_range=[0, 1.05], xaxis_type="log")
    return figure


def write_charts(results: dict, path) -> Path | None:
    """All of the experiment's charts in one HTML file, Plotly's JavaScript inlined once (works offline)."""
    charts = figures(results)
    if not charts:
        return None
    parts = [chart.to_html(full_html=False, include_plotlyjs=(index == 0)) for index, chart in enumerate(charts)]
    title = KIND_TITLES.get(results.get("kind"), "Experiment")
    html = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            + "".join(parts) + "</body></html>")
    path = Path(path)
    runs.write_bytes_atomic(path, html.encode("utf-8"))
    return path
