"""The GPU benchmark script runs end to end on the CPU with --tiny, TRL comparison included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

BENCH = Path(__file__).with_name("gpu_bench.py")


def test_gpu_bench_runs_tiny_on_the_cpu(tmp_path):
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--tiny", "--work", str(tmp_path), "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(report.read_text())
    assert [m["mode"] for m in results["ours"]] == ["full", "lora", "full-unshared", "full-static"]
    assert "full-unshared (each completion encodes its own copy of the images) against full" in done.stdout
    assert "full-static (rollouts with a static, compiled KV cache) against full: rollout" in done.stdout
    for mode in results["ours"]:
        for key in (
            "samples_per_s",
            "rollout_tokens_per_s",
            "training_tokens_per_s",
            "step_tokens_per_s",
            "time_rollout_s",
            "time_logprob_s",
            "time_update_s",
            "peak_memory_gb",
        ):
            assert mode[key] > 0 or key == "time_logprob_s", key
    # TRL is a dev dependency, so the comparison itself runs: same batch, group size and lengths
    assert set(results["trl"]) == {"full", "lora"}
    for mode, trl in results["trl"].items():
        assert "error" not in trl, trl
        assert trl["samples_per_s"] > 0 and results["ratio"][mode] > 0
        assert 0 < trl["completion_tokens"] <= 8  # --tiny generates at most 8 tokens
    assert "ours / TRL" in done.stdout


def test_a_mode_that_runs_out_of_gpu_memory_is_reported_and_the_rest_still_runs(capsys):
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("gpu_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def out_of_memory(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    full = bench.guarded(out_of_memory, "full")
    assert full == {
        "mode": "full",
        "error": "out of GPU memory: CUDA out of memory. Tried to allocate 2.00 GiB",
    }
    lora = bench.guarded(lambda: {"mode": "lora", "samples_per_s": 4.0, "step_tokens_per_s": 2000.0}, "lora")
    results = {"device": "NVIDIA H100", "model": "3b", "ours": [full, lora], "trl": {}, "ratio": {}}
    bench.report(results)
    printed = capsys.readouterr().out
    assert "ours (full): out of GPU memory" in printed and "lora: 2000 step tokens/s" in printed
