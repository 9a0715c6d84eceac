"""The callback every strategy runs on: errors of (image, key, grid position) items of one example.

:class:`CellEvaluator` holds an example's clean inputs (one ``family.encode_image`` per
image), its conditions (one ``family.embed`` of the keys) and its noise, and evaluates
items in batches of the scorer's ``batch_size`` through ``family.batch_terms``, halving the
batch after running out of device memory (the same items again, in smaller batches).
Item order is the caller's: it fixes which items share a batch, so a strategy that
reproduces a reference's batching lists its items in the reference's order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from .family import select_rows
from .noise import per_image_noise

if TYPE_CHECKING:
    from .scorer import DiffusionScorer

Item = tuple[int, int, int]  # (image index, key index, grid position)


class CellEvaluator:
    """Errors of one example's items; construct inside ``torch.inference_mode()``.

    ``images``: the example's images (x0 computed here); ``keys``: the conditioning keys
    whose rows the items' key index selects; ``n_draws``: noise draws per image needed
    (``noise=per_image`` only).
    """

    def __init__(
        self, scorer: "DiffusionScorer", images: Sequence[Any], keys: Sequence[str], n_draws: int | None = None
    ) -> None:
        family = scorer.family
        self.scorer = scorer
        self.family = family
        self.x0 = torch.stack([family.encode_image(image) for image in images])
        self.cond = family.embed(list(keys))
        if scorer.options.noise == "per_image":
            size = n_draws or len(scorer.timesteps)
            self.noise = per_image_noise(images, family.x0_shape, size, scorer.options.noise_seed).to(family.device)
            self.per_image = True
        else:
            self.noise = scorer.shared_noise()[None]
            self.per_image = False
        self.n_terms = len(family.term_names)

    def terms(self, items: Sequence[Item], grid: np.ndarray, draws: np.ndarray | None = None) -> np.ndarray:
        """(n_items, n_terms) float32 terms. Grid position i means index ``grid[i]`` of the
        schedule with noise draw ``draws[i]`` (default: i)."""
        device = self.family.device
        index = torch.as_tensor(np.asarray(items, dtype=np.int64).reshape(-1, 3), device=device)
        timesteps = torch.as_tensor(np.asarray(grid), dtype=torch.long, device=device)
        draw_of = torch.as_tensor(
            np.arange(len(grid)) if draws is None else np.asarray(draws), dtype=torch.long, device=device
        )
        out = torch.empty((len(index), self.n_terms), dtype=torch.float32, device=device)
        start = 0
        while start < len(index):
            j, k, i = index[start : start + self.scorer.batch_size].unbind(dim=1)
            noise = self.noise[j if self.per_image else torch.zeros_like(j), draw_of[i]]
            try:
                terms = self.family.batch_terms(self.x0[j], noise, timesteps[i], select_rows(self.cond, k))
            except torch.OutOfMemoryError:
                self.scorer.shrink_batch()
                continue  # the same items again, in smaller batches
            out[start : start + len(j)] = terms.reshape(len(j), self.n_terms)
            start += len(j)
        return out.cpu().numpy()

    def errors(self, items: Sequence[Item], grid: np.ndarray, draws: np.ndarray | None = None) -> np.ndarray:
        """(n_items,) float32 errors: the family's reduction of :meth:`terms`."""
        terms = self.terms(items, grid, draws)
        positions = np.asarray(items, dtype=np.int64).reshape(-1, 3)[:, 2]
        return np.ascontiguousarray(self.family.reduce(terms, np.asarray(grid)[positions]), dtype=np.float32)
