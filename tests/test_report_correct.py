"""The report's ranked-captions view marks a task's own correct captions (a classification
image's class prompts), not column 0, when the task declares them (``correct_captions``)."""

from winoground_eval.core.registry import resolve_task
from winoground_eval.results.report import _dataset_examples


def test_digits_marks_the_label_caption():
    task = resolve_task("digits")(split="test", limit=4)
    ids = [ex.id for ex in task.examples()]
    data, note = _dataset_examples(task, ids, 32)
    assert note is None
    labels = [task.labels[i] for i in ids]
    assert [data[i]["correct"] for i in ids] == [[y] for y in labels]
    assert any(y != 0 for y in labels)  # the old column-0 assumption would be wrong here


def test_classification_marks_every_prompt_of_the_class(tmp_path):
    from winoground_eval.testing.classification_fixtures import offline_fixture

    name, kwargs = offline_fixture(tmp_path, "cifar10")
    task = resolve_task(name)(**kwargs)
    for ex in task.examples():
        right = task.correct_captions(ex.id)
        assert right and all(task._classidx[k] == task._label[ex.id] for k in right)
        assert len(right) == int((task._classidx == task._label[ex.id]).sum())


def test_tasks_without_the_hook_keep_column_zero(tmp_path):
    task = resolve_task("shapes-ranked")(split="test", limit=2)
    data, _ = _dataset_examples(task, [ex.id for ex in task.examples()], 32)
    assert all("correct" not in d for d in data.values())
