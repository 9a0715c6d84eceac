"""The scripts outside the package (benchmarks/, training/) import names that exist.

They run rarely and mostly by hand, so a moved or renamed module (a layout change) would
otherwise break them silently: every ``from winoground_eval... import NAME`` in them, at
module level or inside a function, must name a module that imports and an attribute it has."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for folder in ("benchmarks", "training") for p in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None for a plain ``import module``) of the package's imports."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("winoground_eval"):
            out += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, None) for a in node.names if a.name.startswith("winoground_eval")]
    return out


def test_the_scripts_are_found():
    assert any(p.name == "bench_plan.py" for p in SCRIPTS) and len(SCRIPTS) >= 5


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_package_import_of_a_script_resolves(path):
    broken = []
    for line, module, name in _imports(path):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            broken.append(f"{path.name}:{line}: {module} ({exc})")
            continue
        if name is not None and name != "*" and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")  # a submodule
            except ImportError:
                broken.append(f"{path.name}:{line}: {module} has no {name}")
    assert not broken, broken
