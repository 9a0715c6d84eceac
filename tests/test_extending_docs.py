"""docs/extending.md cannot rot: its code is exactly docs/examples/*.py, and its commands run."""

import json
import re
import shlex
from pathlib import Path

import pytest

from winoground_eval.cli.main import main
from winoground_eval.core import contracts, metrics, registry

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"
RESULTS_BRANCH = "needs the results branch (contracts.Metric, metrics.summarize)"


def _blocks(kind: str) -> list[tuple[str, str]]:
    """(argument, body) of each fenced block right after an `<!-- kind: ARG -->` / `<!-- kind -->` marker."""
    pattern = re.compile(rf"<!-- {kind}(?::\s*(\S+))? -->\n```\w*\n(.*?)```", re.S)
    return [(m.group(1) or "", m.group(2)) for m in pattern.finditer(DOC.read_text())]


def _needs_results_branch() -> None:
    if not (hasattr(contracts, "Metric") and hasattr(metrics, "summarize") and hasattr(metrics, "ranked_outcome")):
        pytest.skip(RESULTS_BRANCH)


def test_the_code_shown_is_the_code_tested():
    files = _blocks("file")
    assert [name for name, _ in files] == ["docs/examples/my_task.py", "docs/examples/my_scorer.py"]
    for name, body in files:
        assert body == (ROOT / name).read_text(), f"docs/extending.md shows another {name} than the file"


COMMANDS = [body.strip() for _, body in _blocks("run")]


def test_the_doc_has_commands():
    assert len(COMMANDS) == 2 and all(c.startswith("wg-eval run ") for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_commands_run(command, tmp_path, monkeypatch):
    if "my_task.py" in command:
        _needs_results_branch()
    monkeypatch.chdir(ROOT)  # the commands name docs/examples/... relative to the repository
    argv = shlex.split(command)[1:]
    assert main([*argv, "--out", str(tmp_path / "runs"), "-q"]) == 0
    (run_dir,) = [p for p in (tmp_path / "runs").glob("*/*/*") if (p / "result.json").exists()]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["n_examples"] > 0 and all(v is not None for v in result["metrics"].values())
    run = json.loads((run_dir / "run.json").read_text())
    recorded = run["task"] if "my_task.py" in command else run["scorer"]["config"]
    assert recorded["user_file"].endswith(("my_task.py", "my_scorer.py")) and len(recorded["sha256"]) == 64


def test_the_registry_line_of_the_doc_works(tmp_path, monkeypatch):
    _needs_results_branch()
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    monkeypatch.setitem(registry.TASKS, "squares", registry.Entry("my_task:SquaresTask", "which colour is the square"))
    monkeypatch.setitem(registry.SCORERS, "colour", registry.Entry("my_scorer:make_scorer", "colour-name distance"))
    assert (
        main(["run", "--task", "squares", "--scorer", "colour", "-t", "n_examples=8", "--out", str(tmp_path), "-q"])
        == 0
    )
    result = json.loads(next(tmp_path.glob("squares/colour/*/result.json")).read_text())
    assert result["n_examples"] == 8 and 0.0 <= result["metrics"]["accuracy"] <= 1.0


def test_the_examples_keep_the_contracts(tmp_path):
    """The example task and scorer through the contract checks every registered one gets."""
    from winoground_eval.core.contracts import Scorer
    from winoground_eval.core.userfile import missing_members

    scorer = registry.resolve_scorer(str(ROOT / "docs/examples/my_scorer.py") + ":make_scorer")(sharpness=2.0)
    assert not missing_members(scorer, Scorer)
    from PIL import Image

    red, blue = Image.new("RGB", (32, 32), (215, 35, 35)), Image.new("RGB", (32, 32), (35, 70, 215))
    s = scorer.score([red, blue], ["a red square", "a blue square", "a red square"])
    assert s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0] and (s[:, 0] == s[:, 2]).all()
    _needs_results_branch()
    task = registry.resolve_task(str(ROOT / "docs/examples/my_task.py") + ":make_task")(n_examples=5, n_negatives=3)
    examples = list(task.examples())
    assert [e.id for e in examples] == list(task.metadata()) and all(len(e.captions) == 4 for e in examples)
    assert sum(m.primary for m in task.metric_specs) == 1
