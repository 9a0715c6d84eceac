"""ARO: VG-Relation / VG-Attribution with crops and the paper's macro accuracies, Order files; fake data drawn here."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from winoground_eval.core.errors import DataError
from winoground_eval.core.runner import RunSpec, open_store, run
from winoground_eval.tasks import aro
from winoground_eval.tasks.aro import AroTask


def _vg_image(path, box, colour):
    """A 64x48 grey image with one coloured rectangle at ``box`` (x, y, w, h)."""
    img = Image.new("RGB", (64, 48), (128, 128, 128))
    x, y, w, h = box
    img.paste(Image.new("RGB", (w, h), colour), (x, y))
    img.save(path)


def _fake_aro(root, *, relations, pairs, order=False):
    """ARO layout: the two VG JSON files, images/, and optionally coco_order.json elsewhere (symlinked)."""
    (root / "images").mkdir(parents=True)
    rel_cases, att_cases = [], []
    for i, relation in enumerate(relations):
        box = (4 + i % 5, 3, 20 + i % 7, 10 + i % 3)
        _vg_image(root / "images" / f"r{i}.png", box, (200, 30, 30))
        x, y, w, h = box
        rel_cases.append(
            {
                "image_id": str(i),
                "image_path": f"r{i}.png",
                "bbox_x": x,
                "bbox_y": y,
                "bbox_w": w,
                "bbox_h": h,
                "relation_name": relation,
                "true_caption": f"the cup is {relation} the table",
                "false_caption": f"the table is {relation} the cup",
            }
        )
    for i, (a, b) in enumerate(pairs):
        _vg_image(root / "images" / f"a{i}.png", (10, 10, 16, 16), (30, 30, 200))
        att_cases.append(
            {
                "image_path": f"a{i}.png",
                "bbox_x": 10,
                "bbox_y": 10,
                "bbox_w": 16,
                "bbox_h": 16,
                "attributes": [a, b],
                "true_caption": f"the {a} cup and the {b} table",
                "false_caption": f"the {b} cup and the {a} table",
            }
        )
    (root / "visual_genome_relation.json").write_text(json.dumps(rel_cases))
    (root / "visual_genome_attribution.json").write_text(json.dumps(att_cases))
    if order:
        coco = root.parent / "coco2014"
        (coco / "val2014").mkdir(parents=True)
        cases = []
        for i in range(3):
            Image.new("RGB", (20, 20), (0, 90 * i, 0)).save(coco / "val2014" / f"c{i}.jpg")
            cases.append(
                {
                    "image": f"val2014/c{i}.jpg",
                    "caption_options": [
                        f"a dog on grass {i}",
                        "dog a on grass",
                        "grass on a dog",
                        "a grass dog on",
                        "on dog a grass",
                    ],
                }
            )
        (coco / "coco_order.json").write_text(json.dumps(cases))
        os.symlink(coco / "coco_order.json", root / "coco_order.json")
    return root


def test_manifest_says_where_to_get_everything():
    m = aro.packaged_manifest()
    assert m["revision"] == "81fdd20dc5b6f434aa5a4a971717bc80d1cedb0d"
    assert set(m["download"]) >= set(aro.SUBSETS) and "images" in m["download"]
    assert "of" in m["vg_relation_macro"]["excluded_relations"] and m["vg_attribution_macro"]["min_count"] == 25
    assert m["expected_counts_from_paper"]["vg_relation"] == 23937


def test_missing_data_errors_name_the_folder_and_the_source(tmp_path):
    with pytest.raises(DataError, match="--data-dir.*visual_genome_relation.json.*vision-language-models-are-bows"):
        AroTask()
    with pytest.raises(
        DataError, match=rf"{tmp_path}/visual_genome_relation.json not found.*1kX2iCHEv0CADL8dSO1nMdW-V0NqIAiP3"
    ):
        AroTask(data_dir=str(tmp_path))
    (tmp_path / "visual_genome_relation.json").write_text("[]")
    with pytest.raises(DataError, match=r"images not found.*vgr_vga_images.zip"):
        AroTask(data_dir=str(tmp_path), subsets=("vg_relation",))
    with pytest.raises(DataError, match="coco_order.json not found.*spaCy"):
        AroTask(data_dir=str(tmp_path), subsets=("coco_order",))
    with pytest.raises(DataError, match="among vg_relation"):
        AroTask(data_dir=str(tmp_path), subsets=("vgr",))


def test_vg_examples_are_cropped_to_the_box_and_true_caption_first(tmp_path):
    root = _fake_aro(tmp_path / "aro", relations=["on", "behind"], pairs=[("red", "wooden")])
    task = AroTask(data_dir=str(root))
    assert task.subsets == ("vg_relation", "vg_attribution")  # no Order file: left out
    exs = {e.id: e for e in task.examples()}
    assert list(exs) == ["vg_relation-0", "vg_relation-1", "vg_attribution-0"]
    e = exs["vg_relation-1"]
    assert e.images[0].size == (21, 11)  # the box's w, h
    px = np.asarray(e.images[0])
    assert (px == [200, 30, 30]).all()  # only the rectangle is left
    assert e.captions == ("the cup is behind the table", "the table is behind the cup")
    assert e.tags == {"subset": ["vg_relation"], "relation": ["behind"]}
    assert exs["vg_attribution-0"].tags["attribute_pair"] == ["red_wooden"]


def test_the_papers_macro_accuracies(tmp_path):
    relations = ["on"] * 4 + ["behind"] * 2 + ["of"] * 3  # "of" is one of the relations the paper leaves out
    pairs = [("red", "wooden")] * 25 + [("big", "small")] * 3  # the second pair has < 25 examples
    task = AroTask(data_dir=str(_fake_aro(tmp_path / "aro", relations=relations, pairs=pairs)))
    right, wrong = np.array([[2.0, 1.0]]), np.array([[1.0, 2.0]])
    scores = {}
    for i in range(9):  # on: 3/4 right, behind: 0/2, of: 3/3
        scores[f"vg_relation-{i}"] = right if i in (0, 1, 2, 6, 7, 8) else wrong
    for i in range(28):  # red_wooden: 10/25; big_small: 3/3 (ignored by the macro)
        scores[f"vg_attribution-{i}"] = right if i < 10 or i >= 25 else wrong
    scores["vg_relation-3"] = np.array([[1.0, 1.0]])  # a tie is wrong
    result = task.metrics(scores)
    assert result["metrics"]["vg_relation"] == pytest.approx((3 / 4 + 0) / 2)
    assert result["metrics"]["vg_attribution"] == pytest.approx(10 / 25)
    assert result["metrics"]["accuracy"] == pytest.approx((6 + 13) / 37)
    assert result["breakdown"]["relation"]["of"] == {"accuracy": 1.0, "n": 3}
    assert result["breakdown"]["subset"]["vg_attribution"]["n"] == 28
    assert result["tie_ids"] == ["vg_relation-3"]
    specs = {m["name"]: m for m in result["metric_specs"]}
    assert specs["vg_relation"]["primary"] and not specs["vg_relation"]["per_example"]
    assert not specs["accuracy"]["primary"]


def test_order_subsets_from_dumped_test_cases(tmp_path):
    root = _fake_aro(tmp_path / "aro", relations=["on"], pairs=[("red", "wooden")], order=True)
    task = AroTask(data_dir=str(root))
    assert task.subsets == ("vg_relation", "vg_attribution", "coco_order")
    only = AroTask(data_dir=str(root), subsets=("coco_order",))
    exs = list(only.examples())
    assert [len(e.captions) for e in exs] == [5, 5, 5] and abs(exs[2].images[0].getpixel((0, 0))[1] - 180) <= 2
    assert exs[0].comparisons == tuple(("accuracy", (0, 0), (0, k)) for k in range(1, 5))
    scores = {
        e.id: np.array([[1.0, 0.0, 0.0, 0.0, 0.0]]) if e.id != "coco_order-1" else np.array([[0.0, 0, 0, 0, 1]])
        for e in exs
    }
    result = only.metrics(scores)
    assert result["metrics"]["coco_order"] == pytest.approx(2 / 3)
    assert [m["name"] for m in result["metric_specs"] if m["primary"]] == ["coco_order"]
    (tmp_path / "coco2014" / "coco_order.json").write_text(json.dumps([{"image": "x.jpg", "caption_options": ["one"]}]))
    with pytest.raises(DataError, match="test case 0 of .*coco_order.json"):
        AroTask(data_dir=str(root), subsets=("coco_order",))


def test_through_the_runner_with_skip_bad_and_fingerprint(tmp_path):
    from winoground_eval.baselines.dummy import DummyScorer

    root = _fake_aro(tmp_path / "aro", relations=["on", "behind", "under"], pairs=[("red", "wooden")])
    before = AroTask(data_dir=str(root)).info()
    (root / "images" / "r1.png").unlink()
    task = AroTask(data_dir=str(root), limit=3)
    assert task.info()["data_fingerprint"] != before["data_fingerprint"] and task.info()["subsets"] == [
        "vg_relation",
        "vg_attribution",
    ]
    with pytest.raises(DataError, match="vg_relation-1"):
        list(task.examples())
    spec = RunSpec("aro", "dummy", tmp_path / "runs", limit=3, skip_bad=True)
    scorer = DummyScorer()
    with open_store(spec, task, scorer) as store:
        result = run(spec, task, scorer, store)
    assert result["n_examples"] == 2 and list(result["skipped"]) == ["vg_relation-1"]
    json.dumps(result)


def test_order_ties_count_as_aro_counts_them_with_the_strict_figure_beside(tmp_path):
    """ARO's argmax with the true caption first: an Order tie is right (primary), wrong in *_strict;
    a VG tie stays wrong (its true caption is second in ARO's list). Identical perturbations are counted."""
    root = _fake_aro(tmp_path / "aro", relations=["on", "under"], pairs=[("red", "wooden")], order=True)
    cases = json.loads((tmp_path / "coco2014" / "coco_order.json").read_text())
    cases[2]["caption_options"][3] = " A dog on  grass 2"  # a shuffle that left the caption unchanged
    (tmp_path / "coco2014" / "coco_order.json").write_text(json.dumps(cases))
    task = AroTask(data_dir=str(root))
    names = [(m.name, m.primary, m.per_example) for m in task.metric_specs]
    assert names == [
        ("accuracy", False, True),
        ("accuracy_strict", False, True),
        ("vg_relation", True, False),
        ("vg_attribution", False, False),
        ("coco_order", False, False),
        ("coco_order_strict", False, False),
    ]
    tie5 = np.array([[1.0, 1.0, 0.0, 0.0, 0.0]])
    scores = {
        "vg_relation-0": np.array([[1.0, 1.0]]),
        "vg_relation-1": np.array([[2.0, 1.0]]),
        "vg_attribution-0": np.array([[2.0, 1.0]]),
        "coco_order-0": tie5,
        "coco_order-1": np.array([[0.0, 1.0, 0.0, 0.0, 0.0]]),
        "coco_order-2": np.array([[3.0, 0.0, 0.0, 3.0, 0.0]]),
    }
    result = task.metrics(scores)
    assert result["metrics"]["coco_order"] == pytest.approx(2 / 3)  # two ties, right as ARO counts them
    assert result["metrics"]["coco_order_strict"] == 0.0
    assert result["metrics"]["vg_relation"] == pytest.approx(0.5)  # the VG tie is wrong, as in ARO's code
    assert result["per_example"]["vg_relation-0"] == {"accuracy": 0.0, "accuracy_strict": 0.0}
    assert result["per_example"]["coco_order-0"] == {"accuracy": 1.0, "accuracy_strict": 0.0}
    assert result["metrics"]["accuracy"] == pytest.approx(4 / 6) and result["metrics"][
        "accuracy_strict"
    ] == pytest.approx(2 / 6)
    assert (
        result["tie_ids"] == ["vg_relation-0", "coco_order-0", "coco_order-2"] and result["n_ties_counted_correct"] == 2
    )
    assert result["identical_negative_ids"] == ["coco_order-2"] and result["n_identical_negatives"] == 1
    only = AroTask(data_dir=str(root), subsets=("coco_order",))
    assert [m.name for m in only.metric_specs if m.primary] == ["coco_order"]
    vg = AroTask(data_dir=str(root), subsets=("vg_relation",))
    assert [m.name for m in vg.metric_specs] == ["accuracy", "vg_relation"]  # no tie convention to report
