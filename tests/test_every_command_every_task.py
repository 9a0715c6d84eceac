"""Every results command on runs of every kind of task (issue 11's "done when"): winoground
(the Winoground-format sample), shapes, sugarcrepe, aro, captions:FILE and a task loaded from
a user's file, each through the CLI: run (two scorers), show, export (validated against the
v2 schema), compare, report (built, not browsed: the browser tests are in test_report.py
and test_ranked_task.py), and choose-timesteps on a diffusion run of a 1 x N and a 2 x 2 task.
The tasks' offline fixtures are the ones the registry-driven contract tests use."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from test_contract_all import _fixture_of

from winoground_eval.cli import main as cli
from winoground_eval.results.export import schema

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def wg(argv) -> int:
    return cli.main([str(a) for a in argv])


def _task_args(name: str, tmp_path: Path) -> list[str]:
    """`wg-eval run` arguments for the task's offline fixture (the contract tests' hook)."""
    if name == "user-file":
        return ["--task", f"{EXAMPLES / 'my_task.py'}:make_task"]
    resolvable, kwargs = _fixture_of(name)(tmp_path)
    args = ["--task", resolvable]
    flags = {"data_dir": "--data-dir", "limit": "--limit", "split": "--split", "revision": "--revision"}
    for key, value in kwargs.items():
        if key in flags:
            args += [flags[key], str(value)]
        else:
            value = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            args += ["-t", f"{key}={value}"]
    return args


def _run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob("result.json"))


NEW_TASKS = ["whatsup", "eqben", "mmvp-vlm", "vismin", "bivlc", "naturalbench", "sugarcrepe-pp", "colorswap"]


def _fast_only(names: list[str], fast: str = "winoground") -> list:
    """Every task is a case; all but ``fast`` are marked slow (`make test-fast` runs one task
    through every command; test_contract_all.py builds every task fast)."""
    return [pytest.param(n, marks=() if n == fast else pytest.mark.slow) for n in names]


@pytest.mark.parametrize(
    "name", _fast_only(["winoground", "shapes", "sugarcrepe", "aro", "captions:", "user-file", *NEW_TASKS])
)
def test_every_command_on_runs_of_the_task(name, tmp_path, capsys):
    out = tmp_path / "runs"
    task = _task_args(name, tmp_path / "data")
    if name == "shapes":
        task += ["--limit", "8"]
    for seed in (0, 1):
        assert wg(["run", *task, "--scorer", "dummy", "-o", f"seed={seed}", "--out", out, "-q"]) == 0
    a, b = _run_dirs(out)
    capsys.readouterr()

    assert wg(["show", a]) == 0
    result = json.loads((a / "result.json").read_text())
    primary = next(m["name"] for m in result["metric_specs"] if m["primary"])
    assert primary in capsys.readouterr().out

    board = tmp_path / "leaderboard.json"
    assert wg(["export", out, "-O", board, "--include-partial"]) == 0
    doc = json.loads(board.read_text())
    jsonschema.Draft202012Validator(schema(2)).validate(doc)
    assert len(doc["entries"]) == 2 and all(primary in e["metrics"] for e in doc["entries"])

    capsys.readouterr()
    assert wg(["compare", a, b, "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    per_example = [m["name"] for m in result["metric_specs"] if m["per_example"]]
    assert set(per_example) <= set(comparison["overall"]) and comparison["n_common"] == result["n_examples"]

    page = tmp_path / "report.html"
    assert wg(["report", out, "-O", page, "--no-hub", "--include-partial"]) == 0
    html = page.read_text()
    assert a.name in html and b.name in html and primary in html


@pytest.mark.parametrize("name", _fast_only(["captions:", "winoground", *NEW_TASKS]))
def test_choose_timesteps_on_a_diffusion_run_of_the_task(name, tmp_path, capsys, tiny_sd):
    out = tmp_path / "runs"
    model = tiny_sd(seed=0)
    task = _task_args(name, tmp_path / "data")
    assert (
        wg(
            [
                "run",
                *task,
                "--scorer",
                f"diffusers:{model}",
                "-o",
                "n_timesteps=10",
                "-o",
                "device=cpu",
                "--out",
                out,
                "-q",
            ]
        )
        == 0
    )
    [run] = _run_dirs(out)
    capsys.readouterr()
    _, kwargs = _fixture_of(name)(tmp_path / "data") if name in NEW_TASKS else (None, {})
    where = ["--data-dir", kwargs["data_dir"]] if "data_dir" in kwargs else []  # tasks with metrics of their own
    assert wg(["choose-timesteps", run, "--json", "--no-hub", *where]) == 0
    chosen = json.loads(capsys.readouterr().out)
    assert chosen["rows"] and "chosen" in chosen
