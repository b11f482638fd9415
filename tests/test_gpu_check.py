"""benchmarks/gpu_check.py, the one-call script for a machine with a GPU: how it compares two
devices' records (the GPU run itself needs CUDA and is not a test here)."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "gpu_check", Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_compare_counts_differences_in_scores_verdicts_and_errors():
    cpu = [(0.10, "uncertain", None), (0.999, "fake", None), (None, None, "unreadable"), (0.5, "uncertain", None)]
    gpu = [(0.12, "uncertain", None), (0.997, "uncertain", None), (None, None, "unreadable"), (None, None, "boom")]
    c = gpu_check._compare(cpu, gpu)
    assert c["images"] == 4 and c["scored_on_both"] == 2
    assert abs(c["max_abs_p_fake_diff"] - 0.02) < 1e-9
    assert c["verdicts_differ"] == 2  # fake against uncertain, and a score against an error
    assert c["errors_differ"] == 1


def test_compare_of_identical_runs_finds_nothing():
    recs = [(0.3, "uncertain", None), (None, None, "unreadable")]
    assert gpu_check._compare(recs, list(recs)) == {
        "images": 2, "scored_on_both": 1, "errors_differ": 0, "max_abs_p_fake_diff": 0.0, "verdicts_differ": 0}
