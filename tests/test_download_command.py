"""issue 22.7: one download command everywhere, the one the installed huggingface_hub ships
(``hf download``, ``hf auth login``), checked by running its ``--help``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HF = "import sys; from huggingface_hub.cli.hf import main; sys.argv[0] = 'hf'; sys.exit(main())"
# owned by another change in flight (tasks/ is i20's); the lead folds the same wording in there
NOT_YET: set[str] = set()


def hf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HF, *args], capture_output=True, text=True, timeout=120)


def test_the_installed_hub_ships_hf_download_and_hf_auth_login():
    download = hf("download", "--help")
    assert download.returncode == 0 and "--repo-type" in download.stdout and "--local-dir" in download.stdout
    login = hf("auth", "login", "--help")
    assert login.returncode == 0 and "login" in login.stdout.lower()


def test_no_message_or_page_names_the_retired_huggingface_cli():
    # the project's own files: what git tracks (no venvs, build/ or other installed copies)
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        files = [ROOT / p for p in listed]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the package folders
        files = [p for d in ("winoground_eval", "tasks", "baselines", "docs", "tests") for p in (ROOT / d).rglob("*")]
    files = [p for p in files if p.suffix in (".py", ".md") and p.is_file()]
    said = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in NOT_YET or rel == "tests/test_download_command.py":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        said += [f"{rel}: {m.group(0)}" for m in re.finditer(r"huggingface-cli \w+", text)]
    assert not said, said
