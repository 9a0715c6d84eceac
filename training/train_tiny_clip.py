"""Train ``tiny-clip``: a small open_clip ``CLIP`` from a custom architecture JSON, on the shapes world.

A ViT image tower (32x32 px, 4x4 patches, width 64, 4 layers) and a text transformer
(width 32, 2 layers, context 16) over CLIP's BPE tokenizer, trained with the symmetric
contrastive loss on batches of shapes training examples. Both images and both captions of
every example are in the batch, so each caption's swapped twin is a hard negative.
Images go through the model's own inference transform, exactly as the scorer feeds them.

Writes ``ARCH.json`` (the open_clip architecture) and ``ARCH.safetensors`` (float16 state
dict) to ``--out``; ``open_clip:ARCH/PATH -o arch_config=ARCH.json`` loads them.

    python -m training.train_tiny_clip --steps 2000 --minutes 9 --out winoground_eval/weights/tiny-clip

Measured on the 2-core build machine (1 thread, shared): 2000 steps in 8.0 minutes
(~500 images/s); val text/image/group reach 0.97/0.97/0.95 after 750 steps (3 minutes)
and 1.00 after 1750. ``--minutes`` is a safety net: when it stops a run before
``--steps``, the learning-rate schedule has not finished and the run is not reproducible.
"""

from __future__ import annotations

import json
import math
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
    training_parser,
    val_examples,
    warmup_cosine,
)
from winoground_eval.tasks import shapes

ARCH = "tiny-clip-shapes"
MODEL_CFG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": shapes.IMAGE_SIZE, "layers": 4, "width": 64, "head_width": 16, "patch_size": 4},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}


def val_scores(model, preprocess, tokenizer, specs) -> dict[str, np.ndarray]:
    """The scorer's score: logit_scale.exp() * cosine, per val example."""
    model.eval()
    with torch.inference_mode():
        pix = torch.stack([preprocess(im) for s in specs for im in shapes.images_of(s)])
        img = F.normalize(model.encode_image(pix).double(), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer([c for s in specs for c in s.captions()])).double(), dim=-1)
        scale = model.logit_scale.exp().double()
    model.train()
    return {s.id: (scale * img[2 * n : 2 * n + 2] @ txt[2 * n : 2 * n + 2].T).numpy() for n, s in enumerate(specs)}


def save(model, out: Path, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{ARCH}.json").write_text(json.dumps(MODEL_CFG, indent=2) + "\n")
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{ARCH}.safetensors"), metadata={"arch": ARCH, "seed": str(meta["args"]["seed"])})
    (out / f"{ARCH}.safetensors").chmod(0o644)
    (out / "training.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    import open_clip

    p = training_parser(
        __doc__.splitlines()[0],
        out="winoground_eval/weights/tiny-clip",
        batch_help="examples per step (2 images and 2 captions each)",
        eval_every=250,
        val_n=300,
    )
    args = p.parse_args(argv)
    if args.steps is None and args.minutes is None:
        p.error("give --steps and/or --minutes")
    seed_everything(args.seed, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg_path = args.out / f"{ARCH}.json"
    cfg_path.write_text(json.dumps(MODEL_CFG, indent=2) + "\n")
    open_clip.add_model_config(cfg_path)
    torch.manual_seed(args.seed)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    tokenizer = open_clip.get_tokenizer(ARCH)
    n_params = sum(q.numel() for q in model.parameters())
    print(f"{ARCH}: {n_params / 1e6:.2f}M params", flush=True)
    decay = [q for n, q in model.named_parameters() if q.ndim >= 2 and "embedding" not in n]
    no_decay = [q for n, q in model.named_parameters() if not (q.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
    )

    def lr_at(step: int) -> float:
        return warmup_cosine(step, args.lr, 100, args.steps)

    specs = val_examples(args.val_n)
    log_path = args.out / "learning_curve.jsonl"
    log_path.unlink(missing_ok=True)
    budget = Budget(args.steps, args.minutes)
    step, seen, losses, t_train = 0, 0, [], 0.0

    def checkpoint() -> None:
        t0 = time.monotonic()
        m = curve_metrics(val_scores(model, preprocess, tokenizer, specs), specs)
        record = {
            "step": step,
            "examples_seen": seen,
            "train_minutes": round(t_train / 60, 2),
            "loss": float(np.mean(losses[-100:])) if losses else None,
            "val": m,
            "logit_scale": float(model.logit_scale.detach().exp()),
            "eval_seconds": round(time.monotonic() - t0, 1),
        }
        log_json(log_path, record)
        print(f"[step {step} | {record['train_minutes']:.1f} min | loss {record['loss']:.3f}] val {fmt(m)}", flush=True)
        meta = {
            "script": "training/train_tiny_clip.py",
            "args": {k: str(v) for k, v in vars(args).items()},
            "step": step,
            "examples_seen": seen,
            "train_minutes": round(t_train / 60, 2),
            "params": n_params,
            "val_at_save": m,
        }
        save(model, args.out, meta)

    model.train()
    while not budget.done(step):
        t0 = time.monotonic()
        images, captions, _ = shapes.training_batch(seen, args.batch)
        seen += args.batch
        pix = torch.stack([preprocess(im) for im in images])
        img = F.normalize(model.encode_image(pix), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        labels = torch.arange(len(images))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        step += 1
        t_train += time.monotonic() - t0
        if step % 50 == 0:
            print(
                f"step {step} loss {np.mean(losses[-50:]):.4f} lr {lr_at(step):.2e} {2 * seen / t_train:.0f} img/s",
                flush=True,
            )
        if step % args.eval_every == 0:
            checkpoint()
    if step % args.eval_every:
        checkpoint()
    print(
        f"done: {step} steps, {seen} examples, {t_train / 60:.1f} min training, {budget.elapsed_min():.1f} min total",
        flush=True,
    )


if __name__ == "__main__":
    main()
