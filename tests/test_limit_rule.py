"""The --limit rule (issues 14, 15), checked on EVERY registered task.

``Task.metadata()`` is the task's whole target, every example id of the split or subsets in
order, even when the task is built with ``limit=N``; ``limit`` only bounds what
``examples()`` yields (its first N ids, ``skip`` still honoured). The runner applies
--limit itself and marks a run partial when fewer examples are finished than metadata()
holds, so a task that cut metadata() to its limit would make a limited run look complete
and a limited rerun of a finished run rewrite its result.json as a few examples.

The tasks come from the registry (``TASKS`` and ``TASK_PREFIXES``) and are built on the
offline fixtures of the contract tests (tests/test_contract_all.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_contract_all import _fixture_of

from winoground_eval.cli.main import main
from winoground_eval.core import registry

TASK_NAMES = sorted(registry.TASKS) + sorted(registry.TASK_PREFIXES)
# Their fixture is an incomplete copy (3 images), which only a limited task accepts: the
# full target is then every image present, so limit=2 is compared with limit=3.
NEEDS_A_LIMIT = {"imagenet-v2", "imagenet-a"}


def _build(name: str, tmp_path: Path, limit: int | None) -> Any:
    builder = _fixture_of(name)
    assert builder is not None, f"task {name!r} has no offline fixture (see tests/test_contract_all.py)"
    resolvable, kwargs = builder(tmp_path)
    kwargs = {k: v for k, v in kwargs.items() if k != "limit"}
    if limit is not None:
        kwargs["limit"] = limit
    return registry.resolve_task(resolvable)(**kwargs)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_limit_bounds_examples_never_metadata(name, tmp_path):
    full = _build(name, tmp_path / "full", 3 if name in NEEDS_A_LIMIT else None)
    limited = _build(name, tmp_path / "limited", 2)
    target = list(full.metadata())
    assert len(target) >= 3, f"{name}: the fixture should hold more than the limit ({len(target)} examples)"
    assert list(limited.metadata()) == target, f"{name}: metadata() must be the whole target whatever the limit"
    assert {i: dict(t) for i, t in limited.metadata().items()} == {i: dict(t) for i, t in full.metadata().items()}
    assert limited.info() == full.info(), f"{name}: a limited task is the same data (the same run id)"
    assert [ex.id for ex in limited.examples()] == target[:2]
    # skip still honoured: skipping the first yields only the second of the first two
    assert [ex.id for ex in limited.examples(skip={target[0]})] == target[1:2]


def test_the_documented_user_task_follows_the_rule():
    """docs/examples/my_task.py (the template users copy) keeps the rule too."""
    factory = registry.resolve_task(
        str(Path(__file__).resolve().parents[1] / "docs/examples/my_task.py") + ":make_task"
    )
    full, limited = factory(n_examples=5), factory(n_examples=5, limit=2)
    assert list(limited.metadata()) == list(full.metadata()) and len(full.metadata()) == 5
    assert limited.info() == full.info()
    assert [ex.id for ex in limited.examples()] == list(full.metadata())[:2]


# ------------------------------------------------------------------- through the CLI


def _show(run_dir: Path, capsys) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["show", str(run_dir), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_limited_run_is_partial_of_the_whole_split(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "--task", "shapes-ranked", "--scorer", "dummy", "--limit", "4", "--out", str(out), "-q"]) == 0
    [run_dir] = out.glob("shapes-ranked/dummy/*")
    shown = _show(run_dir, capsys)
    assert shown["n_examples"] == 4 and shown["n_expected"] == 300 and shown["partial"] is True


def test_a_limited_rerun_keeps_every_finished_example(tmp_path, capsys):
    name, kwargs = _fixture_of("captions:")(tmp_path / "data")
    assert not kwargs
    out = tmp_path / "runs"
    assert main(["run", "--task", name, "--scorer", "dummy", "--out", str(out), "-q"]) == 0
    [run_dir] = [p for p in out.glob("*/*/*") if (p / "run.json").exists()]
    full = json.loads((run_dir / "result.json").read_text())
    assert full["n_examples"] == full["n_expected"] == 3 and full["partial"] is False
    assert main(["run", "--task", name, "--scorer", "dummy", "--limit", "1", "--out", str(out), "-q"]) == 0
    assert [p for p in out.glob("*/*/*") if (p / "run.json").exists()] == [run_dir]  # the same run
    again = json.loads((run_dir / "result.json").read_text())
    assert again["n_examples"] == 3 and again["n_expected"] == 3 and again["partial"] is False
    assert set(again["per_example"]) == set(full["per_example"])
    assert again["metrics"] == full["metrics"]
