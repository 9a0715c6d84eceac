"""A user file's scorer (`--scorer PATH.py:NAME`) records the ``{kind, version}`` header every
built-in scorer's config starts with, next to where its code came from, and keeps the run id
it had before the header (core/scorerconfig.py LEGACY_HEADERS)."""

from __future__ import annotations

import json

from winoground_eval.cli.main import main
from winoground_eval.core import registry
from winoground_eval.core.env import stable_hash
from winoground_eval.core.runstore import run_id_of
from winoground_eval.core.scorerconfig import kind_of

SCORER_FILE = """
import numpy as np

class Mean:
    def __init__(self, sharpness, header):
        self.sharpness, self.header = sharpness, header

    def score(self, images, captions):
        means = np.array([np.asarray(im, dtype=float).mean() for im in images])
        return self.sharpness * np.outer(means, [len(c) for c in captions]) / 1000.0

    def config(self):
        return {**self.header, "name": "mean", "sharpness": self.sharpness}

def plain(*, sharpness: float = 1.0):
    return Mean(sharpness, {})

def own_header(*, sharpness: float = 1.0):
    return Mean(sharpness, {"kind": "mean_brightness", "version": 3})
"""


def _file(tmp_path):
    path = tmp_path / "my_scorer.py"
    path.write_text(SCORER_FILE)
    return path


def test_a_user_scorer_config_starts_with_kind_and_version(tmp_path):
    path = _file(tmp_path)
    config = registry.resolve_scorer(f"{path}:plain")(sharpness=2.0).config()
    assert list(config)[:2] == ["kind", "version"]
    assert config["kind"] == "user_file" and config["version"] == 1 and kind_of(config) == "user_file"
    assert config["user_file"] == str(path.resolve()) and config["factory"] == "plain" and config["sharpness"] == 2.0
    # a config() that names its own kind and version keeps them
    own = registry.resolve_scorer(f"{path}:own_header")().config()
    assert list(own)[:2] == ["kind", "version"] and (own["kind"], own["version"]) == ("mean_brightness", 3)
    assert own["user_file"] == str(path.resolve()) and own["factory"] == "own_header"


def test_a_user_scorer_run_records_the_header_and_keeps_its_run_id(tmp_path):
    path = _file(tmp_path)
    out = tmp_path / "runs"
    argv = ["run", "--task", "shapes", "--scorer", f"{path}:plain", "-t", "limit=2", "--out", str(out), "-q"]
    assert main(argv) == 0
    [run_dir] = out.glob("shapes/*/*")
    run = json.loads((run_dir / "run.json").read_text())
    config = run["scorer"]["config"]
    assert (config["kind"], config["version"]) == ("user_file", 1)
    # the id is the one the same run had before the header: its config without kind and version
    before = {k: v for k, v in config.items() if k not in ("kind", "version")}
    identity = {"task": run["task"], "scorer": {"name": run["scorer"]["name"], "config": before}}
    assert run["run_id"] == stable_hash(identity) == run_id_of({**identity, "scorer": run["scorer"]})
    # a scorer with its own header hashes it as written
    assert main([*argv[:4], f"{path}:own_header", *argv[5:]]) == 0
    [own_dir] = [d for d in out.glob("shapes/*/*") if d != run_dir]
    own = json.loads((own_dir / "run.json").read_text())
    assert own["run_id"] == stable_hash({"task": own["task"], "scorer": own["scorer"]})
