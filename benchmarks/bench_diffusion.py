"""Speed of the Diffusion Classifier scorer.

Prints UNet evaluations per second and seconds per Winoground example (2 images x 2
captions x n timesteps) against batch size and dtype for

1. a tiny model (CPU by default): the suite's shipped tiny-diffusion (``--model shipped``,
   the default), the tiny random test model (``--model random``) or any diffusers model,
   side by side with the reference loop (one image-caption pair at a time, timesteps
   batched, latent and text re-encoded for every pair, as the Diffusion Classifier's
   ``run_winoground.py``) on the same model and timestep budget, with the speed ratio, at
   the reference's default batch size (1) and at its documented Winoground one (32); then
   sequential stopping against the reference at the full 1000-timestep budget;
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

from winoground_eval.core.contracts import Example
from winoground_eval.core.policy import DTYPES, torch_dtype
from winoground_eval.diffusion import DiffusionScorer, preprocess_image
from winoground_eval.testing.tiny_sd import tiny_components

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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (CUDA, max allocated)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process peak RSS)"


def best_time(
    fn: Callable[[], Any], device: torch.device, repeats: int, warmup: Callable[[], Any] | None = None
) -> float:
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


def alternate_times(
    a: Callable[[], Any], b: Callable[[], Any], device: torch.device, repeats: int
) -> tuple[float, float]:
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


def bench_examples(model: str, n: int) -> list[Example]:
    """Shapes validation examples for the shipped model (whose decisions mean something
    there), a synthetic Winoground-like example for any other."""
    if model == "shipped":
        from winoground_eval.tasks.shapes import ShapesTask

        return list(ShapesTask(split="val", limit=n).examples())
    return [synthetic_example()] * n


def make_scorer(model: str, device: torch.device, **options: Any) -> DiffusionScorer:
    """The scorer on the model under test: the shipped tiny-diffusion (pixel space, trained
    on shapes), the tiny random test model (with a VAE), or any diffusers folder or id."""
    if model == "random":
        return DiffusionScorer(**tiny_components(seed=0), device=str(device), **options)
    if model == "shipped":
        from winoground_eval.baselines.tiny_models import weights_dir

        model = str(weights_dir("tiny-diffusion"))
    return DiffusionScorer.from_pretrained(model, device=str(device), **options)


def reference_style_errors(scorer: DiffusionScorer, example: Example, batch_size: int) -> np.ndarray:
    """The reference code's loop on the scorer's components: one pair at a time, timesteps
    batched, the image latent and caption embedding recomputed for every pair (our own
    restatement of run_winoground.py's eval_prob, with its --randomize_noise bank)."""
    device, dtype = scorer.device, torch_dtype(scorer.dtype)
    acp = scorer.noise_scheduler.alphas_cumprod.to(device)
    noise = scorer.noise.to(device)
    ts = torch.as_tensor(scorer.timesteps, device=device)
    tok = scorer.tokenizer
    out = np.zeros((len(example.images), len(example.captions), len(ts)), dtype=np.float32)
    with torch.inference_mode():
        for k, caption in enumerate(example.captions):
            for j, image in enumerate(example.images):
                pixels = preprocess_image(image, scorer.resolution, scorer.interpolation)[None].to(device, dtype)
                if scorer.vae is None:
                    latent = pixels
                else:
                    latent = scorer.vae.encode(pixels).latent_dist.mean * scorer.vae.config.scaling_factor
                ids = tok(
                    [caption],
                    padding="max_length",
                    max_length=tok.model_max_length,
                    truncation=True,
                    return_tensors="pt",
                )
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


def shareable_work(unet: Any, device: torch.device, dtype: torch.dtype, text_length: int) -> dict[str, float]:
    """FLOPs of one UNet evaluation: the total, the part that does not depend on the caption
    (time embedding, conv_in, the leading down blocks without cross-attention, and in the
    first one with it, its first resnet, proj_in and first self-attention: all computed
    before the caption enters), and the part that does not depend on the image (the key and
    value projections of the caption in every cross-attention). Counted by torch's
    FlopCounterMode with the math attention kernel, whose matmuls it can see."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    cfg = unet.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    x = torch.zeros(1, cfg.in_channels, size, size, device=device, dtype=dtype)
    text = torch.zeros(1, text_length, cfg.cross_attention_dim, device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        unet(x, torch.tensor([500], device=device), encoder_hidden_states=text)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    root = type(unet).__name__

    def flops(name: str) -> int:
        return counts.get(f"{root}.{name}", 0)

    caption_free = flops("time_embedding") + flops("conv_in")
    for i, block in enumerate(unet.down_blocks):
        if not getattr(block, "has_cross_attention", False):
            caption_free += flops(f"down_blocks.{i}")
            continue
        first = f"down_blocks.{i}.attentions.0"
        caption_free += sum(
            flops(f"down_blocks.{i}.{part}")
            for part in (
                "resnets.0",
                "attentions.0.norm",
                "attentions.0.proj_in",
                "attentions.0.transformer_blocks.0.attn1",
            )
        )
        assert counts.get(f"{root}.{first}.transformer_blocks.0.attn1", 0) > 0, "module names changed: recheck"
        break
    image_free = sum(flops(f"{n}.to_k") + flops(f"{n}.to_v") for n, _ in unet.named_modules() if n.endswith("attn2"))
    return {"total": counts["Global"], "caption_free": caption_free, "image_free": image_free}


def print_sharing_bound(work: dict[str, float], n_img: int = 2, n_cap: int = 2, n_t: int = 1000) -> None:
    """The largest speed-up ANY scorer running the same UNet evaluations could get over the
    reference loop at equal batch size, if it computed every caption-independent part once
    per (image, timestep) and every image-independent part once per caption."""
    total, cap_free, img_free = work["total"], work["caption_free"], work["image_free"]
    plain = n_img * n_cap * n_t * total
    shared = n_img * n_t * cap_free + n_cap * img_free + n_img * n_cap * n_t * (total - cap_free - img_free)
    print(
        f"one UNet evaluation = {total / 1e9:.3f} GFLOP, of which {cap_free / total:.1%} does not depend on the caption "
        f"and {img_free / total:.1%} not on the image; sharing both perfectly over an example of {n_img} images x "
        f"{n_cap} captions x {n_t} timesteps would save at most {1 - shared / plain:.1%} "
        f"(a {plain / shared:.3f}x bound on any equal-batch speed-up over the reference loop)"
    )


def bench_tiny(args: argparse.Namespace, device: torch.device) -> None:
    name = {"shipped": "shipped tiny-diffusion (pixel space)", "random": "tiny random test model"}.get(
        args.model, args.model
    )
    example = bench_examples(args.model, 1)[0]
    n_pairs = len(example.images) * len(example.captions)
    n_evals = n_pairs * args.tiny_timesteps
    print(
        f"\n== {name} on {device} ({torch.get_num_threads()} threads): one example = {len(example.images)} images x "
        f"{len(example.captions)} captions x {args.tiny_timesteps} timesteps = {n_evals} UNet evaluations; "
        f"best of {args.repeats} =="
    )
    print(f"{'dtype':<9} {'batch':>5} {'UNet evals/s':>13} {'s/example':>10}")
    for dtype in args.dtypes:
        for bs in args.batch_sizes:
            scorer = make_scorer(args.model, device, dtype=dtype, batch_size=bs, n_timesteps=args.tiny_timesteps)
            # caches cleared on every call: time the text encoding as for a new example
            seconds = best_time(lambda: (scorer.clear_caches(), scorer.evaluate([example])), device, args.repeats)
            print(f"{dtype:<9} {bs:>5} {n_evals / seconds:>13.1f} {seconds:>10.4f}")
    print(f"peak memory: {peak_memory(device)}")

    dtype = args.dtypes[0]
    print(
        f"\n-- side by side with the reference loop ({dtype}, same model and timestep budget; timed alternately, "
        "best of each) --\n"
        "   reference batch 1 = run_winoground.py's default --batch_size; 32 = the --batch_size of its documented "
        "Winoground command"
    )
    print(
        f"{'timesteps':>9} {'ref batch':>9} {'reference s/ex':>15} {'scorer batch':>12} {'scorer s/ex':>12} {'speed-up':>9}"
    )
    for n_t in args.compare_timesteps:
        for ref_bs, our_bs in args.compare_batches:
            scorer = make_scorer(args.model, device, dtype=dtype, batch_size=our_bs, n_timesteps=n_t)
            got = scorer.errors(example.images, example.captions)
            want = reference_style_errors(scorer, example, ref_bs)  # also the warm-up
            if dtype == "float32" and not np.allclose(got, want, rtol=1e-4, atol=1e-5):
                print(f"   warning: errors differ from the reference loop by {np.abs(got - want).max():.2e}")
            ref, ours = alternate_times(
                lambda: reference_style_errors(scorer, example, ref_bs),
                lambda: (scorer.clear_caches(), scorer.evaluate([example])),
                device,
                args.repeats,
            )
            print(f"{n_t:>9} {ref_bs:>9} {ref:>15.4f} {our_bs:>12} {ours:>12.4f} {ref / ours:>8.2f}x")
    scorer = make_scorer(args.model, device, dtype=dtype)
    print_sharing_bound(shareable_work(scorer.unet, device, torch_dtype(dtype), scorer.tokenizer.model_max_length))
    if args.sequential_examples:
        bench_sequential(args, device, dtype)


def bench_sequential(args: argparse.Namespace, device: torch.device, dtype: str) -> None:
    """Wall clock per example of sequential stopping (sd2-fast's rule, decide=all) against
    the reference loop at the full budget, on real examples."""
    n_t, bs = args.sequential_timesteps, args.sequential_batch
    examples = bench_examples(args.model, args.sequential_examples)
    print(
        f"\n-- sequential stopping (stopping=sequential, its defaults) against the reference loop at the full "
        f"{n_t}-timestep budget, batch {bs}, {dtype}, {len(examples)} example(s), one pass each --"
    )
    plain = make_scorer(args.model, device, dtype=dtype, batch_size=bs, n_timesteps=n_t)
    fast = make_scorer(args.model, device, dtype=dtype, batch_size=bs, n_timesteps=n_t, stopping="sequential")
    ref_s = fast_s = 0.0
    calls = 0
    for ex in examples:
        _sync(device)
        t0 = time.perf_counter()
        reference_style_errors(plain, ex, bs)
        _sync(device)
        t1 = time.perf_counter()
        fast.clear_caches()
        scored = fast.evaluate([ex])[0]
        _sync(device)
        ref_s += t1 - t0
        fast_s += time.perf_counter() - t1
        calls += scored.info["unet_calls"]
    n = len(examples)
    full_calls = len(examples[0].images) * len(examples[0].captions) * n_t
    print(f"{'':<22} {'UNet calls/ex':>13} {'s/example':>10}")
    print(f"{'reference, full budget':<22} {full_calls:>13} {ref_s / n:>10.2f}")
    print(f"{'scorer, sequential':<22} {calls / n:>13.0f} {fast_s / n:>10.2f}")
    print(
        f"speed-up: {ref_s / fast_s:.2f}x (the decisions' agreement with the full budget: benchmarks/bench_early_stopping.py)"
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
        dtype = torch_dtype(dtype_name)
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

            # the model is an argument, not a closure over `unet`, which this loop deletes below
            def run(model: torch.nn.Module = unet, bs: int = bs) -> None:
                with torch.inference_mode():
                    for s in range(0, n_evals, bs):
                        model(latents[s : s + bs], ts[s : s + bs], encoder_hidden_states=cond[s : s + bs])

            def warmup(model: torch.nn.Module = unet) -> None:
                with torch.inference_mode():
                    model(latents[:1], ts[:1], encoder_hidden_states=cond[:1])

            seconds = best_time(run, device, args.sd2_repeats, warmup=warmup)
            rate = n_evals / seconds
            print(f"{dtype_name:<9} {bs:>5} {rate:>13.2f} {seconds:>10.2f} {4000 / rate:>11.0f}  {peak_memory(device)}")
        if dtype_name == args.sd2_dtypes[0]:
            print_sharing_bound(shareable_work(unet, device, dtype, SD2_TEXT_LENGTH))
        del unet


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [kind(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per tiny setting (best is reported)")
    parser.add_argument("--tiny-timesteps", type=int, default=50, help="timestep budget of the dtype x batch table")
    parser.add_argument(
        "--model",
        default="shipped",
        help="shipped (the suite's tiny-diffusion, default), random (the tiny random test model) "
        "or a diffusers folder / Hub id",
    )
    parser.add_argument("--batch-sizes", type=_csv(int), default=[1, 8, 32, 128], help="comma-separated")
    parser.add_argument(
        "--compare-timesteps", type=_csv(int), default=[10, 50, 200], help="budgets for the side by side"
    )
    parser.add_argument(
        "--compare-batches",
        type=_csv(lambda x: tuple(int(v) for v in x.split(":"))),
        default=[(1, 32), (32, 32)],
        help="REF:SCORER batch-size pairs for the side by side (default 1:32,32:32)",
    )
    parser.add_argument(
        "--sequential-examples", type=int, default=2, help="examples for the sequential-stopping wall clock (0: skip)"
    )
    parser.add_argument("--sequential-timesteps", type=int, default=1000, help="its full budget (default 1000)")
    parser.add_argument("--sequential-batch", type=int, default=32)
    parser.add_argument(
        "--dtypes", type=_csv(str), default=None, help="default: float32,bfloat16 on CPU; float32,float16 on CUDA"
    )
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
