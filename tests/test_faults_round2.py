"""Fault injection, second round (issue 18): each test reproduces one finding of the hostile-input
testers (numbered as in the issue) and checks what docs/faults.md promises: one error line with
its exit status, nothing lost, nothing written outside the run directory.

Offline and fast: FIFOs, symlinks, crafted files, injected write failures, a loopback server
that accepts and never answers, signals sent to a real subprocess.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from winoground_eval import registry
from winoground_eval.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _args(sample_dir, out, *extra, scorer="dummy"):
    return ["run", "--task", "winoground", "--scorer", scorer, "--data-dir", str(sample_dir), "--out", str(out), "-q", *extra]


def _run_dir(out):
    dirs = [p for p in Path(out).glob("*/*/*") if (p / "run.json").exists() and ".set-aside-" not in p.name]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "unexpected" not in err, err
    return "\n".join(lines)


@pytest.fixture
def finished_run(sample_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(_args(sample_dir, out)) == 0
    return _run_dir(out)


@pytest.fixture(autouse=True)
def _test_scorers(monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "interrupting", registry.Entry("helpers:Interrupting", "test"))
    monkeypatch.setitem(registry.SCORERS, "with-arrays", registry.Entry("helpers_faults:WithArrays", "test"))


# --- 1. export/report -O PATH --------------------------------------------------------------------
@pytest.mark.parametrize("command", ["export", "report"])
def test_output_symlink_fifo_and_run_files_are_refused(finished_run, tmp_path, capsys, command):
    extra = ["--no-hub"] if command == "report" else []
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    link = tmp_path / "link.out"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.out"
    os.mkfifo(fifo)
    result = finished_run / "result.json"
    before = result.read_bytes()
    for bad, why in [(link, "symbolic link"), (fifo, "FIFO"), (result, "inside the run directory"),
                     (finished_run / "new.html", "inside the run directory")]:
        code = main([command, str(finished_run), "-O", str(bad), *extra])
        err = capsys.readouterr().err
        assert code == 4, err
        assert why in _one_line_error(err)
    assert link.is_symlink() and target.read_text() == "keep me"
    assert fifo.is_fifo() and result.read_bytes() == before and not (finished_run / "new.html").exists()
    good = tmp_path / "out.file"
    assert main([command, str(finished_run), "-O", str(good), *extra]) == 0
    assert good.is_file() and not good.is_symlink()
    assert main([command, str(finished_run), "-O", str(good), *extra]) == 0  # a regular file is replaced
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.file")] == []  # no temp file left
