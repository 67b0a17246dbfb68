"""The dataset card: README.md with Hub front matter, made from the template in cards/."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from puzzlegen.build.writers import FEATURES, atomic


def _template() -> str:
    here = Path(__file__).resolve().parents[2] / "cards" / "dataset_card.md"
    if here.is_file():
        return here.read_text()
    return (resources.files("puzzlegen") / "_data" / "cards" / "dataset_card.md").read_text()


def front_matter(manifest: dict[str, Any]) -> str:
    """YAML the Hub reads: which files form each split, and the features so `images` decodes."""
    features = [
        {"name": k, "list": "image"} if v.get("_type") == "List" else {"name": k, "dtype": v["dtype"]}
        for k, v in FEATURES.items()
    ]
    splits = sorted(manifest["splits"])
    data = {
        "license": "other",
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "tags": ["puzzlegen", "self-supervised", "rlvr", "verifiable-rewards", "synthetic-tasks"],
        "pretty_name": f"{manifest['recipe']['name']} puzzles from {manifest['source']['name']}",
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits],
            }
        ],
        "dataset_info": {
            "features": features,
            "splits": [{"name": s, "num_examples": manifest["splits"][s]["records"]} for s in splits],
        },
    }
    # JSON is valid YAML and keeps this module free of a YAML writer's formatting choices
    return "\n".join(f"{k}: {json.dumps(v)}" for k, v in data.items())


def render(manifest: dict[str, Any], repo_id: str | None = None) -> str:
    """The card; its usage snippet loads from `repo_id` on the Hub, or from the local folder without one."""
    counts = [
        f"| {split} | {task} | {n:,} |"
        for split, info in sorted(manifest["splits"].items())
        for task, n in info["counts"].items()
    ]
    tasks = [
        f"| {t['name']} | {t['task']} | `{json.dumps(t['params'], sort_keys=True)}` | "
        f"{t['format']['style']}, think {t['format']['think']} |"
        for t in manifest["recipe"]["tasks"]
    ]
    skipped = ", ".join(f"{k} {v}" for k, v in manifest["skipped"].items()) or "none"
    return Template(_template()).substitute(
        front_matter=front_matter(manifest),
        title=f"{manifest['recipe']['name']} puzzles from {manifest['source']['name']}",
        puzzlegen_version=manifest["puzzlegen"],
        source_name=manifest["source"]["name"],
        source_kind=manifest["source"]["kind"],
        count_rows="\n".join(counts),
        records=f"{manifest['records']:,}",
        images=f"{manifest['source']['images']:,}",
        skipped=skipped,
        dedupe={
            "exact": "byte-identical copies",
            "near": "byte-identical copies, and resized or recompressed ones by difference hash",
        }[manifest["build"].get("dedupe", "exact")],
        excluded=(
            "Images of "
            + ", ".join(f"{e['name']} ({e['kind']})" for e in manifest["exclude"])
            + " and their copies were kept out."
            if manifest.get("exclude")
            else ""
        ),
        recipe_name=manifest["recipe"]["name"],
        recipe_description=manifest["recipe"]["description"] or "",
        task_rows="\n".join(tasks),
        seed=manifest["seed"],
        content_sha256=manifest["source"]["content_sha256"],
        load_call=(
            f'load_dataset("{repo_id}", split="train")'
            if repo_id
            else 'load_dataset("parquet", data_dir="data", split="train")'
        ),
    )


def write_card(out: Path, manifest: dict[str, Any]) -> None:
    text = render(manifest)
    with atomic(out / "README.md") as tmp:
        tmp.write_text(text)
