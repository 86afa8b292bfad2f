"""`python -m bench --quick` runs end to end and writes readable results (no timing is asserted)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("seed_recipe", "partial_freeze", "defaults_vs_seed", "prediction", "memory", "scaling",
            "auto_vs_defaults", "auto_timing")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--weights", "none", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out


@pytest.mark.slow
def test_quick_benchmark_writes_json_with_every_section(quick_results):
    results = json.loads((quick_results / "results.json").read_text())
    assert results["seed_recipe_speedup"] > 0
    assert results["errors"] == {}
    for section in SECTIONS:
        assert results[section], f"section {section} is empty"
    assert results["seed_recipe"]["same_split"] is True
    assert {row["freeze_depth"] for row in results["partial_freeze"]["rows"]} == {3, 4}
    assert [row["freeze_depth"] for row in results["memory"]["cache_boundaries"]] == [1, 2, 3, 4, 5]
    assert results["memory"]["processes"][0]["peak_rss_mib"] > 0
    assert len(results["scaling"]["rows"]) >= 2
    for key in ("cores", "cpu_model", "ram_gib", "backend", "versions", "date"):
        assert results["machine"][key]


@pytest.mark.slow
def test_quick_benchmark_compares_recipe_auto_on_the_same_split(quick_results):
    results = json.loads((quick_results / "results.json").read_text())
    section = results["auto_vs_defaults"]
    rows = {row["key"]: row for row in section["rows"]}
    assert set(rows) == {"auto", "manual_defaults", "seed_preset"}
    assert section["same_split"] is True and section["validation_images"] == results["dataset"]["validation"]
    assert [rows[key]["recipe"] for key in ("auto", "manual_defaults", "seed_preset")] == ["auto", "manual", "manual"]
    for row in rows.values():
        # scored on the validation split it was given, auto included (it would keep none on its own here)
        assert row["evaluation"] == "validation_split"
        assert 0 <= row["val_accuracy"] <= 1
        assert 0 < row["train_seconds"] <= row["wall_seconds"]
    assert rows["auto"]["chosen"]["kind"] == "linear"  # 5 pictures a class: no fine-tune candidate
    # the manual defaults of section 3 are the manual recipe, not the new default
    defaults = results["defaults_vs_seed"]["rows"][-1]["name"]
    assert "manual defaults" in defaults and "freeze depth 4" in defaults

    timing = results["auto_timing"]
    assert timing["pictures"] == 4 * results["plan"]["timing_per_class"]
    assert timing["forward_images"] == 2 * timing["train_pictures"] + timing["validation_pictures"]
    assert timing["forward_seconds"] > 0 and timing["forward_ms_per_image"] > 0
    assert timing["final_fit_linear"] is True
    assert timing["fitting_seconds"] == pytest.approx(timing["candidates_seconds"] + timing["final_fit_seconds"],
                                                      abs=1e-3)
    assert timing["fitting_over_forward"] == pytest.approx(timing["fitting_seconds"] / timing["forward_seconds"],
                                                           abs=1e-3)
    assert len(timing["load_average_before"]) == 3


@pytest.mark.slow
def test_quick_benchmark_writes_tables_and_an_offline_chart(quick_results):
    page = (quick_results / "results.md").read_text()
    for heading in ("## Machine", "## 1. The seed recipe", "## 2. Partial freeze", "## 3. Core's manual defaults",
                    "## 4. Prediction", "## 5. Memory", "## 6. Scaling", "## 7. Recipe auto against the manual",
                    "## 8. Recipe auto: fitting against the forward pass", "## On a GPU"):
        assert heading in page
    assert "seed_recipe_speedup" in page
    assert "| plain Keras, seed recipe (images every epoch) |" in page
    assert "| k | cached s/epoch | uncached s/epoch |" in page
    assert "| recipe auto (the default) |" in page and "fitting / forward pass" in page
    assert "Recipe auto's linear fitting took" in page
    chart = (quick_results / "results_scaling.html").read_text()
    # plotly.js is inside the page (megabytes), not fetched from a CDN: it opens offline
    assert "<script src=\"http" not in chart and len(chart) > 1_000_000


def test_results_page_shows_gpu_figures_only_when_they_exist(tmp_path):
    from bench import report

    results = {"plan": {"batch_size": 32}, "quick": True, "total_seconds": 1.0, "errors": {},
               "weights": "none", "machine": {"date": "d", "cpu_model": "c", "cores": 2, "ram_gib": 1, "os": "o",
                                              "backend": "tensorflow", "device": "CPU", "versions": {"keras": "3"}}}
    assert "Not yet run on a GPU" in report.markdown(results, None)
    results["gpu"] = {"gpu_name": "NVIDIA H100", "device": "GPU: NVIDIA H100 (tensorflow)", "backend": "tensorflow",
                      "mixed_precision": True, "images": 200, "image_size": 224, "epochs": 5, "weights": "none",
                      "rows": [{"freeze_depth": 5, "cached": True, "train_seconds": 2.0, "train_images_per_second": 400.0,
                                "steady_epoch_seconds": 0.1, "epoch_images_per_second": 1600.0, "val_accuracy": 0.9}]}
    page = report.markdown(results, None)
    assert "Not yet run on a GPU" not in page
    assert "NVIDIA H100" in page and "| 5 | cached | 2.00 s | 400 |" in page


def test_the_two_check_scripts_run_on_tiny_settings(tmp_path, capsys):
    """bench.defaults_check and bench.autoencoder_check are measurements (they assert nothing); here they are
    seen to run end to end and print a row per candidate or arm, so the README's commands stay usable."""
    from bench import autoencoder_check, defaults_check

    only = next(iter(defaults_check.CANDIDATES))
    assert defaults_check.main(["--per-class", "4", "--size", "32", "--seeds", "0", "--epochs", "1",
                                "--weights", "none", "--only", only]) == 0
    printed = capsys.readouterr().out
    assert re.search(re.escape(only) + r" last epoch \d\.\d{3} \+- \d\.\d{3}", printed), printed
    assert autoencoder_check.main(["--seeds", "0", "--per-class", "4", "--size", "32", "--set", "epochs=1",
                                   "--set", "autoencoder_epochs=1", "--out", str(tmp_path / "ae")]) == 0
    printed = capsys.readouterr().out
    # a row per seed with its numbers, and the means over the seeds (not "n/a": rows were made)
    assert re.search(r"seed 0: AE loss \d+\.\d -> \d+\.\d \(ratio \d\.\d\d\); val accuracy encoder \d\.\d{3} "
                     r"vs random \d\.\d{3}", printed), printed
    assert re.search(r"val accuracy over seeds \[0\]: encoder \d\.\d{3}", printed), printed
