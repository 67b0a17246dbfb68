"""Copies of an image in a corpus: byte-identical ones always, near ones (resized or recompressed) on request.

A copy gives the same puzzles again, in another shard or, worse, in the test split, where it leaks their
answers. The first image in source order is kept; a later copy is dropped and counted.

Near copies are found by a difference hash: the upright image shrunk to 9x8 grey pixels, one bit per
horizontal neighbour pair (is the right one brighter?). Resizing and recompression move few of its 64
bits: on 40 synthetic scenes, copies at 85% and 50% size and JPEG quality 70 and 60 differed by at most 3
bits, and different scenes by at least 21. Two hashes within NEAR_BITS bits agree exactly on at least one
of NEAR_BITS + 1 bands (pigeonhole), so candidates are looked up by band, not compared with every image.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from puzzlegen.sources import BadImage, decode

NEAR_BITS = 4  # at most this many differing bits make a near copy
MIN_EDGES = 16  # a hash with fewer clear brightness steps (a flat or blank image) says little: not used
BANDS = tuple((start, min(start + 13, 64)) for start in range(0, 64, 13))  # NEAR_BITS + 1 bands


def difference_hash(data: bytes) -> int | None:
    """The 64-bit difference hash of an encoded image, or None when it is unreadable or too flat to tell."""
    try:
        image = decode(data, draft_side=128)  # a large JPEG is decoded at a reduced scale: fast
    except BadImage:
        return None
    # two box steps: shrinking straight to 9x8 leaves the hash at the mercy of the source size
    small = image.convert("L").resize((36, 32), Image.Resampling.BOX).resize((9, 8), Image.Resampling.BOX)
    steps = np.diff(np.asarray(small, dtype=np.int16), axis=1).ravel()
    if int((np.abs(steps) >= 2).sum()) < MIN_EDGES:
        return None
    return sum(1 << i for i, step in enumerate(steps) if step > 0)


class NearIndex:
    """Kept hashes, findable by any of their bands."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[int, int], list[int]] = {}

    @staticmethod
    def _bands(value: int):
        for k, (lo, hi) in enumerate(BANDS):
            yield k, (value >> lo) & ((1 << (hi - lo)) - 1)

    def near(self, value: int) -> bool:
        return any(
            (kept ^ value).bit_count() <= NEAR_BITS
            for key in self._bands(value)
            for kept in self.buckets.get(key, ())
        )

    def add(self, value: int) -> None:
        for key in self._bands(value):
            self.buckets.setdefault(key, []).append(value)


@dataclass
class Known:
    """Images already seen: their sha256s and, for near copies, their difference hashes."""

    shas: set[str] = field(default_factory=set)
    near: NearIndex = field(default_factory=NearIndex)

    def add(self, sha: str | None, value: int | None) -> None:
        if sha is not None:
            self.shas.add(sha)
        if value is not None:
            self.near.add(value)

    def update(self, shas: list[str | None], hashes: list[int | None] | None) -> None:
        for sha, value in zip(shas, hashes or [None] * len(shas), strict=True):
            self.add(sha, value)

    def match(self, sha: str | None, value: int | None) -> str | None:
        """How an image matches these: "copy" (same bytes), "near" (within NEAR_BITS bits), or None."""
        if sha is not None and sha in self.shas:
            return "copy"
        if value is not None and self.near.near(value):
            return "near"
        return None


REASONS = {  # (matched against, how) -> the skip reason counted in the manifest
    ("corpus", "copy"): "duplicate",
    ("corpus", "near"): "near_duplicate",
    ("excluded", "copy"): "excluded",
    ("excluded", "near"): "near_excluded",
}


def unique(
    ids: list[str],
    shas: list[str | None],
    hashes: list[int | None] | None = None,
    excluded: Known | None = None,
) -> tuple[list[tuple[int, str, str | None]], Counter[str]]:
    """(index, id, sha) of the images to build, and the dropped ones by reason: copies of an earlier image
    of the corpus, or of an image of `excluded` (a benchmark kept out of training, say). An image without a
    sha (unreadable, or from a source distinct by construction) is kept: its shard decides."""
    corpus, excluded = Known(), excluded or Known()
    kept, dropped = [], Counter()
    for position, (source_id, sha) in enumerate(zip(ids, shas, strict=True)):
        value = hashes[position] if hashes else None
        reason = next(
            (
                REASONS[name, how]
                for name, images in (("excluded", excluded), ("corpus", corpus))
                if (how := images.match(sha, value))
            ),
            None,
        )
        if reason:
            dropped[reason] += 1
            continue
        corpus.add(sha, value)
        kept.append((position, source_id, sha))
    return kept, dropped
