"""The verifier contract: oracle scores 1, hedges and malformed answers score 0, nothing raises."""

import ast
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puzzlegen.verify import (
    Tally,
    easyr1_compute_score,
    oracle,
    score,
    score_completions,
    trl_reward,
    verl_compute_score,
)

ROTATION = {
    "kind": "choice",
    "answer": "90",
    "options": ["0", "90", "180", "270"],
    "aliases": {"90": ["90 degrees", "90 deg"], "0": ["0 degrees"]},
    "format": {"style": "answer_tag", "think": "required"},
    "weights": {"accuracy": 0.9, "format": 0.1},
}
JIGSAW = {
    "kind": "permutation",
    "answer": "3,1,4,2",
    "n": 4,
    "rows": 2,
    "cols": 2,
    "partial": "position",
    "format": {"style": "answer_tag", "think": "none"},
}
BOXED = {**ROTATION, "format": {"style": "boxed", "think": "required"}}
SPECS = [ROTATION, JIGSAW, BOXED]


def answer(text, think="why"):
    return f"<think>{think}</think><answer>{text}</answer>"


@pytest.mark.parametrize("spec", SPECS)
def test_oracle_scores_one(spec):
    result = score(oracle(spec), spec)
    assert (result.total, result.accuracy, result.format) == (1.0, 1.0, 1.0)
    assert score(oracle(spec), json.dumps(spec)).total == 1.0  # the JSON string form too


@pytest.mark.parametrize(
    "completion, why",
    [
        (answer("180"), "wrong"),
        (answer(""), "empty"),
        (answer("   "), "blank"),
        (answer("90") + "<answer>90</answer>", "two answer tags"),
        (answer("90 or 180"), "hedge"),
        (answer("0, 90, 180, 270"), "every option"),
        (answer("90, 180"), "two options"),
        ("The answer is 90", "no tag"),
        ("<think>x</think><answer>90", "unclosed"),
        (answer("9"), "substring of the answer"),
        (answer("900"), "superstring of the answer"),
        ("<think>x</think><answer>90</answer>" + "x" * 9000, "overlong"),
    ],
)
def test_wrong_and_hedged_answers_get_no_accuracy(completion, why):
    assert score(completion, ROTATION).accuracy == 0.0, why


@pytest.mark.parametrize("spelling", ["90", "90°", "90 degrees", " 90 deg ", "(90)", "Answer: 90", "90."])
def test_normalisation_accepts_what_a_person_would(spelling):
    assert score(answer(spelling), ROTATION).accuracy == 1.0


def test_format_is_scored_apart_from_accuracy():
    no_think = score("<answer>90</answer>", ROTATION)
    assert no_think.accuracy == 1.0 and no_think.format == 0.0
    assert no_think.total == pytest.approx(0.9)
    trailing = score(answer("90") + " extra words", ROTATION)
    assert trailing.accuracy == 1.0 and trailing.format == 0.0
    wrong = score(answer("0"), ROTATION)
    assert wrong.format == 1.0 and wrong.total == pytest.approx(0.1)


def test_boxed_style_parses_boxed_not_tags():
    assert score("<think>hm</think> so \\boxed{90}.", BOXED).accuracy == 1.0
    assert score("<think>hm</think><answer>90</answer>", BOXED).accuracy == 0.0
    assert score("<think>hm</think>\\boxed{90} \\boxed{180}", BOXED).accuracy == 0.0
    assert score("<think>hm</think>\\boxed{90", BOXED).accuracy == 0.0


@pytest.mark.parametrize(
    "text", ["1,1,1,1", "3,1,4", "3,1,4,2,5", "3,1,4,x", "0,1,2,3", "3,1,4,4", "", "3.1.4.2", "-3,1,4,2"]
)
def test_non_permutations_get_nothing_in_every_partial_mode(text):
    for mode in ("none", "position", "gated", "adjacency", "displacement"):
        assert score(f"<answer>{text}</answer>", {**JIGSAW, "partial": mode}).accuracy == 0.0, (text, mode)


def test_permutation_spellings():
    for text in ("3,1,4,2", "[3, 1, 4, 2]", "3 1 4 2", " 3, 1, 4, 2 "):
        assert score(f"<answer>{text}</answer>", JIGSAW).accuracy == 1.0


def test_partial_credit_families():
    spec = {**JIGSAW, "answer": "1,2,3,4"}
    swap = "<answer>2,1,3,4</answer>"
    assert score(swap, {**spec, "partial": "none"}).accuracy == 0.0
    assert score(swap, {**spec, "partial": "position"}).accuracy == 0.5
    assert score(swap, {**spec, "partial": "gated"}).accuracy == 0.0  # 4 tiles: below the gate
    # adjacency: of the 4 neighbour pairs (2 across, 2 down) only "3 left of 4" survives the swap
    assert score(swap, {**spec, "partial": "adjacency"}).accuracy == 0.25
    # displacement: tiles 1 and 2 each moved one cell; the worst case (point reflection) moves 8 cells
    assert score(swap, {**spec, "partial": "displacement"}).accuracy == pytest.approx(1 - 2 / 8)
    worst = "<answer>4,3,2,1</answer>"
    assert score(worst, {**spec, "partial": "displacement"}).accuracy == 0.0


def test_gated_partial_credit_matches_visual_jigsaw():
    spec = {
        "kind": "permutation",
        "answer": "1,2,3,4,5,6,7,8,9",
        "n": 9,
        "rows": 3,
        "cols": 3,
        "partial": "gated",
    }
    assert score("<answer>2,1,3,4,5,6,7,8,9</answer>", spec).accuracy == pytest.approx(0.2 * 7 / 9)
    assert score("<answer>1,2,3,4,5,6,7,8,9</answer>", spec).accuracy == 1.0


def test_equivalence_classes_accept_any_order_within_a_class():
    spec = {**JIGSAW, "answer": "1,2,3,4", "classes": [[1, 2]], "partial": "none"}
    assert score("<answer>2,1,3,4</answer>", spec).accuracy == 1.0
    assert score("<answer>1,2,4,3</answer>", spec).accuracy == 0.0


def test_accept_widens_ambiguous_choices():
    spec = {**ROTATION, "accept": ["90", "270"]}
    assert score(answer("270"), spec).accuracy == 1.0
    assert score(answer("180"), spec).accuracy == 0.0


def test_malformed_specs_score_zero_without_raising():
    for spec in (
        "not json",
        "{}",
        {"kind": "nope", "answer": "1"},
        {"kind": "choice"},
        None,
        7,
        {**ROTATION, "weights": {"accuracy": 0, "format": 0}},
    ):
        result = score(answer("90"), spec)
        assert result.total == 0.0 and result.reason


@given(st.text(max_size=400))
def test_any_string_scores_in_unit_interval(text):
    for spec in SPECS:
        for completion in (text, answer(text), f"\\boxed{{{text}}}"):
            result = score(completion, spec)
            assert 0.0 <= result.total <= 1.0
            assert 0.0 <= result.accuracy <= 1.0 and result.format in (0.0, 1.0)


@given(st.lists(st.integers(-3, 12), max_size=12))
def test_any_integer_list_scores_in_unit_interval(labels):
    text = ",".join(map(str, labels))
    for mode in ("none", "position", "gated", "adjacency", "displacement"):
        result = score(f"<answer>{text}</answer>", {**JIGSAW, "partial": mode})
        assert 0.0 <= result.accuracy <= 1.0


def test_trainer_adapters_agree_with_score():
    good, bad = oracle(ROTATION), answer("0")
    spec = json.dumps(ROTATION)
    assert trl_reward([good, bad], verifier=[spec, spec]) == [1.0, pytest.approx(0.1)]
    conversational = [[{"role": "assistant", "content": good}]]
    assert trl_reward(conversational, verifier=[spec]) == [1.0]
    assert verl_compute_score("puzzlegen", good, spec)["score"] == 1.0
    assert verl_compute_score("puzzlegen", good, "ignored", extra_info={"verifier": spec})["score"] == 1.0
    out = easyr1_compute_score(
        [{"response": good, "ground_truth": spec}, {"response": bad, "ground_truth": spec}]
    )
    assert [o["overall"] for o in out] == [1.0, pytest.approx(0.1)]


def test_verify_imports_only_the_standard_library():
    root = Path(__file__).resolve().parents[1] / "puzzlegen" / "verify"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0):
                for name in [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]:
                    top = name.split(".")[0]
                    assert top in sys.stdlib_module_names or top == "__future__", (
                        f"{path.name} imports {name}"
                    )


@pytest.mark.parametrize(
    "spelling", ["B", "b", "(B)", "Option B", "option: b", "Candidate B", "point B", "**B**"]
)
def test_letter_spellings(spelling):
    spec = {"kind": "choice", "answer": "B", "options": ["A", "B", "C", "D"]}
    assert score(f"<answer>{spelling}</answer>", spec).accuracy == 1.0
    assert score(f"<answer>{spelling.replace('B', 'C').replace('b', 'c')}</answer>", spec).accuracy == 0.0


def test_tally_means_per_task_and_over_every_completion():
    tally = Tally()
    tally.add("rotation", 1.0, 1.0, 1.0)
    tally.add("rotation", 0.1, 0.0, 1.0)
    tally.add("jigsaw", 0.5, 0.0, 1.0, n=2)  # sums of two completions
    means = tally.means()
    assert list(means) == ["jigsaw", "rotation", "all"]
    assert means["rotation"] == {"n": 2, "reward": 0.55, "accuracy": 0.5, "format": 1.0}
    assert means["jigsaw"]["reward"] == 0.25
    assert means["all"]["n"] == 4 and means["all"]["reward"] == pytest.approx(1.6 / 4)
    assert Tally().means() == {"all": {"n": 0.0, "reward": 0.0, "accuracy": 0.0, "format": 0.0}}


def test_a_completions_file_is_scored_and_what_cannot_be_scored_is_counted():
    puzzles = {
        "r1": ("rotation", json.dumps(ROTATION)),
        "j1": ("jigsaw", json.dumps(JIGSAW)),
        "x": ("rotation", json.dumps(ROTATION)),
    }
    lines = [
        json.dumps({"id": "r1", "completion": oracle(ROTATION)}),
        json.dumps({"id": "r1", "completion": answer("180")}),  # a second sample of the same puzzle
        json.dumps({"id": "j1", "response": "<answer>3,1,4,2</answer>"}),  # another key
        "",
        "{not json",
        json.dumps(["r1", "text"]),
        json.dumps({"id": 7, "completion": "x"}),
        json.dumps({"id": "ghost", "completion": "x"}),
    ]
    report = score_completions(lines, puzzles)
    assert [(row["id"], row["line"], row["accuracy"]) for row in report.scored] == [
        ("r1", 1, 1.0),
        ("r1", 2, 0.0),
    ]
    assert report.malformed == [3, 5, 6, 7] and report.unknown == ["ghost"] and report.unanswered == 2
    assert report.tally.means()["rotation"]["accuracy"] == 0.5
    # r1 was answered twice, right once: solved; pass@k counts puzzles, not completions
    assert report.any_correct() == {"rotation": {"puzzles": 1, "solved": 1.0, "max_samples": 2}}
    by_response = score_completions(lines, puzzles, text_field="response")
    assert [row["id"] for row in by_response.scored] == ["j1"] and by_response.scored[0]["reward"] == 1.0
