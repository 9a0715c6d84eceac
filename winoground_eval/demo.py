"""`make demo` / `wg-eval demo`: the whole pipeline offline, on data and models built here.

Until the suite ships trained tiny models, this runs on the small synthetic
Winoground-format sample that the tests generate, with RANDOM-WEIGHT tiny models: the
numbers it prints show the plumbing (run directory, metrics, breakdowns, resume), not any
model's ability.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cli import err, main as cli_main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = Path(argv[0] if argv else "demo_out")
    from winoground_eval.baselines.tiny_clip import TINY_ARCH, write_tiny_clip
    from winoground_eval.diffusion.tiny import write_tiny_sd
    from winoground_eval.tasks.sample import write_winoground_sample

    data = write_winoground_sample(root / "sample-data", n_examples=12, seed=0)
    config, checkpoint = write_tiny_clip(root / "models" / "tiny-clip", seed=0)
    tiny_sd = root / "models" / "tiny-sd"
    if not (tiny_sd / "model_index.json").exists():
        write_tiny_sd(tiny_sd, seed=0)
    err.rule("[bold]winoground-eval demo[/bold]")
    err.print(
        "[yellow]Honest note:[/yellow] this demo runs on a 12-example SYNTHETIC sample in Winoground's file layout "
        f"({data}), not on Winoground, with RANDOM-WEIGHT tiny models (a CLIP and a diffusion model built in code). "
        "Their scores are noise; the demo shows the pipeline: run directories, metrics, breakdowns, resume. "
        "For real numbers: `wg-eval run --task winoground --scorer clip-vit-l14` (or sd2) with network and an HF token."
    )
    runs = root / "runs"
    common = ["run", "--task", "winoground", "--data-dir", str(data), "--out", str(runs)]
    code = cli_main([*common, "--scorer", f"open_clip:{TINY_ARCH}/{checkpoint}", "-o", f"arch_config={config}"])
    if code:
        return code
    code = cli_main([*common, "--scorer", f"diffusers:{tiny_sd}", "-o", "n_timesteps=20"])
    if code:
        return code
    err.print(f"Run directories are under [bold]{runs}[/bold]; rerun `make demo` to see a finished run resume instantly.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
