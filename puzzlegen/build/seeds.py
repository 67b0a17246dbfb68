"""Seeds derived by hashing, never `seed + index`: neighbouring integer seeds give overlapping streams."""

from __future__ import annotations

import hashlib

import numpy as np


def derive(*parts: object) -> int:
    """A 128-bit integer from the parts, stable across machines, Python versions and processes."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "little")


def rng(*parts: object) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(derive(*parts)))


def balanced_choice(k: int, position: int, *parts: object) -> int:
    """Option index for the puzzle at `position` in its split: each block of k consecutive puzzles gets a
    fresh random permutation of range(k), so every option's share stays within one block of uniform."""
    block, offset = divmod(position, k)
    return int(rng("balance", *parts, k, block).permutation(k)[offset])
