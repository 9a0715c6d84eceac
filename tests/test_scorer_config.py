"""Every scorer config starts with the {kind, version} header; run ids of configs recorded
before the header keep their value; per-image noise is an option of every family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from winoground_eval.core.env import stable_hash
from winoground_eval.core.registry import resolve_scorer
from winoground_eval.core.runstore import run_id_of, run_identity
from winoground_eval.core.scorerconfig import identity_config, kind_of

DATA = Path(__file__).parent / "data" / "diffusion_configs.json"
TASK = {"name": "shapes", "version": 1}


def _old_run_id(config: dict) -> str:
    """The run id as computed before the header: a plain hash of the identity."""
    return stable_hash({"task": TASK, "scorer": {"name": "x", "config": config}})


@pytest.mark.parametrize("name", ["dummy", "tiny-clip", "tiny-diffusion", "tiny-dit"])
def test_every_scorer_config_starts_with_kind_and_version(name):
    config = resolve_scorer(name)(**({} if name == "dummy" else {"device": "cpu"})).config()
    assert list(config)[:2] == ["kind", "version"]
    assert isinstance(config["kind"], str) and isinstance(config["version"], int)
    assert kind_of(config) == config["kind"]


def test_sd_run_ids_are_unchanged():
    recorded = json.loads(DATA.read_text())["tiny-diffusion"]  # written before the header existed
    assert "method" in recorded and "kind" not in recorded
    new = resolve_scorer("tiny-diffusion")(device="cpu").config()
    assert new["kind"] == "diffusion_classifier" and "method" not in new
    assert run_id_of(run_identity(TASK, "x", new)) == _old_run_id(recorded)
    assert run_id_of(run_identity(TASK, "x", recorded)) == _old_run_id(recorded)  # an old run.json reopens
    assert kind_of(recorded) == "diffusion_classifier"


def test_dummy_and_clip_run_ids_are_unchanged():
    new = resolve_scorer("dummy")().config()
    old = {"name": "dummy", "seed": 0, "method": "sha256-uniform"}
    assert run_id_of(run_identity(TASK, "x", new)) == _old_run_id(old)
    clip = resolve_scorer("tiny-clip")(device="cpu").config()
    legacy = {k: v for k, v in clip.items() if k != "version"}  # recorded {"kind": "open_clip", ...} without version
    assert run_id_of(run_identity(TASK, "x", clip)) == _old_run_id(legacy)


def test_other_headers_hash_as_written():
    config = {"kind": "dit", "version": 2, "n_timesteps": 4}
    assert identity_config(config) == config
    assert identity_config({"kind": "diffusion_classifier", "version": 2, "x": 1}) == {
        "kind": "diffusion_classifier",
        "version": 2,
        "x": 1,
    }


def test_per_image_noise():
    from PIL import Image

    from winoground_eval.core.contracts import Example

    rng = np.random.default_rng(0)
    a, b = (Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2))
    captions = ["a red circle left of a blue square", "a blue circle left of a red square"]
    shared = resolve_scorer("tiny-diffusion")(device="cpu", n_timesteps=4)
    own = resolve_scorer("tiny-diffusion")(device="cpu", n_timesteps=4, noise="per_image")
    assert "noise" not in shared.config() and own.config()["noise"] == "per_image"  # the default keeps run ids
    both = own.evaluate([Example("ab", (a, b), tuple(captions))])[0].arrays["errors"]
    alone = own.evaluate([Example("b", (b,), tuple(captions))])[0].arrays["errors"]
    # an image's noise is its own: the same in any example, whatever else is in it
    np.testing.assert_allclose(both[1], alone[0], rtol=1e-5, atol=1e-7)
    # and not the shared bank's: the errors differ from the shared noise's
    assert not np.allclose(shared.errors([b], captions)[0], alone[0])
    # two equal images get equal noise (seeded by content)
    twin = Image.fromarray(np.asarray(b).copy())
    pair = own.errors([b, twin], captions)
    np.testing.assert_array_equal(pair[0], pair[1])


def test_diffusers_spec_dispatches_on_the_pipeline_class(tmp_path):
    from winoground_eval.core.errors import ModelLoadError
    from winoground_eval.diffusion.dit import DiTScorer
    from winoground_eval.testing.tiny_sd import write_tiny_dit

    folder = write_tiny_dit(tmp_path / "dit", num_classes=4)
    scorer = resolve_scorer(f"diffusers:{folder}")(device="cpu", n_timesteps=2)
    assert isinstance(scorer, DiTScorer) and scorer.config()["kind"] == "dit"
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "KandinskyPipeline"}))
    with pytest.raises(ModelLoadError, match="KandinskyPipeline") as caught:
        resolve_scorer(f"diffusers:{folder}")(device="cpu")
    assert "DiTPipeline" in str(caught.value) and "StableDiffusionPipeline" in str(caught.value)


def test_clip_paper_presets_default_to_float32():
    """The published CLIP / OpenCLIP baseline numbers are float32; the presets default to it."""
    from winoground_eval.core.overrides import options_of

    for name in ("clip-vit-b32", "clip-vit-l14", "openclip-vit-h14"):
        assert options_of(resolve_scorer(name))["dtype"].default == "float32", name
    assert options_of(resolve_scorer("open_clip:RN50/openai"))["dtype"].default is None  # the policy's: fp16 on CUDA
