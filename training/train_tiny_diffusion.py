"""Train ``tiny-diffusion``: a pixel-space text-conditional diffusion model on the shapes world.

A diffusers ``UNet2DConditionModel`` (32x32 RGB in and out, channels 16/48/96 at 32/16/8
px, cross-attention at 16x16, 8x8 and the mid block; 2.25M parameters) and a small ``transformers.CLIPTextModel`` (width 32, 2 layers, 16 tokens) over the real CLIP BPE
tokenizer, trained together with the epsilon objective: ``x_t = add_noise(x0, eps, t)``
from diffusers' ``DDPMScheduler`` (DDPM's linear betas, 1e-4 to 0.02), 10% of captions
dropped to "" so that an unconditional error exists. Half of each batch draws t uniformly
from [0, 1000), the other half from [300, 900) (a guess made before training: in this
schedule the caption turned out to matter most for t in about [250, 700), and images are
nearly pure noise above t=700).

Saved in the Stable Diffusion folder layout without vae/ (unet/, text_encoder/, tokenizer/,
scheduler/, model_index.json; weights as float16 safetensors), so that
``DiffusionScorer.from_pretrained(path)`` loads it like any other model.

Learning curves: at each checkpoint the val split's text/image/group scores (the suite's
own metric code) from per-timestep errors with shared noise, per timestep range, for the
EMA of the weights, which is what is saved.

The shipped weights come from two stages (``make train-tiny``):

    python -m training.train_tiny_diffusion --steps 2500 --minutes 75 --out winoground_eval/weights/tiny-diffusion
    python -m training.train_tiny_diffusion --init winoground_eval/weights/tiny-diffusion --first-example 80000 \
        --steps 900 --lr 2e-4 --minutes 24 --eval-every 300 --out winoground_eval/weights/tiny-diffusion

Measured on the 2-core build machine (1 thread, shared with other jobs): stage 1 took
58.6 minutes of training (64.3 with its checkpoints), ~40-45 images/s; stage 2 about 20
minutes. The caption starts to matter after ~20 minutes (val text 0.31 at step 800,
0.50 at 1600, 0.77 at 2500 with t in [250, 750)); Object swaps are learnt first, Relation
swaps last. ``--minutes`` is a safety net: when it stops a run before ``--steps``, the
learning-rate schedule has not finished and the run is not reproducible.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.common import (
    Budget,
    curve_metrics,
    fmt,
    log_json,
    seed_everything,
    to_tensor,
    training_parser,
    val_examples,
    warmup_cosine,
)
from winoground_eval.tasks import shapes

MAX_LENGTH = 16  # the longest shapes caption is 12 tokens with BOS/EOS
TEXT_WIDTH = 32
RANGES = ((0, 1000), (0, 250), (250, 500), (500, 750), (750, 1000), (250, 750), (400, 800))
EVAL_GRID = np.arange(25, 1000, 50)  # 20 timesteps, evaluation only


def build(seed: int, tokenizer_dir: Path) -> dict[str, Any]:
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from winoground_eval.testing.tiny_sd import build_clip_tokenizer, clip_text_encoder

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=shapes.IMAGE_SIZE,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(16, 48, 96),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=4,  # diffusers' name for the number of heads
        norm_num_groups=8,
    )
    torch.manual_seed(seed + 1)
    text_encoder = clip_text_encoder(TEXT_WIDTH, MAX_LENGTH, intermediate_size=4 * TEXT_WIDTH)
    tokenizer = build_clip_tokenizer(tokenizer_dir, model_max_length=MAX_LENGTH)
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        prediction_type="epsilon",
        clip_sample=False,
    )
    return {"unet": unet, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def tokenize(tokenizer: Any, captions: list[str]) -> torch.Tensor:
    return tokenizer(
        captions, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt"
    ).input_ids


@torch.inference_mode()
def val_errors(unet, text_encoder, tokenizer, scheduler, specs, batch: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """errors (n_ex, 2 images, 2 captions, T) and uncond errors (n_ex, 2, T) on EVAL_GRID, shared noise."""
    gen = torch.Generator().manual_seed(42)
    noise = torch.randn(len(EVAL_GRID), 3, shapes.IMAGE_SIZE, shapes.IMAGE_SIZE, generator=gen)
    unet.eval(), text_encoder.eval()
    x0 = to_tensor([im for s in specs for im in shapes.images_of(s)])  # (2n, 3, H, W)
    caps = [c for s in specs for c in s.captions()] + [""]
    emb = text_encoder(tokenize(tokenizer, caps))[0]  # (2n+1, L, D)
    n, T = len(specs), len(EVAL_GRID)
    items = [(e, j, k, i) for e in range(n) for i in range(T) for j in range(2) for k in range(3)]
    idx = torch.tensor(items)
    out = torch.empty(len(items))
    ts = torch.as_tensor(EVAL_GRID)
    for a in range(0, len(items), batch):
        e, j, k, i = idx[a : a + batch].unbind(1)
        x = x0[2 * e + j]
        eps, t = noise[i], ts[i]
        cond = torch.where(k < 2, 2 * e + k, torch.full_like(k, 2 * n))
        pred = unet(scheduler.add_noise(x, eps, t), t, encoder_hidden_states=emb[cond]).sample
        out[a : a + len(t)] = ((pred - eps) ** 2).mean(dim=(1, 2, 3))
    grid = out.reshape(n, T, 2, 3).permute(0, 2, 3, 1).numpy()  # (n, img, cond, T)
    unet.train(), text_encoder.train()
    return grid[:, :, :2], grid[:, :, 2]


def range_report(errors: np.ndarray, uncond: np.ndarray, specs) -> dict[str, Any]:
    report = {}
    for lo, hi in RANGES:
        sel = (EVAL_GRID >= lo) & (EVAL_GRID < hi)
        s = -errors[..., sel].mean(-1)
        report[f"{lo}-{hi}"] = curve_metrics({sp.id: s[n] for n, sp in enumerate(specs)}, specs)
        su = s + uncond[..., sel].mean(-1)[:, :, None]
        report[f"{lo}-{hi} uncond"] = curve_metrics({sp.id: su[n] for n, sp in enumerate(specs)}, specs)
    gap = np.abs(errors[:, :, 0] - errors[:, :, 1]).mean(axis=(0, 1))  # caption effect per timestep
    report["caption_gap_per_t"] = [float(f"{g:.2e}") for g in gap]
    return report


def save(parts: dict[str, Any], unet, text_encoder, out: Path, meta: dict[str, Any]) -> None:
    """The Stable Diffusion folder layout, float16 safetensors, written next to out then swapped in."""
    import diffusers

    out.mkdir(parents=True, exist_ok=True)
    copy.deepcopy(unet).half().save_pretrained(out / "unet")
    copy.deepcopy(text_encoder).half().save_pretrained(out / "text_encoder")
    parts["scheduler"].save_pretrained(out / "scheduler")
    parts["tokenizer"].save_pretrained(out / "tokenizer")
    # vocab.json + merges.txt define the tokenizer; the 3.6 MB fast-tokenizer cache is rebuilt on load
    (out / "tokenizer" / "tokenizer.json").unlink(missing_ok=True)
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "vae": [None, None],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "training.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = training_parser(
        __doc__.splitlines()[0],
        out="winoground_eval/weights/tiny-diffusion",
        batch_help="images per step",
        eval_every=400,
        val_n=48,
        val_help="val examples in the learning curve",
    )
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument(
        "--init", type=Path, default=None, help="continue from the weights in this saved folder (a second stage)"
    )
    p.add_argument("--first-example", type=int, default=0, help="index of the first training example drawn")
    args = p.parse_args(argv)
    if args.steps is None and args.minutes is None:
        p.error("give --steps and/or --minutes")
    seed_everything(args.seed, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = build(args.seed, args.out / "tokenizer")
    if args.init is not None:
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        parts["unet"].load_state_dict(UNet2DConditionModel.from_pretrained(args.init / "unet").float().state_dict())
        parts["text_encoder"].load_state_dict(
            CLIPTextModel.from_pretrained(args.init / "text_encoder").float().state_dict()
        )
        print(f"initialised from {args.init}", flush=True)
    unet, text_encoder, tokenizer, scheduler = (
        parts["unet"],
        parts["text_encoder"],
        parts["tokenizer"],
        parts["scheduler"],
    )
    n_params = sum(q.numel() for m in (unet, text_encoder) for q in m.parameters())
    print(
        f"unet {sum(q.numel() for q in unet.parameters()) / 1e6:.2f}M, text {sum(q.numel() for q in text_encoder.parameters()) / 1e6:.2f}M params",
        flush=True,
    )
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    ema_unet, ema_text = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(text_encoder).requires_grad_(False)

    def lr_at(step: int) -> float:
        return warmup_cosine(step, args.lr, 200, args.steps, floor=0.1)

    specs = val_examples(args.val_n)
    gen = torch.Generator().manual_seed(args.seed)
    log_path = args.out / "learning_curve.jsonl"
    if args.init is None:
        log_path.unlink(missing_ok=True)  # a second stage appends to the first stage's curve
    budget = Budget(args.steps, args.minutes)
    step, seen, losses, t_train = 0, 2 * args.first_example, [], 0.0

    def checkpoint(final: bool = False) -> None:
        t0 = time.monotonic()
        record: dict[str, Any] = {
            "stage": 2 if args.init else 1,
            "step": step,
            "images_seen": seen,
            "train_minutes": round(t_train / 60, 2),
            "loss": float(np.mean(losses[-200:])) if losses else None,
        }
        err, unc = val_errors(ema_unet, ema_text, tokenizer, scheduler, specs)
        record["ema"] = range_report(err, unc, specs)
        record["eval_seconds"] = round(time.monotonic() - t0, 1)
        log_json(log_path, record)
        print(
            f"[step {step} | {record['train_minutes']:.1f} min train | loss {record['loss']}] eval {record['eval_seconds']}s",
            flush=True,
        )
        for name in ("ema",):
            for r in ("0-1000", "250-750", "400-800", "500-750"):
                print(f"  {name} t[{r}): {fmt(record[name][r])}", flush=True)
            print(f"  {name} caption gap per t (25..975 step 50): {record[name]['caption_gap_per_t']}", flush=True)
        meta = {
            "script": "training/train_tiny_diffusion.py",
            "args": {k: str(v) for k, v in vars(args).items()},
            "step": step,
            "images_seen": seen,
            "train_minutes": round(t_train / 60, 2),
            "params": n_params,
            "weights": "EMA",
            "val_at_save": record["ema"]["0-1000"],
            "val_at_save_400_800": record["ema"]["400-800"],
        }
        save(parts, ema_unet, ema_text, args.out, meta)

    unet.train(), text_encoder.train()
    while not budget.done(step):
        t0 = time.monotonic()
        images, captions, _ = shapes.training_batch(seen // 2, args.batch // 2)
        seen += len(images)
        x0 = to_tensor(images)
        drop = torch.rand(len(captions), generator=gen) < 0.1
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        n = len(images)
        t_uniform = torch.randint(0, 1000, (n,), generator=gen)
        t_mid = torch.randint(300, 900, (n,), generator=gen)
        t = torch.where(torch.arange(n) % 2 == 0, t_uniform, t_mid)
        eps = torch.randn(x0.shape, generator=gen)
        emb = text_encoder(tokenize(tokenizer, captions))[0]
        pred = unet(scheduler.add_noise(x0, eps, t), t, encoder_hidden_states=emb).sample
        loss = F.mse_loss(pred, eps)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for m, e in ((unet, ema_unet), (text_encoder, ema_text)):
                for q, qe in zip(m.parameters(), e.parameters()):
                    qe.lerp_(q, 1 - d)
        losses.append(loss.item())
        step += 1
        t_train += time.monotonic() - t0
        if step % 50 == 0:
            print(
                f"step {step} loss {np.mean(losses[-50:]):.4f} lr {lr_at(step):.2e} {(seen - 2 * args.first_example) / t_train:.1f} img/s",
                flush=True,
            )
        if step % args.eval_every == 0:
            checkpoint()
    if step % args.eval_every:
        checkpoint(final=True)
    print(
        f"done: {step} steps, {seen} images, {t_train / 60:.1f} min training, {budget.elapsed_min():.1f} min total",
        flush=True,
    )


if __name__ == "__main__":
    main()
