"""Example puzzles for people: one record made from the synthetic corpus, and a contact sheet of it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from puzzlegen.build.plan import ShardPlan
from puzzlegen.build.recipe import from_tasks
from puzzlegen.build.shard import BuildSpec, build_records
from puzzlegen.sources.synthetic import SyntheticSource


def example(task: str, seed: int = 0, tries: int = 8) -> dict[str, Any]:
    """The first puzzle `task` makes from the synthetic corpus, as a record (images as encoded bytes)."""
    source = SyntheticSource(count=tries)
    spec = BuildSpec(source, from_tasks(task), seed, "jpeg", Path("."), {"train": list(range(tries))})
    shard = ShardPlan("train", 0, 1, 0, tuple((i, name, None) for i, name in enumerate(source.ids())))
    records = build_records(spec, shard).records
    if not records:
        raise ValueError(f"{task}: no puzzle from the first {tries} synthetic images")
    return records[0]


def contact_sheet(record: dict[str, Any], height: int = 160, pad: int = 8) -> Image.Image:
    """The record's images side by side, numbered in prompt order."""
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in record["images"]]
    images = [im.resize((max(1, im.width * height // im.height), height)) for im in images]
    sheet = Image.new(
        "RGB", (sum(im.width for im in images) + pad * (len(images) + 1), height + 2 * pad + 14), "white"
    )
    draw, x = ImageDraw.Draw(sheet), pad
    for k, im in enumerate(images, 1):
        sheet.paste(im, (x, pad + 14))
        draw.text((x, 2), str(k), fill="black")
        x += im.width + pad
    return sheet


def stacked_sheets(records: list[dict[str, Any]], captions: list[str], pad: int = 8) -> Image.Image:
    """One contact sheet per record, top to bottom, each with its caption (id and answer) beneath."""
    sheets = [contact_sheet(record) for record in records]
    line = 16
    page = Image.new(
        "RGB", (max(s.width for s in sheets), sum(s.height + line for s in sheets) + pad), "white"
    )
    draw, y = ImageDraw.Draw(page), 0
    for sheet, caption in zip(sheets, captions, strict=True):
        page.paste(sheet, (0, y))
        draw.text((pad, y + sheet.height - 4), caption, fill="black")
        y += sheet.height + line
    return page
