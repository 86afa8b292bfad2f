"""The README's "Command line" block, command by command, on tiny sizes: each exits 0, prints what the README
says, and writes what the next one reads. Run through ``core.__main__.main`` in this process (Keras loads
once); tests/test_cli.py runs the same entry point as real subprocesses for exit codes and one-line errors.
The README's train line is run with the options it lists, so each option is seen to reach the run."""
import json
import re
import zipfile
from pathlib import Path

import pytest

from core import runs
from core.__main__ import main

README = Path(__file__).resolve().parents[1] / "README.md"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_readme_lists_the_commands_tested_here():
    block = README.read_text().split("## Command line", 1)[1].split("```", 2)[1]
    commands = {line.split()[3] for line in block.splitlines() if line.startswith("python -m core ")}
    assert commands == {"demo-data", "photo-demo", "train", "evaluate", "predict", "report", "export",
                        "experiment", "jobs"}  # photo-demo: tests/test_photo_demo.py; jobs: tests/test_reliability.py
    # (test_the_jobs_command_line_queues_lists_stops_and_runs, on both executors); the rest below


def test_the_command_block_end_to_end(tmp_path, capsys):
    data, run_dir = tmp_path / "shapes", tmp_path / "runs" / "first"
    code, out, _ = run(capsys, "demo-data", data, "--per-class", 6, "--size", 32)
    assert code == 0 and out.strip() == str(data)
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["circle", "square", "star", "triangle"]

    # train, with the options the README names (a manual run: an explicit freeze depth, head, optimizer, rate)
    code, out, err = run(capsys, "train", data, "--out", run_dir, "--weights", "none", "--epochs", 2,
                         "--image-size", 32, "--batch-size", 8, "--freeze-depth", 4, "--head", "gap",
                         "--optimizer", "sgd", "--lr", "0.01", "--two-phase", "true", "--head-epochs", 1)
    summary = json.loads(out)
    assert code == 0 and summary["state"] == "done", err
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["recipe"], config["freeze_depth"], config["head"], config["optimizer"]) == ("manual", 4, "gap", "sgd")
    assert (config["learning_rate"], config["epochs"], config["batch_size"], config["two_phase"]) == (0.01, 2, 8, True)
    epochs = [e for e in runs.read_all_events(run_dir) if e["type"] == "epoch"]
    assert [e["phase"] for e in epochs] == ["head", "fine_tune", "fine_tune"]
    assert err.splitlines()[0].startswith(("training on CPU", "training on GPU"))  # the device line

    # evaluate: JSON with accuracy, per-class metrics and the confusion matrix
    code, out, _ = run(capsys, "evaluate", run_dir, data)
    result = json.loads(out)
    assert code == 0 and result["n"] == 24 and set(result["per_class"]) == {"circle", "square", "star", "triangle"}
    matrix = result["confusion_matrix"]
    assert sum(map(sum, matrix)) == 24
    assert result["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(4)) / 24)

    # predict: one JSON line per image, a broken file answered by name
    pictures = sorted(data.glob("circle/*"))[:2]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    code, out, _ = run(capsys, "predict", run_dir, *pictures, broken)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [row["file"] for row in lines] == [str(p) for p in [*pictures, broken]]
    assert all(sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) for row in lines[:2])
    assert "error" in lines[2]

    # report: a self-contained report.html
    code, out, _ = run(capsys, "report", run_dir)
    report = Path(out.strip())
    assert code == 0 and report == run_dir / "report.html"
    html = report.read_text()
    assert "<html" in html.lower() and f"{result['accuracy']:.1%}"[:-2] in html
    assert not re.search(r"<(script|img|link)[^>]+(src|href)=[\"']https?:", html)  # nothing fetched from outside

    # export --format bundle: a zip that reloads
    bundle = tmp_path / "model.zip"
    code, out, _ = run(capsys, "export", run_dir, "--format", "bundle", "--out", bundle)
    assert code == 0
    with zipfile.ZipFile(bundle) as archive:
        assert {"model.keras", "labels.json", "config.json", "README.txt"} <= set(archive.namelist())


def test_an_experiment_from_the_command_line(tmp_path, capsys):
    data = tmp_path / "shapes"
    assert main(["demo-data", str(data), "--per-class", "6", "--size", "32"]) == 0
    capsys.readouterr()
    out_dir = tmp_path / "fd"
    code, out, err = run(capsys, "experiment", "freeze-depth", data, "--out", out_dir, "--weights", "none",
                         "--image-size", 32, "--epochs", 1, "--quick")
    assert code == 0, err
    summary = json.loads(out)
    results = json.loads((out_dir / "results.json").read_text())
    assert results["state"] == "done" and summary["rows"] == len(results["rows"]) > 0
    assert all(row["state"] == "done" for row in results["rows"])


def test_the_other_train_options_through_the_command_line(tmp_path, capsys, monkeypatch):
    """--preset seed, --model autoencoder with --unlabeled, and a zip as the data, as the README lists them;
    and the default workspace, ./workspace, when TRANSFER_STUDIO_HOME is not set."""
    data = tmp_path / "shapes"
    assert main(["demo-data", str(data), "--per-class", "6", "--size", "32"]) == 0
    archive = tmp_path / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for picture in sorted(data.rglob("*.png")):
            bundle.write(picture, picture.relative_to(data).as_posix())
    unlabeled = tmp_path / "unlabeled"
    unlabeled.mkdir()
    for index, picture in enumerate(sorted(data.rglob("*.png"))[:8]):
        (unlabeled / f"{index}.png").write_bytes(picture.read_bytes())
    capsys.readouterr()

    code, out, err = run(capsys, "train", archive, "--out", tmp_path / "seed", "--preset", "seed", "--weights", "none",
                         "--epochs", 1, "--image-size", 32)
    assert code == 0 and json.loads(out)["state"] == "done", err
    config = json.loads((tmp_path / "seed" / "config.json").read_text())
    assert (config["head"], config["optimizer"], config["freeze_depth"], config["preset"]) == ("seed", "sgd", 5, "seed")
    assert json.loads((tmp_path / "seed" / "dataset.json").read_text())["counts"] == {
        "circle": 6, "square": 6, "star": 6, "triangle": 6}  # read from the zip

    code, out, err = run(capsys, "train", data, "--out", tmp_path / "ae", "--model", "autoencoder", "--unlabeled",
                         unlabeled, "--epochs", 1, "--autoencoder-epochs", 1, "--image-size", 32)
    assert code == 0 and json.loads(out)["state"] == "done", err
    phases = {e["phase"] for e in runs.read_all_events(tmp_path / "ae") if e["type"] == "epoch"}
    assert "autoencoder" in phases and (tmp_path / "ae" / "reconstructions.png").exists()
    assert json.loads((tmp_path / "ae" / "config.json").read_text())["unlabeled"] == str(unlabeled)

    monkeypatch.delenv("TRANSFER_STUDIO_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runs.workspace() == tmp_path / "workspace"
