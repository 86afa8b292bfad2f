"""Does a second benchmark run reproduce the first? Key figures of two results.json side by side.

``python -m bench.compare FIRST/results.json SECOND/results.json [--append RESULTS_MD]``

Prints a Markdown table (figure, first run, second run, difference) of the figures the issue's
targets rest on: the seed-recipe speedup and mean accuracies, the per-epoch speedups at k = 3 and 4,
the defaults' accuracy, prediction latency and the scaling speedups. ``--append`` adds it to a
results.md as a "A second run" section. Accuracies are expected to match (fixed seeds; float
round-off in multithreaded CPU kernels aside); seconds and ratios move with timing noise.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def figures(results: dict) -> dict[str, tuple[float | None, str]]:
    """{name: (value, unit)} of the figures a second run should reproduce."""
    seed = results.get("seed_recipe") or {}
    out: dict[str, tuple[float | None, str]] = {
        "seed_recipe_speedup": (results.get("seed_recipe_speedup"), "x"),
        "seed recipe, plain, mean final val. accuracy": (_percent(seed.get("plain_mean_final_val_accuracy")), "%"),
        "seed recipe, cached, mean final val. accuracy": (_percent(seed.get("cached_mean_final_val_accuracy")), "%"),
    }
    for row in (results.get("partial_freeze") or {}).get("rows", []):
        out[f"k={row['freeze_depth']} per-epoch speedup"] = (row["per_epoch_speedup"], "x")
    for row in (results.get("defaults_vs_seed") or {}).get("rows", []):
        if "defaults" in str(row.get("name", "")) and row.get("final_val_accuracy") is not None:
            out["defaults, final val. accuracy"] = (_percent(row["final_val_accuracy"]), "%")
    prediction = results.get("prediction") or {}
    out["single-image prediction p50"] = (prediction.get("single_image_ms_p50"), "ms")
    for row in (results.get("scaling") or {}).get("rows", []):
        out[f"scaling speedup at {row['images']} images"] = (row["speedup"], "x")
    return out


def _percent(value):
    return None if value is None else round(100 * value, 1)


def table(first: dict, second: dict) -> str:
    a, b = figures(first), figures(second)
    lines = ["| figure | first run | second run | difference |", "|---|---|---|---|"]
    for name, (value, unit) in a.items():
        other = b.get(name, (None, unit))[0]
        difference = "–" if value is None or other is None else f"{other - value:+.1f}"
        show = lambda v: "–" if v is None else f"{v:.1f} {unit}".replace(" x", "x")  # noqa: E731
        lines.append(f"| {name} | {show(value)} | {show(other)} | {difference} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--append", help="a results.md to add the comparison to")
    args = parser.parse_args(argv)
    first, second = (json.loads(Path(path).read_text()) for path in (args.first, args.second))
    text = table(first, second)
    print(text)
    if args.append:
        when = [r.get("machine", {}).get("date", "?") for r in (first, second)]
        section = (f"\n## A second run\n\nThe same command again on the same machine ({when[0]} and {when[1]}), "
                   f"compared with `python -m bench.compare` (the second run is the one this file reports):\n\n{text}\n")
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
