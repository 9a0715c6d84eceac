"""The README is a guide (issue 22): short, its layout section true to the tree, its task and
scorer tables complete, every link it and docs/ hold pointing to a file that exists, and
docs/index.md naming every page. Its quick start is run by tests/test_api.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from winoground_eval.core import registry

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    nxt = README.find("\n## ", start + 1)
    return README[start : nxt if nxt > 0 else None]


def test_readme_is_a_guide_of_at_most_250_lines_opening_with_the_two_commands():
    assert len(README.splitlines()) <= 250
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S).group(1)
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "demo"], ["make", "test"]]


def test_layout_lists_every_top_level_entry_and_only_real_paths():
    block = re.search(r"<!-- layout: tested.*?```\n(.*?)```", README, flags=re.S).group(1)
    listed = [line.split()[0] for line in block.splitlines() if line.strip()]
    for path in listed:
        assert (ROOT / path).exists(), f"README layout names {path}, which does not exist"
    try:
        tracked = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        top = {p.split("/")[0] + ("/" if "/" in p else "") for p in tracked}
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the folder itself
        top = {p.name + ("/" if p.is_dir() else "") for p in ROOT.iterdir() if not p.name.startswith((".venv", ".git"))}
    missing = sorted(top - {p if p.endswith("/") or "/" not in p else p.split("/")[0] + "/" for p in listed})
    assert not missing, f"README layout leaves out {missing}"


def test_task_and_scorer_tables_name_every_registered_one():
    tasks, scorers = _section("Tasks"), _section("Scorers")
    for name in [
        *registry.TASKS,
        *registry.SUITES,
        *(p + "FILE" if p == "captions:" else p + "DIR" for p in registry.TASK_PREFIXES),
    ]:
        assert f"`{name}`" in tasks, f"README's task table lacks {name}"
    for name in registry.SCORERS:
        assert f"`{name}`" in scorers, f"README's scorer table lacks {name}"
    for prefix in registry.SCORER_PREFIXES:
        assert f"`{prefix}" in scorers, f"README's scorer table lacks {prefix}..."


def test_every_relative_link_points_to_a_file_and_the_index_names_every_page():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    unlisted = [p.name for p in (ROOT / "docs").glob("*.md") if p.name != "index.md" and f"]({p.name})" not in index]
    assert not unlisted, f"docs/index.md does not list {unlisted}"
