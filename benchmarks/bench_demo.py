"""Wall time of `make demo` alone and beside a CPU-bound process.

    .venv/bin/python benchmarks/bench_demo.py [--burners 1] [--limit N] [--dry-run]

Runs ``python -m winoground_eval.cli.demo`` twice, each into a fresh temporary folder (so
nothing resumes): once alone, once while BURNERS busy-loop Python processes (started here,
killed at the end) compete for the cores, as another CPU-bound job would. Prints both
wall times (process start, imports and model loads included), the cores and the load
average before each. ``--limit N`` passes ``--limit`` to the demo (a quick smoke run);
``--dry-run`` prints the commands and starts and stops the burners without running the demo.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BURN = "while True: pass"


def start_burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]


def stop_burners(burners: list[subprocess.Popen]) -> None:
    for p in burners:
        p.kill()
    for p in burners:
        p.wait(timeout=30)


def demo_command(out: Path, limit: int | None, threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "winoground_eval.cli.demo", str(out)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    return cmd


def timed_demo(limit: int | None, threads: int | None, dry_run: bool) -> float | None:
    with tempfile.TemporaryDirectory(prefix="wg-demo-") as tmp:
        cmd = demo_command(Path(tmp), limit, threads)
        print("  $", " ".join(cmd), flush=True)
        if dry_run:
            return None
        t0 = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(f"the demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return seconds


def _machine() -> str:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return f"{cores} usable cores, load average {os.getloadavg()[0]:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--burners", type=int, default=1, help="busy-loop processes beside the second run (default 1)")
    p.add_argument("--limit", type=int, help="pass --limit N to the demo (smoke test)")
    p.add_argument("--threads", type=int, help="pass --threads N to the demo (default: the demo's own, 1)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, start and stop the burners, run nothing")
    args = p.parse_args(argv)

    print(f"alone ({_machine()}):", flush=True)
    alone = timed_demo(args.limit, args.threads, args.dry_run)
    burners = start_burners(args.burners)
    try:
        time.sleep(0.5)
        alive = sum(b.poll() is None for b in burners)
        print(f"beside {alive} CPU-burner process(es) ({_machine()}):", flush=True)
        loaded = timed_demo(args.limit, args.threads, args.dry_run)
    finally:
        stop_burners(burners)
    print(f"burners stopped: {sum(b.poll() is not None for b in burners)} of {len(burners)}")
    if alone is not None and loaded is not None:
        note = f" (--limit {args.limit})" if args.limit is not None else ""
        print(f"demo wall time{note}: alone {alone:.1f} s, beside {args.burners} CPU burner(s) {loaded:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
