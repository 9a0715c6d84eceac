"""The digits task: split, manifest, examples, metrics, and a run through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from winoground_eval.core.errors import DataError
from winoground_eval.core.registry import resolve_task
from winoground_eval.tasks import digits


def test_split_sizes_disjoint_and_stratified():
    manifest = digits.packaged_manifest()
    splits = {k: v["indices"] for k, v in manifest["splits"].items()}
    assert {k: len(v) for k, v in splits.items()} == {"test": 300, "val": 300, "train": 1197}
    assert len(set().union(*map(set, splits.values()))) == 1797
    _, labels = digits._load_arrays()
    for name in ("test", "val"):
        assert np.bincount(labels[splits[name]], minlength=10).tolist() == [30] * 10
    # the manifest is what the documented rule gives
    assert digits.split_indices(labels) == splits


def test_examples_images_and_captions():
    task = resolve_task("digits")(split="val", limit=5)
    examples = list(task.examples())
    assert len(examples) == 5 and list(task.metadata())[:5] == [e.id for e in examples]
    assert len(task.metadata()) == 300  # the whole split, whatever the limit
    ex = examples[0]
    assert ex.captions == tuple(str(k) for k in range(10))
    (im,) = ex.images
    assert im.mode == "L" and im.size == (8, 8)
    arr = np.asarray(im)
    assert arr.max() <= 255 and set(np.unique(arr)) <= {round(v * 255 / 16) for v in range(17)}
    y = task.label(ex.id)
    assert ex.tags == {"class": [str(y)]}
    assert len(ex.comparisons) == 9 and all(c[1] == (0, y) for c in ex.comparisons)
    info = task.info()
    assert info["split"] == "val" and len(info["data_fingerprint"]) == 16


def test_manifest_mismatch_is_an_error(monkeypatch):
    manifest = digits.packaged_manifest()
    manifest["splits"]["test"]["sha256"] = "0" * 64
    monkeypatch.setattr(digits, "packaged_manifest", lambda: manifest)
    with pytest.raises(DataError, match="checksum"):
        digits.DigitsTask(split="test")
    with pytest.raises(DataError, match="no split"):
        digits.DigitsTask(split="nope")


def test_metrics_outcomes_ties_and_info():
    task = digits.DigitsTask(split="test", limit=20)
    ids = [ex.id for ex in task.examples()]
    scores = {}
    for n, i in enumerate(ids):
        s = np.zeros((1, 10))
        y = task.label(i)
        if n < 10:
            s[0, y] = 1.0  # right
        elif n < 15:
            s[0, (y + 1) % 10] = 1.0  # wrong
        # the rest: all equal, a tie, wrong
        scores[i] = s
    assert task.outcomes(ids[0], scores[ids[0]]) == {"top1": 1.0}
    assert task.outcomes(ids[19], scores[ids[19]]) == {"top1": 0.0}
    assert task.example_info(ids[10], scores[ids[10]]) == {"pred": (task.label(ids[10]) + 1) % 10}
    m = task.metrics(scores)
    assert m["metrics"]["top1"] == pytest.approx(10 / 20)
    per_class = [r["top1"] for r in m["per_class"]]  # the layout of every classification task
    assert m["metrics"]["mean_per_class"] == pytest.approx(np.mean(per_class))
    assert m["n_ties"] == 5 and m["n_examples"] == 20
    assert sum(n for row in m["confusion"].values() for n in row.values()) == 20
    assert m["ci95"]["mean_per_class"] is not None
    assert [s["name"] for s in m["metric_specs"] if s["primary"]] == ["top1"]
    assert sum(r["n"] for r in m["breakdown"]["class"].values()) == 20


def run_task(task_name: str, scorer_name: str, out, *, limit=None, task_options=None, scorer_options=None) -> dict:
    """Run through the runner and run store (what `wg-eval run` does, without its table)."""
    from pathlib import Path

    from winoground_eval.core.registry import resolve_scorer
    from winoground_eval.core.runner import RunSpec, open_store, run

    task = resolve_task(task_name)(**(task_options or {}), **({"limit": limit} if limit else {}))
    scorer = resolve_scorer(scorer_name)(**(scorer_options or {}))
    spec = RunSpec(task_name, scorer_name, Path(out), limit)
    store = open_store(spec, task, scorer)
    with store:
        return run(spec, task, scorer, store)


def test_run_with_dummy(tmp_path):
    result = run_task("digits", "dummy", tmp_path, limit=12)
    assert result["n_examples"] == 12 and "top1" in result["metrics"]
    on_disk = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert on_disk["metrics"]["top1"] == result["metrics"]["top1"]


# --------------------------------------------------------------------------- ImageNet-V2 / ImageNet-A from --data-dir


def _jpeg(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (10, 12), colour).save(path)


def test_imagenet_a_maps_sorted_wnids_to_its_200_indices(tmp_path):
    from winoground_eval.tasks.imagenet_variants import IMAGENET_A_INDICES

    root = tmp_path / "imagenet-a"
    wnids = sorted(f"n{1000000 + 37 * k:08d}" for k in range(200))
    for k, wnid in enumerate(wnids[:3]):
        _jpeg(root / wnid / f"img{k}.jpg", (k, 0, 0))
    for wnid in wnids[3:]:
        (root / wnid).mkdir(parents=True)
    with pytest.raises(DataError, match="7500|7,500|the dataset has"):
        resolve_task("imagenet-a")(data_dir=str(tmp_path))
    task = resolve_task("imagenet-a")(data_dir=str(tmp_path), limit=3)
    examples = list(task.examples())
    assert len(examples) == 3 and len(examples[0].captions) == 200
    assert [e.tags["class"] for e in examples] == [[str(IMAGENET_A_INDICES[k])] for k in range(3)]
    assert examples[1].captions[1] == str(IMAGENET_A_INDICES[1])
    s = np.zeros((1, 200))
    s[0, 1] = 1.0
    assert task.outcomes(examples[1].id, s) == {"top1": 1.0} and task.outcomes(examples[0].id, s) == {"top1": 0.0}
    assert task.example_info(examples[0].id, s) == {"pred": IMAGENET_A_INDICES[1]}
    (root / "extra").mkdir()
    with pytest.raises(DataError):
        resolve_task("imagenet-a")(data_dir=str(tmp_path), limit=3)


def test_imagenet_v2_labels_are_folder_indices(tmp_path):
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    _jpeg(root / "0" / "a.jpeg", (1, 2, 3))
    _jpeg(root / "207" / "b.jpeg", (4, 5, 6))
    task = resolve_task("imagenet-v2")(data_dir=str(tmp_path), limit=2)
    examples = list(task.examples())
    assert [e.tags["class"] for e in examples] == [["0"], ["207"]]
    assert len(examples[0].captions) == 1000 and task.info()["data_fingerprint"]
    with pytest.raises(DataError, match="--data-dir"):
        resolve_task("imagenet-v2")()
