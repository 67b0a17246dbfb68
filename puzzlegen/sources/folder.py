"""A local folder of images, searched recursively, in sorted order."""

from __future__ import annotations

from pathlib import Path

from .base import IMAGE_EXTENSIONS, BadImage, Source, SourceError


def list_images(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )


class FolderSource(Source):
    kind = "folder"

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise SourceError(f"{root}: no such folder")
        self._ids: list[str] | None = None

    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = list_images(self.root)
            if not self._ids:
                raise SourceError(f"{self.root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
        return self._ids

    def read(self, index: int) -> bytes:
        try:
            return (self.root / self.ids()[index]).read_bytes()
        except OSError:
            raise BadImage("read_error") from None

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.root.name, "uri": str(self.root)}
