"""A Hugging Face dataset: a folder saved with `save_to_disk`, or anything `datasets.load_dataset` opens
(a Hub id at a pinned revision, a local data folder). Images are read undecoded, as their stored bytes."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from .base import Source, SourceError, cell_bytes

ID_COLUMNS = ("id", "image_id", "uid", "key")


class HFSource(Source):
    kind = "hf"

    def __init__(
        self, name: str, split: str = "train", image_column: str | None = None, revision: str | None = None
    ):
        self.name, self.split, self.image_column, self.revision = name, split, image_column, revision

    def __getstate__(self):  # workers reopen the (memory-mapped) dataset themselves
        return {k: v for k, v in self.__dict__.items() if k != "dataset"}

    @cached_property
    def dataset(self):
        import datasets

        try:
            if (Path(self.name) / "dataset_info.json").exists() or (Path(self.name) / "state.json").exists():
                ds = datasets.load_from_disk(self.name)
                ds = ds[self.split] if isinstance(ds, datasets.DatasetDict) else ds
            else:
                ds = datasets.load_dataset(self.name, split=self.split, revision=self.revision)
        except (FileNotFoundError, ValueError, KeyError, ConnectionError, OSError) as error:
            raise SourceError(
                f"cannot open Hugging Face dataset {self.name!r} (split {self.split!r}): {error}"
            ) from None
        column = self.image_column or next(
            (k for k, f in ds.features.items() if isinstance(f, datasets.Image)), None
        )
        if column not in ds.features:
            raise SourceError(
                f"{self.name}: no image column (columns: {', '.join(ds.features)}); pass --image-column"
            )
        self.image_column = column
        return ds.cast_column(column, datasets.Image(decode=False))

    def ids(self) -> list[str]:
        ds = self.dataset
        id_column = next((c for c in ID_COLUMNS if c in ds.column_names), None)
        if id_column is None:
            return [f"{i:09d}" for i in range(len(ds))]
        ids = [str(v) for v in ds[id_column]]
        if len(set(ids)) != len(ids):
            raise SourceError(
                f"{self.name}: column {id_column!r} has duplicate values, so it cannot name images"
            )
        return ids

    def read(self, index: int) -> bytes:
        return cell_bytes(self.dataset[index][self.image_column])

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "name": Path(self.name).name or self.name,
            "uri": self.name,
            "split": self.split,
            "revision": self.revision,
            "image_column": self.image_column,
        }
