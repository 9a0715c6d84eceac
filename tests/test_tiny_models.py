"""Guards on the shipped tiny trained models: they load through the ordinary code paths and
their text scores on the shapes test split stay far above chance (25%).

Random-weight tests cannot see a sign, caption-pairing or noise-sharing bug in a scorer:
every score is noise either way. These models' decisions mean something, so such a bug
drops them to chance and these tests fail. Thresholds sit well below the measured values
(README) and well above chance.
"""

from __future__ import annotations

import json

import pytest

from winoground_eval.baselines.tiny_models import TINY_CLIP_ARCH, tiny_clip, tiny_diffusion, weights_dir
from winoground_eval.core.contracts import evaluate_examples
from winoground_eval.tasks.shapes import ShapesTask

N_EXAMPLES = 48  # the first 48 test examples: 16 of each kind


def _metrics(scorer, n: int = N_EXAMPLES) -> dict:
    task = ShapesTask(split="test", limit=n)
    examples = list(task.examples())
    scored = evaluate_examples(scorer, examples)
    return task.metrics({ex.id: s.scores for ex, s in zip(examples, scored)})


def test_shipped_weights_are_small_safetensors():
    total = 0
    for name in ("tiny-diffusion", "tiny-clip"):
        root = weights_dir(name)
        files = [p for p in root.rglob("*") if p.is_file()]
        assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt")], "weights must be safetensors"
        assert [p for p in files if p.suffix == ".safetensors"]
        total += sum(p.stat().st_size for p in files)
    assert total < 20 * 2**20


def test_tiny_diffusion_is_a_plain_diffusers_folder():
    root = weights_dir("tiny-diffusion")
    index = json.loads((root / "model_index.json").read_text())
    assert index["vae"] == [None, None] and index["unet"] == ["diffusers", "UNet2DConditionModel"]
    scorer = tiny_diffusion(n_timesteps=2)
    config = scorer.config()
    assert config["components"]["vae"] is None and config["resolution"] == 32
    # the shipped folder is recorded by its place in the package, not this checkout's path,
    # so that the demo's run ids are the same in every clone; the fingerprint pins the content
    assert config["model"] == "winoground_eval/weights/tiny-diffusion" and config["source"] == "local"
    assert config["fingerprint"] == tiny_diffusion(n_timesteps=2, t_range=None).config()["fingerprint"]


def test_tiny_diffusion_takes_every_diffusers_option_but_revision():
    import dataclasses

    from winoground_eval.core.overrides import options_of
    from winoground_eval.diffusion.options import DiffusionOptions
    from winoground_eval.diffusion.presets import from_diffusers_spec

    # every option of the Stable Diffusion family; diffusers:ID takes those of every family
    sd_options = {f.name for f in dataclasses.fields(DiffusionOptions)}
    assert set(options_of(tiny_diffusion)) == sd_options
    assert sd_options <= set(options_of(from_diffusers_spec)) - {"spec", "revision"}
    scorer = tiny_diffusion(stopping="sequential", n_timesteps=64, min_timesteps=8, round_size=8)
    assert scorer.config()["stopping"]["rule"] == "sequential"
    ex = next(iter(ShapesTask(split="test", limit=1).examples()))
    scored = scorer.evaluate([ex])[0]
    assert 0 < scored.info["unet_calls"] <= 4 * 64


@pytest.mark.slow  # the shipped tiny-diffusion on many examples (a guard of trained weights)
def test_tiny_diffusion_text_score_is_far_above_chance():
    m = _metrics(tiny_diffusion(n_timesteps=6))
    assert m["metrics"]["text"] >= 0.5, m["metrics"]  # measured: 0.75 (Object 0.94, Relation 0.31, Both 1.00)


def test_tiny_clip_text_score_is_far_above_chance():
    scorer = tiny_clip()
    assert scorer.config()["arch"] == TINY_CLIP_ARCH
    m = _metrics(scorer, n=150)
    assert m["metrics"]["text"] >= 0.8, m["metrics"]  # measured: 1.00 on the whole test split


@pytest.mark.slow  # the shipped tiny-diffusion on many examples (a guard of trained weights)
def test_swapping_the_captions_swaps_the_decision():
    """A pairing bug (scores attached to the wrong caption) would not survive this."""
    task = ShapesTask(split="test", limit=6)
    for scorer in (tiny_clip(), tiny_diffusion(n_timesteps=4)):
        for ex in task.examples():
            s = scorer.score(ex.images, ex.captions)
            s_swapped = scorer.score(ex.images, ex.captions[::-1])
            assert s_swapped == pytest.approx(s[:, ::-1], rel=1e-5, abs=1e-7)


def test_run_configs_do_not_depend_on_where_the_weights_are(tmp_path, monkeypatch):
    """Two copies of the package weights in two folders give the same configs (issue 15)."""
    import shutil

    from winoground_eval.baselines import tiny_models

    configs = []
    for copy in ("a", "b"):
        root = tmp_path / copy / "winoground_eval" / "weights"
        for name in ("tiny-clip", "tiny-diffusion"):
            shutil.copytree(weights_dir(name), root / name)
        monkeypatch.setattr(tiny_models, "weights_dir", lambda name, root=root: root / name)
        clip_config = tiny_clip(device="cpu").config()
        diffusion_config = tiny_diffusion(device="cpu").config()
        assert str(tmp_path) not in json.dumps(clip_config) + json.dumps(diffusion_config)
        configs.append((clip_config, diffusion_config))
    assert configs[0] == configs[1]
    clip_config = configs[0][0]
    assert clip_config["weights"]["checkpoint"] == f"winoground_eval/weights/tiny-clip/{TINY_CLIP_ARCH}.safetensors"
    assert len(clip_config["weights"]["sha256"]) == 64
