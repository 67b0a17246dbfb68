"""`puzzlegen push` against a recording stand-in for the Hub API (this machine has no network)."""

import json
from types import SimpleNamespace

import pytest

from puzzlegen.publish.hub import PushError, default_tag, push

from .helpers import quick_build


class FakeHub:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        return SimpleNamespace(url=f"https://huggingface.co/datasets/{repo_id}")

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        return SimpleNamespace(oid="a" * 40)

    def upload_file(self, **kw):
        self.calls.append(("upload_file", kw))
        return SimpleNamespace(oid="b" * 40)

    def create_tag(self, repo_id, **kw):
        self.calls.append(("create_tag", repo_id, kw))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("push")
    return out, quick_build(out, source="synthetic:8")


def test_push_uploads_shards_card_and_tags_the_card_commit(dataset):
    out, manifest = dataset
    hub = FakeHub()
    pushed = push(out, "me/puzzles", api=hub)
    names = [c[0] for c in hub.calls]
    assert names == ["create_repo", "upload_folder", "upload_file", "create_tag"]
    folder = hub.calls[1][1]
    assert folder["repo_type"] == "dataset" and set(folder["allow_patterns"]) >= {
        "data/*.parquet",
        "wds/*.tar",
    }
    card = hub.calls[2][1]["path_or_fileobj"].decode()
    assert "me/puzzles" in card and card.startswith("---\n") and "configs:" in card
    assert hub.calls[3][2]["revision"] == "b" * 40
    assert pushed.tag == default_tag(manifest) == hub.calls[3][2]["tag"]
    # the local card is left as the build wrote it: the build's bytes stay reproducible
    assert "me/puzzles" not in (out / "README.md").read_text()


def test_push_refuses_a_corrupted_shard(dataset, tmp_path):
    out, manifest = dataset
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = copy / manifest["shards"][0]["files"]["parquet"]["path"]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    with pytest.raises(PushError, match="sha256"):
        push(copy, "me/puzzles", api=FakeHub())
    with pytest.raises(PushError, match="manifest.json not found"):
        push(tmp_path / "empty", "me/puzzles", api=FakeHub())


def test_card_front_matter_points_the_hub_at_the_parquet(dataset):
    out, manifest = dataset
    head = (out / "README.md").read_text().split("---")[1]
    configs = json.loads(
        next(line for line in head.splitlines() if line.startswith("configs:"))[len("configs: ") :]
    )
    assert configs[0]["data_files"] == [
        {"split": s, "path": f"data/{s}-*.parquet"} for s in sorted(manifest["splits"])
    ]


def test_card_usage_snippet_is_valid_python(dataset):
    out, _ = dataset
    snippet = (out / "README.md").read_text().split("```python\n")[1].split("```")[0]
    compile(snippet, "card", "exec")
    assert 'load_dataset("parquet", data_dir="data"' in snippet
