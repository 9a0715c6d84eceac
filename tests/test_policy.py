"""One statement of each shared fact (winoground_eval.core.policy): dtype names and offline mode,
honoured the same way by the model loaders (diffusion, CLIP) and the dataset loaders (tasks)."""

from __future__ import annotations

import typing

import pytest

from winoground_eval.core import policy
from winoground_eval.core.errors import ConfigError, DataError, ModelLoadError


def test_dtype_names_are_stated_once_and_map_to_torch():
    import torch

    from winoground_eval.baselines import clip, tiny_models
    from winoground_eval.diffusion import dit_options, options

    assert policy.DTYPES == ("float32", "float16", "bfloat16") == typing.get_args(policy.DType)
    for module in (options, dit_options, tiny_models, clip):
        assert module.DType is policy.DType, module.__name__  # the same object, not a copy
    assert [policy.torch_dtype(n) for n in policy.DTYPES] == [torch.float32, torch.float16, torch.bfloat16]
    with pytest.raises(ConfigError, match="float64.*float32, float16, bfloat16"):
        policy.torch_dtype("float64")


@pytest.fixture
def online(monkeypatch):
    for var in policy.OFFLINE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize("var", policy.OFFLINE_VARIABLES)
@pytest.mark.parametrize("value", ["1", "true", "YES", "On"])
def test_any_offline_variable_means_the_cache_only(online, var, value):
    assert not policy.hub_offline() and policy.offline_variable() is None
    online.setenv(var, value)
    assert policy.hub_offline() and policy.offline_variable() == var


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_false_values_are_not_offline(online, value):
    for var in policy.OFFLINE_VARIABLES:
        online.setenv(var, value)
    assert not policy.hub_offline()


def test_a_model_loader_honours_hf_datasets_offline(online, tmp_path):
    """Before, the model loaders read HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE only."""
    from winoground_eval.diffusion.presets import from_diffusers_spec

    online.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # closed port: no Hub, were it asked
    online.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_DATASETS_OFFLINE is set"):
        from_diffusers_spec("wg-eval-tests/no-such-model", device="cpu")


def test_a_dataset_loader_honours_transformers_offline(online, tmp_path):
    """Before, the dataset loaders read HF_HUB_OFFLINE / HF_DATASETS_OFFLINE only."""
    from winoground_eval.tasks.winoground import WinogroundTask

    online.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    import datasets.config
    from huggingface_hub import constants

    online.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # empty caches
    online.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    online.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(DataError, match="TRANSFORMERS_OFFLINE is set and the Hugging Face cache lacks"):
        WinogroundTask()
