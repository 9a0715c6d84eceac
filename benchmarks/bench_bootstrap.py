"""Memory and time of the bootstrap confidence intervals at scale (issue 14).

``winoground_eval.core.metrics.bootstrap_ci`` (10,000 seeded percentile resamples) on synthetic
per-example outcomes: 0/1 (a metric's outcome) and -1/0/1 (a paired difference, as
``compare`` uses). With ``--continuous`` also real-valued data, which is resampled by index
in chunks (slower; bounded memory). Prints peak traced memory (tracemalloc sees numpy's
buffers) and seconds per interval; the scipy.stats.bootstrap it replaced needed
resamples x examples x 8 bytes (10^6 examples: 75 GiB).

    python benchmarks/bench_bootstrap.py                 # 10^4, 10^5, 10^6 examples
    python benchmarks/bench_bootstrap.py --sizes 1000 --resamples 200 --continuous
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from winoground_eval.core.metrics import BOOTSTRAP_RESAMPLES, bootstrap_ci


def measure(values: np.ndarray, resamples: int) -> tuple[float, float, list[float] | None]:
    """(peak MiB, seconds, interval) of one bootstrap_ci call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    ci = bootstrap_ci(values, n_resamples=resamples)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, seconds, ci


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    p.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES)
    p.add_argument("--continuous", action="store_true", help="also real-valued data (index resampling)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    kinds = ["0/1 outcome", "paired -1/0/1"] + (["continuous"] if args.continuous else [])
    print(f"bootstrap_ci, {args.resamples} resamples, percentile")
    print(f"{'examples':>10} {'data':>15} {'peak MiB':>10} {'seconds':>9}  interval")
    for n in args.sizes:
        for kind in kinds:
            if kind == "0/1 outcome":
                x = (rng.random(n) < 0.3).astype(np.float64)
            elif kind == "paired -1/0/1":
                x = rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.1, 0.8, 0.1])
            else:
                x = rng.normal(size=n)
            data_mib = x.nbytes / 2**20
            peak, seconds, ci = measure(x, args.resamples)
            shown = "-" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"
            print(f"{n:>10} {kind:>15} {peak:>10.1f} {seconds:>9.3f}  {shown}  (data itself {data_mib:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
