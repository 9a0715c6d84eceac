"""The noise drawn at grid points: one seeded bank shared by every image, or per image.

``noise="shared"`` (the default): row i of ``noise_bank(x0_shape, noise_bank_size,
noise_seed)`` is the draw of grid position i (adaptive stages: of the i-th timestep
evaluated), for every image -- the reference's ``save_noise.py`` bank.
``noise="per_image"``: each image draws its own rows from a generator seeded by
``noise_seed`` and a SHA-256 of the image's pixels, so an image's noise is the same in
every run and every example it appears in, and differs between images.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import torch

from .options import DEFAULT_NOISE_BANK_SIZE, DEFAULT_NOISE_SEED


def noise_bank(
    shape: Sequence[int], size: int = DEFAULT_NOISE_BANK_SIZE, seed: int = DEFAULT_NOISE_SEED
) -> torch.Tensor:
    """``(size, *shape)`` standard normal float32 noise on the CPU from its own generator.

    Equal to ``torch.manual_seed(seed); torch.randn(size, *shape)`` (the reference's
    ``save_noise.py`` with seed 42 and size 1024) without touching the global RNG.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn((size, *shape), generator=generator, dtype=torch.float32)


def image_seed(image: Any, seed: int) -> int:
    """A 63-bit seed from ``seed`` and the image's mode, size and pixels."""
    digest = hashlib.sha256(f"{seed}\0{image.mode}\0{image.size}\0".encode())
    digest.update(image.tobytes())
    return int.from_bytes(digest.digest()[:8], "little") >> 1


def per_image_noise(images: Sequence[Any], shape: Sequence[int], size: int, seed: int) -> torch.Tensor:
    """``(n_images, size, *shape)``: image j's own draws (:func:`image_seed`)."""
    return torch.stack([noise_bank(shape, size, image_seed(image, seed)) for image in images])
