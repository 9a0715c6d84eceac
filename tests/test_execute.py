"""The one core run path: a RunRequest goes to execute() and comes back a typed RunResult;
the command line and the Python API are two ways of building the same request."""

import json

import pytest

import winoground_eval as wg
from winoground_eval.cli.main import main
from winoground_eval.core import registry
from winoground_eval.core.errors import ConfigError
from winoground_eval.core.execute import Events, execute, plan
from winoground_eval.core.request import RunRequest, RunResult, TaskRun

SHAPES = dict(task="shapes", scorer="dummy", split="test", limit=3)


@pytest.fixture(autouse=True)
def _test_scorers(monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "interrupting", registry.Entry("helpers:Interrupting", "test"))


class Recorder(Events):
    def __init__(self):
        self.seen = []

    def started(self, task, scorer, run_dir):
        self.seen.append(("started", task, scorer))

    def progress(self, done, total):
        self.seen.append(("progress", done, total))

    def finished(self, run):
        self.seen.append(("finished", run.status))

    def skipped(self, run):
        self.seen.append(("skipped", run.task))


def test_a_request_comes_back_a_typed_result_with_the_cli_run_id(tmp_path, capsys):
    request = RunRequest(**SHAPES, out=tmp_path / "a", scorer_options=("seed=3",))
    events = Recorder()
    result = execute(request, events=events)
    assert isinstance(result, RunResult) and result.exit_code == 0 and result.suite is None
    (run,) = result.runs
    assert isinstance(run, TaskRun) and run.done and run.n_examples == 3
    assert run.scorer_options == {"seed": 3}  # typed once, against the factory's signature
    assert run.task_options == {"split": "test", "limit": 3}
    assert (run.run_dir / "result.json").exists() and run.run_id == run.run_dir.name
    assert "seed=3" in run.label and "shapes/test" in run.label
    info = json.loads((run.run_dir / "run.json").read_text())
    assert info["overrides"] == {"scorer": {"seed": "3"}, "task": {"split": "test"}}  # as given, for the label
    assert events.seen[0] == ("started", "shapes", "dummy") and events.seen[-1] == ("finished", "done")
    assert ("progress", 3, 3) in events.seen
    # the command line builds the same request: the same run id and numbers
    assert (
        main(
            [
                "run",
                "--task",
                "shapes",
                "--split",
                "test",
                "--scorer",
                "dummy",
                "-o",
                "seed=3",
                "--limit",
                "3",
                "--out",
                str(tmp_path / "b"),
                "--json",
                "-q",
            ]
        )
        == 0
    )
    cli = json.loads(capsys.readouterr().out)
    assert cli["run_id"] == run.run_id and cli["metrics"] == dict(run.metrics)
    # and so does the Python API
    api = wg.evaluate("shapes", "dummy", split="test", limit=3, options={"seed": 3}, out=tmp_path / "c")
    assert api["run_id"] == run.run_id and api["metrics"] == dict(run.metrics)


def test_a_bad_option_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="no option 'sed'.*Did you mean seed"):
        execute(RunRequest(**SHAPES, out=tmp_path / "runs", scorer_options=("sed=3",)))
    with pytest.raises(ConfigError, match="option limit='x': expected int"):
        plan(RunRequest(**{**SHAPES, "limit": None}, task_options=("limit=x",)))
    assert not (tmp_path / "runs").exists()


def test_a_suite_says_which_tasks_it_skipped_and_why(tmp_path):
    events = Recorder()
    result = execute(RunRequest(task="compositional", scorer="dummy", out=tmp_path, limit=1), events=events)
    assert result.suite == "compositional" and [r.task for r in result.runs] == list(registry.SUITES["compositional"])
    assert not any(r.done for r in result.runs) and result.exit_code != 0
    assert set(result.skipped) == set(registry.SUITES["compositional"]) and all(result.skipped.values())
    assert [e for e in events.seen if e[0] == "skipped"] == [("skipped", n) for n in registry.SUITES["compositional"]]


def test_an_interrupt_keeps_the_finished_examples_and_says_how_to_resume(tmp_path):
    request = RunRequest(
        task="shapes",
        scorer="interrupting",
        split="test",
        limit=4,
        out=tmp_path,
        scorer_options=("fail_after=2",),
        command=("run", "--task", "shapes", "--scorer", "interrupting"),
    )
    result = execute(request)
    (run,) = result.runs
    assert run.status == "interrupted" and result.exit_code == 130 and result.interrupted is run
    assert run.n_examples == 2 and json.loads((run.run_dir / "result.json").read_text())["n_examples"] == 2
    assert run.resume_command == "wg-eval run --task shapes --scorer interrupting"
