"""Shard writers: Parquet in the Hub layout and WebDataset tars, both byte-stable and atomic."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ("id", "task", "images", "prompt", "answer", "verifier", "source", "meta")
FEATURES = {
    "id": {"dtype": "string", "_type": "Value"},
    "task": {"dtype": "string", "_type": "Value"},
    "images": {"feature": {"_type": "Image"}, "_type": "List"},
    **{c: {"dtype": "string", "_type": "Value"} for c in ("prompt", "answer", "verifier", "source", "meta")},
}
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema(
    [("id", pa.string()), ("task", pa.string()), ("images", pa.list_(IMAGE))]
    + [(c, pa.string()) for c in ("prompt", "answer", "verifier", "source", "meta")],
    # `datasets` reads the features from here, so `images` decodes to PIL images
    metadata={"huggingface": json.dumps({"info": {"features": FEATURES}}, sort_keys=True)},
)
ROW_GROUP = 64  # image rows are large: small row groups keep streaming readers' memory low


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block completes."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_info(path: Path, root: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "path": path.relative_to(root).as_posix(),
        "sha256": digest.hexdigest(),
        "bytes": path.stat().st_size,
    }


def write_parquet(records: list[dict[str, Any]], path: Path) -> None:
    rows = [{**r, "images": [{"bytes": b, "path": None} for b in r["images"]]} for r in records]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    with atomic(path) as tmp:
        pq.write_table(
            table, tmp, row_group_size=ROW_GROUP, compression="zstd", write_statistics=["id", "task"]
        )


def write_json(obj: Any, path: Path) -> None:
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o444, "puzzlegen", "puzzlegen"
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(records: list[dict[str, Any]], path: Path, extension: str) -> None:
    """{id}.json holds every column but the images; {id}.img0.EXT, {id}.img1.EXT ... hold the images.

    Written with the standard library's tarfile: `import webdataset` imports torch (seconds per worker,
    and gigabytes on GPU machines) only to do this. Members carry mtime 0, so no clock enters the bytes;
    the tests read the tars back with `webdataset.WebDataset`."""
    with atomic(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for r in records:
            text = json.dumps({k: r[k] for k in COLUMNS if k != "images"}, sort_keys=True)
            _tar_member(tar, f"{r['id']}.json", text.encode())
            for k, data in enumerate(r["images"]):
                _tar_member(tar, f"{r['id']}.img{k}.{extension}", data)


def encode_image(image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "png":
        image.save(buffer, format="PNG", compress_level=6)
    else:
        image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
