"""`wg-eval run --threads N` and the default thread count that does not oversubscribe."""

import json

import pytest
import torch

from winoground_eval.cli.main import main
from winoground_eval.core import env


@pytest.fixture(autouse=True)
def _one_thread_after():
    yield
    torch.set_num_threads(1)


def _machine(monkeypatch, cores, load, omp=None):
    monkeypatch.setattr(env.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(env.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", str(omp))


@pytest.mark.parametrize(
    "cores, load, local, expected",
    [(2, 0.0, 1, 2), (2, 1.0, 1, 1), (2, 0.6, 1, 1), (2, 7.5, 1, 1), (16, 3.2, 1, 13), (8, 0.0, 2, 4), (1, 0.0, 1, 1)],
)
def test_default_takes_the_cores_nobody_else_uses(monkeypatch, cores, load, local, expected):
    _machine(monkeypatch, cores, load)
    threads, why = env.default_threads(local_world_size=local)
    assert threads == expected
    assert f"{cores} usable cores" in why


def test_the_processes_of_a_node_share_the_free_cores(monkeypatch):
    _machine(monkeypatch, 8, 0.0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun sets it
    assert env.default_threads()[0] == 4


def test_omp_num_threads_wins_over_the_load_rule(monkeypatch):
    _machine(monkeypatch, 16, 0.0, omp=3)
    assert env.default_threads() == (3, "OMP_NUM_THREADS")


def _sessions(out):
    (run_dir,) = [p for p in out.glob("*/*/*") if (p / "run.json").exists()]
    lines = [json.loads(l) for l in (run_dir / "sessions.jsonl").read_text().splitlines()]
    return run_dir, [l for l in lines if l.get("event") == "start"]


def test_threads_flag_is_applied_and_recorded_but_not_in_the_run_id(sample_dir, tmp_path):
    common = ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", str(sample_dir), "-q"]
    assert main([*common, "--out", str(tmp_path / "a"), "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2
    run_a, starts_a = _sessions(tmp_path / "a")
    assert starts_a[-1]["environment"]["threads"]["intra_op"] == 2
    assert starts_a[-1]["environment"]["threads"]["chosen_by"] == "--threads"

    assert main([*common, "--out", str(tmp_path / "b"), "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    run_b, starts_b = _sessions(tmp_path / "b")
    assert starts_b[-1]["environment"]["threads"]["intra_op"] == 1
    assert run_a.name == run_b.name  # threads change no score, so not the run id


def test_default_is_applied_without_the_flag(sample_dir, tmp_path, monkeypatch):
    _machine(monkeypatch, 2, 1.0)
    out = tmp_path / "runs"
    assert (
        main(
            ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", str(sample_dir), "--out", str(out), "-q"]
        )
        == 0
    )
    _, starts = _sessions(out)
    assert starts[-1]["environment"]["threads"]["intra_op"] == 1
    assert "load 1.00" in starts[-1]["environment"]["threads"]["chosen_by"]


def test_nonpositive_threads_is_a_usage_error(sample_dir, tmp_path, capsys):
    code = main(
        [
            "run",
            "--task",
            "winoground",
            "--scorer",
            "dummy",
            "--data-dir",
            str(sample_dir),
            "--out",
            str(tmp_path),
            "--threads",
            "0",
            "-q",
        ]
    )
    assert code == 2
    assert "--threads 0" in capsys.readouterr().err
