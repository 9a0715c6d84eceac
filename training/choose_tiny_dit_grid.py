"""Choose the ``tiny-dit`` preset's timestep window on the digits VAL split (never test).

    python -m training.choose_tiny_dit_grid --val-n 300 --grid 50

Scores the val images once on a dense grid (``--grid`` timesteps over the whole
schedule, t = 10, 30, ..., 990 for 50), keeping every error term, then re-aggregates the
stored terms for every window [lo, hi) with lo, hi multiples of 100: the grid of
``timestep_grid(n, 1000, (lo, hi))`` with n = (hi - lo) / (1000 / grid) holds exactly
the dense grid's timesteps in that window. Prints val top-1 per window and error kind,
and the choice for ``loss=l2`` (the reference's accuracy loss): the best val top-1, ties
broken by fewer timesteps, then by the lower window. The choice and the table are
written to ``winoground_eval/weights/tiny-dit/grid_choice.json``; the preset's constants
in ``winoground_eval/diffusion/dit.py`` are set from it by hand.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from winoground_eval.baselines.tiny_models import weights_dir
from winoground_eval.diffusion.dit import DiTScorer, combine_terms
from winoground_eval.diffusion.scorer import scores_from_errors
from winoground_eval.tasks import digits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val-n", type=int, default=300)
    p.add_argument("--grid", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    folder = weights_dir("tiny-dit")
    scorer = DiTScorer.from_pretrained(
        str(folder), n_timesteps=args.grid, batch_size=500, timestep_embedding="diffusers"
    )  # trained with diffusers' DiT port
    task = digits.DigitsTask(split="val", limit=args.val_n)
    t0 = time.monotonic()
    examples = list(task.examples())
    terms = np.stack([scorer.terms_for(ex.images, ex.captions)[0][0] for ex in examples])  # (n, 10, grid, 4)
    labels = np.array([task.label(ex.id) for ex in examples])
    minutes = (time.monotonic() - t0) / 60
    step = 1000 // args.grid
    rows = []
    for lo in range(0, 1000, 100):
        for hi in range(lo + 100, 1001, 100):
            sel = np.flatnonzero((scorer.timesteps >= lo) & (scorer.timesteps < hi))
            row = {"t_range": [lo, hi], "n_timesteps": (hi - lo) // step}
            for loss in ("l2", "l1", "vlb", "l2+vlb"):
                errors = combine_terms(terms[:, :, sel], scorer.timesteps[sel], loss)
                s = scores_from_errors(errors)  # (n, 10)
                top = s.max(axis=1, keepdims=True)
                right = (s[np.arange(len(s)), labels] == top[:, 0]) & ((s == top).sum(axis=1) == 1)
                row[loss] = round(float(right.mean()), 4)
            rows.append(row)
    best = min(rows, key=lambda r: (-r["l2"], r["n_timesteps"], r["t_range"][0]))
    whole = next(r for r in rows if r["t_range"] == [0, 1000])
    print(f"val: {len(examples)} images, dense grid of {args.grid} timesteps scored in {minutes:.1f} min")
    print("t_range      n    l2     l1     vlb    l2+vlb")
    for r in rows:
        print(
            f"[{r['t_range'][0]:4d},{r['t_range'][1]:4d})  {r['n_timesteps']:3d}  {r['l2']:.3f}  {r['l1']:.3f}  {r['vlb']:.3f}  {r['l2+vlb']:.3f}"
        )
    print(f"whole schedule: {whole}")
    print(f"choice (loss=l2): {best}")
    out = folder / "grid_choice.json"
    out.write_text(
        json.dumps(
            {
                "split": "val",
                "val_n": len(examples),
                "dense_grid": args.grid,
                "choice": best,
                "whole_schedule": whole,
                "table": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
