"""The benchmark scripts still run (tiny settings), and the sharing bound they print is
computed from the right modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("bench_diffusion")


@pytest.mark.slow  # a benchmark script end to end
def test_bench_diffusion_prints_the_side_by_side(bench, capsys):
    argv = [
        "--model",
        "random",
        "--threads",
        "1",
        "--repeats",
        "1",
        "--dtypes",
        "float32",
        "--batch-sizes",
        "4",
        "--tiny-timesteps",
        "2",
        "--compare-timesteps",
        "3",
        "--compare-batches",
        "1:8,8:8",
        "--sequential-examples",
        "1",
        "--sequential-timesteps",
        "40",
    ]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("3 ")]
    assert [(r[1], r[3]) for r in rows] == [("1", "8"), ("8", "8")]  # reference batch, scorer batch
    assert all(r[-1].endswith("x") and float(r[-1][:-1]) > 0 for r in rows)
    assert "bound on any equal-batch speed-up" in out
    assert "scorer, sequential" in out and "warning" not in out  # the reference loop's errors match the scorer's


def test_sharing_bound_counts_only_work_before_the_caption(bench):
    from winoground_eval.testing.tiny_sd import tiny_components

    unet = tiny_components(seed=0)["unet"].eval()
    work = bench.shareable_work(unet, torch.device("cpu"), torch.float32, text_length=77)
    assert 0 < work["caption_free"] < work["total"] and 0 < work["image_free"] < work["total"]
    # the key/value projections of the caption: 2 x (77 x in x out) multiply-adds per cross-attention
    want = sum(
        2 * 2 * 77 * m.to_k.in_features * m.to_k.out_features for n, m in unet.named_modules() if n.endswith("attn2")
    )
    assert work["image_free"] == want


@pytest.mark.slow  # a benchmark script end to end
def test_bench_early_stopping_runs_and_replays(tmp_path, capsys):
    bench_es = _load("bench_early_stopping")
    argv = [
        "--split",
        "val",
        "--limit",
        "2",
        "--n-timesteps",
        "40",
        "--normalize",
        "none",
        "--out",
        str(tmp_path),
        "--min-timesteps",
        "8",
        "--round-size",
        "8",
        "--decide",
        "text",
        "--json",
    ]
    assert bench_es.main(argv) == 0
    out = capsys.readouterr().out
    import json

    report = json.loads(out[out.index("{") :])
    text = report["results"]["text"]
    assert text["n_examples"] == 2 and text["calls_full_needed"] == 4 * 40
    assert 0 < text["calls_stopping"] <= text["calls_full_needed"]


@pytest.mark.slow  # a benchmark script end to end
def test_bench_classify_runs_at_tiny_settings(capsys):
    bench_c = _load("bench_classify")
    argv = [
        "--limit",
        "2",
        "--schedule",
        "2,4/2,1",
        "--sequential",
        "8",
        "--min-timesteps",
        "4",
        "--round-size",
        "2",
        "--json",
    ]
    assert bench_c.main(argv) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    fixed, seq = report["rows"]
    n = report["n_candidates_mean"]
    assert fixed["unet_calls_per_image"] == n * 2 + 2 * 2  # the plan: all candidates at 2, two of them at 2 more
    assert 4 * 2 <= seq["unet_calls_per_image"] <= 8 * n
    assert all(0 <= r["accuracy"] <= 1 and r["n_images"] == 2 for r in report["rows"])
    from winoground_eval.tasks.shapes import make_spec

    spec = make_spec("test", 0)
    cands = bench_c.candidates(spec)
    assert cands[0] == spec.captions()[0] and spec.captions()[1] in cands and len(set(cands)) == len(cands) >= 5
