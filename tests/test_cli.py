"""The command line as a user meets it: clear results, clear errors, no tracebacks, a fast --help."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from puzzlegen.cli import app

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_build_then_info(tmp_path):
    out = tmp_path / "ds"
    result = run(
        "build",
        "synthetic:10",
        "--tasks",
        "jigsaw2x2,rotation",
        "--out",
        out,
        "--workers",
        "1",
        "--shard-size",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert "dataset ready" in result.output and str(out) in result.output.replace("\n", "")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["images"] == 10
    info = run("info", out)
    assert info.exit_code == 0 and "jigsaw2x2" in info.output and "rotation" in info.output


def test_tasks_lists_every_task_and_shows_an_example():
    listing = run("tasks")
    assert listing.exit_code == 0 and "rotation" in listing.output and "jigsaw" in listing.output
    one = run("tasks", "jigsaw2x2")
    assert one.exit_code == 0 and "<image>" in one.output and "answer" in one.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "/no/such/folder"], "neither a known source"),
        (["build", "synthetic:4", "--tasks", "nosuchtask"], "unknown task"),
        (["build", "synthetic:4", "--tasks", "rotation", "--recipe", "x"], "not both"),
        (["build", "synthetic:4", "--recipe", "nosuchrecipe"], "unknown recipe"),
        (["build", "synthetic:4", "--tasks", "jigsaw9x9"], "rows and cols"),
        (["build", "synthetic:4", "--format", "xml"], "style"),
        (["build", "coco", "--root", "/nowhere"], "COCO not found"),
        (["info", "/no/such/build"], "not found"),
    ],
)
def test_user_errors_are_one_clear_line(tmp_path, args, message):
    result = run(*args, *(["--out", tmp_path / "o"] if args[0] == "build" else []))
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")


def test_help_is_instant_because_heavy_modules_stay_unimported():
    heavy = ("datasets", "torch", "albumentations", "pyarrow", "transformers")
    code = f"import sys, puzzlegen.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert shown == "[]"


def test_score_rates_completions_made_elsewhere(tmp_path):
    from puzzlegen.verify import oracle

    from .helpers import quick_build, read_records

    quick_build(tmp_path / "ds", tasks="rotation", source="synthetic:12", test_fraction=0.5)
    rows = [r for r in read_records(tmp_path / "ds") if r["id"] in _split_ids(tmp_path / "ds", "test")]
    assert len(rows) >= 3
    lines = [{"id": r["id"], "completion": oracle(r["verifier"])} for r in rows[:-1]]  # the last unanswered
    lines.append({"id": rows[0]["id"], "completion": "<answer>upside down</answer>"})
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "garbage\n")
    result = run(
        "score",
        tmp_path / "ds",
        tmp_path / "c.jsonl",
        "--json",
        tmp_path / "r.json",
        "--scored",
        tmp_path / "s.jsonl",
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "r.json").read_text())
    n = len(rows)  # n - 1 right, 1 wrong
    assert saved["results"]["rotation"]["n"] == n
    assert saved["results"]["rotation"]["accuracy"] == (n - 1) / n
    assert saved["malformed_lines"] == 1 and saved["unanswered_puzzles"] == 1 and saved["unknown_ids"] == 0
    # every answered puzzle has a right completion (rows[0] also a wrong one): all solved
    assert saved["any_correct"]["rotation"] == {"puzzles": n - 1, "solved": 1.0, "max_samples": 2}
    assert "solved by at least one completion: rotation 1.000" in result.output
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == n
    # ids of the test split scored against the train split: nothing to score, said plainly
    wrong = run("score", tmp_path / "ds", tmp_path / "c.jsonl", "--split", "train")
    assert (
        wrong.exit_code == 2 and "is --split right?" in wrong.output and "nothing was scored" in wrong.output
    )


def _split_ids(out, split):
    import pyarrow.parquet as pq

    return {
        i
        for f in (out / "data").glob(f"{split}-*.parquet")
        for i in pq.read_table(f, columns=["id"])["id"].to_pylist()
    }


def test_show_prints_puzzles_and_saves_their_images(tmp_path):
    from PIL import Image

    from .helpers import quick_build, read_records

    quick_build(tmp_path / "ds", tasks="jigsaw2x2,rotation", source="synthetic:6", test_fraction=0)
    rows = read_records(tmp_path / "ds")
    jigsaw = [r for r in rows if r["task"] == "jigsaw"]
    result = run("show", tmp_path / "ds", "--task", "jigsaw2x2", "--n", "2", "--save", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert all(r["id"] in result.output and r["answer"] in result.output for r in jigsaw[:2])
    assert jigsaw[2]["id"] not in result.output and "rotation-" not in result.output
    sheet = Image.open(tmp_path / "s.png")
    assert sheet.height > 2 * 160 and sheet.width > 4 * 160  # two rows of four tiles
    one = run("show", tmp_path / "ds", "--id", rows[-1]["id"])
    assert one.exit_code == 0 and one.output.count(" images)") == 1 and rows[-1]["id"] in one.output
    none = run("show", tmp_path / "ds", "--task", "position")
    assert none.exit_code == 2 and "no train puzzle" in none.output
