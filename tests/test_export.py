"""Exports for verl, EasyR1 and TRL: each layout loads, and each trainer's adapter scores the oracle 1."""

import datasets
import pytest
from PIL import Image

from puzzlegen.publish.export import export
from puzzlegen.verify import easyr1_compute_score, oracle, trl_reward, verl_compute_score

from .helpers import quick_build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    quick_build(out, tasks="rotation,jigsaw2x2", source="synthetic:6", test_fraction=0)
    return out


def load(folder):
    return datasets.load_dataset("parquet", data_files=str(folder / "*.parquet"), split="train")


def test_verl_layout(built, tmp_path):
    export(built, "verl", tmp_path)
    ds = load(tmp_path)
    row = ds[0]
    assert row["prompt"][0]["role"] == "user" and isinstance(row["images"][0], Image.Image)
    spec = row["extra_info"]["verifier"]
    result = verl_compute_score(
        row["data_source"], oracle(spec), row["reward_model"]["ground_truth"], row["extra_info"]
    )
    assert result["score"] == 1.0


def test_easyr1_layout(built, tmp_path):
    export(built, "easyr1", tmp_path)
    ds = load(tmp_path)
    assert all(r["problem"].count("<image>") == len(r["images"]) for r in ds)
    inputs = [{"response": oracle(r["answer"]), "ground_truth": r["answer"]} for r in ds]
    assert {s["overall"] for s in easyr1_compute_score(inputs)} == {1.0}


def test_trl_layout(built, tmp_path):
    export(built, "trl", tmp_path)
    ds = load(tmp_path)
    for row in ds:
        parts = row["prompt"][0]["content"]
        assert sum(p["type"] == "image" for p in parts) == len(row["images"])
    assert set(trl_reward([oracle(v) for v in ds["verifier"]], verifier=ds["verifier"])) == {1.0}


def test_unknown_format_and_empty_folder(built, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        export(built, "nemo", tmp_path)
    with pytest.raises(ValueError, match="no Parquet"):
        export(tmp_path, "verl", tmp_path / "x")
