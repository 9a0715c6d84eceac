"""captions:FILE: a user's JSONL benchmark, 2x2 or 1xN, with line-numbered errors and --skip-bad."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from winoground_eval.baselines.dummy import DummyScorer
from winoground_eval.core.errors import DataError
from winoground_eval.core.runner import RunSpec, open_store, run
from winoground_eval.tasks.captions import from_captions_spec


def _img(path, colour):
    Image.new("RGB", (16, 16), colour).save(path)


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def folder(tmp_path):
    for name, colour in {"a.png": (255, 0, 0), "b.png": (0, 0, 255), "c.png": (0, 255, 0)}.items():
        _img(tmp_path / name, colour)
    return tmp_path


def _ranked_rows():
    return [
        {
            "id": "r1",
            "images": ["a.png"],
            "captions": ["red", "blue", "green"],
            "tags": {"kind": "colour", "multi": ["x", "y"]},
        },
        {"id": "r2", "images": ["b.png"], "captions": ["blue", "navy"], "tags": {"kind": "colour"}},
        {"id": "r3", "images": ["c.png"], "captions": ["green", "red"]},
    ]


def _run(task, tmp_path, *, scorer=None, skip_bad=False):
    scorer = scorer or DummyScorer()
    spec = RunSpec("captions:x", "dummy", tmp_path / "runs", skip_bad=skip_bad)
    store = open_store(spec, task, scorer)
    with store:
        return run(spec, task, scorer, store)


class Fixed:
    """A scorer whose matrix is fixed per caption text: score = table[caption]."""

    def __init__(self, table):
        self.table = table

    def config(self):
        return {"name": "fixed"}

    def score(self, images, captions):
        return np.array([[self.table[c] for c in captions]] * len(images), dtype=float)


def test_ranked_file_accuracy_breakdowns_and_ties(folder, tmp_path):
    path = _write(folder / "mine.jsonl", ["# a comment", "", *_ranked_rows()])
    task = from_captions_spec(str(path))
    assert task.shape == "1xN" and [m.name for m in task.metric_specs] == ["accuracy"]
    exs = list(task.examples())
    assert [len(e.captions) for e in exs] == [3, 2, 2] and exs[0].images[0].getpixel((0, 0)) == (255, 0, 0)
    assert exs[0].comparisons == (("accuracy", (0, 0), (0, 1)), ("accuracy", (0, 0), (0, 2)))
    # r1 right, r2 tie (wrong), r3 wrong
    result = _run(task, tmp_path, scorer=Fixed({"red": 2.0, "blue": 1.0, "navy": 1.0, "green": 0.0}))
    assert result["metrics"]["accuracy"] == pytest.approx(1 / 3)
    assert result["n_ties"] == 1 and result["tie_ids"] == ["r2"]
    assert result["breakdown"]["kind"]["colour"]["n"] == 2
    assert result["breakdown"]["kind"]["colour"]["accuracy"] == pytest.approx(0.5)
    assert set(result["breakdown"]["multi"]) == {"x", "y"}
    assert result["per_example"]["r1"]["accuracy"] == 1.0


def test_paired_file_gets_text_image_group(folder, tmp_path):
    rows = [
        {"id": "p1", "images": ["a.png", "b.png"], "captions": ["red", "blue"], "tags": {"kind": "Object"}},
        {"id": "p2", "images": ["b.png", "a.png"], "captions": ["red", "blue"]},  # captions do not match images
    ]
    task = from_captions_spec(str(_write(folder / "pairs.jsonl", rows)))

    class ByColour:
        def config(self):
            return {"name": "by-colour"}

        def score(self, images, captions):
            names = {(255, 0, 0): "red", (0, 0, 255): "blue"}
            return np.array([[float(names[im.getpixel((0, 0))] == c) for c in captions] for im in images])

    result = _run(task, tmp_path, scorer=ByColour())
    assert task.shape == "2x2"
    assert result["metrics"] == {"text": 0.5, "image": 0.5, "group": 0.5}
    assert result["breakdown"]["kind"]["Object"]["group"] == 1.0


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not JSON"),
        ('["a"]', "JSON object"),
        ({"images": ["a.png"], "captions": ["x", "y"]}, '"id" is missing'),
        ({"id": " ", "images": ["a.png"], "captions": ["x", "y"]}, '"id" is missing or empty'),
        ({"id": "z", "images": "a.png", "captions": ["x", "y"]}, '"images" must be a non-empty list'),
        ({"id": "z", "images": ["a.png", 3], "captions": ["x", "y"]}, '"images" must be a non-empty list'),
        ({"id": "z", "images": ["a.png"], "captions": ["x"]}, "at least 1 negative"),
        ({"id": "z", "images": ["a.png", "b.png"], "captions": ["x", "y", "w"]}, "2 images need exactly 2 captions"),
        ({"id": "z", "images": ["a.png", "b.png", "c.png"], "captions": ["x", "y", "w"]}, "3 images"),
        ({"id": "z", "images": ["a.png"], "captions": ["x", ""]}, "non-empty strings"),
        ({"id": "z", "images": ["a.png"], "captions": ["x", "y"], "tags": {"k": 3}}, "tag 'k'"),
        ({"id": "z", "images": ["a.png"], "captions": ["x", "y"], "extra": 1}, "unknown field"),
        ({"id": "r1", "images": ["a.png"], "captions": ["x", "y"]}, "duplicate id 'r1' .first on line 1"),
        (
            {"id": "z", "images": ["a.png", "b.png"], "captions": ["x", "y"]},
            "is 2x2 but the file's first example .line 1. is 1xN",
        ),
    ],
)
def test_bad_lines_name_file_line_and_problem(folder, line, message):
    path = _write(folder / "bad.jsonl", [_ranked_rows()[0], line])
    with pytest.raises(DataError, match=message) as info:
        from_captions_spec(str(path))
    assert f"{path}:2" in str(info.value)


def test_missing_image_fails_with_line_or_is_skipped(folder, tmp_path):
    rows = _ranked_rows()
    rows[1]["images"] = ["nowhere.png"]
    (folder / "broken.png").write_bytes(b"not an image")
    rows[2]["images"] = ["broken.png"]
    path = _write(folder / "m.jsonl", rows)
    task = from_captions_spec(str(path))
    with pytest.raises(DataError, match=rf"{path}:2 .*'r2'.*not found"):
        list(task.examples())
    result = _run(task, tmp_path, skip_bad=True)
    assert result["n_examples"] == 1 and result["n_skipped"] == 2
    assert "cannot be read" in result["skipped"]["r3"]


def test_fingerprint_covers_image_bytes_and_captions_whatever_the_limit(folder):
    path = _write(folder / "f.jsonl", _ranked_rows())
    first = from_captions_spec(str(path)).info()["data_fingerprint"]
    assert from_captions_spec(str(path)).info()["data_fingerprint"] == first
    _img(folder / "a.png", (254, 0, 0))
    assert from_captions_spec(str(path)).info()["data_fingerprint"] != first
    limited = from_captions_spec(str(path), limit=2)  # the whole file is the target; examples() the first 2
    assert list(limited.metadata()) == ["r1", "r2", "r3"]
    assert [ex.id for ex in limited.examples()] == ["r1", "r2"]
    assert limited.info() == from_captions_spec(str(path)).info()
    with pytest.raises(DataError, match="not found"):
        from_captions_spec(str(folder / "absent.jsonl"))
