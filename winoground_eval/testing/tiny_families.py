"""Tiny random SDXL, SD3 and FLUX.1 folders, built offline in seconds (see :mod:`.tiny_sd` for SD).

Each writer saves small randomly initialised components with ``save_pretrained`` in the
layout of the real releases (the subfolders and ``model_index.json`` that
``StableDiffusionXLPipeline``, ``StableDiffusion3Pipeline`` and ``FluxPipeline`` read),
so tests and ``--scorer diffusers:PATH`` go through the same loading code as real weights.

- CLIP tokenizers are the real CLIP BPE (:func:`.tiny_sd.build_clip_tokenizer`); SDXL's and
  SD3's second one pads with ``!`` as the OpenCLIP bigG tokenizer of those releases does.
- The T5 tokenizer is a small Unigram vocabulary built in code (letters, digits and
  punctuation, with and without the word-start mark), in the ``T5TokenizerFast`` format
  (``tokenizer.json``): no sentencepiece model and no download. Its ids are not T5's.
- Sizes are chosen so every code path is exercised: SD3's CLIP hidden states (12 + 16)
  are zero-padded to the T5 width (32); the transformers patchify (SD3 patch 2, FLUX's
  2 x 2 packing); the VAEs carry the releases' scaling and shift factors.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import torch

from .tiny_sd import TINY_MAX_LENGTH, build_clip_tokenizer, clip_text_encoder

T5_WIDTH = 32
_T5_SPECIAL = ("<pad>", "</s>", "<unk>")
# The releases' VAE factors (SD3: stable-diffusion-3-medium-diffusers; FLUX: FLUX.1-dev; SDXL: base 1.0).
SD3_VAE = {"scaling_factor": 1.5305, "shift_factor": 0.0609}
FLUX_VAE = {"scaling_factor": 0.3611, "shift_factor": 0.1159}
SDXL_VAE = {"scaling_factor": 0.13025}


def t5_vocabulary() -> list[tuple[str, float]]:
    """(piece, log-probability) of a small Unigram vocabulary: T5's specials, then characters."""
    chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation
    pieces = ["\u2581"] + [f"\u2581{c}" for c in chars] + list(chars)
    return [(s, 0.0) for s in _T5_SPECIAL] + [(p, -float(i % 7 + 1)) for i, p in enumerate(pieces)]


def build_t5_tokenizer(save_dir: str | Path, *, model_max_length: int = 512) -> Any:
    """A T5 tokenizer (``tokenizer.json`` format) over :func:`t5_vocabulary`, saved and loaded back."""
    from transformers import T5TokenizerFast

    tokenizer = T5TokenizerFast(vocab=t5_vocabulary(), extra_ids=0, model_max_length=model_max_length)
    tokenizer.save_pretrained(save_dir)
    return T5TokenizerFast.from_pretrained(save_dir)


def t5_encoder(seed: int) -> Any:
    """A small random ``T5EncoderModel`` of width :data:`T5_WIDTH` over :func:`t5_vocabulary`."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(t5_vocabulary()),
        d_model=T5_WIDTH,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        tie_word_embeddings=False,
    )
    return T5EncoderModel(config).eval()


def _clip(seed: int, width: int, *, projection: bool) -> Any:
    """A small random CLIP text encoder; ``projection``: ``CLIPTextModelWithProjection``."""
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    model = clip_text_encoder(width, TINY_MAX_LENGTH, intermediate_size=37)
    if projection:
        torch.manual_seed(seed)
        model = CLIPTextModelWithProjection(model.config)
    return model.eval()


def _vae(seed: int, latent_channels: int, sample_size: int, *, quant_conv: bool = True, **factors: float) -> Any:
    """A two-level AutoencoderKL (downsampling by 2) with the given scaling/shift factors."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        layers_per_block=1,
        block_out_channels=(16, 32),
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        use_quant_conv=quant_conv,
        use_post_quant_conv=quant_conv,
        **factors,
    ).eval()


def _write(path: Path, pipeline: str, parts: dict[str, Any]) -> Path:
    """save_pretrained each part (tokenizers are already written) and write model_index.json."""
    import diffusers

    from ..diffusion.loading import quiet_progress_bars

    index: dict[str, Any] = {"_class_name": pipeline, "_diffusers_version": diffusers.__version__}
    for name, module in parts.items():
        if module is None:
            index[name] = [None, None]
            continue
        is_transformers = type(module).__module__.startswith("transformers")
        if not name.startswith("tokenizer"):
            with quiet_progress_bars():
                module.save_pretrained(path / name)
        class_name = "T5TokenizerFast" if type(module).__name__ == "T5Tokenizer" else type(module).__name__
        index[name] = ["transformers" if is_transformers else "diffusers", class_name]
    (path / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return path


_TOKENIZER_FILES: dict[str, Path] = {}  # pad token -> a folder already holding that tokenizer


def _clip_tokenizer(save_dir: Path, pad: str | None = None) -> Any:
    """CLIP's BPE tokenizer saved to ``save_dir`` (``pad="!"``: padded with ``!``, id 0, as
    SDXL's and SD3's OpenCLIP-bigG tokenizer_2). Built once per process, then copied."""
    import shutil

    from transformers import CLIPTokenizer

    key = pad or ""
    made = _TOKENIZER_FILES.get(key)
    if made is not None and made.is_dir():
        shutil.copytree(made, save_dir, dirs_exist_ok=True)
        return CLIPTokenizer.from_pretrained(save_dir)
    tokenizer = build_clip_tokenizer(save_dir)
    if pad is not None:
        tokenizer.pad_token = pad
        tokenizer.save_pretrained(save_dir)
        tokenizer = CLIPTokenizer.from_pretrained(save_dir)
    _TOKENIZER_FILES[key] = save_dir
    return tokenizer


def write_tiny_sdxl(path: str | Path, seed: int = 0, sample_size: int = 16) -> Path:
    """A tiny ``StableDiffusionXLPipeline`` folder: images are ``2 * sample_size`` pixels.

    Two CLIP text encoders (width 16 and 24; the second with a projection, whose output is
    the pooled embedding), a UNet with ``addition_embed_type="text_time"`` and SDXL's
    Euler scheduler over the scaled-linear betas (epsilon prediction).
    """
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    widths, time_dim = (16, 24), 8
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=sum(widths),
        attention_head_dim=4,
        norm_num_groups=8,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=widths[1] + 6 * time_dim,
    ).eval()
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )
    parts = {
        "unet": unet,
        "vae": _vae(seed, 4, 2 * sample_size, **SDXL_VAE),
        "text_encoder": _clip(seed, widths[0], projection=False),
        "tokenizer": _clip_tokenizer(path / "tokenizer"),
        "text_encoder_2": _clip(seed + 1, widths[1], projection=True),
        "tokenizer_2": _clip_tokenizer(path / "tokenizer_2", pad="!"),
        "scheduler": scheduler,
    }
    return _write(path, "StableDiffusionXLPipeline", parts)


def write_tiny_sd3(
    path: str | Path, seed: int = 0, sample_size: int = 16, *, t5: bool = True, shift: float = 3.0
) -> Path:
    """A tiny ``StableDiffusion3Pipeline`` folder: images are ``2 * sample_size`` pixels.

    CLIP-L-like and CLIP-G-like encoders with projections (widths 12 and 16), a T5 encoder
    of width 32 (``t5=False``: saved without it, ``text_encoder_3`` and ``tokenizer_3`` null
    in model_index.json, as a T5-less SD3 folder is), an MMDiT with patch size 2, and
    ``FlowMatchEulerDiscreteScheduler(shift=shift)`` (SD3's 3.0 by default).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    widths = (12, 16)
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=sample_size,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=T5_WIDTH,
        caption_projection_dim=16,
        pooled_projection_dim=sum(widths),
        pos_embed_max_size=sample_size,
    ).eval()
    parts = {
        "transformer": transformer,
        "vae": _vae(seed, 4, 2 * sample_size, quant_conv=False, **SD3_VAE),
        "text_encoder": _clip(seed, widths[0], projection=True),
        "tokenizer": _clip_tokenizer(path / "tokenizer"),
        "text_encoder_2": _clip(seed + 1, widths[1], projection=True),
        "tokenizer_2": _clip_tokenizer(path / "tokenizer_2", pad="!"),
        "text_encoder_3": t5_encoder(seed + 2) if t5 else None,
        "tokenizer_3": build_t5_tokenizer(path / "tokenizer_3") if t5 else None,
        "scheduler": FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift),
    }
    return _write(path, "StableDiffusion3Pipeline", parts)


def write_tiny_flux(path: str | Path, seed: int = 0, sample_size: int = 16, *, guidance: bool = False) -> Path:
    """A tiny ``FluxPipeline`` folder: images are ``2 * sample_size`` pixels.

    ``guidance=False`` is schnell-like (no guidance embedding; scheduler shift 1, no dynamic
    shifting); ``guidance=True`` dev-like (guidance embedding; ``use_dynamic_shifting`` with
    FLUX.1-dev's base/max shift and sequence lengths). A CLIP text encoder (width 16,
    pooled output), a T5 encoder (width 32), a 4-channel VAE whose latents are packed
    2 x 2 into 16 channels.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    latent_channels, clip_width = 4, 16
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * latent_channels,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_WIDTH,
        pooled_projection_dim=clip_width,
        guidance_embeds=guidance,
        axes_dims_rope=(4, 4, 8),
    ).eval()
    if guidance:
        scheduler = FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000,
            shift=3.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=1.15,
            base_image_seq_len=256,
            max_image_seq_len=4096,
        )
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    parts = {
        "transformer": transformer,
        "vae": _vae(seed, latent_channels, 2 * sample_size, quant_conv=False, **FLUX_VAE),
        "text_encoder": _clip(seed, clip_width, projection=False),
        "tokenizer": _clip_tokenizer(path / "tokenizer"),
        "text_encoder_2": t5_encoder(seed + 2),
        "tokenizer_2": build_t5_tokenizer(path / "tokenizer_2"),
        "scheduler": scheduler,
    }
    return _write(path, "FluxPipeline", parts)


def write_tiny_lora(path: str | Path, model_folder: str | Path, rank: int = 2, seed: int = 0) -> Path:
    """A random LoRA (diffusers format) for the denoiser of the tiny folder ``model_folder``.

    Every attention query/key/value/output projection of the UNet or transformer gets a
    rank-``rank`` pair (``lora_A``: rank x in, ``lora_B``: out x rank, both non-zero, so the
    adapter changes the model), written by the pipeline class's own ``save_lora_weights``
    as ``pytorch_lora_weights.safetensors``. Returns that file.
    """
    import diffusers

    model_folder = Path(model_folder)
    index = json.loads((model_folder / "model_index.json").read_text(encoding="utf-8"))
    pipeline = getattr(diffusers, index["_class_name"])
    denoiser = "unet" if "unet" in index else "transformer"
    model = getattr(diffusers, index[denoiser][1]).from_pretrained(model_folder / denoiser, low_cpu_mem_usage=False)
    generator = torch.Generator().manual_seed(seed)
    layers: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        projection = name.split(".")[-1] in ("to_q", "to_k", "to_v") or name.endswith("to_out.0")
        if isinstance(module, torch.nn.Linear) and projection:
            layers[f"{name}.lora_A.weight"] = torch.randn((rank, module.in_features), generator=generator) * 0.1
            layers[f"{name}.lora_B.weight"] = torch.randn((module.out_features, rank), generator=generator) * 0.1
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    pipeline.save_lora_weights(path, **{f"{denoiser}_lora_layers": layers})
    return path / "pytorch_lora_weights.safetensors"
