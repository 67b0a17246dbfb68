"""The puzzle tasks. Importing this package imports every task module, which registers its task."""

import importlib
import pkgutil

from .base import REGISTRY, Context, Puzzle, Skip, Task, TaskConfig, parse_task

_SUPPORT = {"base", "imageops", "augment", "cells"}  # shared helpers, not tasks
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _SUPPORT:
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["REGISTRY", "Context", "Puzzle", "Skip", "Task", "TaskConfig", "parse_task"]
