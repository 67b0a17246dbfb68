"""Every shipped recipe loads, resolves every parameter, and builds."""

import pytest

from puzzlegen.build import BuildOptions, build, load
from puzzlegen.build.recipe import available, from_tasks, with_format
from puzzlegen.sources import open_source


@pytest.mark.parametrize("name", available())
def test_recipe_builds(name, tmp_path):
    recipe = load(name)
    resolved = recipe.resolved()
    assert resolved["name"] == name and resolved["tasks"]
    manifest = build(open_source("synthetic:6"), recipe, BuildOptions(out=tmp_path, test_fraction=0))
    built = set(manifest["splits"]["train"]["counts"])
    assert built == {t["name"] for t in resolved["tasks"]}, manifest["skipped"]


def test_recipe_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - task: rotation\n    params: {angles: [0]}\n")
    with pytest.raises(ValueError, match="angles"):
        load(str(bad))
    bad.write_text("tasks:\n  - task: rotation\n    params: {speed: 3}\n")
    with pytest.raises(ValueError, match="unknown parameter"):
        load(str(bad))
    with pytest.raises(ValueError, match="twice"):
        from_tasks("rotation,rotation")


def test_format_override_reaches_every_task():
    recipe = with_format(load("jigsaw-rotation"), style="boxed", think="none")
    assert {(e.format.style, e.format.think) for e in recipe.entries} == {("boxed", "none")}


def test_ssl_r1_gives_about_five_puzzles_per_image(tmp_path):
    manifest = build(open_source("synthetic:20"), load("ssl-r1"), BuildOptions(out=tmp_path, test_fraction=0))
    counts = manifest["splits"]["train"]["counts"]
    assert set(counts) == {"rotation", "similarity", "inpainting", "jigsaw3x3", "correspondence"}
    assert 4.5 * 20 <= manifest["records"] <= 5 * 20
