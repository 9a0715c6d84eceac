"""The Diffusion Classifier scorer on tiny random SD-like models, offline.

The models are written with ``save_pretrained`` and loaded through ``from_pretrained``
(the same code path as real Stable Diffusion): epsilon and v-prediction latent models and
a pixel-space model without VAE.
"""

import json
import shutil
import time
import typing

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from winoground_eval.core import registry
from winoground_eval.core.contracts import Example
from winoground_eval.core.errors import ConfigError, ModelLoadError
from winoground_eval.core.metrics import winoground_correct
from winoground_eval.core.overrides import parse_overrides
from winoground_eval.diffusion import DiffusionScorer, noise_bank, scores_from_errors, timestep_grid
from winoground_eval.diffusion.loading import load_components
from winoground_eval.diffusion.presets import from_diffusers_spec
from winoground_eval.testing.tiny_sd import build_clip_tokenizer

CAPTIONS = ("a dog chasing a cat", "a cat chasing a dog", "some plants surrounding a lightbulb")


@pytest.fixture(scope="module")
def models(tiny_sd):
    return {
        "epsilon": tiny_sd(prediction_type="epsilon", seed=0),
        "v_prediction": tiny_sd(prediction_type="v_prediction", seed=1),
        "pixel": tiny_sd(pixel_space=True, seed=2),
    }


@pytest.fixture(scope="module")
def loaded(models):
    """Components loaded once per model through the from_pretrained path."""
    return {kind: load_components(str(path)) for kind, path in models.items()}


def make(loaded, kind="epsilon", **options):
    """A scorer on already-loaded components (loading is the slow part of these tests)."""
    components, source = loaded[kind]
    return DiffusionScorer(**components, source=source, **{"device": "cpu", **options})


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    # different sizes and aspect ratios exercise resize + center crop; one greyscale image
    shapes = [(40, 56, 3), (48, 36, 3), (33, 33)]
    return [Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)) for shape in shapes]


@pytest.fixture(scope="module")
def scorer(models):
    return from_diffusers_spec(str(models["epsilon"]), device="cpu", n_timesteps=6, batch_size=8)


# ---------------------------------------------------------------- reference arithmetic


def _reference_transform(resolution):
    """The reference get_transform(BICUBIC, size), written with torchvision as it is."""
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode

    return T.Compose(
        [
            T.Resize(resolution, interpolation=InterpolationMode.BICUBIC),
            T.CenterCrop(resolution),
            lambda im: im.convert("RGB"),
            T.ToTensor(),
            T.Normalize([0.5], [0.5]),
        ]
    )


def _reference_errors(scorer, image, caption, n_timesteps, loss="l2", batch_size=3):
    """Our own copy of the reference eval_prob (--randomize_noise), one pair at a time.

    Noising is written by hand from alphas_cumprod, as the reference does; v-prediction and
    the l1/huber losses follow the same pattern with their textbook targets.
    """
    unet, vae, text_encoder, tokenizer = scorer.unet, scorer.vae, scorer.text_encoder, scorer.tokenizer
    acp = scorer.scheduler.alphas_cumprod
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        all_noise = torch.randn(1024, *scorer.latent_shape)
    t_interval = 1000 // n_timesteps
    ts = list(range(t_interval // 2, 1000, t_interval))[:n_timesteps]
    with torch.no_grad():
        x = _reference_transform(scorer.resolution)(image).unsqueeze(0)
        latent = x if vae is None else vae.encode(x).latent_dist.mean * vae.config.scaling_factor
        ids = tokenizer(
            [caption], padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        emb = text_encoder(ids.input_ids)[0]
    errors = torch.zeros(len(ts))
    with torch.inference_mode():
        for idx in range(0, len(ts), batch_size):
            batch_ts = torch.tensor(ts[idx : idx + batch_size])
            noise = all_noise[idx : idx + len(batch_ts)]
            a = acp[batch_ts].view(-1, 1, 1, 1)
            noised = latent * a**0.5 + noise * (1 - a) ** 0.5
            pred = unet(noised, batch_ts, encoder_hidden_states=emb.repeat(len(batch_ts), 1, 1)).sample
            if scorer.prediction_type == "v_prediction":
                target = a**0.5 * noise - (1 - a) ** 0.5 * latent
            else:
                target = noise
            fn = {"l2": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}[loss]
            errors[idx : idx + len(batch_ts)] = fn(target, pred, reduction="none").mean(dim=(1, 2, 3))
    return errors.numpy()


@pytest.mark.parametrize(
    "kind, loss", [("epsilon", "l2"), ("v_prediction", "l2"), ("pixel", "l2"), ("epsilon", "huber"), ("pixel", "l1")]
)
def test_errors_equal_the_reference_arithmetic(loaded, images, kind, loss):
    n_t = 5
    scorer = make(loaded, kind, n_timesteps=n_t, batch_size=7, loss=loss)
    errors = scorer.errors(images[:2], CAPTIONS[:2])
    assert errors.shape == (2, 2, n_t) and errors.dtype == np.float32
    for j, image in enumerate(images[:2]):
        for k, caption in enumerate(CAPTIONS[:2]):
            ref = _reference_errors(scorer, image, caption, n_t, loss=loss)
            np.testing.assert_allclose(errors[j, k], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scorer.score(images[:2], CAPTIONS[:2]), -errors.astype(np.float64).mean(-1))


def test_default_noise_bank_is_the_seed_42_bank(scorer):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        reference = torch.randn(1024, 4, 64, 64)  # scripts/save_noise.py for 512 px
        state = torch.get_rng_state()
        bank = noise_bank((4, 64, 64))
        assert torch.equal(torch.get_rng_state(), state), "noise_bank must not touch the global RNG"
    assert torch.equal(bank, reference)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        assert torch.equal(scorer.noise, torch.randn(1024, *scorer.latent_shape))


def test_timestep_grid_is_the_reference_grid():
    for n in (1, 4, 10, 25, 50, 200, 1000):
        interval = 1000 // n
        assert timestep_grid(n).tolist() == list(range(interval // 2, 1000, interval))
    assert timestep_grid(3).tolist() == [166, 499, 832]  # T not divisible by n: exactly n points
    assert timestep_grid(10, t_range=(400, 800)).tolist() == list(range(420, 800, 40))
    assert timestep_grid(4, t_range=(0, 1000)).tolist() == timestep_grid(4).tolist()
    for n, t_range in ((1001, None), (0, None), (5, (300, 300)), (5, (900, 1001)), (50, (0, 40))):
        with pytest.raises(ConfigError):
            timestep_grid(n, t_range=t_range)


def test_tokenizer_is_clip_bpe(tmp_path):
    tok = build_clip_tokenizer(tmp_path, model_max_length=20)
    ids = tok(["a dog chasing a Cat!! 123 it's"], padding="max_length", max_length=20, truncation=True).input_ids[0]
    # ids from open_clip's own tokenizer for the same text (SD 1.x/2.x share this vocabulary)
    assert ids[:13] == [49406, 320, 1929, 13376, 320, 2368, 748, 272, 273, 274, 585, 568, 49407]
    assert len(tok) == 49408 and tok.model_max_length == 20


# ---------------------------------------------------------------- contract and invariances


def test_permuting_captions_permutes_columns_exactly(scorer, images):
    e = scorer.errors(images, CAPTIONS)
    perm = [2, 0, 1]
    e_perm = scorer.errors(images, [CAPTIONS[p] for p in perm])
    np.testing.assert_array_equal(e_perm, e[:, perm])  # captions run in sorted order: bit-identical
    e_img = scorer.errors([images[p] for p in perm], CAPTIONS)
    np.testing.assert_allclose(e_img, e[perm], rtol=1e-5, atol=1e-6)


def test_duplicate_captions_give_identical_columns_at_no_cost(scorer, images):
    [res] = scorer.evaluate([Example("d", tuple(images[:2]), (CAPTIONS[0], CAPTIONS[1], CAPTIONS[0]))])
    np.testing.assert_array_equal(res.arrays["errors"][:, 0], res.arrays["errors"][:, 2])
    np.testing.assert_array_equal(res.scores[:, 0], res.scores[:, 2])
    assert res.info["unet_calls"] == 2 * 2 * scorer.n_timesteps  # the duplicate is not recomputed


def test_batch_size_run_and_order_do_not_change_results(loaded, images):
    # CPU float32 kernels round differently in the last bits for some batch sizes (about
    # 1e-6 on these errors), so across batch sizes we require a tight tolerance and
    # identical decisions; for a fixed batch size, runs and evaluation orders are bit-identical.
    examples = [
        Example("a", (images[0], images[1]), CAPTIONS[:2]),
        Example("b", (images[2], images[0]), (CAPTIONS[2], CAPTIONS[0])),
    ]
    by_size = {}
    for bs in (1, 5, 64):
        by_size[bs] = make(loaded, n_timesteps=4, batch_size=bs).evaluate(examples)
    for bs in (5, 64):
        for a, b in zip(by_size[1], by_size[bs]):
            np.testing.assert_allclose(a.arrays["errors"], b.arrays["errors"], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
            assert winoground_correct(a.scores) == winoground_correct(b.scores)
            assert np.array_equal(np.argsort(a.scores, axis=1), np.argsort(b.scores, axis=1))
    scorer = make(loaded, n_timesteps=4, batch_size=5)
    again = scorer.evaluate(examples)
    reversed_order = scorer.evaluate(examples[::-1])[::-1]
    for a, b, c in zip(by_size[5], again, reversed_order):
        np.testing.assert_array_equal(a.arrays["errors"], b.arrays["errors"])
        np.testing.assert_array_equal(a.arrays["errors"], c.arrays["errors"])


def test_normalize_uncond_keeps_text_decisions_and_changes_image_comparisons(loaded, images):
    plain = make(loaded, n_timesteps=4)
    norm = make(loaded, n_timesteps=4, normalize="uncond")
    ex = Example("x", (images[0], images[1]), CAPTIONS[:2])
    [a], [b] = plain.evaluate([ex]), norm.evaluate([ex])
    assert "uncond_errors" not in a.arrays and b.arrays["uncond_errors"].shape == (2, 4)
    assert b.arrays["uncond_errors"].dtype == np.float32
    np.testing.assert_array_equal(a.arrays["errors"], b.arrays["errors"])  # raw errors are stored
    assert b.info["unet_calls"] == a.info["unet_calls"] + 2 * 4  # one more call per image and timestep
    np.testing.assert_allclose(b.scores, scores_from_errors(b.arrays["errors"], b.arrays["uncond_errors"]))
    # the uncond error is the empty prompt's error at the same (t_i, eps_i)
    np.testing.assert_allclose(b.arrays["uncond_errors"], plain.errors(ex.images, [""])[:, 0], rtol=1e-5, atol=1e-6)
    shift = b.scores - a.scores  # one constant per image (row)
    np.testing.assert_allclose(shift[:, 0], shift[:, 1], atol=1e-9)
    assert not np.isclose(shift[0, 0], shift[1, 0])  # so image comparisons move
    for j in range(2):
        assert (a.scores[j, 0] > a.scores[j, 1]) == (b.scores[j, 0] > b.scores[j, 1])
    np.testing.assert_array_equal(norm.score(ex.images, ex.captions), b.scores)


@pytest.mark.slow  # loads and scores the three variants again (the reference-arithmetic test covers each fast)
def test_variants_load_and_score(models, images):
    for kind, path in models.items():
        scorer = registry.resolve_scorer(f"diffusers:{path}")(device="cpu", n_timesteps=3)
        s = scorer.score(images[:2], CAPTIONS[:2])
        assert s.shape == (2, 2) and np.all(np.isfinite(s))
        config = scorer.config()
        assert config["prediction_type"] == ("v_prediction" if kind == "v_prediction" else "epsilon")
        if kind == "pixel":
            assert config["components"]["vae"] is None
            assert config["resolution"] == scorer.unet.config.sample_size and scorer.latent_shape == (3, 16, 16)
        else:
            assert config["resolution"] == 32 and scorer.latent_shape == (4, 16, 16)


def test_config_records_what_changes_numbers(models, loaded, scorer, tiny_sd):
    config = scorer.config()
    json.dumps(config)
    assert "batch_size" not in json.dumps(config) and "device" not in config
    for key in (
        "n_timesteps",
        "noise_seed",
        "noise_bank_size",
        "loss",
        "resolution",
        "interpolation",
        "dtype",
        "normalize",
        "prediction_type",
        "fingerprint",
        "alphas_cumprod_sha256",
        "compile",
    ):
        assert key in config, key
    assert config["dtype"] == "float32" and config["source"] == "local"
    assert make(loaded, n_timesteps=6, batch_size=1).config() == config
    assert make(loaded, n_timesteps=6, t_range=(0, 1000)).config() == config  # the default, spelled out
    assert make(loaded, n_timesteps=7).config() != config
    windowed = make(loaded, n_timesteps=6, t_range=(400, 800))
    assert windowed.config()["t_range"] == [400, 800] and windowed.timesteps.tolist() == list(range(433, 800, 66))
    # other weights in an identical layout get another fingerprint
    other = tiny_sd(seed=5)
    assert from_diffusers_spec(str(other), device="cpu", n_timesteps=6).config()["fingerprint"] != config["fingerprint"]


def test_options_type_check_as_overrides(models):
    for factory in (registry.resolve_scorer("sd2"), registry.resolve_scorer(f"diffusers:{models['epsilon']}")):
        parsed = parse_overrides(
            factory,
            [
                "n_timesteps=100",
                "dtype=bfloat16",
                "loss=huber",
                "normalize=uncond",
                "resolution=none",
                "compile=false",
                "t_range=400,800",
            ],
            what="scorer",
        )
        assert parsed == {
            "n_timesteps": 100,
            "dtype": "bfloat16",
            "loss": "huber",
            "normalize": "uncond",
            "resolution": None,
            "compile": False,
            "t_range": (400, 800),
        }
        for bad in ("loss=l3", "n_timesteps=many", "interpolation=box", "colour=red"):
            with pytest.raises(ConfigError):
                parse_overrides(factory, [bad], what="scorer")
    for name in ("sd2", "sd2-768", "sd2.1", "sd1.5", "sd1.4"):
        hints = typing.get_type_hints(registry.resolve_scorer(name))
        assert hints["normalize"] == typing.Literal["none", "uncond"]


def test_bad_options_are_config_errors(loaded):
    for bad in (
        {"n_timesteps": 0},
        {"n_timesteps": 2000},
        {"noise_bank_size": 3, "n_timesteps": 4},
        {"batch_size": 0},
        {"resolution": 33},
        {"loss": "l3"},
        {"dtype": "float64"},
    ):
        with pytest.raises(ConfigError):
            make(loaded, **bad)
    with pytest.raises(ConfigError, match="loss"):  # checked before anything is downloaded
        registry.resolve_scorer("sd2")(loss="l3")


# ---------------------------------------------------------------- loading failures


def test_unavailable_weights_fail_fast_with_the_model_id(tmp_path, monkeypatch, models):
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match="wg-eval-tests/no-such-model"):
        from_diffusers_spec("wg-eval-tests/no-such-model", device="cpu")  # offline here; 404 online
    with pytest.raises(ModelLoadError, match="stabilityai/stable-diffusion-2-base"):
        registry.resolve_scorer("sd2")(device="cpu")
    assert time.perf_counter() - t0 < 15
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE.*diffusers:"):
        from_diffusers_spec("wg-eval-tests/no-such-model", device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        from_diffusers_spec(str(tmp_path / "missing"), device="cpu")
    broken = shutil.copytree(models["epsilon"], tmp_path / "broken")
    shutil.rmtree(broken / "unet")
    with pytest.raises(ModelLoadError, match="unet"):
        from_diffusers_spec(str(broken), device="cpu")


# adaptive stages: tests/test_diffusion_adaptive.py


def test_components_constructor_matches_from_pretrained(models, images, scorer):
    from winoground_eval.testing.tiny_sd import tiny_components

    parts = tiny_components(seed=0)
    direct = DiffusionScorer(**parts, device="cpu", n_timesteps=6, batch_size=8)
    np.testing.assert_array_equal(direct.errors(images[:2], CAPTIONS[:2]), scorer.errors(images[:2], CAPTIONS[:2]))
    assert direct.config()["model"] == "<in-memory components>"
