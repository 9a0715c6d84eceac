"""What both training scripts share: seeding, the shapes data as tensors, and learning curves."""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from winoground_eval.core.metrics import winoground_metrics
from winoground_eval.tasks import shapes


def training_parser(
    description: str, *, out: str, batch_help: str, eval_every: int, val_n: int, val_help: str | None = None
) -> argparse.ArgumentParser:
    """The flags both training scripts take: where to write, the budget, and the learning curve."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (the LR schedule's length)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (safety net)")
    p.add_argument("--batch", type=int, default=64, help=batch_help)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=eval_every, help="steps between checkpoints")
    p.add_argument("--val-n", type=int, default=val_n, help=val_help)
    return p


def warmup_cosine(step: int, lr: float, warmup: int, steps: int | None, floor: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to ``floor * lr`` over ``steps`` (constant when steps is None)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if steps is None:
        return lr
    frac = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


def seed_everything(seed: int, threads: int = 1) -> None:
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """(n, 3, H, W) float32 in [-1, 1], the diffusion scorer's own pixel scaling."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def val_examples(n: int) -> list[shapes.Spec]:
    return [shapes.make_spec("val", i) for i in range(n)]


def curve_metrics(scores: Mapping[str, np.ndarray], specs: list[shapes.Spec]) -> dict[str, Any]:
    """Overall and per-kind text/image/group, the suite's own metric code."""
    groups = {"collapsed_tag": {s.id: [s.kind] for s in specs if s.id in scores}}
    m = winoground_metrics(scores, groups)
    out = {"all": {k: round(v, 3) for k, v in m["metrics"].items()}}
    for kind, row in m["breakdown"]["collapsed_tag"].items():
        out[kind] = {k: round(row[k], 3) for k in ("text", "image", "group")}
    return out


def fmt(m: Mapping[str, Mapping[str, float]]) -> str:
    return "  ".join(f"{k}: t{v['text']:.2f} i{v['image']:.2f} g{v['group']:.2f}" for k, v in m.items())


class Budget:
    """Stops a loop at ``steps`` steps or ``minutes`` wall-clock minutes, whichever comes first."""

    def __init__(self, steps: int | None, minutes: float | None):
        self.steps, self.minutes, self.t0 = steps, minutes, time.monotonic()

    def elapsed_min(self) -> float:
        return (time.monotonic() - self.t0) / 60

    def done(self, step: int) -> bool:
        if self.steps is not None and step >= self.steps:
            return True
        return self.minutes is not None and self.elapsed_min() >= self.minutes


def log_json(path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
