"""The lock file every install comes from: exact pins with hashes, covering pyproject.toml.

`make setup` (and so `make demo`, `make test` and CI) installs requirements-lock.txt with
`--require-hashes` and then this package with `--no-deps`, so what a fresh clone installs
is what the lock says, not what is newest on the day. These checks keep the lock honest
after `make lock` or a hand edit of pyproject.toml.
"""

import re

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the lock is written for 3.11
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"


def _lock() -> dict[str, tuple[Version, list[str]]]:
    """``{name: (version, hashes)}`` from the lock's requirement blocks."""
    text = LOCK.read_text()
    out: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = block.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        assert "==" in head, f"requirements-lock.txt: {head!r} is not pinned with =="
        name, version = head.split("==")
        out[canonicalize_name(name)] = (Version(version.strip()), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return out


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    reqs += [
        Requirement(line)
        for line in (ROOT / "requirements-lock.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return reqs


def test_every_locked_package_is_pinned_with_hashes():
    lock = _lock()
    assert len(lock) > 20
    for name, (_, hashes) in lock.items():
        assert hashes, f"{name} has no --hash in requirements-lock.txt; rerun `make lock`"


def test_the_lock_covers_and_satisfies_pyproject():
    lock = _lock()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in lock, f"{req} (pyproject.toml) is missing from requirements-lock.txt; rerun `make lock`"
        version = lock[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements-lock.txt pins {name}=={version}, outside pyproject.toml's {req}; rerun `make lock`"
        )


def test_setup_installs_from_the_lock_with_hashes():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in makefile
    assert "--no-deps" in makefile and "LOCK := requirements-lock.txt" in makefile
