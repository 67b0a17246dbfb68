"""Rewrite built shards in the column layouts that other trainers read, shard by shard.

verl:   data_source, prompt (chat messages), images, ability, reward_model {style, ground_truth},
        extra_info {index, split, task, verifier}; score with puzzlegen.verify.verl_compute_score.
easyr1: problem (with <image> markers), answer (the verifier spec as JSON), images; score with
        puzzlegen.verify.easyr1_compute_score (the spec arrives as ground_truth).
trl:    prompt (chat messages with image parts), images, verifier, task; score with
        puzzlegen.verify.trl_reward (TRL passes the `verifier` column as a keyword argument).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMATS = ("verl", "easyr1", "trl")


def _split(path: Path) -> str:
    return path.name.split("-")[0]


def _trl_content(prompt: str) -> list[dict[str, str]]:
    """'<image>\\nWhich…' -> [{'type': 'image'}, {'type': 'text', 'text': '\\nWhich…'}], order kept."""
    pieces = re.split(r"(<image>)", prompt)
    return [{"type": "image"} if p == "<image>" else {"type": "text", "text": p} for p in pieces if p]


def _verl(row: dict[str, Any], split: str) -> dict[str, Any]:
    return {
        "data_source": f"puzzlegen/{row['task']}",
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "images": row["images"],
        "ability": "visual-puzzle",
        "reward_model": {"style": "rule", "ground_truth": row["answer"]},
        "extra_info": {"id": row["id"], "split": split, "task": row["task"], "verifier": row["verifier"]},
    }


def _easyr1(row: dict[str, Any], split: str) -> dict[str, Any]:
    return {"problem": row["prompt"], "answer": row["verifier"], "images": row["images"], "id": row["id"]}


def _trl(row: dict[str, Any], split: str) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": _trl_content(row["prompt"])}],
        "images": row["images"],
        "verifier": row["verifier"],
        "task": row["task"],
        "id": row["id"],
    }


CONVERTERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "verl": _verl,
    "easyr1": _easyr1,
    "trl": _trl,
}


def export(build_dir: Path, target: str, out: Path) -> list[Path]:
    """Write OUT/{split}-{i}-of-{n}.parquet in the target layout; returns the files written."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    from puzzlegen.build.writers import IMAGE, atomic

    if target not in CONVERTERS:
        raise ValueError(f"unknown export format {target!r}; choose one of {', '.join(FORMATS)}")
    shards = sorted((build_dir / "data").glob("*.parquet"))
    if not shards:
        raise ValueError(
            f"{build_dir}/data holds no Parquet shards: export a folder made by `puzzlegen build`"
        )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for shard in shards:
        rows = [CONVERTERS[target](row, _split(shard)) for row in pq.read_table(shard).to_pylist()]
        if not rows:  # every image of the shard was skipped
            continue
        table = pa.Table.from_pylist(rows)
        table = table.set_column(
            table.schema.get_field_index("images"), "images", table.column("images").cast(pa.list_(IMAGE))
        )  # paths are all None
        features = datasets.Features.from_arrow_schema(table.schema)
        features["images"] = datasets.List(datasets.Image())  # so `datasets` decodes them in every layout
        table = table.replace_schema_metadata(
            {"huggingface": json.dumps({"info": {"features": features.to_dict()}})}
        )
        with atomic(out / shard.name) as tmp:
            pq.write_table(table, tmp, row_group_size=64, compression="zstd")
        written.append(out / shard.name)
    return written
