"""A deterministic, model-free chance scorer for tests and plumbing.

Each (image, caption) pair gets a pseudo-random score, uniform in [0, 1), drawn from a
SHA-256 of the seed, the image's pixels and size, and the caption (never Python's salted
``hash()``). So the score depends on both the image and the caption, is the same on every
machine and every run, permuting captions permutes columns, equal inputs give equal
scores, and different inputs practically never tie (53 random bits each).

It is the chance baseline, not a model: on a paired task it gets about 25% text, 25%
image and 16.7% group (what random scores get), with no ties. An earlier version scored a
bag of words; on pairs made of the same words in another order (every shapes pair) that
tied every text comparison and got an all-zero table that looked broken.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
from PIL import Image

_METHOD = "sha256-uniform"  # recorded in config(): a change of method must change the run id


class DummyScorer:
    """Pseudo-random uniform scores from SHA-256 of (seed, image pixels, caption)."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def config(self) -> dict[str, Any]:
        from winoground_eval.core.scorerconfig import header

        return {**header("dummy", 1), "name": "dummy", "seed": self.seed, "method": _METHOD}

    def score(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """(n_images, n_captions) float64 matrix in [0, 1), higher = better match."""
        image_keys = [self._image_key(im) for im in images]
        scores = np.empty((len(images), len(captions)), dtype=np.float64)
        for j, key in enumerate(image_keys):
            for k, caption in enumerate(captions):
                scores[j, k] = self._uniform(key, caption)
        return scores

    def _image_key(self, image: Image.Image) -> bytes:
        rgb = image.convert("RGB")
        return hashlib.sha256(f"{rgb.width}x{rgb.height}\x00".encode() + rgb.tobytes()).digest()

    def _uniform(self, image_key: bytes, caption: str) -> float:
        digest = hashlib.sha256(f"{self.seed}\x00".encode() + image_key + caption.encode("utf-8")).digest()
        return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)
