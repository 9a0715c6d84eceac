"""CLIP / OpenCLIP scorers on a tiny random-weight open_clip model, and the dummy scorer.

The tiny model goes through the same loading code as real weights: an architecture JSON
registered with -o arch_config and a local safetensors checkpoint, by scorer name.

Scores are compared with a tight tolerance, not bit for bit, wherever the encoders see
different batches (another batch size, another order, another chunk of examples): CPU
matrix kernels pick their blocking by the batch's row count, so float32 embeddings move in
the 7th digit (measured: up to ~4e-7) when the batch changes. Decisions must not move.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from winoground_eval.baselines.clip import OpenClipScorer
from winoground_eval.baselines.dummy import DummyScorer
from winoground_eval.baselines.tiny_clip import TINY_ARCH, write_tiny_clip
from winoground_eval.core import registry
from winoground_eval.core.contracts import Example, Scored, evaluate_examples
from winoground_eval.core.errors import ConfigError, ModelLoadError
from winoground_eval.core.overrides import parse_overrides

CAPTIONS = [
    "a red circle left of a blue square",
    "a blue square left of a red circle",
    "green grass",
    "the sky at night",
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny(tiny_clip):
    """(config_path, checkpoint_path) of the tiny model."""
    return tiny_clip(seed=0)


def load(tiny, **options) -> OpenClipScorer:
    config_path, checkpoint = tiny
    factory = registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{checkpoint}")
    return factory(arch_config=str(config_path), device="cpu", **options)


@pytest.fixture(scope="module")
def scorer(tiny) -> OpenClipScorer:
    return load(tiny, batch_size=3)


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache with nothing in it, so that no weights on this machine are found."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def drawn(seed: int, size=(64, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, size[0] // 2)), int(rng.integers(0, size[1] // 2))
        x1, y1 = x0 + int(rng.integers(4, size[0] // 2)), y0 + int(rng.integers(4, size[1] // 2))
        draw.rectangle([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


IMAGES = [drawn(0), drawn(1, (97, 33)), drawn(2, (40, 120)), drawn(3)]


def assert_same_scores(a: np.ndarray, b: np.ndarray, scale: float) -> None:
    """Equal up to float32 encoder noise (see the module docstring), with the same decisions."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * scale)
    assert (np.argsort(a, axis=0) == np.argsort(b, axis=0)).all()  # which image each caption prefers
    assert (np.argsort(a, axis=1) == np.argsort(b, axis=1)).all()  # which caption each image prefers


# ----------------------------------------------------------------------- tiny model


def test_write_tiny_clip_is_fast_and_seeded(tmp_path):
    start = time.perf_counter()
    config_a, ckpt_a = write_tiny_clip(tmp_path / "a", seed=0)
    assert time.perf_counter() - start < 2.0
    _, ckpt_b = write_tiny_clip(tmp_path / "b", seed=0)
    _, ckpt_c = write_tiny_clip(tmp_path / "c", seed=1)
    assert config_a.name == f"{TINY_ARCH}.json" and ckpt_a.suffix == ".safetensors"
    assert ckpt_a.read_bytes() == ckpt_b.read_bytes() != ckpt_c.read_bytes()


def test_write_tiny_clip_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    write_tiny_clip(tmp_path, seed=5)
    assert torch.equal(torch.rand(3), expected)


# -------------------------------------------------------------------- score contract


def test_score_is_logit_scale_times_cosine_with_the_models_own_preprocessing(scorer):
    """An independent computation: open_clip's transform, encoders, F.normalize, logit_scale.exp()."""
    model = scorer.model
    with torch.no_grad():
        pixels = torch.stack([scorer.preprocess(im) for im in IMAGES])
        assert pixels.shape == (len(IMAGES), 3, 32, 32)  # 64x64, 97x33, 40x120 all resized by the model's transform
        img = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(scorer.tokenizer(CAPTIONS)), dim=-1)
        expected = (model.logit_scale.exp() * img @ txt.T).double().numpy()
    got = scorer.score(IMAGES, CAPTIONS)
    assert got.shape == (len(IMAGES), len(CAPTIONS)) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.isfinite(got).all()


def test_preprocess_is_open_clips_transform(scorer):
    normalize = scorer.preprocess.transforms[-1]
    cfg = scorer.config()["preprocess"]
    assert list(normalize.mean) == cfg["mean"] and list(normalize.std) == cfg["std"]
    assert cfg["size"] == [32, 32] and cfg["interpolation"] == "bicubic"


def test_permuting_captions_permutes_columns(scorer):
    base = scorer.score(IMAGES, CAPTIONS)
    order = [2, 0, 3, 1]
    assert_same_scores(scorer.score(IMAGES, [CAPTIONS[k] for k in order]), base[:, order], scorer.logit_scale)


def test_permuting_images_permutes_rows(scorer):
    base = scorer.score(IMAGES, CAPTIONS)
    order = [3, 1, 0, 2]
    assert_same_scores(scorer.score([IMAGES[k] for k in order], CAPTIONS), base[order], scorer.logit_scale)


def test_duplicate_captions_and_images_give_equal_columns_and_rows(scorer):
    scores = scorer.score([IMAGES[0], IMAGES[1], IMAGES[0]], [CAPTIONS[0], CAPTIONS[1], CAPTIONS[0]])
    assert np.array_equal(scores[:, 0], scores[:, 2])  # encoded once: bit-identical
    assert np.array_equal(scores[0], scores[2])
    copy = IMAGES[0].copy()  # same pixels, another object: encoded again, same up to noise
    assert_same_scores(scorer.score([copy], CAPTIONS), scorer.score([IMAGES[0]], CAPTIONS), scorer.logit_scale)


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_batch_size_does_not_change_scores(tiny, scorer, batch_size):
    other = load(tiny, batch_size=batch_size)
    assert_same_scores(other.score(IMAGES, CAPTIONS), scorer.score(IMAGES, CAPTIONS), scorer.logit_scale)
    assert other.config() == scorer.config()


def test_evaluate_encodes_the_chunk_once_and_equals_per_example_scores(tiny):
    scorer = load(tiny, batch_size=4)
    examples = [
        Example(id="a", images=(IMAGES[0], IMAGES[1]), captions=(CAPTIONS[0], CAPTIONS[1])),
        Example(
            id="b", images=(IMAGES[2], IMAGES[3]), captions=(CAPTIONS[1], CAPTIONS[2])
        ),  # a caption shared with "a"
        Example(
            id="c", images=(IMAGES[3],), captions=(CAPTIONS[3], CAPTIONS[0], CAPTIONS[2])
        ),  # an image shared with "b"
    ]
    calls = {"image": [], "text": []}
    encode_image, encode_text = scorer.model.encode_image, scorer.model.encode_text
    scorer.model.encode_image = lambda x, **kw: calls["image"].append(len(x)) or encode_image(x, **kw)
    scorer.model.encode_text = lambda x, **kw: calls["text"].append(len(x)) or encode_text(x, **kw)
    try:
        results = evaluate_examples(scorer, examples)
    finally:
        del scorer.model.encode_image, scorer.model.encode_text
    assert calls == {"image": [4], "text": [4]}  # 4 distinct images and 4 distinct captions, one batch each
    assert len(results) == 3 and all(isinstance(r, Scored) for r in results)
    for ex, result in zip(examples, results):
        assert_same_scores(result.scores, scorer.score(ex.images, ex.captions), scorer.logit_scale)


def test_evaluate_batches_across_examples(tiny):
    scorer = load(tiny, batch_size=3)
    sizes = []
    encode_image = scorer.model.encode_image
    scorer.model.encode_image = lambda x, **kw: sizes.append(len(x)) or encode_image(x, **kw)
    examples = [
        Example(id=str(k), images=(drawn(10 + k), drawn(20 + k)), captions=tuple(CAPTIONS[:2])) for k in range(4)
    ]
    scorer.evaluate(examples)
    assert sizes == [3, 3, 2]


def test_empty_inputs_give_empty_matrices(scorer):
    assert scorer.score([], CAPTIONS).shape == (0, len(CAPTIONS))
    assert scorer.score(IMAGES, []).shape == (len(IMAGES), 0)


def test_config_is_json_and_excludes_device_and_batch_size(tiny, scorer):
    config = scorer.config()
    text = json.dumps(config)
    assert json.loads(text) == config
    assert "device" not in text and "batch_size" not in text
    assert config["arch"] == TINY_ARCH
    assert config["weights"]["sha256"] == hashlib.sha256(tiny[1].read_bytes()).hexdigest()
    assert config["weights"]["checkpoint"] == str(tiny[1].resolve())
    assert config["dtype"] == "float32" and config["quick_gelu"] is False
    assert config["model_cfg"] == json.loads(tiny[0].read_text())
    assert config["logit_scale"] == pytest.approx(float(scorer.model.logit_scale.detach().exp()))


def test_a_pt_checkpoint_loads_weights_only_and_scores_alike(tiny, tmp_path, scorer):
    from safetensors.torch import load_file

    pt = tmp_path / "tiny.pt"
    torch.save(load_file(tiny[1]), pt)
    other = registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{pt}")(arch_config=str(tiny[0]), device="cpu")
    assert_same_scores(other.score(IMAGES, CAPTIONS), scorer.score(IMAGES, CAPTIONS), scorer.logit_scale)


_UNPICKLED = []


def _mark_unpickled():
    _UNPICKLED.append(True)
    return {}


class _Payload:
    def __reduce__(self):
        return (_mark_unpickled, ())


def test_a_checkpoint_needing_arbitrary_unpickling_is_refused_unopened(tiny, tmp_path):
    pt = tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload()}, pt)
    with pytest.raises(ModelLoadError, match="weights-only.*safetensors"):
        registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{pt}")(arch_config=str(tiny[0]), device="cpu")
    assert _UNPICKLED == []


def test_a_checkpoint_of_another_architecture_is_a_load_error(tiny, tmp_path):
    config = json.loads(tiny[0].read_text())
    config["embed_dim"] = 16
    other = tmp_path / "tiny-clip-other.json"
    other.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="could not load .* into architecture 'tiny-clip-other'"):
        registry.resolve_scorer(f"open_clip:tiny-clip-other/{tiny[1]}")(arch_config=str(other), device="cpu")


# ---------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "name", ["clip-vit-b32", "clip-vit-l14", "openclip-vit-h14", "open_clip:ViT-B-32/openai", "hf-hub:org/name"]
)
def test_factory_options_type_check(name):
    factory = registry.resolve_scorer(name)
    hints = typing.get_type_hints(getattr(factory, "func", factory))  # a prefixed name is a partial
    assert {"device", "dtype", "batch_size"} <= set(hints)
    parsed = parse_overrides(factory, ["dtype=bfloat16", "device=cpu", "batch_size=8"], what=name)
    assert parsed == {"dtype": "bfloat16", "device": "cpu", "batch_size": 8}
    with pytest.raises(ConfigError, match="float32"):
        parse_overrides(factory, ["dtype=float64"], what=name)
    with pytest.raises(ConfigError, match="no option 'seed'"):
        parse_overrides(factory, ["seed=1"], what=name)


def test_arch_config_is_an_open_clip_spec_option(tiny):
    factory = registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{tiny[1]}")
    assert parse_overrides(factory, [f"arch_config={tiny[0]}"], what="x") == {"arch_config": str(tiny[0])}


def test_bad_dtype_and_device_and_batch_size_are_config_errors(tiny):
    with pytest.raises(ConfigError, match="dtype 'float64'"):
        load(tiny, dtype="float64")
    with pytest.raises(ConfigError, match="not a torch device"):
        registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{tiny[1]}")(arch_config=str(tiny[0]), device="gpu-please")
    with pytest.raises(ConfigError, match="batch_size"):
        load(tiny, batch_size=0)


# ------------------------------------------- tags and hf-hub, from a filled Hub cache


def fill_hub_cache(cache, repo_id: str, files: dict) -> None:
    """Lay files out as huggingface_hub's cache does (refs/main -> snapshots/<commit>/)."""
    commit = "0" * 40
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    for name, data in files.items():
        (repo / "snapshots" / commit / name).write_bytes(data)


def test_a_tag_loads_from_the_hub_cache_with_its_preprocessing_and_quick_gelu(tiny, empty_hub_cache, monkeypatch):
    """The presets' path: a tag's file from the cache (HF_HUB_OFFLINE, no network), loaded like a
    local checkpoint, with the tag's preprocessing and QuickGELU as open_clip's tag table says."""
    import open_clip
    from huggingface_hub import constants

    fill_hub_cache(Path(constants.HF_HUB_CACHE), "test-org/tiny", {"open_clip_model.safetensors": tiny[1].read_bytes()})
    tag = {
        "url": "",
        "hf_hub": "test-org/tiny/",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "interpolation": "bilinear",
        "resize_mode": "squash",
        "quick_gelu": True,
    }
    # open_clip keeps its tag table in a private dict; a test may add a tag to it.
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_ARCH, {"fake": tag})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = registry.resolve_scorer(f"open_clip:{TINY_ARCH}/fake")(arch_config=str(tiny[0]), device="cpu")
    config = scorer.config()
    assert config["weights"] == {
        "tag": "fake",
        "hf_hub": "test-org/tiny/open_clip_model.safetensors",
        "sha256": hashlib.sha256(tiny[1].read_bytes()).hexdigest(),
    }
    assert config["quick_gelu"] is True
    assert any(isinstance(m, open_clip.transformer.QuickGELU) for m in scorer.model.modules())
    assert config["preprocess"]["mean"] == [0.5] * 3 and config["preprocess"]["std"] == [0.25] * 3
    assert config["preprocess"]["interpolation"] == "bilinear" and config["preprocess"]["resize_mode"] == "squash"
    assert scorer.score(IMAGES, CAPTIONS).shape == (len(IMAGES), len(CAPTIONS))


def test_hf_hub_loads_config_and_weights_from_the_hub_cache(tiny, empty_hub_cache, monkeypatch):
    from huggingface_hub import constants

    hub_config = {"model_cfg": json.loads(tiny[0].read_text()), "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    fill_hub_cache(
        Path(constants.HF_HUB_CACHE),
        "test-org/tiny-hub",
        {"open_clip_config.json": json.dumps(hub_config).encode(), "open_clip_model.safetensors": tiny[1].read_bytes()},
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = registry.resolve_scorer("hf-hub:test-org/tiny-hub")(device="cpu", batch_size=2)
    config = scorer.config()
    assert config["arch"] == "hf-hub:test-org/tiny-hub"
    assert config["weights"]["hf_hub"] == "test-org/tiny-hub/open_clip_model.safetensors"
    assert config["model_cfg"] == hub_config["model_cfg"] and config["preprocess"]["mean"] == [0.5] * 3
    local = load(tiny)  # same weights; only the normalisation differs
    assert scorer.score(IMAGES, CAPTIONS).shape == local.score(IMAGES, CAPTIONS).shape
    assert_same_scores(
        scorer.score(IMAGES, CAPTIONS)[:, [1, 0, 2, 3]],
        scorer.score(IMAGES, [CAPTIONS[k] for k in [1, 0, 2, 3]]),
        scorer.logit_scale,
    )


# ----------------------------------------------------------------------------- errors


def test_unknown_architecture_lists_close_matches():
    with pytest.raises(ConfigError, match=r"no architecture 'ViT-B-3'\. Did you mean ViT-B-32"):
        registry.resolve_scorer("open_clip:ViT-B-3/openai")()


def test_unknown_tag_lists_the_known_tags():
    with pytest.raises(
        ModelLoadError, match=r"'opena' is not a pretrained tag .*Did you mean openai\?.*Its tags: openai, "
    ):
        registry.resolve_scorer("open_clip:ViT-B-32/opena")()


def test_a_spec_without_tag_or_path_is_a_config_error():
    with pytest.raises(ConfigError, match="open_clip:ARCH/TAG or open_clip:ARCH/PATH"):
        registry.resolve_scorer("open_clip:ViT-B-32")()


def test_missing_checkpoint_names_the_path(tiny, tmp_path):
    missing = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(ModelLoadError, match="checkpoint file .*nowhere/model.safetensors.* does not exist"):
        registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{missing}")(arch_config=str(tiny[0]))
    with pytest.raises(ModelLoadError, match=r"'\./gone\.pt'.*does not exist"):
        registry.resolve_scorer("open_clip:ViT-B-32/./gone.pt")()


def test_arch_config_problems_are_config_errors(tiny, tmp_path):
    factory = registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{tiny[1]}")
    with pytest.raises(ConfigError, match="arch_config .* does not exist"):
        factory(arch_config=str(tmp_path / "none.json"))
    misnamed = tmp_path / "other-name.json"
    misnamed.write_text(tiny[0].read_text())
    with pytest.raises(ConfigError, match=f"rename the file to {TINY_ARCH}.json"):
        factory(arch_config=str(misnamed))
    broken = tmp_path / f"{TINY_ARCH}.json"
    broken.write_text('{"embed_dim": 32}')
    with pytest.raises(ConfigError, match="lacks vision_cfg, text_cfg"):
        factory(arch_config=str(broken))


@pytest.mark.parametrize(
    "name", ["clip-vit-b32", "open_clip:ViT-H-14/laion2b_s32b_b79k", "hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K"]
)
def test_weights_that_cannot_be_fetched_offline_fail_fast(empty_hub_cache, monkeypatch, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="could not fetch .*HF_HUB_OFFLINE is set.*HF_TOKEN.*open_clip:"):
        registry.resolve_scorer(name)(device="cpu")
    assert time.perf_counter() - start < 10


def test_an_openai_checkpoint_offline_names_the_quickgelu_architecture(empty_hub_cache, monkeypatch):
    """issue 22.12: following the error must load QuickGELU, as the OpenAI weights need."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as caught:
        registry.resolve_scorer("clip-vit-l14")(device="cpu")
    assert "open_clip:ViT-L-14-quickgelu/PATH" in str(caught.value) and "`hf auth login`" in str(caught.value)


@pytest.mark.parametrize("name", ["clip-vit-l14", "hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K"])
def test_weights_from_an_unreachable_hub_fail_fast(empty_hub_cache, monkeypatch, name):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused at once
    start = time.perf_counter()
    with pytest.raises(
        ModelLoadError, match=r"could not fetch .*did not answer.*HF_TOKEN.*pass the local file as open_clip:"
    ):
        registry.resolve_scorer(name)(device="cpu")
    assert time.perf_counter() - start < 10


# ------------------------------------------------------------------------------ dummy


def test_dummy_scorer_is_deterministic_and_depends_on_image_and_caption():
    a, b = DummyScorer(seed=0), DummyScorer(seed=0)
    scores = a.score(IMAGES, CAPTIONS)
    assert scores.shape == (len(IMAGES), len(CAPTIONS)) and scores.dtype == np.float64
    assert np.array_equal(scores, b.score(IMAGES, CAPTIONS))
    assert len({tuple(row) for row in scores}) == len(IMAGES)  # images matter
    assert len({tuple(col) for col in scores.T}) == len(CAPTIONS)  # captions matter, word order too
    assert ((scores >= 0) & (scores < 1)).all()
    assert not np.array_equal(scores, DummyScorer(seed=1).score(IMAGES, CAPTIONS))
    assert a.config() == {"kind": "dummy", "version": 1, "name": "dummy", "seed": 0, "method": "sha256-uniform"}
    order = [1, 3, 0, 2]
    assert np.array_equal(a.score(IMAGES, [CAPTIONS[k] for k in order]), scores[:, order])
    assert np.array_equal(a.score(IMAGES, [CAPTIONS[0], CAPTIONS[0]])[:, 0], scores[:, 0])


def test_dummy_scorer_has_no_ties_and_chance_level_on_shapes():
    """The chance baseline: no tied comparison on the whole shapes test split, scores near chance."""
    from winoground_eval.tasks.shapes import ShapesTask

    task, dummy = ShapesTask(split="test"), DummyScorer()
    result = task.metrics({ex.id: dummy.score(ex.images, ex.captions) for ex in task.examples()})
    assert result["n_examples"] == 300 and result["n_ties"] == 0
    assert 0.15 <= result["metrics"]["text"] <= 0.35 and 0.15 <= result["metrics"]["image"] <= 0.35
    assert 0.08 <= result["metrics"]["group"] <= 0.26


def test_dummy_scorer_has_no_ties_on_a_winoground_format_sample(tmp_path):
    from winoground_eval.tasks.winoground import WinogroundTask
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    task = WinogroundTask(data_dir=write_winoground_sample(tmp_path / "s", n_examples=40, seed=0))
    dummy = DummyScorer()
    result = task.metrics({ex.id: dummy.score(ex.images, ex.captions) for ex in task.examples()})
    assert result["n_examples"] == 40 and result["n_ties"] == 0


def test_dummy_scorer_is_the_same_in_another_process():
    """hashlib, not Python's salted hash(): another PYTHONHASHSEED gives the same numbers."""
    code = (
        "import numpy as np; from PIL import Image; from winoground_eval.baselines.dummy import DummyScorer; "
        "print(repr(DummyScorer(seed=3).score([Image.new('RGB', (20, 10), (200, 30, 90))], ['a red cat', 'dog']).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    here = DummyScorer(seed=3).score([Image.new("RGB", (20, 10), (200, 30, 90))], ["a red cat", "dog"]).tolist()
    assert eval(out) == here


def test_runner_hands_clip_chunks_of_examples(tmp_path, tiny_clip):
    """Encoding is batched across examples: the runner passes whole chunks to evaluate()."""
    from winoground_eval.baselines.tiny_clip import TINY_ARCH
    from winoground_eval.core.registry import resolve_scorer
    from winoground_eval.core.runner import RunSpec, open_store, run
    from winoground_eval.tasks.winoground import WinogroundTask
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    config, ckpt = tiny_clip()
    scorer = resolve_scorer(f"open_clip:{TINY_ARCH}/{ckpt}")(arch_config=str(config), device="cpu", batch_size=8)
    calls = []
    original = scorer.evaluate
    scorer.evaluate = lambda examples: calls.append(len(examples)) or original(examples)
    task = WinogroundTask(data_dir=str(write_winoground_sample(tmp_path / "d", n_examples=6)))
    spec = RunSpec("winoground", "tiny", tmp_path / "out")
    store = open_store(spec, task, scorer)
    with store:
        result = run(spec, task, scorer, store)
    assert calls == [4, 2] and result["n_examples"] == 6
