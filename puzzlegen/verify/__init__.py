"""Rule-based scoring of puzzle completions. Pure standard library, so any reward server can import it."""

from .adapters import easyr1_compute_score, trl_reward, verl_compute_score
from .parse import extract, instruction, render
from .report import FileReport, Tally, flatten, score_completions
from .score import PARTIAL, Score, load_spec, normalize, parse_permutation, score


def oracle(spec: dict | str) -> str:
    """The canonical answer written in the spec's own output format; it scores exactly 1."""
    spec = load_spec(spec)
    fmt = spec.get("format", {})
    return render(spec["answer"], fmt.get("style", "answer_tag"), fmt.get("think", "none"))


__all__ = [
    "PARTIAL",
    "FileReport",
    "Score",
    "Tally",
    "easyr1_compute_score",
    "extract",
    "flatten",
    "instruction",
    "load_spec",
    "normalize",
    "oracle",
    "parse_permutation",
    "render",
    "score",
    "score_completions",
    "trl_reward",
    "verl_compute_score",
]
