"""Train the shipped ``tiny-dit``: a class-conditional pixel-space DiT on the digits TRAIN split.

    python -m training.train_tiny_dit --steps 2000 --out winoground_eval/weights/tiny-dit

The model is diffusers' ``DiTTransformer2DModel`` on 8x8 grey images (1 channel in, 2 out:
learned sigma), patch size 2 (16 tokens), width 64 (4 heads), 4 layers (0.39M parameters), 10 classes (plus
the null class of diffusers' label embedding, dropped 10% of the time in training as in
DiT); a linear-beta DDPM schedule of 1000 steps (0.0001 .. 0.02, DiT's). Loss: DiT's
(IDDPM's) hybrid, ``l2(eps) + vb``, where vb is the KL term of
:mod:`winoground_eval.diffusion.dit` (decoder NLL at t = 0) computed with the predicted
mean frozen, so that it trains only the variance half; so every error kind of the scorer
(l2, l1, vlb, l2+vlb) is meaningful on the shipped model. AdamW, warm-up + cosine, an
exponential moving average of the weights (what is shipped), batch 64, one CPU thread,
seeded: 2,000 steps took 9 minutes on the (loaded) 2-core machine.

Every ``--eval-every`` steps it prints the val top-1 of the EMA weights on ``--val-n``
val images with a small grid (the suite's own scorer); test is never touched. The
result is written as float16 safetensors in the diffusers DiT layout, loaded by the
same path as ``dit:PATH``.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from training.common import Budget, seed_everything, training_parser, warmup_cosine
from winoground_eval.diffusion.dit import (
    DiTOptions,
    DiTScorer,
    GaussianTerms,
    betas_from_config,
    discretized_gaussian_nll,
    gaussian_kl,
    save_dit_folder,
)
from winoground_eval.tasks import digits

ARCH = dict(
    num_attention_heads=4,
    attention_head_dim=16,
    in_channels=1,
    out_channels=2,
    num_layers=4,
    sample_size=8,
    patch_size=2,
    num_embeds_ada_norm=10,
)


def build_model(width: int, layers: int):
    from diffusers import DiTTransformer2DModel

    arch = dict(ARCH, attention_head_dim=width // ARCH["num_attention_heads"], num_layers=layers)
    return DiTTransformer2DModel(**arch)


def scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02)


def hybrid_loss(terms: GaussianTerms, model, x0: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = len(x0)
    t = torch.randint(0, terms.num_timesteps, (n,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    xt = terms.q_sample(x0, eps, t)
    out = model(xt, timestep=t, class_labels=y).sample
    eps_hat, v = out[:, :1], out[:, 1:]
    mse = ((eps - eps_hat) ** 2).mean(dim=(1, 2, 3))
    true_mean = terms.posterior_mean(x0, xt, t)
    true_logvar = terms.at("post_logvar_clipped", t)
    model_mean, model_logvar = terms.model_posterior(xt, t, eps_hat.detach(), v)
    kl = gaussian_kl(true_mean, true_logvar, model_mean, model_logvar).mean(dim=(1, 2, 3)) / np.log(2.0)
    nll = discretized_gaussian_nll(x0, model_mean, 0.5 * model_logvar).mean(dim=(1, 2, 3)) / np.log(2.0)
    vb = torch.where(t == 0, nll, kl)
    return (mse + vb).mean()


def val_top1(model, n: int, n_timesteps: int) -> float:
    task = digits.DigitsTask(split="val", limit=n)
    scorer = DiTScorer(
        copy.deepcopy(model),
        dict(scheduler().config),
        options=DiTOptions(n_timesteps=n_timesteps, timestep_embedding="diffusers"),  # the network it trains
        device="cpu",
        batch_size=500,
    )
    examples = list(task.examples())
    scored = scorer.evaluate(examples)
    return float(np.mean([task.outcomes(ex.id, s.scores)["top1"] for ex, s in zip(examples, scored)]))


def main() -> None:
    p = training_parser(
        __doc__.splitlines()[0],
        out="winoground_eval/weights/tiny-dit",
        batch_help="images per step",
        eval_every=1000,
        val_n=100,
        val_help="val images for the learning curve",
    )
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--val-timesteps", type=int, default=20)
    p.set_defaults(batch=64, lr=1e-3, steps=2000)
    args = p.parse_args()
    seed_everything(args.seed, args.threads)
    gen = torch.Generator().manual_seed(args.seed)

    images, labels = digits.training_arrays("train")
    x_all = torch.from_numpy(images.astype(np.float32) / 255.0 * 2.0 - 1.0)[:, None]
    y_all = torch.from_numpy(labels.astype(np.int64))
    model = build_model(args.width, args.layers)
    ema = copy.deepcopy(model).eval()
    for q in ema.parameters():
        q.requires_grad_(False)
    terms = GaussianTerms(betas_from_config(dict(scheduler().config)))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    n_params = sum(q.numel() for q in model.parameters())
    print(
        f"tiny-dit: {n_params / 1e6:.2f}M parameters, {len(x_all)} train images, {args.steps} steps of {args.batch}",
        flush=True,
    )

    budget, step, t0, curve = Budget(args.steps, args.minutes), 0, time.monotonic(), []
    model.train()
    while not budget.done(step):
        idx = torch.randint(0, len(x_all), (args.batch,), generator=gen)
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, args.lr, 200, args.steps, floor=0.05)
        loss = hybrid_loss(terms, model, x_all[idx], y_all[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, q in zip(ema.parameters(), model.parameters()):
                e.mul_(decay).add_(q.detach(), alpha=1 - decay)
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.monotonic() - t0:.0f}s)", flush=True)
        if step % args.eval_every == 0 or budget.done(step):
            acc = val_top1(ema, args.val_n, args.val_timesteps)
            curve.append(
                {
                    "step": step,
                    "loss": round(loss.item(), 4),
                    "val_top1": acc,
                    "minutes": round(budget.elapsed_min(), 1),
                }
            )
            print(
                f"step {step}: val top-1 {acc:.3f} on {args.val_n} val images ({args.val_timesteps} timesteps)",
                flush=True,
            )

    out = Path(args.out)
    half = torch.nn.Module.to(copy.deepcopy(ema), torch.float16)
    save_dit_folder(out, half, scheduler(), id2label={k: str(k) for k in range(10)})
    (out / "training.json").write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "arch": {
                    **ARCH,
                    "attention_head_dim": args.width // ARCH["num_attention_heads"],
                    "num_layers": args.layers,
                },
                "parameters": n_params,
                "curve": curve,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out} ({sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 1e6:.2f} MB)", flush=True)


if __name__ == "__main__":
    main()
