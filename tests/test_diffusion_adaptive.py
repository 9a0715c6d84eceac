"""Adaptive stages exactly as the reference ``eval_prob_adaptive``, reference_fp16, the
reference's preprocessing order, sequential elimination and the CLIP prefilter, on tiny
random Stable Diffusion models saved and loaded back through the real loading path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from winoground_eval.core.contracts import Example
from winoground_eval.core.errors import ConfigError
from winoground_eval.diffusion.grid import adaptive_plan, noise_draws, planned_unet_calls, stage_positions
from winoground_eval.diffusion.presets import from_diffusers_spec
from winoground_eval.diffusion.scorer import preprocess_image

PROMPTS = [
    "a photo of a dog",
    "a photo of a cat",
    "a red square",
    "two birds on a wire",
    "a blue circle",
    "a lightbulb",
]


@pytest.fixture(scope="module")
def folder(tiny_sd):
    return tiny_sd(prediction_type="epsilon", seed=0)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8))


def _transform(resolution):
    """The reference get_transform, with torchvision as it uses it: resize, crop, THEN RGB."""
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


def reference_adaptive(scorer, image, prompts, n_samples, to_keep, loss="l2", batch_size=32, half=False):
    """A plain restatement of eval_prob_adaptive (n_trials=1) from its arithmetic, on the
    scorer's modules: returns (pred_idx, {prompt: (ts tensor, errors tensor)})."""
    unet, vae, text_encoder, tokenizer = scorer.unet, scorer.vae, scorer.text_encoder, scorer.tokenizer
    acp = scorer.scheduler.alphas_cumprod
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        all_noise = torch.randn(1024, *scorer.latent_shape)  # the reference's saved noise
    if half:
        all_noise, acp = all_noise.half(), acp.half()
    with torch.inference_mode():
        ids = tokenizer(
            prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        text_embeds = torch.cat([text_encoder(ids.input_ids[i : i + 100])[0] for i in range(0, len(prompts), 100)])
        x = _transform(scorer.resolution)(image).unsqueeze(0)
        if half:
            x = x.half()
        latent = vae.encode(x).latent_dist.mean
        latent *= vae.config.scaling_factor
    T = scorer.num_train_timesteps
    max_n = max(n_samples)
    data = {}
    t_evaluated = set()
    remaining = list(range(len(prompts)))
    start = T // max_n // 2
    t_to_eval = list(range(start, T, T // max_n))[:max_n]
    for n, keep in zip(n_samples, to_keep):
        ts, noise_idxs, embed_idxs = [], [], []
        step = len(t_to_eval) // n
        curr = [t for t in t_to_eval[step // 2 :: step][:n] if t not in t_evaluated]
        for p in remaining:
            for t_idx, t in enumerate(curr, start=len(t_evaluated)):
                ts.append(t)
                noise_idxs.append(t_idx)
                embed_idxs.append(p)
        t_evaluated.update(curr)
        errors = torch.zeros(len(ts))
        with torch.inference_mode():
            for i in range(0, len(ts), batch_size):
                bt = torch.tensor(ts[i : i + batch_size])
                noise = all_noise[noise_idxs[i : i + batch_size]]
                noised = latent * (acp[bt] ** 0.5).view(-1, 1, 1, 1) + noise * ((1 - acp[bt]) ** 0.5).view(-1, 1, 1, 1)
                t_in = bt.half() if half else bt
                pred = unet(noised, t_in, encoder_hidden_states=text_embeds[embed_idxs[i : i + batch_size]]).sample
                fn = {"l2": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}[loss]
                errors[i : i + len(bt)] = fn(noise, pred, reduction="none").mean(dim=(1, 2, 3))
        for p in remaining:
            mask = torch.tensor(embed_idxs) == p
            prev = data.get(p, (torch.zeros(0, dtype=torch.long), torch.zeros(0)))
            data[p] = (torch.cat([prev[0], torch.tensor(ts)[mask]]), torch.cat([prev[1], errors[mask]]))
        means = [-data[p][1].mean() for p in remaining]
        best = torch.topk(torch.tensor(means), k=keep, dim=0).indices.tolist()
        remaining = [remaining[i] for i in best]
    assert len(remaining) == 1
    return remaining[0], data, text_embeds


def test_plan_follows_the_reference_arithmetic():
    # the grid of max(n_samples) and each stage's evenly spaced subset
    n_grid, stages = adaptive_plan((50, 500), (5, 1))
    t_to_eval = list(range(1000 // 500 // 2, 1000, 1000 // 500))[:500]
    assert n_grid == 500 and [t_to_eval[p] for p in stage_positions(500, 50)] == t_to_eval[5::10][:50]
    assert len(stages[0].positions) == 50 and len(stages[1].positions) == 450
    # noise draws count timesteps in first-evaluation order
    n_grid, stages = adaptive_plan((2, 4), (2, 1))
    assert [s.positions for s in stages] == [(1, 3), (0, 2)]
    assert noise_draws(stages, n_grid).tolist() == [2, 0, 3, 1]
    assert planned_unet_calls(stages, 5) == 5 * 2 + 2 * 2
    # ImageNet's schedule
    n_grid, stages = adaptive_plan((50, 100, 500, 1000), (500, 50, 10, 1))
    assert sum(len(s.positions) for s in stages) == 1000


@pytest.mark.parametrize(
    "loss, n_samples, to_keep, batch_size",
    [
        ("l2", (2, 4, 8), (3, 2, 1), 32),
        pytest.param("l1", (3, 10), (2, 1), 5, marks=pytest.mark.slow),  # `make test-fast` keeps the l2 case
        pytest.param("huber", (4, 8), (4, 1), 7, marks=pytest.mark.slow),
    ],
)
def test_adaptive_equals_the_reference_restatement(folder, image, loss, n_samples, to_keep, batch_size):
    scorer = from_diffusers_spec(
        str(folder), device="cpu", loss=loss, n_samples=n_samples, to_keep=to_keep, batch_size=batch_size
    )
    calls = []
    unet = scorer._unet

    def counting(sample, *args, **kwargs):
        calls.append(len(sample))
        return unet(sample, *args, **kwargs)

    scorer._unet = counting
    [scored] = scorer.evaluate([Example("x", (image,), tuple(PROMPTS))])
    pred, data, text_embeds = reference_adaptive(
        scorer, image, PROMPTS, n_samples, to_keep, loss=loss, batch_size=batch_size
    )
    with torch.inference_mode():
        same_embeddings = torch.equal(scorer.conditioning.embed(PROMPTS), text_embeds)
    scores = scored.scores[0]
    assert int(np.argmax(scores)) == pred == scored.info["adaptive"]["pred"]
    errors = scored.arrays["errors"][0]
    grid = scorer.timesteps.tolist()
    assert errors.shape == (len(PROMPTS), max(n_samples))
    for p, (ts, errs) in data.items():
        ours = errors[p, [grid.index(int(t)) for t in ts]]
        # float32 on the CPU: the UNet batches are the reference's (same item order, same
        # batch size, same noise draws, same noising arithmetic), so the errors are equal bit
        # for bit when the caption embeddings are. The text encoder runs one caption at a
        # time here and up to 100 at a time there; a BLAS that rounds those differently in
        # the last bits gives errors within 1e-6 instead (equal on the machines tried).
        if same_embeddings:
            np.testing.assert_array_equal(ours, errs.numpy())
        else:
            np.testing.assert_allclose(ours, errs.numpy(), rtol=1e-6, atol=1e-6)
    assert np.isnan(errors).sum() == errors.size - sum(len(ts) for ts, _ in data.values())
    # the UNet evaluations are the plan's, counted at the forward pass
    _, stages = adaptive_plan(n_samples, to_keep)
    assert sum(calls) == scored.info["unet_calls"] == planned_unet_calls(stages, len(PROMPTS))
    # pruning keeps exactly the lowest-mean-error prompts at each stage
    alive = list(range(len(PROMPTS)))
    evaluated = []
    survived = np.asarray(scored.info["adaptive"]["survived"])
    for s, stage in enumerate(stages):
        evaluated += list(stage.positions)
        means = errors[alive][:, evaluated].astype(np.float64).mean(axis=1)
        kept = [alive[i] for i in np.argsort(means)[: min(stage.keep, len(alive))]]
        assert set(kept) == set(c for c in alive if survived[c] > s)
        alive = kept
    # scores rank by the stage of pruning, then by mean error
    order = np.argsort(-scores, kind="stable")
    assert all(survived[a] >= survived[b] for a, b in zip(order, order[1:]))


def test_adaptive_needs_one_image(folder, image):
    scorer = from_diffusers_spec(str(folder), device="cpu", n_samples=(2,), to_keep=(1,))
    with pytest.raises(ConfigError, match="one image"):
        scorer.evaluate([Example("x", (image, image), ("a", "b"))])


@pytest.mark.slow  # float16 on CPU: seconds per call
def test_reference_fp16_equals_the_reference_half_arithmetic(folder, image):
    n_samples, to_keep = (2, 4), (2, 1)
    try:
        scorer = from_diffusers_spec(
            str(folder),
            device="cpu",
            dtype="float16",
            reference_fp16=True,
            n_samples=n_samples,
            to_keep=to_keep,
            batch_size=4,
        )
        [scored] = scorer.evaluate([Example("x", (image,), tuple(PROMPTS[:4]))])
    except RuntimeError as exc:  # a torch without float16 CPU kernels
        pytest.skip(f"float16 on this CPU: {exc}")
    pred, data, text_embeds = reference_adaptive(
        scorer, image, PROMPTS[:4], n_samples, to_keep, batch_size=4, half=True
    )
    with torch.inference_mode():
        same_embeddings = torch.equal(scorer.conditioning.embed(PROMPTS[:4]), text_embeds)
    assert scored.info["adaptive"]["pred"] == pred
    grid = scorer.timesteps.tolist()
    for p, (ts, errs) in data.items():
        ours = scored.arrays["errors"][0, p, [grid.index(int(t)) for t in ts]]
        if same_embeddings:  # the reference's float16 noising, UNet input and loss: bit for bit
            np.testing.assert_array_equal(ours, errs.numpy())
        else:
            np.testing.assert_allclose(ours, errs.numpy(), rtol=2e-3, atol=2e-3)
    assert scorer.config()["reference_fp16"] is True
    plain = from_diffusers_spec(str(folder), device="cpu", dtype="float16", n_samples=n_samples, to_keep=to_keep)
    assert "reference_fp16" not in plain.config()


def test_palette_image_is_converted_after_resize_and_crop():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 4, (37, 50), dtype=np.uint8), mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 250, 250, 250] + [0] * (256 * 3 - 12))
    image.info["transparency"] = 2  # palette entry 2 is transparent
    ours = preprocess_image(image, 16)
    torch.testing.assert_close(ours, _transform(16)(image), rtol=0, atol=0)
    converted_first = _transform(16)(image.convert("RGB"))
    assert not torch.equal(ours, converted_first)  # the order matters for such an image
    rgba = image.convert("RGBA")
    torch.testing.assert_close(preprocess_image(rgba, 16), _transform(16)(rgba), rtol=0, atol=0)


@pytest.mark.slow  # seconds of tiny-UNet calls; the l2 adaptive case stays fast
def test_sequential_elimination_through_evaluate(folder, image):
    scorer = from_diffusers_spec(
        str(folder), device="cpu", n_timesteps=40, stopping="sequential", min_timesteps=8, round_size=8, batch_size=64
    )
    calls = []
    unet = scorer._unet
    scorer._unet = lambda sample, *a, **k: (calls.append(len(sample)), unet(sample, *a, **k))[1]
    [scored] = scorer.evaluate([Example("x", (image,), tuple(PROMPTS[:5]))])
    stop = scored.info["stopping"]
    assert stop["rule"] == "elimination" and sum(calls) == scored.info["unet_calls"] == sum(stop["timesteps"])
    survived = np.asarray(stop["survived"])
    best = int(np.argmax(scored.scores[0]))
    assert survived[best] == survived.max()
    errors = scored.arrays["errors"][0]
    assert [int((~np.isnan(row)).sum()) for row in errors] == stop["timesteps"]
    # a full budget (no look before the end) equals the plain scorer's errors
    full = from_diffusers_spec(str(folder), device="cpu", n_timesteps=16, stopping="sequential", min_timesteps=16)
    [all_of_it] = full.evaluate([Example("x", (image,), tuple(PROMPTS[:5]))])
    plain = from_diffusers_spec(str(folder), device="cpu", n_timesteps=16).errors([image], PROMPTS[:5])
    np.testing.assert_allclose(all_of_it.arrays["errors"], plain, rtol=1e-6, atol=1e-7)
    assert int(np.argmax(all_of_it.scores[0])) == int(np.argmin(plain[0].mean(axis=1)))


@pytest.mark.slow  # seconds of tiny-UNet calls; the l2 adaptive case stays fast
def test_prefilter_keeps_the_clip_top_k_before_any_unet_call(folder, image, tiny_clip):
    import open_clip

    from winoground_eval.baselines.tiny_clip import TINY_ARCH
    from winoground_eval.core.registry import resolve_scorer

    config_path, ckpt = tiny_clip(seed=0)
    open_clip.add_model_config(str(config_path))
    name = f"open_clip:{TINY_ARCH}/{ckpt}"
    clip = resolve_scorer(name)(device="cpu", arch_config=str(config_path))
    coarse = clip.score([image], PROMPTS)[0]
    top = sorted(np.argsort(-coarse, kind="stable")[:3].tolist())
    for extra in ({"n_timesteps": 4}, {"n_samples": (2, 4), "to_keep": (2, 1)}):
        scorer = from_diffusers_spec(str(folder), device="cpu", prefilter=name, prefilter_k=3, **extra)
        [scored] = scorer.evaluate([Example("x", (image,), tuple(PROMPTS))])
        assert scored.info["prefilter"]["kept"] == top
        s = scored.scores[0]
        pruned = [i for i in range(len(PROMPTS)) if i not in top]
        assert s[pruned].max() < s[top].min()
        assert list(np.argsort(-s[pruned])) == list(np.argsort(-coarse[pruned], kind="stable"))
        assert np.isnan(scored.arrays["errors"][0, pruned]).all()
        config = scorer.config()["prefilter"]
        assert config["scorer"] == name and config["k"] == 3 and config["config"] == clip.config()
    assert scored.info["unet_calls"] == 3 * 2 + 2 * 2
    with pytest.raises(ConfigError, match="prefilter"):
        from_diffusers_spec(str(folder), device="cpu", prefilter_k=3)


def test_a_grid_too_large_for_the_window_names_n_samples(folder):
    with pytest.raises(ConfigError, match="n_samples=50,500.*num_train_timesteps"):
        from_diffusers_spec(str(folder), device="cpu", n_samples=(50, 500), to_keep=(5, 1), t_range=(250, 650))


class _TableConditioning:
    """A stand-in for a class-label conditioning: a fixed random table of embeddings, one per
    class name (the Conditioning protocol, nothing else)."""

    uncond_key = "<null>"

    def __init__(self, names, width=32, length=77):
        self.names = [*names, self.uncond_key]
        self.table = torch.randn(len(self.names), length, width, generator=torch.Generator().manual_seed(0))

    def embed(self, keys):
        from winoground_eval.core.errors import DataError

        missing = [k for k in keys if k not in self.names]
        if missing:
            raise DataError(f"not a class name: {missing[0]!r}")
        return self.table[[self.names.index(k) for k in keys]]

    def model_kwargs(self, embeddings):
        return {"encoder_hidden_states": embeddings}

    def to(self, device, dtype):
        self.table = self.table.to(device=device, dtype=dtype)

    def clear(self):
        pass

    def config(self):
        return {"classes": len(self.names) - 1}

    def components(self):
        return {"classes": None}


def test_any_conditioning_serves_every_mode(folder, image):
    from winoground_eval.diffusion.conditioning import Conditioning
    from winoground_eval.diffusion.loading import load_components
    from winoground_eval.diffusion.scorer import DiffusionScorer

    components, source = load_components(str(folder))
    names = ["cat", "dog", "bird", "fish"]
    conditioning = _TableConditioning(names)
    assert isinstance(conditioning, Conditioning)
    base = dict(
        unet=components["unet"],
        scheduler=components["scheduler"],
        vae=components["vae"],
        conditioning=conditioning,
        source=source,
        device="cpu",
    )
    ex = Example("x", (image,), tuple(names))
    for options in (
        {"n_timesteps": 4, "normalize": "uncond"},
        {"n_samples": (2, 4), "to_keep": (2, 1)},
        {"n_timesteps": 16, "stopping": "sequential", "min_timesteps": 4, "round_size": 4},
    ):
        scorer = DiffusionScorer(**base, **options)
        [scored] = scorer.evaluate([ex])
        assert scored.scores.shape == (1, 4) and np.isfinite(scored.scores).all()
        assert scorer.config()["classes"] == 4 and "max_length" not in scorer.config()
    plain = DiffusionScorer(**base, n_timesteps=4)
    errors = plain.errors([image], names)
    assert errors.shape == (1, 4, 4) and not np.allclose(errors[0, 0], errors[0, 1])
