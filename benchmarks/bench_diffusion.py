"""Speed of the Diffusion Classifier scorer.

Prints UNet evaluations per second and seconds per Winoground example (2 images x 2
captions x n timesteps) against batch size and dtype for

1. the tiny random test model (CPU by default), side by side with a reference-style loop
   (one image-caption pair at a time, timesteps batched, latent and text re-encoded for
   every pair, as the Diffusion Classifier's ``run_winoground.py``) on the same model and
   timestep budget, with the speed ratio;
2. the full-size Stable Diffusion 2 base UNet architecture with random weights (no weights
   needed), at a low timestep count, with the time extrapolated to the paper's 1000.

Peak memory is torch.cuda.max_memory_allocated on CUDA, the process's peak RSS on CPU.

    python benchmarks/bench_diffusion.py                      # tiny model only
    python benchmarks/bench_diffusion.py --sd2 --sd2-timesteps 2 --sd2-batch-sizes 8
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from winoground_eval.contracts import Example
from winoground_eval.diffusion import DiffusionScorer, preprocess_image
from winoground_eval.diffusion.tiny import tiny_components

# Stable Diffusion 2 base's unet/config.json (stabilityai/stable-diffusion-2-base), in code.
SD2_BASE_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=(5, 10, 20, 20),
    cross_attention_dim=1024,
    use_linear_projection=True,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    flip_sin_to_cos=True,
    freq_shift=0,
    downsample_padding=1,
    mid_block_scale_factor=1,
    center_input_sample=False,
)
SD2_TEXT_LENGTH, SD2_TEXT_WIDTH = 77, 1024
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (CUDA, max allocated)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process peak RSS)"


def best_time(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: Callable[[], Any] | None = None) -> float:
    """Seconds of the fastest of ``repeats`` calls, after one warm-up call (``warmup`` or ``fn``)."""
    (warmup or fn)()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def alternate_times(a: Callable[[], Any], b: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, float]:
    """Best seconds of ``a`` and of ``b``, timed alternately so that machine load hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, times[0]), (b, times[1])):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - t0)
    return min(times[0]), min(times[1])


def synthetic_example(size: int = 64) -> Example:
    rng = np.random.default_rng(0)
    images = tuple(Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)) for _ in range(2))
    return Example("bench", images, ("an old person kisses a young person", "a young person kisses an old person"))


def reference_style_errors(scorer: DiffusionScorer, example: Example, batch_size: int) -> np.ndarray:
    """The reference code's loop on the scorer's components: one pair at a time, timesteps
    batched, the image latent and caption embedding recomputed for every pair."""
    device, dtype = scorer.device, DTYPES[scorer.dtype]
    acp = scorer.noise_scheduler.alphas_cumprod.to(device)
    noise = scorer.noise.to(device)
    ts = torch.as_tensor(scorer.timesteps, device=device)
    tok = scorer.tokenizer
    out = np.zeros((len(example.images), len(example.captions), len(ts)), dtype=np.float32)
    with torch.inference_mode():
        for k, caption in enumerate(example.captions):
            for j, image in enumerate(example.images):
                pixels = preprocess_image(image, scorer.resolution, scorer.interpolation)[None].to(device, dtype)
                latent = scorer.vae.encode(pixels).latent_dist.mean * scorer.vae.config.scaling_factor
                ids = tok([caption], padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
                emb = scorer.text_encoder(ids.input_ids.to(device))[0]
                for start in range(0, len(ts), batch_size):
                    t = ts[start : start + batch_size]
                    eps = noise[start : start + len(t)]
                    a = acp[t].view(-1, 1, 1, 1)
                    noised = latent.float() * a**0.5 + eps * (1 - a) ** 0.5
                    pred = scorer.unet(noised.to(dtype), t, encoder_hidden_states=emb.expand(len(t), -1, -1)).sample
                    err = ((pred.float() - eps) ** 2).mean(dim=(1, 2, 3))
                    out[j, k, start : start + len(t)] = err.cpu().numpy()
    return out


def bench_tiny(args: argparse.Namespace, device: torch.device) -> None:
    example = synthetic_example()
    n_evals = len(example.images) * len(example.captions) * args.tiny_timesteps
    print(
        f"\n== tiny random model on {device} ({torch.get_num_threads()} threads): one example = 2 images x 2 captions "
        f"x {args.tiny_timesteps} timesteps = {n_evals} UNet evaluations; best of {args.repeats} =="
    )
    print(f"{'dtype':<9} {'batch':>5} {'UNet evals/s':>13} {'s/example':>10}")
    scorer_seconds: dict[tuple[str, int], float] = {}
    for dtype in args.dtypes:
        for bs in args.batch_sizes:
            scorer = DiffusionScorer(
                **tiny_components(seed=0), device=str(device), dtype=dtype, batch_size=bs, n_timesteps=args.tiny_timesteps
            )
            # caches cleared on every call: time the text encoding as for a new example
            seconds = best_time(lambda: (scorer.clear_caches(), scorer.evaluate([example])), device, args.repeats)
            scorer_seconds[(dtype, bs)] = seconds
            print(f"{dtype:<9} {bs:>5} {n_evals / seconds:>13.1f} {seconds:>10.4f}")
    print(f"peak memory: {peak_memory(device)}")

    dtype = args.dtypes[0]
    print(
        f"\n-- side by side with the reference-style loop ({dtype}, same model, timestep budget and batch size; "
        "timed alternately, best of each) --"
    )
    print(f"{'timesteps':>9} {'batch':>5} {'reference s/ex':>15} {'scorer s/ex':>12} {'speed-up':>9}")
    best_scorer = {}
    for n_t in args.compare_timesteps:
        for bs in args.batch_sizes:
            scorer = DiffusionScorer(**tiny_components(seed=0), device=str(device), dtype=dtype, batch_size=bs, n_timesteps=n_t)
            got = scorer.errors(example.images, example.captions)
            want = reference_style_errors(scorer, example, bs)  # also the warm-up
            if dtype == "float32" and not np.allclose(got, want, rtol=1e-4, atol=1e-5):
                print(f"   warning: errors differ from the reference loop by {np.abs(got - want).max():.2e}")
            ref, ours = alternate_times(
                lambda: reference_style_errors(scorer, example, bs),
                lambda: (scorer.clear_caches(), scorer.evaluate([example])),
                device,
                args.repeats,
            )
            best_scorer[n_t] = min(best_scorer.get(n_t, ours), ours)
            print(f"{n_t:>9} {bs:>5} {ref:>15.4f} {ours:>12.4f} {ref / ours:>8.2f}x")
        scorer = DiffusionScorer(**tiny_components(seed=0), device=str(device), dtype=dtype, batch_size=1, n_timesteps=n_t)
        ref1 = best_time(lambda: reference_style_errors(scorer, example, 1), device, args.repeats)
        print(
            f"{n_t:>9} reference at its default batch size 1: {ref1:.4f} s/example; the scorer's best "
            f"{best_scorer[n_t]:.4f}: {ref1 / best_scorer[n_t]:.2f}x"
        )


def sd2_unet(device: torch.device, dtype: torch.dtype) -> Any:
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD2_BASE_UNET)
    if dtype != torch.float32:
        torch.nn.Module.to(unet, dtype=dtype)  # diffusers' .to warns about fp32 modules this UNet lacks
    unet.eval().requires_grad_(False)
    unet.set_attn_processor(AttnProcessor2_0())
    return unet


def bench_sd2(args: argparse.Namespace, device: torch.device) -> None:
    n_t = args.sd2_timesteps
    n_evals = 4 * n_t
    print(
        f"\n== SD2-base UNet architecture, random weights, on {device}: latent 4x64x64 (512 px), text "
        f"{SD2_TEXT_LENGTH}x{SD2_TEXT_WIDTH}; one example = 4 pairs x {n_t} timesteps = {n_evals} UNet evaluations =="
    )
    print("(UNet only: the VAE and text encoder run once per image/caption, negligible next to 4000 UNet calls)")
    print(f"{'dtype':<9} {'batch':>5} {'UNet evals/s':>13} {f's/ex @{n_t}':>10} {'s/ex @1000':>11}  peak memory")
    for dtype_name in args.sd2_dtypes:
        dtype = DTYPES[dtype_name]
        t0 = time.perf_counter()
        unet = sd2_unet(device, dtype)
        n_params = sum(p.numel() for p in unet.parameters())
        print(f"   (built {n_params / 1e6:.1f}M-parameter UNet in {dtype_name} in {time.perf_counter() - t0:.1f} s)")
        gen = torch.Generator().manual_seed(0)
        latents = torch.randn(n_evals, 4, 64, 64, generator=gen).to(device, dtype)
        text = torch.randn(2, SD2_TEXT_LENGTH, SD2_TEXT_WIDTH, generator=gen).to(device, dtype)
        ts = torch.as_tensor(np.repeat((1000 // n_t) // 2 + (1000 // n_t) * np.arange(n_t), 4), device=device)
        cond = text[torch.arange(n_evals) % 2]
        for bs in args.sd2_batch_sizes:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)

            def run() -> None:
                with torch.inference_mode():
                    for s in range(0, n_evals, bs):
                        unet(latents[s : s + bs], ts[s : s + bs], encoder_hidden_states=cond[s : s + bs]).sample

            def warmup() -> None:
                with torch.inference_mode():
                    unet(latents[:1], ts[:1], encoder_hidden_states=cond[:1]).sample

            seconds = best_time(run, device, args.sd2_repeats, warmup=warmup)
            rate = n_evals / seconds
            print(f"{dtype_name:<9} {bs:>5} {rate:>13.2f} {seconds:>10.2f} {4000 / rate:>11.0f}  {peak_memory(device)}")
        del unet


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [kind(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per tiny setting (best is reported)")
    parser.add_argument("--tiny-timesteps", type=int, default=50, help="timestep budget of the dtype x batch table")
    parser.add_argument("--batch-sizes", type=_csv(int), default=[1, 8, 32, 128], help="comma-separated")
    parser.add_argument("--compare-timesteps", type=_csv(int), default=[10, 50], help="budgets for the side by side")
    parser.add_argument("--dtypes", type=_csv(str), default=None, help="default: float32,bfloat16 on CPU; float32,float16 on CUDA")
    parser.add_argument("--no-tiny", dest="tiny", action="store_false", help="skip the tiny model")
    parser.add_argument("--sd2", action="store_true", help="also time the full-size SD2-base UNet (random weights)")
    parser.add_argument("--sd2-timesteps", type=int, default=2, help="low, so that a CPU finishes in minutes")
    parser.add_argument("--sd2-batch-sizes", type=_csv(int), default=None, help="default: 8 on CPU; 8,32 on CUDA")
    parser.add_argument("--sd2-dtypes", type=_csv(str), default=None, help="default: float32 on CPU; float16 on CUDA")
    parser.add_argument("--sd2-repeats", type=int, default=1)
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    args.dtypes = args.dtypes or (["float32", "float16"] if cuda else ["float32", "bfloat16"])
    args.sd2_batch_sizes = args.sd2_batch_sizes or ([8, 32] if cuda else [8])
    args.sd2_dtypes = args.sd2_dtypes or (["float16"] if cuda else ["float32"])
    for name in [*args.dtypes, *args.sd2_dtypes]:
        if name not in DTYPES:
            parser.error(f"unknown dtype {name}; choose from {', '.join(DTYPES)}")
    print(f"torch {torch.__version__}, device {device}" + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""))
    if args.tiny:
        bench_tiny(args, device)
    if args.sd2:
        bench_sd2(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
