"""The `puzzlegen` command. Thin: it parses arguments, calls the library, and prints.

Heavy modules are imported inside the commands, so `puzzlegen --help` stays instant.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Turn image corpora into verifiable visual puzzles for RL post-training of VLMs.",
)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error line never breaks inside a path


@contextmanager
def user_errors():
    """Problems the user can fix print one clear line and exit 2; never a traceback."""
    from puzzlegen.build import BuildError
    from puzzlegen.sources import SourceError
    from puzzlegen.train import TrainError

    try:
        yield
    except (SourceError, BuildError, TrainError, ValueError, FileNotFoundError) as error:
        err.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted.[/] Finished shards are kept: run the same command again to resume.")
        raise typer.Exit(130) from None


class RichProgress:
    """The build's progress hook, drawn with rich."""

    def __init__(self, progress):
        self.progress, self.task = progress, None

    def start(self, total: int, done: int, label: str) -> None:
        self.task = self.progress.add_task(label, total=total, completed=done)

    def advance(self, n: int) -> None:
        if n:
            self.progress.advance(self.task, n)


def _counts_table(manifest: dict) -> Table:
    table = Table(title="puzzles", show_footer=True)
    table.add_column("split", footer="total")
    table.add_column("task")
    table.add_column("puzzles", justify="right", footer=f"{manifest['records']:,}")
    for split, info in sorted(manifest["splits"].items()):
        for task, n in info["counts"].items():
            table.add_row(split, task, f"{n:,}")
    return table


def _summary(manifest: dict, out: Path) -> None:
    console.print(_counts_table(manifest))
    if manifest["skipped"]:
        skipped = Table(title="skipped inputs")
        skipped.add_column("reason")
        skipped.add_column("count", justify="right")
        for reason, n in manifest["skipped"].items():
            skipped.add_row(reason, f"{n:,}")
        console.print(skipped)
    errors = {k: n for k, n in manifest["skipped"].items() if ":error:" in k}
    if errors:
        err.print(
            f"[bold yellow]warning:[/] puzzles lost to errors in puzzlegen itself (please report): {errors}"
        )
    size = sum(manifest["bytes"].values()) / 1e6
    console.print(
        f"{len(manifest['shards'])} shards, {size:.1f} MB, from {manifest['source']['images']:,} source "
        f"images of {manifest['source']['name']} ({manifest['source']['kind']}), seed {manifest['seed']}"
    )


@app.command()
def build(
    source: Annotated[
        str,
        typer.Argument(help="synthetic[:N] | coco | hf:NAME | folder:PATH | wds:PATH | parquet:PATH | PATH"),
    ],
    tasks: Annotated[
        str | None, typer.Option("--tasks", "-t", help="comma-separated tasks, e.g. jigsaw3x3,rotation")
    ] = None,
    recipe: Annotated[
        str | None, typer.Option("--recipe", "-r", help="a recipe name from recipes/ or a YAML path")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="output folder [default: puzzles/SOURCE-RECIPE]")
    ] = None,
    seed: Annotated[int, typer.Option(help="the build seed; same seed, same bytes")] = 0,
    workers: Annotated[int, typer.Option(help="worker processes [default: all cores]")] = 0,
    shard_size: Annotated[int, typer.Option(help="source images per shard")] = 500,
    limit: Annotated[int | None, typer.Option(min=0, help="use only the first N source images")] = None,
    test_fraction: Annotated[
        float, typer.Option(help="share of source images held out as the test split")
    ] = 0.05,
    answer_format: Annotated[
        str | None, typer.Option("--format", help="answer_tag (<answer>…</answer>) or boxed (\\boxed{…})")
    ] = None,
    think: Annotated[str | None, typer.Option(help="reasoning block: required, optional or none")] = None,
    image_format: Annotated[str, typer.Option(help="jpeg or png")] = "jpeg",
    dedupe: Annotated[
        str, typer.Option(help="drop copies: exact (byte-identical) or near (also resized or recompressed)")
    ] = "exact",
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            help="a corpus whose images (and their copies) stay out, e.g. a benchmark's; repeatable"
        ),
    ] = None,
    root: Annotated[str | None, typer.Option(help="COCO root folder (or set PUZZLEGEN_COCO_ROOT)")] = None,
    subset: Annotated[str, typer.Option(help="COCO subset: train2017, val2017, ...")] = "train2017",
    split: Annotated[str, typer.Option(help="split to read from an HF dataset")] = "train",
    image_column: Annotated[str | None, typer.Option(help="image column of an HF or Parquet source")] = None,
    count: Annotated[int, typer.Option(help="images in the synthetic corpus (also synthetic:N)")] = 1000,
    overwrite: Annotated[bool, typer.Option(help="replace whatever is in --out")] = False,
):
    """Build a sharded, deterministic puzzle dataset (Parquet + WebDataset + manifest + card)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from puzzlegen import build as builder
    from puzzlegen.sources import open_source

    with user_errors():
        if tasks and recipe:
            raise ValueError("give --tasks or --recipe, not both")
        chosen = builder.load(recipe) if recipe else builder.from_tasks(tasks or "jigsaw3x3,rotation")
        if answer_format or think:
            chosen = builder.recipe.with_format(chosen, style=answer_format, think=think)
        corpus = open_source(
            source, root=root, subset=subset, split=split, image_column=image_column, count=count
        )
        excluded = [open_source(other) for other in exclude or []]
        target = out or Path("puzzles") / f"{corpus.describe()['name']}-{chosen.name}"
        options = builder.BuildOptions(
            out=target,
            seed=seed,
            workers=workers or os.cpu_count() or 1,
            shard_size=shard_size,
            limit=limit,
            test_fraction=test_fraction,
            image_format=image_format,
            dedupe=dedupe,
            overwrite=overwrite,
        )
        started = time.perf_counter()
        columns = (
            TextColumn("[bold]building"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("images"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=False) as bar:
            manifest = builder.build(corpus, chosen, options, RichProgress(bar), excluded)
        seconds = time.perf_counter() - started
    _summary(manifest, target)
    console.print(
        f"built in {seconds:.1f} s ({manifest['source']['images'] / max(seconds, 1e-9):.0f} images/s)"
    )
    console.print(f"[bold green]dataset ready:[/] {target.resolve()}")


@app.command()
def info(path: Annotated[Path, typer.Argument(help="a folder made by `puzzlegen build`")]):
    """Summarise a built dataset from its manifest."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        err.print(
            f"[bold red]error:[/] {manifest_path} not found; is {path} a puzzlegen build (or still running)?"
        )
        raise typer.Exit(2)
    manifest = json.loads(manifest_path.read_text())
    console.print(
        f"[bold]{path}[/]: recipe [cyan]{manifest['recipe']['name']}[/], puzzlegen {manifest['puzzlegen']}"
    )
    _summary(manifest, path)
    console.print(f"source content sha256 {manifest['source']['content_sha256']}")
    console.print("libraries: " + ", ".join(f"{k} {v}" for k, v in manifest["libraries"].items()))


@app.command()
def show(
    data: Annotated[str, typer.Argument(help="a folder made by `puzzlegen build`, or hf:OWNER/NAME@REV")],
    split: Annotated[str, typer.Option(help="the split to read")] = "train",
    task: Annotated[str | None, typer.Option(help="only this task (its recipe name, e.g. jigsaw3x3)")] = None,
    puzzle_id: Annotated[str | None, typer.Option("--id", help="only the puzzle with this id")] = None,
    n: Annotated[int, typer.Option(min=1, help="how many puzzles")] = 3,
    save: Annotated[
        Path | None, typer.Option(help="save their images, numbered as in the prompt, as one picture")
    ] = None,
):
    """Print puzzles of a built dataset (prompt and answer) and save their images, to check them by eye."""
    from itertools import islice

    from puzzlegen.train.data import iter_puzzles, open_shards

    with user_errors():
        wanted = (
            p
            for p in iter_puzzles(open_shards(data, split))
            if (task is None or p.task == task) and (puzzle_id is None or p.id == puzzle_id)
        )
        chosen = list(islice(wanted, n))
        if not chosen:
            raise ValueError(
                f"no {split} puzzle of {data} matches"
                + (f" --task {task}" if task else "")
                + (f" --id {puzzle_id}" if puzzle_id else "")
            )
        for p in chosen:
            console.rule(f"[bold]{p.id}[/] ({p.task}, {len(p.images)} images)")
            console.print(p.prompt, markup=False, highlight=False)
            console.print(f"[bold]answer[/] {p.answer}")
        if save:
            from puzzlegen.publish.preview import stacked_sheets

            captions = [f"{p.id}   answer: {p.answer}" for p in chosen]
            stacked_sheets([{"images": p.images} for p in chosen], captions).save(save)
            console.print(f"images saved to {save}")


@app.command()
def push(
    path: Annotated[Path, typer.Argument(help="a folder made by `puzzlegen build`")],
    repo_id: Annotated[str, typer.Argument(help="the Hub dataset repo, e.g. me/coco-puzzles")],
    tag: Annotated[str | None, typer.Option(help="version tag [default: v{version}-{content hash}]")] = None,
    private: Annotated[bool, typer.Option(help="create the repo as private")] = False,
    token: Annotated[
        str | None, typer.Option(help="Hub token [default: HF_TOKEN or the saved login]")
    ] = None,
):
    """Publish a dataset on the Hugging Face Hub with its card and a version tag."""
    from puzzlegen.publish.hub import PushError
    from puzzlegen.publish.hub import push as push_dataset

    try:
        pushed = push_dataset(path, repo_id, tag=tag, private=private, token=token)
    except PushError as error:
        err.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(2) from None
    console.print(
        f"[bold green]pushed[/] {pushed.url} at tag [cyan]{pushed.tag}[/] (commit {pushed.commit[:10]})"
    )
    console.print(f"load it with: load_dataset({repo_id!r}, revision={pushed.tag!r})")


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="a folder made by `puzzlegen build`")],
    to: Annotated[str, typer.Option("--to", help="verl, easyr1 or trl")],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the converted Parquet")],
):
    """Rewrite the shards in the column layout of verl, EasyR1 or TRL."""
    from puzzlegen.publish.export import export as convert

    with user_errors():
        files = convert(path, to, out)
    console.print(f"[bold green]exported[/] {len(files)} shards for {to} to {out.resolve()}")


@app.command()
def score(
    data: Annotated[str, typer.Argument(help="a folder made by `puzzlegen build`, or hf:OWNER/NAME@REV")],
    completions: Annotated[
        Path, typer.Argument(help='JSON lines {"id": record id, "completion": text}, from any model')
    ],
    split: Annotated[str, typer.Option(help="the split the ids come from")] = "test",
    field: Annotated[str, typer.Option(help="the key of the completion text")] = "completion",
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
    scored: Annotated[
        Path | None, typer.Option(help="write each line's reward, accuracy, format and reason here")
    ] = None,
):
    """Score completions made elsewhere (vLLM, an API, another trainer) with each puzzle's verifier."""
    from puzzlegen.train.data import iter_specs, open_shards
    from puzzlegen.verify import score_completions

    with user_errors():
        puzzles = {key: (task, spec) for key, task, spec in iter_specs(open_shards(data, split))}
        with open(completions, encoding="utf-8", errors="replace") as lines:
            report = score_completions(lines, puzzles, field)
    from puzzlegen.train.commands import means_table

    results = report.tally.means()
    console.print(means_table(f"{completions} on {data} ({split})", results, "completions"))
    counts = {
        "malformed_lines": len(report.malformed),
        "unknown_ids": len(report.unknown),
        "unanswered_puzzles": report.unanswered,
    }
    if report.malformed:
        lines_shown = ", ".join(map(str, report.malformed[:5])) + (
            ", ..." if len(report.malformed) > 5 else ""
        )
        shape = f'{{"id", "{field}"}}'
        err.print(f"[yellow]{len(report.malformed)} lines are not {shape} objects[/] (line {lines_shown})")
    if report.unknown:
        err.print(
            f"[yellow]{len(report.unknown)} ids name no puzzle of the {split} split[/] "
            f"(first: {report.unknown[0]}); is --split right?"
        )
    console.print(f"{report.unanswered} of {len(puzzles)} {split} puzzles have no completion")
    solved = report.any_correct()
    if any(row["max_samples"] > 1 for row in solved.values()):  # several samples: pass@k is worth a line
        console.print(
            "solved by at least one completion: "
            + ", ".join(f"{task} {row['solved']:.3f} of {row['puzzles']:.0f}" for task, row in solved.items())
        )
    if json_out:
        saved = {"results": results, "any_correct": solved, **counts}
        json_out.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    if scored:
        scored.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in report.scored))
    if not report.scored:
        err.print("[bold red]error:[/] nothing was scored")
        raise typer.Exit(2)


@app.command(name="tasks")
def list_tasks(
    name: Annotated[
        str | None, typer.Argument(help="show one task's parameters and an example prompt")
    ] = None,
    save: Annotated[
        Path | None, typer.Option(help="with NAME: save the example's images as one picture")
    ] = None,
):
    """List the tasks, their parameters, and the recipes."""
    import dataclasses

    from puzzlegen.build import recipe as recipes
    from puzzlegen.tasks import REGISTRY, parse_task

    with user_errors():
        if name:
            from puzzlegen.publish.preview import contact_sheet, example

            _, task = parse_task(name)
            table = Table(title=f"{name}: {task.summary}")
            table.add_column("parameter")
            table.add_column("value")
            for field in dataclasses.fields(task.config):
                table.add_row(field.name, repr(getattr(task.config, field.name)))
            console.print(table)
            record = example(name)
            console.print("[bold]example prompt[/]")
            console.print(record["prompt"], markup=False)
            console.print(f"[bold]answer[/] {record['answer']}")
            if save:
                contact_sheet(record).save(save)
                console.print(f"images saved to {save}")
            return
    table = Table(title="tasks")
    for column in ("task", "shorthand", "what it asks", "parameters (defaults)"):
        table.add_column(column)
    for task_name, cls in sorted(REGISTRY.items()):
        defaults = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Config))
        short = f"{task_name}RxC" if cls.shorthand else ""
        table.add_row(task_name, short, cls.summary, defaults)
    console.print(table)
    console.print("recipes: " + ", ".join(recipes.available()) + "   (puzzlegen tasks NAME shows an example)")


def _register_training() -> None:
    """`train` and `eval` live with the trainer; their module imports only typer until they run."""
    from puzzlegen.train.commands import evaluate, train

    app.command("train")(train)
    app.command("eval")(evaluate)


_register_training()


def main():
    app()


if __name__ == "__main__":
    main()
