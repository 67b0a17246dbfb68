"""Puzzle shards as a seeded, resumable stream: Parquet or WebDataset, local or on the Hub (pinned revision).

The smallest piece read at once is a *unit*: a Parquet row group or a WebDataset tar. Indexing reads only
the small `task`/`meta` columns, so the whole epoch layout is known before any image is read:

- Each task has its own stream. In epoch e its units are put in an order drawn from (seed, task, e) and cut
  into windows of `window` units; the task's rows inside one window are shuffled with (seed, task, e, w).
- The k-th puzzle of the mixed stream comes from the task drawn from the mix weights with (seed, k).
- The position is (k, and per task: epoch and rows consumed). Resuming recomputes the layout and reads only
  the window that holds the next row, so it continues exactly where it stopped.
- With several ranks, every rank walks the same stream and keeps every world-th puzzle; skipping a puzzle
  needs no I/O.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from .config import TrainError, derive

REQUIRED = ("id", "task", "images", "prompt", "answer", "verifier")


class DataError(TrainError):
    """The data is missing, empty, or not puzzlegen shards."""


@dataclass(frozen=True)
class Puzzle:
    id: str
    task: str  # the recipe entry name (meta "name", e.g. jigsaw3x3), else the task column
    images: tuple[bytes, ...]
    prompt: str
    answer: str
    verifier: str

    def pil_images(self) -> list:
        from PIL import Image

        return [Image.open(io.BytesIO(b)).convert("RGB") for b in self.images]


def _task_name(task: str, meta: str | None) -> str:
    try:
        return str(json.loads(meta).get("name") or task) if meta else task
    except (ValueError, AttributeError):
        return task


@dataclass(frozen=True)
class Unit:
    file: int
    group: int  # Parquet row group; 0 for a tar
    tasks: tuple[str, ...]  # the task of each row, in stored order


class Shards(ABC):
    """One split's shard files, read a unit at a time."""

    def __init__(self, files: list[str], where: str):
        self.files, self.where = files, where
        self._units: list[Unit] | None = None

    @property
    def units(self) -> list[Unit]:
        if self._units is None:
            self._units = self._index()
            if not any(u.tasks for u in self._units):
                raise DataError(f"{self.where}: the shards hold no puzzles")
        return self._units

    def tasks(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for unit in self.units:
            for t in unit.tasks:
                counts[t] = counts.get(t, 0) + 1
        return dict(sorted(counts.items()))

    @abstractmethod
    def _index(self) -> list[Unit]: ...

    @abstractmethod
    def read(self, unit: Unit) -> list[Puzzle]:
        """Every row of the unit, in stored order."""

    @abstractmethod
    def specs(self, unit: Unit) -> list[tuple[str, str, str]]:
        """(id, task, verifier) of every row of the unit, without reading its images."""


class ParquetShards(Shards):
    def __init__(self, files: list[str], where: str, opener: Callable[[str], Any] = lambda f: f):
        super().__init__(files, where)
        self.opener = opener

    def _open(self, file: str):
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(self.opener(file))
        except Exception as error:  # pyarrow raises several types for a damaged or absent file
            raise DataError(f"{file}: unreadable Parquet ({error})") from None
        missing = [c for c in REQUIRED if c not in reader.schema_arrow.names]
        if missing:
            raise DataError(
                f"{file}: not a puzzlegen shard: no column(s) {', '.join(missing)} "
                f"(need {', '.join(REQUIRED)}); build shards with `puzzlegen build`"
            )
        return reader

    def _index(self) -> list[Unit]:
        units = []
        for number, file in enumerate(self.files):
            reader = self._open(file)
            columns = ["task", "meta"] if "meta" in reader.schema_arrow.names else ["task"]
            for group in range(reader.num_row_groups):
                table = reader.read_row_group(group, columns=columns).to_pydict()
                metas = table.get("meta", [None] * len(table["task"]))
                units.append(Unit(number, group, tuple(map(_task_name, table["task"], metas))))
        return units

    def read(self, unit: Unit) -> list[Puzzle]:
        reader = self._open(self.files[unit.file])
        columns = list(REQUIRED) + (["meta"] if "meta" in reader.schema_arrow.names else [])
        rows = reader.read_row_group(unit.group, columns=columns).to_pylist()
        return [
            _puzzle(
                r, [im["bytes"] if isinstance(im, dict) else im for im in r["images"]], self.files[unit.file]
            )
            for r in rows
        ]

    def specs(self, unit: Unit) -> list[tuple[str, str, str]]:
        reader = self._open(self.files[unit.file])
        columns = ["id", "task", "verifier"] + (["meta"] if "meta" in reader.schema_arrow.names else [])
        rows = reader.read_row_group(unit.group, columns=columns).to_pylist()
        return [(r["id"], _task_name(r["task"], r.get("meta")), r["verifier"]) for r in rows]


class WebDatasetShards(Shards):
    """{id}.json holds every column but the images; {id}.img0.jpg, {id}.img1.jpg ... hold the images."""

    def _samples(self, file: str, with_images: bool = True) -> Iterator[tuple[dict, list[bytes]]]:
        try:
            with tarfile.open(file) as tar:
                key, record, images = None, None, {}
                for member in tar:
                    if not member.isfile():
                        continue
                    name, _, ext = member.name.partition(".")
                    if name != key:
                        if record is not None:
                            yield record, [images[i] for i in sorted(images)]
                        key, record, images = name, None, {}
                    if ext == "json":
                        record = json.loads(tar.extractfile(member).read())
                    elif with_images and ext.startswith("img") and ext[3:].partition(".")[0].isdigit():
                        images[int(ext[3:].partition(".")[0])] = tar.extractfile(member).read()
                if record is not None:
                    yield record, [images[i] for i in sorted(images)]
        except (tarfile.TarError, OSError, ValueError) as error:
            raise DataError(f"{file}: unreadable WebDataset tar ({error})") from None

    def _check(self, record: dict, file: str) -> None:
        missing = [c for c in REQUIRED if c != "images" and c not in record]
        if missing:
            raise DataError(f"{file}: not a puzzlegen shard: samples lack {', '.join(missing)}")

    def _index(self) -> list[Unit]:
        units = []
        for number, file in enumerate(self.files):
            tasks = []
            for record, _ in self._samples(file):
                self._check(record, file)
                tasks.append(_task_name(record["task"], record.get("meta")))
            units.append(Unit(number, 0, tuple(tasks)))
        return units

    def read(self, unit: Unit) -> list[Puzzle]:
        file = self.files[unit.file]
        return [_puzzle(record, images, file) for record, images in self._samples(file)]

    def specs(self, unit: Unit) -> list[tuple[str, str, str]]:
        return [
            (r["id"], _task_name(r["task"], r.get("meta")), r["verifier"])
            for r, _ in self._samples(self.files[unit.file], with_images=False)
        ]


def _puzzle(row: dict, images: list[bytes], file: str) -> Puzzle:
    if row["prompt"].count("<image>") != len(images):
        raise DataError(
            f"{file}: puzzle {row['id']} has {row['prompt'].count('<image>')} <image> placeholders "
            f"for {len(images)} images"
        )
    return Puzzle(
        row["id"],
        _task_name(row["task"], row.get("meta")),
        tuple(images),
        row["prompt"],
        row["answer"],
        row["verifier"],
    )


# ---------------------------------------------------------------------------------------------- locating


def _hub(spec: str, revision: str | None) -> tuple[str, str]:
    repo = spec.removeprefix("hf://datasets/").removeprefix("hf://").removeprefix("hf:")
    repo, _, pinned = repo.partition("@")
    revision = revision or pinned or None
    if not revision:
        raise DataError(
            f"{spec}: pin a revision (hf:{repo}@COMMIT_OR_TAG or --revision) so that a run can be "
            "repeated on the same data"
        )
    return repo, revision


def open_shards(data: str, split: str, data_format: str = "auto", revision: str | None = None) -> Shards:
    """The shards of `split` under a build folder (data/*.parquet, wds/*.tar) or a Hub dataset."""
    if data.startswith("hf:"):
        repo, revision = _hub(data, revision)
        try:
            from huggingface_hub import HfFileSystem

            fs = HfFileSystem()
            files = sorted(fs.glob(f"datasets/{repo}@{revision}/data/{split}-*.parquet"))
        except Exception as error:  # offline, unknown repo or revision: the hub client raises many types
            raise DataError(f"{data}: cannot list the dataset at revision {revision} ({error})") from None
        if not files:
            raise DataError(f"{data}@{revision}: no data/{split}-*.parquet files")
        return ParquetShards(files, f"{repo}@{revision}", lambda f: fs.open(f, "rb"))
    root = Path(data).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{data}: no such folder; give a folder made by `puzzlegen build`, or hf:OWNER/NAME@REV"
        )
    parquet = sorted({*root.glob(f"data/{split}-*.parquet"), *root.glob(f"{split}-*.parquet")})
    tars = sorted({*root.glob(f"wds/{split}-*.tar"), *root.glob(f"{split}-*.tar")})
    if data_format == "wds" or (data_format == "auto" and not parquet and tars):
        if not tars:
            raise DataError(f"{root}: no wds/{split}-*.tar shards")
        return WebDatasetShards([str(f) for f in tars], str(root))
    if not parquet:
        raise DataError(
            f"{root}: no {split} shards (looked for data/{split}-*.parquet and wds/{split}-*.tar); "
            "build some with `puzzlegen build`"
        )
    return ParquetShards([str(f) for f in parquet], str(root))


def read_manifest(data: str, revision: str | None = None) -> dict | None:
    try:
        if data.startswith("hf:"):
            from huggingface_hub import HfFileSystem

            repo, revision = _hub(data, revision)
            with HfFileSystem().open(f"datasets/{repo}@{revision}/manifest.json", "r") as f:
                return json.load(f)
        path = Path(data).expanduser() / "manifest.json"
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def task_mix(text: str | None, present: dict[str, int], manifest: dict | None) -> dict[str, float]:
    """Mix weights per task. `text` is "rotation=1,jigsaw3x3=2"; by default every task of the recipe (or,
    without a manifest, every task present) weighs the same, or its recipe `weight` where one is given."""
    if text:
        mix = {}
        for item in text.split(","):
            name, _, weight = item.strip().partition("=")
            try:
                mix[name.strip()] = float(weight) if weight else 1.0
            except ValueError:
                raise DataError(f"--task-mix: {item!r} is not NAME=WEIGHT") from None
    elif manifest and manifest.get("recipe", {}).get("tasks"):
        mix = {
            t["name"]: float(t.get("weight", 1.0))
            for t in manifest["recipe"]["tasks"]
            if t["name"] in present
        }
    else:
        mix = dict.fromkeys(present, 1.0)
    unknown = sorted(set(mix) - set(present))
    if unknown:
        raise DataError(
            f"--task-mix names {', '.join(unknown)}, absent from the data (it holds: {', '.join(present)})"
        )
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise DataError("--task-mix needs at least one task with a positive weight")
    return {k: v for k, v in mix.items() if v > 0}


# ---------------------------------------------------------------------------------------------- streams


class TaskStream:
    """One task's rows, epoch after epoch, in a windowed shuffle seeded by (seed, task, epoch)."""

    def __init__(self, shards: Shards, task: str, seed: int, window: int):
        self.shards, self.task, self.seed, self.window = shards, task, seed, window
        self.rows = [
            (u, [i for i, t in enumerate(unit.tasks) if t == task]) for u, unit in enumerate(shards.units)
        ]
        self.rows = [(u, r) for u, r in self.rows if r]
        self.total = sum(len(r) for _, r in self.rows)
        self.epoch, self.consumed = 0, 0
        self._layout: tuple[int, list[list[int]], list[int]] | None = None  # epoch, windows, window starts
        self._loaded: tuple[tuple[int, int], list[tuple[int, int]], dict] | None = None

    def _windows(self) -> tuple[list[list[int]], list[int]]:
        if self._layout is None or self._layout[0] != self.epoch:
            order = list(range(len(self.rows)))
            random.Random(derive(self.seed, "order", self.task, self.epoch)).shuffle(order)
            windows = [order[i : i + self.window] for i in range(0, len(order), self.window)]
            starts, total = [], 0
            for w in windows:
                starts.append(total)
                total += sum(len(self.rows[k][1]) for k in w)
            self._layout = (self.epoch, windows, starts)
        return self._layout[1], self._layout[2]

    def _advance(self) -> None:
        self.consumed += 1
        if self.consumed == self.total:
            self.epoch, self.consumed = self.epoch + 1, 0

    def skip(self) -> None:
        self._advance()

    def next(self) -> Puzzle:
        windows, starts = self._windows()
        w = max(i for i, s in enumerate(starts) if s <= self.consumed)
        key = (self.epoch, w)
        if self._loaded is None or self._loaded[0] != key:
            picks = [(self.rows[k][0], r) for k in windows[w] for r in self.rows[k][1]]
            random.Random(derive(self.seed, "window", self.task, self.epoch, w)).shuffle(picks)
            wanted = {u for u, _ in picks}
            puzzles = {u: self.shards.read(self.shards.units[u]) for u in sorted(wanted)}
            self._loaded = (key, picks, puzzles)
        _, picks, puzzles = self._loaded
        unit, row = picks[self.consumed - starts[w]]
        self._advance()
        return puzzles[unit][row]


class PuzzleStream:
    """The mixed, sharded-by-rank stream of training puzzles. `state()` is the data position."""

    def __init__(
        self, shards: Shards, mix: dict[str, float], seed: int, window: int = 8, rank: int = 0, world: int = 1
    ):
        self.mix, self.seed, self.rank, self.world = mix, seed, rank, world
        self.streams = {t: TaskStream(shards, t, seed, window) for t in mix}
        self.names, total = sorted(mix), sum(mix.values())
        self.cumulative, acc = [], 0.0
        for name in self.names:
            acc += mix[name] / total
            self.cumulative.append(acc)
        self.drawn = 0

    def _task(self, k: int) -> str:
        u = random.Random(derive(self.seed, "mix", k)).random()
        return next((n for n, c in zip(self.names, self.cumulative, strict=True) if u < c), self.names[-1])

    def next(self) -> Puzzle:
        while True:
            k, stream = self.drawn, self.streams[self._task(self.drawn)]
            self.drawn += 1
            if k % self.world == self.rank:
                return stream.next()
            stream.skip()

    def state(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "tasks": {t: [s.epoch, s.consumed] for t, s in self.streams.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        if set(state["tasks"]) != set(self.streams):
            raise DataError(
                f"the checkpoint's task mix ({', '.join(state['tasks'])}) differs from this run's "
                f"({', '.join(self.streams)})"
            )
        self.drawn = state["drawn"]
        for task, (epoch, consumed) in state["tasks"].items():
            self.streams[task].epoch, self.streams[task].consumed = epoch, consumed


def iter_specs(shards: Shards) -> Iterator[tuple[str, str, str]]:
    """(id, task, verifier) of every puzzle of the split, in stored order, with no image read."""
    return (spec for unit in shards.units if unit.tasks for spec in shards.specs(unit))


def iter_puzzles(shards: Shards, limit: int | None = None) -> Iterator[Puzzle]:
    """The split in stored order (for evaluation); a unit is read only when its first puzzle is wanted."""
    return islice((p for unit in shards.units if unit.tasks for p in shards.read(unit)), limit)
