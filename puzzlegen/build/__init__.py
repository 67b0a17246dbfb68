"""From a source and a recipe to sharded Parquet + WebDataset with a manifest."""

from .recipe import OutputFormat, Recipe, from_tasks, load
from .runner import BuildError, BuildOptions, build

__all__ = ["BuildError", "BuildOptions", "OutputFormat", "Recipe", "build", "from_tasks", "load"]
