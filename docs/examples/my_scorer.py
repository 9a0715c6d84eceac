"""A complete scorer in one file: how close is the image's colour to the colour a caption names?

No weights, numpy only. Run it without touching the package:

    wg-eval run --task shapes --scorer docs/examples/my_scorer.py:make_scorer -o sharpness=2.0
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image

COLOURS = {"red": (215, 35, 35), "green": (35, 160, 55), "blue": (35, 70, 215), "yellow": (230, 195, 20),
           "purple": (140, 50, 170)}


class ColourScorer:
    """score[j, k] = -sharpness * distance between image j's most saturated colour and the
    mean RGB of the colour words in caption k (0 when the caption names no colour)."""

    def __init__(self, sharpness: float = 1.0):
        self.sharpness = sharpness

    def config(self) -> dict[str, Any]:
        return {"name": "colour-distance", "sharpness": self.sharpness}  # everything that changes the numbers

    def score(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        image_colours = np.array([self._colour(im) for im in images])  # (n_images, 3)
        scores = np.zeros((len(images), len(captions)))
        for k, caption in enumerate(captions):
            named = [COLOURS[w] for w in caption.lower().split() if w in COLOURS]
            if named:
                distance = np.linalg.norm(image_colours - np.mean(named, axis=0), axis=1) / 255.0
                scores[:, k] = -self.sharpness * distance
        return scores

    @staticmethod
    def _colour(image: Image.Image) -> np.ndarray:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
        saturation = pixels.max(axis=1) - pixels.min(axis=1)
        return pixels[saturation >= np.quantile(saturation, 0.9)].mean(axis=0)


def make_scorer(*, sharpness: float = 1.0, device: str | None = None) -> ColourScorer:
    """The factory `--scorer my_scorer.py:make_scorer` calls: -o options as keyword arguments,
    plus --device / --batch-size / --dtype when it takes them (this one ignores the device)."""
    return ColourScorer(sharpness=sharpness)
