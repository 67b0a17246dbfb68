"""The same scoring behind the reward-function signatures of TRL, verl and EasyR1.

Each trainer hands the spec over in its own way; all of them end in `score`.
"""

from __future__ import annotations

import json
from typing import Any

from .score import score


def _text(completion: Any) -> str:
    """TRL passes plain strings, or for conversational data a list of message dicts."""
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # multimodal message parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""
    return completion if isinstance(completion, str) else ""


def trl_reward(completions: list, verifier: list, **_: Any) -> list[float]:
    """A TRL `reward_funcs` entry: the dataset's `verifier` column arrives as a keyword argument."""
    return [score(_text(c), spec).total for c, spec in zip(completions, verifier, strict=True)]


def trl_accuracy(completions: list, verifier: list, **_: Any) -> list[float]:
    return [score(_text(c), spec).accuracy for c, spec in zip(completions, verifier, strict=True)]


def trl_format(completions: list, verifier: list, **_: Any) -> list[float]:
    return [score(_text(c), spec).format for c, spec in zip(completions, verifier, strict=True)]


def _spec_from(ground_truth: Any, extra_info: dict | None) -> Any:
    if isinstance(extra_info, dict) and "verifier" in extra_info:
        return extra_info["verifier"]
    return ground_truth


def verl_compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **_: Any
) -> dict[str, float]:
    """verl's `custom_reward_function`: the spec travels as `reward_model.ground_truth` (a JSON string)
    or as `extra_info["verifier"]`. verl logs every key of the returned dict; `score` is the reward."""
    result = score(solution_str, _spec_from(ground_truth, extra_info))
    return {"score": result.total, "accuracy": result.accuracy, "format": result.format}


REWARD_TYPE = "batch"  # EasyR1 reads this module attribute


def easyr1_compute_score(reward_inputs: list[dict[str, Any]], **_: Any) -> list[dict[str, float]]:
    """EasyR1's batch reward function: each input has `response` and `ground_truth` (the spec)."""
    out = []
    for item in reward_inputs:
        result = score(item.get("response", ""), item.get("ground_truth", "{}"))
        out.append({"overall": result.total, "accuracy": result.accuracy, "format": result.format})
    return out


def as_ground_truth(spec: dict | str) -> str:
    """The spec as the compact JSON string that verl and EasyR1 carry in their ground-truth field."""
    return spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True, separators=(",", ":"))
