"""`make demo`'s steps, and the plumbing of benchmarks/bench_demo.py (its figures come from a quiet machine)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from winoground_eval.cli import demo
from winoground_eval.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent


def test_every_step_is_a_wg_eval_run_argument_list(tmp_path):
    parser = build_parser()
    for title, step in demo.STEPS:
        assert title and step[0] == "run"
        args = parser.parse_args(demo.step_argv(step, tmp_path, threads=1, limit=3))
        assert args.out == str(tmp_path) and args.threads == 1 and args.limit == 3


@pytest.mark.slow  # every step of the demo
def test_demo_runs_every_step_with_one_thread(tmp_path, capsys):
    try:
        assert demo.main([str(tmp_path / "demo"), "--limit", "2"]) == 0
    finally:
        torch.set_num_threads(1)
    runs = tmp_path / "demo" / "runs"
    results = sorted(runs.glob("*/*/*/result.json"))
    assert len(results) == len(demo.STEPS)
    for path in results:
        assert json.loads(path.read_text())["n_examples"] == 2
        starts = [json.loads(l) for l in (path.parent / "sessions.jsonl").read_text().splitlines()]
        assert [s["environment"]["threads"]["intra_op"] for s in starts if s.get("event") == "start"] == [1]
    assert "demo finished" in capsys.readouterr().err


def _bench():
    spec = importlib.util.spec_from_file_location("bench_demo", ROOT / "benchmarks" / "bench_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_demo_dry_run_starts_and_stops_its_burners(capsys):
    bench = _bench()
    assert bench.main(["--dry-run", "--burners", "2", "--limit", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("-m winoground_eval.cli.demo") == 2 and "--limit 1" in printed
    assert "beside 2 CPU-burner process(es)" in printed and "burners stopped: 2 of 2" in printed


def test_bench_demo_stops_burners_even_when_the_demo_fails(monkeypatch):
    bench = _bench()
    started = []
    real_start = bench.start_burners
    monkeypatch.setattr(bench, "start_burners", lambda n: started.extend(real_start(n)) or started)

    def failing(*a, **k):
        if started:
            raise SystemExit("demo failed")
        return 1.0

    monkeypatch.setattr(bench, "timed_demo", failing)
    try:
        bench.main(["--burners", "1"])
    except SystemExit:
        pass
    assert started and all(p.poll() is not None for p in started)
