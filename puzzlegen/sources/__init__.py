"""Image corpora. `open_source` turns the SOURCE argument of `puzzlegen build` into a Source."""

from __future__ import annotations

from pathlib import Path

from .base import BadImage, Source, SourceError, decode
from .coco import CocoSource
from .folder import FolderSource
from .hf import HFSource
from .parquet import ParquetSource
from .synthetic import SyntheticSource
from .webdataset import WebDatasetSource

KINDS = ("synthetic", "coco", "folder", "hf", "wds", "parquet")
HELP = (
    "synthetic[:COUNT] (built in, offline) | coco (with --root or PUZZLEGEN_COCO_ROOT) | hf:NAME_OR_PATH | "
    "folder:PATH | wds:PATH | parquet:PATH | a bare PATH (the kind is guessed from what it holds)"
)


def _guess(path: Path) -> str:
    if path.suffix == ".tar" or (path.is_dir() and any(path.glob("*.tar"))):
        return "wds"
    if path.suffix == ".parquet" or (
        path.is_dir() and any(path.glob("*.parquet")) and not any(path.glob("*.jp*g"))
    ):
        return "parquet"
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        return "hf"
    if path.is_dir() and (path / "train2017").is_dir():
        return "coco"
    return "folder"


def open_source(
    text: str,
    *,
    root: str | None = None,
    subset: str = "train2017",
    split: str = "train",
    image_column: str | None = None,
    count: int = 1000,
) -> Source:
    kind, sep, rest = text.partition(":")
    if not sep or kind not in KINDS:
        kind, rest = (text, "") if text in KINDS else ("", text)
    if not kind:
        path = Path(rest).expanduser()
        if not path.exists():
            raise SourceError(f"{text!r} is neither a known source nor an existing path. Sources: {HELP}")
        kind = _guess(path)
        root = str(path) if kind == "coco" else root
    if kind == "synthetic":
        if rest and not rest.isdigit():
            raise SourceError(f"synthetic takes an image count, e.g. synthetic:5000, not {rest!r}")
        return SyntheticSource(int(rest) if rest else count)
    if kind == "coco":
        return CocoSource(rest or root, subset)
    if not rest:
        raise SourceError(f"{kind} needs a location, e.g. {kind}:PATH")
    if kind == "hf":
        return HFSource(rest, split=split, image_column=image_column)
    if kind == "wds":
        return WebDatasetSource(rest)
    if kind == "parquet":
        return ParquetSource(rest, image_column=image_column)
    return FolderSource(rest)


__all__ = ["HELP", "BadImage", "Source", "SourceError", "decode", "open_source"]
