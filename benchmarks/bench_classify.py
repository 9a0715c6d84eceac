"""Zero-shot 1 x N caption classification on the shapes world: the reference's fixed
adaptive schedules against sequential elimination, on the same images.

The embedded task: image 0 of each example of a shapes split, scored against N candidate
captions -- the true caption first, then its hard negatives (the example's own swapped
caption, colours swapped, subject and object swapped, a size swap when sized, one shape
replaced by the third shape, one colour replaced by an unused colour), deduplicated. The
shipped tiny-diffusion (``winoground_eval/weights/tiny-diffusion``, text-conditional,
trained on shapes) answers it; an image counts as right when the true caption's score is
strictly above every other (argmax = the survivor of the last stage).

For each schedule it prints UNet calls per image, seconds per image and accuracy:

- ``--schedule 10,50/3,1``: ``-o n_samples=10,50 -o to_keep=3,1`` (eval_prob_adaptive);
- ``--sequential 50``: ``-o stopping=sequential -o n_timesteps=50`` (sequential elimination:
  a candidate is dropped once it is confidently worse than the current best).

    python benchmarks/bench_classify.py --limit 100 --schedule 10,50/3,1 --schedule 25,250/5,1 \\
        --sequential 50 --sequential 250

Seconds depend on the machine and its load; UNet calls and accuracy do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np


def candidates(spec: Any) -> list[str]:
    """The true caption of image 0 and its hard negatives, deduplicated, true first."""
    from winoground_eval.tasks.shapes import COLOURS, SHAPES, Scene, Thing

    scene = spec.scenes[0]
    a, rel, b = scene.subject, scene.relation, scene.object
    third = next(s for s in SHAPES if s not in (a.shape, b.shape))
    unused = next(c for c in sorted(COLOURS) if c not in (a.colour, b.colour))
    scenes = [
        scene,
        spec.scenes[1],  # the example's own hard negative
        Scene(Thing(b.colour, a.shape, a.size), rel, Thing(a.colour, b.shape, b.size)),  # colours swapped
        Scene(b, rel, a),  # order swapped
        Scene(Thing(a.colour, b.shape, a.size), rel, Thing(b.colour, a.shape, b.size)),  # shapes swapped
        Scene(Thing(a.colour, third, a.size), rel, b),  # another shape
        Scene(a, rel, Thing(unused, b.shape, b.size)),  # another colour
    ]
    if a.size:
        scenes.append(Scene(Thing(a.colour, a.shape, b.size), rel, Thing(b.colour, b.shape, a.size)))  # sizes swapped
    out: list[str] = []
    for s in scenes:
        if s.caption() not in out:
            out.append(s.caption())
    return out


def build_examples(split: str, limit: int) -> list[Any]:
    from winoground_eval.core.contracts import Example
    from winoground_eval.tasks.shapes import images_of, make_spec

    examples = []
    for i in range(limit):
        spec = make_spec(split, i)
        examples.append(Example(spec.id, (images_of(spec)[0],), tuple(candidates(spec))))
    return examples


def parse_schedule(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n_samples, _, to_keep = text.partition("/")
    return tuple(int(x) for x in n_samples.split(",")), tuple(int(x) for x in to_keep.split(","))


def run_one(label: str, options: dict[str, Any], examples: list[Any], base: dict[str, Any]) -> dict[str, Any]:
    from winoground_eval.core import registry

    scorer = registry.resolve_scorer("tiny-diffusion")(**base, **options)
    calls, right, seconds = [], [], []
    for ex in examples:
        scorer.clear_caches()
        t0 = time.perf_counter()
        [scored] = scorer.evaluate([ex])
        seconds.append(time.perf_counter() - t0)
        s = scored.scores[0]
        right.append(float(s[0] > np.max(s[1:])))
        calls.append(scored.info["unet_calls"])
    return {
        "schedule": label,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "unet_calls_per_image": float(np.mean(calls)),
        "seconds_per_image": float(np.mean(seconds)),
        "accuracy": float(np.mean(right)),
        "n_images": len(examples),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", choices=("test", "val", "heldout"))
    parser.add_argument("--limit", type=int, default=100, help="images (examples of the split)")
    parser.add_argument("--schedule", action="append", help="n_samples/to_keep, e.g. 10,50/3,1 (repeatable)")
    parser.add_argument(
        "--sequential", action="append", type=int, help="grid size for sequential elimination (repeatable)"
    )
    parser.add_argument("--confidence", type=float, default=0.99)
    parser.add_argument("--min-timesteps", type=int, default=10)
    parser.add_argument("--round-size", type=int, default=10)
    parser.add_argument("--loss", default="l2", choices=("l2", "l1", "huber"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    examples = build_examples(args.split, args.limit)
    base = {"device": "cpu", "batch_size": args.batch_size, "loss": args.loss}
    rows = []
    for text in args.schedule or ["10,50/3,1", "25,250/5,1"]:
        n_samples, to_keep = parse_schedule(text)
        rows.append(run_one(f"adaptive {text}", {"n_samples": n_samples, "to_keep": to_keep}, examples, base))
    for n in args.sequential or [50, 250]:
        options = {
            "stopping": "sequential",
            "n_timesteps": n,
            "confidence": args.confidence,
            "min_timesteps": min(args.min_timesteps, n),
            "round_size": args.round_size,
        }
        rows.append(run_one(f"sequential {n}", options, examples, base))
    n_cand = float(np.mean([len(ex.captions) for ex in examples]))
    if args.json:
        print(json.dumps({"n_candidates_mean": n_cand, "rows": rows}, indent=2))
        return 0
    print(
        f"shapes {args.split}, {len(examples)} images x {n_cand:.1f} candidate captions (tiny-diffusion, {args.loss})"
    )
    print(f"{'schedule':<24} {'UNet calls/img':>15} {'s/img':>8} {'accuracy':>9}")
    for r in rows:
        print(
            f"{r['schedule']:<24} {r['unet_calls_per_image']:>15.1f} {r['seconds_per_image']:>8.3f} {r['accuracy']:>9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
