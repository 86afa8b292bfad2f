"""Measured comparisons of Transfer Studio against the seed recipe and plain Keras.

``python -m bench [--quick] [--out DIR]`` writes results.md (tables for people), results.json (the
same figures for machines) and results_scaling.html (the scaling chart); ``bench/gpu_check.sh`` adds
GPU figures. Nothing here asserts a timing: the benchmark reports, the tests only check it runs.
"""
