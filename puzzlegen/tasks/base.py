"""What every task shares: the puzzle it returns, the context it draws from, the registry."""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from PIL import Image


class Skip(Exception):  # noqa: N818 - a control-flow signal, not an error
    """This image cannot make an unambiguous puzzle for this task; `reason` is counted in the manifest."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Puzzle:
    images: list[Image.Image]
    prompt: str  # the question, one "<image>" per image in order; the builder appends the format rule
    answer: str  # canonical answer, exactly as it goes inside the answer tag
    verifier: dict[str, Any]  # kind and kind fields; the builder adds format, weights and answer
    meta: dict[str, Any] = field(default_factory=dict)  # what was applied: boxes, permutation, ...


@dataclass
class Context:
    """Everything a task may draw on besides the image itself."""

    rng: np.random.Generator  # seeded by hash(seed, task, content sha256, variant)
    balanced: Callable[[int], int]  # an index in range(k), balanced across the dataset
    partner: Callable[[], Image.Image] | None = None  # another source image, for negatives


@dataclass(frozen=True)
class TaskConfig:
    """Base for per-task configs: subclasses validate in `check` and raise ValueError with the fix."""

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        pass

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TaskConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(known)}")
        # YAML gives lists where configs keep tuples (hashable, immutable)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})

    def params(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


class Task(ABC):
    """A self-supervised transformation restated as a question with one checkable answer."""

    name: ClassVar[str]
    Config: ClassVar[type[TaskConfig]]
    summary: ClassVar[str]
    shorthand: ClassVar[tuple[str, ...]] = ()  # config fields set by "NAMEaxb" (e.g. rows, cols)

    def __init__(self, config: TaskConfig):
        self.config = config

    def per_image(self) -> int:
        """How many puzzles one source image gives."""
        return 1

    @abstractmethod
    def make(self, image: Image.Image, ctx: Context) -> Puzzle:
        """Build one puzzle from an upright RGB image, or raise Skip."""


REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    REGISTRY[cls.name] = cls
    return cls


_SHORTHAND = re.compile(r"^([a-z_]+?)(\d+)x(\d+)$")


def parse_task(text: str, params: dict[str, Any] | None = None) -> tuple[str, Task]:
    """'jigsaw3x3' -> ('jigsaw3x3', Jigsaw(rows=3, cols=3)); 'rotation' -> ('rotation', Rotation())."""
    name, params = text.strip(), dict(params or {})
    family = name
    match = _SHORTHAND.match(name)
    if match and match.group(1) in REGISTRY and REGISTRY[match.group(1)].shorthand:
        family = match.group(1)
        a, b = REGISTRY[family].shorthand
        params = {a: int(match.group(2)), b: int(match.group(3)), **params}
    if family not in REGISTRY:
        raise ValueError(
            f"unknown task {name!r}; known: {', '.join(sorted(REGISTRY))} (see `puzzlegen tasks`)"
        )
    cls = REGISTRY[family]
    try:
        return name, cls(cls.Config.from_params(params))
    except (TypeError, ValueError) as error:
        raise ValueError(f"task {name!r}: {error}") from None
