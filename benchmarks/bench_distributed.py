"""Examples per second of the tiny diffusion scorer with 1 and with 2 CPU processes (torchrun, gloo).

    .venv/bin/python benchmarks/bench_distributed.py [--examples 24] [--timesteps 100] [--threads 1]

Both runs score the same synthetic examples with the same config into fresh run
directories. Printed per world size: end-to-end wall time (process start, model load and
all), and scoring throughput = examples / the slowest rank's summed per-example seconds
(from the run's own scores*.jsonl). Each process gets --threads intra-op threads, so with 2
processes on a 2-core machine the ideal scaling ratio is 2.0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(nproc: int, args: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "winoground_eval", *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "winoground_eval",
            *args,
        ]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def _rank_seconds(run_dir: Path) -> list[float]:
    out = []
    for shard in sorted(run_dir.glob("scores*.jsonl")):
        out.append(sum(json.loads(line).get("seconds", 0.0) for line in shard.read_text().splitlines()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=24)
    parser.add_argument("--timesteps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    opts = parser.parse_args()

    from winoground_eval.testing.tiny_sd import write_tiny_sd
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_winoground_sample(tmp / "data", n_examples=opts.examples, seed=0)
        model = write_tiny_sd(tmp / "tiny-sd", seed=0)
        rows = []
        for nproc in (1, 2):
            out = tmp / f"out{nproc}"
            args = [
                "run",
                "--task",
                "winoground",
                "--scorer",
                f"diffusers:{model}",
                "--data-dir",
                str(data),
                "--out",
                str(out),
                "-q",
                "-o",
                f"n_timesteps={opts.timesteps}",
            ]
            wall = _run(nproc, args, opts.threads)
            (run_dir,) = [p for p in out.glob("*/*/*") if (p / "result.json").exists()]
            per_rank = _rank_seconds(run_dir)
            rows.append((nproc, wall, opts.examples / max(per_rank), per_rank))
        print(
            f"tiny diffusion scorer, {opts.examples} examples x 4 pairs x {opts.timesteps} timesteps, "
            f"{opts.threads} thread(s) per process, {os.cpu_count()} CPUs"
        )
        print(f"{'processes':>9} {'wall s':>8} {'examples/s':>11}  per-rank scoring seconds")
        for nproc, wall, eps, per_rank in rows:
            print(f"{nproc:>9} {wall:>8.1f} {eps:>11.2f}  {', '.join(f'{s:.1f}' for s in per_rank)}")
        print(f"scaling ratio (2 processes / 1, scoring throughput): {rows[1][2] / rows[0][2]:.2f}")
        print(f"scaling ratio (end-to-end wall time 1 / 2): {rows[0][1] / rows[1][1]:.2f}")


if __name__ == "__main__":
    main()
