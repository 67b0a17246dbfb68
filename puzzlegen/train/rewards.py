"""Rewards from `puzzlegen.verify`: each completion is scored against its own puzzle's verifier spec."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from puzzlegen.verify import score


@dataclass
class Scores:
    total: list[float]
    accuracy: list[float]
    format: list[float]
    tasks: list[str]

    def per_task(self, prefix: str = "") -> dict[str, float]:
        """Mean reward, accuracy and format per task, keyed like "reward/rotation"."""
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
        for task, t, a, f in zip(self.tasks, self.total, self.accuracy, self.format, strict=True):
            acc = sums[task]
            acc[0], acc[1], acc[2], acc[3] = acc[0] + t, acc[1] + a, acc[2] + f, acc[3] + 1
        out = {}
        for task, (t, a, f, n) in sorted(sums.items()):
            out.update(
                {
                    f"{prefix}reward/{task}": t / n,
                    f"{prefix}accuracy/{task}": a / n,
                    f"{prefix}format/{task}": f / n,
                }
            )
        return out


def score_all(texts: list[str], specs: list[str], tasks: list[str]) -> Scores:
    results = [score(text, spec) for text, spec in zip(texts, specs, strict=True)]
    return Scores(
        [r.total for r in results], [r.accuracy for r in results], [r.format for r in results], tasks
    )
