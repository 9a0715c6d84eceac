"""The options dataclass is the single statement of the diffusion scorer's options: run
configs are unchanged by it, factories' signatures come from it, numpy parts import no torch."""

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from winoground_eval.core import registry
from winoground_eval.core.errors import ConfigError
from winoground_eval.core.overrides import options_of, parse_overrides
from winoground_eval.core.scorerconfig import identity_config
from winoground_eval.diffusion.options import DiffusionOptions, option_fields

DATA = Path(__file__).parent / "data" / "diffusion_configs.json"

# The configs recorded before the options moved into DiffusionOptions (tests/data/diffusion_configs.json,
# written by the pre-refactor code): run ids hash these, so they must not change.
CASES = {
    "defaults": {},
    "sequential": {"stopping": "sequential", "n_timesteps": 100},
    "options": {
        "n_timesteps": 50,
        "t_range": (100, 900),
        "loss": "l1",
        "normalize": "uncond",
        "interpolation": "bilinear",
        "noise_seed": 3,
        "noise_bank_size": 2000,
        "resolution": 32,
    },
    "seq2": {
        "stopping": "sequential",
        "n_timesteps": 200,
        "confidence": 0.95,
        "max_timesteps": 100,
        "futility": False,
        "decide": "text",
        "round_size": 10,
        "min_timesteps": 10,
    },
}


@pytest.fixture(scope="module")
def recorded():
    return json.loads(DATA.read_text())


def test_configs_equal_the_recorded_ones(tiny_sd, recorded):
    from winoground_eval.diffusion.presets import from_diffusers_spec

    folder = tiny_sd(seed=0)
    for name, options in CASES.items():
        config = from_diffusers_spec(str(folder), device="cpu", **options).config()
        assert config["model"] == str(folder)
        # A folder written today by the installed diffusers / transformers: its fingerprint
        # hashes files those libraries write (tokenizer files among them), so it is compared
        # by the fingerprint tests below, not against a number recorded on another day.
        expected = {**recorded[f"tiny_sd:{name}"], "fingerprint": config["fingerprint"]}
        # the config starts with the {kind, version} header; run ids hash it in the form recorded then
        assert list(config)[:2] == ["kind", "version"] and config["kind"] == "diffusion_classifier"
        assert identity_config({**config, "model": "<folder>"}) == expected, name
    tiny = registry.resolve_scorer("tiny-diffusion")
    assert identity_config(tiny(device="cpu").config()) == recorded["tiny-diffusion"]
    assert identity_config(tiny(device="cpu", stopping="sequential").config()) == recorded["tiny-diffusion:seq"]


def test_factories_take_every_option_with_its_type():
    fields = {f.name for f in dataclasses.fields(DiffusionOptions)}
    hints = typing.get_type_hints(DiffusionOptions)
    for name in ("sd2", "sd2-fast", "tiny-diffusion", "diffusers:some/model"):
        factory = registry.resolve_scorer(name)
        options = options_of(factory)
        assert fields <= set(options), name
        for field in fields:
            # diffusers:ID takes the options of every family (the folder names its family):
            # where families type an option differently, its annotation is the union
            ann = options[field].annotation
            assert ann == hints[field] or (name.startswith("diffusers:") and hints[field] in typing.get_args(ann)), (
                field
            )
    assert options_of(registry.resolve_scorer("sd2-fast"))["stopping"].default == "sequential"
    assert options_of(registry.resolve_scorer("tiny-diffusion"))["n_timesteps"].default == 10
    assert "revision" not in options_of(registry.resolve_scorer("tiny-diffusion"))
    parsed = parse_overrides(
        registry.resolve_scorer("sd2"),
        ["n_samples=50,500", "to_keep=5,1", "reference_fp16=true", "prefilter=open_clip:RN50/openai", "prefilter_k=20"],
        what="scorer",
    )
    assert parsed == {
        "n_samples": (50, 500),
        "to_keep": (5, 1),
        "reference_fp16": True,
        "prefilter": "open_clip:RN50/openai",
        "prefilter_k": 20,
    }


def test_options_are_checked_naming_the_option():
    for bad, word in [
        ({"loss": "l3"}, "loss"),
        ({"batch_size": 0}, "batch_size"),
        ({"n_samples": (50, 500)}, "to_keep"),
        ({"n_samples": (50, 500), "to_keep": (5,)}, "equal lengths"),
        ({"n_samples": (5, 50), "to_keep": (1, 5)}, "grow"),
        ({"confidence": 0.9}, "stopping=sequential"),
        ({"prefilter_k": 5}, "prefilter"),
        ({"reference_fp16": True, "dtype": "float32"}, "float16"),
        ({"n_samples": (5,), "to_keep": (1,), "stopping": "sequential"}, "exclude"),
    ]:
        with pytest.raises(ConfigError, match=word):
            DiffusionOptions(**bad)
    assert {f.name for f in option_fields("stopping")} == {
        "confidence",
        "min_timesteps",
        "max_timesteps",
        "round_size",
        "futility",
        "decide",
    }


def test_numpy_parts_import_no_torch():
    code = (
        "import sys\n"
        "from winoground_eval.diffusion.grid import timestep_grid, resolve_t_range, scores_from_errors\n"
        "from winoground_eval.diffusion import sequential, options, family, dit_options, stopping_rule\n"
        "from winoground_eval.core import policy; from winoground_eval.core import scorerconfig\n"
        "from winoground_eval.diffusion.families import FAMILIES, options_class, entry_for_pipeline\n"
        "assert [options_class(n).__name__ for n in FAMILIES][:2] == ['DiffusionOptions', 'DiTOptions']\n"
        "from winoground_eval.diffusion import scores_from_errors as s2\n"
        "import numpy as np\n"
        "assert timestep_grid(4).tolist() == [125, 375, 625, 875]\n"
        "assert s2(np.ones((1, 2, 3))).shape == (1, 2)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_messages_of_issue_14():
    from winoground_eval.diffusion.grid import check_noise_bank, timestep_grid

    with pytest.raises(ConfigError) as info:  # the prefix once
        parse_overrides(registry.resolve_scorer("tiny-diffusion"), ["t_range=300"], what="scorer")
    assert str(info.value).count("t_range=") == 1 and "2 comma-separated values" in str(info.value)
    with pytest.raises(ConfigError, match="num_train_timesteps=1000") as info:  # the schedule, not the noise bank
        timestep_grid(5000, 1000)
    assert "noise" not in str(info.value)
    with pytest.raises(ConfigError, match="noise_bank_size=10 is smaller"):
        check_noise_bank(20, 10)


def test_device_without_cuda_is_a_config_error(monkeypatch):
    import torch

    from winoground_eval.diffusion.scorer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--device cuda.*--device cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="--device cuda"):
        registry.resolve_scorer("sd2")(device="cuda")  # before anything is downloaded
    assert resolve_device("cpu").type == "cpu" and resolve_device(None).type == "cpu"


def _rewrite_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=7))  # another writer's layout: indent and key order


def test_fingerprint_ignores_the_writers_version_keys(tmp_path, tiny_sd):
    """The same weights saved by another diffusers / transformers keep their fingerprint."""
    import shutil

    from winoground_eval.diffusion.loading import folder_fingerprint

    folder = shutil.copytree(tiny_sd(seed=0), tmp_path / "tinysd")  # a copy: this test rewrites its files
    parts = ["unet", "scheduler", "text_encoder", "tokenizer"]
    before = folder_fingerprint(folder, parts)
    configs = sorted(folder.rglob("*.json"))
    assert any("_diffusers_version" in p.read_text() for p in configs)
    assert any("transformers_version" in p.read_text() for p in configs)

    def other_writer(data):
        if isinstance(data, dict):
            for key in ("_diffusers_version", "transformers_version"):
                if key in data:
                    data[key] = "99.0.0.dev0"
            data["_name_or_path"] = "/somewhere/else"
            for key in reversed(list(data)):  # another key order
                data[key] = data.pop(key)

    for path in configs:
        _rewrite_json(path, other_writer)
    assert folder_fingerprint(folder, parts) == before

    # a value that changes a number does change it
    _rewrite_json(folder / "scheduler" / "scheduler_config.json", lambda d: d.update(beta_end=0.03))
    assert folder_fingerprint(folder, parts) != before


@pytest.mark.slow  # writes a tiny SD folder afresh (the point of the test)
def test_fingerprint_sees_the_weights(tmp_path, tiny_sd):
    from winoground_eval.diffusion.loading import folder_fingerprint
    from winoground_eval.testing.tiny_sd import write_tiny_sd

    a = tiny_sd(seed=0)
    b = tiny_sd(seed=1)
    parts = ["unet", "scheduler", "text_encoder", "tokenizer"]
    assert folder_fingerprint(a, parts) != folder_fingerprint(b, parts)
    assert folder_fingerprint(a, parts) == folder_fingerprint(write_tiny_sd(tmp_path / "c", seed=0), parts)
