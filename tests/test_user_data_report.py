"""issue 22.3: a run on the user's own data (captions:FILE, imagefolder:DIR, PATH.py:NAME)
records where that data lies, absolute, so `report` (and compare) show its images and
captions from anywhere, or one line naming the file that moved; never an internal error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from winoground_eval.cli.main import main

TASK_FILE = """
from winoground_eval.tasks.shapes import ShapesTask

def make_task(*, split: str = "val", limit: int = 3):
    return ShapesTask(split=split, limit=limit)
"""


def _data(work: Path) -> None:
    for name, colour in {"a.png": (255, 0, 0), "b.png": (0, 0, 255), "c.png": (0, 255, 0)}.items():
        Image.new("RGB", (16, 16), colour).save(work / name)
    rows = [
        {"id": "r1", "images": ["a.png"], "captions": ["red", "blue", "green"]},
        {"id": "r2", "images": ["b.png"], "captions": ["blue", "navy"]},
    ]
    (work / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / "other.jsonl").write_text(
        json.dumps({"id": "o1", "images": ["c.png"], "captions": ["green", "red"]}) + "\n"
    )
    for cls, colour in (("red_thing", (250, 0, 0)), ("blue_thing", (0, 0, 250))):
        (work / "pets" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (12, 12), colour).save(work / "pets" / cls / f"{i}.png")
    (work / "mytask.py").write_text(TASK_FILE)


def _report(runs: Path, out: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["report", str(runs), "-O", str(out), "--include-partial"]) == 0
    capsys.readouterr()
    html = out.read_text()
    return json.loads(html.split('id="report-data">')[1].split("</script>")[0])


def test_report_shows_the_users_own_data_from_anywhere(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    _data(work)
    runs = tmp_path / "runs"
    monkeypatch.chdir(work)  # the user gives relative paths, as in the README
    for task in ("captions:pairs.jsonl", "captions:other.jsonl", "imagefolder:pets", "mytask.py:make_task"):
        assert main(["run", "--task", task, "--scorer", "dummy", "--out", str(runs), "-q"]) == 0, task
    infos = [json.loads(p.read_text()) for p in sorted(runs.glob("*/*/*/run.json"))]
    sources = sorted(i["data_source"]["task"] for i in infos)
    assert sources == sorted(
        [
            f"captions:{work}/other.jsonl",
            f"captions:{work}/pairs.jsonl",
            f"imagefolder:{work}/pets",
            f"{work}/mytask.py:make_task",
        ]
    )
    monkeypatch.chdir(tmp_path)  # elsewhere
    data = _report(runs, tmp_path / "r.html", capsys)
    assert data["notes"] == []
    labels = sorted(r["label"] for r in data["runs"])
    assert "dummy \u00b7 captions:pairs.jsonl" in labels and "dummy \u00b7 captions:other.jsonl" in labels  # 22.8
    for ds in data["datasets"].values():
        assert ds["images"] and all(e["images"] and e["captions"] for e in ds["examples"].values()), ds["task"]

    # the captions file moves: one line naming it, the other runs still show their examples
    shutil.move(work / "pairs.jsonl", tmp_path / "pairs-moved.jsonl")
    data = _report(runs, tmp_path / "r2.html", capsys)
    (note,) = data["notes"]
    assert f"{work}/pairs.jsonl" in note and "moved or deleted" in note and "unknown task" not in note
    shown = [ds for ds in data["datasets"].values() if ds["images"]]
    assert len(shown) == len(data["datasets"]) - 1
