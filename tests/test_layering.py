"""Arrows point inward (docs/architecture.md), checked on the source (no import side effect counts).

The layers, from the inside out: ``winoground_eval.core`` (contracts, registry, metrics, runner,
run store) imports only itself; the plugins (``winoground_eval.diffusion``, ``.tasks``,
``.baselines``) import the core and each other; ``winoground_eval.results`` (the commands that
read finished runs) imports the core, the plugins and itself; ``winoground_eval.cli`` imports
anything. Every module of the namespace sits in one layer. The edges are those of
tests/test_import_cycles.py (lazy imports inside functions count, ``TYPE_CHECKING`` ones do not).
"""

from __future__ import annotations

import functools

import pytest
import test_import_cycles

import_graph = functools.cache(test_import_cycles.import_graph)  # parsed once for every test here
modules = functools.cache(test_import_cycles.modules)

PLUGINS = ("winoground_eval.diffusion", "winoground_eval.tasks", "winoground_eval.baselines")
DATA = (
    "winoground_eval.schemas",
    "winoground_eval.report_assets",
    "winoground_eval.weights",
    "winoground_eval.data_manifests",
)
TOP = ("winoground_eval", "winoground_eval.__main__")  # the public API re-exports; `python -m winoground_eval`

# layer -> the layers it may import
ALLOWED = {
    "core": {"core"},
    "plugins": {"core", "plugins"},
    "results": {"core", "plugins", "results"},
    "cli": {"core", "plugins", "results", "cli"},
    "top": {"core", "plugins", "results", "cli", "top"},
    "data": set(),
}

# Arrows that point outward today, each with the reason it is still there. A results module's
# `cmd_*` function prints through the CLI's console (a lazy import inside the function): the
# command-line half of these modules belongs in winoground_eval.cli.
KNOWN_OUTWARD = {
    ("winoground_eval.repair", "winoground_eval.console"),
    ("winoground_eval.timestep_select", "winoground_eval.console"),
    ("winoground_eval.calibrate_cli", "winoground_eval.console"),
}

# Results modules that must not name a task (what a results command does is task-agnostic).
RESULTS = [
    "winoground_eval.runs",
    "winoground_eval.export",
    "winoground_eval.baseline",
    "winoground_eval.compare",
    "winoground_eval.report",
    "winoground_eval.results_cli",
    "winoground_eval.timestep_select",
    "winoground_eval.taskfinder",
    "winoground_eval.scoreimport",
    "winoground_eval.console",
    "winoground_eval.runner",
    "winoground_eval.metrics",
    "winoground_eval.contracts",
    "winoground_eval.cli",
]


def layer(module: str) -> str | None:
    def under(*packages: str) -> bool:
        return any(module == p or module.startswith(p + ".") for p in packages)

    if module in TOP:
        return "top"
    for name in ("core", "results", "cli"):
        if under(f"winoground_eval.{name}"):
            return name
    if under(*PLUGINS):
        return "plugins"
    if under(*DATA):
        return "data"
    return None


def test_every_module_sits_in_a_layer():
    unplaced = sorted(m for m in modules() if layer(m) is None)
    assert not unplaced, f"modules outside core/, results/, cli/ and the plugins (run relayout): {unplaced}"


def test_arrows_point_inward():
    graph = import_graph()
    outward = sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if layer(a) and layer(b) and layer(b) not in ALLOWED[layer(a)] and (a, b) not in KNOWN_OUTWARD
    )
    assert not outward, "imports that point outward: " + "; ".join(
        f"{a} ({layer(a)}) -> {b} ({layer(b)})" for a, b in outward
    )


def test_no_core_module_imports_a_plugin():
    graph = import_graph()
    bad = sorted((a, b) for a, targets in graph.items() if layer(a) == "core" for b in targets if layer(b) == "plugins")
    assert not bad, bad


def test_the_layer_rule_catches_an_outward_arrow():
    assert layer("winoground_eval.core.runner") == "core" and layer("winoground_eval.cli") == "cli"
    assert (
        layer("winoground_eval.tasks.shapes") == "plugins"
        and layer("winoground_eval.diffusion.families.sd") == "plugins"
    )
    assert "results" not in ALLOWED["core"] and "cli" not in ALLOWED["results"] and "plugins" not in ALLOWED["core"]
    assert layer("winoground_eval.somewhere") is None


@pytest.mark.parametrize("module", RESULTS)
def test_results_modules_import_no_task(module):
    assert not [
        m for m in import_graph()[module] if m == "winoground_eval.tasks" or m.startswith("winoground_eval.tasks.")
    ]
    source = modules()[module].read_text()
    assert '"winoground"' not in source and "'winoground'" not in source and '"shapes"' not in source


def test_no_circles_between_command_modules():
    graph = import_graph()
    assert "winoground_eval.cli" not in graph["winoground_eval.results_cli"]
    assert "winoground_eval.cli" not in graph["winoground_eval.timestep_select"]
    assert not {"winoground_eval.export", "winoground_eval.baseline"} & graph["winoground_eval.compare"]
    assert not {"winoground_eval.compare", "winoground_eval.baseline"} & graph["winoground_eval.export"]
    assert not {"winoground_eval.diffusion.scorer", "winoground_eval.diffusion"} & graph["winoground_eval.report"]
    assert "winoground_eval.diffusion.scorer" not in graph["winoground_eval.timestep_select"]
    assert not any(m.rpartition(".")[2] == "leaderboard" for m in modules())
