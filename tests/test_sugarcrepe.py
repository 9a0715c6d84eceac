"""SugarCrepe: shipped caption files checked by sha256, images from a fake COCO folder drawn here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from winoground_eval.core.errors import DataError
from winoground_eval.core.runner import RunSpec, open_store, run
from winoground_eval.tasks import sugarcrepe
from winoground_eval.tasks.sugarcrepe import SugarCrepeTask

SMALL = ("swap_att", "swap_obj")  # 911 examples: enough for the category macro, quick to draw


def _fake_coco(root, subsets):
    """Tiny JPEGs under root/val2017 for every file the subsets name; no real COCO image."""
    folder = root / "val2017"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = sugarcrepe.packaged_manifest()
    for s in subsets:
        for item in sugarcrepe.read_subset(s, manifest).values():
            path = folder / item["filename"]
            if not path.exists():
                Image.new("RGB", (8, 8), (len(item["filename"]) * 7 % 256, 40, 90)).save(path)
    return root


def test_shipped_files_match_the_issue_counts_and_manifest():
    manifest = sugarcrepe.packaged_manifest()
    counts = {s: manifest["subsets"][s]["n_examples"] for s in sugarcrepe.SUBSETS}
    assert counts == {
        "add_att": 692,
        "add_obj": 2062,
        "replace_att": 788,
        "replace_obj": 1652,
        "replace_rel": 1406,
        "swap_att": 666,
        "swap_obj": 245,
    }
    for s in sugarcrepe.SUBSETS:
        data = sugarcrepe.read_subset(s, manifest)  # checks the sha256
        item = next(iter(data.values()))
        assert set(item) == {"filename", "caption", "negative_caption"} and item["filename"].endswith(".jpg")
    assert manifest["revision"] == "0047054b243992f0fad63d6f64f7544862daf846"


def test_a_changed_caption_file_is_an_error(monkeypatch):
    manifest = sugarcrepe.packaged_manifest()
    manifest["subsets"]["swap_obj"]["sha256"] = "0" * 64
    with pytest.raises(DataError, match="differs from data_manifests/sugarcrepe.json"):
        sugarcrepe.read_subset("swap_obj", manifest)


def test_missing_data_names_the_folder_and_the_download(tmp_path):
    with pytest.raises(DataError, match=r"--data-dir.*cocodataset.org/#download"):
        SugarCrepeTask()
    with pytest.raises(DataError, match=rf"no COCO 2017 val images in {tmp_path}.*val2017.*cocodataset.org"):
        SugarCrepeTask(data_dir=str(tmp_path))
    (tmp_path / "val2017").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val2017" / "000000000001.jpg")  # not one SugarCrepe uses
    with pytest.raises(DataError, match="none of SugarCrepe's images"):
        SugarCrepeTask(data_dir=str(tmp_path), subsets=("swap_obj",))
    with pytest.raises(DataError, match="among add_att"):
        SugarCrepeTask(data_dir=str(tmp_path), subsets=("swap",))


def test_examples_ids_tags_and_both_folder_layouts(tmp_path):
    root = _fake_coco(tmp_path, ("swap_obj",))
    for data_dir in (root, root / "val2017"):
        task = SugarCrepeTask(data_dir=str(data_dir), subsets=("swap_obj",), limit=3)
        exs = list(task.examples())
        assert [e.id for e in exs] == ["swap_obj-0", "swap_obj-1", "swap_obj-2"]
        assert exs[0].captions == (
            "A cat sits on its hind legs, and swats at the plant.",
            "A cat sits on the plant, and swats at its hind legs.",
        )
        assert exs[0].tags == {"subset": ["swap_obj"], "words": ["same words as the positive"]}
        assert exs[0].images[0].mode == "RGB"
        assert exs[0].comparisons == (("accuracy", (0, 0), (0, 1)),)
        assert task.info()["subsets"] == ["swap_obj"]


def test_metrics_per_subset_and_the_papers_category_macro(tmp_path):
    task = SugarCrepeTask(data_dir=str(_fake_coco(tmp_path, SMALL)), subsets=SMALL)
    ids = list(task.metadata())
    assert len(ids) == 911
    # swap_att: first 500 right, rest wrong; swap_obj: every 5th right; one tie
    scores = {}
    for ex_id in ids:
        subset, idx = ex_id.rsplit("-", 1)
        right = int(idx) < 500 if subset == "swap_att" else int(idx) % 5 == 0
        scores[ex_id] = np.array([[1.0, 0.0]]) if right else np.array([[0.0, 1.0]])
    scores["swap_obj-1"] = np.array([[0.5, 0.5]])
    result = task.metrics(scores)
    n_obj_right = sum(1 for i in ids if i.startswith("swap_obj-") and int(i.rsplit("-", 1)[1]) % 5 == 0)
    assert n_obj_right == 50  # ids keep the file's keys, which skip one index in swap_obj
    att, obj = 500 / 666, n_obj_right / 245
    assert result["breakdown"]["subset"]["swap_att"] == {"accuracy": pytest.approx(att), "n": 666}
    assert result["breakdown"]["subset"]["swap_obj"] == {"accuracy": pytest.approx(obj), "n": 245}
    assert result["metrics"]["swap"] == pytest.approx((att + obj) / 2)  # unweighted, as the paper
    assert result["metrics"]["accuracy"] == pytest.approx((500 + n_obj_right) / 911)  # pooled
    assert "add" not in result["metrics"] and result["tie_ids"] == ["swap_obj-1"]
    specs = {m["name"]: m for m in result["metric_specs"]}
    assert specs["accuracy"]["primary"] and not specs["swap"]["per_example"]
    # a partial run that has not reached swap_obj has no swap figure
    partial = task.metrics({i: scores[i] for i in ids[:10]})
    assert "swap" not in partial["metrics"] and partial["n_examples"] == 10


def test_all_subsets_declare_the_three_categories(tmp_path, monkeypatch):
    monkeypatch.setattr(SugarCrepeTask, "fingerprint", lambda self: "0" * 64)  # no images needed to list specs
    task = SugarCrepeTask(data_dir=str(_fake_coco(tmp_path, ("swap_obj",))))
    assert [m.name for m in task.metric_specs] == ["accuracy", "add", "replace", "swap"]
    assert len(task.metadata()) == 7511


def test_through_the_runner_and_skip_bad(tmp_path):
    from winoground_eval.baselines.dummy import DummyScorer

    root = _fake_coco(tmp_path / "coco", ("swap_obj",))
    task = SugarCrepeTask(data_dir=str(root), subsets=("swap_obj",), limit=6)
    fingerprint = task.info()["data_fingerprint"]
    missing = task.row("swap_obj-2").images[0]
    missing.unlink()
    task = SugarCrepeTask(data_dir=str(root), subsets=("swap_obj",), limit=6)
    assert task.info()["data_fingerprint"] != fingerprint
    spec = RunSpec("sugarcrepe", "dummy", tmp_path / "runs", limit=6, skip_bad=True)
    scorer = DummyScorer()
    with open_store(spec, task, scorer) as store:
        result = run(spec, task, scorer, store)
    assert result["n_examples"] == 5 and list(result["skipped"]) == ["swap_obj-2"]
    assert result["breakdown"]["subset"]["swap_obj"]["n"] == 5
    json.dumps(result)


def test_same_words_breakdown_reproduces_the_issue_count(tmp_path, monkeypatch):
    """572 of 7,511 negatives use exactly the positive's words (408 swap_att, 164 swap_obj)."""
    assert sugarcrepe.same_words("A woman's hat on a dog.", "a dog's hat on a woman") is False  # possessives are words
    assert sugarcrepe.same_words("two men on four-wheelers", "four men on two-wheelers")
    assert not sugarcrepe.same_words("a red ball", "a red red ball")  # a multiset: counts matter
    monkeypatch.setattr(SugarCrepeTask, "fingerprint", lambda self: "0" * 64)
    task = SugarCrepeTask(data_dir=str(_fake_coco(tmp_path, ("swap_obj",))))
    words = {}
    for ex_id, tags in task.metadata().items():
        words.setdefault((tags["subset"][0], tags["words"][0]), []).append(ex_id)
    same = {k[0]: len(v) for k, v in words.items() if k[1] == sugarcrepe.SAME_WORDS}
    assert same == {"swap_att": 408, "swap_obj": 164} and sum(len(v) for v in words.values()) == 7511
    scores = {
        i: np.array([[1.0, 0.0]]) if t["words"] == [sugarcrepe.SAME_WORDS] else np.array([[0.0, 1.0]])
        for i, t in task.metadata().items()
    }
    result = task.metrics(scores)
    assert result["breakdown"]["words"] == {
        sugarcrepe.OTHER_WORDS: {"accuracy": 0.0, "n": 7511 - 572},
        sugarcrepe.SAME_WORDS: {"accuracy": 1.0, "n": 572},
    }
    assert result["n_identical_negatives"] == 0
