"""`compare`, `export` and `ls runs` print `--json` through the CLI's one JSON printer
(cli/console.print_json): a valid JSON document alone on stdout, whatever the terminal width
(COLUMNS=40), even when a user's task file rebuilt for the tags prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from winoground_eval.cli.main import main

# A user's task that talks while it is built (TaskFinder rebuilds it for compare's tag rows).
TASK_FILE = """
from winoground_eval.tasks.shapes import ShapesTask

def make_task(*, split: str = "val", limit: int = 6):
    print("building my task [bold]now[/bold]")
    return ShapesTask(split=split, limit=limit)
"""

ENV = {**os.environ, "COLUMNS": "40", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("results-json")
    task = root / "talking_task.py"
    task.write_text(TASK_FILE)
    out = root / "runs"
    for seed in ("0", "1"):
        argv = ["run", "--task", f"{task}:make_task", "--scorer", "dummy", "-o", f"seed={seed}", "--out", str(out)]
        assert main([*argv, "-q"]) == 0
    return out


def _wg(*argv) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "winoground_eval", *map(str, argv)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


@pytest.mark.slow  # wg-eval in a subprocess
def test_compare_json_is_alone_on_stdout(runs):
    a, b = sorted(p.name for p in runs.glob("*/dummy/*"))
    done = _wg("compare", a, b, "--out", runs, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # the task's print went to stderr, not into the document
    assert doc["n_only_a"] == 0 and doc["n_only_b"] == 0
    assert "building my task" in done.stderr


@pytest.mark.slow  # wg-eval in a subprocess
def test_export_and_ls_runs_json_parse_at_any_width(runs, tmp_path):
    done = _wg("export", runs, "-O", tmp_path / "lb.json", "--include-partial", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc == json.loads((tmp_path / "lb.json").read_text()) and len(doc["entries"]) == 2
    done = _wg("ls", "runs", "--out", runs, "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 2 and all(len(r["path"]) > 40 and r["run_id"] in r["path"] for r in rows)
