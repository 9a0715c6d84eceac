"""Tiny random Stable-Diffusion-like components, built offline in about a second.

Tests, benchmarks and training scripts use these instead of real weights. They go through
the same loading code as real models: :func:`write_tiny_sd` saves them with
``save_pretrained`` in the Stable Diffusion folder layout, which
``DiffusionScorer.from_pretrained(path)`` and the ``diffusers:PATH`` scorer name read.

The tokenizer is a real CLIP BPE tokenizer (the same token ids as Stable Diffusion's),
built from the vocabulary file that ``open_clip`` ships, so no hub access is needed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Literal

import torch

PredictionType = Literal["epsilon", "v_prediction", "sample"]

TINY_MAX_LENGTH = 77  # Stable Diffusion's; a tiny text encoder makes it cheap anyway
TINY_HIDDEN = 32
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _open_clip_bpe_file() -> Path:
    """The BPE merges file open_clip ships, found without importing open_clip (seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "open_clip_torch is not installed; it ships the CLIP BPE vocabulary (pip install open_clip_torch)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"


def _byte_characters() -> list[str]:
    """GPT-2/CLIP's printable stand-in for each of the 256 bytes, in vocabulary order.

    Printable Latin-1 bytes stand for themselves and come first; the other bytes follow
    in increasing order, mapped to the characters from U+0100 on.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), 256)]
    n_other = 256 - len(printable)
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(n_other)]


def clip_bpe_vocabulary() -> tuple[list[str], list[str]]:
    """(vocabulary, merges) of CLIP's BPE, built the way open_clip's SimpleTokenizer builds them.

    The vocabulary is the 256 byte characters, the same with ``</w>``, every merge joined,
    then the two special tokens: 49408 entries, ids equal to Stable Diffusion's tokenizer.
    """
    with gzip.open(_open_clip_bpe_file(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = _byte_characters()
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m.split()) for m in merges]
    vocab += [_BOS, _EOS]
    return vocab, merges


def build_clip_tokenizer(save_dir: str | Path, *, model_max_length: int = TINY_MAX_LENGTH) -> Any:
    """A transformers ``CLIPTokenizer`` written to ``save_dir`` (vocab.json, merges.txt) and loaded back."""
    from transformers import CLIPTokenizer

    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_bpe_vocabulary()
    vocab_file, merges_file = save_dir / "vocab.json", save_dir / "merges.txt"
    vocab_file.write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(
        vocab=str(vocab_file),
        merges=str(merges_file),
        unk_token=_EOS,
        bos_token=_BOS,
        eos_token=_EOS,
        pad_token=_EOS,
        model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(save_dir)
    return CLIPTokenizer.from_pretrained(save_dir)


def _scheduler(prediction_type: PredictionType) -> Any:
    """Stable Diffusion's training noise schedule, in the scheduler class its releases ship."""
    from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler

    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    if prediction_type == "epsilon":  # as stable-diffusion-2-base
        return PNDMScheduler(**common, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    if prediction_type == "v_prediction":  # as stable-diffusion-2 (768)
        return DDIMScheduler(
            **common, clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction"
        )
    return DDPMScheduler(**common, clip_sample=False, prediction_type=prediction_type)


def clip_text_encoder(width: int, max_length: int, *, intermediate_size: int, layers: int = 2, heads: int = 4) -> Any:
    """A small randomly initialised ``CLIPTextModel`` over CLIP's full BPE vocabulary (seed first)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=width,
            intermediate_size=intermediate_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=max_length,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=width,
        )
    )


def tiny_components(
    prediction_type: PredictionType = "epsilon",
    pixel_space: bool = False,
    seed: int = 0,
    sample_size: int = 16,
    *,
    tokenizer_dir: str | Path | None = None,
) -> dict[str, Any]:
    """unet, vae (None for pixel space), text_encoder, tokenizer and scheduler with random weights.

    ``sample_size`` is the UNet's spatial size: latent size for the latent variant (whose VAE
    downsamples by 2, so images are ``2 * sample_size`` pixels), image size for pixel space.
    Each module is seeded with ``torch.manual_seed(seed)`` before it is built, as diffusers'
    own tests do. The tokenizer files go to ``tokenizer_dir`` (a temporary folder if None).
    """
    import tempfile

    from diffusers import AutoencoderKL, UNet2DConditionModel

    channels = 3 if pixel_space else 4
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TINY_HIDDEN,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = None
    if not pixel_space:
        torch.manual_seed(seed)
        vae = AutoencoderKL(
            sample_size=2 * sample_size,
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            layers_per_block=1,
            block_out_channels=(16, 32),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            norm_num_groups=8,
        )
    torch.manual_seed(seed)
    text_encoder = clip_text_encoder(TINY_HIDDEN, TINY_MAX_LENGTH, intermediate_size=37)
    if tokenizer_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = build_clip_tokenizer(tmp)
    else:
        tokenizer = build_clip_tokenizer(tokenizer_dir)
    for module in (unet, vae, text_encoder):
        if module is not None:
            module.eval()
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": _scheduler(prediction_type),
    }


def write_tiny_sd(
    path: str | Path,
    prediction_type: PredictionType = "epsilon",
    pixel_space: bool = False,
    seed: int = 0,
    sample_size: int = 16,
) -> Path:
    """Save tiny random components in the Stable Diffusion folder layout; returns ``path``.

    unet/, vae/ (absent for pixel space), text_encoder/, tokenizer/, scheduler/ and
    model_index.json, all written with ``save_pretrained`` (weights as safetensors).
    """
    import diffusers

    from ..diffusion.loading import quiet_progress_bars

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    parts = tiny_components(prediction_type, pixel_space, seed, sample_size, tokenizer_dir=path / "tokenizer")
    index: dict[str, Any] = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
    }
    for name, module in parts.items():
        if module is None:
            index[name] = [None, None]
            continue
        if name != "tokenizer":  # already written by build_clip_tokenizer
            with quiet_progress_bars():
                module.save_pretrained(path / name)
        library = "transformers" if name in ("text_encoder", "tokenizer") else "diffusers"
        index[name] = [library, type(module).__name__]
    (path / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return path


def write_tiny_dit(
    path: str | Path,
    *,
    seed: int = 0,
    num_classes: int = 24,
    channels: int = 3,
    sample_size: int = 8,
    scale: float = 0.2,
) -> Path:
    """A tiny random class-conditional learned-sigma DiT folder (pixel space, no VAE), loadable as
    ``dit:PATH`` or ``diffusers:PATH`` (model_index.json names DiTPipeline). Every parameter is
    drawn from N(0, scale^2) (DiT zero-initialises its modulation and output layers, which would
    make the class irrelevant)."""
    import torch
    from diffusers import DDPMScheduler, DiTTransformer2DModel

    from ..diffusion.dit import save_dit_folder

    generator = torch.Generator().manual_seed(seed)
    model = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=channels,
        out_channels=2 * channels,
        num_layers=1,
        sample_size=sample_size,
        patch_size=2,
        num_embeds_ada_norm=num_classes,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)
    labels = {k: f"class {k}" for k in range(num_classes)}
    return save_dit_folder(
        path, model.eval(), DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear"), id2label=labels
    )
