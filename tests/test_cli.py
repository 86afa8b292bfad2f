"""The README's command line, as real subprocesses: exit codes, one-line errors, stdout kept for results."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def core(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_train_help_lists_every_setting_and_the_recipe():
    result = core("train", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--recipe", "--freeze-depth", "--head", "--optimizer", "--lr", "--epochs", "--batch-size",
                   "--image-size", "--augment", "--two-phase", "--preset", "--model", "--unlabeled"):
        assert option in result.stdout, option


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    result = core("train", tmp_path / "missing", "--out", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: data not found")
    result = core("train", tmp_path, "--out", tmp_path / "run", "--recipe", "best")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "recipe" in result.stderr and "auto, manual" in result.stderr


def test_an_unknown_experiment_exits_2_with_one_line(tmp_path):
    """The real command (a subprocess: TensorFlow's native start-up chatter on fd 2 would count too)."""
    from core.experiment_plan import KINDS

    result = core("experiment", "nope", tmp_path, "--out", tmp_path / "exp")
    assert result.returncode == 2 and result.stdout == ""  # a bad argument
    assert result.stderr.strip().splitlines() == [f"error: unknown experiment 'nope'; allowed: {', '.join(KINDS)}"]


def test_a_default_run_is_auto_and_a_failed_run_exits_1_with_one_line(demo_dir, tmp_path):
    result = core("train", demo_dir, "--out", tmp_path / "run", "--weights", "none", "--image-size", "32")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout is the result alone
    assert summary["state"] == "done"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("training on CPU") or lines[0].startswith("training on GPU")
    assert any(line.startswith("chosen: features from block") for line in lines)
    assert not any("absl" in line or "cuda" in line.lower() for line in lines)  # no native start-up chatter
    assert (tmp_path / "run" / "candidates.json").exists()
    failed = core("train", demo_dir, "--out", tmp_path / "failed", "--weights", tmp_path / "nowhere.h5",
                  "--image-size", "32")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("failed: weights file not found")
    assert json.loads(failed.stdout)["state"] == "failed"


def test_a_used_run_folder_is_refused_and_a_huge_picture_is_not_read_whole(demo_dir, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    for name in ("stop.request", "events.jsonl"):  # what a stopped earlier run leaves
        (used / name).touch()
    result = core("train", demo_dir, "--out", used, "--weights", "none")
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    from core import images, training
    from core.config import TrainConfig

    run = tmp_path / "run"
    assert training.train(TrainConfig.from_dict({"weights": "none", "image_size": 32}), demo_dir, run).state == "done"
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as handle:  # sparse: 2 GB on paper, nothing on disk
        handle.truncate(images.decode_image.__kwdefaults__["max_bytes"] * 40)
    # run predict under a fresh parent, whose children's peak memory is predict's alone
    wrapper = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(done.stdout, end=''); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "core", "predict", str(run), str(huge)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    *rows, peak = result.stdout.strip().splitlines()
    assert "too large" in json.loads(rows[-1])["error"]
    peak_kib = int(peak)
    assert peak_kib < 1_800_000, f"predict used {peak_kib / 1e6:.1f} GB: it read the whole file"


def test_every_train_option_given_reaches_the_config():
    """Values other than the defaults, so an option the command ignores shows (the README's examples use some
    defaults: --freeze-depth 4 --head gap)."""
    from core.__main__ import build_parser, train_config_from_args

    args = build_parser().parse_args(["train", "d", "--out", "o", "--freeze-depth", "3", "--head", "seed",
                                      "--lr", "0.003", "--optimizer", "sgd", "--epochs", "7", "--batch-size", "16"])
    config = train_config_from_args(args)
    assert (config.recipe, config.freeze_depth, config.head, config.learning_rate, config.optimizer,
            config.epochs, config.batch_size) == ("manual", 3, "seed", 0.003, "sgd", 7, 16)


def test_a_bad_argument_is_answered_before_tensorflow_is_imported(tmp_path):
    """A mistyped path or setting gets its one line at once, not after TensorFlow's seconds of start-up."""
    probe = ("import sys; from core.__main__ import main; "
             "codes = [main(['train', sys.argv[1], '--out', sys.argv[2]]), "
             "main(['train', sys.argv[2], '--out', sys.argv[2], '--recipe', 'best']), "
             "main(['experiment', 'nope', sys.argv[2], '--out', sys.argv[2]])]; "
             "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "missing"), str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.split() == ["[2,", "2,", "2]", "False", "False"], result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 3
