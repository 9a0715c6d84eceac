"""`wg-eval run --task imagenet --scorer dit-...` runs with the reference's DiT setting: the
task's Stable Diffusion defaults (adaptive stages) never reach a DiT scorer, and its
prompts (one per class, in class order) are read as class k = caption k. A DiT run is a
diffusion run for `wg-eval choose-timesteps`."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from winoground_eval.cli import choose as choose_cli
from winoground_eval.cli.main import main  # noqa: E402
from winoground_eval.core import registry  # noqa: E402
from winoground_eval.core.execute import scorer_options  # noqa: E402
from winoground_eval.core.request import RunRequest  # noqa: E402
from winoground_eval.diffusion.dit import save_dit_folder  # noqa: E402


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    from winoground_eval.tasks.classification import ClassificationTask

    root = tmp_path_factory.mktemp("imagenet")
    name, kwargs = ClassificationTask.offline_fixture(root, "imagenet")
    return kwargs


@pytest.fixture(scope="module")
def dit_1000(tmp_path_factory):
    """A tiny random pixel-space learned-sigma DiT with ImageNet's 1000 classes."""
    torch.manual_seed(0)
    model = diffusers.DiTTransformer2DModel(
        num_attention_heads=1,
        attention_head_dim=8,
        in_channels=3,
        out_channels=6,
        num_layers=1,
        sample_size=8,
        patch_size=4,
        num_embeds_ada_norm=1000,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape) * 0.2)
    out = tmp_path_factory.mktemp("dit1000")
    save_dit_folder(out, model, diffusers.DDPMScheduler())
    return out


def _args(scorer: str, *overrides: str) -> RunRequest:
    return RunRequest(task="imagenet", scorer=scorer, scorer_options=overrides)


def _scorer_kwargs(request: RunRequest, factory, task) -> dict:
    return scorer_options(request, factory, task)[0]


def test_sd_defaults_never_reach_a_dit_scorer(imagenet, dit_1000):
    task = registry.resolve_task("imagenet")(**imagenet)
    assert task.scorer_defaults["n_samples"] == (50, 100, 500, 1000)  # the reference's SD setting
    for name in ("dit-xl-2-256", "dit-xl-2-512", f"dit:{dit_1000}", f"diffusers:{dit_1000}"):
        factory = registry.resolve_scorer(name)
        assert _scorer_kwargs(_args(name), factory, task) == {"condition": "position"}, name
    # the user's own options still win
    factory = registry.resolve_scorer("dit-xl-2-256")
    assert _scorer_kwargs(_args("dit-xl-2-256", "condition=caption"), factory, task) == {"condition": "caption"}
    # Stable Diffusion scorers keep the task's settings
    sd = _scorer_kwargs(_args("sd2"), registry.resolve_scorer("sd2"), task)
    assert sd["n_samples"] == (50, 100, 500, 1000) and sd["to_keep"] == (500, 50, 10, 1) and "condition" not in sd
    # a task without per-family defaults hands a DiT nothing
    bare = SimpleNamespace(name="x", scorer_defaults={"n_samples": (5, 10), "to_keep": (2, 1)})
    assert _scorer_kwargs(_args(f"dit:{dit_1000}"), registry.resolve_scorer(f"dit:{dit_1000}"), bare) == {}
    # the preset's own defaults are the reference's (eval_prob_dit.py as its ImageNet commands run it)
    from winoground_eval.core.overrides import options_of

    params = options_of(factory)
    assert params["n_timesteps"].default == 250 and params["dtype"].default == "float32"
    assert params["loss"].default == "l2" and params["n_samples"].default is None
    assert params["timestep_embedding"].default == "original"


def test_imagenet_with_a_dit_runs_and_choose_timesteps_reads_it(imagenet, dit_1000, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = [
        "run",
        "--task",
        "imagenet",
        "--scorer",
        f"dit:{dit_1000}",
        "--limit",
        "2",
        "--out",
        str(out),
        "-q",
        "-o",
        "device=cpu",
        "-o",
        "n_timesteps=2",
        "-o",
        "batch_size=1000",
    ]
    for key, value in imagenet.items():
        argv += ["-t", f"{key}={value}"]
    assert main(argv) == 0
    [run_dir] = out.glob("imagenet/*/*")
    run = json.loads((run_dir / "run.json").read_text())
    config = run["scorer"]["config"]
    assert list(config)[:2] == ["kind", "version"] and config["kind"] == "dit"
    assert config["conditioning"]["condition"] == "position" and "adaptive" not in config
    lines = [json.loads(line) for line in (run_dir / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(line["info"]["unet_calls"] == 2 * 1000 for line in lines)


def test_choose_timesteps_reads_a_dit_run(tmp_path, capsys):
    out = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                "--task",
                "digits",
                "--scorer",
                "tiny-dit",
                "--limit",
                "4",
                "--out",
                str(out),
                "-q",
                "-o",
                "device=cpu",
                "-o",
                "n_timesteps=8",
            ]
        )
        == 0
    )
    [run_dir] = out.glob("digits/*/*")
    capsys.readouterr()
    parser = argparse.ArgumentParser()
    choose_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["choose-timesteps", str(run_dir), "--window", "100,300", "--window", "300,500", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_examples"] == 4 and report["full"]["n_timesteps"] == 8
