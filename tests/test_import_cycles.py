"""No import cycle among the package's modules, found by walking the whole source tree.

Every ``.py`` file under the folders pyproject.toml maps into the ``winoground_eval``
namespace (``winoground_eval/``, ``tasks/``, ``baselines/``, ...) is parsed; an edge
a -> b is any import of b in a: at module level or inside a function (a lazy import that
closes a loop is still a cycle: the two modules cannot be understood or moved apart),
but not one under ``if TYPE_CHECKING:`` (never executed) nor one of a's own ancestor
packages (Python initialises a package before its submodules). Any strongly connected
component of more than one module is a cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from test_layering import cycles  # one cycle finder for both files

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def package_roots() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {name: ROOT / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of every mapped folder (the most specific mapping wins)."""
    found: dict[str, Path] = {}
    roots = sorted(package_roots().items(), key=lambda kv: len(kv[0]))
    for package, folder in roots:
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


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, at any depth, except under ``if TYPE_CHECKING:``."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}

    def target(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                bases = [alias.name for alias in node.names]
                for base in bases:
                    t = target(base)
                    if t and t != name and not name.startswith(t + "."):
                        graph[name].add(t)
                continue
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                t = sub if sub in mods else target(base)
                if t and t != name and not name.startswith(t + "."):  # not an ancestor package
                    graph[name].add(t)
    return graph


def test_the_walk_sees_the_whole_tree():
    mods = modules()
    assert {
        "winoground_eval.cli.main",
        "winoground_eval.diffusion.scorer",
        "winoground_eval.tasks.classification",
        "winoground_eval.baselines.clip",
    } <= set(mods)
    assert len(mods) > 60
    graph = import_graph()
    # module-level and function-level edges are found; TYPE_CHECKING-only ones are not
    assert "winoground_eval.diffusion.families.base" in graph["winoground_eval.diffusion.conditioning"]
    assert "winoground_eval.core.registry" in graph["winoground_eval.diffusion.scorer"]  # load_prefilter's lazy import
    assert "winoground_eval.diffusion.scorer" not in graph["winoground_eval.diffusion.evaluator"]


def test_the_detector_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (module-level imports): " + "; ".join(" <-> ".join(c) for c in found)


def _code_lines(text: str) -> int:
    """Lines that hold code: not blank, not a comment. The formatter's wrapping of a long call
    over several lines changes this little; a docstring's prose counts (it is in the file)."""
    return sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def test_code_lines_count_what_a_reader_reads():
    assert _code_lines("import os\n\n# a comment\n    x = 1  # trailing\n") == 2


def test_no_file_of_the_scorer_package_over_400_lines():
    """Issue 19: the scorer core and its families stay small modules (400 lines of code each)."""
    package = ROOT / "winoground_eval" / "diffusion"
    long = {str(p.relative_to(ROOT)): n for p in package.rglob("*.py") if (n := _code_lines(p.read_text())) > 400}
    assert not long, long
