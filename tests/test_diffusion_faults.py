"""Out of device memory: the diffusion scorer halves its batch and retries; it gives up only at 1."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from winoground_eval.core.errors import ScoreError
from winoground_eval.diffusion.presets import from_diffusers_spec


@pytest.fixture(scope="module")
def tiny(tiny_sd):
    return tiny_sd(seed=0)


IMAGES = [Image.new("RGB", (20, 20), (200, 30, 30)), Image.new("RGB", (20, 20), (30, 30, 200))]
CAPTIONS = ["a red square", "a blue square"]


class _OOMAbove:
    """Wraps a UNet; raises torch.OutOfMemoryError for batches larger than ``limit``."""

    def __init__(self, unet, limit):
        self.unet, self.limit, self.ooms = unet, limit, 0

    def __call__(self, x, t, **kw):
        if x.shape[0] > self.limit:
            self.ooms += 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.unet(x, t, **kw)


def test_oom_halves_the_batch_and_gives_the_same_scores(tiny, caplog):
    ref = from_diffusers_spec(str(tiny), device="cpu", n_timesteps=6, batch_size=3).score(IMAGES, CAPTIONS)
    scorer = from_diffusers_spec(str(tiny), device="cpu", n_timesteps=6, batch_size=12)
    scorer._unet = wrapper = _OOMAbove(scorer._unet, limit=3)
    with caplog.at_level(logging.WARNING, logger="winoground_eval"):
        got = scorer.score(IMAGES, CAPTIONS)
    assert wrapper.ooms == 2 and scorer.batch_size == 3  # 12 -> 6 -> 3
    assert "batch size halved to 3" in caplog.text
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # seconds of tiny-UNet calls; the OOM-halving test stays fast
def test_oom_at_batch_size_one_is_a_clear_error(tiny):
    scorer = from_diffusers_spec(str(tiny), device="cpu", n_timesteps=2, batch_size=4)
    scorer._unet = _OOMAbove(scorer._unet, limit=0)
    with pytest.raises(ScoreError, match="out of memory on cpu even at batch size 1"):
        scorer.score(IMAGES, CAPTIONS)
