"""inpainting and correspondence: oracle and adversarial scores, labels checked against the pixels,
determinism across workers, answer balance, no position-only shortcut, counted skips, config validation,
verifier robustness."""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from puzzlegen.build import BuildOptions, build, from_tasks
from puzzlegen.build.seeds import balanced_choice, rng
from puzzlegen.sources import decode
from puzzlegen.sources.synthetic import SyntheticSource, render
from puzzlegen.tasks import Context, Skip, parse_task
from puzzlegen.tasks import imageops as ops
from puzzlegen.tasks.correspondence import apply
from puzzlegen.verify import oracle, score
from puzzlegen.verify.parse import render as write_answer
from tests.helpers import tree_digest

TASKS = ("inpainting", "correspondence")
COUNT = 12
SKIPS = {
    "inpainting": {"too_small", "low_texture", "ambiguous_options"},
    "correspondence": {"too_small", "low_texture", "few_candidates"},
}
SMALL = {  # quick settings for the thousand-puzzle statistics
    "inpainting": {"size": 112, "min_side": 64, "kinds": ["region", "shift", "zoom", "flip", "rotate"]},
    "correspondence": {"size": 112, "marker_radius": 5, "min_separation": 16},
}


def run_build(out: Path, workers: int) -> dict:
    options = BuildOptions(out=out, workers=workers, shard_size=4, test_fraction=0.25)
    return build(SyntheticSource(count=COUNT), from_tasks(",".join(TASKS)), options)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    out = tmp_path_factory.mktemp("geometry") / "w1"
    manifest = run_build(out, 1)
    rows = []
    for f in sorted((out / "data").glob("*.parquet")):
        for row in pq.read_table(f).to_pylist():
            row["spec"], row["meta"] = json.loads(row["verifier"]), json.loads(row["meta"])
            rows.append(row)
    return out, manifest, rows


def records(built, task: str) -> list[dict]:
    found = [r for r in built[2] if r["task"] == task]
    assert found, f"no {task} records"
    return found


def images(row: dict) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(io.BytesIO(b["bytes"])).convert("RGB"), np.float32) / 255 for b in row["images"]
    ]


def source_square(row: dict) -> Image.Image:
    """The upright crop the task started from, rebuilt from the synthetic source."""
    index = int(json.loads(row["source"])["id"].rsplit("-", 1)[1])
    image = decode(SyntheticSource(count=COUNT).read(index))
    return image.crop(row["meta"]["crop_box"])


def wrap(row: dict, text: str) -> str:
    fmt = row["spec"]["format"]
    return write_answer(text, fmt["style"], fmt["think"])


# ---- scoring --------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_oracle_scores_one_and_prompt_matches_images(built, task):
    for row in records(built, task):
        assert score(oracle(row["spec"]), row["spec"]).total == 1.0
        assert row["prompt"].count("<image>") == len(row["images"])
        assert row["spec"]["options"] == list("ABCD") and row["answer"] in "ABCD"
        assert "?" in row["prompt"].splitlines()[-2]  # the question comes last, then the format sentence


@pytest.mark.parametrize("task", TASKS)
def test_adversarial_answers_get_no_accuracy(built, task):
    row = records(built, task)[0]
    spec, right = row["spec"], row["answer"]
    wrong = next(o for o in "ABCD" if o != right)
    fmt = spec["format"]
    bad = [
        wrap(row, wrong),
        wrap(row, f"{right} or {wrong}"),
        wrap(row, "A, B, C, D"),
        wrap(row, ""),
        wrap(row, " "),
        wrap(row, right) + write_answer(right, fmt["style"], "none"),
        right,
        "",
    ]
    for text in bad:
        assert score(text, spec).accuracy == 0.0, text


@pytest.mark.parametrize("task", TASKS)
def test_spellings_a_person_would_use_are_accepted(built, task):
    row = records(built, task)[0]
    right = row["answer"]
    spellings = [right, right.lower(), f"({right})", f"Option {right}", f"option ({right}).", f"**{right}**"]
    if task == "correspondence":
        spellings += [f"point {right}", f"Candidate {right}"]
    for text in spellings:
        assert score(wrap(row, text), row["spec"]).accuracy == 1.0, text


@pytest.mark.parametrize("task", TASKS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60), tagged=st.booleans())
def test_any_string_scores_in_range(built, task, text, tagged):
    row = records(built, task)[0]
    result = score(wrap(row, text) if tagged else text, row["spec"])
    assert all(0.0 <= v <= 1.0 for v in (result.total, result.accuracy, result.format))


# ---- labels against the pixels --------------------------------------------------------------------


def test_inpainting_true_option_is_the_hidden_region(built):
    for row in records(built, "inpainting"):
        meta = row["meta"]
        x0, y0, x1, y1 = meta["hole"]
        size = meta["params"]["size"]
        base = np.asarray(ops.resize(source_square(row), size), dtype=np.float32) / 255
        masked, *options = images(row)
        assert masked.shape[:2] == (size, size) and all(o.shape[:2] == (y1 - y0, x1 - x0) for o in options)
        hidden = base[y0:y1, x0:x1]
        # the hole is flat fill with no trace of what it hides; the rest of image 1 is the picture
        assert np.abs(masked[y0:y1, x0:x1] - np.array(meta["fill"]) / 255).mean() < 0.01
        outside = np.ones((size, size), bool)
        outside[y0:y1, x0:x1] = False
        assert np.abs(masked - base)[outside].mean() < 0.02
        diffs = {
            o["letter"]: float(np.abs(img - hidden).mean())
            for o, img in zip(meta["options"], options, strict=True)
        }
        right = row["answer"]
        assert diffs[right] < 0.01, (meta["kind"], diffs)  # equal up to JPEG and resampling noise
        assert all(d > 0.03 for k, d in diffs.items() if k != right), (meta["kind"], diffs)


def test_correspondence_matrix_maps_query_onto_the_answer(built):
    for row in records(built, "correspondence"):
        meta = row["meta"]
        points = meta["candidates"]
        x, y = apply(meta["matrix"], *meta["query"])
        assert math.dist((x, y), points[row["answer"]]) < 1.0
        sep = meta["params"]["min_separation"]
        assert all(math.dist(points[a], points[b]) >= sep - 0.02 for a in points for b in points if a < b)


def test_correspondence_image_2_is_image_1_warped_by_the_matrix(built):
    """An independent warp (OpenCV, pixel-index convention) of the rebuilt image 1 by the recorded matrix
    reproduces image 2 away from the markers; the same matrix shifted by a few pixels does not."""
    for row in records(built, "correspondence"):
        meta = row["meta"]
        size, r = meta["params"]["size"], meta["params"]["marker_radius"]
        first = np.asarray(ops.resize(source_square(row), size))
        second = images(row)[1]
        to_index = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        from_index = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
        keep = np.ones((size, size), bool)
        yy, xx = np.mgrid[0:size, 0:size] + 0.5
        for px, py in meta["candidates"].values():
            keep &= np.hypot(xx - px, yy - py) > 4 * r + 8  # ring and label
        errors = []
        for shift in (0, 4):
            matrix = np.array([[1, 0, shift], [0, 1, 0], [0, 0, 1]]) @ np.array(meta["matrix"])
            warped = cv2.warpPerspective(
                first, to_index @ matrix @ from_index, (size, size), flags=cv2.INTER_LINEAR
            )
            errors.append(float(np.abs(warped.astype(np.float32) / 255 - second)[keep].mean()))
        assert errors[0] < 0.01 and errors[1] > 1.5 * errors[0], errors


# ---- determinism, skips --------------------------------------------------------------------------


def test_workers_give_byte_identical_output(built, tmp_path):
    out1, manifest, _ = built
    run_build(tmp_path / "w2", 2)
    parts = ("data", "wds", "manifest.json")
    assert tree_digest(out1, *parts) == tree_digest(tmp_path / "w2", *parts)
    assert sum(manifest["splits"][s]["records"] for s in manifest["splits"]) == len(built[2])


def test_manifest_counts_skips_by_known_reason(built):
    _, manifest, rows = built
    for key, n in manifest["skipped"].items():
        task, _, reason = key.partition(":")
        assert task in TASKS and reason in SKIPS[task] and n > 0, key
    counts = Counter(r["task"] for r in rows)
    for task in TASKS:
        skipped = sum(n for k, n in manifest["skipped"].items() if k.startswith(f"{task}:"))
        assert counts[task] + skipped == COUNT


@pytest.mark.parametrize("task", TASKS)
def test_skips_say_why(task):
    _, t = parse_task(task)
    with pytest.raises(Skip) as small:
        t.make(Image.new("RGB", (64, 64), "white"), Context(rng(0), lambda k: 0))
    assert small.value.reason == "too_small"
    with pytest.raises(Skip) as plain:
        t.make(Image.new("RGB", (400, 300), (90, 140, 200)), Context(rng(0), lambda k: 0))
    assert plain.value.reason == "low_texture"


def test_mean_fill_is_the_mean_of_what_stays_visible():
    _, t = parse_task("inpainting", {"fill": "mean"})
    p = t.make(render(3), Context(rng(1), lambda k: 0))
    x0, y0, x1, y1 = p.meta["hole"]
    masked = np.asarray(p.images[0], np.float64)
    visible = np.ones(masked.shape[:2], bool)
    visible[y0:y1, x0:x1] = False
    assert np.abs(masked[visible].mean(0) - p.meta["fill"]).max() <= 0.5
    assert (masked[y0:y1, x0:x1] == p.meta["fill"]).all() and "single-colour" in p.prompt


# ---- a thousand puzzles: balance, skips, no shortcut ---------------------------------------------


@pytest.fixture(scope="module")
def small_images() -> list[Image.Image]:
    found = []
    for i in range(50):
        image = render(i)
        side = min(image.size)
        found.append(image.resize((image.width * 160 // side, image.height * 160 // side)))
    return found


def many(task: str, small_images, n: int = 1100) -> tuple[list, Counter]:
    """make() called as build/shard.py calls it: a hashed generator per puzzle and a balanced option index
    by position in the split. Returns (source image, puzzle) pairs and the skips by reason."""
    _, t = parse_task(task, SMALL[task])
    made, skipped = [], Counter()
    for i in range(n):
        ctx = Context(rng(0, task, i), lambda k, i=i: balanced_choice(k, i, 0, task, "train"))
        image = small_images[i % len(small_images)]
        try:
            made.append((image, t.make(image, ctx)))
        except Skip as skip:
            skipped[skip.reason] += 1
    return made, skipped


@pytest.fixture(scope="module")
def thousand(small_images) -> dict:
    return {task: many(task, small_images) for task in TASKS}


@pytest.mark.parametrize("task", TASKS)
def test_answers_are_balanced(thousand, task):
    made, skipped = thousand[task]
    assert len(made) >= 1000 and set(skipped) <= SKIPS[task]
    shares = Counter(p.answer for _, p in made)
    assert all(abs(shares[letter] / len(made) - 0.25) <= 0.02 for letter in "ABCD"), shares


def test_inpainting_truth_is_not_the_option_most_like_the_others(thousand):
    """Spatial-SSRL's distractors all derive from the truth, which makes it the medoid of the options."""
    made, _ = thousand["inpainting"]
    hits = 0
    for _, p in made:
        thumbs = [ops.thumbnail(o) for o in p.images[1:]]
        medoid = int(np.argmin([sum(ops.distance(a, b) for b in thumbs) for a in thumbs]))
        hits += "ABCD"[medoid] == p.answer
    assert hits / len(made) < 0.31
    assert {p.meta["kind"] for _, p in made} == {"region", "shift", "zoom", "flip", "rotate"}


def test_inpainting_labels_hold_for_every_family(thousand):
    made, _ = thousand["inpainting"]
    for image, p in made:
        x0, y0, x1, y1 = p.meta["hole"]
        hidden = np.asarray(ops.resize(image.crop(p.meta["crop_box"]), 112), np.float32)[y0:y1, x0:x1] / 255
        diffs = {
            o["letter"]: float(np.abs(np.asarray(img, np.float32) / 255 - hidden).mean())
            for o, img in zip(p.meta["options"], p.images[1:], strict=True)
        }
        assert diffs[p.answer] < 0.01 and all(d > 0.02 for k, d in diffs.items() if k != p.answer), diffs


def test_correspondence_labels_hold_for_every_puzzle(thousand):
    made, _ = thousand["correspondence"]
    for _, p in made:
        assert math.dist(apply(p.meta["matrix"], *p.meta["query"]), p.meta["candidates"][p.answer]) < 1.0


def test_correspondence_positions_alone_do_not_give_the_answer(thousand):
    made, _ = thousand["correspondence"]
    rules = {
        "same place as the query": lambda pts, q: min(pts, key=lambda k: math.dist(pts[k], q)),
        "nearest the centre": lambda pts, q: min(pts, key=lambda k: math.dist(pts[k], (56, 56))),
        "middle of the group": lambda pts, q: min(
            pts, key=lambda k: sum(math.dist(pts[k], v) for v in pts.values())
        ),
    }
    for name, rule in rules.items():
        share = sum(rule(p.meta["candidates"], p.meta["query"]) == p.answer for _, p in made) / len(made)
        assert share < 0.31, (name, share)


# ---- configs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "params", "message"),
    [
        ("inpainting", {"mask_fraction": 0.9}, "mask_fraction"),
        ("inpainting", {"options": 7}, "options"),
        ("inpainting", {"kinds": ["flip", "swirl"]}, "kinds"),
        ("inpainting", {"kinds": ["flip"], "options": 3}, "2 or 4"),
        ("inpainting", {"fill": "black"}, "fill"),
        ("inpainting", {"shift_fraction": [0.3, 0.1]}, "shift_fraction"),
        ("correspondence", {"candidates": 9}, "candidates"),
        ("correspondence", {"scale": [0.9, 0.5]}, "scale"),
        ("correspondence", {"marker_radius": 9, "min_separation": 10}, "min_separation"),
        ("correspondence", {"min_separation": 200}, "too large"),
        ("correspondence", {"perspective": 0.5}, "perspective"),
    ],
)
def test_bad_configs_say_what_to_fix(task, params, message):
    with pytest.raises(ValueError, match=message):
        parse_task(task, params)
