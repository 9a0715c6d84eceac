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
from pathlib import Path

import numpy as np
import pytest
from helpers import dummy_run_args

from winoground_eval.cli.main import main
from winoground_eval.core import registry, runstore
from winoground_eval.core.errors import ConfigError, DataError, ModelLoadError, RunStoreError, ScoreFileError
from winoground_eval.core.runstore import RunStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _test_scorers(monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "interrupting", registry.Entry("helpers:Interrupting", "test"))
    monkeypatch.setitem(registry.SCORERS, "with-arrays", registry.Entry("helpers_faults:WithArrays", "test"))


def _run_dir(out):
    dirs = [p for p in Path(out).glob("*/*/*") if (p / "run.json").exists() and ".set-aside-" not in p.name]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _ids(run_dir, name="scores.jsonl"):
    return [json.loads(l)["id"] for l in (run_dir / name).read_bytes().split(b"\n") if l.strip()]


@pytest.fixture
def finished_run(sample_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(dummy_run_args(sample_dir, out)) == 0
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
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(finished_run / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(dummy_run_args(sample_dir, tmp_path / "runs", "--no-resume"))
        assert code == 4
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
    assert main(dummy_run_args(sample_dir, tmp_path / "runs")) == 0
    second = RunStore(finished_run).set_aside()
    assert first != second and first.is_dir() and second.is_dir()
    assert _ids(first) == _ids(second) == [str(i) for i in range(6)]
    assert not finished_run.exists()


def test_no_resume_twice_keeps_both_old_runs(sample_dir, finished_run, tmp_path, monkeypatch):
    monkeypatch.setattr(runstore, "now", lambda: "2026-01-01T00:00:00+00:00")
    out = tmp_path / "runs"
    assert main(dummy_run_args(sample_dir, out, "--no-resume")) == 0
    assert main(dummy_run_args(sample_dir, out, "--no-resume")) == 0
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
def test_full_disk_at_each_write_point_is_a_clean_error_with_the_resume_command(
    sample_dir, tmp_path, monkeypatch, capsys, point
):
    import builtins

    out = tmp_path / "runs"
    args = [
        "run",
        "--task",
        "winoground",
        "--scorer",
        "with-arrays",
        "--data-dir",
        str(sample_dir),
        "--out",
        str(out),
        "-q",
    ]
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
            mp.setattr(
                runstore, "atomic_write", lambda p, d: _enospc() if p.suffix == ".npz" and "3" in p.name else real(p, d)
            )
        elif point == "result":
            real_json = runstore.write_json
            mp.setattr(runstore, "write_json", lambda p, o: _enospc() if p.name == "result.json" else real_json(p, o))
        else:
            mp.setattr(runstore, "write_json", lambda p, o: _enospc())
        code = main(args)
    err = capsys.readouterr().err
    assert code == 4, err
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
@pytest.mark.parametrize(
    "content, match",
    [
        ("[1, 2]", "not an object"),
        ('{"scorer": {"name": "dummy"}}', "lacks its task"),
        ("{nope", "not valid JSON"),
    ],
)
def test_run_json_not_an_object_or_without_task_is_a_clean_error(finished_run, content, match):
    (finished_run / "run.json").write_text(content)
    with pytest.raises(RunStoreError, match=match):
        RunStore(finished_run).run_info()


def test_show_on_a_corrupt_result_is_one_line(finished_run, capsys):
    (finished_run / "result.json").write_text('{"metrics": {"text": 0.5')
    assert main(["show", str(finished_run)]) == 4
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
    assert main(dummy_run_args(sample_dir, tmp_path / "runs")) == 0  # the damaged example is redone
    err = " ".join(capsys.readouterr().err.split())  # the log line wraps where the tmp path's length puts it
    assert "unusable" not in err and "changed after the scorer wrote it" in err
    result = json.loads((finished_run / "result.json").read_text())
    assert result["n_examples"] == 6 and result["partial"] is False
    assert main(dummy_run_args(sample_dir, tmp_path / "runs")) == 0  # and again: still fine


def test_corrupt_middle_line_names_the_line_and_offers_repair(sample_dir, finished_run, tmp_path, capsys):
    path = finished_run / "scores.jsonl"
    lines = path.read_text().split("\n")
    good = json.loads(lines[3])
    lines[1] = "garbage " + "x" * (10 * 2**20)  # a 10 MiB invalid line
    nan = dict(good, id="4", scores=[[float("nan"), 1.0], [1.0, 0.0]])
    lines.insert(4, json.dumps(nan))
    lines.insert(2, lines[3])  # a duplicate of example 3 after the first
    path.write_text("\n".join(lines))
    assert main(dummy_run_args(sample_dir, tmp_path / "runs")) == 4
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
    assert main(dummy_run_args(sample_dir, tmp_path / "runs")) == 0  # the rerun redoes 1
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


# --- data identity: images in the fingerprint ----------------------------------------------------
@pytest.fixture(autouse=True)
def _own_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _task(sample_dir, **kw):
    from winoground_eval.tasks.winoground import WinogroundTask

    return WinogroundTask(data_dir=str(sample_dir), **kw)


def test_a_replaced_image_is_other_data_and_never_reuses_old_scores(sample_dir, tmp_path):
    from PIL import Image

    before = _task(sample_dir).info()["data_fingerprint"]
    Image.new("RGB", (64, 64), (1, 2, 3)).save(sample_dir / "images" / "ex_3_img_0.png")
    after = _task(sample_dir).info()["data_fingerprint"]
    assert before != after
    # the hashes are cached by path, size and mtime; the cache is used and stays right
    cache = tmp_path / "xdg-cache" / "winoground-eval" / "image-hashes.json"
    assert len(json.loads(cache.read_text())) >= 12
    assert _task(sample_dir).info()["data_fingerprint"] == after


def test_zip_copy_fingerprint_covers_images_too(tmp_path):
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    a = write_winoground_sample(tmp_path / "a", n_examples=4, seed=0, as_zip=True)
    b = write_winoground_sample(tmp_path / "b", n_examples=4, seed=0, as_zip=True, size=48)
    assert _task(a).info()["data_fingerprint"] != _task(b).info()["data_fingerprint"]


def test_an_ambiguous_image_name_is_an_error_naming_both_files(sample_dir):
    from PIL import Image

    Image.new("RGB", (64, 64)).save(sample_dir / "images" / "ex_3_img_0.jpg")
    with pytest.raises(DataError, match=r"ex_3_img_0.jpg and ex_3_img_0.png"):
        _task(sample_dir)


# --- bad input: one-line errors --------------------------------------------------------------------
def _rewrite(sample_dir, edit):
    p = sample_dir / "examples.jsonl"
    rows = [json.loads(l) for l in p.read_text().splitlines()]
    edit(rows)
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_non_utf8_examples_jsonl_names_file_and_line(sample_dir):
    p = sample_dir / "examples.jsonl"
    lines = p.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"a ", b"\xff ", 1)
    p.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"examples.jsonl:3 is not UTF-8"):
        _task(sample_dir)


def test_bom_and_unicode_line_separators_in_examples_jsonl_are_accepted(sample_dir):
    _rewrite(sample_dir, lambda rows: rows[1].update(caption_0=rows[1]["caption_0"] + " \u2028x\u2029y\u0085z"))
    p = sample_dir / "examples.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    task = _task(sample_dir)
    assert next(ex for ex in task.examples() if ex.id == "1").captions[0].endswith("\u2028x\u2029y\u0085z")


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda rows: rows[2].update(num_main_preds="two"),
            r"examples.jsonl:3: example 2: num_main_preds 'two' is not a whole number",
        ),
        (lambda rows: rows[2].update(id=None), r"examples.jsonl:3: example at line 3 has an invalid id None"),
        (lambda rows: rows[2].update(id=[2]), r"examples.jsonl:3: example at line 3 has an invalid id \[2\]"),
    ],
)
def test_bad_fields_are_named(sample_dir, edit, match):
    _rewrite(sample_dir, edit)
    with pytest.raises(DataError, match=match):
        _task(sample_dir)


def test_num_main_preds_two_through_metrics_metadata(sample_dir, tmp_path, capsys):
    from winoground_eval.results.scorefile import write_score_file

    _rewrite(sample_dir, lambda rows: rows[0].update(num_main_preds="two"))
    scores = tmp_path / "s.jsonl"
    write_score_file(scores, {str(i): np.eye(2) for i in range(6)})
    code = main(
        ["metrics", "--task", "winoground", "--scores", str(scores), "--metadata", str(sample_dir / "examples.jsonl")]
    )
    err = capsys.readouterr().err
    assert code == 3 and "num_main_preds 'two'" in err and "Traceback" not in err


def test_an_integer_caption_says_it_is_not_a_string(sample_dir):
    _rewrite(sample_dir, lambda rows: rows[1].update(caption_0=7))
    with pytest.raises(DataError, match="example 1: caption_0 must be a string, got int"):
        list(_task(sample_dir).examples())


def _png_bomb(path: Path, side: int = 20000) -> None:
    """A valid one-colour 1-bit PNG of side x side pixels (~50 KB on disk), written row by row."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_a_data_error_and_skip_bad_skips_it(sample_dir, tmp_path, capsys):
    _png_bomb(sample_dir / "images" / "ex_2_img_0.png")
    assert (sample_dir / "images" / "ex_2_img_0.png").stat().st_size < 200_000
    with pytest.raises(DataError, match="example 2: .*too large to decode safely"):
        list(_task(sample_dir).examples())
    out = tmp_path / "runs"
    assert main(dummy_run_args(sample_dir, out)) == 3
    assert "too large to decode safely" in capsys.readouterr().err
    assert main(dummy_run_args(sample_dir, out, "--skip-bad")) == 0
    result = json.loads((_run_dir(out) / "result.json").read_text())
    assert set(result["skipped"]) == {"2"} and result["n_examples"] == 5


def test_offline_mode_already_set_is_not_advised_again(monkeypatch):
    from winoground_eval.tasks import winoground

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = winoground._offline_error("https://huggingface.co", "not in the cache")
    assert "cache lacks" in str(err) and "set HF_HUB_OFFLINE=1" not in str(err)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert "set HF_HUB_OFFLINE=1" in str(winoground._offline_error("https://huggingface.co", "refused"))


# --- score files ----------------------------------------------------------------------------------
def _score_lines(n=2):
    return [
        json.dumps({"label": f"{i}_c{k}_i{j}", "score": float(j == k)})
        for i in range(n)
        for j in range(2)
        for k in range(2)
    ]


def _read(tmp_path, data: bytes):
    from winoground_eval.results.scorefile import read_score_file

    p = tmp_path / "scores.jsonl"
    p.write_bytes(data)
    return read_score_file(p)


def test_score_file_bom_blank_lines_and_line_separators_are_accepted(tmp_path):
    lines = _score_lines()
    lines[0] = json.dumps({"label": "0_c0_i0", "score": 1.0, "note": "a\u2028b\u2029c\u0085"}, ensure_ascii=False)
    got = _read(tmp_path, b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n\n")
    assert set(got) == {"0", "1"} and got["0"][0, 0] == 1.0


@pytest.mark.parametrize(
    "line, match",
    [
        (b'{"label": "0_c0_i0", "score": \xff}', r"scores.jsonl:1 is not UTF-8"),
        (
            b'{"label": "0_c0_i0", "score": 1' + b"0" * 400 + b"}",
            r"scores.jsonl:1: label '0_c0_i0' has a score too large",
        ),
        (b"nope " + b"x" * (10 * 2**20), r"line 1 is not valid JSON"),
    ],
)
def test_score_file_faults_are_one_short_line(tmp_path, line, match):
    with pytest.raises(ScoreFileError, match=match) as info:
        _read(tmp_path, line + b"\n" + "\n".join(_score_lines()[1:]).encode() + b"\n")
    assert len(str(info.value)) < 600


def test_score_file_faults_through_the_cli(tmp_path, capsys):
    p = tmp_path / "s.jsonl"
    p.write_bytes(b"x" * (10 * 2**20) + b"\n")
    assert main(["metrics", "--task", "winoground", "--scores", str(p)]) == 3
    err = capsys.readouterr().err
    assert "not valid JSON" in err and len(err) < 2000


# --- --limit -------------------------------------------------------------------------------------
def test_limit_at_or_above_the_dataset_size_is_not_partial(sample_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(dummy_run_args(sample_dir, out, "--limit", "6")) == 0
    result = json.loads((_run_dir(out) / "result.json").read_text())
    assert result["partial"] is False and result["n_examples"] == 6
    assert main(dummy_run_args(sample_dir, out, "--limit", "100")) == 0
    assert json.loads((_run_dir(out) / "result.json").read_text())["partial"] is False


def test_limit_after_a_finished_run_keeps_every_finished_example(sample_dir, finished_run, tmp_path):
    full = json.loads((finished_run / "result.json").read_text())
    assert main(dummy_run_args(sample_dir, tmp_path / "runs", "--limit", "2")) == 0
    again = json.loads((finished_run / "result.json").read_text())
    assert again["n_examples"] == 6 and again["partial"] is False and again["metrics"] == full["metrics"]
    # and a limited start, continued with a larger limit, computes only what is missing
    out = tmp_path / "other"
    assert main(dummy_run_args(sample_dir, out, "--limit", "2")) == 0
    assert main(dummy_run_args(sample_dir, out, "--limit", "4")) == 0
    result = json.loads((_run_dir(out) / "result.json").read_text())
    assert result["n_examples"] == 4 and result["partial"] is True and result["n_expected"] == 6
    assert _ids(_run_dir(out)) == ["0", "1", "2", "3"]


def test_shapes_limit_after_a_longer_run_keeps_it(tmp_path):
    args = ["run", "--task", "shapes", "--scorer", "dummy", "--split", "val", "--out", str(tmp_path), "-q"]
    assert main(args + ["--limit", "8"]) == 0
    assert main(args + ["--limit", "3"]) == 0
    result = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert result["n_examples"] == 8 and result["partial"] is True


# --- devices ---------------------------------------------------------------------------------------
def test_cuda_without_cuda_is_a_config_error(monkeypatch):
    import torch

    from winoground_eval.diffusion.scorer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--device cuda: this machine has no usable CUDA device"):
        resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def test_cuda_without_cuda_through_the_cli(sample_dir, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(
        [a if a != "dummy" else "tiny-diffusion" for a in dummy_run_args(sample_dir, tmp_path, "--device", "cuda")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no usable CUDA device" in err and "--device cpu" in err and "Traceback" not in err


# --- a Hub that accepts connections and never answers ---------------------------------------------
@pytest.fixture
def silent_hub(monkeypatch, tmp_path):
    """HF_ENDPOINT at a loopback server that accepts every connection and never answers."""
    import huggingface_hub.constants as hc

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(hc, "ENDPOINT", endpoint)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    yield endpoint
    stop.set()
    thread.join()
    for c in held:
        c.close()
    server.close()


def test_silent_hub_dataset_fails_within_seconds(silent_hub):
    from winoground_eval.tasks.winoground import WinogroundTask

    t0 = time.monotonic()
    with pytest.raises(DataError, match="no answer within 1 s"):
        WinogroundTask()
    assert time.monotonic() - t0 < 8


def test_silent_hub_model_fails_within_seconds(silent_hub):
    from winoground_eval.diffusion.loading import load_components

    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match="cannot be reached .*no answer within 1 s"):
        load_components("someone/some-model")
    assert time.monotonic() - t0 < 8


def test_silent_hub_through_the_cli(silent_hub, sample_dir, tmp_path, capsys):
    t0 = time.monotonic()
    code = main(
        [
            "run",
            "--task",
            "winoground",
            "--scorer",
            "sd2",
            "--data-dir",
            str(sample_dir),
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "runs"),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 5 and "cannot be reached" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 15


# --- bootstrap in bounded memory ---------------------------------------------------------------------
def test_bootstrap_memory_is_bounded_and_matches_the_index_bootstrap():
    import tracemalloc

    from winoground_eval.core import metrics

    rng = np.random.default_rng(1)
    x = (rng.random(300) < 0.4).astype(float)
    exact = metrics.bootstrap_ci(x)
    means = x[np.random.default_rng(5).integers(0, x.size, size=(10_000, x.size))].mean(axis=1)
    ref = np.percentile(means, [2.5, 97.5])
    assert exact == pytest.approx(ref, abs=0.012)  # the same distribution, other random numbers
    assert exact == metrics.bootstrap_ci(x)  # seeded
    big = (rng.random(2_000_000) < 0.3).astype(float)
    tracemalloc.start()
    ci = metrics.bootstrap_ci(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * 2**20 and ci[0] < 0.3 < ci[1]


def test_bench_bootstrap_smoke(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_bootstrap", ROOT / "benchmarks" / "bench_bootstrap.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--sizes", "100", "--resamples", "50", "--continuous"]) == 0
    out = capsys.readouterr().out
    assert "peak MiB" in out and out.count("\n       100 ") == 3


def test_save_run_metadata_with_line_separators_in_a_caption(sample_dir, tmp_path):
    from winoground_eval.results.scorefile import write_score_file

    _rewrite(sample_dir, lambda rows: rows[0].update(caption_0=rows[0]["caption_0"] + "\u2028"))
    scores = tmp_path / "s.jsonl"
    write_score_file(scores, {str(i): np.eye(2) for i in range(6)})
    argv = [
        "metrics",
        "--task",
        "winoground",
        "--scores",
        str(scores),
        "--metadata",
        str(sample_dir / "examples.jsonl"),
        "--save-run",
        "elsewhere",
        "--out",
        str(tmp_path / "runs"),
        "--json",
    ]
    assert main(argv) == 0
    [run_dir] = list((tmp_path / "runs" / "winoground" / "elsewhere").iterdir())
    assert json.loads((run_dir / "result.json").read_text())["n_examples"] == 6


class _FakeHubSource:
    """A HubSource whose dataset is an in-memory datasets.Dataset (no network)."""

    @staticmethod
    def make(images):
        import io

        import datasets

        from winoground_eval.tasks.winoground import HubSource

        def png(img):
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            return {"bytes": buf.getvalue(), "path": None}

        rows = {
            "id": list(range(len(images))),
            "image_0": [png(a) for a, _ in images],
            "image_1": [png(b) for _, b in images],
        }
        features = datasets.Features(
            {"id": datasets.Value("int64"), "image_0": datasets.Image(), "image_1": datasets.Image()}
        )
        source = object.__new__(HubSource)
        source.__dict__["dataset"] = datasets.Dataset.from_dict(rows, features=features)
        return source


def test_hub_source_hashes_the_stored_image_bytes_and_decodes_safely(tmp_path):
    from PIL import Image

    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    a = _FakeHubSource.make([(red, blue), (blue, red)])
    b = _FakeHubSource.make([(red, blue), (blue, blue)])
    rows = [{"id": "0"}, {"id": "1"}]
    da, db = a.image_digests(rows), b.image_digests(rows)
    assert da[0] == db[0] and da[1][1] != db[1][1]
    assert a.image(1, rows[1], 0).getpixel((0, 0)) == (0, 0, 255)
    _png_bomb(tmp_path / "bomb.png")
    bomb = _FakeHubSource.make([(red, red)])
    bomb.__dict__["raw_images"] = [
        {"image_0": {"bytes": (tmp_path / "bomb.png").read_bytes(), "path": None}, "image_1": None}
    ]
    with pytest.raises(DataError, match="example 0: image_0: image is too large"):
        bomb.image(0, {"id": "0"}, 0)
