"""Runs end to end through the CLI's main(): run directory, resume, torn lines, locks, errors."""

import json

import numpy as np
import pytest
from helpers import dummy_run_args

from winoground_eval.cli.main import main
from winoground_eval.core import registry
from winoground_eval.core.errors import RunStoreError
from winoground_eval.core.runstore import RunStore


@pytest.fixture(autouse=True)
def _test_scorers(monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "interrupting", registry.Entry("helpers:Interrupting", "test"))
    monkeypatch.setitem(registry.SCORERS, "nan", registry.Entry("helpers:NaNScorer", "test"))


def _run_dir(out):
    dirs = [p for p in out.glob("*/*/*") if (p / "run.json").exists()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _lines(run_dir):
    return [json.loads(l) for l in (run_dir / "scores.jsonl").read_text().splitlines()]


STABLE = (
    "run_id",
    "task",
    "scorer",
    "metrics",
    "breakdown",
    "ci95",
    "n_examples",
    "n_ties",
    "tie_ids",
    "n_expected",
    "partial",
)


def test_run_writes_the_run_directory(sample_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    assert (
        main(
            ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", str(sample_dir), "--out", str(out), "-q"]
        )
        == 0
    )
    run_dir = _run_dir(out)
    assert run_dir.parent.name == "dummy" and run_dir.parent.parent.name == "winoground"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["run_id"] == run_dir.name
    assert run["scorer"] == {
        "name": "dummy",
        "config": {"kind": "dummy", "version": 1, "name": "dummy", "seed": 0, "method": "sha256-uniform"},
    }
    assert run["task"]["name"] == "winoground" and run["task"]["version"] == "1"
    assert "torch" in run["environment"]["packages"]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["n_examples"] == 6 and result["partial"] is False
    assert set(result["metrics"]) == {"text", "image", "group"}
    assert set(result["breakdown"]) >= {"collapsed_tag", "secondary_tag", "num_main_preds"}
    assert [l["id"] for l in _lines(run_dir)] == [str(i) for i in range(6)]
    printed = capsys.readouterr().out
    assert "overall" in printed and str(run_dir) in printed


def test_interrupted_run_resumes_to_the_same_result(sample_dir, tmp_path, capsys):
    common = ["--task", "winoground", "--data-dir", str(sample_dir), "-q"]
    ref_out, out = tmp_path / "ref", tmp_path / "runs"
    assert main(["run", *common, "--scorer", "interrupting", "--out", str(ref_out)]) == 0
    # interrupted after 2 examples: finished work is kept, the resume command is printed
    code = main(["run", *common, "--scorer", "interrupting", "-o", "fail_after=2", "--out", str(out)])
    assert code == 130
    assert "Resume with" in capsys.readouterr().err
    run_dir = _run_dir(out)
    assert [l["id"] for l in _lines(run_dir)] == ["0", "1"]
    assert json.loads((run_dir / "result.json").read_text())["partial"] is True
    # a torn last line (killed mid-write) is dropped and its example redone
    with open(run_dir / "scores.jsonl", "a") as fh:
        fh.write('{"id": "2", "scores": [[0.1, 0.')
    assert main(["run", *common, "--scorer", "interrupting", "--out", str(out)]) == 0
    ids = [l["id"] for l in _lines(run_dir)]
    assert ids == [str(i) for i in range(6)]  # no duplicates, nothing lost
    a = json.loads((run_dir / "result.json").read_text())
    b = json.loads((_run_dir(ref_out) / "result.json").read_text())
    assert {k: a[k] for k in STABLE} == {k: b[k] for k in STABLE}
    for la, lb in zip(_lines(run_dir), _lines(_run_dir(ref_out))):
        assert la["scores"] == lb["scores"]


def test_finished_run_is_not_recomputed(sample_dir, tmp_path):
    args = dummy_run_args(sample_dir, tmp_path)
    assert main(args) == 0
    run_dir = _run_dir(tmp_path)
    before = (run_dir / "scores.jsonl").read_bytes()
    assert main(args) == 0
    assert (run_dir / "scores.jsonl").read_bytes() == before


def test_limit_marks_partial_and_a_full_run_continues_it(sample_dir, tmp_path):
    args = dummy_run_args(sample_dir, tmp_path)
    assert main(args + ["--limit", "2"]) == 0
    run_dir = _run_dir(tmp_path)
    r = json.loads((run_dir / "result.json").read_text())
    assert r["partial"] is True and r["n_examples"] == 2 and r["limit"] == 2
    assert main(args) == 0
    r = json.loads((run_dir / "result.json").read_text())
    assert r["partial"] is False and r["n_examples"] == 6


def test_changed_setting_gets_a_new_run_id(sample_dir, tmp_path):
    base = dummy_run_args(sample_dir, tmp_path)
    assert main(base) == 0 and main(base + ["-o", "seed=1"]) == 0
    assert len(list((tmp_path / "winoground" / "dummy").iterdir())) == 2


def test_no_resume_sets_the_old_run_aside(sample_dir, tmp_path):
    args = dummy_run_args(sample_dir, tmp_path)
    assert main(args) == 0
    assert main(args + ["--no-resume"]) == 0
    dirs = sorted(p.name for p in (tmp_path / "winoground" / "dummy").iterdir())
    assert len(dirs) == 2 and any(".set-aside-" in d for d in dirs)


def test_second_writer_is_refused(sample_dir, tmp_path, capsys):
    args = dummy_run_args(sample_dir, tmp_path)
    assert main(args) == 0
    store = RunStore(_run_dir(tmp_path))
    with store:
        assert main(args) == 4
    assert "in use by another process" in capsys.readouterr().err


def test_corrupt_middle_line_is_an_error(sample_dir, tmp_path):
    args = dummy_run_args(sample_dir, tmp_path)
    assert main(args) == 0
    run_dir = _run_dir(tmp_path)
    lines = (run_dir / "scores.jsonl").read_text().splitlines()
    (run_dir / "scores.jsonl").write_text("\n".join(lines[:2] + ["garbage"] + lines[2:]) + "\n")
    with pytest.raises(RunStoreError, match=r"scores.jsonl:3 is corrupt"):
        RunStore(run_dir).load()


def test_nan_scores_are_an_error_naming_the_example(sample_dir, tmp_path, capsys):
    code = main(
        ["run", "--task", "winoground", "--scorer", "nan", "--data-dir", str(sample_dir), "--out", str(tmp_path), "-q"]
    )
    assert code == 1
    assert "example 0" in capsys.readouterr().err


def test_unwritable_out_dir_fails_before_compute(sample_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(
        ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", str(sample_dir), "--out", str(blocker), "-q"]
    )
    assert code == 4
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--scorer", "dumy"], "unknown scorer 'dumy'. Did you mean 'dummy'"),
        (["--task", "winogrond"], "unknown task 'winogrond'. Did you mean 'winoground'"),
        (["-o", "sed=1"], "has no option 'sed'. Did you mean seed"),
        (["-o", "seed=abc"], "seed='abc': expected int"),
        (["-o", "seed"], "is not key=value"),
        (["-o", "out.json"], "give --out DIR"),  # issue 22.10: -o is not the output file; say what is
        (["--dtype", "float16"], "does not take 'dtype'"),
    ],
)
def test_bad_input_is_named(sample_dir, tmp_path, capsys, argv, match):
    args = {"--task": "winoground", "--scorer": "dummy"}
    rest = list(argv)
    for flag in ("--task", "--scorer"):
        if flag in rest:
            i = rest.index(flag)
            args[flag] = rest[i + 1]
            del rest[i : i + 2]
    code = main(
        [
            "run",
            "--task",
            args["--task"],
            "--scorer",
            args["--scorer"],
            "--data-dir",
            str(sample_dir),
            "--out",
            str(tmp_path),
            "-q",
            *rest,
        ]
    )
    assert code == 2
    assert match in capsys.readouterr().err.replace("\n", " ")


def test_ls(capsys):
    assert main(["ls", "scorers"]) == 0
    text = capsys.readouterr().out
    for name in ("clip-vit-l14", "openclip-vit-h14", "sd2", "dummy", "diffusers:"):
        assert name in text
    assert main(["ls", "tasks"]) == 0
    assert "winoground" in capsys.readouterr().out


def test_show(sample_dir, tmp_path, capsys):
    main(dummy_run_args(sample_dir, tmp_path))
    capsys.readouterr()
    assert main(["show", str(_run_dir(tmp_path))]) == 0
    assert "overall" in capsys.readouterr().out


def test_bad_example_stops_with_its_id_or_is_skipped(sample_dir, tmp_path, capsys):
    (sample_dir / "images" / "ex_2_img_1.png").write_bytes(b"corrupt")
    rows = [json.loads(l) for l in (sample_dir / "examples.jsonl").read_text().splitlines()]
    rows[4]["caption_1"] = ""
    (sample_dir / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = dummy_run_args(sample_dir, tmp_path)
    assert main(args) == 3
    assert "example 2" in capsys.readouterr().err
    run_dir = _run_dir(tmp_path)
    assert [l["id"] for l in _lines(run_dir)] == ["0", "1"]  # finished work kept
    assert main(args + ["--skip-bad"]) == 0
    r = json.loads((run_dir / "result.json").read_text())
    assert r["n_skipped"] == 2 and set(r["skipped"]) == {"2", "4"} and "caption_1" in r["skipped"]["4"]
    assert r["n_examples"] == 4 and r["partial"] is True
    # the image repaired: other data (the fingerprint covers image bytes, as it covers captions), so a new run id
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    fresh = write_winoground_sample(tmp_path / "fresh", n_examples=6, seed=0)
    (sample_dir / "images" / "ex_2_img_1.png").write_bytes((fresh / "images" / "ex_2_img_1.png").read_bytes())
    assert main(args + ["--skip-bad"]) == 0
    [new_dir] = [p for p in run_dir.parent.iterdir() if p != run_dir]
    r = json.loads((new_dir / "result.json").read_text())
    assert r["n_skipped"] == 1 and set(r["skipped"]) == {"4"} and r["n_examples"] == 5
    assert sorted(l["id"] for l in _lines(new_dir) if "skipped" not in l) == ["0", "1", "2", "3", "5"]


def test_too_little_disk_is_refused_before_compute(sample_dir, tmp_path, capsys, monkeypatch):
    from winoground_eval.core import runstore

    monkeypatch.setattr(runstore, "MIN_FREE_BYTES", 2**62)
    args = dummy_run_args(sample_dir, tmp_path)
    assert main(args) == 4
    assert "MiB free" in capsys.readouterr().err
    assert not list(tmp_path.glob("*/*/*/scores.jsonl"))


def test_failed_append_leaves_no_partial_line(sample_dir, tmp_path, monkeypatch):
    import os

    from winoground_eval.core.contracts import Scored
    from winoground_eval.core.errors import RunStoreError as RSE

    args = dummy_run_args(sample_dir, tmp_path, "--limit", "2")
    assert main(args) == 0
    store = RunStore(_run_dir(tmp_path))
    store.load()
    before = (store.path / "scores.jsonl").read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    with store:
        monkeypatch.setattr(os, "fsync", full_disk)
        with pytest.raises(RSE, match="No space left"):
            store.append("5", Scored(np.zeros((2, 2))), 0.1)
        monkeypatch.setattr(os, "fsync", real_fsync)
    assert (store.path / "scores.jsonl").read_bytes() == before
