"""Scores summed per task, and the scoring of a file of completions made by any model or stack."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from .score import score

KEYS = ("reward", "accuracy", "format")


class Tally:
    """Running sums per task of (n, reward, accuracy, format)."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}

    def add(self, task: str, reward: float, accuracy: float, fmt: float, n: float = 1.0) -> None:
        row = self.sums.setdefault(task, [0.0, 0.0, 0.0, 0.0])
        for i, value in enumerate((n, reward, accuracy, fmt)):
            row[i] += value

    def means(self) -> dict[str, dict[str, float]]:
        """{task: {n, reward, accuracy, format}} by task name, then "all": the mean over every completion."""
        rows = {task: self.sums[task] for task in sorted(self.sums)}
        rows["all"] = [sum(column) for column in zip(*self.sums.values(), strict=True)] or [0.0] * 4
        return {
            task: {"n": n, **{k: v / max(n, 1.0) for k, v in zip(KEYS, values, strict=True)}}
            for task, (n, *values) in rows.items()
        }


def flatten(means: dict[str, dict[str, float]], prefix: str = "") -> dict[str, float]:
    """`Tally.means()` as metric names: "reward/rotation", ..., and "reward/mean" for all tasks."""
    return {
        f"{prefix}{key}/{'mean' if task == 'all' else task}": row[key]
        for task, row in means.items()
        for key in KEYS
    }


@dataclass
class FileReport:
    tally: Tally = field(default_factory=Tally)
    scored: list[dict] = field(default_factory=list)  # one per scored line
    malformed: list[int] = field(default_factory=list)  # line numbers (from 1)
    unknown: list[str] = field(default_factory=list)  # ids that name no puzzle of the data
    unanswered: int = 0  # puzzles of the data with no completion
    best: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (task, best accuracy)

    def any_correct(self) -> dict[str, dict[str, float]]:
        """Per task, over answered puzzles: the share with at least one fully correct completion (pass@k
        when each puzzle has k samples), and the most completions any one puzzle had."""
        samples: dict[str, int] = {}
        for row in self.scored:
            samples[row["id"]] = samples.get(row["id"], 0) + 1
        out: dict[str, dict[str, float]] = {}
        for key, (task, accuracy) in self.best.items():
            row = out.setdefault(task, {"puzzles": 0, "solved": 0.0, "max_samples": 0})
            row["puzzles"] += 1
            row["solved"] += accuracy == 1.0
            row["max_samples"] = max(row["max_samples"], samples[key])
        return {task: {**row, "solved": row["solved"] / row["puzzles"]} for task, row in sorted(out.items())}


def score_completions(
    lines: Iterable[str], puzzles: dict[str, tuple[str, str]], text_field: str = "completion"
) -> FileReport:
    """Score JSON lines `{"id": ..., text_field: ...}` against `puzzles` ({id: (task, verifier spec)}).

    A line that is not such an object is counted as malformed, an id that names no puzzle as unknown;
    neither stops the rest. Several completions of one puzzle are each scored (as for pass@k)."""
    report = FileReport()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key, text = row["id"], row[text_field]
            if not isinstance(key, str) or not isinstance(text, str):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            report.malformed.append(number)
            continue
        if key not in puzzles:
            report.unknown.append(key)
            continue
        task, spec = puzzles[key]
        result = score(text, spec)
        report.tally.add(task, result.total, result.accuracy, result.format)
        report.scored.append(
            {
                "line": number,
                "id": key,
                "task": task,
                "reward": result.total,
                "accuracy": result.accuracy,
                "format": result.format,
                "answer": result.answer,
                "reason": result.reason,
            }
        )
        report.best[key] = (task, max(result.accuracy, report.best.get(key, (task, 0.0))[1]))
    report.unanswered = len(puzzles) - len(report.best)
    return report
