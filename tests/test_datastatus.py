"""`wg-eval ls tasks`' data column looks for a Hub dataset where huggingface_hub keeps it:
the library's own cache folder (HF_HUB_CACHE, the legacy HUGGINGFACE_HUB_CACHE, HF_HOME,
with ~ expanded), its own repository folder name, a downloaded snapshot; datasets' Arrow
cache (HF_DATASETS_CACHE) is not a download. Each case runs in a fresh interpreter: the
libraries read these variables when they are imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HF_VARS = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "XDG_CACHE_HOME")
PROBE = (
    "import json; from winoground_eval.core import datastatus as d; "
    "print(json.dumps({'cache': str(d.hub_cache()), 'winoground': d.data_status('winoground')}))"
)


def _probe(tmp_path: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in HF_VARS}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env={**clean, "HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", **env},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _snapshot(cache: Path, repo: str = "facebook/winoground") -> Path:
    """A downloaded snapshot as huggingface_hub lays one out (refs/main -> snapshots/<commit>/)."""
    folder = cache / ("datasets--" + repo.replace("/", "--"))
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "snapshots" / commit / "README.md").write_text("card")
    return folder


def test_hf_home_and_hf_hub_cache_are_honoured(tmp_path):
    _snapshot(tmp_path / "hf-home" / "hub")
    got = _probe(tmp_path, HF_HOME=str(tmp_path / "hf-home"))
    assert got["cache"] == str(tmp_path / "hf-home" / "hub") and "in the HF cache" in got["winoground"]
    # HF_HUB_CACHE wins over HF_HOME: an empty cache there
    got = _probe(tmp_path, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_CACHE=str(tmp_path / "elsewhere"))
    assert got["cache"] == str(tmp_path / "elsewhere") and "gated" in got["winoground"]


def test_legacy_variable_and_home_relative_paths_are_honoured(tmp_path):
    _snapshot(tmp_path / "legacy")
    got = _probe(tmp_path, HUGGINGFACE_HUB_CACHE=str(tmp_path / "legacy"))
    assert got["cache"] == str(tmp_path / "legacy") and "in the HF cache" in got["winoground"]
    _snapshot(tmp_path / "home" / "my-hf" / "hub")
    got = _probe(tmp_path, HF_HOME="~/my-hf")
    assert got["cache"] == str(tmp_path / "home" / "my-hf" / "hub") and "in the HF cache" in got["winoground"]


def test_only_a_downloaded_snapshot_counts(tmp_path):
    cache = tmp_path / "hub"
    blobs = cache / "datasets--facebook--winoground" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "abc.incomplete").write_bytes(b"half")  # an interrupted first download
    got = _probe(tmp_path, HF_HUB_CACHE=str(cache))
    assert "in the HF cache" not in got["winoground"] and "gated" in got["winoground"]
    # datasets' own Arrow cache is not a download of the repository
    arrow = tmp_path / "ds-cache" / "facebook___winoground"
    arrow.mkdir(parents=True)
    got = _probe(tmp_path, HF_HUB_CACHE=str(cache), HF_DATASETS_CACHE=str(tmp_path / "ds-cache"))
    assert "in the HF cache" not in got["winoground"]


def test_ls_tasks_shows_it(tmp_path):
    _snapshot(tmp_path / "hub", "imirandam/BiVLC")
    clean = {k: v for k, v in os.environ.items() if k not in HF_VARS}
    done = subprocess.run(
        [sys.executable, "-m", "winoground_eval", "ls", "tasks", "--json"],
        capture_output=True,
        text=True,
        env={**clean, "HF_HUB_CACHE": str(tmp_path / "hub"), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["bivlc"]["data"].startswith("imirandam/BiVLC: in the HF cache")
    assert rows["winoground"]["data"].startswith("facebook/winoground: Hub, gated")
