"""The scorer contract, checked on every kind of registered scorer with tiny offline models.

Named presets (clip-vit-l14, sd2, ...) differ from these only in the weights they load, which
no test here can fetch; each prefix family below goes through the same factory code.
"""

import json

import numpy as np
import pytest
from PIL import Image

from winoground_eval import registry
from winoground_eval.contracts import Example, evaluate_examples


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8)) for i in range(3)]


CAPTIONS = ["a red circle left of a blue square", "a blue circle left of a red square", "a green triangle"]


@pytest.fixture(scope="module")
def scorers(tmp_path_factory):
    from winoground_eval.baselines.tiny_clip import TINY_ARCH, write_tiny_clip
    from winoground_eval.diffusion.tiny import write_tiny_sd

    root = tmp_path_factory.mktemp("models")
    config, ckpt = write_tiny_clip(root / "clip")
    sd = write_tiny_sd(root / "sd", prediction_type="epsilon", seed=0)
    sdv = write_tiny_sd(root / "sdv", prediction_type="v_prediction", pixel_space=True, seed=1)
    return {
        "dummy": lambda **kw: registry.resolve_scorer("dummy")(**kw),
        "open_clip": lambda **kw: registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{ckpt}")(arch_config=str(config), device="cpu", **kw),
        "diffusers": lambda **kw: registry.resolve_scorer(f"diffusers:{sd}")(device="cpu", n_timesteps=5, **kw),
        "diffusers-pixel-v": lambda **kw: registry.resolve_scorer(f"diffusers:{sdv}")(device="cpu", n_timesteps=5, **kw),
    }


KINDS = ["dummy", "open_clip", "diffusers", "diffusers-pixel-v"]
BATCHED = {"open_clip", "diffusers", "diffusers-pixel-v"}


@pytest.mark.parametrize("kind", KINDS)
def test_shape_and_permutations(scorers, kind):
    scorer = scorers[kind]()
    images = _images()
    s = np.asarray(scorer.score(images, CAPTIONS))
    assert s.shape == (3, 3) and np.all(np.isfinite(s))
    perm = [2, 0, 1]
    s_cap = np.asarray(scorer.score(images, [CAPTIONS[p] for p in perm]))
    np.testing.assert_allclose(s_cap, s[:, perm], rtol=1e-5, atol=1e-6)
    s_img = np.asarray(scorer.score([images[p] for p in perm], CAPTIONS))
    np.testing.assert_allclose(s_img, s[perm, :], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_captions_give_equal_columns(scorers, kind):
    s = np.asarray(scorers[kind]().score(_images()[:2], [CAPTIONS[0], CAPTIONS[1], CAPTIONS[0]]))
    np.testing.assert_array_equal(s[:, 0], s[:, 2])


@pytest.mark.parametrize("kind", sorted(BATCHED))
def test_batch_size_does_not_change_scores(scorers, kind):
    images = _images()[:2]
    a = np.asarray(scorers[kind](batch_size=1).score(images, CAPTIONS[:2]))
    b = np.asarray(scorers[kind](batch_size=7).score(images, CAPTIONS[:2]))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.array_equal(np.argsort(a, axis=1), np.argsort(b, axis=1))


@pytest.mark.parametrize("kind", KINDS)
def test_batched_evaluate_equals_per_example_score_and_config_is_json(scorers, kind):
    scorer = scorers[kind]()
    images = _images()
    examples = [Example(str(i), (images[i], images[(i + 1) % 3]), (CAPTIONS[i], CAPTIONS[(i + 1) % 3])) for i in range(3)]
    results = evaluate_examples(scorer, examples)
    for ex, res in zip(examples, results):
        np.testing.assert_allclose(res.scores, scorer.score(ex.images, ex.captions), rtol=1e-5, atol=1e-6)
    config = scorer.config()
    json.dumps(config)
    assert "device" not in config and "batch_size" not in config


def test_every_registered_target_exists():
    for table in (registry.TASKS, registry.SCORERS, registry.SCORER_PREFIXES):
        for name, entry in table.items():
            assert callable(registry.load_target(entry.target)), name
