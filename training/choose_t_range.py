"""Choose tiny-diffusion's timestep range on the shapes VAL split, from stored per-timestep errors.

Loads the trained folder through the suite's own scorer (``from_diffusers_spec``), stores
``Scorer.errors`` for both captions and the empty caption on an even grid over the whole
schedule, then scores every window ``[lo, hi)`` of grid cells (at least ``--min-width``
wide) with the suite's metric and reports the best by val text score. Never touches the
test split.

    python -m training.choose_t_range --model winoground_eval/weights/tiny-diffusion --n 150 --grid 25
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from training.common import curve_metrics, fmt, val_examples
from winoground_eval.tasks import shapes


def main(argv: list[str] | None = None) -> None:
    from winoground_eval.diffusion.presets import from_diffusers_spec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("winoground_eval/weights/tiny-diffusion"))
    p.add_argument("--n", type=int, default=150, help="val examples")
    p.add_argument("--grid", type=int, default=25, help="timesteps over the whole schedule")
    p.add_argument("--min-width", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save", type=Path, default=None, help="write the errors (npz) and the table (json) here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    scorer = from_diffusers_spec(str(args.model), n_timesteps=args.grid, batch_size=240)
    grid = np.asarray(scorer.timesteps)
    specs = val_examples(args.n)
    t0 = time.monotonic()
    errs = np.stack([scorer.errors(shapes.images_of(s), [*s.captions(), ""]) for s in specs])  # (n, 2, 3, T)
    seconds = time.monotonic() - t0
    cond, uncond = errs[:, :, :2], errs[:, :, 2]
    print(
        f"{len(specs)} val examples x {len(grid)} timesteps in {seconds:.0f}s; grid {grid[0]}..{grid[-1]}", flush=True
    )
    edges = [int(t - (grid[1] - grid[0]) // 2) for t in grid] + [scorer.num_train_timesteps]
    table = []
    for a in range(len(grid)):
        for b in range(a + 1, len(grid) + 1):
            lo, hi = edges[a], edges[b]
            if hi - lo < args.min_width:
                continue
            s = -cond[..., a:b].mean(-1)
            su = s + uncond[..., a:b].mean(-1)[:, :, None]
            m = curve_metrics({sp.id: s[i] for i, sp in enumerate(specs)}, specs)
            mu = curve_metrics({sp.id: su[i] for i, sp in enumerate(specs)}, specs)
            table.append({"t_range": [lo, hi], "none": m, "uncond": mu})
    table.sort(key=lambda r: (-r["none"]["all"]["text"], r["t_range"][1] - r["t_range"][0]))
    for r in table[:12]:
        print(f"[{r['t_range'][0]}, {r['t_range'][1]}): {fmt(r['none'])}\n      uncond: {fmt(r['uncond'])}")
    full = next(r for r in table if r["t_range"] == [0, scorer.num_train_timesteps])
    print(f"whole schedule: {fmt(full['none'])}")
    gap = np.abs(cond[:, :, 0] - cond[:, :, 1]).mean(axis=(0, 1))
    print("caption gap per t:", {int(t): float(f"{g:.2e}") for t, g in zip(grid, gap)})
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.save / "val_errors.npz", errors=cond, uncond=uncond, timesteps=grid)
        (args.save / "t_range_table.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
