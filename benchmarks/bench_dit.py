"""Speed of the DiT classifier scorer: transformer calls and seconds per image.

The reference's setting evaluates every class at 250 timesteps (every 4th of 1000): for
ImageNet that is 250 x 1000 = 250,000 transformer calls per image. This script measures
the scorer's throughput (calls per second, through ``DiTScorer.terms_for``, noising and
all four error terms included) at a given batch size, and prints, for each timestep
count, the calls and seconds per image (measured for every class when that is cheap,
else extrapolated from the measured throughput and marked so).

    python benchmarks/bench_dit.py                                   # shipped tiny-dit on digits test images
    python benchmarks/bench_dit.py --model dit-xl-2-256 --random-weights --device cuda --dtype float16 \\
        --batch-sizes 64 256 --timesteps 250 50 10 --measure-calls 2048

Accuracy rows (``--accuracy N``): the shipped tiny-dit (or any 8x8 grey digits DiT) on the
first N digits test images, three settings through the scorer's ``evaluate`` (the code a
run uses): ``reference`` (every class x the preset grid), ``adaptive`` (the adaptive stages
``--n-samples``/``--to-keep``) and ``elimination`` (``stopping=sequential`` on the 1 x 10
examples: sequential elimination of classes), each with transformer calls per image,
seconds per image and top-1:

    python benchmarks/bench_dit.py --accuracy 100 --n-samples 5 20 --to-keep 3 1 --min-timesteps 5 --round-size 5

``--random-weights`` builds the full-size DiT-XL/2 (28 layers, width 1152, 256 px, VAE
as stabilityai/sd-vae-ft-ema) from its configuration with random weights, so no download
is needed; speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from winoground_eval.core.policy import DTYPES
from winoground_eval.diffusion.dit import (
    TINY_DIT_N_TIMESTEPS,
    TINY_DIT_T_RANGE,
    DiTOptions,
    DiTScorer,
)

# facebook/DiT-XL-2-256 transformer/config.json, in code.
DIT_XL_2 = dict(
    num_attention_heads=16,
    attention_head_dim=72,
    in_channels=4,
    out_channels=8,
    num_layers=28,
    patch_size=2,
    num_embeds_ada_norm=1000,
    norm_type="ada_norm_zero",
    activation_fn="gelu-approximate",
)
# stabilityai/sd-vae-ft-ema's config (the reference's VAE).
SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215,
)
SCHEDULE = dict(
    num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02, prediction_type="epsilon"
)


def build(model: str, random_weights: bool, options: DiTOptions, device: str, batch_size: int) -> DiTScorer:
    if model == "tiny-dit":
        from winoground_eval.baselines.tiny_models import weights_dir

        # trained with diffusers' DiT port: its own network has diffusers' timestep embedding
        opts = {**vars_of(options), "timestep_embedding": "diffusers"}
        return DiTScorer.from_pretrained(str(weights_dir("tiny-dit")), device=device, batch_size=batch_size, **opts)
    if model in ("dit-xl-2-256", "dit-xl-2-512") and random_weights:
        from diffusers import AutoencoderKL, DiTTransformer2DModel

        size = 256 if model.endswith("256") else 512
        torch.manual_seed(0)
        transformer = DiTTransformer2DModel(**DIT_XL_2, sample_size=size // 8)
        vae = AutoencoderKL(**SD_VAE, sample_size=size)
        return DiTScorer(transformer, dict(SCHEDULE), vae, options=options, device=device, batch_size=batch_size)
    return DiTScorer.from_pretrained(
        model.removeprefix("dit:"), device=device, batch_size=batch_size, **vars_of(options)
    )


def vars_of(options: DiTOptions) -> dict[str, Any]:
    """The options less device and batch_size (given separately)."""
    return {k: getattr(options, k) for k in DiTOptions.__dataclass_fields__ if k not in ("device", "batch_size")}


def images_for(scorer: DiTScorer, n: int) -> list[Image.Image]:
    if scorer.image_size == 8 and scorer.image_channels == 1:
        from winoground_eval.tasks import digits

        arrays, _ = digits.training_arrays("test")
        return [Image.fromarray(a, mode="L") for a in arrays[:n]]
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (scorer.image_size, scorer.image_size, 3), dtype=np.uint8))
        for _ in range(n)
    ]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(scorer: DiTScorer, images: list[Image.Image], n_classes: int) -> tuple[float, int]:
    """(seconds, transformer calls) to score ``images`` against ``n_classes`` classes."""
    captions = [str(k) for k in range(n_classes)]
    scorer.terms_for(images[:1], captions[:1])  # warm-up
    _sync(scorer.device)
    t0 = time.perf_counter()
    calls = sum(scorer.terms_for([im], captions)[1] for im in images)
    _sync(scorer.device)
    return time.perf_counter() - t0, calls


def accuracy_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """reference / adaptive / elimination on the first ``args.accuracy`` digits test images."""
    from winoground_eval.tasks.digits import DigitsTask

    task = DigitsTask(split="test", limit=args.accuracy)
    examples = list(task.examples())
    preset = {"n_timesteps": TINY_DIT_N_TIMESTEPS, "t_range": TINY_DIT_T_RANGE} if args.model == "tiny-dit" else {}
    grid = {**preset, **({"n_timesteps": args.grid} if args.grid else {})}
    settings = {
        "reference": dict(grid),
        "adaptive": {
            "t_range": grid.get("t_range"),
            "n_samples": tuple(args.n_samples),
            "to_keep": tuple(args.to_keep),
        },
        "elimination": {
            **grid,
            "stopping": "sequential",
            "confidence": args.confidence,
            "min_timesteps": args.min_timesteps,
            "round_size": args.round_size,
        },
    }
    rows = []
    for name in args.settings:
        options = DiTOptions(dtype=args.dtype, **{k: v for k, v in settings[name].items() if v is not None})
        scorer = build(args.model, False, options, args.device, args.batch_sizes[0])
        scorer.evaluate(examples[:1])  # warm-up
        _sync(scorer.device)
        t0 = time.perf_counter()
        scored = scorer.evaluate(examples)
        _sync(scorer.device)
        seconds = time.perf_counter() - t0
        top1 = float(np.mean([task.outcomes(ex.id, s.scores)["top1"] for ex, s in zip(examples, scored)]))
        calls = sum(s.info["unet_calls"] for s in scored)
        rows.append(
            {
                "model": args.model,
                "setting": name,
                "options": {k: v for k, v in settings[name].items() if v is not None},
                "device": str(scorer.device),
                "threads": args.threads,
                "images": len(examples),
                "calls_per_image": round(calls / len(examples), 1),
                "s_per_image": round(seconds / len(examples), 4),
                "top1": round(top1, 4),
            }
        )
        del scorer
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny-dit", help="tiny-dit | dit-xl-2-256 | dit-xl-2-512 | dit:PATH")
    p.add_argument("--random-weights", action="store_true", help="full-size DiT-XL/2 architecture, random weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[500])
    p.add_argument("--timesteps", type=int, nargs="+", default=[250, 100, 50, 25, 10])
    p.add_argument("--images", type=int, default=3, help="images measured per setting")
    p.add_argument(
        "--measure-calls",
        type=int,
        default=30000,
        help="measure every class when n_timesteps x classes is at most this; else extrapolate from "
        "a measurement on as many classes as fit",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument(
        "--accuracy",
        type=int,
        default=0,
        metavar="N",
        help="instead of throughput: reference / adaptive / elimination rows on the first N digits test images",
    )
    p.add_argument(
        "--settings",
        nargs="+",
        default=["reference", "adaptive", "elimination"],
        choices=["reference", "adaptive", "elimination"],
    )
    p.add_argument("--grid", type=int, default=0, help="accuracy rows: grid timesteps (0 = the preset's)")
    p.add_argument("--n-samples", type=int, nargs="+", default=[5, 20], help="adaptive: timesteps per stage")
    p.add_argument("--to-keep", type=int, nargs="+", default=[3, 1], help="adaptive: classes kept after each stage")
    p.add_argument("--confidence", type=float, default=0.99, help="elimination: 1 - error rate per comparison")
    p.add_argument("--min-timesteps", type=int, default=5, help="elimination: timesteps before the first look")
    p.add_argument("--round-size", type=int, default=5, help="elimination: timesteps per round")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.accuracy:
        rows = accuracy_rows(args)
        for r in rows:
            if args.json:
                print(json.dumps(r))
            else:
                opts = " ".join(
                    f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in r["options"].items()
                )
                print(
                    f"{r['model']} {r['setting']:<11} ({opts}) {r['device']}, {r['threads']} thread(s), {r['images']} images: "
                    f"{r['calls_per_image']} calls/image, {r['s_per_image']} s/image, top-1 {100 * r['top1']:.1f}%"
                )
        return rows
    rows = []
    for batch_size in args.batch_sizes:
        for n_t in args.timesteps:
            options = DiTOptions(n_timesteps=n_t, dtype=args.dtype)
            scorer = build(args.model, args.random_weights, options, args.device, batch_size)
            n_classes = scorer.conditioning.num_classes
            calls_per_image = n_t * n_classes
            measured_classes = max(1, min(n_classes, args.measure_calls // n_t))
            seconds, calls = measure(scorer, images_for(scorer, args.images), measured_classes)
            per_call = seconds / calls
            rows.append(
                {
                    "model": args.model + (" (random weights)" if args.random_weights else ""),
                    "device": str(scorer.device),
                    "dtype": args.dtype,
                    "batch_size": batch_size,
                    "n_timesteps": n_t,
                    "classes": n_classes,
                    "calls_per_image": calls_per_image,
                    "calls_per_s": round(1 / per_call, 1),
                    "s_per_image": round(per_call * calls_per_image, 4),
                    "extrapolated": measured_classes < n_classes,
                    "peak_mb": round(peak_memory_mb(scorer.device), 1),
                }
            )
            del scorer
    for r in rows:
        if args.json:
            print(json.dumps(r))
        else:
            mark = " (extrapolated)" if r["extrapolated"] else ""
            print(
                f"{r['model']} {r['device']} {r['dtype']} batch {r['batch_size']}: {r['n_timesteps']} timesteps x "
                f"{r['classes']} classes = {r['calls_per_image']} calls/image, {r['calls_per_s']} calls/s, "
                f"{r['s_per_image']} s/image{mark}, peak {r['peak_mb']} MB"
            )
    return rows


if __name__ == "__main__":
    main()
