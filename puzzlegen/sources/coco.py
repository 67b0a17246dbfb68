"""The COCO 2017 layout: ROOT/train2017/*.jpg, ROOT/val2017/*.jpg, optional ROOT/annotations/."""

from __future__ import annotations

import os
from pathlib import Path

from .base import SourceError
from .folder import FolderSource

ENV = "PUZZLEGEN_COCO_ROOT"
SUBSETS = ("train2017", "val2017", "test2017", "unlabeled2017")


class CocoSource(FolderSource):
    kind = "coco"

    def __init__(self, root: str | Path | None = None, subset: str = "train2017"):
        root = root or os.environ.get(ENV)
        where = (
            "COCO goes in one folder holding train2017/ and val2017/ (the unzipped image archives from "
            f"cocodataset.org) and optionally annotations/. Point at it with --root DIR or {ENV}=DIR."
        )
        if not root:
            raise SourceError(f"COCO not found: no --root given and {ENV} is not set. {where}")
        if subset not in SUBSETS:
            raise SourceError(f"unknown COCO subset {subset!r}; choose one of {', '.join(SUBSETS)}")
        images = Path(root).expanduser() / subset
        if not images.is_dir():
            raise SourceError(f"COCO not found: {images} does not exist. {where}")
        super().__init__(images)
        self.subset = subset

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "name": f"coco-{self.subset}",
            "uri": str(self.root),
            "subset": self.subset,
        }
