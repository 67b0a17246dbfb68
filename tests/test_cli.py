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
