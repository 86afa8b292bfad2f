"""Turn the figures into results.json (machines), results.md (people) and results_scaling.html (chart)."""
from __future__ import annotations

import json
from pathlib import Path

from bench.machine import REPO

GPU_RESULTS = REPO / "bench" / "gpu_results.json"
SEED_TARGET, FREEZE_TARGET = 8.0, 3.0  # the speedups issue 6 asks results.md to show
AUTO_FITTING_TARGET = 1.0  # issue 10: recipe auto's linear fitting at most as long as its forward pass


def read_gpu_results() -> dict | None:
    """bench/gpu_results.json as bench/gpu_check.sh wrote it, or None when it has not run on a GPU."""
    try:
        return json.loads(GPU_RESULTS.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write(results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md"]
    paths[0].write_text(json.dumps(results, indent=2, default=_plain) + "\n")
    chart = _scaling_chart(results.get("scaling"), out / "results_scaling.html")
    if chart:
        paths.append(chart)
    paths[1].write_text(markdown(results, chart.name if chart else None))
    return paths


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# ---------------------------------------------------------------------- formatting helpers

def _seconds(value) -> str:
    return "–" if value is None else f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _times(value) -> str:
    return "–" if value is None else f"{value:.1f}x"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _failed(results: dict, section: str) -> list[str]:
    return [f"**Not measured**: {results['errors'].get(section, 'skipped')}", ""]


# ---------------------------------------------------------------------- the page

def markdown(results: dict, chart_name: str | None) -> str:
    plan, facts = results["plan"], results["machine"]
    lines = ["# Transfer Studio benchmark", ""]
    if results["quick"]:
        lines += ["> **Quick run** (`python -m bench --quick`): tiny images and datasets, only to check that the "
                  "benchmark works. Its figures mean nothing; run `python -m bench` for real ones.", ""]
    only = f" --only {' '.join(results['only'])}" if results.get("only") else ""
    lines += [f"Produced by `python -m bench{' --quick' if results['quick'] else ''}{only}` in "
              f"{results['total_seconds'] / 60:.1f} minutes. Every figure comes from this one run on this one "
              "machine; `results.json` holds the same figures. Seeds are fixed (demo data, split, "
              "initialisation, shuffling), so a second run should differ by timing noise (and float round-off in multithreaded CPU kernels) only.", ""]
    lines += _summary(results)
    lines += ["## Machine", ""]
    versions = ", ".join(f"{name} {version}" for name, version in facts["versions"].items())
    lines += _table(["", ""], [
        ["date", facts["date"]],
        ["CPU", f"{facts['cpu_model']}, {facts['cores']} cores usable"],
        ["RAM", f"{facts['ram_gib']} GiB"],
        ["OS", facts["os"]],
        ["Keras backend / device", f"{facts['backend']} / {facts['device']}"],
        ["versions", versions],
        ["commit", facts.get("commit") or "–"],
        ["load average (1, 5, 15 min) at start / end",
         f"{facts.get('load_average_start')} / {facts.get('load_average_end')}"],
        ["CPU time used / wall time", f"{results.get('cpu_seconds', 0):.0f} s / {results['total_seconds']:.0f} s "
         f"(about {facts['cores']} x wall time when nothing else ran)"],
        ["weights", results["weights"]],
    ])
    dataset = results.get("dataset")
    if dataset:
        lines += [f"Data: the generated demo set ({', '.join(dataset['classes'])}), {dataset['images']} images "
                  f"at {dataset['image_size']} px, split {dataset['train']} train / {dataset['validation']} "
                  f"validation (stratified, seed {dataset['seed']}); sections 1-5 and 7 all use this one split. "
                  f"Batch size {plan['batch_size']}.", ""]
    lines += _seed_section(results)
    lines += _freeze_section(results)
    lines += _defaults_section(results)
    lines += _prediction_section(results)
    lines += _memory_section(results)
    lines += _scaling_section(results, chart_name)
    lines += _auto_section(results)
    lines += _auto_timing_section(results)
    lines += _gpu_section(results.get("gpu"))
    lines += ["## How the figures are taken", "",
              "- *Training seconds* of a core run are its `train_seconds` (status.json): from the first feature "
              "computation to the end of the last epoch, so the one-off cache is included. For the plain seed "
              "recipe they are the seconds of its `model.fit` call (validation included, as in core). Model "
              "building and data loading are left out of both.",
              "- *Seconds per epoch* are the median of the epoch events' `seconds`, leaving out the first epoch "
              "(it also traces the graph).",
              "- *Validation accuracy*: *final* is after the last epoch; *best* is the best epoch, which core "
              "keeps as the run's model (the plain recipe keeps its last).",
              "- Timings on a shared machine are noisy; compare figures from the same run.", ""]
    return "\n".join(lines)


def _summary(results: dict) -> list[str]:
    lines = ["## Summary", ""]
    seed = results.get("seed_recipe")
    if seed:
        pairs = seed["pairs"]
        lines.append(f"- **Seed recipe: {_times(seed['speedup'])} faster with the feature cache** "
                     f"({_seconds(sum(p['plain_seconds'] for p in pairs))} plain Keras against "
                     f"{_seconds(sum(p['cached_seconds'] for p in pairs))} cached, {len(pairs)} paired seed(s); target "
                     f"at least {SEED_TARGET:g}x: {'met' if (seed['speedup'] or 0) >= SEED_TARGET else 'not met'}). "
                     f"Mean final validation accuracy {_percent(seed['plain_mean_final_val_accuracy'])} plain, "
                     f"{_percent(seed['cached_mean_final_val_accuracy'])} cached: "
                     f"{'agrees' if seed['accuracy_agrees'] else 'does NOT agree'} within 2 points.")
    freeze = results.get("partial_freeze")
    if freeze:
        for row in freeze["rows"]:
            target = (f"; target at least {FREEZE_TARGET:g}x: "
                      f"{'met' if (row['per_epoch_speedup'] or 0) >= FREEZE_TARGET else 'not met'}"
                      if row["freeze_depth"] == 4 else "")
            lines.append(f"- Freeze depth {row['freeze_depth']}: per-epoch speedup from the cache "
                         f"{_times(row['per_epoch_speedup'])} ({_seconds(row['cached_epoch_seconds'])} cached against "
                         f"{_seconds(row['uncached_epoch_seconds'])} uncached){target}.")
    auto = results.get("auto_vs_defaults")
    if auto:
        rows = {row["key"]: row for row in auto["rows"]}
        lines.append("- Recipe auto (the default): " + ", against ".join(
            f"{label} {_percent(rows[key]['val_accuracy'])} in {_seconds(rows[key]['train_seconds'])}"
            for key, label in (("auto", "validation accuracy"), ("manual_defaults", "the manual defaults"),
                               ("seed_preset", "the seed preset"))) + " (same split, training seconds).")
    timing = results.get("auto_timing")
    if timing:
        lines.append(f"- Recipe auto's linear fitting took {_times(timing['fitting_over_forward'])} the time of its "
                     f"forward pass on {timing['pictures']} pictures at {timing['image_size']} px "
                     f"({_seconds(timing['fitting_seconds'])} against {_seconds(timing['forward_seconds'])}; "
                     f"target at most {AUTO_FITTING_TARGET:g}x: "
                     f"{'met' if timing['within_forward_pass'] else 'not met'}).")
    for section, error in results["errors"].items():
        lines.append(f"- Section {section} failed: {error}")
    return lines + [""]


def _seed_section(results: dict) -> list[str]:
    lines = ["## 1. The seed recipe: plain Keras against core's preset seed with the cache", "",
             "Both train VGG16 (all conv blocks frozen) with Flatten → Dense(1024, relu) → softmax, SGD "
             "(learning rate 1e-4, momentum 0.9), categorical cross-entropy, 10 epochs, on the same split. "
             "*Plain* is the seed's code in plain Keras (`bench/seed_recipe.py`): `model.fit` runs the frozen "
             "convolutions on every image in every epoch. *Cached* is `core.training.train` with "
             "`preset=\"seed\"`: the frozen part runs once per image (stored as float16), then ten epochs train "
             "the head on those features.", ""]
    seed = results.get("seed_recipe")
    if not seed:
        return lines + _failed(results, "seed_recipe")
    plain, uncached, cached = seed["plain"], seed["core_uncached"], seed["cached"]
    rows = []
    for name, run in (("plain Keras, seed recipe (images every epoch)", plain),
                      ("core, preset seed, uncached (images every epoch)", uncached),
                      ("core, preset seed, cached", cached)):
        rows.append([name, _seconds(run["seconds"]), _seconds(run["cache_seconds"]),
                     _seconds(run["steady_epoch_seconds"]), _percent(run["final_val_accuracy"]),
                     _percent(run["best_val_accuracy"])])
    lines += _table(["", "training seconds", "of which one-off cache", "seconds per epoch",
                     "val. accuracy (final)", "val. accuracy (best epoch)"], rows)
    spread = seed["seed_spread"]
    pairs = seed["pairs"]
    lines += ["The table is seed 0. The same comparison at each paired seed (each seed draws its own split and "
              "start; plain and cached share both):", ""]
    lines += _table(["seed", "plain seconds", "cached seconds", "speedup", "plain val. accuracy (final)",
                     "cached val. accuracy (final)"],
                    [[str(p["seed"]), _seconds(p["plain_seconds"]), _seconds(p["cached_seconds"]),
                      _times(_ratio_of(p["plain_seconds"], p["cached_seconds"])),
                      _percent(p["plain_final_val_accuracy"]), _percent(p["cached_final_val_accuracy"])] for p in pairs]
                    + [["mean", _seconds(sum(p["plain_seconds"] for p in pairs) / len(pairs)),
                        _seconds(sum(p["cached_seconds"] for p in pairs) / len(pairs)), _times(seed["speedup"]),
                        _percent(seed["plain_mean_final_val_accuracy"]),
                        _percent(seed["cached_mean_final_val_accuracy"])]])
    lines += [f"**seed_recipe_speedup = {_times(seed['speedup'])}** (summed plain seconds / summed cached seconds over "
              f"the {len(pairs)} pairs; seed 0 alone {_times(seed['speedup_seed0'])}; core's own uncached path "
              f"against cached at seed 0: {_times(seed['core_uncached_speedup'])}). "
              f"{seed['train_images']} training and {seed['validation_images']} validation images; every pair "
              f"trained on the split core recorded in its dataset.json; one validation image is "
              f"{seed['one_validation_image_points']:.1f} points.", "",
              f"- Plain against cached, mean final validation accuracy over the pairs: "
              f"{seed['accuracy_difference_points']:.1f} points apart, "
              f"{'within' if seed['accuracy_agrees'] else '**not** within'} 2 points.",
              f"- The cache alone (core cached against core uncached, from the same random start): "
              f"{seed['cache_effect_points']:.1f} points apart.",
              f"- The random start alone (core cached at seeds {', '.join(map(str, spread['seeds']))}, each also "
              f"drawing its own split): final accuracy from {_percent(min(spread['final_val_accuracies']))} to "
              f"{_percent(max(spread['final_val_accuracies']))}, a range of {spread['range_points']:.1f} points.", ""]
    epochs = cached["epoch_seconds"]
    if epochs and cached["cache_seconds"] is not None:
        other = cached["seconds"] - cached["cache_seconds"] - sum(epochs)
        lines += [f"Where the cached {_seconds(cached['seconds'])} go: the one-off cache "
                  f"{_seconds(cached['cache_seconds'])}, the first epoch {_seconds(epochs[0])} (it also builds the "
                  f"training graph), the other {len(epochs) - 1} epochs {_seconds(sum(epochs[1:]))} together, "
                  f"the rest (compiling, keeping the best epoch, the final validation pass) {_seconds(max(0.0, other))}.",
                  ""]
    lines += ["Plain and core uncached start from the same weights and see the batches in the same order, so "
              "their per-epoch curves below coincide; the cached run departs from them only by the float16 "
              "rounding of the cached features, which moves single runs of this barely-trained head (SGD at "
              "1e-4 on unscaled VGG16 features) by a few points either way: hence the mean over pairs.", ""]
    lines += _table(["validation accuracy per epoch", *[str(i) for i in range(1, len(plain["val_accuracy_per_epoch"]) + 1)]],
                    [[name, *[f"{100 * value:.0f}" for value in run["val_accuracy_per_epoch"]]]
                     for name, run in (("plain", plain), ("core uncached", uncached), ("core cached", cached))])
    return lines


def _freeze_section(results: dict) -> list[str]:
    lines = ["## 2. Partial freeze: seconds per epoch, cached against uncached", "",
             "Core's defaults otherwise (GAP head, Adam at 1e-4). With freeze depth k, blocks 1..k are frozen: *cached* "
             "computes their output once and trains blocks k+1..5 and the head on it; *uncached* "
             "(`cache_features=False`) runs every image through all of VGG16 in every epoch. The one-off cache "
             "cost is shown apart; *break-even* is after how many epochs it has paid for itself.", ""]
    freeze = results.get("partial_freeze")
    if not freeze:
        return lines + _failed(results, "partial_freeze")
    rows = [[row["freeze_depth"], _seconds(row["cached_epoch_seconds"]), _seconds(row["uncached_epoch_seconds"]),
             _times(row["per_epoch_speedup"]), _seconds(row["cache_seconds"]),
             f"{_seconds(row['cached_train_seconds'])} / {_seconds(row['uncached_train_seconds'])}",
             _times(row["total_speedup"]), "–" if row["break_even_epochs"] is None else f"{row['break_even_epochs']:.1f}",
             f"{_percent(row['cached_val_accuracy'])} / {_percent(row['uncached_val_accuracy'])}"]
            for row in freeze["rows"]]
    epochs = freeze["rows"][0]["epochs"] if freeze["rows"] else "?"
    lines += _table(["k", "cached s/epoch", "uncached s/epoch", "per-epoch speedup", "one-off cache",
                     f"training seconds cached / uncached ({epochs} epochs)", "total speedup",
                     "break-even (epochs)", "val. accuracy cached / uncached"], rows)
    return lines


def _defaults_section(results: dict) -> list[str]:
    lines = ["## 3. Core's manual defaults against the seed recipe", "",
             "Same data and split. The manual defaults are what a run gets with recipe manual (or any manual "
             "setting given); the default recipe, auto, is compared in section 7.", ""]
    section = results.get("defaults_vs_seed")
    if not section:
        return lines + _failed(results, "defaults_vs_seed")
    lines += _table(["", "training seconds", "val. accuracy (final)", "val. accuracy (best epoch)"],
                    [[row["name"], _seconds(row["seconds"]), _percent(row["final_val_accuracy"]),
                      _percent(row["best_val_accuracy"])] for row in section["rows"]])
    return lines


def _prediction_section(results: dict) -> list[str]:
    lines = ["## 4. Prediction", ""]
    section = results.get("prediction")
    if not section:
        return lines + _failed(results, "prediction")
    lines += [f"The defaults run's saved model, loaded once, through `{section['path']}`; raw "
              f"{section['image_size']} px images.", ""]
    lines += _table(["single image p50", "single image p95", f"batch of {section['batch_size']}",
                     "batch throughput"],
                    [[f"{section['single_image_ms_p50']:.1f} ms", f"{section['single_image_ms_p95']:.1f} ms",
                      _seconds(section["batch_seconds"]), f"{section['batch_images_per_second']:.0f} images/s"]])
    lines += [f"Latency over {section['single_image_repeats']} single-image calls after a warm-up; throughput "
              "is the best of 3 batches.", ""]
    return lines


def _memory_section(results: dict) -> list[str]:
    lines = ["## 5. Memory", ""]
    section = results.get("memory")
    if not section:
        return lines + _failed(results, "memory")
    lines += ["Peak resident memory (RSS) of each process, from `getrusage(RUSAGE_CHILDREN)` in a wrapper whose "
              f"only child it is (`bench/peak_rss.py`); {section['dataset_images']} images at "
              f"{section['image_size']} px.", ""]
    lines += _table(["process", "peak RSS", "wall time"],
                    [[row["name"], f"{row['peak_rss_mib']:.0f} MiB", _seconds(row["wall_seconds"])]
                     for row in section["processes"]])
    lines += ["Feature-cache size per image at each freeze boundary (float16), from "
              "`core.models.freeze_summary`:", ""]
    lines += _table(["k", "cut", f"shape at {section['image_size']} px", "bytes per image",
                     f"this dataset ({section['dataset_images']} images)", "shape at 224 px", "bytes per image at 224 px"],
                    [[row["freeze_depth"], row["cut"], "×".join(map(str, row["shape"])), f"{row['bytes_per_image']:,}",
                      f"{row['dataset_mib']:.1f} MiB", "×".join(map(str, row["shape_224"])),
                      f"{row['bytes_per_image_224']:,}"] for row in section["cache_boundaries"]])
    return lines


def _scaling_section(results: dict, chart_name: str | None) -> list[str]:
    lines = ["## 6. Scaling: training seconds against number of images", ""]
    section = results.get("scaling")
    if not section:
        return lines + _failed(results, "scaling")
    epochs = section["rows"][0]["epochs"] if section["rows"] else "?"
    lines += [f"VGG16 frozen (freeze depth 5), GAP head, Adam 1e-3, {epochs} epoch(s), {section['image_size']} px, demo "
              "data of each size (all images, 80/20 split)."
              + (f" Chart: [{chart_name}]({chart_name}) (opens offline)." if chart_name else ""), ""]
    lines += _table(["images", "cached", "uncached", "speedup", "val. accuracy cached / uncached"],
                    [[row["images"], _seconds(row["cached_seconds"]), _seconds(row["uncached_seconds"]),
                      _times(row["speedup"]),
                      f"{_percent(row['cached_val_accuracy'])} / {_percent(row['uncached_val_accuracy'])}"]
                     for row in section["rows"]])
    for label, fit in section.get("growth", {}).items():
        lines.append(f"- {label}: about {1000 * fit['seconds_per_image']:.1f} ms more per extra image "
                     f"(least-squares line; {fit['fixed_seconds']:.1f} s fixed).")
    return lines + [""]


def _auto_section(results: dict) -> list[str]:
    lines = ["## 7. Recipe auto against the manual defaults and the seed recipe", "",
             "Recipe auto (the default) chooses by cross-validation on the training pictures among linear heads on "
             "VGG16 blocks 3-5 and, from 20 pictures a class, fine-tuning block 5 (`core/auto.py`); the manual "
             "defaults and the seed preset train as in sections 1 and 3. All three are given the split of sections "
             "1-5 by hand (`training.train(..., split=...)`), so auto keeps the validation split it would drop "
             "below 50 pictures a class, and all three are scored on the same held-out pictures. "
             "*Training seconds* are `train_seconds` (from the forward pass or feature cache to the end of "
             "fitting); *wall seconds* the whole `training.train` call (building, saving).", ""]
    section = results.get("auto_vs_defaults")
    if not section:
        return lines + _failed(results, "auto_vs_defaults")
    lines += _table(["", "training seconds", "wall seconds", "val. accuracy (the kept model)",
                     "val. accuracy (final)"],
                    [[row["name"], _seconds(row["train_seconds"]), _seconds(row["wall_seconds"]),
                      _percent(row["val_accuracy"]), _percent(row["final_val_accuracy"])] for row in section["rows"]])
    auto = next(row for row in section["rows"] if row["key"] == "auto")
    chosen = auto.get("chosen") or {}
    phases = ", ".join(f"{name} {_seconds(seconds)}" for name, seconds in auto["phase_seconds"].items())
    lines += [f"{section['train_images']} training and {section['validation_images']} validation pictures; one "
              f"validation picture is {section['one_validation_image_points']:.1f} points. Auto minus manual "
              f"defaults: {_signed(section['auto_minus_manual_points'])} points; auto minus the seed preset: "
              f"{_signed(section['auto_minus_seed_points'])} points; the manual defaults took "
              f"{_times(section['manual_over_auto_seconds'])} auto's training seconds. The manual runs keep their "
              "best epoch on these same validation pictures, which flatters them a little; auto chose without "
              "looking at them.", "",
              f"- Auto chose: {chosen.get('name', '–')} ({chosen.get('reason', '–')}; {chosen.get('scoring', '–')}).",
              f"- Auto's phases: {phases}.", ""]
    return lines


def _auto_timing_section(results: dict) -> list[str]:
    lines = ["## 8. Recipe auto: fitting against the forward pass", "",
             "Issue 10 asks that the linear candidates' cross-validation and the final linear fit together take at "
             "most as long as the forward pass itself. One auto run (its own split, as a user's run) on demo data, "
             "read from its phase events: *forward pass* is `feature_cache`, one pass over the training pictures, "
             "the validation pictures and both's mirror images (its first batch also builds the graph); *fitting* "
             "is `candidates` + `final_fit`. The fine-tune candidate, when tried, is a phase of its own and not "
             "counted.", ""]
    timing = results.get("auto_timing")
    if not timing:
        return lines + _failed(results, "auto_timing")
    final = (_seconds(timing["final_fit_seconds"]) if timing["final_fit_linear"]
             else f"not linear: fine-tuning won ({_seconds(timing['final_fit_seconds'])}, not counted)")
    lines += _table(["pictures", "forward pass (pictures)", "forward pass", "per picture",
                     "cross-validation (`candidates`)", "final fit", "fitting / forward pass"],
                    [[f"{timing['pictures']} at {timing['image_size']} px ({timing['train_pictures']} train / "
                      f"{timing['validation_pictures']} validation)", timing["forward_images"],
                      _seconds(timing["forward_seconds"]), f"{timing['forward_ms_per_image']:.1f} ms",
                      _seconds(timing["candidates_seconds"]), final,
                      f"**{timing['fitting_over_forward']:.2f}** (at most {AUTO_FITTING_TARGET:g}: "
                      f"{'met' if timing['within_forward_pass'] else 'not met'})"]])
    chosen = timing.get("chosen") or {}
    fine_tune = timing.get("fine_tune_candidate_seconds")
    lines += [f"Load average (1, 5, 15 min) before / after this run: {timing['load_average_before']} / "
              f"{timing['load_average_after']}. The run took {_seconds(timing['train_seconds'])} of training "
              f"({_seconds(timing['wall_seconds'])} wall)"
              + (f", of which the fine-tune candidate {_seconds(fine_tune)}" if fine_tune is not None else "")
              + f"; it chose {chosen.get('name', '–')} ({_percent(timing['val_accuracy'])} by "
              f"{str(timing['evaluation']).replace('_', ' ')}).", ""]
    return lines


def _signed(value) -> str:
    return "–" if value is None else f"{value:+.1f}"


def _gpu_section(gpu: dict | None) -> list[str]:
    lines = ["## On a GPU", ""]
    if not gpu:
        return lines + ["Not yet run on a GPU. On a machine with an NVIDIA GPU, run `bash bench/gpu_check.sh`: it "
                        "writes `bench/gpu_results.json`, and the next `python -m bench` puts its figures here.", ""]
    lines += [f"From `bench/gpu_results.json` ({gpu.get('date', 'undated')}): {gpu.get('gpu_name', '?')}; core's "
              f"device: {gpu.get('device', '?')}; backend {gpu.get('backend', '?')}, mixed precision "
              f"{'on' if gpu.get('mixed_precision') else 'off'}; {gpu.get('images', '?')} images at "
              f"{gpu.get('image_size', '?')} px, {gpu.get('epochs', '?')} epochs; weights: {gpu.get('weights', '?')}.", ""]
    lines += _table(["freeze depth", "cache", "training seconds", "training images/s (cache included)",
                     "seconds per epoch", "images/s per epoch", "val. accuracy"],
                    [[row["freeze_depth"], "cached" if row["cached"] else "uncached", _seconds(row["train_seconds"]),
                      f"{row['train_images_per_second']:.0f}", _seconds(row["steady_epoch_seconds"]),
                      "–" if not row.get("epoch_images_per_second") else f"{row['epoch_images_per_second']:.0f}",
                      _percent(row["val_accuracy"])] for row in gpu.get("rows", [])])
    return lines


# ---------------------------------------------------------------------- chart

def _scaling_chart(section: dict | None, path: Path) -> Path | None:
    """Training seconds against images, cached and uncached, as a self-contained Plotly page."""
    if not section or not section.get("rows"):
        return None
    import plotly.graph_objects as go

    rows = section["rows"]
    images = [row["images"] for row in rows]
    figure = go.Figure()
    for label, colour in (("uncached", "#d62728"), ("cached", "#1f77b4")):
        figure.add_trace(go.Scatter(x=images, y=[row[f"{label}_seconds"] for row in rows], mode="lines+markers",
                                    name=f"{label} (feature cache {'off' if label == 'uncached' else 'on'})",
                                    line={"color": colour}))
    figure.update_layout(
        title=f"Training seconds against number of images ({rows[0]['epochs']} epochs, "
              f"{section['image_size']} px, frozen VGG16 + GAP head)",
        xaxis_title="images (train + validation)", yaxis_title="training seconds (train_seconds)",
        template="plotly_white", legend={"x": 0.02, "y": 0.98})
    figure.write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


def _ratio_of(numerator, denominator):
    return round(numerator / denominator, 2) if numerator and denominator else None
