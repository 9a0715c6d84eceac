"""Plugin registries: public names mapped to lazy ``"module:attr"`` targets.

Listing is instant and a missing optional dependency only hurts the plugin that needs it:
nothing is imported until a name is asked for.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    target: str  # "package.module:attr"
    summary: str  # one line for `wg-eval ls`


TASKS: dict[str, Entry] = {
    "winoground": Entry(
        "winoground_eval.tasks.winoground:WinogroundTask",
        "Winoground (Thrush et al., CVPR 2022): 400 examples of 2 images x 2 captions; "
        "gated HF dataset facebook/winoground or a local copy via --data-dir",
    ),
    "shapes": Entry(
        "winoground_eval.tasks.shapes:ShapesTask",
        "synthetic Winoground-style shapes (PIL, 32 px, offline); --split test (300) | heldout | val",
    ),
}

SCORERS: dict[str, Entry] = {
    "dummy": Entry(
        "winoground_eval.baselines.dummy:DummyScorer",
        "deterministic model-free scorer (image colour statistics x hashed words), for tests and plumbing",
    ),
    "tiny-diffusion": Entry(
        "winoground_eval.baselines.tiny_models:tiny_diffusion",
        "the shipped tiny trained pixel-space diffusion model (shapes only), t_range chosen on shapes val",
    ),
    "tiny-clip": Entry(
        "winoground_eval.baselines.tiny_models:tiny_clip", "the shipped tiny trained open_clip model (shapes only)"
    ),
    "clip-vit-b32": Entry("winoground_eval.baselines.clip:clip_vit_b32", "CLIP ViT-B/32, OpenAI weights (open_clip ViT-B-32/openai)"),
    "clip-vit-l14": Entry(
        "winoground_eval.baselines.clip:clip_vit_l14",
        "CLIP ViT-L/14, OpenAI weights (open_clip ViT-L-14/openai); the Diffusion Classifier paper's CLIP baseline",
    ),
    "openclip-vit-h14": Entry(
        "winoground_eval.baselines.clip:openclip_vit_h14",
        "OpenCLIP ViT-H/14 laion2b_s32b_b79k; the Diffusion Classifier paper's OpenCLIP baseline",
    ),
    "sd2": Entry(
        "winoground_eval.diffusion.presets:sd2",
        "Diffusion Classifier, stabilityai/stable-diffusion-2-base (SD 2.0, 512 px, epsilon); the paper's setting",
    ),
    "sd2-fast": Entry(
        "winoground_eval.diffusion.presets:sd2_fast",
        "sd2 with sequential early stopping (-o stopping=sequential): the full-budget decisions at a fraction of the UNet calls",
    ),
    "sd2-768": Entry(
        "winoground_eval.diffusion.presets:sd2_768",
        "Diffusion Classifier, stabilityai/stable-diffusion-2 (768 px, v-prediction)",
    ),
    "sd2.1": Entry(
        "winoground_eval.diffusion.presets:sd2_1", "Diffusion Classifier, stabilityai/stable-diffusion-2-1-base (SD 2.1, 512 px)"
    ),
    "sd1.5": Entry("winoground_eval.diffusion.presets:sd1_5", "Diffusion Classifier, stable-diffusion-v1-5/stable-diffusion-v1-5 (SD 1.5, 512 px)"),
    "sd1.4": Entry("winoground_eval.diffusion.presets:sd1_4", "Diffusion Classifier, CompVis/stable-diffusion-v1-4 (SD 1.4, 512 px)"),
}

# Scorer names with a free-form part after the prefix.
SCORER_PREFIXES: dict[str, Entry] = {
    "open_clip:": Entry(
        "winoground_eval.baselines.clip:from_open_clip_spec",
        "open_clip:ARCH/TAG (a pretrained tag) or open_clip:ARCH/PATH (a local checkpoint file)",
    ),
    "hf-hub:": Entry("winoground_eval.baselines.clip:from_hf_hub", "hf-hub:ORG/NAME, an open_clip model on the Hugging Face Hub"),
    "diffusers:": Entry(
        "winoground_eval.diffusion.presets:from_diffusers_spec",
        "diffusers:ID_OR_PATH, any Stable-Diffusion-layout diffusers repository or local folder",
    ),
}


def load_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def _unknown(kind: str, name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(
        f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}. "
        f"Run `wg-eval ls {kind}s` for a description of each."
    )


def resolve_task(name: str) -> Callable[..., Any]:
    if name not in TASKS:
        raise _unknown("task", name, sorted(TASKS))
    return load_target(TASKS[name].target)


def resolve_scorer(name: str) -> Callable[..., Any]:
    """The factory for a scorer name; prefixed names get their spec bound as first argument."""
    if name in SCORERS:
        return load_target(SCORERS[name].target)
    for prefix, entry in SCORER_PREFIXES.items():
        if name.startswith(prefix):
            spec = name[len(prefix) :]
            if not spec:
                raise ConfigError(f"scorer {name!r} names nothing after {prefix!r}: {entry.summary}")
            factory = load_target(entry.target)
            return functools.partial(factory, spec)
    known = sorted(SCORERS) + [p + "..." for p in SCORER_PREFIXES]
    raise _unknown("scorer", name, known)
