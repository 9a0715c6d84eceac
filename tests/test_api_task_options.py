"""`evaluate(..., task_options={...})` is `wg-eval run -t KEY=VALUE`: typed by the CLI's own
parser (core/overrides.parse_options), the same run id, the same errors."""

from __future__ import annotations

import json

import pytest

import winoground_eval as wg
from winoground_eval.cli.main import main
from winoground_eval.core.api import task_option_pairs, task_option_text
from winoground_eval.core.errors import ConfigError
from winoground_eval.testing.classification_fixtures import write_cifar10


def _cli(out, capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["run", *argv, "--out", str(out), "-q", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_api_task_option_gives_the_cli_run_id(tmp_path, capsys):
    api = wg.evaluate("shapes-classify", "dummy", limit=4, task_options={"prompt_set": "full"}, out=tmp_path / "a")
    cli = _cli(
        tmp_path / "b",
        capsys,
        "--task",
        "shapes-classify",
        "--scorer",
        "dummy",
        "--limit",
        "4",
        "-t",
        "prompt_set=full",
    )
    assert api["run_id"] == cli["run_id"]
    assert api["task"]["prompt_set"] == "full" and api["task"]["n_prompts"] == 120
    default = wg.evaluate("shapes-classify", "dummy", limit=4, out=tmp_path / "a")
    assert default["run_id"] != api["run_id"]  # the option reached the task
    # -t's own strings work too, and the CLI finds the API's run (resumes it: same directory)
    again = wg.evaluate("shapes-classify", "dummy", limit=4, task_options=["prompt_set=full"], out=tmp_path / "a")
    assert again["run_id"] == api["run_id"] and again["run_dir"] == api["run_dir"]


def test_typed_values_are_written_as_the_cli_would(tmp_path, capsys):
    """An int, a Literal and a bool through the API give the CLI's run id (cifar10's fixture)."""
    data = tmp_path / "cifar"
    write_cifar10(data, n=20)
    opts = {"per_class": 1, "templates": "ensemble", "download": False}
    api = wg.evaluate("cifar10", "dummy", data_dir=data, limit=3, task_options=opts, out=tmp_path / "a")
    cli = _cli(
        tmp_path / "b",
        capsys,
        *("--task", "cifar10", "--scorer", "dummy", "--data-dir", str(data), "--limit", "3"),
        *("-t", "per_class=1", "-t", "templates=ensemble", "-t", "download=false"),
    )
    assert api["run_id"] == cli["run_id"] and api["task"]["per_class"] == 1
    assert api["task"]["templates"] == "ensemble"


def test_mistakes_are_the_cli_errors(tmp_path):
    with pytest.raises(ConfigError, match="has no option 'prompt_sett'.*Did you mean prompt_set"):
        wg.evaluate("shapes-classify", "dummy", task_options={"prompt_sett": "full"}, out=tmp_path)
    with pytest.raises(ConfigError, match="choose one of pair, full"):
        wg.evaluate("shapes-classify", "dummy", task_options={"prompt_set": "half"}, out=tmp_path)
    with pytest.raises(ConfigError, match="disagree"):
        wg.evaluate("shapes", "dummy", split="val", task_options={"split": "test"}, out=tmp_path)
    with pytest.raises(ConfigError, match="has no -t form"):
        wg.evaluate("shapes", "dummy", task_options={"split": {"a": 1}}, out=tmp_path)
    with pytest.raises(ConfigError, match="give a dict"):
        wg.evaluate("shapes", "dummy", task_options="split=val", out=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing was started


def test_option_text():
    assert task_option_text("k", True) == "true" and task_option_text("k", None) == "none"
    assert task_option_text("k", (1, 2.5, "x")) == "1,2.5,x" and task_option_text("k", 7) == "7"
    assert task_option_pairs({"a": 1, "s.b": "x"}) == ("a=1", "s.b=x") and task_option_pairs(None) == ()
