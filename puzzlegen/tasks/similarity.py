"""Similarity (contrastive): were two augmented views cut from the same photo? Or, which of K candidate views
comes from the reference's photo?

Views are SimCLR's (see augment.simclr). Negatives come from other images of the same split; a partner that
looks like a near-duplicate of the source (a resized, recompressed or mirrored copy) is never used.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from typing import Any

from PIL import Image

from . import augment
from . import imageops as ops
from .base import Context, Puzzle, Skip, Task, TaskConfig, register

_PAIR_ALIASES = {  # the prompt asks a yes/no question whose "yes" is "positive"
    "positive": ["same", "same photo", "the same photo", "same image", "yes"],
    "negative": [
        "different",
        "different photos",
        "two different photos",
        "different images",
        "not the same",
        "no",
    ],
}


@dataclass(frozen=True)
class SimilarityConfig(TaskConfig):
    form: str = "pair"  # "pair": same photo or not; "choice": which of K candidates matches a reference
    candidates: int = 4  # choice form: K candidates lettered A, B, ...; one from the reference's photo
    strength: str = "standard"  # "standard": SimCLR views; "strong": SSL4RL's strong variant (see augment)
    view_size: int = 224  # side of every view in pixels (a multiple of 28 suits Qwen2.5-VL)
    per_image: int = 1  # puzzles per source image (SSL4RL makes two), each with its own seed
    min_side: int = 64  # smaller sources are skipped
    min_texture: float = 0.03  # flatter sources are skipped, flatter views redrawn
    duplicate_threshold: float = 0.06  # partners this close to the source (or its mirror) are copies
    partner_tries: int = 4  # partner draws allowed beyond those needed, to get past copies and repeats
    view_tries: int = 3  # draws per view before a flat one skips the image

    def check(self):
        if self.form not in ("pair", "choice"):
            raise ValueError("form must be 'pair' or 'choice'")
        if not 2 <= self.candidates <= 8:
            raise ValueError("candidates must be 2..8 (letters A..H)")
        if self.strength not in augment.STRENGTHS:
            raise ValueError(f"strength must be one of {augment.STRENGTHS}")
        if self.view_size < 28 or self.min_side < 28:
            raise ValueError("view_size and min_side must be at least 28 pixels")
        if not 1 <= self.per_image <= 8 or self.partner_tries < 0 or self.view_tries < 1:
            raise ValueError("per_image must be 1..8, partner_tries >= 0 and view_tries >= 1")


def _pixels_sha(image: Image.Image) -> str:
    """sha256 of the decoded RGB pixels: the builder hands partners over decoded, without their file hash."""
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


@register
class Similarity(Task):
    name = "similarity"
    Config = SimilarityConfig
    summary = "Two SimCLR views of one photo or of two; answer positive/negative (or pick the matching view)."

    def per_image(self) -> int:
        return self.config.per_image

    def _partners(
        self, image: Image.Image, sha: str, need: int, ctx: Context
    ) -> list[tuple[Image.Image, str]]:
        """`need` distinct, textured partners with their pixel hashes, none a near-duplicate of the source."""
        own = ops.thumbnail(image)
        chosen, shas, reason = [], {sha}, "no_partner"
        for _ in range(need + self.config.partner_tries):
            other = ctx.partner()  # raises Skip("no_partner") when the split has no other image
            thumb, other_sha = ops.thumbnail(other), _pixels_sha(other)
            if (
                min(ops.distance(own, thumb), ops.distance(own, thumb[:, ::-1]))
                < self.config.duplicate_threshold
            ):
                reason = "near_duplicate_partner"
            elif other_sha in shas:
                reason = "repeated_partner"
            elif ops.texture(other) < self.config.min_texture:
                reason = "low_texture_partner"
            else:
                chosen.append((other, other_sha))
                shas.add(other_sha)
                if len(chosen) == need:
                    return chosen
        raise Skip(reason)

    def _view(
        self, image: Image.Image, sha: str, origin: str, ctx: Context
    ) -> tuple[Image.Image, dict[str, Any]]:
        cfg = self.config
        for _ in range(cfg.view_tries):
            seed = int(ctx.rng.integers(2**31))
            view, applied = augment.apply(augment.simclr(cfg.view_size, cfg.strength), image, seed)
            if ops.texture(view) >= cfg.min_texture:
                return view, {"from": origin, "pixels_sha256": sha, "seed": seed, "applied": applied}
        raise Skip("low_texture_view")

    def _caveat(self) -> str:
        """What every view went through, and what it may have gone through: never more than can happen."""
        pipeline = augment.simclr(self.config.view_size, self.config.strength)
        maybe = augment.describe([{"name": n} for n in augment.names(pipeline)])
        size = self.config.view_size
        return (
            f"Each image is a random crop of a photo, resized to {size}x{size} pixels, and may also have "
            f"been {augment.join(maybe, 'or')}."
        )

    def make(self, image: Image.Image, ctx: Context) -> Puzzle:
        cfg = self.config
        if min(image.size) < cfg.min_side:
            raise Skip("too_small")
        if ops.texture(image) < cfg.min_texture:
            raise Skip("low_texture")
        # partners are drawn before the answer, for positives too, so that a missing partner skips
        # positives and negatives alike and the answers stay balanced
        sha = _pixels_sha(image)
        partners = self._partners(image, sha, 1 if cfg.form == "pair" else cfg.candidates - 1, ctx)
        if cfg.form == "pair":
            options = ["positive", "negative"]
            index = ctx.balanced(2)
            anchor, first = self._view(image, sha, "source", ctx)
            second_source = (image, sha, "source") if index == 0 else (*partners[0], "partner")
            other, second = self._view(*second_source, ctx)
            prompt = (
                f"Image 1: <image>\nImage 2: <image>\n{self._caveat()} Answer positive if both come from the "
                "same photo and negative if they come from two different photos. "
                "Do the two images come from the same photo?"
            )
            images, views, aliases = [anchor, other], [first, second], _PAIR_ALIASES
        else:
            options = list(string.ascii_uppercase[: cfg.candidates])
            index = ctx.balanced(cfg.candidates)
            anchor, first = self._view(image, sha, "source", ctx)
            sources = partners[:index] + [(image, sha)] + partners[index:]
            made = [self._view(*s, "source" if k == index else "partner", ctx) for k, s in enumerate(sources)]
            lines = "\n".join(f"{letter}: <image>" for letter in options)
            prompt = (
                f"Reference: <image>\n{lines}\n{self._caveat()} Exactly one of the candidates {options[0]} "
                f"to {options[-1]} comes from the same photo as the reference; each of the others comes from "
                "a different photo. Which candidate comes from the reference's photo?"
            )
            images, views = [anchor] + [m[0] for m in made], [first] + [m[1] for m in made]
            aliases = {o: [f"candidate {o}", f"image {o}"] for o in options}
        verifier = {"kind": "choice", "options": options, "aliases": aliases}
        meta = {"form": cfg.form, "answer_index": index, "pixels_sha256": sha, "views": views}
        return Puzzle(images, prompt, options[index], verifier, meta)
