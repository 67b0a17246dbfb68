"""Recipes: a named mix of tasks with their parameters and one output format."""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from puzzlegen.tasks import Task, parse_task

STYLES, THINK = ("answer_tag", "boxed"), ("required", "optional", "none")


@dataclass(frozen=True)
class OutputFormat:
    style: str = "answer_tag"
    think: str = "required"
    accuracy_weight: float = 0.9
    format_weight: float = 0.1
    max_chars: int = 8000

    def __post_init__(self):
        if self.style not in STYLES or self.think not in THINK:
            raise ValueError(f"format style must be one of {STYLES} and think one of {THINK}")
        if (
            self.accuracy_weight < 0
            or self.format_weight < 0
            or self.accuracy_weight + self.format_weight <= 0
        ):
            raise ValueError("format weights must be >= 0 and not both 0")

    def spec(self) -> dict[str, Any]:
        return {
            "format": {"style": self.style, "think": self.think},
            "weights": {"accuracy": self.accuracy_weight, "format": self.format_weight},
            "max_chars": self.max_chars,
        }


@dataclass(frozen=True)
class TaskEntry:
    name: str  # unique in the recipe: it names the records and seeds their randomness
    task: Task
    format: OutputFormat


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    entries: tuple[TaskEntry, ...]

    def resolved(self) -> dict[str, Any]:
        """Every parameter spelled out, defaults included: what the manifest and the card record."""
        return {
            "name": self.name,
            "description": self.description,
            "tasks": [
                {
                    "name": e.name,
                    "task": e.task.name,
                    "params": e.task.config.params(),
                    "format": e.format.__dict__,
                }
                for e in self.entries
            ],
        }


def recipes_dir() -> Path:
    """recipes/ beside the package in a checkout, or the copy inside an installed wheel."""
    here = Path(__file__).resolve().parents[2] / "recipes"
    return here if here.is_dir() else Path(str(resources.files("puzzlegen") / "_data" / "recipes"))


def available() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def from_tasks(text: str, fmt: OutputFormat | None = None) -> Recipe:
    """'jigsaw3x3,rotation' -> a recipe with default parameters."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError("--tasks is empty; e.g. --tasks jigsaw3x3,rotation")
    if len(set(names)) != len(names):
        raise ValueError(f"--tasks names a task twice: {text}")
    fmt = fmt or OutputFormat()
    return Recipe(
        "custom", f"tasks: {', '.join(names)}", tuple(TaskEntry(*parse_task(n), fmt) for n in names)
    )


def load(name_or_path: str) -> Recipe:
    """A recipe by name (recipes/NAME.yaml) or by path to a YAML file."""
    import yaml

    path = Path(name_or_path)
    if not path.is_file():
        path = recipes_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown recipe {name_or_path!r}; available: {', '.join(available())}")
    data = yaml.safe_load(path.read_text())
    try:
        base_format = OutputFormat(**data.get("format", {}))
        entries = []
        for item in data["tasks"]:
            fmt = replace(base_format, **item.get("format", {}))
            name, task = parse_task(item.get("task", item.get("name")), item.get("params", {}))
            entries.append(TaskEntry(item.get("name", name), task, fmt))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"recipe {path}: {error}") from None
    if len({e.name for e in entries}) != len(entries):
        raise ValueError(f"recipe {path}: two tasks share a name; give each a distinct `name`")
    return Recipe(data.get("name", path.stem), data.get("description", ""), tuple(entries))


def with_format(recipe: Recipe, style: str | None = None, think: str | None = None) -> Recipe:
    """The recipe with its output format overridden from the command line."""
    changes = {k: v for k, v in (("style", style), ("think", think)) if v}
    entries = tuple(TaskEntry(e.name, e.task, replace(e.format, **changes)) for e in recipe.entries)
    return Recipe(recipe.name, recipe.description, entries)
