"""Each example's stored arrays carry the timesteps of its error columns, and every results
command reads them: `report` and `choose-timesteps` agree on a ``t_range`` run, and runs
written before the timesteps were stored fall back to the scorer's own grid (t_range included)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from winoground_eval.cli import main as cli
from winoground_eval.diffusion.grid import timestep_grid
from winoground_eval.results import report, timestep_select
from winoground_eval.results.runs import read_run
from winoground_eval.testing.tiny_sd import write_tiny_sd
from winoground_eval.testing.winoground_sample import write_winoground_sample

T_RANGE, N = (400, 800), 4  # the grid 450, 550, 650, 750: not the whole-schedule grid of 4 (125, 375, 625, 875)


@pytest.fixture(scope="module")
def windowed(tmp_path_factory):
    """A finished tiny Stable Diffusion run with -o t_range=400,800 -o n_timesteps=4."""
    root = tmp_path_factory.mktemp("stored-timesteps")
    data = write_winoground_sample(root / "data", n_examples=2, seed=0)
    model = write_tiny_sd(root / "tiny-sd", seed=0)
    argv = [
        "run",
        "--task",
        "winoground",
        "--scorer",
        f"diffusers:{model}",
        "--data-dir",
        str(data),
        "--out",
        str(root / "runs"),
        "-q",
        "-o",
        f"n_timesteps={N}",
        "-o",
        f"t_range={T_RANGE[0]},{T_RANGE[1]}",
        "-o",
        "device=cpu",
    ]
    assert cli.main(argv) == 0
    [run_dir] = list((root / "runs" / "winoground").glob("diffusers_*/*"))
    return run_dir


def _report_timesteps(run_dir) -> list[int]:
    run = read_run(run_dir)
    store = run.store()
    summary = report.diffusion_summary(run, store, list(store.records))
    assert summary is not None and summary["n_timesteps"] == N
    return summary["mean_timesteps"]


def _drop_stored_timesteps(run_dir) -> None:
    """Rewrite every arrays file as a run from before this change wrote it (no ``timesteps``)."""
    for path in (run_dir / "arrays").glob("*.npz"):
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "timesteps"}
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        path.write_bytes(buf.getvalue())


def test_each_example_stores_the_timesteps_of_its_error_columns(windowed):
    grid = timestep_grid(N, 1000, T_RANGE).tolist()
    assert grid == [450, 550, 650, 750]
    store = read_run(windowed).store()
    for ex_id in store.records:
        arrays = store.arrays(ex_id)
        assert arrays["timesteps"].tolist() == grid
        assert arrays["timesteps"].dtype == np.int64 and arrays["errors"].shape[-1] == len(grid)


def test_report_and_choose_timesteps_agree_on_a_t_range_run(windowed):
    grid = timestep_grid(N, 1000, T_RANGE).tolist()
    assert _report_timesteps(windowed) == grid
    assert timestep_select.load_run(windowed).timesteps.tolist() == grid


def test_a_run_stored_before_timesteps_falls_back_to_the_scorers_grid(windowed, tmp_path):
    import shutil

    old = tmp_path / windowed.name
    shutil.copytree(windowed, old)
    _drop_stored_timesteps(old)
    store = read_run(old).store()
    assert all("timesteps" not in store.arrays(i) for i in store.records)
    grid = timestep_grid(N, 1000, T_RANGE).tolist()
    assert _report_timesteps(old) == grid
    assert timestep_select.load_run(old).timesteps.tolist() == grid


def _synthetic_run(out, config, arrays_of):
    """A finished 2x2 diffusion run stored as the runner stores one, its config ``config``."""
    from winoground_eval.core.contracts import Scored
    from winoground_eval.core.metrics import WINOGROUND_METRICS, summarize, winoground_outcomes
    from winoground_eval.core.runstore import RunStore, run_identity
    from winoground_eval.diffusion.grid import scores_from_errors

    task = {"name": "synthetic", "version": "1", "split": "val", "data_fingerprint": "x"}
    store = RunStore.create_or_open(out, run_identity(task, "synthetic-dc", config), {"python": "test"})
    outcomes = {}
    rng = np.random.default_rng(0)
    with store:
        for n in range(3):
            e = rng.random((2, 2, config["n_timesteps"])).astype(np.float32)
            scores = scores_from_errors(e)
            store.append(str(n), Scored(scores, arrays={"errors": e, **arrays_of(n)}, info={"unet_calls": 4}), 0.01)
            outcomes[str(n)] = winoground_outcomes(scores)
        store.write_result(
            {
                "run_id": store.run_id,
                "task": task,
                "scorer": {"name": "synthetic-dc", "config": config},
                **summarize(WINOGROUND_METRICS, outcomes),
                "n_expected": 3,
                "partial": False,
            }
        )
    return store.path


def test_report_and_choose_timesteps_agree_on_a_t_range_run_without_a_timesteps_block(tmp_path):
    """A run whose config says t_range but (written by an older version) has no ``timesteps``
    summary and whose arrays carry no timesteps: both readers fall back to the same grid, the
    scorer's own over the window."""
    config = {
        "method": "diffusion_classifier",
        "n_timesteps": N,
        "num_train_timesteps": 1000,
        "t_range": list(T_RANGE),
        "normalize": "none",
    }
    run_dir = _synthetic_run(tmp_path, config, lambda n: {})
    grid = timestep_grid(N, 1000, T_RANGE).tolist()
    assert timestep_select.load_run(run_dir).timesteps.tolist() == grid
    assert _report_timesteps(run_dir) == grid


def test_readers_take_the_stored_timesteps_over_the_config(tmp_path):
    """Stored timesteps are what the error columns belong to; the config is not consulted."""
    config = {
        "method": "diffusion_classifier",
        "n_timesteps": N,
        "num_train_timesteps": 1000,
        "t_range": None,
        "normalize": "none",
    }
    stored = np.array([10, 20, 30, 40], dtype=np.int64)
    run_dir = _synthetic_run(tmp_path, config, lambda n: {"timesteps": stored})
    assert timestep_select.load_run(run_dir).timesteps.tolist() == stored.tolist()
    assert _report_timesteps(run_dir) == stored.tolist()
