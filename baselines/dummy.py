"""A deterministic, model-free scorer for tests and plumbing.

An image becomes a few colour statistics of a small copy of it; a caption becomes the sum
of one pseudo-random vector per lowercased word, drawn from a SHA-256 of the seed and the
word (never Python's salted ``hash()``). The score is their dot product: it depends on both
the image and the caption, is the same on every machine and every run, and, being a bag
of words, ignores word order, which is a realistic baseline flaw on Winoground.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Sequence

import numpy as np
from PIL import Image

_SIDE = 8  # images are reduced to _SIDE x _SIDE before the statistics
_DIM = 15  # 2x2 quadrant means of R, G, B (12) + the per-channel standard deviations (3)
_WORD = re.compile(r"[a-z0-9']+")


class DummyScorer:
    """Image colour statistics dotted with hashed bag-of-words caption vectors."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def config(self) -> dict[str, Any]:
        return {"name": "dummy", "seed": self.seed}

    def score(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """(n_images, n_captions) float64 matrix, higher = better match."""
        image_features = np.array([self._image_feature(im) for im in images], dtype=np.float64).reshape(-1, _DIM)
        caption_features = np.array([self._caption_feature(c) for c in captions], dtype=np.float64).reshape(-1, _DIM)
        return image_features @ caption_features.T

    def _image_feature(self, image: Image.Image) -> np.ndarray:
        small = image.convert("RGB").resize((_SIDE, _SIDE), Image.Resampling.BOX)
        pixels = np.asarray(small, dtype=np.float64) / 255.0  # (side, side, 3)
        half = _SIDE // 2
        quadrants = [pixels[r : r + half, c : c + half].mean(axis=(0, 1)) for r in (0, half) for c in (0, half)]
        return np.concatenate([np.concatenate(quadrants) - 0.5, pixels.std(axis=(0, 1))])

    def _caption_feature(self, caption: str) -> np.ndarray:
        vector = np.zeros(_DIM)
        for word in sorted(_WORD.findall(caption.lower())):  # sorted: word order changes no bit
            vector += self._word_vector(word)
        return vector

    def _word_vector(self, word: str) -> np.ndarray:
        digest = hashlib.sha256(f"{self.seed}\x00{word}".encode("utf-8")).digest()  # 32 bytes >= _DIM
        return np.frombuffer(digest[:_DIM], dtype=np.uint8).astype(np.float64) / 127.5 - 1.0
