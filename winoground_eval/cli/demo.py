"""`make demo`: the suite's real job, offline, on a laptop's CPU, in a couple of minutes.

Runs the shipped tiny TRAINED models on the synthetic ``shapes`` task (300 test examples):
a CLIP-style model, and a diffusion model as a Diffusion Classifier, each through
``wg-eval run`` exactly as CLIP and Stable Diffusion run on Winoground; then the same two
on ``shapes-ranked`` (1 image x a caption and 4 hard negatives), and a tiny class-conditional
DiT classifying real handwritten ``digits``, each on a subset that keeps the demo short. Rerun it and every
run resumes from its finished run directory at once.

    python -m winoground_eval.cli.demo [OUT] [--threads N] [--limit N]

Every step is one ``wg-eval run`` argument list in ``STEPS``; the demo adds ``--out`` and
``--threads`` (and ``--limit`` when given). All steps run in this one process, one after
the other, each with ``--threads`` CPU threads (default 1: the tiny models gain nothing
from more, and on a machine that other processes share, more threads than free cores make
torch many times slower).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from rich.markup import escape

from .console import err
from .main import main as cli_main

# (what it shows, `wg-eval` arguments). To add a step, append one; keep each under a minute
# on 2 CPU cores (e.g. a subset with --limit or a smaller --split).
STEPS: list[tuple[str, list[str]]] = [
    ("tiny CLIP on shapes (300 test pairs)", ["run", "--task", "shapes", "--split", "test", "--scorer", "tiny-clip"]),
    (
        "tiny diffusion model as a Diffusion Classifier on shapes (300 test pairs)",
        ["run", "--task", "shapes", "--split", "test", "--scorer", "tiny-diffusion"],
    ),
    (
        "tiny CLIP on shapes-ranked: 1 image x [caption, 4 hard negatives] (300 test images)",
        ["run", "--task", "shapes-ranked", "--split", "test", "--scorer", "tiny-clip"],
    ),
    (
        "tiny diffusion model on shapes-ranked (the first 60 test images)",
        ["run", "--task", "shapes-ranked", "--split", "test", "--scorer", "tiny-diffusion", "--limit", "60"],
    ),
    (
        "tiny class-conditional DiT as a classifier of real handwritten digits (the first 100 of 300 test images)",
        ["run", "--task", "digits", "--split", "test", "--scorer", "tiny-dit", "--limit", "100"],
    ),
]

INTRO = (
    "The shapes task is synthetic (drawn in code; captions of a pair are the same words in another order). "
    "The models are tiny models trained on its training split by `make train-tiny` and shipped with the suite. "
    "Random scores get 25% text, 25% image and 16.7% group on shapes, 20% on shapes-ranked, 10% on digits; "
    "ties count as wrong. "
    "For Winoground itself: `wg-eval run --task winoground --scorer sd2` (network, an HF token, a GPU)."
)


def step_argv(step: list[str], out: Path, threads: int, limit: int | None) -> list[str]:
    """The full `wg-eval` argument list of one step."""
    argv = [*step, "--out", str(out), "--threads", str(threads)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    return argv


def wg_command() -> str:
    """How to type ``wg-eval`` here: ``wg-eval`` when that is this environment's script on PATH,
    else the script's path (``.venv/bin/wg-eval``, relative when below the current folder), else
    ``python -m winoground_eval`` with this interpreter."""
    bindir = Path(sys.executable).parent
    script = bindir / "wg-eval"
    on_path = shutil.which("wg-eval")
    if on_path and script.exists() and Path(on_path).resolve() == script.resolve():
        return "wg-eval"
    if script.exists():
        return _shown(script)
    return f"{_shown(Path(sys.executable))} -m winoground_eval"


def _shown(path: Path) -> str:
    rel = os.path.relpath(path.absolute(), Path.cwd())
    return rel if not rel.startswith("..") else str(path.absolute())


def _run_id(out: Path, task: str, scorer: str) -> str | None:
    """The run id of the demo's (task, scorer) run under ``out`` (the newest, if several)."""
    found = sorted((out / task / scorer).glob("*/result.json"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent.name if found else None


def next_commands(out: Path) -> list[tuple[str, str]]:
    """The three commands to try after the demo, as (what it does, command), with this clone's
    run ids and folders: list the runs, compare the two shapes runs, write the HTML report."""
    wg = wg_command()
    runs = shlex.quote(str(out))
    report = shlex.quote(str(out.parent / "report.html"))
    clip, diffusion = _run_id(out, "shapes", "tiny-clip"), _run_id(out, "shapes", "tiny-diffusion")
    steps = [("every run: label, size, status, id", f"{wg} ls runs --out {runs}")]
    if clip and diffusion:
        steps.append(
            (
                "tiny-clip against tiny-diffusion on the same 300 pairs: differences, paired intervals, McNemar",
                f"{wg} compare {clip} {diffusion} --out {runs}",
            )
        )
    steps.append(
        (
            "one offline HTML page of all five runs (the limited ones marked partial), with the examples",
            f"{wg} report {runs} --include-partial -O {report}",
        )
    )
    return steps


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m winoground_eval.cli.demo", description="The offline demo of `make demo`."
    )
    p.add_argument(
        "out", nargs="?", default="demo_out", help="demo folder; run directories go to OUT/runs (default: demo_out)"
    )
    p.add_argument("--threads", type=int, default=1, help="CPU threads per step (default 1)")
    p.add_argument("--limit", type=int, help="only the first N examples of each step (for smoke tests)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    out = Path(args.out) / "runs"
    err.rule("[bold]winoground-eval demo[/bold]")
    err.print(escape(INTRO))
    t0 = time.perf_counter()
    timings = []
    for title, step in STEPS:
        err.rule()
        err.print(
            escape(title), style="bold", soft_wrap=True, highlight=False
        )  # a line of its own: a rule title is cut
        t_step = time.perf_counter()
        code = cli_main(step_argv(step, out, args.threads, args.limit))
        if code:
            return code
        timings.append((title, time.perf_counter() - t_step))
    for title, seconds in timings:
        err.print(f"  {seconds:6.1f} s  {escape(title)}", highlight=False)
    err.print(
        f"demo finished in {time.perf_counter() - t0:.0f} s; run directories are under [bold]{escape(str(out))}[/bold]",
        soft_wrap=True,
    )
    err.rule("next: try these")
    for what, command in next_commands(out):
        err.print(f"# {escape(what)}", style="dim", soft_wrap=True, highlight=False)
        err.print(escape(command), soft_wrap=True, highlight=False)
    if not wg_command().startswith("wg-eval"):
        err.print(
            escape(f"(or `source {_shown(Path(sys.executable).parent / 'activate')}` first, then type wg-eval)"),
            soft_wrap=True,
            highlight=False,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
