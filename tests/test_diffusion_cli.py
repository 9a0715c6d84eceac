"""`wg-eval run --task winoground --scorer diffusers:<tiny model>` end to end, interrupted and resumed."""

import json

import numpy as np
import pytest

from winoground_eval.cli.main import main
from winoground_eval.diffusion import DiffusionScorer, scores_from_errors

# a diffusion run through the CLI, interrupted and resumed (test_family_strategies' sd-plain case does so fast)
pytestmark = pytest.mark.slow


def _run_dir(out):
    [run_dir] = [p for p in out.glob("winoground/*/*") if (p / "run.json").exists()]
    return run_dir


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "scores.jsonl").read_text().splitlines()]


def test_run_and_resume_after_interruption(sample_dir, tmp_path, monkeypatch, capsys, tiny_sd):
    model = tiny_sd(seed=0)
    common = ["run", "--task", "winoground", "--scorer", f"diffusers:{model}", "--data-dir", str(sample_dir), "-q"]
    options = ["-o", "n_timesteps=4", "-o", "normalize=uncond", "-o", "device=cpu", "-o", "batch_size=6"]
    ref_out, out = tmp_path / "ref", tmp_path / "runs"
    assert main([*common, "--out", str(ref_out), *options]) == 0
    ref_dir = _run_dir(ref_out)
    run = json.loads((ref_dir / "run.json").read_text())
    config = run["scorer"]["config"]
    assert config["n_timesteps"] == 4 and config["normalize"] == "uncond" and config["source"] == "local"
    assert "batch_size" not in config and "device" not in config

    # interrupted (as by Ctrl-C) while scoring the third example
    original = DiffusionScorer.evaluate
    calls = {"n": 0}

    def interrupting(self, examples):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return original(self, examples)

    monkeypatch.setattr(DiffusionScorer, "evaluate", interrupting)
    assert main([*common, "--out", str(out), *options]) == 130
    run_dir = _run_dir(out)
    assert run_dir.name == ref_dir.name  # same settings, same run id
    assert [line["id"] for line in _lines(run_dir)] == ["0", "1"]
    monkeypatch.setattr(DiffusionScorer, "evaluate", original)

    # the same command resumes and finishes the run
    assert main([*common, "--out", str(out), *options]) == 0
    lines, ref_lines = _lines(run_dir), _lines(ref_dir)
    assert [line["id"] for line in lines] == [str(i) for i in range(6)]
    for line, ref in zip(lines, ref_lines):
        assert line["scores"] == ref["scores"]  # per-example batches: bit-identical after a resume
        assert line["info"]["unet_calls"] == 2 * 3 * 4  # 2 images x (2 captions + empty) x 4 timesteps
        with np.load(run_dir / line["arrays"], allow_pickle=False) as npz:
            assert npz["errors"].shape == (2, 2, 4) and npz["errors"].dtype == np.float32
            assert npz["uncond_errors"].shape == (2, 4)
            np.testing.assert_allclose(scores_from_errors(npz["errors"], npz["uncond_errors"]), line["scores"])
    result = json.loads((run_dir / "result.json").read_text())
    ref_result = json.loads((ref_dir / "result.json").read_text())
    assert result["partial"] is False and result["n_examples"] == 6
    assert result["metrics"] == ref_result["metrics"]
    assert result["compute"]["unet_calls_total"] == 6 * 24
