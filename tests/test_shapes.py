"""The procedural shapes task: deterministic, checksummed, swaps that keep the words, held-out combinations."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from winoground_eval.core.errors import DataError
from winoground_eval.core.runner import RunSpec, open_store, run
from winoground_eval.tasks import shapes
from winoground_eval.tasks.shapes import ShapesTask


def test_generator_is_deterministic_and_matches_the_manifest():
    a, b = shapes.make_spec("test", 7), shapes.make_spec("test", 7)
    assert a == b
    assert [im.tobytes() for im in shapes.images_of(a)] == [im.tobytes() for im in shapes.images_of(b)]
    manifest = shapes.packaged_manifest()
    assert manifest["generator_version"] == shapes.GENERATOR_VERSION
    for split, entry in manifest["splits"].items():
        assert entry["n_examples"] == shapes.SPLIT_SIZES[split]
        assert shapes.split_checksum(split, entry["n_examples"]) == entry["sha256"], split


def test_a_changed_generator_fails_loudly(monkeypatch):
    monkeypatch.setitem(shapes.COLOURS, "red", (216, 35, 35))  # one channel of one colour, one unit off
    with pytest.raises(DataError, match="checksum .* GENERATOR_VERSION"):
        ShapesTask(split="test")
    monkeypatch.setattr(shapes, "GENERATOR_VERSION", "999")
    with pytest.raises(DataError, match="generator version 999"):
        ShapesTask(split="test")


@pytest.mark.parametrize("split", ["test", "heldout", "val"])
def test_pairs_are_the_same_words_in_another_order(split):
    task = ShapesTask(split=split)
    assert len(task.metadata()) == shapes.SPLIT_SIZES[split]
    for spec in task.specs:
        c0, c1 = spec.captions()
        assert c0 != c1
        assert sorted(c0.split()) == sorted(c1.split()), spec.id
        im0, im1 = shapes.images_of(spec)
        assert im0.mode == "RGB" and im0.size == (shapes.IMAGE_SIZE, shapes.IMAGE_SIZE)
        assert im0.tobytes() != im1.tobytes()
    kinds = Counter(tags["collapsed_tag"][0] for tags in task.metadata().values())
    assert set(kinds) == {"Object", "Relation", "Both"} and min(kinds.values()) >= 90


def test_swaps_do_what_their_kind_says():
    for i in range(60):
        spec = shapes.make_spec("test", i)
        (a, rel, b), (a2, rel2, b2) = [(s.subject, s.relation, s.object) for s in spec.scenes]
        assert rel == rel2
        if spec.kind == "Relation":
            assert (a2, b2) == (b, a)
        elif spec.kind == "Both":
            assert (a2.colour, a2.shape, b2.colour, b2.shape) == (a.colour, b.shape, b.colour, a.shape)
        elif spec.swap == "colour":
            assert (a2.colour, a2.shape, b2.colour, b2.shape) == (b.colour, a.shape, a.colour, b.shape)
        else:
            assert (a2.size, b2.size) == (b.size, a.size) and a.size != b.size


def test_heldout_combinations_never_appear_in_training_or_the_test_split():
    train = set().union(*(shapes.make_spec("train", i).combos() for i in range(2000)))
    assert not train & shapes.HELDOUT_COMBOS
    for split in ("val", "test"):
        assert not any(
            shapes.make_spec(split, i).combos() & shapes.HELDOUT_COMBOS for i in range(shapes.SPLIT_SIZES[split])
        )
    assert all(
        shapes.make_spec("heldout", i).combos() & shapes.HELDOUT_COMBOS for i in range(shapes.SPLIT_SIZES["heldout"])
    )
    # the evaluated splits draw from seeds disjoint from training
    assert len({shapes.SPLIT_SEEDS[s] for s in shapes.SPLIT_SEEDS}) == len(shapes.SPLIT_SEEDS)


def test_images_show_what_the_caption_says():
    """The subject's colour is on the side (or half) that the relation names."""
    for i in range(30):
        spec = shapes.make_spec("val", i)
        for scene, image in zip(spec.scenes, shapes.images_of(spec)):
            px = np.asarray(image, dtype=np.int32)
            colour = np.array(shapes.COLOURS[scene.subject.colour])
            mask = np.abs(px - colour).sum(-1) < 30
            ys, xs = np.nonzero(mask)
            assert len(xs) > 3
            centre = {
                "left of": xs.mean() < 16,
                "right of": xs.mean() > 16,
                "above": ys.mean() < 16,
                "below": ys.mean() > 16,
            }
            assert centre[scene.relation], (spec.id, scene.caption())


def test_limit_and_unknown_split():
    assert len(list(ShapesTask(limit=5).examples())) == 5
    with pytest.raises(DataError, match="no split 'train'"):
        ShapesTask(split="train")  # type: ignore[arg-type]


def test_through_the_runner(tmp_path):
    from winoground_eval.baselines.dummy import DummyScorer

    task, scorer = ShapesTask(limit=12), DummyScorer()
    spec = RunSpec("shapes", "dummy", tmp_path, limit=12)
    store = open_store(spec, task, scorer)
    with store:
        result = run(spec, task, scorer, store)
    assert result["n_examples"] == 12
    assert set(result["breakdown"]["collapsed_tag"]) == {"Object", "Relation", "Both"}
    assert set(result["breakdown"]["split"]) == {"test"}
    json.dumps(result)


def test_through_the_cli(tmp_path, monkeypatch):
    from winoground_eval.cli.main import main
    from winoground_eval.core import registry

    if "shapes" not in registry.TASKS:  # until the registry lists it
        monkeypatch.setitem(
            registry.TASKS, "shapes", registry.Entry("winoground_eval.tasks.shapes:ShapesTask", "shapes")
        )

    assert main(["run", "--task", "shapes", "--scorer", "dummy", "--out", str(tmp_path), "--limit", "10", "-q"]) == 0
    results = list(tmp_path.rglob("result.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert result["n_examples"] == 10 and "collapsed_tag" in result["breakdown"]
