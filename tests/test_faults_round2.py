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
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from winoground_eval.cli.main import main
from winoground_eval.core import registry
from winoground_eval.core.runstore import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _args(sample_dir, out, *extra, scorer="dummy"):
    return [
        "run",
        "--task",
        "winoground",
        "--scorer",
        scorer,
        "--data-dir",
        str(sample_dir),
        "--out",
        str(out),
        "-q",
        *extra,
    ]


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
    for bad, why in [
        (link, "symbolic link"),
        (fifo, "FIFO"),
        (Path("/dev/null"), "character device"),
        (result, "inside the run directory"),
        (finished_run / "new.html", "inside the run directory"),
    ]:
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


# --- 2, 5, 6: images that are FIFOs, devices, decompression bombs; folder symlink loops ----------------
BAD_EXAMPLES = """
import json, sys
from winoground_eval.core.registry import resolve_task
task = resolve_task(sys.argv[1] + sys.argv[2])()
bad = {}
got = [ex.id for ex in task.examples(on_error=lambda i, exc: bad.setdefault(i, str(exc)))]
print(json.dumps({"ids": list(task.metadata()), "got": got, "bad": bad}))
"""


def _load_within(task: str, arg: str, seconds: float = 60) -> dict:
    """Load a task and all its examples in a subprocess that must finish within ``seconds``
    (a FIFO or /dev/zero read as an image blocks forever: the test fails instead of hanging)."""
    done = subprocess.run(
        [sys.executable, "-c", BAD_EXAMPLES, task, arg],
        capture_output=True,
        text=True,
        timeout=seconds,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def _png(path, colour=(200, 30, 30)):
    from PIL import Image

    Image.new("RGB", (16, 16), colour).save(path)


def _captions_with_bad_images(tmp_path):
    from test_faults import _png_bomb

    d = tmp_path / "caps"
    d.mkdir()
    _png(d / "a.png")
    os.mkfifo(d / "fifo.png")
    (d / "zero.png").symlink_to("/dev/zero")
    _png_bomb(d / "bomb.png")
    rows = [
        {"id": i, "images": [name], "captions": ["right", "wrong"]}
        for i, name in [("good", "a.png"), ("fifo", "fifo.png"), ("zero", "zero.png"), ("bomb", "bomb.png")]
    ]
    (d / "ex.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "ex.jsonl"


def test_captions_fifo_dev_zero_and_bomb_images_are_data_errors_that_skip_bad_skips(tmp_path, capsys):
    path = _captions_with_bad_images(tmp_path)
    # hashing the images neither blocks on the FIFO nor reads /dev/zero forever
    loaded = _load_within("captions:", str(path))
    assert loaded["got"] == ["good"]
    bad = loaded["bad"]
    assert "FIFO" in bad["fifo"] and "character device" in bad["zero"] and "too large to decode safely" in bad["bomb"]
    out = tmp_path / "runs"
    args = ["run", "--task", f"captions:{path}", "--scorer", "dummy", "--out", str(out), "-q"]
    assert main(args) == 3
    assert "FIFO" in _one_line_error(capsys.readouterr().err)
    assert main([*args, "--skip-bad"]) == 0
    result = json.loads((_run_dir(out) / "result.json").read_text())
    assert set(result["skipped"]) == {"fifo", "zero", "bomb"} and result["n_examples"] == 1


def test_imagefolder_fifo_and_bomb_are_skippable_and_symlink_loops_are_not_followed(tmp_path, capsys):
    from test_faults import _png_bomb

    from winoground_eval.tasks.classification import imagefolder

    root = tmp_path / "pets"
    for c, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        (root / c).mkdir(parents=True)
        _png(root / c / "a.png", colour)
    (root / "cat" / "up").symlink_to("..")  # a loop: cat/up/dog/a.png would be a dog labelled cat
    (root / "dog" / "self").symlink_to(".")
    task = imagefolder(str(root))
    assert list(task.metadata()) == ["cat/a.png", "dog/a.png"]
    os.mkfifo(root / "dog" / "b.png")
    _png_bomb(root / "cat" / "bomb.png")
    loaded = _load_within("imagefolder:", str(root))
    bad = loaded["bad"]
    assert loaded["got"] == ["cat/a.png", "dog/a.png"]
    assert "too large to decode safely" in bad["cat/bomb.png"] and "FIFO" in bad["dog/b.png"]
    out = tmp_path / "runs"
    args = ["run", "--task", f"imagefolder:{root}", "--scorer", "dummy", "--out", str(out), "-q"]
    assert main(args) == 3
    _one_line_error(capsys.readouterr().err)
    assert main([*args, "--skip-bad"]) == 0
    result = json.loads((_run_dir(out) / "result.json").read_text())
    assert set(result["skipped"]) == {"cat/bomb.png", "dog/b.png"} and result["n_examples"] == 2


# --- 3. a run that ends with zero scored examples ---------------------------------------------------
def test_ctrl_c_during_the_first_example_exits_130_with_a_valid_result_and_the_resume_command(
    sample_dir, tmp_path, capsys
):
    out = tmp_path / "runs"
    code = main(_args(sample_dir, out, "-o", "fail_after=0", scorer="interrupting"))
    err = capsys.readouterr().err
    assert code == 130, err
    assert "Resume with" in err and "unexpected" not in err
    result = json.loads((_run_dir(out) / "result.json").read_text())  # strict JSON: no NaN
    assert result["n_examples"] == 0 and result["note"] == "no examples scored"
    assert all(v is None for v in result["metrics"].values())
    assert main(_args(sample_dir, out, scorer="interrupting")) == 0  # the same run, not interrupted, finishes
    assert json.loads((_run_dir(out) / "result.json").read_text())["n_examples"] == 6


def test_skip_bad_when_every_example_is_bad_ends_cleanly(tmp_path, capsys):
    d = tmp_path / "caps"
    d.mkdir()
    (d / "ex.jsonl").write_text(
        "".join(json.dumps({"id": f"e{i}", "images": ["missing.png"], "captions": ["a", "b"]}) + "\n" for i in range(3))
    )
    out = tmp_path / "runs"
    code = main(
        ["run", "--task", f"captions:{d / 'ex.jsonl'}", "--scorer", "dummy", "--out", str(out), "-q", "--skip-bad"]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    result = json.loads((_run_dir(out) / "result.json").read_text())
    assert result["n_examples"] == 0 and result["n_skipped"] == 3 and result["metrics"]["accuracy"] is None
    assert main(["show", str(_run_dir(out))]) == 0
    assert main(["show", str(_run_dir(out)), "--json"]) == 0


# --- 12. a disk that fills during the append of a score line ----------------------------------------
class _FullDiskRaw(io.RawIOBase):
    """A raw file that writes half of what it is given, then fails with ENOSPC (a disk filling up),
    and fails the same way every time after."""

    def __init__(self, fh):
        self._fh = fh

    def writable(self):
        return True

    def write(self, data):
        self._fh.write(bytes(data[: max(1, len(data) // 2)]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def seekable(self):
        return True

    def seek(self, *a):
        return self._fh.seek(*a)

    def tell(self):
        return self._fh.tell()

    def truncate(self, size=None):
        return self._fh.truncate(size)

    def fileno(self):
        return self._fh.fileno()

    def close(self):
        self._fh.close()
        super().close()


def test_full_disk_during_a_buffered_append_is_exit_4_and_resume_is_exact(sample_dir, tmp_path, monkeypatch, capsys):
    import builtins

    out = tmp_path / "runs"
    real_open = builtins.open
    state = {"appends": 0}

    def filling_open(file, mode="r", buffering=-1, *a, **k):
        if Path(str(file)).name == "scores.jsonl" and "a" in mode:
            state["appends"] += 1
            if state["appends"] == 3:
                raw = _FullDiskRaw(real_open(file, mode, buffering=0))
                return raw if buffering == 0 else io.BufferedWriter(raw)
        return real_open(file, mode, buffering, *a, **k)

    with monkeypatch.context() as mp:
        mp.setattr(builtins, "open", filling_open)
        code = main(_args(sample_dir, out))
    err = capsys.readouterr().err
    assert code == 4, err
    assert "No space left on device" in _one_line_error(err) and "Resume with" in err
    run_dir = _run_dir(out)
    assert (run_dir / "scores.jsonl").read_bytes().endswith(b"\n")  # the torn half line was cut back
    assert main(_args(sample_dir, out)) == 0
    ids = [json.loads(l)["id"] for l in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert sorted(ids) == [str(i) for i in range(6)]


# --- 10. array file names never collide ------------------------------------------------------------
def test_array_names_are_injective_and_case_insensitive_safe():
    from winoground_eval.core.runstore import _array_name

    ids = [
        "a b",
        "a_b-5e229e24",
        "a_b",
        "A",
        "a",
        "Cat/x.png",
        "cat/x.png",
        "",
        "~",
        "~7e",
        "x" * 300,
        "x" * 299 + "y",
        "é",
        "e\u0301",
        "../run",
        "..",
        ".",
    ]
    names = [_array_name(i) for i in ids]
    assert len({n.lower() for n in names}) == len(ids)  # distinct even on a case-insensitive file system
    assert all(n and len(n) <= 120 and "/" not in n and n not in (".", "..") for n in names)


def test_ids_that_used_to_share_an_array_file_keep_their_own_arrays(tmp_path):
    from winoground_eval.core.contracts import Scored
    from winoground_eval.core.runstore import RunStore

    store = RunStore.create_or_open(tmp_path, {"task": {"name": "t"}, "scorer": {"name": "s", "config": {}}}, {})
    with store:
        store.load()
        store.append("a b", Scored(np.zeros((1, 2)), arrays={"e": np.array([1.0])}), 0.0)
        store.append("a_b-5e229e24", Scored(np.zeros((1, 2)), arrays={"e": np.array([2.0])}), 0.0)
        store.append("A", Scored(np.zeros((1, 2)), arrays={"e": np.array([3.0])}), 0.0)
        store.append("a", Scored(np.zeros((1, 2)), arrays={"e": np.array([4.0])}), 0.0)
    store.load()
    assert [float(store.arrays(i)["e"][0]) for i in ("a b", "a_b-5e229e24", "A", "a")] == [1.0, 2.0, 3.0, 4.0]


def test_runs_written_with_the_old_array_names_are_still_read(tmp_path):
    from winoground_eval.core.runstore import RunStore

    store = RunStore.create_or_open(tmp_path, {"task": {"name": "t"}, "scorer": {"name": "s", "config": {}}}, {})
    (store.path / "arrays").mkdir()
    np.savez(store.path / "arrays" / "a_b-1234abcd.npz", e=np.array([7.0]))
    line = {"id": "a b", "scores": [[0.0, 1.0]], "info": {}, "seconds": 0.0, "arrays": "arrays/a_b-1234abcd.npz"}
    (store.path / "scores.jsonl").write_text(json.dumps(line) + "\n")
    store.load()
    assert float(store.arrays("a b")["e"][0]) == 7.0


# --- 11. report charts: user text never spliced into Vega-Lite expressions ---------------------------------
CHART_HARNESS = r"""
const fs = require('fs'), vm = require('vm'), path = require('path');
const dir = process.argv[2];
for (const f of ['vega.min.js', 'vega-lite.min.js', 'vega-interpreter.min.js']) vm.runInThisContext(fs.readFileSync(path.join(dir, f), 'utf8'));
const js = fs.readFileSync(path.join(dir, 'report.js'), 'utf8');
const src = js.slice(js.indexOf('function barSpec(o)'), js.indexOf('function lineSpec(o)'));
const isNum = (x) => typeof x === 'number' && isFinite(x), pct1 = (x) => (100 * x).toFixed(1) + '%';
const barSpec = eval('(' + src + ')');
const cats = JSON.parse(process.argv[3]), series = JSON.parse(process.argv[4]);
const rows = [];
cats.forEach((c, i) => series.forEach((s) => rows.push({cat: c, series: s, value: 0.25 + 0.1 * i, ci: [0.1, 0.9], n: 10})));
const spec = Object.assign({}, barSpec({title: 't', rows: rows, cats: cats, series: series, colors: series.map(() => '#123456'),
                                          catTitle: 'tag', xTitle: 'score'}));
const view = new vega.View(vega.parse(vegaLite.compile(spec).spec, null, {ast: true}), {renderer: 'none', expr: vega.expressionInterpreter});
view.runAsync().then(() => console.log(JSON.stringify(view.scale('y').domain()))).catch((e) => { console.log('FAIL ' + e.message); process.exit(1); });
"""


def test_report_chart_specs_take_no_user_text_into_sort_expressions():
    js = (ROOT / "winoground_eval" / "report_assets" / "report.js").read_text()
    import re

    assert not re.findall(r"sort:(?!\s*\{)[^,}]+", js)  # a sort array of user values becomes an expression


@pytest.mark.skipif(not __import__("shutil").which("node"), reason="needs node to run the page's chart code")
def test_report_bar_chart_draws_tags_with_backslashes_quotes_and_line_separators(tmp_path):
    import shutil

    cats = ["zeta", "a\\b \"q\" 's'", "m\u2028n\u2028o\u2029", "alpha"]
    series = ["run \\ one\u2028", "run two"]
    harness = tmp_path / "chart.js"
    harness.write_text(CHART_HARNESS)
    done = subprocess.run(
        [
            shutil.which("node"),
            str(harness),
            str(ROOT / "winoground_eval" / "report_assets"),
            json.dumps(cats),
            json.dumps(series),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (done.stdout[-500:], done.stderr[-500:])
    assert json.loads(done.stdout.strip().split("\n")[-1]) == cats, done.stdout[-500:]  # drawn, in the given order


# --- 11. loose numbers; `run --json` keeps stdout for the JSON ---------------------------------------------
USER_SCORER = """
import numpy as np
print("user code prints at import")

class Scorer:
    def __init__(self, kind="float"):
        self.kind = kind

    def config(self):
        return {"kind": self.kind}

    def score(self, images, captions):
        print("user code prints while scoring")
        s = np.arange(len(images) * len(captions), dtype=float).reshape(len(images), len(captions))
        if self.kind == "complex":
            return s + 1j
        if self.kind == "strings":
            return [[str(v) for v in row] for row in s.tolist()]
        if self.kind == "bools":
            return s > 1
        if self.kind == "mixed":
            return [[0.5, True] for _ in images]
        return s

def make(kind: str = "float"):
    return Scorer(kind)
"""


@pytest.mark.parametrize(
    "kind, why",
    [("complex", "complex numbers"), ("strings", "str '0.0'"), ("bools", "booleans"), ("mixed", "bool True")],
)
def test_scores_must_be_real_numbers(sample_dir, tmp_path, capsys, kind, why):
    f = tmp_path / "my_scorer.py"
    f.write_text(USER_SCORER)
    out = tmp_path / "runs"
    code = main(_args(sample_dir, out, "-o", f"kind={kind}", scorer=f"{f}:make"))
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"example 0: scores hold {why}" in _one_line_error(err)
    scores = _run_dir(out) / "scores.jsonl"
    assert not scores.exists() or scores.read_text() == ""  # nothing was recorded for it


def test_run_json_stdout_is_pure_json_when_user_code_prints(sample_dir, tmp_path, capsys):
    f = tmp_path / "printing_scorer.py"
    f.write_text(USER_SCORER)
    assert main(_args(sample_dir, tmp_path / "runs", "--json", scorer=f"{f}:make")) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_examples"] == 6
    assert "user code prints while scoring" in captured.err


# --- 8. exit statuses ------------------------------------------------------------------------------------
EXITING_SCORER = """
import sys
import numpy as np

class Scorer:
    def config(self):
        return {}

    def score(self, images, captions):
        sys.exit(0)

def make():
    return Scorer()
"""


def test_sys_exit_in_user_code_is_a_runtime_error_naming_the_file(sample_dir, tmp_path, capsys):
    f = tmp_path / "exiting.py"
    f.write_text(EXITING_SCORER)
    code = main(_args(sample_dir, tmp_path / "runs", scorer=f"{f}:make"))
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{f}:10 called sys.exit(0)" in _one_line_error(err)


def _closed_stdout_run(*argv) -> subprocess.CompletedProcess:
    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written
    try:
        return subprocess.run(
            [sys.executable, "-m", "winoground_eval", *argv],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    finally:
        os.close(w)


def test_a_closed_pipe_under_a_rich_table_exits_141():
    done = _closed_stdout_run("ls", "tasks")
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr


SLOW_SCORER = """
import time
from pathlib import Path
import numpy as np

class Scorer:
    def __init__(self, marker):
        self.marker, self.n = Path(marker), 0

    def config(self):
        return {}

    def score(self, images, captions):
        self.n += 1
        if self.n == 3:
            self.marker.write_text("2 done")
        time.sleep(0.3 if self.n < 3 else 30)
        return np.arange(4.0).reshape(2, 2) * (1 if self.n % 2 else -1)

def make(marker: str = ""):
    return Scorer(marker)
"""


@pytest.mark.slow  # a CLI subprocess per signal
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_are_handled_like_ctrl_c(sample_dir, tmp_path, sig, code):
    f = tmp_path / "slow.py"
    f.write_text(SLOW_SCORER)
    marker = tmp_path / "marker"
    out = tmp_path / "runs"
    argv = [
        sys.executable,
        "-m",
        "winoground_eval",
        *_args(sample_dir, out, "-o", f"marker={marker}", scorer=f"{f}:make"),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=5)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    assert "Resume with" in stderr and "Traceback" not in stderr
    result = json.loads((_run_dir(out) / "result.json").read_text())
    assert result["n_examples"] == 2 and result["partial"] is True


@pytest.mark.parametrize(
    "extra, what",
    [
        (
            ["-o", "seed=" + "1" + "0" * 29],
            "option seed=100000000000000000000000000000: out of range; give a whole number from 0",
        ),
        (["-o", "seed=10**29"], "option seed='10**29': expected int"),
        (["--limit", "0"], "--limit 0: give a positive number"),
        (["-t", "limit=0"], "--limit 0: give a positive number"),
    ],
)
def test_usage_errors_exit_2(sample_dir, tmp_path, capsys, extra, what):
    code = main(_args(sample_dir, tmp_path / "runs", *extra))
    err = capsys.readouterr().err
    assert code == 2, err
    assert what in _one_line_error(err)
    assert not (tmp_path / "runs").exists()  # nothing written


def test_an_unknown_split_exits_2(tmp_path, capsys):
    code = main(
        ["run", "--task", "shapes", "--scorer", "dummy", "--split", "nope", "--out", str(tmp_path / "runs"), "-q"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no split 'nope'" in _one_line_error(err) or "unknown shapes split 'nope'" in err


# --- 7. a task with non-string ids, duplicate ids or an example without images -----------------------------
BAD_TASK = """
from PIL import Image
from winoground_eval.core.contracts import Example, Metric
from winoground_eval.core.metrics import summarize, winoground_outcomes

IMG = Image.new("RGB", (8, 8))


class Task:
    name = "bad-ids"
    version = "1"
    metric_specs = (Metric("text", primary=True), Metric("image"), Metric("group"))

    def __init__(self, fault):
        self.fault = fault

    def info(self):
        return {"name": self.name, "version": self.version, "fault": self.fault}

    def metadata(self):
        if self.fault == "int-ids":
            return {0: {}, 1: {}}
        return {"a": {}, "b": {}, "c": {}}

    def examples(self, skip=(), on_error=None):
        ids = {"int-ids": [0, 1], "duplicate": ["a", "b", "a", "c"], "no-images": ["a", "b", "c"],
               "unknown": ["a", "zz"]}[self.fault]
        for i in ids:
            if i in skip:
                continue
            images = () if (self.fault == "no-images" and i == "b") else (IMG, IMG)
            yield Example(i, images, ("x", "y"), {})

    def outcomes(self, example_id, scores):
        return winoground_outcomes(scores)

    def metrics(self, scores):
        return summarize(self.metric_specs, {i: winoground_outcomes(s) for i, s in scores.items()})


def make(fault: str = "int-ids"):
    return Task(fault)
"""


@pytest.mark.parametrize(
    "fault, message, written",
    [
        ("int-ids", "example id 0 is a int; ids must be non-empty strings", []),
        ("duplicate", "examples() yielded example 'a' twice", ["a", "b"]),
        ("no-images", "yielded example 'b' with 0 image(s)", ["a"]),
        ("unknown", "yielded example 'zz', which is not one of its metadata() ids", ["a"]),
    ],
)
def test_bad_task_ids_are_a_clear_error_before_anything_bad_is_written(tmp_path, capsys, fault, message, written):
    f = tmp_path / "bad_task.py"
    f.write_text(BAD_TASK)
    out = tmp_path / "runs"
    args = ["run", "--task", f"{f}:make", "-t", f"fault={fault}", "--scorer", "dummy", "--out", str(out), "-q"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 3, err
    assert message in _one_line_error(err)
    if not written:
        assert not out.exists()  # refused before the run directory was made
        return
    run_dir = _run_dir(out)
    lines = [json.loads(l) for l in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert [l["id"] for l in lines] == written  # the good examples before the bad one, nothing else
    assert main(["repair", str(run_dir)]) == 0 and "nothing to repair" in capsys.readouterr().err


# --- 9. damaged run files ------------------------------------------------------------------------------
@pytest.fixture
def run_with_arrays(sample_dir, tmp_path):
    out = tmp_path / "runs"
    assert main(_args(sample_dir, out, scorer="with-arrays")) == 0
    return _run_dir(out)


def test_a_truncated_npz_is_a_run_store_error_and_repair_lets_a_rerun_redo_it(
    sample_dir, tmp_path, run_with_arrays, capsys
):
    from winoground_eval.core.errors import RunStoreError

    run_dir = run_with_arrays
    npz = run_dir / "arrays" / "3.npz"
    npz.write_bytes(npz.read_bytes()[:40])  # truncated
    store = RunStore(run_dir)
    store.load()
    with pytest.raises(RunStoreError, match=r"3\.npz: the arrays of example 3 are damaged .*wg-eval repair"):
        store.arrays("3")
    code = main(["report", str(run_dir), "-O", str(tmp_path / "r.html"), "--no-hub"])
    err = capsys.readouterr().err
    assert code == 4 and "wg-eval repair" in _one_line_error(err)
    assert main(["repair", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert "arrays file arrays/3.npz is damaged" in err
    ids = [json.loads(l)["id"] for l in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert "3" not in ids and len(ids) == 5
    assert main(_args(sample_dir, tmp_path / "runs", scorer="with-arrays")) == 0  # the rerun redoes example 3
    store = RunStore(run_dir)
    store.load()
    assert float(store.arrays("3")["errors"].sum()) == pytest.approx(float(np.sum(store.records["3"]["scores"])))
    assert main(["report", str(run_dir), "-O", str(tmp_path / "r.html"), "--no-hub"]) == 0


@pytest.mark.parametrize(
    "key, value",
    [
        ("n_examples", "6"),
        ("partial", "no"),
        ("metrics", {"text": "high"}),
        ("compute", []),
        ("n_expected", True),
        ("per_example", {"0": {"text": "x"}}),
    ],
)
def test_result_json_of_wrong_types_is_a_clear_error(finished_run, tmp_path, capsys, key, value):
    path = finished_run / "result.json"
    result = json.loads(path.read_text())
    result[key] = value
    path.write_text(json.dumps(result))
    for argv in (
        ["show", str(finished_run)],
        ["export", str(finished_run), "-O", str(tmp_path / "x.json")],
        ["report", str(finished_run), "-O", str(tmp_path / "x.html"), "--no-hub"],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 4, (argv, err)
        _one_line_error(err)
        assert "result.json is damaged: " in " ".join(err.split())


def test_show_notices_a_stale_result(finished_run, capsys):
    (finished_run / "scores.jsonl").unlink()
    assert main(["show", str(finished_run)]) == 0
    err = capsys.readouterr().err
    assert "result.json counts 6 scored example(s) but the score files hold 0: it is stale" in " ".join(err.split())


# --- 4. a user scorer file that imports a sibling module ------------------------------------------------
SIBLING_SCORER = """
import numpy as np
import helper
from helperpkg.sub import SIGN

class Scorer:
    def config(self):
        return {}

    def score(self, images, captions):
        return SIGN * helper.OFFSET + np.arange(4.0).reshape(2, 2)

def make():
    return Scorer()
"""


def test_editing_a_sibling_module_of_a_user_scorer_changes_the_run_id(sample_dir, tmp_path, monkeypatch):
    code_dir = tmp_path / "code"
    (code_dir / "helperpkg").mkdir(parents=True)
    (code_dir / "scorer.py").write_text(SIBLING_SCORER)
    (code_dir / "helper.py").write_text("OFFSET = 1.0\n")
    (code_dir / "helperpkg" / "__init__.py").write_text("")
    (code_dir / "helperpkg" / "sub.py").write_text("SIGN = 1\n")
    (code_dir / "unrelated.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(code_dir))
    out = tmp_path / "runs"
    spec = f"{code_dir / 'scorer.py'}:make"

    def run_id():
        for mod in ("helper", "helperpkg", "helperpkg.sub"):
            sys.modules.pop(mod, None)
        assert main(_args(sample_dir, out, scorer=spec)) == 0
        dirs = sorted(p.name for p in out.glob("*/*/*") if (p / "run.json").exists())
        return dirs

    first = run_id()
    (code_dir / "helper.py").write_text("OFFSET = 2.0\n")
    assert len(run_id()) == 2  # a new run: no resume mixes the scores of two versions of the code
    (code_dir / "helperpkg" / "sub.py").write_text("SIGN = -1\n")
    assert len(run_id()) == 3
    (code_dir / "unrelated.py").write_text("X = 2\n")
    assert len(run_id()) == 3  # a module it does not import is not part of its identity
    info = json.loads((out / "winoground" / "scorer.py_make" / first[0] / "run.json").read_text())
    assert set(info["scorer"]["config"]["local_modules"]) == {"helper.py", "helperpkg/__init__.py", "helperpkg/sub.py"}


# --- 2. downloads with a bounded wait ---------------------------------------------------------------------
from test_faults import silent_hub  # noqa: E402,F401 - the loopback "Hub" that accepts and never answers


def test_silent_hub_dit_model_index_fails_within_seconds(silent_hub):
    from winoground_eval.core.errors import ModelLoadError
    from winoground_eval.diffusion.dit import load_dit

    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match="model_index.json .*no answer within 1 s"):
        load_dit("someone/some-dit")
    assert time.monotonic() - t0 < 10


def test_a_stalled_dataset_download_fails_within_seconds(silent_hub, tmp_path, monkeypatch):
    from torchvision import datasets as tv

    from winoground_eval.core.errors import DataError
    from winoground_eval.tasks.classification_data import download

    monkeypatch.setattr(tv.CIFAR10, "url", f"{silent_hub}/cifar-10-python.tar.gz")
    monkeypatch.setenv("WG_EVAL_DOWNLOAD_TIMEOUT", "1")
    t0 = time.monotonic()
    with pytest.raises(DataError, match="cifar10: download .* failed .*no answer within 1 s"):
        download("cifar10", tmp_path / "data", "test")
    assert time.monotonic() - t0 < 15
