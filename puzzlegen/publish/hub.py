"""Publish a built dataset on the Hugging Face Hub: shards, manifest, card, and a version tag."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .card import render

UPLOADED = ["data/*.parquet", "wds/*.tar", "manifest.json"]


class PushError(Exception):
    """A problem the user can fix; the message says how."""


@dataclass(frozen=True)
class Pushed:
    url: str
    commit: str
    tag: str


def default_tag(manifest: dict[str, Any]) -> str:
    """v{puzzlegen version}-{8 hex of the shard hashes}: the same content always gets the same tag."""
    digest = hashlib.sha256("".join(s["files"]["parquet"]["sha256"] for s in manifest["shards"]).encode())
    return f"v{manifest['puzzlegen']}-{digest.hexdigest()[:8]}"


def check_shards(out: Path, manifest: dict[str, Any]) -> None:
    """Refuse to publish a shard whose bytes differ from what the manifest promises."""
    for shard in manifest["shards"]:
        for info in shard["files"].values():
            path = out / info["path"]
            if not path.is_file():
                raise PushError(f"{path} is missing; rebuild with the same `puzzlegen build` command")
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
            if digest.hexdigest() != info["sha256"]:
                raise PushError(f"{path} does not match its sha256 in manifest.json; rebuild it")


def push(
    out: Path,
    repo_id: str,
    *,
    tag: str | None = None,
    private: bool = False,
    token: str | None = None,
    api=None,
) -> Pushed:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        raise PushError(f"{manifest_path} not found: push a folder made by `puzzlegen build`")
    manifest = json.loads(manifest_path.read_text())
    check_shards(out, manifest)
    api = api or HfApi(token=token)
    tag = tag or default_tag(manifest)
    message = (
        f"puzzlegen {manifest['puzzlegen']}: {manifest['recipe']['name']} from {manifest['source']['name']}"
    )
    try:
        repo = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        # upload_folder streams, splits big folders into several commits, and resumes when rerun
        api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=out,
            allow_patterns=UPLOADED,
            commit_message=message,
        )
        card = render(manifest, repo_id=repo_id).encode()
        commit = api.upload_file(
            path_or_fileobj=card,
            path_in_repo="README.md",
            repo_id=repo_id,
            repo_type="dataset",
            commit_message=f"{message} (card)",
        )
        api.create_tag(repo_id, tag=tag, tag_message=message, revision=commit.oid, repo_type="dataset")
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        hint = {
            401: "log in with `hf auth login` or pass --token / set HF_TOKEN",
            403: "your token cannot write to this repo",
            409: f"the tag {tag!r} exists already; pass another --tag",
        }.get(status, "")
        raise PushError(f"the Hub refused the push: {error}. {hint}".strip()) from None
    return Pushed(str(getattr(repo, "url", repo)), commit.oid, tag)
