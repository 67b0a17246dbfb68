"""Reading shards for training: both formats, the seeded stream, its resumable position, and clear errors."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from puzzlegen.train.data import (
    DataError,
    PuzzleStream,
    iter_puzzles,
    iter_specs,
    open_shards,
    read_manifest,
    task_mix,
)
from tests.train_fixtures import mixed_shards  # noqa: F401 - a fixture


def test_parquet_and_webdataset_hold_the_same_puzzles(mixed_shards):  # noqa: F811
    parquet = {p.id: p for p in iter_puzzles(open_shards(str(mixed_shards), "train", "parquet"))}
    tars = {p.id: p for p in iter_puzzles(open_shards(str(mixed_shards), "train", "wds"))}
    assert parquet.keys() == tars.keys() and len(parquet) > 10
    assert all(parquet[k] == tars[k] for k in parquet)
    one = next(iter(parquet.values()))
    assert len(one.pil_images()) == one.prompt.count("<image>") > 0
    assert {p.task for p in parquet.values()} == {"rotation", "jigsaw2x2"}  # the recipe entry names


def test_task_mix_defaults_to_the_recipe_and_parses_weights(mixed_shards):  # noqa: F811
    shards = open_shards(str(mixed_shards), "train")
    present = shards.tasks()
    assert task_mix(None, present, read_manifest(str(mixed_shards))) == {"rotation": 1.0, "jigsaw2x2": 1.0}
    assert task_mix("rotation=3,jigsaw2x2=1", present, None) == {"rotation": 3.0, "jigsaw2x2": 1.0}
    assert task_mix("rotation", present, None) == {"rotation": 1.0}
    with pytest.raises(DataError, match="absent from the data"):
        task_mix("position=1", present, None)
    with pytest.raises(DataError, match="NAME=WEIGHT"):
        task_mix("rotation=lots", present, None)


def _draw(stream, n):
    return [stream.next().id for _ in range(n)]


def test_stream_is_seeded_and_follows_the_mix(mixed_shards):  # noqa: F811
    shards = open_shards(str(mixed_shards), "train")
    a = _draw(PuzzleStream(shards, {"rotation": 1, "jigsaw2x2": 1}, seed=0, window=2), 60)
    b = _draw(PuzzleStream(shards, {"rotation": 1, "jigsaw2x2": 1}, seed=0, window=2), 60)
    c = _draw(PuzzleStream(shards, {"rotation": 1, "jigsaw2x2": 1}, seed=1, window=2), 60)
    assert a == b and a != c
    only = _draw(PuzzleStream(shards, {"rotation": 1}, seed=0), 30)
    assert all(i.startswith("rotation-") for i in only)
    tasks = Counter(
        i.split("-")[0] for i in _draw(PuzzleStream(shards, {"rotation": 3, "jigsaw2x2": 1}, 0), 400)
    )
    assert 0.65 < tasks["rotation"] / 400 < 0.85


def test_each_epoch_visits_every_puzzle_once(mixed_shards):  # noqa: F811
    shards = open_shards(str(mixed_shards), "train")
    n = shards.tasks()["rotation"]
    stream = PuzzleStream(shards, {"rotation": 1}, seed=3, window=1)
    first, second = _draw(stream, n), _draw(stream, n)
    assert sorted(first) == sorted(second) and len(set(first)) == n
    assert first != second  # a new order each epoch


def test_resumed_stream_continues_exactly(mixed_shards):  # noqa: F811
    shards = open_shards(str(mixed_shards), "train")
    mix = {"rotation": 1, "jigsaw2x2": 2}
    straight = _draw(PuzzleStream(shards, mix, seed=5, window=2), 70)
    head = PuzzleStream(shards, mix, seed=5, window=2)
    first = _draw(head, 33)
    state = json.loads(json.dumps(head.state()))  # it goes through state.json
    tail = PuzzleStream(open_shards(str(mixed_shards), "train", "wds"), mix, seed=5, window=2)
    tail.load_state(state)
    assert first + _draw(tail, 37) == straight


def test_ranks_take_disjoint_slices_of_one_stream(mixed_shards):  # noqa: F811
    shards = open_shards(str(mixed_shards), "train")
    whole = _draw(PuzzleStream(shards, {"rotation": 1, "jigsaw2x2": 1}, seed=0), 40)
    rank0 = _draw(PuzzleStream(shards, {"rotation": 1, "jigsaw2x2": 1}, seed=0, rank=0, world=2), 20)
    rank1 = _draw(PuzzleStream(shards, {"rotation": 1, "jigsaw2x2": 1}, seed=0, rank=1, world=2), 20)
    assert rank0 == whole[0::2] and rank1 == whole[1::2]


def test_clear_errors_for_missing_empty_and_foreign_data(tmp_path, mixed_shards):  # noqa: F811
    with pytest.raises(DataError, match="no such folder"):
        open_shards(str(tmp_path / "nowhere"), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train shards"):
        open_shards(str(tmp_path / "empty"), "train")
    with pytest.raises(DataError, match="no validation shards"):
        open_shards(str(mixed_shards), "validation")
    foreign = tmp_path / "foreign" / "data"
    foreign.mkdir(parents=True)
    pq.write_table(pa.table({"image": [b"x"], "label": [1]}), foreign / "train-00000-of-00001.parquet")
    with pytest.raises(DataError, match="not a puzzlegen shard: no column"):
        open_shards(str(foreign.parent), "train").units  # noqa: B018 - indexing reads the schema
    hollow = tmp_path / "hollow" / "data"
    hollow.mkdir(parents=True)
    rows = pq.read_table(next((mixed_shards / "data").glob("train-*.parquet"))).slice(0, 0)
    pq.write_table(rows, hollow / "train-00000-of-00001.parquet")
    with pytest.raises(DataError, match="hold no puzzles"):
        open_shards(str(hollow.parent), "train").units  # noqa: B018
    with pytest.raises(DataError, match="pin a revision"):
        open_shards("hf:someone/puzzles", "train")


class LocalHub:
    """HfFileSystem over a local build folder: `datasets/me/puzzles@v1/PATH` is `root/PATH`."""

    prefix = "datasets/me/puzzles@v1/"

    def __init__(self, root):
        self.root = root
        self.opened: list[str] = []

    def _local(self, path: str):
        if not path.startswith(self.prefix):
            raise FileNotFoundError(path)  # another repo or revision
        return self.root / path.removeprefix(self.prefix)

    def glob(self, pattern: str) -> list[str]:
        self._local(pattern)
        return [
            self.prefix + str(p.relative_to(self.root)) for p in self.root.glob(pattern[len(self.prefix) :])
        ]

    def open(self, path: str, mode: str):
        self.opened.append(path)
        return open(self._local(path), mode)


def test_a_hub_dataset_at_a_pinned_revision_streams_the_same_puzzles(mixed_shards, monkeypatch):  # noqa: F811
    import huggingface_hub

    hub = LocalHub(mixed_shards)
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", lambda: hub)
    local = [p.id for p in iter_puzzles(open_shards(str(mixed_shards), "train"))]
    pinned = [p.id for p in iter_puzzles(open_shards("hf:me/puzzles@v1", "train"))]
    by_option = [p.id for p in iter_puzzles(open_shards("hf:me/puzzles", "train", revision="v1"))]
    assert pinned == by_option == local and len(local) > 10
    assert hub.opened and all(p.startswith("datasets/me/puzzles@v1/data/train-") for p in hub.opened)
    assert read_manifest("hf:me/puzzles@v1") == read_manifest(str(mixed_shards)) is not None
    with pytest.raises(DataError, match="cannot list the dataset at revision v2"):
        open_shards("hf:me/puzzles@v2", "train")
    with pytest.raises(DataError, match="no data/validation-"):
        open_shards("hf:me/puzzles@v1", "validation")


@pytest.mark.parametrize("data_format", ["parquet", "wds"])
def test_verifier_specs_read_without_images_match_the_puzzles(mixed_shards, data_format):  # noqa: F811
    shards = open_shards(str(mixed_shards), "train", data_format)
    specs = list(iter_specs(shards))
    assert specs == [(p.id, p.task, p.verifier) for p in iter_puzzles(shards)] and len(specs) > 10
