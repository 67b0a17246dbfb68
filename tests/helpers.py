"""Small builders the tests share."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from puzzlegen.build import BuildOptions, build, from_tasks
from puzzlegen.sources import open_source


def quick_build(
    out: Path, tasks: str = "jigsaw3x3,rotation", source: str = "synthetic:24", **options
) -> dict:
    options = {"shard_size": 8, "workers": 1, "test_fraction": 0.2, **options}
    return build(open_source(source), from_tasks(tasks), BuildOptions(out=out, **options))


def tree_digest(root: Path, *parts: str) -> dict[str, str]:
    """sha256 of every file under the given parts of root, keyed by relative path."""
    found = {}
    for part in parts:
        base = root / part
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for f in files:
            found[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return found


def read_records(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "data").glob("*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def spec_of(row: dict) -> dict:
    return json.loads(row["verifier"])
