"""Rotation and jigsaw beyond the defaults: other angles, single form, composite layout, jitter, skips."""

import numpy as np
import pytest
from PIL import Image

from puzzlegen.build.seeds import balanced_choice, rng
from puzzlegen.sources.synthetic import render
from puzzlegen.tasks import Context, Skip, parse_task
from puzzlegen.verify import oracle, score


def make(name, params=None, image=None, k=0):
    _, task = parse_task(name, params)
    ctx = Context(rng(0, name, k), lambda n: balanced_choice(n, k, 0, name))
    return task.make(image if image is not None else render(k), ctx)


def test_off_quarter_angles_leave_no_black_corners():
    for k in range(6):
        puzzle = make("rotation", {"angles": [0, 30, 60]}, k=k)
        assert [im.size for im in puzzle.images] == [(336, 336), (336, 336)]
        for im in puzzle.images:
            corners = np.asarray(im.convert("L"))[[0, 0, -1, -1], [0, -1, 0, -1]]
            assert corners.min() > 20, "a corner is black: the rotation shows"


def test_single_form_asks_for_the_clockwise_turn_back():
    puzzle = make("rotation", {"form": "single", "angles": [0, 180]})
    assert len(puzzle.images) == 1 and puzzle.prompt.count("<image>") == 1 and "clockwise" in puzzle.prompt
    assert puzzle.answer in ("0", "180")


def test_symmetric_and_blank_images_are_skipped():
    blank = Image.new("RGB", (300, 300), (120, 130, 140))
    with pytest.raises(Skip, match="low_texture"):
        make("rotation", image=blank)
    y, x = np.indices((296, 296)) - 147.5
    rings = (np.hypot(x, y) // 20 % 2 * 200 + 20).astype(np.uint8)  # a target: the same at every turn
    symmetric = Image.fromarray(np.stack([rings] * 3, -1))
    with pytest.raises(Skip, match="rotation_symmetric"):
        make("rotation", image=symmetric)
    with pytest.raises(Skip, match="low_texture"):
        make("jigsaw2x2", image=blank)


def test_composite_layout_with_gaps():
    puzzle = make("jigsaw2x3", {"layout": "composite", "gap": 8, "tile_size": 56})
    assert len(puzzle.images) == 1 and puzzle.images[0].size == (3 * 56 + 2 * 8, 2 * 56 + 8)
    assert puzzle.verifier["n"] == 6 and len(puzzle.answer.split(",")) == 6


def test_jitter_cuts_tiles_at_recorded_random_offsets():
    plain, jittered = make("jigsaw3x3"), make("jigsaw3x3", {"jitter": 6})
    assert {im.size for im in jittered.images} == {(112, 112)}
    assert [im.tobytes() for im in plain.images] != [im.tobytes() for im in jittered.images]


def test_uniform_tiles_form_classes_and_any_order_within_them_scores():
    image = Image.new("RGB", (300, 300), (90, 140, 220))  # a clear sky on top ...
    image.paste(
        Image.fromarray((np.random.default_rng(0).random((150, 300, 3)) * 255).astype(np.uint8)), (0, 150)
    )
    puzzle = make("jigsaw2x2", image=image)
    classes = puzzle.verifier["classes"]
    assert len(classes) == 1 and len(classes[0]) == 2  # the two sky tiles
    spec = {**puzzle.verifier, "answer": puzzle.answer, "format": {"style": "answer_tag", "think": "none"}}
    assert score(oracle(spec), spec).total == 1.0
    labels = puzzle.answer.split(",")
    a, b = (labels.index(str(x)) for x in classes[0])
    labels[a], labels[b] = labels[b], labels[a]
    assert score(f"<answer>{','.join(labels)}</answer>", spec).accuracy == 1.0


def test_angle_answers_are_balanced():
    answers = [make("rotation", k=k).answer for k in range(80)]
    assert {a: answers.count(a) for a in set(answers)} == {"0": 20, "90": 20, "180": 20, "270": 20}


def _wrong(spec):
    if spec["kind"] == "choice":
        return next(o for o in spec["options"] if o not in spec.get("accept", [spec["answer"]]))
    labels = spec["answer"].split(",")
    return ",".join(labels[1:] + labels[:1])  # a rotation of a valid permutation: every position wrong


EXAMPLES = {
    "rotation": "rotation",
    "jigsaw": "jigsaw3x3",
    "position": "position2x2",
    "flip": "flip2x2",
    "similarity": "similarity",
    "inpainting": "inpainting",
    "correspondence": "correspondence",
}


def test_every_registered_task_is_checked_below():
    from puzzlegen.tasks import REGISTRY

    assert set(EXAMPLES) == set(REGISTRY)


@pytest.mark.parametrize("task", EXAMPLES.values())
def test_every_task_oracle_scores_one_and_adversaries_zero(task):
    import json

    from puzzlegen.publish.preview import example

    spec = json.loads(example(task)["verifier"])
    assert score(oracle(spec), spec).total == 1.0
    wrong = _wrong(spec)
    listed = ", ".join(spec["options"]) if spec["kind"] == "choice" else f"{spec['answer']}; {wrong}"
    for bad in (
        wrong,
        f"{spec['answer']} or {wrong}",
        listed,
        "",
        f"{spec['answer']}</answer><answer>{wrong}",
    ):
        completion = f"<think>hmm</think><answer>{bad}</answer>"
        assert score(completion, spec).accuracy == 0.0, (task, bad)
