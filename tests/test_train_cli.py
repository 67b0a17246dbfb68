"""`puzzlegen train` / `puzzlegen eval` as commands: one clear line and exit 2 for user errors, a tiny run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from puzzlegen.train.commands import evaluate, train
from tests.train_fixtures import mixed_shards, rotation_shards, tiny_model, warm_model  # noqa: F401

app = typer.Typer()
app.command("train")(train)
app.command("eval")(evaluate)
runner = CliRunner()
TINY = [
    "--device",
    "cpu",
    "--precision",
    "fp32",
    "--min-pixels",
    "784",
    "--max-pixels",
    "3136",
    "--max-new-tokens",
    "8",
]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert pattern in result.output, result.output


def test_commands_module_imports_nothing_heavy():
    heavy = "('torch', 'transformers', 'peft')"
    code = f"import sys, puzzlegen.train.commands; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_cuda_is_a_clear_error(tmp_path, mixed_shards, tiny_model):  # noqa: F811
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_line_error(invoke("train", mixed_shards, "--model", tiny_model, "--out", tmp_path), "--device cpu")


def test_user_errors(tmp_path, mixed_shards, tiny_model):  # noqa: F811
    one_line_error(invoke("train", mixed_shards, "--model", tmp_path / "nope", *TINY), "model not found")
    (tmp_path / "empty").mkdir()
    one_line_error(invoke("train", tmp_path / "empty", "--model", tiny_model, *TINY), "no train shards")
    one_line_error(invoke("train", tmp_path / "missing", "--model", tiny_model, *TINY), "no such folder")
    one_line_error(
        invoke("train", mixed_shards, "--model", tiny_model, "--loss-agg", "sum", *TINY), "--loss-agg"
    )
    one_line_error(
        invoke("train", mixed_shards, "--model", tiny_model, "--group-size", "1", *TINY), "--group-size"
    )
    one_line_error(
        invoke("eval", mixed_shards, "--model", tiny_model, "--split", "dev", *TINY[:4]), "no dev shards"
    )
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    one_line_error(invoke("eval", mixed_shards, "--model", other, *TINY[:4]), "supports Qwen2.5-VL")


def test_train_then_eval_through_the_commands(tmp_path, warm_model, rotation_shards):  # noqa: F811
    out = tmp_path / "run"
    result = invoke(
        "train",
        rotation_shards,
        "--model",
        warm_model,
        "--out",
        out,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--group-size",
        "4",
        "--lr",
        "1e-3",
        "--no-progress",
        "--no-tensorboard",
        *TINY,
    )
    assert result.exit_code == 0, result.output
    assert (out / "checkpoints" / "step-0000002" / "model" / "config.json").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    # a second fresh start into the same run folder would mix two runs' checkpoints
    again = invoke("train", rotation_shards, "--model", warm_model, "--out", out, "--steps", "2", *TINY)
    one_line_error(again, "--resume auto")
    # the checkpoint's model folder is a model: `--model PATH` loads it with the same code
    report = tmp_path / "eval.json"
    result = invoke(
        "eval",
        rotation_shards,
        "--model",
        out / "checkpoints" / "step-0000002" / "model",
        "--limit",
        "4",
        "--batch-size",
        "2",
        "--json",
        report,
        *TINY,
    )
    assert result.exit_code == 0, result.output
    assert "rotation" in result.output and "accuracy" in result.output
    rows = json.loads(report.read_text())
    assert rows["all"]["n"] == 4 and 0 <= rows["rotation"]["accuracy"] <= 1


def test_weights_and_optimiser_state_are_estimated_and_a_gpu_too_small_is_warned_of(monkeypatch):
    from types import SimpleNamespace

    import torch

    from puzzlegen.train.commands import _memory_warning
    from puzzlegen.train.config import TrainConfig
    from puzzlegen.train.optim import state_gb

    n = 3_750_000_000  # Qwen2.5-VL-3B
    assert state_gb(n, n, "bf16", reference=False) == pytest.approx(67.5)  # 2 + 4 + 8 + 4 bytes a weight
    assert state_gb(n, n, "bf16", reference=True) == pytest.approx(75.0)
    assert state_gb(n, 100_000_000, "bf16", reference=False) == pytest.approx(7.5 + 1.6)  # LoRA
    assert state_gb(n, n, "bf16", reference=False, shards=8) == pytest.approx(n * 16 / 8 / 1e9)  # FSDP, fp32

    def trainer(lora):
        cfg = TrainConfig(data="d", model="m", lora=lora)
        dist = SimpleNamespace(device=torch.device("cuda"), world=1)
        return SimpleNamespace(
            cfg=cfg, dist=dist, fsdp=False, total_params=n, trainable_params=n // 40 if lora else n
        )

    memory = SimpleNamespace(total_memory=40e9)  # an A100 40 GB
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: memory)
    assert "about 68 GB per GPU, and this GPU has 40 GB" in _memory_warning(trainer(lora=False))
    assert _memory_warning(trainer(lora=True)) is None
    memory.total_memory = 80e9  # an H100: 12 GB left for activations and rollouts, no warning
    assert _memory_warning(trainer(lora=False)) is None
