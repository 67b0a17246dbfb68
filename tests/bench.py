"""`make bench`: throughput of the build and the verifier, measured side by side in one run.

The machine is shared and noisy, so every figure is the median of several repeats, and comparisons are
printed as ratios of figures taken in the same run.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from puzzlegen.build import BuildOptions, build, from_tasks, runner
from puzzlegen.build.seeds import balanced_choice, rng
from puzzlegen.build.writers import encode_image
from puzzlegen.sources import decode, open_source
from puzzlegen.sources.synthetic import render
from puzzlegen.tasks import REGISTRY, Context, Skip, parse_task
from puzzlegen.verify import oracle, score

REPEATS = 3


def median_seconds(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def corpus(folder: Path, count: int) -> Path:
    """Pre-rendered JPEGs, so the build is timed on reading real files rather than on drawing scenes."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        render(i).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def bench_build(root: Path, images: int) -> None:
    """At the default shard size this corpus is one large train shard and one small test shard: with
    whole shards as the unit of work a second worker has little to do, with pieces it shares the work."""
    source = open_source(str(corpus(root / "corpus", images)))
    recipe = from_tasks("jigsaw3x3,rotation")
    rates = {}
    for label, workers, min_piece in (
        ("1 worker", 1, runner.MIN_PIECE),
        ("2 workers, whole shards", 2, 10**9),
        ("2 workers, pieces", 2, runner.MIN_PIECE),
    ):

        def run(workers=workers):
            build(source, recipe, BuildOptions(out=root / f"out{workers}", workers=workers, overwrite=True))

        default, runner.MIN_PIECE = runner.MIN_PIECE, min_piece
        try:
            rates[label] = images / median_seconds(run)
        finally:
            runner.MIN_PIECE = default
    print(
        f"build jigsaw3x3+rotation, {images} images of 384-640 px, default shard size, median of {REPEATS}:"
    )
    for label, rate in rates.items():
        print(f"  {label:24s} {rate:7.1f} images/s  ({2 * rate:7.1f} puzzles/s)")
    one = rates["1 worker"]
    print(
        f"  speed-up with 2 workers: {rates['2 workers, pieces'] / one:.2f}x with pieces, "
        f"{rates['2 workers, whole shards'] / one:.2f}x with whole shards"
    )
    reading = median_seconds(lambda: runner.fingerprints(source, images, False, None))
    near = median_seconds(lambda: runner.fingerprints(source, images, True, None))
    print(
        f"  reading pass (hash every image before planning): {images / reading:7.0f} images/s, "
        f"{reading * one / images:.1%} of the 1-worker build"
    )
    print(
        f"  with --dedupe near (difference hashes too):       {images / near:7.0f} images/s, "
        f"{near * one / images:.1%} of the 1-worker build"
    )


def bench_stages() -> None:
    image = render(0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    n = 50
    decode_ms = median_seconds(lambda: [decode(data) for _ in range(n)]) / n * 1e3
    jpeg_ms = median_seconds(lambda: [encode_image(image, "jpeg") for _ in range(n)]) / n * 1e3
    png_ms = median_seconds(lambda: [encode_image(image, "png") for _ in range(10)]) / 10 * 1e3
    big = io.BytesIO()
    image.resize((3200, 2400)).save(big, "JPEG", quality=90)
    full_ms = median_seconds(lambda: [decode(big.getvalue(), draft_side=10**6) for _ in range(5)]) / 5 * 1e3
    draft_ms = median_seconds(lambda: [decode(big.getvalue()) for _ in range(5)]) / 5 * 1e3
    print(f"stages on one {image.size[0]}x{image.size[1]} image, median of {REPEATS}:")
    print(f"  decode + EXIF + RGB: {decode_ms:6.2f} ms")
    print(
        f"  decode 3200x2400:    {full_ms:6.2f} ms full, {draft_ms:6.2f} ms draft "
        f"({full_ms / draft_ms:.1f}x faster)"
    )
    print(
        f"  encode JPEG q95:     {jpeg_ms:6.2f} ms   PNG: {png_ms:6.2f} ms "
        f"(PNG / JPEG {png_ms / jpeg_ms:.1f}x)"
    )
    images = [decode(data) for _ in range(1)] + [render(i) for i in range(1, 8)]
    for name in sorted(REGISTRY):
        task_name = {"jigsaw": "jigsaw3x3"}.get(name, name)
        _, task = parse_task(task_name)

        def make_all(task=task, task_name=task_name):
            for k, im in enumerate(images):
                ctx = Context(
                    rng(0, task_name, k),
                    lambda n, k=k: balanced_choice(n, k, 0, task_name),
                    partner=lambda k=k: images[(k + 3) % len(images)],
                )
                try:
                    task.make(im, ctx)
                except Skip:
                    pass

        print(f"  task {task_name:15s} {median_seconds(make_all) / len(images) * 1e3:6.2f} ms per puzzle")


def bench_verifier() -> None:
    specs = {
        "choice": {
            "kind": "choice",
            "answer": "90",
            "options": ["0", "90", "180", "270"],
            "format": {"style": "answer_tag", "think": "required"},
        },
        "permutation 3x3": {
            "kind": "permutation",
            "answer": "2,1,3,4,5,6,7,8,9",
            "n": 9,
            "rows": 3,
            "cols": 3,
            "partial": "adjacency",
            "format": {"style": "answer_tag", "think": "required"},
        },
    }
    n = 5000
    print(f"verifier, {n} scores, median of {REPEATS}:")
    for name, spec in specs.items():
        completion = oracle(spec)
        rate = n / median_seconds(
            lambda spec=spec, completion=completion: [score(completion, spec) for _ in range(n)]
        )
        print(f"  {name:16s} {rate / 1e3:7.1f} k scores/s")


def main() -> None:
    Image.init()
    with tempfile.TemporaryDirectory() as tmp:
        bench_stages()
        bench_verifier()
        bench_build(Path(tmp), images=384)


if __name__ == "__main__":
    main()
