"""`make demo`: the suite's real job, offline, on 2 CPU cores, in a few minutes.

Runs the shipped tiny TRAINED models on the synthetic ``shapes`` task (300 test examples):
a CLIP-style model, and a diffusion model as a Diffusion Classifier, each through
``wg-eval run`` exactly as CLIP and Stable Diffusion run on Winoground. Rerun it and every run resumes
from its finished run directory at once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli import err, main as cli_main

RUNS = (("tiny-clip", "test"), ("tiny-diffusion", "test"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(argv[0] if argv else "demo_out") / "runs"
    err.rule("[bold]winoground-eval demo[/bold]")
    err.print(
        "The shapes task is synthetic (drawn in code; captions of a pair are the same words in another order). "
        "The two models are tiny models trained on its training split by `make train-tiny` and shipped with the suite. "
        "Random scores get 25% text, 25% image and 16.7% group; ties count as wrong. "
        "For Winoground itself: `wg-eval run --task winoground --scorer sd2` (network, an HF token, a GPU)."
    )
    t0 = time.perf_counter()
    for scorer, split in RUNS:
        code = cli_main(["run", "--task", "shapes", "--split", split, "--scorer", scorer, "--out", str(out)])
        if code:
            return code
    err.print(f"demo finished in {time.perf_counter() - t0:.0f} s; run directories are under [bold]{out}[/bold]", soft_wrap=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
