"""Command line: python -m core {demo-data,photo-demo,train,evaluate,predict,experiment,report,export,fetch-weights}.

Bad arguments exit 2 with a one-line message; a failed run exits 1 with its plain-words error.
Progress goes to stderr, results (JSON) to stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(message)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field (--learning-rate, also --lr), values checked by the config."""
    from core.config import TrainConfig

    aliases = {"learning_rate": ["--lr"], "model": [], "preset": []}
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        names = [flag] + aliases.get(field.name, [])
        if field.type in ("bool", bool):
            parser.add_argument(*names, dest=field.name, nargs="?", const=True, type=_bool, default=None,
                                help=f"true/false (default {field.default})")
        else:
            parser.add_argument(*names, dest=field.name, default=None,
                                help=f"default {field.default}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="Transfer Studio core")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo-data", help="write the generated demo dataset (one folder per class)")
    demo.add_argument("out")
    demo.add_argument("--per-class", type=int, default=30)
    demo.add_argument("--size", type=int, default=64)
    demo.add_argument("--seed", type=int, default=0)

    photos = commands.add_parser("photo-demo", help="download the real-photo demo (TensorFlow's flower photos) into "
                                 "Keras's cache; with OUT, also write PER_CLASS photos a class there")
    photos.add_argument("out", nargs="?")
    photos.add_argument("--per-class", type=int, default=30)
    photos.add_argument("--size", type=int, default=256, help="pixels of the photos written to OUT (default 256)")

    train = commands.add_parser("train", help="train a model; writes a run directory")
    train.add_argument("data", help="a folder with one subfolder per class, or a zip of the same")
    train.add_argument("--out", required=True, help="the run directory to write")
    train.add_argument("--config", help="a JSON file of settings; options given here override it")
    _add_config_options(train)

    evaluate = commands.add_parser("evaluate", help="metrics of a run on a labeled folder or zip")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("data", nargs="?")

    predict = commands.add_parser("predict", help="predict images with a run's model (one JSON line each)")
    predict.add_argument("run_dir")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--top-k", type=int, default=3)

    experiment = commands.add_parser("experiment", help="run an experiment: freeze-depth, "
                                     "transfer-vs-scratch or data-efficiency")
    experiment.add_argument("kind")
    experiment.add_argument("data")
    experiment.add_argument("--out", required=True)
    experiment.add_argument("--weights", default=None)
    experiment.add_argument("--image-size", type=int, default=None)
    experiment.add_argument("--epochs", type=int, default=None)
    experiment.add_argument("--quick", action="store_true", help="fewer settings, for a first look")

    report = commands.add_parser("report", help="write RUN_DIR/report.html")
    report.add_argument("run_dir")

    export = commands.add_parser("export", help="export a run's model: bundle, savedmodel or tflite")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=("bundle", "savedmodel", "tflite"), default="bundle")
    export.add_argument("--out", required=True)

    job_commands = commands.add_parser(
        "jobs", help="queue, watch and stop training runs through the job manager (the app's runs folder and "
        "executor: $TRANSFER_STUDIO_HOME, $TRANSFER_STUDIO_EXECUTOR)").add_subparsers(
        dest="jobs_command", required=True, parser_class=_Parser)
    submit = job_commands.add_parser("submit", help="queue a training run; prints its run id")
    submit.add_argument("data", help="a folder with one subfolder per class, or a zip of the same")
    submit.add_argument("--owner", default="cli", help="whose run it is (default: cli)")
    submit.add_argument("--config", help="a JSON file of settings; options given here override it")
    _add_config_options(submit)
    status = job_commands.add_parser("status", help="a run's status as JSON (its state: queued, running, "
                                     "done, stopped or failed)")
    status.add_argument("run_id")
    stop = job_commands.add_parser("stop", help="stop a run between batches (or before it starts); waits until "
                                   "it has stopped and prints its status")
    stop.add_argument("run_id")
    listing = job_commands.add_parser("list", help="runs and experiments (they share the queue), newest first, "
                                      "one JSON line each with its kind")
    listing.add_argument("--owner", help="only this owner's runs")

    fetch = commands.add_parser("fetch-weights", help="put the ImageNet VGG16 (no top) weights into Keras's cache: "
                                "download them, or install a copy --from a file (for an offline server)")
    fetch.add_argument("--from", dest="source", metavar="FILE",
                       help="a VGG16 no-top weights file (.h5 or .weights.h5) to install instead of downloading")
    return parser


def terminal_safe(text) -> str:
    """Text with control characters shown as escapes: a class or file name can hold terminal escape
    sequences (colours, cursor moves, a fake prompt) that must never reach the user's terminal raw."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


def _say(message: str) -> None:
    print(terminal_safe(message), file=sys.stderr, flush=True)


def cmd_demo_data(args) -> int:
    from core import demo_data

    if args.per_class < 2 or not 16 <= args.size <= 1024:
        raise UsageError("--per-class must be at least 2 and --size from 16 to 1024")
    out = demo_data.write_demo_data(args.out, per_class=args.per_class, size=args.size, seed=args.seed)
    _say(f"wrote {args.per_class} images x {len(demo_data.CLASSES)} classes to {out}")
    print(out)
    return 0


def train_config_from_args(args):
    """The config from --config JSON plus every option given (options win)."""
    from core.config import TrainConfig, field_names

    values = {}
    if args.config:
        try:
            values = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UsageError(f"cannot read --config {args.config}: {error}")
        if not isinstance(values, dict):
            raise UsageError(f"--config {args.config} must hold a JSON object of settings "
                             f'(like {{"epochs": 5}}), not a {type(values).__name__}')
    for name in field_names():
        value = getattr(args, name, None)
        if value is not None:
            values[name] = None if value in ("", "null") and name in ("unlabeled", "preset") else value
    return TrainConfig.from_dict(values)


def check_train(args):
    """train's arguments, checked without TensorFlow (a bad one is answered at once): the TrainConfig."""
    from core.config import ConfigError

    try:
        config = train_config_from_args(args)
    except ConfigError as error:
        raise UsageError(str(error))
    if not Path(args.data).exists():
        raise UsageError(f"data not found: {args.data} (give a folder with one subfolder per class, or a zip)")
    out = Path(args.out)
    # A folder where a run already trained would mix two runs: its stop request would stop this one, its
    # events would run on into this run's curves. (The job manager's own config.json, job.json, status and
    # a stop asked for while queued are not a run yet.)
    if out.exists() and (not out.is_dir() or any((out / name).exists() for name in ("events.jsonl", "model.keras"))):
        raise UsageError(f"--out {args.out} already holds a run: give a new folder for each run")
    return config


def cmd_train(args) -> int:
    config = check_train(args)  # before TensorFlow's import: a bad argument costs no start-up
    _import_keras_quietly()
    from core import training

    out = Path(args.out)
    with _stop_on_sigterm(out):
        result = training.train(config, args.data, args.out, log=_say)
    print(json.dumps({"run_dir": result.run_dir, "state": result.state, "val_accuracy": result.val_accuracy,
                      "train_seconds": result.train_seconds, "error": result.error}))
    return 1 if result.state == "failed" else 0


@contextlib.contextmanager
def _stop_on_sigterm(out: Path):
    """SIGTERM (a job system ending the run: Ray's stop_job, a server shutting down) asks the run to stop
    between batches, as the Stop button does, so it records "stopped" and keeps its model; a SIGKILL that
    may follow ends it regardless. The previous handler comes back afterwards (a warm worker lives on)."""
    from core import runs

    def handler(signum, frame):
        runs.request_stop(out)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_evaluate(args) -> int:
    from core import evaluation

    _existing_run(args.run_dir)
    result = evaluation.evaluate(args.run_dir, args.data)
    result.pop("feature_map", None)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_predict(args) -> int:
    from core import predict

    _existing_run(args.run_dir)
    from core.images import decode_image

    # read at most one byte past the size a picture may have: a huge file is refused without filling memory
    limit = decode_image.__kwdefaults__["max_bytes"] + 1
    files = []
    for name in args.images:
        try:
            with open(name, "rb") as handle:
                files.append((name, handle.read(limit)))
        except OSError as error:
            files.append((name, None, f"cannot read file: {error.strerror}"))
    readable = [item for item in files if len(item) == 2]
    rows = {row["file"]: row for row in predict.predict_files(args.run_dir, readable, top_k=args.top_k)}
    for item in files:
        row = rows.get(item[0]) if len(item) == 2 else {"file": item[0], "error": item[2]}
        print(json.dumps(row))
    return 0


def check_experiment(args) -> None:
    """experiment's arguments, checked without TensorFlow (a bad one is answered at once)."""
    from core.experiment_plan import KINDS

    if args.kind not in KINDS:
        raise UsageError(f"unknown experiment {terminal_safe(args.kind)!r}; allowed: {', '.join(KINDS)}")
    if args.epochs is not None and not 1 <= args.epochs <= 1000:
        raise UsageError(f"--epochs must be a whole number from 1 to 1000, got {args.epochs}")
    if args.image_size is not None and not 32 <= args.image_size <= 224:
        raise UsageError(f"--image-size must be a whole number from 32 to 224, got {args.image_size}")


def cmd_experiment(args) -> int:
    check_experiment(args)  # before TensorFlow's import: a bad argument costs no start-up
    _import_keras_quietly()
    from core import experiments

    options = {key: value for key, value in (("weights", args.weights), ("image_size", args.image_size),
                                             ("epochs", args.epochs)) if value is not None}
    with _stop_on_sigterm(Path(args.out)):  # the job manager's stop after its grace period, as for train
        result = experiments.run_experiment(args.kind, args.data, args.out, quick=args.quick, log=_say, **options)
    print(json.dumps({"out": args.out, "rows": len(result["rows"])}))
    return 0


def _existing_run(run_dir: str) -> None:
    if not Path(run_dir).is_dir():
        raise UsageError(f"run folder not found: {run_dir} (give the --out folder of a training run)")


def cmd_report(args) -> int:
    from core import report

    _existing_run(args.run_dir)
    print(report.write_report(args.run_dir))
    return 0


def cmd_export(args) -> int:
    from core import export

    _existing_run(args.run_dir)
    if args.format == "bundle":
        Path(args.out).write_bytes(export.bundle_zip(args.run_dir))
    elif args.format == "savedmodel":
        export.export_savedmodel(args.run_dir, args.out)
    else:
        export.export_tflite(args.run_dir, args.out)
    print(args.out)
    return 0


def cmd_photo_demo(args) -> int:
    from core import ingest, photo_demo

    if args.per_class < 2:
        raise UsageError("--per-class must be at least 2")
    if args.out is not None and not 16 <= args.size <= 1024:
        raise UsageError("--size must be from 16 to 1024")
    with contextlib.redirect_stdout(sys.stderr):  # Keras's download bar: stdout carries the result alone
        root = photo_demo.fetch(progress=_download_progress())
    if args.out is None:
        _say("the flower photos are in Keras's cache: the Data page offers them without a download")
        print(root)
        return 0
    dataset = photo_demo.as_dataset(per_class=args.per_class, size=args.size)
    out = ingest.save_dataset(dataset, args.out, source=photo_demo.TITLE)
    _say(f"wrote {len(dataset.images)} photos in {len(dataset.classes)} classes to {out}")
    print(out)
    return 0


def cmd_fetch_weights(args) -> int:
    from core import weights

    if args.source is None:
        if weights.usable(weights.cache_path()):
            _say("the ImageNet VGG16 weights are already in Keras's cache")
        elif not weights.can_download():
            raise weights.WeightsError(
                "cannot download the ImageNet VGG16 weights: this machine cannot reach the internet. On a machine "
                "that can, run `python -m core fetch-weights` and copy the file it prints to this one; then run "
                "`python -m core fetch-weights --from FILE` here")
        else:
            weights.download(progress=_download_progress())
            _say("downloaded the ImageNet VGG16 weights into Keras's cache")
        print(weights.cache_path())
        return 0
    source = Path(args.source)
    if source.is_dir():
        raise UsageError(f"--from {args.source} is a folder: give a VGG16 no-top weights file (.h5 or .weights.h5)")
    if not source.is_file():
        raise UsageError(f"--from file not found: {args.source}")
    installed = weights.install(source)
    _say("installed: runs with weights 'imagenet' now load this file, without a download")
    print(installed)
    return 0


def _download_progress():
    """Progress of a download on stderr, a line every tenth once bytes arrive."""
    shown = {"tenth": 0}

    def report(fraction: float, message: str) -> None:
        tenth = int(fraction * 10)
        if tenth > shown["tenth"]:
            shown["tenth"] = tenth
            _say(f"{message}: {fraction:.0%}")

    return report


def cmd_jobs(args) -> int:
    from core import executors, jobs, runs
    from core.config import ConfigError

    try:
        # a manager for this command only: it starts what may start, and leaves; running jobs carry on
        manager = jobs.JobManager(start_thread=False, warm_workers=0)
    except (executors.ExecutorError, ValueError) as error:
        raise UsageError(str(error))
    try:
        if args.jobs_command == "submit":
            try:
                config = train_config_from_args(args)
            except ConfigError as error:
                raise UsageError(str(error))
            if not Path(args.data).exists():
                raise UsageError(f"data not found: {args.data} (give a folder with one subfolder per class, or a zip)")
            print(manager.submit(config, args.data, owner=args.owner))
            return 0
        if args.jobs_command == "list":
            for row in manager.runs(owner=args.owner, kind=None):  # experiments share the queue: list them too
                status = row["status"]
                print(json.dumps({"id": row["id"], "kind": row["kind"], "state": status.get("state"),
                                  "owner": row.get("owner"),
                                  "queue_position": row.get("queue_position"), "error": status.get("error")}))
            return 0
        try:
            if args.jobs_command == "stop":
                manager.stop(args.run_id)
                deadline = time.monotonic() + manager.stop_grace_seconds + 15
                while (manager.status(args.run_id).get("state") not in runs.FINISHED_STATES
                       and time.monotonic() < deadline):
                    manager.refresh()  # past the grace period, this ends the run's process
                    time.sleep(0.2)
            print(json.dumps(manager.status(args.run_id)))
        except (jobs.RunNotFound, runs.RunIdError) as error:
            raise UsageError(f"{error} in {manager.root}")
        return 0
    finally:
        manager.shutdown()


# commands that import Keras themselves, if at all: train and experiment after checking their arguments
KERAS_LATER = ("demo-data", "jobs", "train", "experiment")
COMMANDS = {"demo-data": cmd_demo_data, "jobs": cmd_jobs, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "experiment": cmd_experiment, "report": cmd_report, "export": cmd_export,
            "fetch-weights": cmd_fetch_weights, "photo-demo": cmd_photo_demo}


from core.quiet import import_keras_quietly as _import_keras_quietly  # noqa: E402 (one place, also for workers)


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = build_parser().parse_args(argv)
        if args.command not in KERAS_LATER:
            _import_keras_quietly()
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(f"error: {terminal_safe(error)}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except Exception as error:  # a failure is one plain line, never a traceback
        try:
            from core.training import plain_error

            message = plain_error(error)
            if message.startswith("training failed unexpectedly") and args and args.command != "train":
                message = message.replace("training failed unexpectedly", f"{args.command} failed unexpectedly", 1)
        except Exception:  # training itself cannot be imported: still one line
            message = f"{type(error).__name__}: {error}"
        print(f"error: {terminal_safe(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
