"""Every corpus kind, on small data the tests make themselves; bad inputs are counted skips."""

import io
import json
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from puzzlegen.sources import BadImage, SourceError, decode, open_source
from puzzlegen.sources.synthetic import render

from .helpers import quick_build, read_records


def jpeg(index: int, size=(200, 160)) -> bytes:
    buffer = io.BytesIO()
    render(index).resize(size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pics"
    (root / "nested").mkdir(parents=True)
    for i in range(5):
        (root / ("nested" if i % 2 else "") / f"img{i}.jpg").write_bytes(jpeg(i))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "tiny.png").write_bytes(_png(Image.new("RGB", (20, 20), "red")))
    (root / "notes.txt").write_text("not an image")
    return root


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_exif_orientation_is_applied_before_anything_else():
    shown = Image.new("RGB", (100, 200), "blue")
    shown.paste((255, 0, 0), (0, 0, 100, 100))  # red on top when displayed upright
    raw = shown.transpose(Image.Transpose.ROTATE_90)  # stored sideways, EXIF says "rotate 90 cw to show"
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    raw.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    image = decode(buffer.getvalue())
    assert image.size == (100, 200)
    r, g, b = image.getpixel((50, 20))
    assert r > 200 and b < 60


@pytest.mark.parametrize(
    "mode", ["16-bit grey PNG", "float TIFF", "CMYK JPEG", "palette PNG", "grey+alpha PNG", "animated GIF"]
)
def test_every_image_mode_decodes_to_the_picture_it_holds(mode):
    """Pillow's own conversion turns a 16-bit grey PNG white and a [0, 1] float TIFF black."""
    import numpy as np

    picture = render(3).resize((200, 150))
    grey = np.asarray(picture.convert("L"), dtype=np.float64)
    stored = {
        "16-bit grey PNG": (Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "float TIFF": (Image.fromarray((grey / 255).astype(np.float32)), "TIFF"),
        "CMYK JPEG": (picture.convert("CMYK"), "JPEG"),
        "palette PNG": (picture.convert("P"), "PNG"),
        "grey+alpha PNG": (picture.convert("LA"), "PNG"),
        "animated GIF": (picture, "GIF"),
    }[mode]
    buffer = io.BytesIO()
    stored[0].save(
        buffer,
        stored[1],
        **({"save_all": True, "append_images": [picture.rotate(90)]} if "GIF" in mode else {}),
    )
    image = decode(buffer.getvalue())
    assert image.mode == "RGB" and image.size == (200, 150)
    decoded = np.asarray(image.convert("L"), dtype=np.float64)
    assert 30 < decoded.mean() < 225  # neither washed out nor black
    assert np.corrcoef(decoded.ravel(), grey.ravel())[0, 1] > 0.9


def test_decode_rejects_garbage_with_a_reason():
    for data in (b"", b"garbage", jpeg(0)[:200]):
        with pytest.raises(BadImage) as caught:
            decode(data)
        assert caught.value.reason == "decode_error"


def test_folder_is_recursive_sorted_and_counts_bad_inputs(folder, tmp_path):
    source = open_source(str(folder))
    assert source.kind == "folder"
    assert source.ids() == [
        "broken.jpg",
        "img0.jpg",
        "img2.jpg",
        "img4.jpg",
        "nested/img1.jpg",
        "nested/img3.jpg",
        "tiny.png",
    ]
    manifest = quick_build(tmp_path / "out", source=str(folder), tasks="rotation", test_fraction=0)
    assert manifest["skipped"] == {"decode_error": 1, "rotation:too_small": 1}
    assert manifest["splits"]["train"]["counts"] == {"rotation": 5}


def test_coco_layout_and_a_clear_message_when_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("PUZZLEGEN_COCO_ROOT", raising=False)
    with pytest.raises(SourceError, match="PUZZLEGEN_COCO_ROOT"):
        open_source("coco")
    with pytest.raises(SourceError, match="train2017"):
        open_source("coco", root=str(tmp_path / "nowhere"))
    (tmp_path / "coco" / "train2017").mkdir(parents=True)
    (tmp_path / "coco" / "val2017").mkdir()
    for i in range(3):
        (tmp_path / "coco" / "val2017" / f"{i:012d}.jpg").write_bytes(jpeg(i))
    monkeypatch.setenv("PUZZLEGEN_COCO_ROOT", str(tmp_path / "coco"))
    source = open_source("coco", subset="val2017")
    assert source.ids() == [f"{i:012d}.jpg" for i in range(3)]
    assert source.describe()["name"] == "coco-val2017"
    assert open_source(str(tmp_path / "coco"), subset="val2017").kind == "coco"


def test_hf_dataset_saved_to_disk(tmp_path):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": jpeg(i), "path": None} for i in range(4)], "label": list(range(4))},
        features=features,
    )
    ds.save_to_disk(tmp_path / "hfds")
    source = open_source(f"hf:{tmp_path / 'hfds'}")
    assert source.ids() == [f"{i:09d}" for i in range(4)]
    assert decode(source.read(2)).size == (200, 160)
    assert open_source(str(tmp_path / "hfds")).kind == "hf"
    manifest = quick_build(
        tmp_path / "out", source=f"hf:{tmp_path / 'hfds'}", tasks="rotation", test_fraction=0
    )
    assert manifest["records"] == 4


def test_webdataset_source_reads_members_by_offset(tmp_path):
    import webdataset as wds

    path = tmp_path / "shard-000.tar"
    with wds.TarWriter(str(path)) as writer:
        for i in range(4):
            writer.write({"__key__": f"sample{i}", "jpg": jpeg(i), "json": {"i": i}})
    source = open_source(str(path))
    assert source.kind == "webdataset"
    assert source.ids() == [f"shard-000/sample{i}" for i in range(4)]
    assert source.read(3) == jpeg(3)
    with tarfile.open(path) as t:
        assert len(t.getmembers()) == 8


def test_parquet_source_with_hub_image_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "image_id": [f"x{i}" for i in range(5)],
            "image": pa.array([{"bytes": jpeg(i), "path": None} for i in range(5)], image),
        }
    )
    pq.write_table(table, tmp_path / "part.parquet", row_group_size=2)
    source = open_source(f"parquet:{tmp_path / 'part.parquet'}")
    assert source.ids() == [f"part.parquet/x{i}" for i in range(5)]
    assert [source.read(i) for i in (4, 0, 1)] == [jpeg(4), jpeg(0), jpeg(1)]


def test_copies_of_an_image_feed_one_split_and_one_shard(tmp_path):
    """Byte-identical copies under other names are dropped before planning, wherever they would land: the
    same bytes seed the same puzzles, so a copy in the test split would leak its answers."""
    root = tmp_path / "dups"
    root.mkdir()
    names = [f"copy{k}.jpg" for k in range(8)]
    for name in names:
        (root / name).write_bytes(jpeg(1))
    for k in range(4):
        (root / f"other{k}.jpg").write_bytes(jpeg(10 + k))
    manifest = quick_build(
        tmp_path / "out", source=str(root), tasks="rotation", test_fraction=0.5, shard_size=2
    )
    assert manifest["skipped"] == {"duplicate": 7}
    assert manifest["source"]["images"] == 12
    sources = [json.loads(r["source"]) for r in read_records(tmp_path / "out")]
    assert sorted(s["id"] for s in sources) == [
        "copy0.jpg",
        "other0.jpg",
        "other1.jpg",
        "other2.jpg",
        "other3.jpg",
    ]
    assert len({s["sha256"] for s in sources}) == 5
    # without the scan, these 8 names would have spread over both splits and several shards
    from puzzlegen.build.plan import split_of

    assert {split_of(n, 0.5) for n in names} == {"train", "test"}


def test_a_changed_image_is_a_different_build_and_a_skip_mid_build(tmp_path):
    from puzzlegen.build import BuildError
    from puzzlegen.build.plan import ShardPlan
    from puzzlegen.build.recipe import from_tasks
    from puzzlegen.build.shard import BuildSpec, build_records

    root = tmp_path / "images"
    root.mkdir()
    for k in range(3):
        (root / f"{k}.jpg").write_bytes(jpeg(k))
    quick_build(tmp_path / "out", source=str(root), tasks="rotation")
    (root / "1.jpg").write_bytes(jpeg(7))  # same names, other content: resuming would mix two corpora
    with pytest.raises(BuildError, match="different build"):
        quick_build(tmp_path / "out", source=str(root), tasks="rotation")
    # the bytes a worker reads differ from the bytes the plan was made from: skipped and counted
    source = open_source(str(root))
    spec = BuildSpec(source, from_tasks("rotation"), 0, "jpeg", tmp_path, {"train": [0, 1, 2]})
    shard = ShardPlan("train", 0, 1, 0, ((0, "0.jpg", None), (1, "1.jpg", "0" * 64)))
    part = build_records(spec, shard)
    assert part.counts == {"rotation": 1} and part.skipped == {"changed_during_build": 1}


@pytest.mark.parametrize(
    "text", ["folder:/no/such/dir", "/no/such/path", "synthetic:abc", "hf:", "wds:/nope.tar"]
)
def test_bad_locations_raise_source_errors(text):
    with pytest.raises(SourceError):
        open_source(text)


def test_synthetic_images_are_distinct_and_reproducible():
    a, b = render(3), render(4)
    assert a.tobytes() == render(3).tobytes()
    assert a.tobytes() != b.tobytes()


def test_large_jpegs_decode_in_draft_mode_but_report_their_size():
    big = render(0).resize((2400, 2200))
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    image = decode(buffer.getvalue())
    assert min(image.size) >= 1024 and image.size[0] < 2400  # reduced by DCT scaling
    assert image.info["original_size"] == (2400, 2200)


def test_near_copies_are_dropped_on_request(tmp_path):
    from PIL import ImageOps

    root = tmp_path / "near"
    root.mkdir()
    original = render(1)
    original.save(root / "a.jpg", quality=90)
    smaller = original.resize((original.width * 17 // 20, original.height * 17 // 20))
    smaller.save(root / "b.jpg", quality=70)  # resized and recompressed: other bytes, same picture
    ImageOps.mirror(original).save(root / "c.jpg", quality=90)  # a different puzzle source: kept
    render(2).save(root / "d.jpg", quality=90)
    Image.new("RGB", (200, 160), (40, 90, 200)).save(root / "e.png")  # flat: its hash says nothing
    Image.new("RGB", (200, 160), (41, 90, 200)).save(root / "f.png")
    near = quick_build(
        tmp_path / "near-out", source=str(root), tasks="rotation", test_fraction=0, dedupe="near"
    )
    assert near["skipped"].get("near_duplicate") == 1 and "duplicate" not in near["skipped"]
    kept = {json.loads(r["source"])["id"] for r in read_records(tmp_path / "near-out")}
    assert "b.jpg" not in kept and {"a.jpg", "c.jpg", "d.jpg"} <= kept
    exact = quick_build(tmp_path / "exact-out", source=str(root), tasks="rotation", test_fraction=0)
    assert "near_duplicate" not in exact["skipped"] and "b.jpg" in {
        json.loads(r["source"])["id"] for r in read_records(tmp_path / "exact-out")
    }


def test_the_near_index_finds_every_hash_within_its_bit_budget():
    import random

    from puzzlegen.build.dedupe import NEAR_BITS, NearIndex

    rng = random.Random(0)
    index = NearIndex()
    kept = [rng.getrandbits(64) for _ in range(300)]
    for value in kept:
        index.add(value)
    for value in kept[:100]:
        flips = rng.sample(range(64), rng.randint(0, NEAR_BITS))
        assert index.near(value ^ sum(1 << b for b in flips))
    far = [
        v
        for v in (rng.getrandbits(64) for _ in range(300))
        if min((v ^ k).bit_count() for k in kept) > NEAR_BITS
    ]
    assert len(far) > 250 and not any(index.near(v) for v in far)


def test_excluded_corpora_and_their_copies_stay_out(tmp_path):
    from puzzlegen.build import BuildError, BuildOptions, build, from_tasks

    corpus, bench = tmp_path / "corpus", tmp_path / "bench"
    corpus.mkdir()
    bench.mkdir()
    for i in range(6):
        render(i).save(corpus / f"{i}.jpg", quality=90)
    (bench / "same.jpg").write_bytes((corpus / "2.jpg").read_bytes())
    small = render(4).resize((render(4).width // 2, render(4).height // 2))
    small.save(bench / "small.jpg", quality=70)  # a benchmark's resized copy of 4.jpg

    def run(out, dedupe, *excluded):
        options = BuildOptions(out=tmp_path / out, workers=1, test_fraction=0, dedupe=dedupe)
        manifest = build(open_source(str(corpus)), from_tasks("rotation"), options, exclude=excluded)
        return manifest, {json.loads(r["source"])["id"] for r in read_records(tmp_path / out)}

    manifest, kept = run("exact", "exact", open_source(str(bench)))
    assert manifest["skipped"] == {"excluded": 1} and kept == {"0.jpg", "1.jpg", "3.jpg", "4.jpg", "5.jpg"}
    assert manifest["exclude"] == [{"kind": "folder", "name": "bench"}]
    assert (
        "Images of bench (folder) and their copies were kept out."
        in (tmp_path / "exact" / "README.md").read_text()
    )
    manifest, kept = run("near", "near", open_source(str(bench)))
    assert manifest["skipped"] == {"excluded": 1, "near_excluded": 1} and "4.jpg" not in kept
    with pytest.raises(BuildError, match="different build"):
        run("near", "near")  # the same folder without the exclusion is another build
    # a corpus distinct by construction is still read when something is excluded
    options = BuildOptions(out=tmp_path / "synthetic", workers=1, test_fraction=0)
    manifest = build(
        open_source("synthetic:8"), from_tasks("rotation"), options, exclude=[open_source("synthetic:3")]
    )
    assert manifest["skipped"] == {"excluded": 3} and manifest["records"] == 5


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", None]), max_size=30),
    st.lists(st.sampled_from(["b", "x"]), max_size=3),
)
def test_unique_keeps_each_first_image_and_accounts_for_every_other(shas, banned):
    from puzzlegen.build.dedupe import Known, unique

    ids = [f"img{i}" for i in range(len(shas))]
    excluded = Known()
    excluded.update(banned, None)
    kept, dropped = unique(ids, shas, None, excluded)
    assert len(kept) + dropped.total() == len(shas)
    kept_shas = [sha for _, _, sha in kept]
    assert all(sha is None or sha not in banned for sha in kept_shas)
    real = [sha for sha in kept_shas if sha is not None]
    assert len(real) == len(set(real))  # no sha twice
    firsts = {sha: shas.index(sha) for sha in set(shas) - {None} - set(banned)}
    assert sorted(i for i, _, sha in kept if sha is not None) == sorted(firsts.values())  # the first of each
    assert dropped["excluded"] == sum(sha in banned for sha in shas)
