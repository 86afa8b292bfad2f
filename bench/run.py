"""The benchmark from start to end: machine, weights, data, the eight measurements, the report.

A measurement that fails is recorded with its reason and the others still run; the exit status
is then 1, so CI notices. Nothing here compares a timing against a threshold.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import machine, measure, report  # noqa: E402

WEIGHTS_TOOL = machine.REPO.parent / "shared" / "tools" / "pretrained_vgg16.py"
SECTIONS = ("seed_recipe", "partial_freeze", "defaults_vs_seed", "prediction", "memory", "scaling",
            "auto_vs_defaults", "auto_timing")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def resolve_weights(choice: str) -> tuple[str, str]:
    """(weights for core and the seed recipe, a sentence for the results saying what they are)."""
    if choice == "none":
        return "none", "none: random initialisation (asked for with --weights none); accuracies are not meaningful"
    if choice == "imagenet":
        return "imagenet", "imagenet: Keras's ImageNet VGG16 weights"
    if choice != "auto":
        if not Path(choice).is_file():
            raise SystemExit(f"--weights: no such file: {choice}")
        return str(Path(choice).absolute()), f"the VGG16 weights file {choice}"
    if not WEIGHTS_TOOL.is_file():
        return "none", (f"none: random initialisation, because the offline pretrained VGG16 tool was not found "
                        f"at {WEIGHTS_TOOL}; accuracies are not meaningful")
    completed = subprocess.run([sys.executable, str(WEIGHTS_TOOL)], capture_output=True, text=True, timeout=1200)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        reason = (completed.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return "none", (f"none: random initialisation, because the offline pretrained VGG16 could not be made "
                        f"({reason}); accuracies are not meaningful")
    return lines[-1], ("offline pretrained VGG16 from ../shared/tools/pretrained_vgg16.py (ImageNet VGG16 conv "
                       "weights as fine-tuned by the HED edge detector; Keras's ImageNet download is not reachable "
                       "from the benchmark machines)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (32 px, a few images, 1-2 epochs): checks the benchmark works, "
                             "the figures mean nothing")
    parser.add_argument("--out", default=str(machine.REPO / "bench"),
                        help="folder for results.md, results.json and results_scaling.html (default bench/)")
    parser.add_argument("--weights", default="auto",
                        help="auto (the offline pretrained VGG16, else none), none, imagenet, or a weights file")
    parser.add_argument("--work", help="keep datasets and run directories here (default: a temporary folder)")
    parser.add_argument("--pictures", type=int,
                        help="pictures of the main demo dataset, 4 classes (default: the plan's, 600 in the full "
                             "plan); issue 15's 10x is stated on 400")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help="measure only these sections (the others show as not measured): "
                             + ", ".join(SECTIONS) + "; defaults_vs_seed needs seed_recipe, prediction a "
                             "trained model from one of the two")
    args = parser.parse_args(argv)

    plan = measure.QUICK if args.quick else measure.FULL
    if args.pictures:
        plan = dataclasses.replace(plan, per_class=max(2, args.pictures // 4))
    _quiet_tensorflow()
    started = time.perf_counter()
    log(f"{plan.name} benchmark; results go to {args.out}")
    facts = machine.describe()
    weights, weights_note = resolve_weights(args.weights)
    log(f"weights: {weights_note}")
    results = {"seed_recipe_speedup": None, "plan": dataclasses.asdict(plan), "quick": args.quick,
               "only": args.only,
               "machine": facts, "weights": weights_note, "weights_path": weights, "errors": {}}

    scratch = None if args.work else tempfile.TemporaryDirectory(prefix="transfer-studio-bench-")
    work = Path(args.work or scratch.name).absolute()
    try:
        context = _prepare(plan, weights, work, results)
        _measure_all(context, results, args.only)
    finally:
        if scratch is not None:
            scratch.cleanup()
    results["machine"]["load_average_end"] = machine.load_average()
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["cpu_seconds"] = _cpu_seconds()
    results["gpu"] = report.read_gpu_results()
    paths = report.write(results, Path(args.out))
    log(f"done in {results['total_seconds'] / 60:.1f} min: " + ", ".join(str(path) for path in paths))
    for section, error in results["errors"].items():
        log(f"FAILED {section}: {error}")
    return 1 if results["errors"] else 0


def _cpu_seconds() -> float:
    """CPU time of this process and its children: far below cores x wall time means others shared the CPU."""
    import resource

    return round(sum(usage.ru_utime + usage.ru_stime for usage in
                     (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))), 1)


def _quiet_tensorflow() -> None:
    """Each run builds new models, so TensorFlow warns about retracing; that is expected here."""
    from core import backend

    if backend.name() == "tensorflow":
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")


def _prepare(plan, weights, work: Path, results: dict) -> measure.Context:
    """Write the main demo dataset, load it once, and fix the one split every comparison uses."""
    from core import demo_data, ingest
    from core.config import TrainConfig

    data_dir = work / "data" / "main"
    log(f"demo data: {plan.per_class} per class at {plan.image_size} px")
    demo_data.write_demo_data(str(data_dir), per_class=plan.per_class, size=plan.image_size, seed=plan.seed)
    dataset = ingest.load_labeled(str(data_dir), plan.image_size)
    train_idx, val_idx = ingest.split(dataset, TrainConfig().validation_fraction, plan.seed)
    results["dataset"] = {"source": "core.demo_data (generated)", "classes": list(dataset.classes),
                          "images": len(dataset.labels), "train": len(train_idx), "validation": len(val_idx),
                          "image_size": plan.image_size, "seed": plan.seed}
    return measure.Context(plan=plan, weights=weights, work=work, data_dir=data_dir, dataset=dataset,
                           train_idx=train_idx, val_idx=val_idx, log=log)


def _measure_all(context: measure.Context, results: dict, only: list[str] | None = None) -> None:
    def wanted(name):
        return not only or name in only

    def section(name, function, *args):
        if not wanted(name):
            return None
        log(f"section {name}")
        section_started = time.perf_counter()
        try:
            results[name] = function(context, *args)
            results[name]["section_seconds"] = round(time.perf_counter() - section_started, 1)
        except Exception as error:  # one failed measurement must not hide the others
            traceback.print_exc()
            results[name] = None
            results["errors"][name] = f"{type(error).__name__}: {error}"
        return results[name]

    seed = section("seed_recipe", measure.seed_recipe)
    if seed:
        results["seed_recipe_speedup"] = seed["speedup"]
    section("partial_freeze", measure.partial_freeze)
    defaults = section("defaults_vs_seed", measure.defaults_vs_seed, seed) if seed else None
    if defaults is None and wanted("defaults_vs_seed"):
        results["errors"].setdefault("defaults_vs_seed", "needs the seed recipe section")
    run_dir = defaults["defaults_run_dir"] if defaults else context.runs.get("seed_preset_cached", {}).get("run_dir")
    if run_dir:
        section("prediction", measure.prediction, run_dir)
    elif wanted("prediction"):
        results["errors"]["prediction"] = "no trained model to predict with"
    section("memory", measure.memory)
    section("scaling", measure.scaling)
    section("auto_vs_defaults", measure.auto_vs_defaults)
    section("auto_timing", measure.auto_timing)
