"""The Python API (`import winoground_eval as wg`) and README's quick start, run as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import winoground_eval as wg
from winoground_eval.cli.main import main
from winoground_eval.core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CAPTIONS = ["a red circle left of a blue square", "a blue square left of a red circle"]


def _draw_pair(directory: Path) -> list[Path]:
    """The two images README's captions describe, drawn by the shapes task's own painter."""
    from winoground_eval.tasks.shapes import Scene, Thing, draw

    red, blue = Thing("red", "circle", None), Thing("blue", "square", None)
    paths = []
    for k, scene in enumerate((Scene(red, "left of", blue), Scene(blue, "left of", red))):
        path = directory / f"img{k}.png"
        draw(scene, (0.5, 0.5, 0.5, 0.5)).save(path)
        paths.append(path)
    return paths


def test_import_is_light():
    code = "import sys, winoground_eval as wg; wg.list_scorers(); print(sorted(m for m in ('torch', 'numpy', 'PIL', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_score_two_images_and_two_captions(tmp_path):
    paths = _draw_pair(tmp_path)
    scorer = wg.load_scorer("tiny-clip")
    scores = wg.score(scorer, paths, CAPTIONS)
    assert scores.shape == (2, 2) and scores.dtype == np.float64 and np.isfinite(scores).all()
    # the shipped model tells these two apart (100% on shapes test): a real check of the plumbing
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]
    # PIL images give the same numbers as paths; a name instead of an object too
    from PIL import Image

    images = [Image.open(p) for p in paths]
    assert np.array_equal(wg.score(scorer, images, CAPTIONS), scores)
    assert np.array_equal(wg.score("tiny-clip", paths, CAPTIONS), scores)


def test_score_rejects_bad_inputs(tmp_path):
    scorer = wg.load_scorer("dummy")
    with pytest.raises(ConfigError, match="does not exist"):
        wg.score(scorer, [tmp_path / "missing.png"], ["a cat"])
    with pytest.raises(ConfigError, match="list of strings"):
        wg.score(scorer, _draw_pair(tmp_path), "a cat")
    with pytest.raises(ConfigError, match="Did you mean"):
        wg.load_scorer("tiny-clp")
    with pytest.raises(ConfigError):
        wg.load_scorer("dummy", sed=1)


def test_evaluate_is_the_cli_run(tmp_path):
    result = wg.evaluate("shapes", "dummy", limit=20, out=tmp_path)
    assert result["n_examples"] == 20 and result["partial"] is True
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == tmp_path / "shapes" / "dummy" and run_dir.name == result["run_id"]
    on_disk = json.loads((run_dir / "result.json").read_text())
    assert on_disk["metrics"] == result["metrics"]
    # the CLI finds the same run directory (same run id) and resumes it to the full split
    assert main(["run", "--task", "shapes", "--scorer", "dummy", "--out", str(tmp_path), "-q"]) == 0
    assert [p.name for p in (tmp_path / "shapes" / "dummy").iterdir()] == [run_dir.name]
    full = json.loads((run_dir / "result.json").read_text())
    assert full["n_examples"] == 300
    # a scorer object from load_scorer, with options, files its run under its registered name
    other = wg.evaluate("shapes", wg.load_scorer("dummy", seed=1), limit=5, out=tmp_path)
    assert Path(other["run_dir"]).parent == tmp_path / "shapes" / "dummy" and other["run_id"] != result["run_id"]
    same = wg.evaluate("shapes", "dummy", options={"seed": 1}, limit=5, out=tmp_path)
    assert same["run_id"] == other["run_id"]


def _readme_snippets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = text.index("<!-- quickstart: tested -->"), text.index("<!-- /quickstart -->")
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)
    assert len(blocks) >= 2, "README's quick start lost its python blocks"
    return blocks


def test_readme_quick_start_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # an empty folder: the quick start makes its own images
    for block in _readme_snippets():
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "text" in printed  # the evaluate snippet prints its metrics
    assert list((tmp_path / "runs" / "shapes" / "tiny-clip").glob("*/result.json"))
