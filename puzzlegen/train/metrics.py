"""Metrics: one JSON line per step in OUT/metrics.jsonl, and the same scalars in TensorBoard (OUT/tb)."""

from __future__ import annotations

import json
import math
from pathlib import Path


class MetricsLog:
    def __init__(self, out: Path, enabled: bool, tensorboard: bool, resume_step: int | None = None):
        self.path, self.enabled, self.writer = out / "metrics.jsonl", enabled, None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            # lines logged after the checkpoint we resume from will be logged again: drop them
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(f"{line}\n" for line in kept))
        elif resume_step is None:
            self.path.unlink(missing_ok=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"))

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        clean = {
            k: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None)
            for k, v in values.items()
        }
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")
        if self.writer is not None:
            for key, value in clean.items():
                if value is not None:
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )
