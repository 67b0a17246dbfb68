"""Build one whole shard: read and decode each image once, run every task on it, write both formats."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from puzzlegen.sources import BadImage, Source, decode
from puzzlegen.tasks import Context, Puzzle, Skip
from puzzlegen.verify import instruction, oracle, score

from . import writers
from .plan import ShardPlan
from .recipe import Recipe, TaskEntry
from .seeds import balanced_choice, rng

EXTENSIONS = {"jpeg": "jpg", "png": "png"}
STATE = ".puzzlegen"  # per-shard done records and the build's identity live here
ERROR = "error"  # skip reasons with this part are bugs, not data: the CLI warns about them


@dataclass(frozen=True)
class BuildSpec:
    """Everything a worker needs; pickled once into each worker process."""

    source: Source
    recipe: Recipe
    seed: int
    image_format: str
    out: Path
    split_members: dict[str, list[int]]


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def record_id(entry: str, source_key: str, variant: int) -> str:
    """Unique and stable, with no dots (a WebDataset key ends at the first dot)."""
    return f"{entry}-{hashlib.sha256(source_key.encode()).hexdigest()[:16]}-{variant}"


def to_record(
    spec: BuildSpec, entry: TaskEntry, puzzle: Puzzle, source: dict, variant: int
) -> dict[str, Any]:
    fmt = entry.format
    verifier = {**puzzle.verifier, "answer": puzzle.answer, **fmt.spec()}
    prompt = f"{puzzle.prompt}\n{instruction(fmt.style, fmt.think)}"
    if prompt.count("<image>") != len(puzzle.images):
        raise RuntimeError(
            f"{entry.name}: prompt has {prompt.count('<image>')} <image> for {len(puzzle.images)} images"
        )
    if score(oracle(verifier), verifier).total != 1.0:  # a label its own verifier rejects is a bug, not data
        raise RuntimeError(
            f"{entry.name}: the answer {puzzle.answer!r} does not score 1 under its own verifier"
        )
    meta = {
        "task": entry.task.name,
        "name": entry.name,
        "variant": variant,
        "params": entry.task.config.params(),
        **puzzle.meta,
    }
    return {
        "id": record_id(entry.name, f"{source['dataset']}:{source['id']}", variant),
        "task": entry.task.name,
        "images": [writers.encode_image(im, spec.image_format) for im in puzzle.images],
        "prompt": prompt,
        "answer": puzzle.answer,
        "verifier": _json(verifier),
        "source": _json(source),
        "meta": _json(meta),
    }


def _partner(spec: BuildSpec, split: str, own: int, own_sha: str, puzzle_rng) -> Callable[[], Image.Image]:
    """A different image of the same split, chosen by the puzzle's own generator (never across splits)."""

    def pick() -> Image.Image:
        members = spec.split_members[split]
        for _ in range(16):
            index = members[int(puzzle_rng.integers(len(members)))]
            if index == own:
                continue
            try:
                data = spec.source.read(index)
                if hashlib.sha256(data).hexdigest() != own_sha:
                    return decode(data)
            except BadImage:
                continue
        raise Skip("no_partner")

    return pick


@dataclass
class Part:
    """The records of consecutive images of a shard, with counts per task, skips by reason, and the content
    sha256 of every image read, in order."""

    records: list[dict[str, Any]]
    counts: Counter[str]
    skipped: Counter[str]
    shas: list[str]


def pieces(shard: ShardPlan, size: int) -> list[ShardPlan]:
    """The shard cut into runs of `size` images. A piece keeps its shard's name and its images' positions in
    the split, so its records are exactly those the whole shard would make."""
    return [
        dataclasses.replace(shard, start=shard.start + a, items=shard.items[a : a + size])
        for a in range(0, len(shard.items), size)
    ]


def build_records(spec: BuildSpec, shard: ShardPlan, advance: Callable[[int], None] = lambda n: None) -> Part:
    """Every record of the shard (or piece of one)."""
    part = Part([], Counter(), Counter(), [])
    describe = spec.source.describe()
    for offset, (index, source_id, planned_sha) in enumerate(shard.items):
        position = shard.start + offset
        advance(1)
        try:
            data = spec.source.read(index)
            sha = hashlib.sha256(data).hexdigest()
            part.shas.append(sha)
            if planned_sha is not None and sha != planned_sha:  # the plan's dedupe no longer holds
                raise BadImage("changed_during_build")
            image = decode(data)
        except BadImage as bad:
            part.skipped[bad.reason] += 1
            continue
        source = {
            "dataset": describe["name"],
            "kind": describe["kind"],
            "id": source_id,
            "sha256": sha,
            "width": image.info["original_size"][0],
            "height": image.info["original_size"][1],
        }
        for entry in spec.recipe.entries:
            per_image = entry.task.per_image()
            for variant in range(per_image):
                puzzle_rng = rng(spec.seed, entry.name, sha, variant)
                ctx = Context(
                    rng=puzzle_rng,
                    balanced=lambda k, p=position * per_image + variant, e=entry.name: balanced_choice(
                        k, p, spec.seed, e, shard.split
                    ),
                    partner=_partner(spec, shard.split, index, sha, puzzle_rng),
                )
                try:
                    part.records.append(to_record(spec, entry, entry.task.make(image, ctx), source, variant))
                    part.counts[entry.name] += 1
                except Skip as skip:
                    part.skipped[f"{entry.name}:{skip.reason}"] += 1
                except Exception as error:  # a task bug on one odd image must not sink a long build
                    part.skipped[f"{entry.name}:{ERROR}:{type(error).__name__}"] += 1
    return part


def write_shard(spec: BuildSpec, shard: ShardPlan, parts: list[Part]) -> dict:
    """Write the shard's Parquet and tar from its parts, in order, under temporary names, rename them,
    then write its done record."""
    records = [r for p in parts for r in p.records]
    counts, skipped = sum((p.counts for p in parts), Counter()), sum((p.skipped for p in parts), Counter())
    data_dir, wds_dir, state = spec.out / "data", spec.out / "wds", spec.out / STATE
    parquet_path = data_dir / f"{shard.name}.parquet"
    tar_path = wds_dir / f"{shard.split}-{shard.index:06d}.tar"
    writers.write_parquet(records, parquet_path)
    writers.write_webdataset(records, tar_path, EXTENSIONS[spec.image_format])
    done = {
        "name": shard.name,
        "split": shard.split,
        "images": len(shard.items),
        "records": len(records),
        "counts": dict(sorted(counts.items())),
        "skipped": dict(sorted(skipped.items())),
        "content_sha256": hashlib.sha256("".join(sha for p in parts for sha in p.shas).encode()).hexdigest(),
        "files": {
            "parquet": writers.file_info(parquet_path, spec.out),
            "wds": writers.file_info(tar_path, spec.out),
        },
    }
    writers.write_json(done, state / "done" / f"{shard.name}.json")
    return done


def build_shard(spec: BuildSpec, shard: ShardPlan, advance: Callable[[int], None] = lambda n: None) -> dict:
    return write_shard(spec, shard, [build_records(spec, shard, advance)])
