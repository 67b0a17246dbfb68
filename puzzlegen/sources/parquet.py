"""Parquet files with an image column: `struct<bytes, path>` (the Hub's Image layout) or plain binary.

Rows are read one row group at a time, and the last group read is kept: shards take consecutive rows."""

from __future__ import annotations

from pathlib import Path

from .base import Source, SourceError, cell_bytes
from .hf import ID_COLUMNS


class ParquetSource(Source):
    kind = "parquet"

    def __init__(self, path: str | Path, image_column: str | None = None):
        self.path = Path(path).expanduser().resolve()
        self.files = sorted(self.path.rglob("*.parquet")) if self.path.is_dir() else [self.path]
        if not self.files or not all(f.is_file() for f in self.files):
            raise SourceError(f"{path}: no .parquet files found")
        self.image_column = image_column
        self._rows: list[tuple[str, int, int, int]] | None = None  # id, file, row group, row in group
        self._cache: tuple[tuple[int, int], list] | None = None

    def __getstate__(self):
        return {**self.__dict__, "_cache": None}

    def _pick_column(self, schema) -> str:
        import pyarrow as pa

        if self.image_column:
            if self.image_column not in schema.names:
                raise SourceError(
                    f"{self.path}: no column {self.image_column!r} (columns: {', '.join(schema.names)})"
                )
            return self.image_column
        for field in schema:
            t = field.type
            if (
                pa.types.is_struct(t)
                and t.get_field_index("bytes") >= 0
                or pa.types.is_binary(t)
                or pa.types.is_large_binary(t)
            ):
                return field.name
        raise SourceError(f"{self.path}: no image column (struct<bytes,path> or binary); pass --image-column")

    def _list(self) -> list[tuple[str, int, int, int]]:
        if self._rows is None:
            import pyarrow.parquet as pq

            rows = []
            for number, file in enumerate(self.files):
                try:
                    reader = pq.ParquetFile(file)
                except Exception as error:  # pyarrow raises several types for a damaged footer
                    raise SourceError(f"{file}: unreadable Parquet ({error})") from None
                self.image_column = self._pick_column(reader.schema_arrow)
                id_column = next((c for c in ID_COLUMNS if c in reader.schema_arrow.names), None)
                ids = reader.read(columns=[id_column]).column(0).to_pylist() if id_column else None
                row = 0
                for group in range(reader.num_row_groups):
                    for k in range(reader.metadata.row_group(group).num_rows):
                        name = str(ids[row]) if ids else f"{row:09d}"
                        rows.append(
                            (f"{file.relative_to(self.path.parent).as_posix()}/{name}", number, group, k)
                        )
                        row += 1
            self._rows = rows
        return self._rows

    def ids(self) -> list[str]:
        return [r[0] for r in self._list()]

    def read(self, index: int) -> bytes:
        import pyarrow.parquet as pq

        _, number, group, k = self._list()[index]
        if self._cache is None or self._cache[0] != (number, group):
            table = pq.ParquetFile(self.files[number]).read_row_group(group, columns=[self.image_column])
            self._cache = ((number, group), table.column(0).to_pylist())
        return cell_bytes(self._cache[1][k])

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.path.stem,
            "uri": str(self.path),
            "image_column": self.image_column,
        }
