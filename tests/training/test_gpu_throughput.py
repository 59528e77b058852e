"""benchmarks/gpu_throughput.py keeps working: its --small path (tiny shapes on CPU) runs every
side (qrdistill, HF Trainer, joint QR-Distill with learned routing and peer teaching) and writes
the results file with its figures, without sentence-transformers."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_throughput.py"


def test_small_gpu_throughput_runs_every_side_and_writes_figures(tmp_path, monkeypatch):
    for key, value in {
        "BENCH_MAX_WAIT_S": "0",
        "ACCELERATE_MIXED_PRECISION": "no",
        "ACCELERATE_USE_CPU": "true",
    }.items():
        monkeypatch.setenv(key, value)  # the script sets the last two; restored after the test
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # the GPU machine has none
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "small.json"
    bench.main(["--small", "--rounds", "2", "--steps", "1", "--warm", "0", "--out", str(out)])

    saved = json.loads(out.read_text())
    assert saved["partial"] is False and len(saved["rounds"]) == 2
    assert saved["setup"]["joint_note"] is None  # learned routing ran on the precomputed embeddings
    sides = {
        "small-qwen2/qrdistill",
        "small-qwen2/hf_trainer",
        "small-llama/qrdistill",
        "small-llama/hf_trainer",
        "joint/qrdistill",
    }
    assert set(saved["results"]) == sides
    figures = saved["figures"]
    for side in sides:
        assert figures[f"tokens_per_s/{side}"]["value"] > 0
    for shape in ("small-qwen2", "small-llama"):
        ratio = figures[f"speedup_vs_hf_trainer/{shape}"]
        assert math.isfinite(ratio["value"]) and ratio["target"] == ">= 1.0"
    assert figures["joint_over_separate_time"]["value"] > 0
    assert figures["mfu/small-qwen2/qrdistill"]["value"] is None  # no peak for a CPU


def test_flop_count_of_the_real_shapes():
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # Qwen2.5-1.5B: 1.54 B parameters of which 0.23 B are the (tied) embedding; every matmul
    # weight (blocks + output head) is about 1.54 B - norms and biases.
    c = bench.counts(bench.SHAPES["qwen2.5-1.5b"], r=16)
    assert abs(c["N"] - 1.54e9) < 0.01e9
    assert bench.device_peak_tflops("NVIDIA H200") == 989.0
    assert bench.device_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bench.device_peak_tflops(None) is None
