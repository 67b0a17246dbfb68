"""Extract the answer from a completion according to the spec's output format.

Pure standard library. Nothing here raises on any input string.
"""

from __future__ import annotations

import re

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
BOXED = "\\boxed{"
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK_RE = re.compile(r"^\s*<think>(.*?)</think>", re.DOTALL)


def _boxed_contents(text: str) -> list[str] | None:
    """Every \\boxed{...} body, with nested braces balanced; None if one is unclosed."""
    found, start = [], text.find(BOXED)
    while start != -1:
        depth, i = 1, start + len(BOXED)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth:
            return None
        found.append(text[start + len(BOXED) : i - 1])
        start = text.find(BOXED, i)
    return found


def extract(completion: str, style: str, think: str) -> tuple[str | None, bool, str]:
    """Return (answer or None, format_ok, reason).

    style: "answer_tag" (<answer>…</answer>) or "boxed" (\\boxed{…}).
    think: "required" (a non-empty <think>…</think> must open the completion), "optional" or "none".
    The answer is returned only when exactly one answer container is present: two answers are a hedge.
    """
    thinking = _THINK_RE.match(completion)
    n_think = completion.count(THINK_OPEN) + completion.count(THINK_CLOSE)
    if think == "required":
        think_ok = bool(thinking and thinking.group(1).strip()) and n_think == 2
    elif think == "optional":
        think_ok = n_think == 0 or (thinking is not None and n_think == 2)
    else:
        think_ok = n_think == 0
    body = completion[thinking.end() :] if thinking else completion

    if style == "boxed":
        boxes = _boxed_contents(body)
        if boxes is None:
            return None, False, "unclosed \\boxed{"
        if len(boxes) != 1:
            return None, False, f"{len(boxes)} \\boxed{{}} answers, need exactly one"
        return boxes[0], think_ok, "" if think_ok else "bad <think> block"

    answers = _ANSWER_RE.findall(body)
    n_tags = body.count(ANSWER_OPEN) + body.count(ANSWER_CLOSE)
    if len(answers) != 1 or n_tags != 2:
        return None, False, f"{len(answers)} <answer> blocks, need exactly one"
    after = body[body.rfind(ANSWER_CLOSE) + len(ANSWER_CLOSE) :]
    tail_ok = not after.strip()
    ok = think_ok and tail_ok
    reason = "" if ok else ("bad <think> block" if not think_ok else "text after </answer>")
    return answers[0], ok, reason


def render(answer: str, style: str, think: str, reasoning: str = "I look at the image carefully.") -> str:
    """Write an answer in the given output format: the oracle completion for that spec."""
    head = f"{THINK_OPEN}{reasoning}{THINK_CLOSE}" if think == "required" else ""
    if style == "boxed":
        return f"{head}{BOXED}{answer}}}"
    return f"{head}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def instruction(style: str, think: str) -> str:
    """The sentence a prompt ends with, so the model writes what the verifier parses."""
    where = "inside <answer> </answer>" if style == "answer_tag" else "inside \\boxed{}"
    if think == "required":
        return f"First think it through inside <think> </think>, then give only the final answer {where}."
    return f"Give only the final answer {where}."
