"""SDXL, SD3 and FLUX.1 families: each one's errors equal a plain restatement of its formula.

The restatements below are written from the diffusers pipelines and the papers, not from the
family code: noise schedules from betas / shift formulas, conditioning from the pipelines'
own ``encode_prompt``, packing from ``FluxPipeline``'s static helpers. float32 on the CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

CAPTIONS = ["a red cube left of a blue ball", "a blue ball left of a red cube"]


@pytest.fixture(scope="module")
def folders(tiny_sd, tiny_family):
    """Name -> tiny folder, each built on first use (shared with the other modules for the session)."""
    build = {
        "sd": lambda: tiny_sd(),
        "sdxl": lambda: tiny_family("sdxl", sample_size=8),
        "sd3": lambda: tiny_family("sd3", sample_size=8),
        "sd3-no-t5": lambda: tiny_family("sd3", sample_size=8, t5=False),
        "flux-schnell": lambda: tiny_family("flux", sample_size=8),
        "flux-dev": lambda: tiny_family("flux", sample_size=8, guidance=True),
    }

    class Folders(dict):
        def __missing__(self, name):
            self[name] = build[name]()
            return self[name]

    return Folders()


def _pipeline(folder):
    import diffusers

    index = json.loads((folder / "model_index.json").read_text())
    cls = getattr(diffusers, index["_class_name"])
    nulls = {k: None for k, v in index.items() if isinstance(v, list) and v == [None, None]}
    return cls.from_pretrained(folder, **nulls)


def _components(pipe):
    return {k: v for k, v in pipe.components.items() if k not in ("image_encoder", "feature_extractor")}


def _inputs(shape, n, seed=0):
    """A random RGB image of side ``shape``, its [-1, 1] pixels, and n noise draws for its latent."""
    g = torch.Generator().manual_seed(seed)
    array = (torch.rand((shape, shape, 3), generator=g) * 255).round().to(torch.uint8).numpy()
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 127.5 - 1
    noise = torch.randn((n, 4, shape // 2, shape // 2), generator=g)
    return Image.fromarray(array), pixels, noise


def _terms(family, image, noise, t, caption):
    n = len(t)
    with torch.no_grad():
        x0 = family.encode_image(image)
        cond = family.embed([caption])
        cond = {k: v.expand(n, *v.shape[1:]) for k, v in cond.items()}
        return family.batch_terms(x0.expand(n, *x0.shape), noise, t, cond)[:, 0], cond


def _mse(a, b):
    return ((a.float() - b.float()) ** 2).flatten(1).mean(1)


def test_sdxl_errors_are_its_formula(folders):
    from winoground_eval.diffusion.families.options import SDXLOptions
    from winoground_eval.diffusion.families.sdxl import SDXLFamily

    pipe = _pipeline(folders["sdxl"])
    family = SDXLFamily(_components(pipe), options=SDXLOptions(device="cpu"))
    image, pixels, noise = _inputs(family.resolution, 3)
    t = torch.tensor([10, 500, 990])
    got, cond = _terms(family, image, noise, t, CAPTIONS[1])
    with torch.no_grad():
        z = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float32) ** 2
        acp = torch.cumprod(1 - betas, 0)[t].view(-1, 1, 1, 1)
        x_t = acp.sqrt() * z + (1 - acp).sqrt() * noise
        embeds, _, pooled, _ = pipe.encode_prompt(CAPTIONS[1], device="cpu", do_classifier_free_guidance=False)
        r = family.resolution
        time_ids = torch.tensor([[r, r, 0, 0, r, r]] * 3, dtype=torch.float32)
        pred = pipe.unet(
            x_t,
            t,
            encoder_hidden_states=embeds.expand(3, -1, -1),
            added_cond_kwargs={"text_embeds": pooled.expand(3, -1), "time_ids": time_ids},
        ).sample
        want = _mse(pred, noise)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    # the conditioning is the pipeline's
    torch.testing.assert_close(cond["encoder_hidden_states"][:1], embeds, rtol=0, atol=0)
    assert got[0] != got[1]


def _sd3_restated(pipe, pixels, noise, t, caption, *, t5: bool, max_len: int = 256):
    vae = pipe.vae.config
    z = (pipe.vae.encode(pixels).latent_dist.mean - vae.shift_factor) * vae.scaling_factor
    shift, T = pipe.scheduler.config.shift, 1000
    s = (t.float() + 1) / T
    sigma = (shift * s / (1 + (shift - 1) * s)).view(-1, 1, 1, 1)
    x_t = (1 - sigma) * z + sigma * noise
    if t5:
        embeds, _, pooled, _ = pipe.encode_prompt(
            caption, caption, caption, device="cpu", do_classifier_free_guidance=False, max_sequence_length=max_len
        )
    else:  # CLIP-L + CLIP-G penultimate states padded to the T5 width, then max_len zero rows
        hs, pools = [], []
        for tok, enc in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
            ids = tok(caption, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            out = enc(ids, output_hidden_states=True)
            hs.append(out.hidden_states[-2])
            pools.append(out.text_embeds)
        width = pipe.transformer.config.joint_attention_dim
        clip = torch.cat(hs, -1)
        clip = torch.cat([clip, torch.zeros(1, 77, width - clip.shape[-1])], -1)
        embeds = torch.cat([clip, torch.zeros(1, max_len, width)], 1)
        pooled = torch.cat(pools, -1)
    n = len(t)
    pred = pipe.transformer(
        hidden_states=x_t,
        timestep=sigma.flatten() * T,
        encoder_hidden_states=embeds.expand(n, -1, -1),
        pooled_projections=pooled.expand(n, -1),
    ).sample
    return _mse(pred, noise - z)


@pytest.mark.parametrize("variant", ["sd3", "sd3-no-t5", "sd3-t5-false"])
def test_sd3_errors_are_its_formula(folders, variant):
    from winoground_eval.diffusion.families.options import SD3Options
    from winoground_eval.diffusion.families.sd3 import SD3Family

    pipe = _pipeline(folders["sd3-no-t5" if variant == "sd3-no-t5" else "sd3"])
    use_t5 = variant == "sd3"
    family = SD3Family(_components(pipe), options=SD3Options(device="cpu", t5=variant != "sd3-t5-false"))
    assert family.t5 is use_t5 and family.config()["t5"] is use_t5
    image, pixels, noise = _inputs(family.resolution, 3, seed=1)
    t = torch.tensor([0, 400, 999])
    got, cond = _terms(family, image, noise, t, CAPTIONS[0])
    with torch.no_grad():
        want = _sd3_restated(pipe, pixels, noise, t, CAPTIONS[0], t5=use_t5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    assert cond["encoder_hidden_states"].shape[1] == 77 + 256


@pytest.mark.parametrize("variant", ["flux-schnell", "flux-dev"])
def test_flux_errors_are_its_formula(folders, variant):
    from diffusers import FluxPipeline

    from winoground_eval.diffusion.families.flux import FluxFamily
    from winoground_eval.diffusion.families.options import FluxOptions

    pipe = _pipeline(folders[variant])
    family = FluxFamily(_components(pipe), options=FluxOptions(device="cpu", resolution=16, max_sequence_length=32))
    image, pixels, noise = _inputs(16, 3, seed=2)
    t = torch.tensor([5, 600, 999])
    got, _ = _terms(family, image, noise, t, CAPTIONS[0])
    with torch.no_grad():
        vae = pipe.vae.config
        z = (pipe.vae.encode(pixels).latent_dist.mean - vae.shift_factor) * vae.scaling_factor
        s = (t.float() + 1) / 1000
        if variant == "flux-dev":  # resolution-dependent shift: mu from the 4 x 4 = 16 packed tokens
            cfg = pipe.scheduler.config
            mu = 16 * (cfg.max_shift - cfg.base_shift) / (cfg.max_image_seq_len - cfg.base_image_seq_len)
            mu += (
                cfg.base_shift
                - (cfg.max_shift - cfg.base_shift)
                / (cfg.max_image_seq_len - cfg.base_image_seq_len)
                * cfg.base_image_seq_len
            )
            s = math.exp(mu) / (math.exp(mu) + (1 / s - 1))
        sigma = s.view(-1, 1, 1, 1)
        x_t = (1 - sigma) * z + sigma * noise
        embeds, pooled, text_ids = pipe.encode_prompt(CAPTIONS[0], CAPTIONS[0], device="cpu", max_sequence_length=32)
        img_ids = FluxPipeline._prepare_latent_image_ids(1, 4, 4, "cpu", torch.float32)
        guidance = torch.full((3,), 3.5) if variant == "flux-dev" else None
        pred = pipe.transformer(
            hidden_states=FluxPipeline._pack_latents(x_t, 3, 4, 8, 8),
            timestep=sigma.flatten(),
            guidance=guidance,
            pooled_projections=pooled.expand(3, -1),
            encoder_hidden_states=embeds.expand(3, -1, -1),
            txt_ids=text_ids,
            img_ids=img_ids,
        ).sample
        pred = FluxPipeline._unpack_latents(pred, 16, 16, 2)
        want = _mse(pred, noise - z)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    assert (family.guidance is not None) == (variant == "flux-dev")


def test_flow_schedule_is_the_schedulers_training_sigmas():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from winoground_eval.diffusion.families.flow import FlowSchedule

    for shift in (1.0, 3.0):
        scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
        sched = FlowSchedule(scheduler)
        torch.testing.assert_close(sched.sigmas, scheduler.sigmas.flip(0), rtol=1e-6, atol=0)
        t = torch.tensor([0, 499, 999])
        # timestep t -> sigma t where the scheduler's own timesteps are sigma * 1000
        torch.testing.assert_close(sched.sigma(t) * 1000, scheduler.timesteps.flip(0)[t], rtol=1e-6, atol=0)


# --------------------------------------------------------------------------- LoRA


@pytest.mark.slow  # loads SDXL / SD3 pipelines (the formula tests cover each family fast)
def test_tiny_lora_is_read_by_diffusers_and_addresses_the_models_modules(folders, tmp_path):
    """The adapter written in code is a diffusers-format LoRA: the pipeline class's own
    lora_state_dict reads it, and every key names a Linear of the tiny denoiser."""
    import diffusers

    from winoground_eval.testing.tiny_families import write_tiny_lora

    for name, denoiser in (("sd", "unet"), ("sdxl", "unet"), ("sd3", "transformer"), ("flux-dev", "transformer")):
        file = write_tiny_lora(tmp_path / name, folders[name])
        pipe = _pipeline(folders[name])
        state = type(pipe).lora_state_dict(str(file))
        state = state[0] if isinstance(state, tuple) else state
        modules = dict(getattr(pipe, denoiser).named_modules())
        assert state and all(k.startswith(f"{denoiser}.") for k in state)
        for key, value in state.items():
            target = modules[key[len(denoiser) + 1 :].rsplit(".lora_", 1)[0]]
            assert isinstance(target, torch.nn.Linear) and value.abs().sum() > 0, (name, key)
        assert isinstance(pipe, diffusers.DiffusionPipeline)


def test_lora_file_and_record(tmp_path):
    from winoground_eval.core.errors import ConfigError
    from winoground_eval.diffusion.families.lora import lora_file, lora_record

    a = tmp_path / "a" / "pytorch_lora_weights.safetensors"
    a.parent.mkdir()
    a.write_bytes(b"adapter one")
    assert lora_file(str(a.parent)) == a.resolve() == lora_file(str(a))
    record = lora_record(a)
    moved = tmp_path / "b.safetensors"
    moved.write_bytes(b"adapter one")
    assert lora_record(moved)["sha256"] == record["sha256"] and record["file"] == a.name
    moved.write_bytes(b"adapter two")
    assert lora_record(moved)["sha256"] != record["sha256"]
    (tmp_path / "two").mkdir()
    for n in ("x", "y"):
        (tmp_path / "two" / f"{n}.safetensors").write_bytes(b"")
    for bad, message in (
        (tmp_path / "two", "2 .safetensors"),
        (tmp_path / "nope", "no such"),
        (tmp_path / "w.bin", ".safetensors"),
    ):
        if bad.suffix == ".bin":
            bad.write_bytes(b"")
        with pytest.raises(ConfigError, match=message):
            lora_file(str(bad))


def test_lora_changes_the_config_and_so_the_run_id(folders, tmp_path):
    """What apply_lora returns (the adapter's record) goes into the config; two adapters,
    two configs; no adapter, no key (run ids of runs without LoRA do not change)."""
    from winoground_eval.diffusion.families import sd3
    from winoground_eval.diffusion.families.lora import lora_record
    from winoground_eval.diffusion.families.options import SD3Options
    from winoground_eval.testing.tiny_families import write_tiny_lora

    family = sd3.load(str(folders["sd3-no-t5"]), options=SD3Options(device="cpu"))
    plain = family.config()
    assert "lora" not in plain
    configs = []
    for seed in (0, 1):
        family.lora = lora_record(write_tiny_lora(tmp_path / str(seed), folders["sd3-no-t5"], seed=seed))
        configs.append(family.config())
    assert configs[0]["lora"]["sha256"] != configs[1]["lora"]["sha256"]
    assert {k: v for k, v in configs[0].items() if k != "lora"} == plain


# `make test-fast`: sd
@pytest.mark.parametrize(
    "name", ["sd", *(pytest.param(n, marks=pytest.mark.slow) for n in ("sdxl", "sd3", "flux-schnell"))]
)
def test_lora_option_loads_through_diffusers_or_says_peft_is_missing(folders, tmp_path, name, monkeypatch):
    from winoground_eval.core.errors import ConfigError
    from winoground_eval.diffusion.families.lora import peft_available
    from winoground_eval.diffusion.family_presets import scorer_for_family
    from winoground_eval.testing.tiny_families import write_tiny_lora

    family = {"sd": "sd", "sdxl": "sdxl", "sd3": "sd3", "flux-schnell": "flux"}[name]
    file = write_tiny_lora(tmp_path / "lora", folders[name])
    options = dict(device="cpu", n_timesteps=2, **({"max_sequence_length": 8} if family in ("sd3", "flux") else {}))
    if not peft_available():
        from winoground_eval.diffusion import loading

        def no_weights(*args):
            raise AssertionError("weights were read before the missing peft was reported")

        monkeypatch.setattr(loading, "_load_one", no_weights)
        with pytest.raises(ConfigError, match="peft"):
            scorer_for_family(family, str(folders[name]), lora=str(file), **options)
        return
    images = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]  # (resized to each model's side)
    plain = scorer_for_family(family, str(folders[name]), **options)
    adapted = scorer_for_family(family, str(folders[name]), lora=str(file), **options)
    assert adapted.config()["lora"]["sha256"] and "lora" not in plain.config()
    assert not np.allclose(plain.score(images, CAPTIONS), adapted.score(images, CAPTIONS))


def test_sd3_preset_grid_is_the_references():
    """Jeong et al.'s vendored SD3 img2img pipeline (sampled_timesteps with its defaults
    num_inference_steps=50, strength=0.6, --sampling_steps 30) scores at the scheduler's
    timesteps[arange(20, 980, 33)] (descending order), which its source prints as 65.9656,
    151.0791, ..., 993.2433. The sd3 presets' grid is those positions, and those sigmas."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from winoground_eval.diffusion.families.flow import FlowSchedule
    from winoground_eval.diffusion.family_presets import PRESET_DEFAULTS
    from winoground_eval.diffusion.grid import timestep_grid

    defaults = PRESET_DEFAULTS["sd3"]
    grid = timestep_grid(defaults["n_timesteps"], 1000, defaults["t_range"])
    reference_positions = sorted(999 - np.arange(20, 980, 33))  # descending index j is ascending position 999 - j
    assert grid.tolist() == reference_positions
    timesteps = FlowSchedule(FlowMatchEulerDiscreteScheduler(shift=3.0)).sigma(torch.as_tensor(grid)) * 1000
    printed = [65.965576171875, 151.0791473388672, 226.65536499023438, 981.6862182617188, 993.2432861328125]
    torch.testing.assert_close(timesteps[[0, 1, 2, -2, -1]], torch.tensor(printed), rtol=1e-6, atol=0)


# --------------------------------------------------------------------------- end to end


# `make test-fast`: flux-dev (the formula tests cover each family fast)
SLOW_RUNS = ("sdxl", "sd3", "sd3-no-t5", "flux-schnell")


@pytest.mark.parametrize("name", [*(pytest.param(n, marks=pytest.mark.slow) for n in SLOW_RUNS), "flux-dev"])
def test_wg_eval_run_shapes_on_a_tiny_folder_of_each_family(folders, tmp_path, name):
    """`wg-eval run --task shapes --scorer diffusers:PATH --limit 2`, the family picked from
    model_index.json's pipeline class; the run records the family and its settings."""
    from winoground_eval.cli.main import main

    options = ["-o", "n_timesteps=2", "-o", "device=cpu"]
    if name != "sdxl":
        options += ["-o", "max_sequence_length=8"]
    out = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                "--task",
                "shapes",
                "--scorer",
                f"diffusers:{folders[name]}",
                "--limit",
                "2",
                "-q",
                "--out",
                str(out),
                *options,
            ]
        )
        == 0
    )
    [run_dir] = [p.parent for p in out.glob("shapes/*/*/run.json")]
    config = json.loads((run_dir / "run.json").read_text())["scorer"]["config"]
    family = {"sdxl": "sdxl", "sd3": "sd3", "sd3-no-t5": "sd3", "flux-schnell": "flux", "flux-dev": "flux"}[name]
    assert config["kind"] == family and config["source"] == "local"
    assert config["n_timesteps"] == 2 and config["resolution"] == 16
    if family == "sd3":
        assert config["t5"] is (name == "sd3") and config["shift"] == 3.0
    if family == "flux":
        assert (config["guidance"] is None) == (name == "flux-schnell") and config["dynamic_shift"] is (
            name == "flux-dev"
        )
    lines = [json.loads(line) for line in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(np.isfinite(line["scores"]).all() for line in lines)


def test_unknown_pipeline_class_names_the_supported_ones(tmp_path):
    from winoground_eval.core.errors import ModelLoadError
    from winoground_eval.diffusion.presets import from_diffusers_spec

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(ModelLoadError, match="StableDiffusion3Pipeline.*StableDiffusionXLPipeline|FluxPipeline"):
        from_diffusers_spec(str(tmp_path / "m"), device="cpu")


@pytest.mark.slow  # loads SDXL / SD3 pipelines (the formula tests cover each family fast)
@pytest.mark.parametrize("name", ["sdxl", "sd3"])
def test_unconditional_condition_is_the_pipelines(folders, name):
    """normalize=uncond's condition (the empty prompt) is the pipeline's unconditional branch:
    zeros for SDXL (force_zeros_for_empty_prompt), the encoded empty prompt for SD3."""
    from winoground_eval.diffusion.families import sd3, sdxl
    from winoground_eval.diffusion.families.options import SD3Options, SDXLOptions

    pipe = _pipeline(folders[name])
    if name == "sdxl":
        family = sdxl.load(str(folders[name]), options=SDXLOptions(device="cpu"))
        _, negative, _, negative_pooled = pipe.encode_prompt("x", device="cpu", do_classifier_free_guidance=True)
        assert family.config()["force_zeros_for_empty_prompt"] is True and not negative.any()
    else:
        family = sd3.load(str(folders[name]), options=SD3Options(device="cpu"))
        _, negative, _, negative_pooled = pipe.encode_prompt(
            "x", "x", "x", device="cpu", do_classifier_free_guidance=True
        )
    with torch.no_grad():
        cond = family.embed([family.uncond_key])
    # (two separately loaded copies of the encoders: equal up to float32 kernel rounding)
    torch.testing.assert_close(cond["encoder_hidden_states"], negative, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        cond["text_embeds" if name == "sdxl" else "pooled_projections"], negative_pooled, rtol=1e-4, atol=1e-5
    )


@pytest.mark.slow  # loads SD3 and FLUX pipelines twice each
def test_t5_false_does_not_load_t5_and_dynamic_shift_false_keeps_dev_unshifted(folders, monkeypatch):
    from winoground_eval.diffusion import loading
    from winoground_eval.diffusion.families import flux, sd3
    from winoground_eval.diffusion.families.options import FluxOptions, SD3Options

    loaded = []
    load_one = loading._load_one
    monkeypatch.setattr(loading, "_load_one", lambda root, name, *a: loaded.append(name) or load_one(root, name, *a))
    family = sd3.load(str(folders["sd3"]), options=SD3Options(device="cpu", t5=False))
    assert "text_encoder_3" not in loaded and "tokenizer_3" not in loaded and "transformer" in loaded
    assert family.config()["components"]["text_encoder_3"] is None and family.config()["t5"] is False

    shifted = flux.load(str(folders["flux-dev"]), options=FluxOptions(device="cpu")).config()
    plain = flux.load(str(folders["flux-dev"]), options=FluxOptions(device="cpu", dynamic_shift=False)).config()
    assert plain["dynamic_shift"] is False and plain["shift"] == 1.0 and plain["sigma_first"] == pytest.approx(1e-3)
    assert shifted["dynamic_shift"] is True and shifted["dynamic_shift_mu"] > 0 and shifted["sigma_first"] > 1e-3
