"""Arrows point inward: results modules name no task, import no task module, and import
each other without circles (checked on the source, so no import side effect counts)."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "winoground_eval"
RESULTS = ["runs", "export", "baseline", "compare", "report", "results_cli", "timestep_select", "taskfinder",
           "scoreimport", "console", "runner", "metrics", "contracts", "cli"]


def imports_of(module: str) -> set[str]:
    """Every winoground_eval module ``module`` imports (at any depth of its code), dotted from the package."""
    tree = ast.parse((PKG / f"{module.replace('.', '/')}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = node.module or ""
                out.update({base} if base else {a.name for a in node.names})
                if base:
                    out.update(f"{base}.{a.name}" for a in node.names)
            elif (node.module or "").startswith("winoground_eval."):
                out.add(node.module.removeprefix("winoground_eval."))
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("winoground_eval.") for a in node.names if a.name.startswith("winoground_eval."))
    return out


@pytest.mark.parametrize("module", RESULTS)
def test_results_modules_import_no_task(module):
    assert not [m for m in imports_of(module) if m == "tasks" or m.startswith("tasks.")]
    source = (PKG / f"{module}.py").read_text()
    assert '"winoground"' not in source and "'winoground'" not in source and '"shapes"' not in source


def test_no_circles_between_command_modules():
    assert "cli" not in imports_of("results_cli") and "cli" not in imports_of("timestep_select")
    assert not {"export", "leaderboard", "baseline"} & imports_of("compare")
    assert not {"compare", "baseline"} & imports_of("export")
    assert not {"diffusion.scorer", "diffusion"} & imports_of("report")
    assert "diffusion.scorer" not in imports_of("timestep_select")
    assert not (PKG / "leaderboard.py").exists()
