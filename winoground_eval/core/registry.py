"""Plugin registries: public names mapped to lazy ``"module:attr"`` targets.

Listing is instant and a missing optional dependency only hurts the plugin that needs it:
nothing is imported until a name is asked for.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
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
    "sugarcrepe": Entry(
        "winoground_eval.tasks.sugarcrepe:SugarCrepeTask",
        "SugarCrepe (Hsieh et al., NeurIPS 2023): 7 subsets of 1 image x (positive, negative caption); "
        "captions shipped, COCO 2017 val images via --data-dir; -t subsets=add_att,swap_obj",
    ),
    "aro": Entry(
        "winoground_eval.tasks.aro:AroTask",
        "ARO (Yuksekgonul et al., ICLR 2023): VG-Relation, VG-Attribution, COCO-Order, Flickr30k-Order; "
        "the authors' files via --data-dir",
    ),
    "shapes-ranked": Entry(
        "winoground_eval.tasks.shapes_ranked:ShapesRankedTask",
        "synthetic shapes, 1 image x [caption, 4 hard negatives] (offline); --split test (300) | val",
    ),
    "cifar10": Entry(
        "winoground_eval.tasks.classification:cifar10",
        "zero-shot classification, CIFAR-10 test (10 classes); --data-dir in torchvision's layout",
    ),
    "stl10": Entry(
        "winoground_eval.tasks.classification:stl10",
        "zero-shot classification, STL-10 test (10 classes); --data-dir in torchvision's layout",
    ),
    "pets": Entry(
        "winoground_eval.tasks.classification:pets",
        "zero-shot classification, Oxford-IIIT Pet test (37 breeds); --data-dir in torchvision's layout",
    ),
    "flowers": Entry(
        "winoground_eval.tasks.classification:flowers",
        "zero-shot classification, Flowers-102 test (102 classes); --data-dir in torchvision's layout",
    ),
    "food": Entry(
        "winoground_eval.tasks.classification:food",
        "zero-shot classification, Food-101 test (101 classes); --data-dir in torchvision's layout",
    ),
    "aircraft": Entry(
        "winoground_eval.tasks.classification:aircraft",
        "zero-shot classification, FGVC Aircraft test (100 variants); --data-dir in torchvision's layout",
    ),
    "imagenet": Entry(
        "winoground_eval.tasks.classification:imagenet",
        "zero-shot classification, ImageNet-1k val (1000 classes); --data-dir with val/<wnid>/",
    ),
    "objectnet": Entry(
        "winoground_eval.tasks.classification:objectnet",
        "zero-shot classification, ObjectNet's 113 ImageNet classes; --data-dir with objectnet-1.0/",
    ),
    "shapes-classify": Entry(
        "winoground_eval.tasks.shapes_classify:ShapesClassifyTask",
        "zero-shot classification view of shapes (offline): each image vs 10 colour-pair classes; --split test | heldout | val",
    ),
    "digits": Entry(
        "winoground_eval.tasks.digits:DigitsTask",
        "scikit-learn's 1,797 real handwritten 8x8 digits, 10-way (offline); --split test (300) | val (300) | train (1,197)",
    ),
    "imagenet-v2": Entry(
        "winoground_eval.tasks.imagenet_variants:ImageNetV2Task",
        "ImageNet-V2 matched-frequency (10,000 images, 1,000 classes; captions are class indices) from --data-dir",
    ),
    "imagenet-a": Entry(
        "winoground_eval.tasks.imagenet_variants:ImageNetATask",
        "ImageNet-A (7,500 images, its 200 ImageNet classes; captions are class indices) from --data-dir",
    ),
    "whatsup": Entry(
        "winoground_eval.tasks.whatsup:WhatsUpTask",
        "What'sUp (Kamath et al., EMNLP 2023): spatial prepositions, Controlled-A/B (1 x 4), COCO-/GQA-spatial one and "
        "two objects (1 x 2); the authors' files via --data-dir or a Hub mirror; -t subsets=controlled_a,...",
    ),
    "eqben": Entry(
        "winoground_eval.tasks.eqben:EqBenTask",
        "EqBen (Wang et al., ICCV 2023): visual-minimal-change 2 x 2 pairs; the authors' Winoground-format files via --data-dir",
    ),
    "mmvp-vlm": Entry(
        "winoground_eval.tasks.mmvp_vlm:MMVPVLMTask",
        "MMVP-VLM (Tong et al., CVPR 2024): 135 CLIP-blind 2 x 2 pairs, 9 visual patterns; HF MMVP/MMVP_VLM or --data-dir",
    ),
    "vismin": Entry(
        "winoground_eval.tasks.vismin:VisMinTask",
        "VisMin (Awal et al., NeurIPS 2024): 2,084 minimal-change 2 x 2 examples (object, attribute, counting, relation); HF mair-lab/vismin-bench or --data-dir",
    ),
    "bivlc": Entry(
        "winoground_eval.tasks.bivlc:BiVLCTask",
        "BiVLC (Miranda et al., NeurIPS 2024): 2,933 COCO 2 x 2 examples with generated negative images; HF imirandam/BiVLC or --data-dir",
    ),
    "naturalbench": Entry(
        "winoground_eval.tasks.naturalbench:NaturalBenchTask",
        "NaturalBench, retrieval form (Li et al., NeurIPS 2024): 2 natural images x 2 captions, text / image / group; HF BaiqiL/NaturalBench or --data-dir",
    ),
    "sugarcrepe-pp": Entry(
        "winoground_eval.tasks.sugarcrepe_pp:SugarCrepePPTask",
        "SugarCrepe++ (Dumpala et al., NeurIPS 2024): 1 COCO image x [2 positives, 1 negative], 5 subsets; captions from HF "
        "Aman-J/SugarCrepe_pp (or -t captions_dir=), COCO 2017 val via --data-dir",
    ),
    "colorswap": Entry(
        "winoground_eval.tasks.colorswap:ColorSwapTask",
        "ColorSwap (Burapacheep et al., 2024): colour-word swaps, 2 x 2; gated HF stanfordnlp/colorswap or --data-dir",
    ),
}

# Task names with a free-form part after the prefix; the factory gets it as first argument.
TASK_PREFIXES: dict[str, Entry] = {
    "captions:": Entry(
        "winoground_eval.tasks.captions:from_captions_spec",
        "captions:FILE, your own examples: a JSONL file of {id, images, captions, tags} (see docs/extending.md)",
    ),
    "imagefolder:": Entry(
        "winoground_eval.tasks.classification:imagefolder",
        "imagefolder:DIR, zero-shot classification of DIR/<class>/<image> files",
    ),
}

# Several tasks run with one scorer (`wg-eval run --task compositional`): one run directory
# per task; a task whose data is missing is skipped with a line saying how to get it.
SUITES: dict[str, tuple[str, ...]] = {
    "compositional": (
        "winoground",
        "sugarcrepe",
        "aro",
        "whatsup",
        "eqben",
        "mmvp-vlm",
        "vismin",
        "bivlc",
        "naturalbench",
        "sugarcrepe-pp",
        "colorswap",
    ),
}

SCORERS: dict[str, Entry] = {
    "dummy": Entry(
        "winoground_eval.baselines.dummy:DummyScorer",
        "chance baseline for tests and plumbing: deterministic pseudo-random scores (SHA-256 of image and caption), no ties",
    ),
    "tiny-diffusion": Entry(
        "winoground_eval.baselines.tiny_models:tiny_diffusion",
        "the shipped tiny trained pixel-space diffusion model (shapes only), t_range chosen on shapes val",
    ),
    "tiny-clip": Entry(
        "winoground_eval.baselines.tiny_models:tiny_clip", "the shipped tiny trained open_clip model (shapes only)"
    ),
    "clip-vit-b32": Entry(
        "winoground_eval.baselines.clip:clip_vit_b32", "CLIP ViT-B/32, OpenAI weights (open_clip ViT-B-32/openai)"
    ),
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
        "winoground_eval.diffusion.presets:sd2_1",
        "Diffusion Classifier, stabilityai/stable-diffusion-2-1-base (SD 2.1, 512 px)",
    ),
    "sd1.5": Entry(
        "winoground_eval.diffusion.presets:sd1_5",
        "Diffusion Classifier, stable-diffusion-v1-5/stable-diffusion-v1-5 (SD 1.5, 512 px)",
    ),
    "dit-xl-2-256": Entry(
        "winoground_eval.diffusion.dit:dit_xl_2_256",
        "class-conditional DiT-XL/2 (facebook/DiT-XL-2-256) as an ImageNet classifier; 250 timesteps, every class, l2",
    ),
    "dit-xl-2-512": Entry(
        "winoground_eval.diffusion.dit:dit_xl_2_512", "class-conditional DiT-XL/2 at 512 px (facebook/DiT-XL-2-512)"
    ),
    "tiny-dit": Entry(
        "winoground_eval.diffusion.dit:tiny_dit",
        "the shipped tiny class-conditional pixel-space DiT trained on digits train (digits only); grid chosen on digits val",
    ),
    "sd1.4": Entry(
        "winoground_eval.diffusion.presets:sd1_4",
        "Diffusion Classifier, CompVis/stable-diffusion-v1-4 (SD 1.4, 512 px)",
    ),
    "sdxl": Entry(
        "winoground_eval.diffusion.family_presets:sdxl",
        "Diffusion Classifier, stabilityai/stable-diffusion-xl-base-1.0 (SDXL, 1024 px, epsilon); 30 timesteps",
    ),
    "sd3-medium": Entry(
        "winoground_eval.diffusion.family_presets:sd3_medium",
        "Diffusion Classifier, stabilityai/stable-diffusion-3-medium-diffusers (rectified flow, gated); 30 timesteps",
    ),
    "sd3.5-medium": Entry(
        "winoground_eval.diffusion.family_presets:sd3_5_medium",
        "Diffusion Classifier, stabilityai/stable-diffusion-3.5-medium (rectified flow, gated); 30 timesteps",
    ),
    "sd3.5-large": Entry(
        "winoground_eval.diffusion.family_presets:sd3_5_large",
        "Diffusion Classifier, stabilityai/stable-diffusion-3.5-large (rectified flow, gated); 30 timesteps",
    ),
    "flux-schnell": Entry(
        "winoground_eval.diffusion.family_presets:flux_schnell",
        "Diffusion Classifier, black-forest-labs/FLUX.1-schnell (rectified flow, bfloat16 on CUDA); 30 timesteps",
    ),
    "flux-dev": Entry(
        "winoground_eval.diffusion.family_presets:flux_dev",
        "Diffusion Classifier, black-forest-labs/FLUX.1-dev (guidance 3.5, rectified flow, gated); 30 timesteps",
    ),
}

# Scorer names with a free-form part after the prefix.
SCORER_PREFIXES: dict[str, Entry] = {
    "open_clip:": Entry(
        "winoground_eval.baselines.clip:from_open_clip_spec",
        "open_clip:ARCH/TAG (a pretrained tag) or open_clip:ARCH/PATH (a local checkpoint file)",
    ),
    "hf-hub:": Entry(
        "winoground_eval.baselines.clip:from_hf_hub", "hf-hub:ORG/NAME, an open_clip model on the Hugging Face Hub"
    ),
    "dit:": Entry(
        "winoground_eval.diffusion.dit:from_dit_spec",
        "dit:ID_OR_PATH, any class-conditional diffusers DiT (learned sigma) repository or local folder",
    ),
    "diffusers:": Entry(
        "winoground_eval.diffusion.presets:from_diffusers_spec",
        "diffusers:ID_OR_PATH, any diffusers repository or local folder of a supported family (dispatch on the pipeline class in model_index.json; see docs/families.md)",
    ),
}

# Which of a task's ``scorer_defaults`` reach the scorer a factory builds: the diffusion
# families decide (Stable Diffusion settings never reach a DiT). Named here like every
# plugin, so that the core (core/execute.py) imports no plugin.
TASK_SCORER_DEFAULTS = "winoground_eval.diffusion.families:task_scorer_defaults"


def task_scorer_defaults(task: Any, factory: Callable[..., Any]) -> dict[str, Any]:
    """The scorer options ``task`` sets for the scorer ``factory`` builds (:data:`TASK_SCORER_DEFAULTS`)."""
    return dict(load_target(TASK_SCORER_DEFAULTS)(task, factory))


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


def _resolve(kind: str, name: str, table: dict[str, Entry], prefixes: dict[str, Entry]) -> Callable[..., Any]:
    if name in table:
        return load_target(table[name].target)
    for prefix, entry in prefixes.items():
        if name.startswith(prefix):
            spec = name[len(prefix) :]
            if not spec:
                raise ConfigError(f"{kind} {name!r} names nothing after {prefix!r}: {entry.summary}")
            factory = load_target(entry.target)
            return functools.partial(factory, spec)
    from . import userfile  # imported on demand: listing names stays free of numpy and PIL

    if userfile.is_user_spec(name):
        return userfile.scorer_factory(name) if kind == "scorer" else userfile.task_factory(name)
    known = sorted(table) + [p + "..." for p in prefixes] + ["PATH.py:NAME"]
    raise _unknown(kind, name, known)


def resolve_task(name: str) -> Callable[..., Any]:
    """The factory for a task name: registered, ``PREFIX:SPEC`` (spec bound as first argument)
    or ``PATH.py:NAME`` (a user's file). Suites are expanded by the caller (:data:`SUITES`)."""
    return _resolve("task", name, TASKS, TASK_PREFIXES)


def resolve_scorer(name: str) -> Callable[..., Any]:
    """The factory for a scorer name: registered, ``PREFIX:SPEC`` or ``PATH.py:NAME``."""
    return _resolve("scorer", name, SCORERS, SCORER_PREFIXES)


def display_name(name: str) -> str:
    """The name a run directory is filed under: ``PATH.py:NAME`` becomes ``FILE.py:NAME`` so that
    where the file lies does not name the folder (its absolute path is in the run's config)."""
    from .userfile import is_user_spec

    if is_user_spec(name):
        path, _, attr = name.rpartition(":")
        return f"{Path(path).name}:{attr}"
    return name
