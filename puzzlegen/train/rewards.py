"""Rewards from `puzzlegen.verify`: each completion is scored against its own puzzle's verifier spec."""

from __future__ import annotations

from dataclasses import dataclass

from puzzlegen.verify import Tally, score


@dataclass
class Scores:
    total: list[float]
    accuracy: list[float]
    format: list[float]
    tasks: list[str]

    def add_to(self, tally: Tally) -> Tally:
        for task, total, accuracy, fmt in zip(
            self.tasks, self.total, self.accuracy, self.format, strict=True
        ):
            tally.add(task, total, accuracy, fmt)
        return tally


def score_all(texts: list[str], specs: list[str], tasks: list[str]) -> Scores:
    results = [score(text, spec) for text, spec in zip(texts, specs, strict=True)]
    return Scores(
        [r.total for r in results], [r.accuracy for r in results], [r.format for r in results], tasks
    )
