"""TaskFinder rebuilds a finished classification run's task offline: its info records the
prompts' source (``shipped:cifar10.csv``), not a ``-t prompts=`` value, and the user's own
files by name only. `wg-eval choose-timesteps` reads such a run's per-example outcomes
from the rebuilt task."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from winoground_eval.cli.main import main
from winoground_eval.results.taskfinder import TaskFinder
from winoground_eval.tasks import classification as cls
from winoground_eval.testing.classification_fixtures import CIFAR_NAMES, write_cifar10


@pytest.fixture
def cifar(tmp_path):
    root = tmp_path / "cifar"
    write_cifar10(root)
    return root


def test_shipped_prompts_are_rebuilt_from_data_dir(cifar):
    task = cls.cifar10(data_dir=str(cifar))
    info = task.info()
    assert info["prompts"] == "shipped:cifar10.csv"
    found, why = TaskFinder([cifar]).task_for(info)
    assert why is None and found.info() == info
    # ensemble templates and per_class come back too (the fingerprint checks the prompts)
    ens = cls.cifar10(data_dir=str(cifar), templates="ensemble", per_class=1)
    found, why = TaskFinder([cifar]).task_for(ens.info())
    assert why is None and found.info() == ens.info() and len(found.metadata()) == 10


def test_other_data_is_still_refused(cifar, tmp_path):
    info = cls.cifar10(data_dir=str(cifar)).info()
    other = tmp_path / "other"
    write_cifar10(other, seed=1)
    found, why = TaskFinder([other]).task_for(info)
    assert found is None and "holds other data" in why


def test_user_files_are_looked_for_in_data_dir(cifar, tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    prompts = own / "my_prompts.csv"
    prompts.write_text("prompt,classname,classidx\n" + "".join(f"a {n}.,{n},{i}\n" for i, n in enumerate(CIFAR_NAMES)))
    np.save(own / "pick.npy", np.array([3, 1, 4]))
    task = cls.cifar10(data_dir=str(cifar), prompts=str(prompts), subset=str(own / "pick.npy"))
    info = task.info()
    assert info["prompts"] == "user:my_prompts.csv" and info["subset"] == "pick.npy"
    # not reachable: the message names the file and the flag that supplies it
    found, why = TaskFinder([cifar]).task_for(info)
    assert found is None
    assert "my_prompts.csv" in why and "-t prompts=my_prompts.csv" in why and "--data-dir" in why
    # the files in the data folder: rebuilt, same examples
    shutil.copy(prompts, cifar / "my_prompts.csv")
    shutil.copy(own / "pick.npy", cifar / "pick.npy")
    found, why = TaskFinder([cifar]).task_for(info)
    assert why is None and found.info() == info and list(found.metadata()) == list(task.metadata())
    # a different subset file of the same name is refused by its sha256
    np.save(cifar / "pick.npy", np.array([0, 1]))
    found, why = TaskFinder([cifar]).task_for(info)
    assert found is None and "pick.npy" in why and "sha256" in why


def test_an_image_folder_is_rebuilt_from_its_data_source(tmp_path):
    from winoground_eval.testing.classification_fixtures import write_fixture

    kwargs = write_fixture("imagefolder", tmp_path / "folder")
    info = cls.imagefolder(**kwargs).info()
    found, why = TaskFinder([]).task_for(info)
    assert found is None and "no absolute data source" in why
    source = {"task": f"imagefolder:{kwargs['path']}", "options": {}}
    found, why = TaskFinder([]).task_for(info, source)
    assert why is None and found.info() == info


def test_choose_timesteps_reads_a_classification_run(cifar, tmp_path, capsys):
    """The bug: choose-timesteps on a cifar10 run failed with and without --data-dir."""
    out = tmp_path / "runs"
    argv = ["run", "--task", "cifar10", "-t", f"data_dir={cifar}", "--scorer", "tiny-dit", "--limit", "3"]
    assert main([*argv, "--out", str(out), "-q", "-o", "device=cpu", "-o", "n_timesteps=4"]) == 0
    [run_dir] = out.glob("cifar10/*/*")
    capsys.readouterr()
    # from the data source run.json records (no --data-dir)
    assert main(["choose-timesteps", str(run_dir), "--window", "100,300", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metric"] == "top1" and doc["n_examples"] == 3
    # the data moved: --data-dir points to it
    moved = tmp_path / "moved"
    cifar.rename(moved)
    assert main(["choose-timesteps", str(run_dir), "--window", "100,300", "--json", "--data-dir", str(moved)]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == doc["rows"]
