"""Run a build: plan, build the missing shards in worker processes, then write the manifest and card.

Resuming is the same call: shards with a done record are kept, the rest are built again.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import pickle
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from puzzlegen import __version__
from puzzlegen.sources import BadImage, Source, SourceError

from . import writers
from .dedupe import Known, difference_hash, unique
from .plan import ShardPlan, fingerprint, make_plan, split_members
from .recipe import Recipe
from .shard import STATE, BuildSpec, build_records, build_shard, pieces, write_shard

CODEC_LIBRARIES = (
    "pillow",
    "numpy",
    "pyarrow",
    "webdataset",
    "albumentations",
    "albucore",
    "opencv-python-headless",
)


PARTS = f"{STATE}/parts"  # pieces of shards that several workers share, until the shard is written
MIN_PIECE = 16  # images: a smaller unit of work costs more in dispatch and pickling than it balances


class BuildError(Exception):
    """A problem the user can fix (a non-empty output folder, bad options); the message says how."""


class Progress(Protocol):
    def start(self, total: int, done: int, label: str) -> None: ...
    def advance(self, n: int) -> None: ...


@dataclass(frozen=True)
class BuildOptions:
    out: Path
    seed: int = 0
    workers: int = 1
    shard_size: int = 500
    limit: int | None = None
    test_fraction: float = 0.05
    image_format: str = "jpeg"
    dedupe: str = "exact"  # or "near": also drop resized or recompressed copies
    overwrite: bool = False


def _libraries() -> dict[str, str]:
    found = {}
    for name in CODEC_LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def _described(source: Source) -> dict[str, Any]:
    return {k: v for k, v in source.describe().items() if k != "uri"}


def _identity(
    source: Source, recipe: Recipe, options: BuildOptions, plan: list[ShardPlan], exclude: Sequence[Source]
) -> dict[str, Any]:
    """What makes two builds the same build. Paths and clocks stay out: they differ between machines."""
    return {
        "puzzlegen": __version__,
        "seed": options.seed,
        "recipe": recipe.resolved(),
        "source": _described(source),
        "exclude": [_described(other) for other in exclude],
        "plan_sha256": fingerprint(plan),
        "build": {
            "shard_size": options.shard_size,
            "test_fraction": options.test_fraction,
            "limit": options.limit,
            "image_format": options.image_format,
            "dedupe": options.dedupe,
        },
    }


def _prepare(out: Path, identity: dict, overwrite: bool) -> None:
    state = out / STATE / "build.json"
    previous = json.loads(state.read_text())["identity"] if state.exists() else None
    if overwrite:
        for name in ("data", "wds", STATE, "manifest.json", "README.md"):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    elif previous is not None and previous != identity:
        raise BuildError(
            f"{out} holds a different build (other source, recipe, seed or options). "
            "Pass --overwrite to replace it, or choose another --out."
        )
    elif previous is None and out.exists() and any(out.iterdir()):
        raise BuildError(
            f"{out} is not empty and holds no puzzlegen build. Pass --overwrite or choose another --out."
        )
    for sub in ("data", "wds", f"{STATE}/done"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    writers.write_json({"identity": identity}, state)


def _is_done(out: Path, shard: ShardPlan) -> bool:
    """A done record counts only if the files it names are there with the recorded sizes."""
    record = out / STATE / "done" / f"{shard.name}.json"
    if not record.exists():
        return False
    files = json.loads(record.read_text())["files"].values()
    return all((out / f["path"]).is_file() and (out / f["path"]).stat().st_size == f["bytes"] for f in files)


# Worker processes: the spec and a shared counter arrive once, through the pool initializer.
_SPEC: BuildSpec | None = None
_TICKS: Any = None


def _init_worker(spec: BuildSpec, ticks) -> None:
    global _SPEC, _TICKS
    _SPEC, _TICKS = spec, ticks
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # albumentations' OpenCV would start a thread per core in every worker
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _tick(n: int) -> None:
    with _TICKS.get_lock():
        _TICKS.value += n


def _run_piece(shard: ShardPlan, whole: bool) -> None:
    """A whole shard is written by its worker; a piece is pickled under PARTS for `_join` to write."""
    if whole:
        build_shard(_SPEC, shard, _tick)
        return
    part = build_records(_SPEC, shard, _tick)
    _part_path(_SPEC.out, shard).write_bytes(pickle.dumps(part, pickle.HIGHEST_PROTOCOL))  # read once done


def _part_path(out: Path, piece: ShardPlan) -> Path:
    return out / PARTS / f"{piece.name}-{piece.start:09d}.pickle"


def _join(shard: ShardPlan, parts: list[ShardPlan]) -> None:
    paths = [_part_path(_SPEC.out, piece) for piece in parts]
    write_shard(_SPEC, shard, [pickle.loads(path.read_bytes()) for path in paths])
    for path in paths:
        path.unlink()


def piece_size(pending: list[ShardPlan], workers: int) -> int:
    """Images per unit of work: about four units per worker, so that a build with fewer shards than
    workers, and the tail of a long one, keep every worker busy; never below MIN_PIECE images."""
    images = sum(len(s.items) for s in pending)
    return max(MIN_PIECE, math.ceil(images / (4 * workers)))


def _run(spec: BuildSpec, pending: list[ShardPlan], workers: int, progress: Progress | None) -> None:
    advance = progress.advance if progress else (lambda n: None)
    if workers <= 1:
        for shard in pending:
            build_shard(spec, shard, advance)
        return
    shutil.rmtree(spec.out / PARTS, ignore_errors=True)  # pieces of an interrupted run: their shards redo
    (spec.out / PARTS).mkdir(parents=True)
    size = piece_size(pending, workers)
    split = {k: pieces(shard, size) for k, shard in enumerate(pending)}
    # spawn, not fork: a parent that has read Parquet or run OpenCV holds thread-pool locks that a forked
    # child inherits locked, and then hangs on
    context = mp.get_context("spawn")
    ticks = context.Value("q", 0)
    units = sum(len(p) for p in split.values())
    with context.Pool(min(workers, units), _init_worker, (spec, ticks)) as pool:
        # each result maps to its shard's number; a join maps to None
        running: dict[Any, int | None] = {
            pool.apply_async(_run_piece, (piece, len(split[k]) == 1)): k for k in split for piece in split[k]
        }
        left = {k: len(p) for k, p in split.items()}
        seen = 0
        while running:
            for result in [r for r in running if r.ready()]:
                result.get()  # a worker's exception surfaces here
                k = running.pop(result)
                if k is None:
                    continue
                left[k] -= 1
                if left[k] == 0 and len(split[k]) > 1:  # its last piece is in: write the shard
                    running[pool.apply_async(_join, (pending[k], split[k]))] = None
            current = ticks.value
            advance(current - seen)
            seen = current
            time.sleep(0.05)
    shutil.rmtree(spec.out / PARTS, ignore_errors=True)


def assemble_manifest(
    identity: dict, plan: list[ShardPlan], out: Path, dropped: Counter[str] | None = None
) -> dict[str, Any]:
    """`dropped`: images the plan left out (copies), by reason."""
    dropped = dropped or Counter()
    shards = [json.loads((out / STATE / "done" / f"{s.name}.json").read_text()) for s in plan]
    splits: dict[str, dict[str, Any]] = {}
    skipped: Counter[str] = Counter(dropped)
    content = hashlib.sha256()
    for shard in shards:
        split = splits.setdefault(
            shard["split"], {"shards": 0, "images": 0, "records": 0, "counts": Counter()}
        )
        split["shards"] += 1
        split["images"] += shard["images"]
        split["records"] += shard["records"]
        split["counts"].update(shard["counts"])
        skipped.update(shard["skipped"])
        content.update(shard["content_sha256"].encode())
    for split in splits.values():
        split["counts"] = dict(sorted(split["counts"].items()))
    return {
        "format_version": 1,
        **identity,
        "source": {
            **identity["source"],
            "content_sha256": content.hexdigest(),
            "images": sum(s["images"] for s in shards) + dropped.total(),
        },
        "splits": splits,
        "skipped": dict(sorted(skipped.items())),
        "records": sum(s["records"] for s in shards),
        "bytes": {kind: sum(s["files"][kind]["bytes"] for s in shards) for kind in ("parquet", "wds")},
        "shards": shards,
        "libraries": _libraries(),
    }


def fingerprints(
    source: Source, count: int, near: bool, progress: Progress | None, label: str = "reading"
) -> tuple[list[str | None], list[int | None] | None]:
    """The sha256 of each image's bytes (None where unreadable: its shard counts that skip) and, with
    `near`, its difference hash. One pass in source order: sequential reads suit tars and row groups."""
    if progress:
        progress.start(count, 0, label)
    shas: list[str | None] = []
    hashes: list[int | None] = []
    for index in range(count):
        try:
            data = source.read(index)
            shas.append(hashlib.sha256(data).hexdigest())
            hashes.append(difference_hash(data) if near else None)
        except BadImage:
            shas.append(None)
            hashes.append(None)
        if progress:
            progress.advance(1)
    return shas, hashes if near else None


def build(
    source: Source,
    recipe: Recipe,
    options: BuildOptions,
    progress: Progress | None = None,
    exclude: Sequence[Source] = (),
) -> dict[str, Any]:
    """Build (or resume) the dataset in `options.out` and return its manifest. Images of the `exclude`
    corpora (a benchmark's, say), and with `dedupe="near"` their near copies, are left out."""
    if options.image_format not in ("jpeg", "png"):
        raise BuildError("--image-format must be jpeg or png")
    ids = source.ids()
    if len(set(ids)) != len(ids):
        raise SourceError("the source lists the same id twice; ids must name images uniquely")
    if options.dedupe not in ("exact", "near"):
        raise BuildError("--dedupe must be exact or near")
    ids = ids[: options.limit]
    near = options.dedupe == "near"
    excluded = Known()
    for other in exclude:
        name = other.describe()["name"]
        excluded.update(*fingerprints(other, len(other.ids()), near, progress, f"reading {name}"))
    if source.distinct_by_construction and not exclude:  # nothing to compare: skip the reading pass
        shas, hashes = [None] * len(ids), None
    else:
        shas, hashes = fingerprints(source, len(ids), near, progress)
    items, dropped = unique(ids, shas, hashes, excluded)
    try:
        plan = make_plan(items, options.shard_size, options.test_fraction)
    except ValueError as error:
        raise BuildError(str(error)) from None
    if not plan:
        raise BuildError("nothing to build: the source has no images (or --limit is 0)")
    out = options.out.expanduser().resolve()
    identity = _identity(source, recipe, options, plan, exclude)
    _prepare(out, identity, options.overwrite)
    pending = [s for s in plan if not _is_done(out, s)]
    if progress:
        total = sum(len(s.items) for s in plan)
        progress.start(total, total - sum(len(s.items) for s in pending), "images")
    spec = BuildSpec(source, recipe, options.seed, options.image_format, out, split_members(plan))
    _run(spec, pending, options.workers, progress)
    manifest = assemble_manifest(identity, plan, out, dropped)
    writers.write_json(manifest, out / "manifest.json")
    from puzzlegen.publish.card import write_card

    write_card(out, manifest)
    return manifest
