"""Fault injection: each test reproduces one way issue 14 broke the suite (bad data, full
disks, stalled networks, concurrent writers, crafted files) and checks the fixed behaviour.

Everything runs offline: the "Hub" is a loopback TCP server that accepts connections and
never answers; a full disk is an OSError(ENOSPC) injected at each write point; a second
writer is a real subprocess holding the run's lock.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from winoground_eval import registry, runstore
from winoground_eval.cli import main
from winoground_eval.errors import ConfigError, DataError, ModelLoadError, RunStoreError, ScoreFileError
from winoground_eval.runstore import RunStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _test_scorers(monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "interrupting", registry.Entry("helpers:Interrupting", "test"))
    monkeypatch.setitem(registry.SCORERS, "with-arrays", registry.Entry("helpers_faults:WithArrays", "test"))


def _args(sample_dir, out, *extra):
    return ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", str(sample_dir), "--out", str(out), "-q", *extra]


def _run_dir(out):
    dirs = [p for p in Path(out).glob("*/*/*") if (p / "run.json").exists() and ".set-aside-" not in p.name]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _ids(run_dir, name="scores.jsonl"):
    return [json.loads(l)["id"] for l in (run_dir / name).read_bytes().split(b"\n") if l.strip()]


@pytest.fixture
def finished_run(sample_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(_args(sample_dir, out)) == 0
    return _run_dir(out)


# --- data loss: --no-resume ----------------------------------------------------------------
HOLD_LOCK = """
import fcntl, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_no_resume_refuses_while_another_process_writes_the_run(sample_dir, finished_run, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(finished_run / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(_args(sample_dir, tmp_path / "runs", "--no-resume"))
        assert code == 2
        assert "in use by another process" in capsys.readouterr().err
        # nothing moved: the writer's directory is where it was, whole
        assert not list(finished_run.parent.glob("*.set-aside-*"))
        assert _ids(finished_run) == [str(i) for i in range(6)]
    finally:
        holder.kill()
        holder.wait()


def test_two_set_asides_in_the_same_second_do_not_collide(sample_dir, finished_run, tmp_path, monkeypatch):
    monkeypatch.setattr(runstore, "now", lambda: "2026-01-01T00:00:00+00:00")
    first = RunStore(finished_run).set_aside()
    assert main(_args(sample_dir, tmp_path / "runs")) == 0
    second = RunStore(finished_run).set_aside()
    assert first != second and first.is_dir() and second.is_dir()
    assert _ids(first) == _ids(second) == [str(i) for i in range(6)]
    assert not finished_run.exists()


def test_no_resume_twice_keeps_both_old_runs(sample_dir, finished_run, tmp_path, monkeypatch):
    monkeypatch.setattr(runstore, "now", lambda: "2026-01-01T00:00:00+00:00")
    out = tmp_path / "runs"
    assert main(_args(sample_dir, out, "--no-resume")) == 0
    assert main(_args(sample_dir, out, "--no-resume")) == 0
    assert len(list(finished_run.parent.glob("*.set-aside-*"))) == 2
    assert _ids(_run_dir(out)) == [str(i) for i in range(6)]


# --- data loss: a disk that fills ------------------------------------------------------------
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullAfter:
    """A file object wrapper whose write() writes half the data, then fails with ENOSPC."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data):
        self._fh.write(data[: len(data) // 2])
        self._fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


@pytest.mark.parametrize("point", ["scores", "sessions", "arrays", "result", "run.json"])
def test_full_disk_at_each_write_point_is_a_clean_error_with_the_resume_command(sample_dir, tmp_path, monkeypatch, capsys, point):
    import builtins

    out = tmp_path / "runs"
    args = ["run", "--task", "winoground", "--scorer", "with-arrays", "--data-dir", str(sample_dir), "--out", str(out), "-q"]
    real_open = builtins.open
    state = {"appends": 0}

    def torn_open(file, mode="r", *a, **k):
        fh = real_open(file, mode, *a, **k)
        name = Path(str(file)).name
        if "a" in mode and "b" in mode and name == {"scores": "scores.jsonl", "sessions": "sessions.jsonl"}.get(point):
            state["appends"] += 1
            if state["appends"] == 3 or point == "sessions":
                return _FullAfter(fh)
        return fh

    with pytest.MonkeyPatch.context() as mp:
        if point in ("scores", "sessions"):
            mp.setattr(builtins, "open", torn_open)
        elif point == "arrays":
            real = runstore.atomic_write
            mp.setattr(runstore, "atomic_write", lambda p, d: _enospc() if p.suffix == ".npz" and "3" in p.name else real(p, d))
        elif point == "result":
            real_json = runstore.write_json
            mp.setattr(runstore, "write_json", lambda p, o: _enospc() if p.name == "result.json" else real_json(p, o))
        else:
            mp.setattr(runstore, "write_json", lambda p, o: _enospc())
        code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "No space left on device" in err and "Traceback" not in err
    assert "Resume with" in err or point == "run.json"
    run_dir = _run_dir(out) if point != "run.json" else None
    if run_dir is not None:
        for name in ("scores.jsonl", "sessions.jsonl"):
            data = (run_dir / name).read_bytes() if (run_dir / name).exists() else b""
            assert data == b"" or data.endswith(b"\n"), f"{name} holds a torn line"
        # the same command resumes to a complete run
        assert main(args) == 0
        assert sorted(_ids(run_dir)) == [str(i) for i in range(6)]
        assert json.loads((run_dir / "result.json").read_text())["n_examples"] == 6


# --- crafted and damaged run directories -------------------------------------------------------
@pytest.mark.parametrize("content, match", [
    ("[1, 2]", "not an object"),
    ('{"scorer": {"name": "dummy"}}', "lacks its task"),
    ("{nope", "not valid JSON"),
])
def test_run_json_not_an_object_or_without_task_is_a_clean_error(finished_run, content, match):
    (finished_run / "run.json").write_text(content)
    with pytest.raises(RunStoreError, match=match):
        RunStore(finished_run).run_info()


def test_show_on_a_corrupt_result_is_one_line(finished_run, capsys):
    (finished_run / "result.json").write_text('{"metrics": {"text": 0.5')
    assert main(["show", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert "result.json is damaged" in err and "Traceback" not in err


@pytest.mark.parametrize("rel", ["/etc/hostname", "../../../../../etc/hostname", "arrays/../run.json"])
def test_crafted_arrays_path_is_refused(finished_run, rel):
    lines = (finished_run / "scores.jsonl").read_text().split("\n")
    rec = json.loads(lines[0])
    rec["arrays"] = rel
    lines[0] = json.dumps(rec)
    (finished_run / "scores.jsonl").write_text("\n".join(lines))
    store = RunStore(finished_run)
    store.load()
    with pytest.raises(RunStoreError, match="leaves"):
        store.arrays("0")


def test_nan_in_a_stored_line_does_not_blame_the_scorer_nor_block_reruns(sample_dir, finished_run, tmp_path, capsys):
    path = finished_run / "scores.jsonl"
    lines = path.read_text().split("\n")
    rec = json.loads(lines[2])
    rec["scores"][0][0] = float("nan")
    lines[2] = json.dumps(rec)  # json writes NaN
    path.write_text("\n".join(lines))
    assert main(_args(sample_dir, tmp_path / "runs")) == 0  # the damaged example is redone
    captured = capsys.readouterr()
    assert "unusable" not in captured.err and "changed after the scorer wrote it" in captured.err
    result = json.loads((finished_run / "result.json").read_text())
    assert result["n_examples"] == 6 and result["partial"] is False
    assert main(_args(sample_dir, tmp_path / "runs")) == 0  # and again: still fine


def test_corrupt_middle_line_names_the_line_and_offers_repair(sample_dir, finished_run, tmp_path, capsys):
    path = finished_run / "scores.jsonl"
    lines = path.read_text().split("\n")
    good = json.loads(lines[3])
    lines[1] = "garbage " + "x" * (10 * 2**20)  # a 10 MiB invalid line
    nan = dict(good, id="4", scores=[[float("nan"), 1.0], [1.0, 0.0]])
    lines.insert(4, json.dumps(nan))
    lines.insert(2, lines[3])  # a duplicate of example 3 after the first
    path.write_text("\n".join(lines))
    assert main(_args(sample_dir, tmp_path / "runs")) == 2
    err = capsys.readouterr().err
    assert "scores.jsonl:2 is corrupt" in err and f"wg-eval repair {finished_run}" in err.replace("\n", "")
    assert len(err) < 2000  # the 10 MiB line is cut
    assert main(["repair", str(finished_run)]) == 0
    err = capsys.readouterr().err
    assert "moved 3 bad line(s)" in err
    aside = list(finished_run.glob("scores.bad-*.jsonl"))
    assert len(aside) == 1 and len(aside[0].read_bytes().split(b"\n")) == 4  # 3 lines + final newline
    kept = _ids(finished_run)
    assert kept == ["0", "3", "2", "4", "5"]  # the good lines in order; 1 (corrupt), the second 3 and the NaN 4 moved
    assert main(_args(sample_dir, tmp_path / "runs")) == 0  # the rerun redoes 1
    assert sorted(_ids(finished_run)) == [str(i) for i in range(6)]
    assert main(["repair", str(finished_run)]) == 0
    assert "nothing to repair" in capsys.readouterr().err


def test_store_reads_unicode_line_separators_and_blank_lines(finished_run):
    path = finished_run / "scores.jsonl"
    lines = path.read_text().split("\n")
    rec = json.loads(lines[0])
    rec["info"] = {"note": "a\u2028b\u2029c\u0085d"}
    lines[0] = json.dumps(rec, ensure_ascii=False)
    path.write_text("\n".join(lines[:3] + [""] + lines[3:]), encoding="utf-8")
    records = RunStore(finished_run).load()
    assert len(records) == 6 and records["0"]["info"]["note"] == "a\u2028b\u2029c\u0085d"
