"""The task bases (winoground_eval/core/taskbase.py): what a subclass gets from its rows alone."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from winoground_eval.core.errors import ConfigError, DataError
from winoground_eval.core.taskbase import ClassTask, PairTask, RankedTask, Row, TaskBase, as_task, task_class


def _png(tmp_path, name, colour):
    path = tmp_path / f"{name}.png"
    Image.new("RGB", (8, 8), colour).save(path)
    return path


class Ranked(RankedTask):
    name = "ranked-test"


class FirstRanked(RankedTask):
    name = "ranked-first"
    ties = "first"


def _ranked_rows(tmp_path):
    return [
        Row("a", ("a red ball", "a blue ball"), (_png(tmp_path, "a", (255, 0, 0)),), {"kind": ["colour"]}),
        Row(
            "b",
            ("a dog on a cat", "A dog  on a cat", "two dogs"),
            (_png(tmp_path, "b", (0, 255, 0)),),
            {"kind": ["order"]},
        ),
        Row(
            "c", ("one bird", "two birds", "no bird", "a bird"), (_png(tmp_path, "c", (0, 0, 255)),), {}, correct=(0, 3)
        ),
    ]


def test_ranked_strict_ties_identical_negatives_and_several_correct(tmp_path):
    task = Ranked(_ranked_rows(tmp_path))
    assert [m.name for m in task.metric_specs] == ["accuracy"]
    scores = {"a": np.array([[1.0, 1.0]]), "b": np.array([[2.0, 1.0, 0.0]]), "c": np.array([[0.0, 1.0, 0.5, 3.0]])}
    r = task.metrics(scores)
    assert r["per_example"] == {"a": {"accuracy": 0.0}, "b": {"accuracy": 1.0}, "c": {"accuracy": 1.0}}
    assert r["tie_ids"] == ["a"] and r["n_ties"] == 1
    assert r["identical_negative_ids"] == ["b"] and r["n_identical_negatives"] == 1  # case and spacing ignored
    assert r["breakdown"]["kind"]["colour"] == {"accuracy": 0.0, "n": 1}
    assert task.correct_captions("a") is None and task.correct_captions("c") == [0, 3]
    assert task.outcomes("c", np.array([[0.0, 4.0, 0.5, 3.0]])) == {"accuracy": 0.0}
    ex = {e.id: e for e in task.examples()}
    assert ex["c"].comparisons == tuple(("accuracy", (0, c), (0, k)) for c in (0, 3) for k in (1, 2))


def test_ranked_first_convention_counts_a_tie_right_with_the_strict_count_beside_it(tmp_path):
    task = FirstRanked(_ranked_rows(tmp_path))
    assert [(m.name, m.primary) for m in task.metric_specs] == [("accuracy", True), ("accuracy_strict", False)]
    scores = {"a": np.array([[1.0, 1.0]]), "b": np.array([[0.0, 1.0, 0.0]]), "c": np.array([[3.0, 1.0, 3.0, 0.0]])}
    r = task.metrics(scores)
    assert r["per_example"]["a"] == {"accuracy": 1.0, "accuracy_strict": 0.0}
    assert r["per_example"]["b"] == {"accuracy": 0.0, "accuracy_strict": 0.0}
    assert r["per_example"]["c"] == {"accuracy": 1.0, "accuracy_strict": 0.0}
    assert r["n_ties"] == 2 and r["n_ties_counted_correct"] == 2
    assert r["metrics"] == {"accuracy": pytest.approx(2 / 3), "accuracy_strict": 0.0}


def test_limit_bounds_examples_only_and_the_fingerprint_covers_image_bytes(tmp_path):
    rows = _ranked_rows(tmp_path)
    full, limited = Ranked(rows), Ranked(rows, limit=2)
    assert list(limited.metadata()) == ["a", "b", "c"] and limited.info() == full.info()
    assert [e.id for e in limited.examples()] == ["a", "b"]
    assert [e.id for e in limited.examples(skip={"a"})] == ["b"]
    Image.new("RGB", (8, 8), (1, 2, 3)).save(rows[2].images[0])
    assert Ranked(rows).info()["data_fingerprint"] != full.info()["data_fingerprint"]
    with pytest.raises(DataError, match="--limit 0"):
        Ranked(rows, limit=0)
    with pytest.raises(DataError, match="more than once"):
        Ranked([rows[0], rows[0]])


def test_a_bad_image_is_an_error_or_skipped(tmp_path):
    rows = _ranked_rows(tmp_path)
    rows[1].images[0].write_bytes(b"not an image")
    with pytest.raises(DataError, match="example b"):
        list(Ranked(rows).examples())
    seen = []
    assert [e.id for e in Ranked(rows).examples(on_error=lambda i, e: seen.append(i))] == ["a", "c"] and seen == ["b"]


def test_pair_task(tmp_path):
    class Pairs(PairTask):
        name = "pairs"

    rows = [
        Row(
            f"p{i}",
            ("x", "y"),
            (_png(tmp_path, f"p{i}0", (i, 0, 0)), _png(tmp_path, f"p{i}1", (0, i, 0))),
            {"kind": ["k"]},
        )
        for i in range(2)
    ]
    task = Pairs(rows)
    r = task.metrics({"p0": np.array([[2.0, 1.0], [0.0, 3.0]]), "p1": np.array([[1.0, 1.0], [0.0, 3.0]])})
    assert r["metrics"] == {"text": 0.5, "image": 1.0, "group": 0.5} and r["tie_ids"] == ["p1"]
    assert len(next(task.examples()).images) == 2


def test_class_task_sparse_class_ids_and_prompts():
    image = Image.new("RGB", (4, 4))
    prompts = ("a cat", "a kitten", "a dog", "a bird")
    rows = [Row(f"i{k}", prompts, (image,), {"class": [str(y)]}, label=y) for k, y in enumerate((7, 9, 12))]
    task = ClassTask(rows, prompt_class=(7, 7, 9, 12), class_names={7: "cat", 9: "dog", 12: "bird"})
    scores = {
        "i0": np.array([[0.0, 2.0, 1.0, 1.0]]),
        "i1": np.array([[3.0, 0.0, 3.0, 0.0]]),
        "i2": np.array([[0.0, 0.0, 0.0, 1.0]]),
    }
    r = task.metrics(scores)
    assert r["per_example"] == {"i0": {"top1": 1.0}, "i1": {"top1": 0.0}, "i2": {"top1": 1.0}}
    assert r["tie_ids"] == ["i1"] and task.example_info("i1", scores["i1"]) == {"pred": 7, "tie": True}
    assert task.correct_captions("i0") == [0, 1] and task.correct_captions("i2") == [3]
    assert set(r["breakdown"]["class"]) == {"7", "9", "12"} and r["confusion"]["9"] == {"7": 1}


def test_hooks_have_defaults_and_protocol_tasks_keep_their_own():
    base = TaskBase()
    assert base.example_info("x", np.zeros((1, 2))) == {} and base.correct_captions("x") is None
    assert TaskBase.offline_fixture(None, "x") is None and dict(base.scorer_defaults) == {}
    with pytest.raises(ConfigError, match="cannot compute metrics"):
        TaskBase.metrics_for_score_file({})
    with pytest.raises(ConfigError, match="cannot read --metadata"):
        TaskBase.score_file_examples("x.jsonl")
    own = SimpleNamespace(
        name="own",
        scorer_defaults={"loss": "l1"},
        example_info=lambda i, s: {"pred": 2},
        correct_captions=lambda i: (1,),
    )
    hooks = as_task(own)
    assert hooks.scorer_defaults == {"loss": "l1"} and hooks.example_info("x", None) == {"pred": 2}
    assert hooks.correct_captions("x") == [1]
    bare = as_task(SimpleNamespace(name="bare"))
    assert bare.scorer_defaults == {} and bare.example_info("x", None) == {} and bare.correct_captions("x") is None
    task = Ranked([])
    assert as_task(task) is task


def test_task_class_from_classes_and_factory_annotations():
    import functools

    def make(path: str, *, limit: int | None = None) -> Ranked:
        return Ranked([], limit=limit)

    assert task_class(Ranked) is Ranked and task_class(SimpleNamespace) is None
    assert task_class(make) is Ranked and task_class(functools.partial(make, "x.jsonl")) is Ranked
    assert task_class(lambda: None) is None


def test_every_registered_task_is_built_on_a_base():
    """Registry targets resolve to a TaskBase class (the class, or what its factory declares it returns)."""
    from winoground_eval.core import registry

    for name, entry in {**registry.TASKS, **registry.TASK_PREFIXES}.items():
        cls = task_class(registry.load_target(entry.target))
        shapes = cls.__subclasses__() if cls is not None and name == "captions:" else [cls]  # one class per file shape
        assert cls is not None and all(issubclass(c, (PairTask, RankedTask, ClassTask)) for c in shapes), name
