"""Runs across processes (torchrun, gloo on CPU) and runs killed with SIGKILL, as real subprocesses."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from winoground_eval.cli.main import main

pytestmark = pytest.mark.slow  # torchrun with 2 processes and SIGKILLed CLI subprocesses

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def tiny_sd_folder(tiny_sd):
    return tiny_sd(seed=0)


def _run_args(data, out, scorer, *extra):
    return [
        "run",
        "--task",
        "winoground",
        "--scorer",
        scorer,
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "-q",
        "-o",
        "n_timesteps=8",
        *extra,
    ]


def _torchrun(nproc, args):
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
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _run_dir(out):
    (d,) = [p for p in out.glob("*/*/*") if (p / "run.json").exists()]
    return d


def _scores(run_dir):
    out = {}
    for shard in sorted(run_dir.glob("scores*.jsonl")):
        for line in shard.read_text().splitlines():
            rec = json.loads(line)
            assert rec["id"] not in out, f"duplicate {rec['id']}"
            out[rec["id"]] = rec["scores"]
    return out


STABLE = ("run_id", "task", "scorer", "metrics", "breakdown", "ci95", "n_examples", "n_ties", "partial")


def test_two_ranks_equal_one_process_and_resume_across_world_sizes(sample_dir, tmp_path, tiny_sd_folder):
    scorer = f"diffusers:{tiny_sd_folder}"
    assert main(_run_args(sample_dir, tmp_path / "one", scorer)) == 0
    one = _run_dir(tmp_path / "one")

    # 2 ranks from scratch: each writes its own shard; rank 0 writes the merged result
    _torchrun(2, _run_args(sample_dir, tmp_path / "two", scorer))
    two = _run_dir(tmp_path / "two")
    assert two.name == one.name  # the run id does not depend on the world size
    assert (two / "scores.jsonl").exists() and (two / "scores.rank1.jsonl").exists()
    assert _scores(two) == _scores(one)  # same noise, same timesteps, same scores
    r1, r2 = (json.loads((d / "result.json").read_text()) for d in (one, two))
    assert {k: r1[k] for k in STABLE} == {k: r2[k] for k in STABLE}

    # started with 2 ranks on part of the data, finished by 1 process: nothing recomputed
    _torchrun(2, _run_args(sample_dir, tmp_path / "mixed", scorer, "--limit", "3"))
    mixed = _run_dir(tmp_path / "mixed")
    first = {k: v for k, v in _scores(mixed).items()}
    assert sorted(first) == ["0", "1", "2"]
    assert main(_run_args(sample_dir, tmp_path / "mixed", scorer)) == 0
    lines = [json.loads(l)["id"] for l in (mixed / "scores.jsonl").read_text().splitlines()]
    assert lines.count("0") + lines.count("1") + lines.count("2") <= 2  # rank 0's old share, not redone
    assert _scores(mixed) == _scores(one)
    r3 = json.loads((mixed / "result.json").read_text())
    assert {k: r3[k] for k in STABLE} == {k: r1[k] for k in STABLE}


def test_kill_9_then_resume_gives_the_unbroken_result(tmp_path, tiny_sd_folder):
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    data = write_winoground_sample(tmp_path / "data", n_examples=10, seed=3)
    scorer = f"diffusers:{tiny_sd_folder}"
    args = ["run", "--task", "winoground", "--scorer", scorer, "--data-dir", str(data), "-q", "-o", "n_timesteps=50"]
    # Every run here is a subprocess with the same thread count: CPU float kernels round
    # differently with another number of threads, and this test compares scores bit for bit.
    cli = [sys.executable, "-m", "winoground_eval"]
    subprocess.run([*cli, *args, "--out", str(tmp_path / "ref")], env=ENV, check=True, capture_output=True, timeout=240)
    ref = _run_dir(tmp_path / "ref")

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "winoground_eval", *args, "--out", str(out)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        shards = list(out.glob("*/*/*/scores.jsonl"))
        if shards and len(shards[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the run never got going")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = _run_dir(out)
    done_before = len((run_dir / "scores.jsonl").read_text().splitlines())
    assert 3 <= done_before < 10, "killed too late to test anything"
    subprocess.run([*cli, *args, "--out", str(out)], env=ENV, check=True, capture_output=True, timeout=240)
    ids = [json.loads(l)["id"] for l in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert sorted(ids, key=int) == [str(i) for i in range(10)]  # no duplicate, none lost
    a = json.loads((run_dir / "result.json").read_text())
    b = json.loads((ref / "result.json").read_text())
    assert {k: a[k] for k in STABLE} == {k: b[k] for k in STABLE}
    assert _scores(run_dir) == _scores(ref)
