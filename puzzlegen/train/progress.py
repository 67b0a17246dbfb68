"""The live training display (rich): a bar over steps with the latest reward, accuracy, length and speed."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    def __init__(self, total: int, start: int, enabled: bool, console: Console | None = None):
        self.total, self.start, self.enabled = total, start, enabled
        self.console = console or Console(stderr=True)
        self.bar, self.task = None, None

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            self.bar = Progress(
                TextColumn("[bold]GRPO"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"),
                console=self.console,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("steps", total=self.total, completed=self.start, stats="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, step: int, values: dict[str, float]) -> None:
        if self.bar is None:
            return
        stats = (
            f"reward {values['reward/mean']:.3f}  acc {values['accuracy/mean']:.3f}  "
            f"len {values['length/mean']:.0f}  skipped {values['groups/zero_variance']:.0f}  "
            f"{values['time/step']:.1f} s/step  {values['tokens_per_s/step']:.0f} tok/s"
        )
        if "eval/accuracy/mean" in values:
            stats += f"  eval acc {values['eval/accuracy/mean']:.3f}"
        self.bar.update(self.task, completed=step, stats=stats)
