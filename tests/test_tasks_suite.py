"""position, flip and similarity: oracle and adversarial scores, labels checked against the pixels,
determinism across workers, answer balance, counted skips, config validation, verifier robustness."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from puzzlegen.build import BuildOptions, build
from puzzlegen.build.recipe import OutputFormat, Recipe, TaskEntry
from puzzlegen.build.seeds import balanced_choice, rng
from puzzlegen.sources import decode
from puzzlegen.sources.base import Source
from puzzlegen.sources.synthetic import SyntheticSource, render
from puzzlegen.tasks import Context, Skip, augment, parse_task
from puzzlegen.tasks import imageops as ops
from puzzlegen.verify import oracle, score
from puzzlegen.verify.parse import render as write_answer
from tests.helpers import tree_digest

COUNT = 24
BOXED = OutputFormat(style="boxed", think="optional")
ENTRIES = {  # entry name: (task text, params, output format)
    "position2x2": ("position2x2", {}, OutputFormat()),
    "position3x3": ("position3x3", {}, BOXED),
    "flip2x2": ("flip2x2", {}, OutputFormat()),
    "flip3x3_axis": ("flip3x3", {"ask_axis": True}, BOXED),
    "similarity": ("similarity", {"per_image": 2}, OutputFormat()),
    "similarity_choice": ("similarity", {"form": "choice", "strength": "strong"}, BOXED),
}


def suite_recipe() -> Recipe:
    entries = tuple(TaskEntry(name, parse_task(t, p)[1], f) for name, (t, p, f) in ENTRIES.items())
    return Recipe("suite", "position, flip, similarity", entries)


def run_build(out: Path, workers: int) -> dict:
    options = BuildOptions(out=out, workers=workers, shard_size=8, test_fraction=0.2)
    return build(SyntheticSource(count=COUNT), suite_recipe(), options)


def load(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "data").glob("*.parquet")):
        for row in pq.read_table(f).to_pylist():
            row["split"] = f.name.split("-")[0]
            row["spec"], row["meta"] = json.loads(row["verifier"]), json.loads(row["meta"])
            rows.append(row)
    return rows


def pixels(image: dict, mode: str = "RGB") -> np.ndarray:
    """A Parquet Image cell ({bytes, path}) as a float array."""
    return np.asarray(Image.open(io.BytesIO(image["bytes"])).convert(mode), dtype=np.float32)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite") / "out"
    return out, run_build(out, workers=1)


@pytest.fixture(scope="module")
def records(built):
    rows = load(built[0])
    assert {r["meta"]["name"] for r in rows} == set(ENTRIES)
    return rows


@pytest.fixture(scope="module")
def sources():
    """Every synthetic source image as the build decodes it, keyed by id and by pixel hash."""
    src = SyntheticSource(count=COUNT)
    by_id = {sid: decode(src.read(i)) for i, sid in enumerate(src.ids())}
    by_sha = {hashlib.sha256(im.tobytes()).hexdigest(): sid for sid, im in by_id.items()}
    return by_id, by_sha


def of(records, name):
    return [r for r in records if r["meta"]["name"] == name]


# ---------------------------------------------------------------- scoring


def test_oracle_scores_one(records):
    for r in records:
        s = score(oracle(r["spec"]), r["spec"])
        assert (s.total, s.accuracy) == (1.0, 1.0), (r["id"], s)
        assert r["prompt"].count("<image>") == len(r["images"])


def test_aliases_score_one_and_adversarial_answers_zero(records):
    for r in records:
        spec, answer = r["spec"], r["answer"]
        fmt = spec["format"]

        def wrap(text, fmt=fmt):
            return write_answer(text, fmt["style"], fmt["think"])

        for alias in spec["aliases"].get(answer, [])[:6]:
            assert score(wrap(alias), spec).accuracy == 1.0, (r["id"], alias)
        wrong = [o for o in spec["options"] if o != answer]
        hedges = [
            *wrong,
            *(a for o in wrong for a in spec["aliases"].get(o, [])[:3]),
            f"{answer} or {wrong[0]}",
            f"{wrong[0]} or {answer}",
            ", ".join(spec["options"]),
            " ".join(spec["options"]),
            f"not {answer}",
            "",
            "   ",
        ]
        for text in hedges:
            assert score(wrap(text), spec).accuracy == 0.0, (r["id"], text)
        assert score(wrap(answer) + wrap(answer), spec).accuracy == 0.0  # two answer containers
        assert score(wrap(answer) + wrap(wrong[0]), spec).accuracy == 0.0


def test_pair_similarity_accepts_yes_no_as_the_prompt_asks(records):
    for r in of(records, "similarity"):
        assert r["prompt"].rstrip().splitlines()[-2].endswith("Do the two images come from the same photo?")
        yes = score(write_answer("yes", "answer_tag", "required"), r["spec"]).accuracy
        assert yes == (1.0 if r["answer"] == "positive" else 0.0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200), wrapped=st.booleans())
def test_any_string_scores_in_unit_interval(records, text, wrapped):
    for name in ENTRIES:
        spec = of(records, name)[0]["spec"]
        completion = f"<think>t</think><answer>{text}</answer>\\boxed{{{text}}}" if wrapped else text
        s = score(completion, spec)
        assert 0.0 <= s.total <= 1.0 and 0.0 <= s.accuracy <= 1.0 and 0.0 <= s.format <= 1.0


# ---------------------------------------------------------------- labels


def test_position_patch_lies_in_the_named_cell(records):
    for r in of(records, "position2x2") + of(records, "position3x3"):
        meta, names = r["meta"], r["spec"]["options"]
        full, patch = pixels(r["images"][0], "L"), pixels(r["images"][1], "L")
        left, top, right, bottom = meta["patch_box"]
        cl, ct, cr, cb = meta["cell_box"]
        assert names.index(r["answer"]) == meta["cell"]
        assert cl <= left < right <= cr and ct <= top < bottom <= cb
        assert patch.shape == (bottom - top, right - left)
        # the un-augmented patch is found where meta says, and nowhere in another cell
        found = cv2.matchTemplate(full, full[top:bottom, left:right].copy(), cv2.TM_CCOEFF_NORMED)
        y, x = np.unravel_index(int(found.argmax()), found.shape)
        assert max(abs(x - left), abs(y - top)) <= 1 or found.max() - found[top, left] < 1e-3, r["id"]
        # and the shown (augmented) patch correlates strongly at that place
        shown = cv2.matchTemplate(full, patch, cv2.TM_CCOEFF_NORMED)
        assert shown[top, left] > 0.8, (r["id"], float(shown[top, left]))


def test_position_prompt_names_exactly_the_applied_augmentations(records):
    seen = Counter()
    for r in of(records, "position2x2") + of(records, "position3x3"):
        done = augment.describe(r["meta"]["applied"])
        seen.update(done or ["nothing"])
        for phrase in augment.PHRASES.values():
            assert (phrase in r["prompt"]) == (phrase in done), (r["id"], phrase)
        assert ("with no other change" in r["prompt"]) == (not done)
    assert len(seen) >= 3  # the records show a mix, not one fixed recipe


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_position_augmentations_really_run(p):
    _, task = parse_task("position2x2", {"augment": ["hflip"], "augment_p": p})
    puzzle = task.make(render(3), Context(rng=rng("hflip", p), balanced=lambda k: 2))
    full, patch = puzzle.images
    crop = full.crop(puzzle.meta["patch_box"])
    expected = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if p else crop
    assert np.array_equal(np.asarray(patch), np.asarray(expected))
    assert ("mirrored left to right" in puzzle.prompt) == bool(p)
    assert [a["name"] for a in puzzle.meta["applied"]] == (["HorizontalFlip"] if p else [])


def _unflip(image: np.ndarray, box, axis: str) -> np.ndarray:
    out = image.copy()
    left, top, right, bottom = box
    tile = out[top:bottom, left:right]
    out[top:bottom, left:right] = tile[:, ::-1] if axis == "horizontal" else tile[::-1]
    return out


def _box_error(a: np.ndarray, b: np.ndarray, box) -> float:
    left, top, right, bottom = box
    return float(np.abs(a - b)[top:bottom, left:right].mean())


def test_flip_unflipping_the_named_tile_restores_the_image(records, sources):
    by_id, _ = sources
    for r in of(records, "flip2x2") + of(records, "flip3x3_axis"):
        meta, spec = r["meta"], r["spec"]
        rows, cols, axes, size = (meta["params"][k] for k in ("rows", "cols", "axes", "tile_size"))
        pick = spec["options"].index(r["answer"])
        tile, axis = (
            (pick // len(axes), axes[pick % len(axes)]) if meta["params"]["ask_axis"] else (pick, None)
        )
        axis = axis or meta["axis"]
        assert (tile, axis) == (meta["tile"], meta["axis"])
        source = by_id[json.loads(r["source"])["id"]].crop(meta["crop_box"])
        original = np.asarray(ops.resize(source, (cols * size, rows * size)), dtype=np.float32)
        shown = pixels(r["images"][0])
        boxes = [
            (c * size, rr * size, (c + 1) * size, (rr + 1) * size) for rr in range(rows) for c in range(cols)
        ]
        restored = _unflip(shown, boxes[tile], axis)
        inside = lambda im: _box_error(im, original, boxes[tile])  # noqa: E731,B023
        assert np.abs(restored - original).mean() < 1.5, r["id"]  # JPEG noise, resampling at the seams
        assert inside(restored) < 2.5 and inside(shown) > 4.0, (r["id"], inside(restored), inside(shown))
        for k, box in enumerate(boxes):  # unflipping any other tile leaves the flip in place
            if k != tile:
                assert inside(_unflip(shown, box, axis)) > 4.0


def test_similarity_views_come_from_the_images_meta_names(records, sources):
    by_id, by_sha = sources
    split_of = {}
    for r in records:
        split_of[json.loads(r["source"])["id"]] = r["split"]
    for r in of(records, "similarity") + of(records, "similarity_choice"):
        meta, source_id = r["meta"], json.loads(r["source"])["id"]
        assert by_sha[meta["pixels_sha256"]] == source_id
        views = meta["views"]
        same = [k for k, v in enumerate(views[1:]) if v["from"] == "source"]
        if meta["form"] == "pair":
            assert same == ([0] if r["answer"] == "positive" else [])
        else:
            assert same == [meta["answer_index"]] and r["answer"] == "ABCDEFGH"[meta["answer_index"]]
        for view, data in zip(views, r["images"], strict=True):
            owner = by_sha[view["pixels_sha256"]]
            assert (owner == source_id) == (view["from"] == "source")
            assert split_of.get(owner, r["split"]) == r["split"]  # negatives never cross splits
            # replaying the recorded seed on the named image reproduces the view
            pipeline = augment.simclr(meta["params"]["view_size"], meta["params"]["strength"])
            again, applied = augment.apply(pipeline, by_id[owner], view["seed"])
            assert applied == view["applied"]
            assert np.abs(np.asarray(again, dtype=np.float32) - pixels(data)).mean() < 3.0, r["id"]
        partners = [v["pixels_sha256"] for v in views if v["from"] == "partner"]
        assert len(set(partners)) == len(partners)


# ---------------------------------------------------------------- determinism, balance, skips


def test_workers_give_byte_identical_output(built, tmp_path):
    out1, _ = built
    out2 = tmp_path / "two"
    run_build(out2, workers=2)
    parts = ("data", "wds", "manifest.json")
    assert tree_digest(out1, *parts) == tree_digest(out2, *parts)


BALANCE = {  # small sizes keep 1000+ puzzles fast; balance does not depend on size
    "position2x2": ("position2x2", {"size": 224}),
    "position3x3": ("position3x3", {"size": 252}),
    "flip2x2": ("flip2x2", {"tile_size": 56}),
    "flip2x2_axis": ("flip2x2", {"tile_size": 56, "ask_axis": True}),
    "similarity": ("similarity", {"view_size": 56}),
    "similarity_choice": ("similarity", {"view_size": 56, "form": "choice"}),
}


@pytest.fixture(scope="module")
def small_images():
    images = []
    for i in range(40):
        im = render(i)
        images.append(im.resize((im.width * 256 // min(im.size), im.height * 256 // min(im.size))))
    return images


@pytest.mark.parametrize("name", list(BALANCE))
def test_answers_are_balanced(name, small_images):
    """Contexts made as build/shard.py makes them; 40 images x 28 variants, positions in build order."""
    task_text, params = BALANCE[name]
    _, task = parse_task(task_text, params)
    variants, answers, skips, options = 28, Counter(), Counter(), []
    for i, image in enumerate(small_images):
        for v in range(variants):
            puzzle_rng = rng(0, name, i, v)

            def partner(r=puzzle_rng, own=i):
                k = int(r.integers(len(small_images) - 1))
                return small_images[k + (k >= own)]

            balanced = lambda k, p=i * variants + v: balanced_choice(k, p, 0, name, "train")  # noqa: E731
            try:
                puzzle = task.make(image, Context(puzzle_rng, balanced, partner))
            except Skip as skip:
                skips[skip.reason] += 1
                continue
            answers[puzzle.answer] += 1
            options = puzzle.verifier["options"]
    total = sum(answers.values())
    assert total >= 1000, skips
    assert set(answers) == set(options)
    for option in options:
        assert abs(answers[option] / total - 1 / len(options)) < 0.02, (option, answers)


class _ListSource(Source):
    """Given images, PNG-encoded, for the skip tests."""

    kind = "list"

    def __init__(self, images: list[Image.Image]):
        self.blobs = []
        for im in images:
            buffer = io.BytesIO()
            im.save(buffer, format="PNG")
            self.blobs.append(buffer.getvalue())

    def ids(self) -> list[str]:
        return [f"img{i:03d}" for i in range(len(self.blobs))]

    def read(self, index: int) -> bytes:
        return self.blobs[index]

    def describe(self) -> dict:
        return {"kind": self.kind, "name": "list", "uri": "list:"}


def _skips(images: list[Image.Image], tasks: str, out: Path) -> dict[str, int]:
    recipe = Recipe(
        "skips", "", tuple(TaskEntry(n, parse_task(n)[1], OutputFormat()) for n in tasks.split(","))
    )
    options = BuildOptions(out=out, workers=1, shard_size=8, test_fraction=0.0)
    return build(_ListSource(images), recipe, options)["skipped"]


def test_skips_are_counted_with_their_reason(tmp_path):
    flat = Image.new("RGB", (400, 400), (120, 140, 160))
    small = render(1).resize((160, 120))
    skipped = _skips([render(0), render(2), flat, small], "position2x2,flip2x2,similarity", tmp_path / "a")
    assert skipped["position2x2:low_texture"] >= 1 and skipped["position2x2:too_small"] == 1
    assert skipped["flip2x2:flip_symmetric"] >= 1
    assert skipped["similarity:low_texture"] == 1


def test_near_duplicate_partners_are_never_negatives(tmp_path):
    photo = render(5)
    buffer = io.BytesIO()
    photo.resize((photo.width * 3 // 4, photo.height * 3 // 4)).save(buffer, format="JPEG", quality=60)
    copies = [photo, Image.open(buffer).convert("RGB"), photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    skipped = _skips(copies, "similarity", tmp_path / "b")
    assert skipped == {"similarity:near_duplicate_partner": 3}


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "text, params, message",
    [
        ("position4x4", {}, "rows and cols"),
        ("position2x2", {"augment": ["sepia"]}, "unknown augment"),
        ("position2x2", {"size": 56}, "raise size"),
        ("position2x2", {"crop_min": 0.9, "crop_max": 0.5}, "crop_min <= crop_max"),
        ("flip2x2", {"axes": ["diagonal"]}, "axes"),
        ("flip9x9", {}, "rows and cols"),
        ("similarity", {"form": "triplet"}, "form"),
        ("similarity", {"candidates": 1}, "candidates"),
        ("similarity", {"strength": "extreme"}, "strength"),
        ("similarity", {"per_image": 0}, "per_image"),
    ],
)
def test_bad_configs_say_how_to_fix_them(text, params, message):
    with pytest.raises(ValueError, match=message):
        parse_task(text, params)


def test_per_image_and_shorthand():
    assert parse_task("similarity", {"per_image": 2})[1].per_image() == 2
    assert parse_task("position3x3")[1].config.rows == 3
    assert parse_task("flip2x3")[1].config.cols == 3


def test_large_flip_grids_answer_by_number():
    _, task = parse_task("flip4x4")
    for i in range(8):
        try:
            puzzle = task.make(render(i), Context(rng("flip4x4", i), lambda k: 9))
        except Skip:
            continue
        spec = {**puzzle.verifier, "answer": puzzle.answer}
        assert puzzle.answer == "10" and "reading order" in puzzle.prompt
        assert score("<answer>tile 10</answer>", spec).accuracy == 1.0
        assert score("<answer>9</answer>", spec).accuracy == 0.0
        return
    pytest.fail("no flip4x4 puzzle from 8 synthetic images")
