"""WebDataset tars: a .tar file or a folder of them. Each sample's first image member is the image.

Listing reads only the tar headers and remembers where each image's bytes lie, so a worker reads one
image with a single seek instead of streaming the tar from the start."""

from __future__ import annotations

import tarfile
from pathlib import Path

from .base import IMAGE_EXTENSIONS, BadImage, Source, SourceError


class WebDatasetSource(Source):
    kind = "webdataset"

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        if self.path.is_dir():
            self.tars = sorted(self.path.glob("*.tar"))
        elif self.path.suffix == ".tar" and self.path.is_file():
            self.tars = [self.path]
        else:
            raise SourceError(f"{path}: not a .tar file or a folder of .tar files")
        if not self.tars:
            raise SourceError(f"{path}: no .tar files found")
        self._index: list[tuple[str, int, int, int]] | None = None  # id, tar number, offset, size

    def _list(self) -> list[tuple[str, int, int, int]]:
        if self._index is None:
            index: dict[str, tuple[str, int, int, int]] = {}
            for number, tar_path in enumerate(self.tars):
                try:
                    with tarfile.open(tar_path) as tar:
                        for member in tar:
                            key, _, ext = member.name.partition(".")
                            sample = f"{tar_path.stem}/{key}"
                            if (
                                member.isfile()
                                and f".{ext.lower()}" in IMAGE_EXTENSIONS
                                and sample not in index
                            ):
                                index[sample] = (sample, number, member.offset_data, member.size)
                except (tarfile.TarError, OSError) as error:
                    raise SourceError(f"{tar_path}: unreadable tar ({error})") from None
            self._index = sorted(index.values())
            if not self._index:
                raise SourceError(f"{self.path}: the tars hold no image members")
        return self._index

    def ids(self) -> list[str]:
        return [entry[0] for entry in self._list()]

    def read(self, index: int) -> bytes:
        _, number, offset, size = self._list()[index]
        try:
            with open(self.tars[number], "rb") as f:
                f.seek(offset)
                data = f.read(size)
        except OSError:
            raise BadImage("read_error") from None
        if len(data) != size:
            raise BadImage("truncated")
        return data

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.path.stem, "uri": str(self.path)}
