import inspect
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

# Tests never touch the network: the Hugging Face libraries run offline; the tests of the
# Hub paths point HF_ENDPOINT at loopback servers of their own.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# One CPU thread everywhere: `wg-eval run` (and so every main(["run", ...]) in a test) sets
# torch's thread count from OMP_NUM_THREADS when no --threads is given, and subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# pytest-xdist's workers inherit COLUMNS=80 / LINES=24 from execnet; a plain pytest run has no
# terminal size, so the CLI's tables take their natural width (console.WideWhenPiped). Workers
# must print as a plain run does, or the tests that read a table's columns see them cut.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)


def pytest_configure(config):
    # Tiny models gain nothing from intra-op threads, and on a small shared machine (CI has
    # 2 cores) OpenMP spin-waiting between processes makes them many times slower.
    import torch

    torch.set_num_threads(1)


# Tests marked slow by measurement rather than by kind: each took 0.9 s or more of call time on
# a quiet 2-core machine (`pytest -n auto -m "not slow" --durations=0`), which kept
# `make test-fast` over a minute. `make test` (and CI) runs them. A full collection that no
# longer finds one of these ids stops with its name, so the list cannot rot silently.
SLOW_BY_MEASURE = frozenset(
    {
        "tests/test_benchmarks.py::test_sharing_bound_counts_only_work_before_the_caption",
        "tests/test_calibration.py::test_calibrate_end_to_end_on_a_tiny_run",
        "tests/test_calibration.py::test_the_relative_scale_is_chosen_for_errors_of_different_size_and_helps_held_out",
        "tests/test_contract_all.py::test_batch_size_does_not_change_scores[diffusers:]",
        "tests/test_contract_all.py::test_batched_evaluate_equals_score_and_config_is_stable_json[diffusers:pixel-v]",
        "tests/test_contract_all.py::test_scorer_shape_and_permutations[diffusers:]",
        "tests/test_contract_all.py::test_scorer_shape_and_permutations[diffusers:pixel-v]",
        "tests/test_diffusion.py::test_config_records_what_changes_numbers",
        "tests/test_diffusion_adaptive.py::test_a_grid_too_large_for_the_window_names_n_samples",
        "tests/test_diffusion_adaptive.py::test_adaptive_equals_the_reference_restatement[l2-n_samples0-to_keep0-32]",
        "tests/test_diffusion_adaptive.py::test_any_conditioning_serves_every_mode",
        "tests/test_diffusion_faults.py::test_oom_halves_the_batch_and_gives_the_same_scores",
        "tests/test_diffusion_options.py::test_configs_equal_the_recorded_ones",
        "tests/test_diffusion_options.py::test_fingerprint_ignores_the_writers_version_keys",
        "tests/test_early_stopping.py::test_full_budget_equals_the_plain_scorer",
        "tests/test_early_stopping.py::test_stopping_stores_nan_and_scores_from_what_was_evaluated",
        "tests/test_every_command_every_task.py::test_choose_timesteps_on_a_diffusion_run_of_the_task[winoground]",
        "tests/test_families.py::test_lora_changes_the_config_and_so_the_run_id",
        "tests/test_families.py::test_lora_option_loads_through_diffusers_or_says_peft_is_missing[sd]",
        "tests/test_families.py::test_sd3_errors_are_its_formula[sd3-no-t5]",
        "tests/test_families.py::test_sd3_errors_are_its_formula[sd3]",
        "tests/test_families.py::test_sdxl_errors_are_its_formula",
        "tests/test_family_strategies.py::test_adaptive_and_elimination_agree_with_the_plain_grid_when_separable[dit]",
        "tests/test_faults.py::test_silent_hub_dataset_fails_within_seconds",
        "tests/test_faults.py::test_silent_hub_model_fails_within_seconds",
        "tests/test_faults.py::test_silent_hub_through_the_cli",
        "tests/test_faults_round2.py::test_a_stalled_dataset_download_fails_within_seconds",
        "tests/test_faults_round2.py::test_silent_hub_dit_model_index_fails_within_seconds",
        "tests/test_scorer_config.py::test_per_image_noise",
        "tests/test_sequential.py::test_boundary_lies_between_one_look_and_bonferroni",
        "tests/test_sequential.py::test_stopping_saves_calls_on_easy_comparisons",
        "tests/test_sequential.py::test_wrong_decisions_stay_within_the_stated_rate[False]",
        "tests/test_timestep_plan.py::test_a_control_variate_along_a_weights_plan_keeps_its_estimand",
        "tests/test_timestep_plan.py::test_elimination_along_a_plan_finds_the_best_and_takes_a_ranking",
        "tests/test_timestep_plan.py::test_sequential_test_along_a_plan_keeps_its_error_rate_and_saves_calls",
        "tests/test_timestep_plan.py::test_uniform_weights_are_the_plain_estimate_and_boundary",
        "tests/test_tiny_models.py::test_tiny_diffusion_takes_every_diffusers_option_but_revision",
    }
)


def pytest_collection_modifyitems(config, items):
    seen = set()
    for item in items:
        if item.nodeid in SLOW_BY_MEASURE:
            item.add_marker(pytest.mark.slow)
            seen.add(item.nodeid)
    full = (
        not config.getoption("keyword")
        and not config.getoption("markexpr")
        and config.args in (["tests"], [], ["tests/"])
    )
    if full and len(items) > 500 and SLOW_BY_MEASURE - seen:
        raise pytest.UsageError(
            f"tests/conftest.py SLOW_BY_MEASURE names tests that no longer exist: {sorted(SLOW_BY_MEASURE - seen)}"
        )


@pytest.fixture
def sample_dir(tmp_path):
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    return write_winoground_sample(tmp_path / "sample", n_examples=6, seed=0)


@pytest.fixture(autouse=True)
def _quiet_logs():
    logging.getLogger("winoground_eval").setLevel(logging.WARNING)
    yield


@pytest.fixture(scope="session")
def chromium():
    """Chromium's path (with playwright importable), or skip (locally) / fail (CI) with the reason."""
    path = os.environ.get("WG_EVAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path and not os.access(path, os.X_OK):
        path = None
    reason = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        reason = "the browser test needs the playwright package (pip install -e '.[dev]')"
    if reason is None and not path:
        reason = "the browser test needs Chromium (Debian: apt-get install chromium; or set WG_EVAL_CHROMIUM)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run this test, not skip it")
        pytest.skip(reason)
    return path


# ------------------------------------------------------------------ tiny models, built once
# Every tiny model folder the tests load is built at most once per session (per set of
# builder arguments) and shared. The folders are READ-ONLY: a test that changes files in one
# copies it first (``shutil.copytree(tiny_sd(), tmp_path / "copy")``). All builders are
# seeded, so a shared folder holds the same bytes as one a test would have built itself.


class _Builds:
    """Folders built once per session, keyed by (builder name, keyword arguments)."""

    def __init__(self, root: Path):
        self.root = root
        self.built: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}

    def get(self, kind: str, build: Callable[..., Any], /, **kwargs: Any) -> Any:
        bound = inspect.signature(build).bind(None, **kwargs)  # defaults filled in: one key per model
        bound.apply_defaults()
        key = (kind, tuple(sorted((k, v) for k, v in bound.arguments.items() if k not in ("path", "directory"))))
        if key not in self.built:
            slug = "-".join([kind, *(f"{k}={v}" for k, v in key[1])]).replace("/", "_")
            self.built[key] = build(self.root / slug / kind, **kwargs)
        return self.built[key]


@pytest.fixture(scope="session")
def _tiny_builds(tmp_path_factory) -> _Builds:
    return _Builds(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_sd(_tiny_builds) -> Callable[..., Path]:
    """``tiny_sd(prediction_type="epsilon", pixel_space=False, seed=0, sample_size=16)``: the
    folder ``winoground_eval.testing.tiny_sd.write_tiny_sd`` writes, built once per session."""
    from winoground_eval.testing.tiny_sd import write_tiny_sd

    return lambda **kwargs: _tiny_builds.get("tiny-sd", write_tiny_sd, **kwargs)


@pytest.fixture(scope="session")
def tiny_dit(_tiny_builds) -> Callable[..., Path]:
    """``tiny_dit(seed=0, num_classes=24, ...)``: ``write_tiny_dit``'s folder, built once per session."""
    from winoground_eval.testing.tiny_sd import write_tiny_dit

    return lambda **kwargs: _tiny_builds.get("tiny-dit", write_tiny_dit, **kwargs)


@pytest.fixture(scope="session")
def tiny_family(_tiny_builds) -> Callable[..., Path]:
    """``tiny_family("sdxl" | "sd3" | "flux", **kwargs)``: the tiny SDXL / SD3 / FLUX.1 folder
    (``winoground_eval.testing.tiny_families``) with those arguments, built once per session."""
    from winoground_eval.testing import tiny_families

    writers = {
        "sdxl": tiny_families.write_tiny_sdxl,
        "sd3": tiny_families.write_tiny_sd3,
        "flux": tiny_families.write_tiny_flux,
    }
    return lambda family, **kwargs: _tiny_builds.get(f"tiny-{family}", writers[family], **kwargs)


@pytest.fixture(scope="session")
def tiny_clip(_tiny_builds) -> Callable[..., tuple[Path, Path]]:
    """``tiny_clip(seed=0)``: (config_path, checkpoint_path) of ``write_tiny_clip``, built once per session."""
    from winoground_eval.baselines.tiny_clip import write_tiny_clip

    return lambda **kwargs: _tiny_builds.get("tiny-clip", write_tiny_clip, **kwargs)
