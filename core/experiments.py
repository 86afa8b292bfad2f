"""Experiments: sets of ordinary training runs whose results, side by side, show why transfer learning works.

The one name pages, the report, the command line and tests import; the work is in three modules:
core.experiment_plan (the kinds, the runs each trains, the time estimate), core.experiment_runner (training
a plan into an experiment folder: results.json row by row, status.json, the runs under runs/) and
core.experiment_charts (the summary, table and lesson in words, the charts). The job manager (core.jobs,
``JobManager.submit_experiment``) queues, starts, stops and watches an experiment as a job of its own kind.
"""
from core.experiment_charts import (CHARTS_FILE, COLUMN_WORDS, SETTING_COLUMNS, STATE_WORDS, column_words, figures,
                                    headline, summarize, table, write_charts)
from core.experiment_plan import (CPU_MACS_PER_SECOND, DEFAULT_EPOCHS, FINE_TUNE_LEARNING_RATE, FREEZE_DEPTHS,
                                  HEAD_LEARNING_RATE, KIND_TITLES, KINDS, PER_CLASS_SIZES, PROBE, PROBE_BLOCKS,
                                  QUICK_EPOCHS, QUICK_FREEZE_DEPTHS, QUICK_PER_CLASS_SIZES, QUICK_SEEDS,
                                  SCRATCH_LEARNING_RATE, SEEDS, SPLIT_SEED, VALIDATION_FRACTION, PlannedRun,
                                  check_kind, equal_step_epochs, estimate_seconds, plan_runs, plan_summary)
from core.experiment_runner import (LOG_FILE, RESULTS_FILE, TrainingWorker, charts_path, linear_probe,
                                    read_results, run_experiment, stop_experiment)

__all__ = [
    "CHARTS_FILE", "COLUMN_WORDS", "SETTING_COLUMNS", "STATE_WORDS", "column_words", "figures", "headline",
    "summarize", "table", "write_charts",
    "CPU_MACS_PER_SECOND", "DEFAULT_EPOCHS", "FINE_TUNE_LEARNING_RATE", "FREEZE_DEPTHS", "HEAD_LEARNING_RATE",
    "KIND_TITLES", "KINDS", "PER_CLASS_SIZES", "PROBE", "PROBE_BLOCKS", "QUICK_EPOCHS", "QUICK_FREEZE_DEPTHS",
    "QUICK_PER_CLASS_SIZES", "QUICK_SEEDS", "SCRATCH_LEARNING_RATE", "SEEDS", "SPLIT_SEED", "VALIDATION_FRACTION",
    "PlannedRun", "check_kind", "equal_step_epochs", "estimate_seconds", "plan_runs", "plan_summary",
    "LOG_FILE", "RESULTS_FILE", "TrainingWorker", "charts_path", "linear_probe", "read_results", "run_experiment",
    "stop_experiment",
]
