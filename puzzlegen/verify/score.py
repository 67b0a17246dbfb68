"""Score a completion against a verifier spec. Pure standard library; never raises.

A spec is a JSON object (or its string) that carries everything needed to score:

    {"kind": "choice" | "permutation", "answer": "...",
     "format": {"style": "answer_tag" | "boxed", "think": "required" | "optional" | "none"},
     "weights": {"accuracy": 0.9, "format": 0.1}, "max_chars": 8000, ...kind fields}

choice:       "options" (canonical answers), "aliases" {option: [other accepted spellings]},
              "accept" (optional: every option that counts as right, for ambiguous puzzles).
permutation:  "n", "rows", "cols", "partial" (see PARTIAL), "classes" (groups of labels that cannot
              be told apart; any order within a group is right), "partial_scale", "partial_min_tiles".
              Labels are 1-based. Anything that is not a permutation of 1..n gets no accuracy credit,
              in every partial mode: SSL4RL's ungated per-position credit pays "1,1,1,1" a quarter.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass

from .parse import extract

PARTIAL = ("none", "position", "gated", "adjacency", "displacement")
DEFAULT_MAX_CHARS = 8000


@dataclass(frozen=True)
class Score:
    total: float
    accuracy: float
    format: float
    answer: str | None = None  # the extracted answer text, if any
    reason: str = ""  # why credit was withheld, for debugging rewards


def normalize(text: str) -> str:
    """Fold the spellings a person would accept as the same: case, width, dashes, brackets, '°'."""
    s = unicodedata.normalize("NFKC", text).casefold().replace("°", " degrees ")
    s = re.sub(r"[\s\-_/]+", " ", s).strip()
    s = re.sub(r"^(the answer is|answer|option|choice|candidate|point)\s*[:\s]\s*", "", s)
    return s.strip(" \t\n.,;:!\"'`()[]{}*")


def _choice_accuracy(text: str, spec: dict) -> tuple[float, str]:
    canon = {normalize(o): o for o in spec["options"]}
    for option, spellings in spec.get("aliases", {}).items():
        canon.update({normalize(s): option for s in spellings})
    picked = canon.get(normalize(text))
    if picked is None:
        return 0.0, "not one of the options"
    return (1.0, "") if picked in spec.get("accept", [spec["answer"]]) else (0.0, "wrong option")


def parse_permutation(text: str, n: int) -> list[int] | None:
    """'3,2,1,4', '[3, 2, 1, 4]' or '3 2 1 4' -> [3, 2, 1, 4]; None unless a permutation of 1..n."""
    tokens = [t for t in re.split(r"[\s,;]+", text.strip().strip("[](){}")) if t]
    if len(tokens) != n or not all(t.isdigit() for t in tokens):
        return None
    labels = [int(t) for t in tokens]
    return labels if sorted(labels) == list(range(1, n + 1)) else None


def _class_of(spec: dict) -> dict[int, int]:
    """label -> representative label of its class of interchangeable tiles."""
    rep = {i: i for i in range(1, spec["n"] + 1)}
    for group in spec.get("classes", []):
        for label in group:
            rep[label] = min(group)
    return rep


def _grid_neighbours(rows: int, cols: int) -> list[tuple[int, int, str]]:
    pairs = [(r * cols + c, r * cols + c + 1, "h") for r in range(rows) for c in range(cols - 1)]
    return pairs + [(r * cols + c, (r + 1) * cols + c, "v") for r in range(rows - 1) for c in range(cols)]


def _adjacency(pred: list[int], truth: list[int], rows: int, cols: int) -> float:
    """Correct neighbour pairs / (2mn - m - n) (Jigsaw-R1): a pair of tiles placed side by side is right
    when those tiles are side by side, in that relation, in the truth."""
    neighbours = _grid_neighbours(rows, cols)
    if not neighbours:
        return float(pred == truth)
    true_pairs = [(truth[a], truth[b], d) for a, b, d in neighbours]
    hits = 0
    for a, b, d in neighbours:
        if (pred[a], pred[b], d) in true_pairs:
            true_pairs.remove((pred[a], pred[b], d))
            hits += 1
    return hits / len(neighbours)


def _displacement(pred: list[int], truth: list[int], rows: int, cols: int) -> float:
    """1 - total Manhattan displacement / its maximum (the point reflection of the grid), as VideoSSR
    does in one dimension. A tile's displacement is to the nearest cell its class truly occupies."""
    cells = [divmod(i, cols) for i in range(rows * cols)]
    worst = sum(abs(2 * r - (rows - 1)) + abs(2 * c - (cols - 1)) for r, c in cells)
    if worst == 0:
        return float(pred == truth)
    total = 0
    for (r, c), label in zip(cells, pred, strict=True):
        homes = [cells[i] for i, t in enumerate(truth) if t == label]
        total += min(abs(r - hr) + abs(c - hc) for hr, hc in homes)
    return max(0.0, 1.0 - total / worst)


def _permutation_accuracy(text: str, spec: dict) -> tuple[float, str]:
    n = spec["n"]
    labels = parse_permutation(text, n)
    if labels is None:
        return 0.0, f"not a permutation of 1..{n}"
    rep = _class_of(spec)
    truth = [rep[t] for t in parse_permutation(spec["answer"], n)]
    pred = [rep[t] for t in labels]
    if pred == truth:
        return 1.0, ""
    mode = spec.get("partial", "none")
    rows, cols = spec.get("rows", 1), spec.get("cols", n)
    if mode == "position":
        return sum(p == t for p, t in zip(pred, truth, strict=True)) / n, "partly right"
    if mode == "gated":  # Visual Jigsaw: a scaled share, only for puzzles with enough tiles
        if n < spec.get("partial_min_tiles", 5):
            return 0.0, "wrong order"
        share = sum(p == t for p, t in zip(pred, truth, strict=True)) / n
        return spec.get("partial_scale", 0.2) * share, "partly right"
    if mode == "adjacency":
        return _adjacency(pred, truth, rows, cols), "partly right"
    if mode == "displacement":
        return _displacement(pred, truth, rows, cols), "partly right"
    return 0.0, "wrong order"


_ACCURACY = {"choice": _choice_accuracy, "permutation": _permutation_accuracy}


def load_spec(spec: dict | str) -> dict:
    return json.loads(spec) if isinstance(spec, str) else spec


def score(completion: str, spec: dict | str) -> Score:
    """Score one completion. Every value lies in [0, 1]; any malformed input scores 0 with a reason."""
    try:
        spec = load_spec(spec)
        if not isinstance(completion, str):
            return Score(0.0, 0.0, 0.0, reason="completion is not a string")
        if len(completion) > spec.get("max_chars", DEFAULT_MAX_CHARS):
            return Score(0.0, 0.0, 0.0, reason="completion too long")
        fmt = spec.get("format", {})
        answer, format_ok, reason = extract(
            completion, fmt.get("style", "answer_tag"), fmt.get("think", "none")
        )
        accuracy = 0.0
        if answer is not None:
            if not answer.strip():
                reason = "empty answer"
            else:
                accuracy, why = _ACCURACY[spec["kind"]](answer, spec)
                reason = reason or why
        weights = spec.get("weights", {"accuracy": 1.0, "format": 0.0})
        wa, wf = float(weights.get("accuracy", 1.0)), float(weights.get("format", 0.0))
        total = (wa * accuracy + wf * float(format_ok)) / (wa + wf)
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (total, accuracy)):
            return Score(0.0, 0.0, 0.0, reason="bad spec weights")
        return Score(total, accuracy, float(format_ok), answer, reason)
    except Exception as error:  # a malformed spec must not take a reward server down
        return Score(0.0, 0.0, 0.0, reason=f"bad spec: {type(error).__name__}: {error}")
