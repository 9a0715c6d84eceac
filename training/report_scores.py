"""Scores of the shipped tiny models on the shapes splits, through the registered factories.

For tiny-diffusion one pass stores the errors of both captions and of the empty caption on
the preset's grid, so the ``normalize=none`` and ``normalize=uncond`` scores come from the
same UNet calls. Prints text / image / group overall and per kind, per split.

    python -m training.report_scores --splits val test heldout
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from winoground_eval.core.contracts import evaluate_examples
from winoground_eval.tasks.shapes import ShapesTask


def _table(m: dict) -> dict:
    out = {"all": {k: round(m["metrics"][k], 3) for k in ("text", "image", "group")}}
    for kind, row in m["breakdown"]["collapsed_tag"].items():
        out[kind] = {k: round(row[k], 3) for k in ("text", "image", "group")}
    return out


def main(argv: list[str] | None = None) -> None:
    from winoground_eval.baselines.tiny_models import tiny_clip, tiny_diffusion
    from winoground_eval.diffusion.scorer import scores_from_errors

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--splits", nargs="+", default=["test", "heldout"])
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-timesteps", type=int, default=None)
    p.add_argument("--t-range", type=int, nargs=2, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    opts = {}
    if args.n_timesteps:
        opts["n_timesteps"] = args.n_timesteps
    if args.t_range:
        opts["t_range"] = tuple(args.t_range)
    diffusion, clip = tiny_diffusion(**opts), tiny_clip()
    print("tiny-diffusion grid:", diffusion.timesteps.tolist(), flush=True)
    report = {}
    for split in args.splits:
        task = ShapesTask(split=split, limit=args.limit)
        examples = list(task.examples())
        t0 = time.monotonic()
        clip_scores = {ex.id: s.scores for ex, s in zip(examples, evaluate_examples(clip, examples))}
        t_clip = time.monotonic() - t0
        t0 = time.monotonic()
        none, uncond = {}, {}
        for ex in examples:
            e = diffusion.errors(ex.images, [*ex.captions, ""])
            none[ex.id] = scores_from_errors(e[:, :2])
            uncond[ex.id] = scores_from_errors(e[:, :2], e[:, 2])
        t_diff = time.monotonic() - t0
        report[split] = {
            "tiny-clip": _table(task.metrics(clip_scores)),
            "tiny-diffusion": _table(task.metrics(none)),
            "tiny-diffusion normalize=uncond": _table(task.metrics(uncond)),
            "seconds": {"tiny-clip": round(t_clip, 1), "tiny-diffusion (3 conditions)": round(t_diff, 1)},
        }
        print(split, json.dumps(report[split], indent=1), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
