"""The plan fixes which source images go to which shard before any work starts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .seeds import derive


@dataclass(frozen=True)
class ShardPlan:
    split: str
    index: int
    total: int  # shards in this split
    start: int  # position of the first item within its split: balances answers across the split
    items: tuple[tuple[int, str, str | None], ...]  # (index in the source, source id, content sha256)

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}-of-{self.total:05d}"


def split_of(source_id: str, test_fraction: float) -> str:
    """By a hash of the source id alone, so an image keeps its split whatever the seed or the limit."""
    return "test" if derive("split", source_id) / 2**128 < test_fraction else "train"


def make_plan(
    items: list[tuple[int, str, str | None]], shard_size: int, test_fraction: float
) -> list[ShardPlan]:
    if shard_size < 1:
        raise ValueError("--shard-size must be at least 1")
    if not 0 <= test_fraction < 1:
        raise ValueError("--test-fraction must be in [0, 1)")
    by_split: dict[str, list[tuple[int, str, str | None]]] = {}
    for item in items:
        by_split.setdefault(split_of(item[1], test_fraction), []).append(item)
    plan = []
    for split in sorted(by_split):
        items = by_split[split]
        chunks = [items[i : i + shard_size] for i in range(0, len(items), shard_size)]
        for k, chunk in enumerate(chunks):
            plan.append(ShardPlan(split, k, len(chunks), k * shard_size, tuple(chunk)))
    return plan


def split_members(plan: list[ShardPlan]) -> dict[str, list[int]]:
    """Source indices per split: where a task may look for a second image without crossing splits."""
    members: dict[str, list[int]] = {}
    for shard in plan:
        members.setdefault(shard.split, []).extend(item[0] for item in shard.items)
    return members


def fingerprint(plan: list[ShardPlan]) -> str:
    digest = hashlib.sha256()
    for shard in plan:
        digest.update(json.dumps([shard.name, shard.items]).encode())
    return digest.hexdigest()
