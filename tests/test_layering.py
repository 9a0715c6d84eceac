"""Arrows point inward: a generic check of the package's import graph, read from the source.

Every ``.py`` file of the folders pyproject.toml maps into ``winoground_eval`` (the package,
and ``tasks/`` and ``baselines/``, which install as ``winoground_eval.tasks`` and
``winoground_eval.baselines``) is parsed with ``ast``; nothing is imported, so no import
side effect counts. An edge a -> b is an import of b in a: absolute or relative, at module
level or inside a function, but not under ``if TYPE_CHECKING:`` (never executed) and not
of one of a's own ancestor packages (Python initialises those first anyway). A plugin
named by a ``"module:attr"`` string in the registry is no edge: that is how the core
reaches plugins without importing them.

Each module belongs to one layer, decided in ONE place, :func:`layer_of`:

- ``plugins``: tasks, baselines, the diffusion scorers (``winoground_eval.tasks.*``,
  ``winoground_eval.baselines.*``, ``winoground_eval.diffusion.*``);
- ``cli``: the command line (``cli``, every ``*_cli`` command module, ``console``, ``demo``,
  ``__main__``), the only code that talks to the terminal;
- ``results``: reading finished runs (show/export/compare/report/choose-timesteps/repair work);
- ``core``: everything else (contracts, registry, metrics, runner, run store, request, execute...).

Once the modules move into subpackages (``winoground_eval.core.*``, ``winoground_eval.results.*``,
``winoground_eval.cli.main.*``), the subpackage's name decides and :data:`FLAT` is no longer
consulted for them: the test holds for both layouts unchanged.

The rules: (a) no import cycle. Module-level imports must form no cycle at all; counting
function-local (lazy) imports too, there must be none either (a lazy import that closes a
loop still ties two modules together), reported by a separate test so that a failure says
which kind it is. (b) core imports no plugin and no CLI module; results import no plugin and
no CLI module; nothing outside the CLI imports a CLI module. (c) only CLI modules import
``rich`` or call ``print`` (a module's own ``if __name__ == "__main__":`` script block, e.g. a
manifest writer, may print). Rule (b) counts lazy imports too.
"""

from __future__ import annotations

import ast
import sys
from functools import lru_cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "winoground_eval"

# --- the layers: the one place that says which module is which ------------------------------
# A subpackage (the first name after the package) that decides the layer of all it holds.
SUBPACKAGE_LAYERS = {
    "core": "core",
    "results": "results",
    "cli": "cli",
    "tasks": "plugins",
    "baselines": "plugins",
    "diffusion": "plugins",
    # test, benchmark and training scaffolding (tiny models built in code): it builds plugin
    # models, so it sits with the plugins; no core module may import it
    "testing": "plugins",
}
# Modules whose layer is not their folder's: the diffusion scorer's numpy-only timestep math
# (grid, sequential stopping, the stopping rule) imports nothing but errors, and results
# commands and timestep plans use it; it is core (a layout move should put it there).
OWN_LAYER = {"diffusion.grid": "core", "diffusion.sequential": "core", "diffusion.stopping_rule": "core"}
# Until the move into subpackages: flat module names (after ``winoground_eval.``) by layer.
FLAT = {
    "cli": {"console", "demo", "__main__"},  # and every *_cli module
    "results": {
        "runs",
        "export",
        "baseline",
        "compare",
        "report",
        "timestep_select",
        "taskfinder",
        "scoreimport",
        "repair",
        "calibration_run",
    },
}
LAYERS = ("core", "results", "cli", "plugins")


def layer_of(module: str) -> str:
    """``core``, ``results``, ``cli`` or ``plugins`` for a dotted module name."""
    if module == PACKAGE:
        return "core"  # the package's __init__: the public Python API
    rel = module.removeprefix(PACKAGE + ".")
    head = rel.split(".")[0]
    if rel in OWN_LAYER:
        return OWN_LAYER[rel]
    if head in SUBPACKAGE_LAYERS:
        return SUBPACKAGE_LAYERS[head]
    if head.endswith("_cli"):
        return "cli"
    for layer, names in FLAT.items():
        if head in names:
            return layer
    return "core"


# What each layer may import (besides itself): arrows point inward.
ALLOWED = {
    "core": {"core"},
    "results": {"results", "core"},
    "plugins": {"plugins", "core"},
    "cli": {"cli", "results", "core", "plugins"},
}


# --- the graph -------------------------------------------------------------------------------
def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of every mapped folder (the most specific mapping wins)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    roots = {name: ROOT / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()}
    found: dict[str, Path] = {}
    for package, folder in sorted(roots.items(), key=lambda kv: len(kv[0])):
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if any(p.startswith(".") or p == "__pycache__" for p in parts):
                continue
            name = ".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts))
            found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_script_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``: a module run as a script (a manifest writer) is a command line of its own."""
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _statements(tree: ast.Module) -> list[tuple[ast.AST, bool]]:
    """(import statement or print call, whether it runs at import time), except under ``if TYPE_CHECKING:``;
    a print in a module's script block (``if __name__ == "__main__":``) is not counted."""
    out: list[tuple[ast.AST, bool]] = []

    def visit(node: ast.AST, top: bool, script: bool = False) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append((node, top))
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" and not script:
            out.append((node, top))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, top)
            return
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner, script or _is_script_block(node))

    visit(tree, True)
    return out


@lru_cache(maxsize=None)
def graph() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]], dict[str, int]]:
    """(module-level edges, every edge, third-party top names each module imports, print calls per module)."""
    mods = modules()
    top: dict[str, set[str]] = {m: set() for m in mods}
    every: dict[str, set[str]] = {m: set() for m in mods}
    external: dict[str, set[str]] = {m: set() for m in mods}
    prints: dict[str, int] = {m: 0 for m in mods}

    def target(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def add(t: str | None, at_top: bool) -> None:
            if t and t != name and not name.startswith(t + "."):  # not an ancestor package
                every[name].add(t)
                if at_top:
                    top[name].add(t)

        for node, at_top in _statements(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                prints[name] += 1
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        add(target(alias.name), at_top)
                    else:
                        external[name].add(alias.name.split(".")[0])
            else:
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{node.module}" if node.module else anchor
                else:
                    base = node.module or ""
                if base.split(".")[0] != PACKAGE:
                    external[name].add(base.split(".")[0])
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    add(sub if sub in mods else target(base), at_top)
    return top, every, external, prints


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted (scipy's csgraph)."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    names = sorted(set(edges) | {t for targets in edges.values() for t in targets})
    at = {name: i for i, name in enumerate(names)}
    rows = [at[a] for a, targets in edges.items() for b in targets]
    cols = [at[b] for targets in edges.values() for b in targets]
    graph = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, label = connected_components(graph, directed=True, connection="strong")
    groups: dict[int, list[str]] = {}
    for name, component in zip(names, label):
        groups.setdefault(int(component), []).append(name)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".")


# --- the checks -------------------------------------------------------------------------------
def _find(last: str) -> str:
    """The one module whose name ends in ``last`` (wherever a layout move puts it)."""
    (found,) = [m for m in modules() if m == f"{PACKAGE}.{last}" or m.endswith(f".{last}")]
    return found


def test_the_walk_sees_the_whole_tree_and_every_layer():
    mods = modules()
    assert len(mods) > 60
    assert {layer_of(m) for m in mods} == set(LAYERS)
    assert layer_of(_find("execute")) == "core" and layer_of(_find("cli.run")) == "cli"
    assert layer_of(_find("tasks.winoground")) == layer_of(_find("baselines.clip")) == "plugins"
    top, every, external, prints = graph()
    # relative, absolute and function-local imports are edges; TYPE_CHECKING-only ones are not
    assert _find("diffusion.families.base") in top[_find("diffusion.conditioning")]
    assert _find("registry") in every[_find("diffusion.scorer")]  # load_prefilter's lazy import
    assert _find("registry") not in top[_find("diffusion.scorer")]
    assert _find("diffusion.scorer") not in every[_find("diffusion.evaluator")]
    assert _find("execute") in top[_find("cli.run")] or _find("execute") in every[_find("cli.run")]
    assert "rich" in external[_find("console")] and prints[_find("console")] >= 1


def test_every_module_of_the_package_sits_in_a_subpackage():
    """The layout shows the architecture: apart from the public API (``__init__``) and
    ``__main__``, every module of ``winoground_eval`` lives in a subpackage that names its
    layer. A new flat module fails here: put it in core/, results/ or cli/ (docs/architecture.md)."""
    flat = sorted(
        m
        for m in modules()
        if m.startswith(PACKAGE + ".")
        and m.count(".") == 1
        and m.split(".")[1] not in SUBPACKAGE_LAYERS
        and m.split(".")[1] not in {"__main__", "data_manifests", "schemas", "report_assets", "weights"}
    )
    assert not flat, f"modules outside the layer subpackages: {flat}"


def test_the_layers_work_for_the_flat_names_and_for_subpackages():
    for flat, moved, layer in [
        ("runner", "core.runner", "core"),
        ("export", "results.export", "results"),
        ("repair", "results.repair", "results"),
        ("run_cli", "cli.run", "cli"),
        ("console", "cli.console", "cli"),
        ("tasks.aro", "tasks.aro", "plugins"),
        ("diffusion.scorer", "diffusion.scorer", "plugins"),
    ]:
        assert layer_of(f"{PACKAGE}.{flat}") == layer_of(f"{PACKAGE}.{moved}") == layer, flat


def test_the_checks_catch_what_they_forbid():
    """The detector finds a cycle; a results module importing the CLI is a violation."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert _violations({f"{PACKAGE}.repair": {f"{PACKAGE}.cli"}, f"{PACKAGE}.cli": {f"{PACKAGE}.repair"}}) == [
        "repair (results) imports cli (cli)"
    ]


def test_no_import_cycle_at_module_level():
    top, _, _, _ = graph()
    found = cycles(top)
    assert not found, "import cycles (module-level imports): " + "; ".join(" <-> ".join(map(_short, c)) for c in found)


def test_no_import_cycle_counting_lazy_imports():
    """A function-local import that closes a loop is a cycle too (the two cannot be moved apart)."""
    _, every, _, _ = graph()
    found = cycles(every)
    assert not found, "import cycles (counting function-local imports): " + "; ".join(
        " <-> ".join(map(_short, c)) for c in found
    )


def _violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in sorted(edges.items()):
        mine = layer_of(module)
        for t in sorted(targets):
            theirs = layer_of(t)
            if theirs not in ALLOWED[mine]:
                out.append(f"{_short(module)} ({mine}) imports {_short(t)} ({theirs})")
    return out


def test_arrows_point_inward():
    """Core imports no plugin and no CLI module; results neither; only the CLI imports the CLI
    (lazy imports count: they tie the modules together all the same)."""
    _, every, _, _ = graph()
    bad = _violations(every)
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_only_the_cli_talks_to_the_terminal():
    """Library code never prints: only CLI modules import rich or call print()."""
    _, _, external, prints = graph()
    bad = [f"{_short(m)} imports rich" for m, ext in sorted(external.items()) if "rich" in ext and layer_of(m) != "cli"]
    bad += [f"{_short(m)} calls print() {n} time(s)" for m, n in sorted(prints.items()) if n and layer_of(m) != "cli"]
    assert not bad, "\n".join(bad)


def test_results_modules_name_no_task():
    """A results module works from what a run records; it never names a registered task."""
    sys.path.insert(0, str(ROOT))
    from winoground_eval.core import registry

    names = set(registry.TASKS)
    bad = []
    for module, path in modules().items():
        if layer_of(module) != "results":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                bad.append(f"{_short(module)}:{node.lineno} names the task {node.value!r}")
    assert not bad, "\n".join(bad)
