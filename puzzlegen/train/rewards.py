"""Rewards from `puzzlegen.verify`: each completion is scored against its own puzzle's verifier spec."""

from __future__ import annotations

from dataclasses import dataclass

from puzzlegen.verify import Tally, score
from puzzlegen.verify.report import KEYS


@dataclass
class Scores:
    total: list[float]
    accuracy: list[float]
    format: list[float]
    tasks: list[str]

    def per_task(self, prefix: str = "") -> dict[str, float]:
        """Mean reward, accuracy and format per task, keyed like "reward/rotation"."""
        tally = Tally()
        for task, t, a, f in zip(self.tasks, self.total, self.accuracy, self.format, strict=True):
            tally.add(task, t, a, f)
        means = tally.means()
        del means["all"]
        return {f"{prefix}{key}/{task}": row[key] for task, row in means.items() for key in KEYS}


def score_all(texts: list[str], specs: list[str], tasks: list[str]) -> Scores:
    results = [score(text, spec) for text, spec in zip(texts, specs, strict=True)]
    return Scores(
        [r.total for r in results], [r.accuracy for r in results], [r.format for r in results], tasks
    )
