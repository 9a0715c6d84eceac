"""The task and scorer contracts, checked on EVERY registered task and scorer.

The lists come from the registry (``TASKS``, ``TASK_PREFIXES``, ``SCORERS``,
``SCORER_PREFIXES``); nothing here is a hand-kept list of what to test. What IS kept here is
how to build each one offline, and a registered name without a way to build it fails
``test_every_task_has_an_offline_fixture`` / ``test_every_scorer_has_an_offline_fixture``, so
that a new plugin cannot be forgotten.

How to give a new TASK its offline fixture (either):
- the classmethod ``offline_fixture(tmp_path, name) -> (name_to_resolve, kwargs)`` of the task's
  class (a :class:`winoground_eval.core.taskbase.TaskBase`: the registry target, or the return type
  its factory function declares): it writes whatever small data the task needs under
  ``tmp_path`` and returns the name to resolve (``name`` itself, or ``PREFIX + SPEC`` for a
  prefix such as ``captions:``) and the keyword arguments for the factory; or
- an entry ``name: builder`` in :data:`TASK_FIXTURES` below, with the same signature less
  ``name``.
A fixture must be offline (no hub, no network) and small (a few to a few dozen examples).

How to give a new SCORER its fixture: an entry in :data:`SCORER_FIXTURES`: ``name: builder``
with ``builder(models, **options) -> scorer``; ``models`` holds tiny random models written
once per session (:func:`models`). Presets that load Hub weights are built through their
registered factory with the weights swapped for tiny ones (a local folder of the same name
for diffusers ids, the open_clip loader pointed at a tiny checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from winoground_eval.core import registry
from winoground_eval.core.contracts import Example, Scorer, Task, evaluate_examples
from winoground_eval.core.overrides import options_of
from winoground_eval.core.taskbase import TaskBase, task_class
from winoground_eval.core.userfile import missing_members

RESULTS_BRANCH = "needs the results branch (Task.metric_specs / outcomes)"

# ============================================================================ tasks


def _winoground(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    return "winoground", {"data_dir": str(write_winoground_sample(tmp_path / "wg", n_examples=6, seed=0))}


def _shapes(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return "shapes", {"split": "val", "limit": 9}


def _captions(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A captions JSONL (the format of issue 11): 1 x N examples (a file holds one kind), paths
    relative to the file, tags optional."""
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
    rows = [
        {
            "id": "a",
            "images": ["img/0.png"],
            "captions": ["a red ball", "a blue ball", "a red box"],
            "tags": {"kind": ["replace"]},
        },
        {
            "id": "b",
            "images": ["img/1.png"],
            "captions": ["a dog on a cat", "a cat on a dog", "two dogs"],
            "tags": {"kind": ["swap"]},
        },
        {"id": "c", "images": ["img/2.png"], "captions": ["two birds", "one bird", "no bird"]},
    ]
    path = tmp_path / "examples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"captions:{path}", {}


# The benchmarks branch's tasks, on the fake data its own tests draw (no real COCO/VG image).
def _sugarcrepe(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    from test_sugarcrepe import _fake_coco

    root = _fake_coco(tmp_path / "coco", ("swap_obj",))
    return "sugarcrepe", {"data_dir": str(root), "subsets": ("swap_obj",), "limit": 8}


def _aro(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    from test_aro import _fake_aro

    root = _fake_aro(
        tmp_path / "aro", relations=["on", "behind", "under"], pairs=[("red", "wooden"), ("blue", "small")]
    )
    return "aro", {"data_dir": str(root)}


# Registry name -> builder(tmp_path) -> (name to resolve, factory kwargs). Tasks may instead
# override TaskBase.offline_fixture (see the module docstring).
TASK_FIXTURES: dict[str, Callable[[Path], tuple[str, dict[str, Any]]]] = {
    "winoground": _winoground,
    "shapes": _shapes,
    "captions:": _captions,
    "sugarcrepe": _sugarcrepe,
    "aro": _aro,
    "shapes-ranked": lambda tmp_path: ("shapes-ranked", {"split": "val", "limit": 9}),
}

TASK_NAMES = sorted(registry.TASKS) + sorted(registry.TASK_PREFIXES)


def _entry(name: str) -> registry.Entry:
    return registry.TASKS[name] if name in registry.TASKS else registry.TASK_PREFIXES[name]


def _fixture_of(name: str) -> Callable[[Path], tuple[str, dict[str, Any]]] | None:
    if name in TASK_FIXTURES:
        return TASK_FIXTURES[name]
    try:
        cls = task_class(registry.load_target(_entry(name).target))
    except ImportError as exc:
        pytest.fail(f"task {name!r}: its module cannot be imported ({exc})")
    if cls is None or cls.offline_fixture.__func__ is TaskBase.offline_fixture.__func__:
        return None
    return lambda tmp_path: cls.offline_fixture(tmp_path, name)


def _build_task(name: str, tmp_path: Path) -> Any:
    builder = _fixture_of(name)
    if builder is None:
        pytest.fail(
            f"task {name!r} has no offline fixture: override offline_fixture(tmp_path, name) in its TaskBase class "
            f"or an entry to TASK_FIXTURES in {__file__}"
        )
    resolvable, kwargs = builder(tmp_path)
    return registry.resolve_task(resolvable)(**kwargs)


def _random_scores(task: Any, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {ex.id: rng.normal(size=(len(ex.images), len(ex.captions))) for ex in task.examples()}


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_has_an_offline_fixture(name):
    assert _fixture_of(name) is not None, (
        f"task {name!r} is registered but has no offline fixture: override offline_fixture(tmp_path, name) -> "
        f"(name, kwargs) in its class ({_entry(name).target}) or an entry to TASK_FIXTURES in {__file__}"
    )


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_builds_offline_and_keeps_the_contract(name, tmp_path):
    task = _build_task(name, tmp_path)
    assert not missing_members(task, Task), f"{name} lacks {missing_members(task, Task)}"
    metadata = task.metadata()
    examples = list(task.examples())
    assert examples, f"{name}: the fixture yields no examples"
    # metadata() is the task's whole target; a task built with a limit yields its first ids only
    ids = [ex.id for ex in examples]
    assert ids == list(metadata)[: len(ids)], "examples() must follow metadata() order, id for id"
    assert len(set(metadata)) == len(metadata)
    for ex in examples:
        assert isinstance(ex, Example) and isinstance(ex.id, str)
        # any PIL mode: the scorer owns its preprocessing (the reference converts to RGB after resizing)
        assert ex.images and all(isinstance(im, Image.Image) for im in ex.images), ex.id
        assert len(ex.captions) >= 2 and all(isinstance(c, str) and c.strip() for c in ex.captions), ex.id
        n_images, n_captions = len(ex.images), len(ex.captions)
        for metric, a, b in ex.comparisons:
            assert isinstance(metric, str) and a != b, (ex.id, metric)
            for j, k in (a, b):
                assert 0 <= j < n_images and 0 <= k < n_captions, f"{ex.id}: comparison {metric} {a} {b} out of bounds"
        for key, value in ex.tags.items():
            assert isinstance(key, str)
        json.dumps(dict(metadata[ex.id]))
    # skipping ids skips exactly them
    skip = {examples[0].id}
    assert [ex.id for ex in task.examples(skip=skip)] == [ex.id for ex in examples[1:]]


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_info_identifies_the_data_and_is_stable(name, tmp_path):
    task = _build_task(name, tmp_path)
    info = task.info()
    assert json.loads(json.dumps(info, allow_nan=False)) == info, "info() must be JSON-able as it is"
    for key in ("name", "version", "source", "data_fingerprint"):
        assert key in info, f"{name}: info() lacks {key!r} (CONTRACT.md: Tasks: options, names, identity)"
    assert info["name"] == task.name and task.info() == info
    again = _build_task(name, tmp_path / "again")  # the same data written again: the same identity
    assert again.info() == info, "info() must not depend on the process, time or where the data lies"


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_metrics_reduce_any_scores(name, tmp_path):
    task = _build_task(name, tmp_path)
    scores = _random_scores(task)
    result = task.metrics(scores)
    json.dumps(result, allow_nan=False)
    assert result["n_examples"] == len(scores)
    for metric, value in result["metrics"].items():
        assert value is None or np.isfinite(value), (metric, value)
    partial = dict(list(scores.items())[: max(1, len(scores) // 2)])
    assert task.metrics(partial)["n_examples"] == len(partial)  # a partial run reduces too


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_declares_its_metrics(name, tmp_path):
    task = _build_task(name, tmp_path)
    if not hasattr(task, "metric_specs") or not hasattr(task, "outcomes"):
        pytest.skip(RESULTS_BRANCH)
    specs = tuple(task.metric_specs)
    names = [m.name for m in specs]
    assert len(set(names)) == len(names), names
    assert sum(bool(m.primary) for m in specs) == 1, f"{name}: exactly one metric must be primary: {specs}"
    per_example = {m.name for m in specs if m.per_example}
    scores = _random_scores(task)
    result = task.metrics(scores)
    # every per-example metric is reported; an aggregate the data cannot support (e.g. ARO's
    # VG-Attribution with too few examples per pair) may be left out, never an undeclared one
    assert per_example <= set(result["metrics"]) <= set(names), (names, result["metrics"])
    assert [s["name"] for s in result["metric_specs"]] == [n for n in names if n in result["metrics"]]
    for ex_id, s in scores.items():
        outcome = task.outcomes(ex_id, s)
        assert set(outcome) == per_example, (ex_id, outcome, per_example)
        assert all(0.0 <= v <= 1.0 for v in outcome.values())
        assert result["per_example"][ex_id] == pytest.approx(outcome)
        tied = task.outcomes(ex_id, np.zeros_like(s))
        # a metric whose paper counts a tie as right says so (a RankedTask with ties="first": What'sUp, ARO);
        # every other one counts a tie wrong, and a task that counts ties right also reports a strict figure
        ties_right = {"accuracy"} if getattr(task, "ties_count", lambda: False)() else set()  # RankedTask ties="first"
        assert all(v == 0.0 for k, v in tied.items() if k not in ties_right), (
            f"{ex_id}: a tie must count as wrong: {tied}"
        )
        assert all(tied[k] == 1.0 for k in ties_right & set(tied)), (
            f"{ex_id}: declared ties-right but counts wrong: {tied}"
        )
        assert not ties_right or any(tied[k] == 0.0 for k in tied), f"{ex_id}: no strict figure beside {ties_right}"
    for ex in task.examples():  # comparisons name declared metrics
        assert {m for m, _, _ in ex.comparisons} <= set(names), ex.id


# ============================================================================ scorers


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8)) for i in range(3)]


CAPTIONS = ["a red circle left of a blue square", "a blue circle left of a red square", "a green triangle"]
FAST = {"device": "cpu", "n_timesteps": 5}  # given to every factory that takes them


@pytest.fixture(scope="session")
def models(tmp_path_factory, tiny_sd, tiny_family, tiny_clip) -> dict[str, Any]:
    """Tiny random models, each written once, on first use: open_clip (config, checkpoint), SD
    latent epsilon, SD pixel v, a DiT and the SDXL / SD3 / FLUX.1 folders."""
    root = tmp_path_factory.mktemp("contract-models")
    build: dict[str, Callable[[], Any]] = {
        "root": lambda: root,
        "clip_config": lambda: tiny_clip()[0],
        "clip_ckpt": lambda: tiny_clip()[1],
        "sd": lambda: tiny_sd(prediction_type="epsilon", seed=0),
        "sd_v": lambda: tiny_sd(prediction_type="v_prediction", pixel_space=True, seed=1),
        "dit": lambda: _write_tiny_dit(root / "dit"),
        **_family_models(tiny_family),
    }

    class Models(dict):
        def __missing__(self, key: str) -> Any:
            self[key] = build[key]()
            return self[key]

    return Models()


def _family_models(tiny_family: Callable[..., Path]) -> dict[str, Callable[[], Path]]:
    """Builders of the tiny SDXL, SD3 (with and without T5) and FLUX.1 (schnell- and dev-like) folders, 16 px images."""
    return {
        "sdxl": lambda: tiny_family("sdxl", sample_size=8),
        "sd3": lambda: tiny_family("sd3", sample_size=8),
        "sd3_no_t5": lambda: tiny_family("sd3", sample_size=8, t5=False),
        "flux_schnell": lambda: tiny_family("flux", sample_size=8),
        "flux_dev": lambda: tiny_family("flux", sample_size=8, guidance=True),
    }


def _write_tiny_dit(out: Path) -> Path:
    """A tiny random learned-sigma pixel-space DiT (1 channel, 8 px, 5 classes), saved as a diffusers DiT folder."""
    import diffusers
    import torch

    from winoground_eval.diffusion.dit import save_dit_folder

    torch.manual_seed(0)
    model = diffusers.DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=1,
        out_channels=2,
        num_layers=1,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=5,
    )
    with torch.no_grad():  # DiT zero-initialises its output layers: randomise so the class matters
        for p in model.parameters():
            p.copy_(torch.randn(p.shape) * 0.2)
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02)
    return save_dit_folder(out, model, sched, id2label={k: f"class {k}" for k in range(5)})


def _call(factory: Callable[..., Any], **options: Any) -> Any:
    accepted = options_of(factory)
    return factory(**{k: v for k, v in {**FAST, **options}.items() if k in accepted})


def _registered(name: str) -> Callable[[dict[str, Any]], Any]:
    """A scorer whose registered factory loads everything offline by itself."""
    return lambda models, **options: _call(registry.resolve_scorer(name), **options)


@contextlib.contextmanager
def _chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _diffusers_hub_preset(name: str) -> Callable[..., Any]:
    """A preset that loads a Hub id: its registered factory, run where a local folder of the same
    name holds the tiny model (a relative path that exists is loaded as a folder)."""

    def build(models, **options):
        from winoground_eval.diffusion.presets import MODEL_IDS

        hub = models["root"] / "hub"
        for model_id in MODEL_IDS.values():
            link = hub / model_id
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(models["sd"], target_is_directory=True)
        with _chdir(hub):
            scorer = _call(registry.resolve_scorer(name), **options)
        assert scorer.config()["model"] in MODEL_IDS.values()  # the preset's model id, recorded as such
        return scorer

    return build


def _open_clip_preset(name: str) -> Callable[..., Any]:
    """A preset of an open_clip pretrained tag: its registered factory, the loader pointed at the
    tiny checkpoint instead of the tag's weights (everything else is the preset's own path)."""

    def build(models, **options):
        from winoground_eval.baselines import clip

        asked = []
        real = clip.from_open_clip_spec

        def tiny(spec, **kw):
            asked.append(spec)
            from winoground_eval.baselines.tiny_clip import TINY_ARCH

            return real(f"{TINY_ARCH}/{models['clip_ckpt']}", **{**kw, "arch_config": str(models["clip_config"])})

        clip.from_open_clip_spec = tiny
        try:
            scorer = _call(registry.resolve_scorer(name), **options)
        finally:
            clip.from_open_clip_spec = real
        assert asked and "/" in asked[0], f"{name} did not load through from_open_clip_spec"
        return scorer

    return build


def _open_clip_prefix(models, **options):
    from winoground_eval.baselines.tiny_clip import TINY_ARCH

    factory = registry.resolve_scorer(f"open_clip:{TINY_ARCH}/{models['clip_ckpt']}")
    return _call(factory, arch_config=str(models["clip_config"]), **options)


def _hf_hub_prefix(models, **options):
    """hf-hub:ORG/NAME with the download swapped for a local folder holding the repository's two files."""
    from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME

    from winoground_eval.baselines import clip
    from winoground_eval.baselines.tiny_clip import TINY_MODEL_CFG

    repo = models["root"] / "hf-hub-repo"
    if not repo.exists():
        repo.mkdir()
        (repo / HF_CONFIG_NAME).write_text(json.dumps({"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": {}}))
        os.link(models["clip_ckpt"], repo / HF_SAFE_WEIGHTS_NAME)

    def local(repo_id, filenames, *, what, fix):
        assert repo_id == "wg-eval-tests/tiny-clip"
        return next(repo / n for n in filenames if (repo / n).exists())

    real = clip._fetch_from_hub
    clip._fetch_from_hub = local
    try:
        return _call(registry.resolve_scorer("hf-hub:wg-eval-tests/tiny-clip"), **options)
    finally:
        clip._fetch_from_hub = real


def _dit_hub_preset(name: str) -> Callable[..., Any]:
    """A DiT preset of a Hub id, loaded from a local folder of the same name holding the tiny DiT."""

    def build(models, **options):
        from winoground_eval.diffusion.dit import MODEL_IDS

        hub = models["root"] / "hub"
        for model_id in MODEL_IDS.values():
            link = hub / model_id
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(models["dit"], target_is_directory=True)
        with _chdir(hub):
            scorer = _call(registry.resolve_scorer(name), **options)
        assert scorer.config()["model"] in MODEL_IDS.values()
        return scorer

    return build


def _diffusers_prefix(key: str, **fast: Any) -> Callable[..., Any]:
    return lambda models, **options: _call(registry.resolve_scorer(f"diffusers:{models[key]}"), **fast, **options)


# SD3 / FLUX.1 fixtures: a short T5 sequence keeps the tiny transformers' calls cheap.
FAST_T5 = {"max_sequence_length": 8}


def _family_hub_preset(name: str, key: str) -> Callable[..., Any]:
    """An SDXL / SD3 / FLUX.1 preset of a Hub id, loaded from a local folder of the same name
    holding the tiny model of its family."""

    def build(models, **options):
        from winoground_eval.diffusion.family_presets import FAMILY_OF, MODEL_IDS

        link = models["root"] / "hub" / MODEL_IDS[name]
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(models[key], target_is_directory=True)
        fast = FAST_T5 if FAMILY_OF[name] != "sdxl" else {}
        with _chdir(models["root"] / "hub"):
            scorer = _call(registry.resolve_scorer(name), **{**fast, **options})
        assert scorer.config()["model"] == MODEL_IDS[name] and scorer.config()["kind"] == FAMILY_OF[name]
        return scorer

    return build


# Registry name (or prefix) -> builder(models, **options) -> scorer.
SCORER_FIXTURES: dict[str, Callable[..., Any]] = {
    "dummy": _registered("dummy"),
    "tiny-diffusion": _registered("tiny-diffusion"),
    "tiny-clip": _registered("tiny-clip"),
    "clip-vit-b32": _open_clip_preset("clip-vit-b32"),
    "clip-vit-l14": _open_clip_preset("clip-vit-l14"),
    "openclip-vit-h14": _open_clip_preset("openclip-vit-h14"),
    "sd2": _diffusers_hub_preset("sd2"),
    "sd2-fast": _diffusers_hub_preset("sd2-fast"),
    "sd2-768": _diffusers_hub_preset("sd2-768"),
    "sd2.1": _diffusers_hub_preset("sd2.1"),
    "sd1.5": _diffusers_hub_preset("sd1.5"),
    "sd1.4": _diffusers_hub_preset("sd1.4"),
    "open_clip:": _open_clip_prefix,
    "hf-hub:": _hf_hub_prefix,
    "diffusers:": _diffusers_prefix("sd"),
    "dit-xl-2-256": _dit_hub_preset("dit-xl-2-256"),
    "dit-xl-2-512": _dit_hub_preset("dit-xl-2-512"),
    "tiny-dit": _registered("tiny-dit"),
    "dit:": lambda models, **options: _call(registry.resolve_scorer(f"dit:{models['dit']}"), **options),
    "sdxl": _family_hub_preset("sdxl", "sdxl"),
    "sd3-medium": _family_hub_preset("sd3-medium", "sd3"),
    "sd3.5-medium": _family_hub_preset("sd3.5-medium", "sd3"),
    "sd3.5-large": _family_hub_preset("sd3.5-large", "sd3"),
    "flux-schnell": _family_hub_preset("flux-schnell", "flux_schnell"),
    "flux-dev": _family_hub_preset("flux-dev", "flux_dev"),
}
# A second variant of a family, through the same factory: pixel space, v-prediction.
SCORER_VARIANTS: dict[str, Callable[..., Any]] = {
    "diffusers:pixel-v": _diffusers_prefix("sd_v"),
    # another family through the same diffusers: prefix, dispatched on model_index.json's pipeline
    # class, from a folder saved without T5 (tests/test_families.py runs the others through it)
    "diffusers:sd3-no-t5": _diffusers_prefix("sd3_no_t5", **FAST_T5),
}
VARIANT_OF = {name: "diffusers:" for name in SCORER_VARIANTS}

# Class-conditional scorers read a caption as a class id: the captions they are checked on
# (default: CAPTIONS). Three distinct classes, so permutations and duplicates mean the same.
CLASS_CAPTIONS = ["0", "1", "2"]
SCORER_CAPTIONS: dict[str, list[str]] = {
    name: CLASS_CAPTIONS for name in ("dit-xl-2-256", "dit-xl-2-512", "tiny-dit", "dit:")
}


def _captions_for(name: str) -> list[str]:
    return SCORER_CAPTIONS.get(VARIANT_OF.get(name, name), CAPTIONS)


SCORER_NAMES = sorted(registry.SCORERS) + sorted(registry.SCORER_PREFIXES)
ALL_SCORERS = SCORER_NAMES + sorted(SCORER_VARIANTS)

# `make test-fast` runs the scorer contract on one scorer of each kind; `make test` runs all.
# Slow: a Hub preset that goes through the same factory as a fast one with another model id; the
# SDXL / SD3 / FLUX.1 scorers (seconds each; tests/test_families.py checks each family fast); and
# the batch-size check (the costliest) of the diffusion scorers other than `diffusers:`. The SD
# presets (sd2, ...) and tiny-diffusion are the DiffusionScorer that `diffusers:` checks fast, with
# another model id (tiny-diffusion has fast tests of its own in tests/test_tiny_models.py).
SLOW_PRESETS = {
    "clip-vit-l14",
    "openclip-vit-h14",
    "sd1.4",
    "sd1.5",
    "sd2",
    "sd2-768",
    "sd2-fast",
    "sd2.1",
    "tiny-diffusion",
    "dit-xl-2-512",
    "sdxl",
    "sd3-medium",
    "sd3.5-medium",
    "sd3.5-large",
    "flux-schnell",
    "flux-dev",
    "diffusers:sd3-no-t5",
}
SLOW_BATCH = {"diffusers:pixel-v"}


def _scorer_params(names: list[str], slow: set[str] = SLOW_PRESETS) -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


@pytest.fixture(scope="session")
def build_scorer(models):
    cache: dict[tuple[str, int | None], Any] = {}

    def build(name: str, batch_size: int | None = None) -> Any:
        key = (name, batch_size)
        if key not in cache:
            builder = SCORER_FIXTURES.get(name) or SCORER_VARIANTS.get(name)
            if builder is None:
                pytest.fail(f"scorer {name!r} has no fixture: add an entry to SCORER_FIXTURES in {__file__}")
            options = {} if batch_size is None else {"batch_size": batch_size}
            cache[key] = builder(models, **options)
        return cache[key]

    return build


def _takes_batch_size(name: str) -> bool:
    name = VARIANT_OF.get(name, name)
    if name in registry.SCORERS:
        return "batch_size" in options_of(registry.load_target(registry.SCORERS[name].target))
    entry = registry.SCORER_PREFIXES.get(name)
    return entry is not None and "batch_size" in options_of(registry.load_target(entry.target))


@pytest.mark.parametrize("name", SCORER_NAMES)
def test_every_scorer_has_an_offline_fixture(name):
    assert name in SCORER_FIXTURES, f"scorer {name!r} is registered but has no entry in SCORER_FIXTURES ({__file__})"


def test_every_registered_target_exists():
    for table in (registry.TASKS, registry.TASK_PREFIXES, registry.SCORERS, registry.SCORER_PREFIXES):
        for name, entry in table.items():
            assert callable(registry.load_target(entry.target)), name
    for suite, members in registry.SUITES.items():
        assert set(members) <= set(registry.TASKS), suite


@pytest.mark.parametrize("name", _scorer_params(ALL_SCORERS))
def test_scorer_shape_and_permutations(build_scorer, name):
    scorer = build_scorer(name)
    assert not missing_members(scorer, Scorer) and isinstance(scorer, Scorer)
    images, captions = _images(), _captions_for(name)
    s = np.asarray(scorer.score(images, captions))
    assert s.shape == (3, 3) and np.all(np.isfinite(s))
    perm = [2, 0, 1]
    s_cap = np.asarray(scorer.score(images, [captions[p] for p in perm]))
    np.testing.assert_allclose(s_cap, s[:, perm], rtol=1e-5, atol=1e-6)
    s_img = np.asarray(scorer.score([images[p] for p in perm], captions))
    np.testing.assert_allclose(s_img, s[perm, :], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", _scorer_params(ALL_SCORERS))
def test_duplicate_captions_give_equal_columns(build_scorer, name):
    captions = _captions_for(name)
    s = np.asarray(build_scorer(name).score(_images()[:2], [captions[0], captions[1], captions[0]]))
    np.testing.assert_array_equal(s[:, 0], s[:, 2])


@pytest.mark.parametrize("name", _scorer_params(ALL_SCORERS, SLOW_PRESETS | SLOW_BATCH))
def test_batch_size_does_not_change_scores(build_scorer, name):
    if not _takes_batch_size(name):
        pytest.skip(f"{name} has no batch_size option")
    images, captions = _images()[:2], _captions_for(name)
    a = np.asarray(build_scorer(name, batch_size=1).score(images, captions[:2]))
    b = np.asarray(build_scorer(name, batch_size=7).score(images, captions[:2]))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.array_equal(np.argsort(a, axis=1), np.argsort(b, axis=1))


@pytest.mark.parametrize("name", _scorer_params(ALL_SCORERS))
def test_batched_evaluate_equals_score_and_config_is_stable_json(build_scorer, name):
    scorer = build_scorer(name)
    images, captions = _images(), _captions_for(name)
    examples = [
        Example(str(i), (images[i], images[(i + 1) % 3]), (captions[i], captions[(i + 1) % 3])) for i in range(3)
    ]
    examples.append(
        Example(
            "1xN",
            (images[0],),
            tuple(captions),
            comparisons=(("accuracy", (0, 0), (0, 1)), ("accuracy", (0, 0), (0, 2))),
        )
    )
    results = evaluate_examples(scorer, examples)
    assert len(results) == len(examples)
    for ex, res in zip(examples, results):
        assert res.scores.shape == (len(ex.images), len(ex.captions))
        if not ex.comparisons:  # a scorer may settle only the declared comparisons of a 1 x N example
            np.testing.assert_allclose(res.scores, scorer.score(ex.images, ex.captions), rtol=1e-5, atol=1e-6)
    config = scorer.config()
    assert json.loads(json.dumps(config, allow_nan=False)) == config
    assert "device" not in config and "batch_size" not in config, "device and batch_size change no number"
    if name in SCORER_FIXTURES and _takes_batch_size(name):
        assert build_scorer(name, batch_size=7).config() == config, "config() must not depend on the process"
