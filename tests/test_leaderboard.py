"""`wg-eval export`: finished runs into a versioned leaderboard JSON; imported score files as runs."""

import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from winoground_eval.cli import main as cli
from winoground_eval.results.compare import compare_scores
from winoground_eval.results.export import published_rows, schema
from winoground_eval.results.runs import RunRecord, read_run, select_runs
from winoground_eval.results.scorefile import write_score_file
from winoground_eval.results.scoreimport import save_score_file_run
from winoground_eval.testing.winoground_sample import write_winoground_sample

REF = Path(__file__).parent / "data" / "reference_scores"


def wg(argv):
    """`wg-eval ARGV` through cli.main."""
    return cli.main([str(a) for a in argv])


def random_scores(ids, seed):
    rng = np.random.default_rng(seed)
    return {i: rng.normal(size=(2, 2)) for i in ids}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A sample dataset; dummy runs (two configs, one partial); two imported models; a stale copy."""
    root = tmp_path_factory.mktemp("lb")
    data = write_winoground_sample(root / "data", n_examples=8, seed=0)
    runs = root / "runs"
    common = ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", data, "--out", runs, "-q"]
    assert cli.main([str(a) for a in common]) == 0
    assert cli.main([str(a) for a in common + ["-o", "seed=1"]]) == 0
    assert cli.main([str(a) for a in common + ["-o", "seed=2", "--limit", "3"]]) == 0
    ids = [str(i) for i in range(8)]
    imported = {}
    for name, seed in (("model-a", 1), ("model-b", 2)):
        path = root / f"{name}.jsonl"
        imported[name] = random_scores(ids, seed)
        write_score_file(path, imported[name])
        save_score_file_run("winoground", path, runs, name, metadata=data / "examples.jsonl")
    # the same config as the seed-0 dummy run, copied elsewhere and finished earlier
    [seed0] = [p for p in (runs / "winoground" / "dummy").iterdir() if read_run(p).scorer["config"]["seed"] == 0]
    stale = root / "other" / "old-copy"
    shutil.copytree(seed0, stale)
    result = json.loads((stale / "result.json").read_text())
    result["finished"] = "2001-01-01T00:00:00+00:00"
    (stale / "result.json").write_text(json.dumps(result))
    return {
        "root": root,
        "data": data,
        "runs": runs,
        "other": root / "other",
        "imported": imported,
        "seed0": seed0,
        "stale": stale,
    }


def validate(doc, version=2):
    jsonschema.Draft202012Validator.check_schema(schema(version))
    jsonschema.Draft202012Validator(schema(version)).validate(doc)


def test_v1_exports_still_validate_against_the_v1_schema():
    """A leaderboard written by the version-1 exporter (text / image / group only)."""
    doc = json.loads((Path(__file__).parent / "data" / "leaderboard_v1.json").read_text())
    assert doc["schema_version"] == 1
    validate(doc, version=1)
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, version=2)


def test_export_is_valid_ranked_and_keeps_newest(world, tmp_path, capsys):
    out = tmp_path / "leaderboard.json"
    argv = [
        "export",
        world["runs"],
        world["other"],
        "-o",
        out,
        "--include-partial",
        "--with-published",
        "--baseline",
        "model-b",
        "--data-dir",
        world["data"],
    ]
    assert wg(argv) == 0
    captured = capsys.readouterr()
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["schema_version"] == 2 and doc["include_partial"] is True
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, version=1)
    entries = doc["entries"]
    # one entry per configuration: dummy seeds 0, 1, 2 (partial), model-a, model-b
    assert len(entries) == 5 and len({e["config_key"] for e in entries}) == 5
    assert [e["rank"] for e in entries] == [1, 2, 3, 4, 5]
    keys = [(-e["metrics"]["group"], -e["metrics"]["text"], -e["metrics"]["image"]) for e in entries]
    assert keys == sorted(keys)
    by_name = {(e["scorer"]["name"], e["scorer"]["config"].get("seed")): e for e in entries}
    seed0 = by_name[("dummy", 0)]
    assert seed0["run_dir"] == str(world["seed0"])  # the newer of the two copies
    assert [s["run_dir"] for s in seed0["superseded"]] == [str(world["stale"])]
    assert "superseded" in captured.err and "old-copy" in captured.err
    assert by_name[("dummy", 2)]["partial"] is True and by_name[("dummy", 2)]["n_examples"] == 3
    assert all(e["partial"] is False for k, e in by_name.items() if k != ("dummy", 2))
    # every field the issue asks for
    e = by_name[("dummy", 1)]
    assert e["task"]["name"] == "winoground" and e["task"]["version"] == "1" and e["task"]["data_fingerprint"]
    assert e["scorer"]["config"] == {
        "kind": "dummy",
        "version": 1,
        "name": "dummy",
        "seed": 1,
        "method": "sha256-uniform",
    }
    assert set(e["breakdown"]["collapsed_tag"]) == {"Object", "Relation", "Both"}
    assert set(e["ci95"]) == {"text", "image", "group"} and e["n_examples"] == 8
    assert [m["name"] for m in e["metric_specs"]] == ["text", "image", "group"] and e["primary"] == "group"
    assert e["compute"]["device"] and e["compute"]["wall_time_s"] is not None
    assert e["environment"]["packages"]["winoground-eval"] and e["date"]
    # published rows: apart, marked, never ranked
    assert all(x["published"] is False for x in entries)
    assert {p["id"] for p in doc["published"]} >= {"winoground-paper/clip-vit-b32", "diffusion-classifier-paper/sd2.0"}
    assert all(p["published"] is True and "rank" not in p for p in doc["published"])
    # baseline comparisons (A = the entry, B = model-b)
    assert doc["baseline"]["scorer"] == "model-b"
    a, b = by_name[("model-a", None)], by_name[("model-b", None)]
    assert b["comparison"] is None
    want = compare_scores(world["imported"]["model-a"], world["imported"]["model-b"], with_ids=False)
    assert a["comparison"]["comparable"] is True
    assert a["comparison"]["overall"] == json.loads(json.dumps(want["overall"]))
    assert set(a["comparison"]["breakdown"]["collapsed_tag"]) == {"Object", "Relation", "Both"}  # tags from --data-dir
    assert "baseline" in captured.out  # the baseline row, and the comparison column


def test_export_leaves_partial_runs_out_and_says_so(world, tmp_path, capsys):
    out = tmp_path / "lb.json"
    assert wg(["export", world["runs"], "-o", out]) == 0
    doc = json.loads(out.read_text())
    validate(doc)
    assert "published" not in doc and doc["baseline"] is None
    assert len(doc["entries"]) == 4 and not any(e["partial"] for e in doc["entries"])
    assert "1 partial run(s) left out" in capsys.readouterr().err


def test_complete_beats_partial_then_newest_wins(world):
    run = read_run(world["seed0"])

    def variant(finished, partial):
        return RunRecord(
            Path(f"/x/{finished}-{partial}"), run.info, {**run.result, "finished": finished, "partial": partial}
        )

    old, new, newest_partial = variant("2020", False), variant("2024", False), variant("2025", True)
    sel = select_runs([old, newest_partial, new], include_partial=True)
    assert sel.kept == [new] and sel.superseded[str(new.path)] == [old, newest_partial]
    sel = select_runs([old, newest_partial])
    assert sel.kept == [old] and sel.partial_left_out == [newest_partial]


def test_published_rows_match_their_sources():
    rows = {r["id"]: r for r in published_rows()}
    clip = rows["winoground-paper/clip-vit-b32"]
    assert clip["metrics"] == {"text": 0.3075, "image": 0.105, "group": 0.08}
    assert rows["diffusion-classifier-paper/clip-vit-l14"]["metrics"]["text"] == 0.282
    assert rows["diffusion-classifier-paper/openclip-vit-h14"]["metrics"]["text"] == 0.33
    assert rows["diffusion-classifier-paper/sd2.0"]["breakdown"]["collapsed_tag"]["Both"]["text"] == 0.808
    for row in (r for r in rows.values() if r["task"] == "winoground"):
        assert row["source"]["citation"] and row["source"]["url"].startswith("https://arxiv.org/abs/")
        tags = row["breakdown"]["collapsed_tag"]
        assert sum(t["n"] for t in tags.values()) == 400
        for m, overall in row["metrics"].items():
            if overall is None:
                continue
            # the per-tag numbers weighted by their n give the overall number, up to the paper's rounding
            weighted = sum(t[m] * t["n"] for t in tags.values()) / 400
            assert abs(weighted - overall) <= 1.5 * 10 ** -row["decimals"] / 100, (row["id"], m)
    # the other tasks' rows (issue 20): a cited source file; each breakdown covers every example and
    # its n-weighted mean gives the overall number, up to the source's rounding
    for row in (r for r in rows.values() if r["task"] != "winoground"):
        assert row["source"]["citation"] and row["source"]["url"].startswith("https://")
        for group in row["breakdown"].values():
            n = sum(t["n"] for t in group.values())
            assert n == row["n_examples"], (row["id"], n)
            for m, overall in row["metrics"].items():
                if overall is not None:
                    weighted = sum(t[m] * t["n"] for t in group.values()) / n
                    assert abs(weighted - overall) <= 1.5 * 10 ** -row["decimals"] / 100, (row["id"], m)


def test_score_file_saved_as_a_run(world, tmp_path, capsys):
    runs = tmp_path / "runs"
    path = save_score_file_run("winoground", REF / "clip_b32.jsonl", runs, "clip-b32-official")
    run = read_run(path)
    assert path.parent.name == "clip-b32-official" and run.scorer["config"]["method"] == "imported_score_file"
    assert round(run.result["metrics"]["text"] * 100, 2) == 30.75 and run.result["n_examples"] == 400
    assert run.result["imported"]["file_sha256"] and run.task["data_fingerprint"] is None
    assert len(run.scores()) == 400
    assert save_score_file_run("winoground", REF / "clip_b32.jsonl", runs, "clip-b32-official") == path  # idempotent
    assert len((path / "scores.jsonl").read_text().splitlines()) == 400
    out = tmp_path / "lb.json"
    assert wg(["export", runs, "-o", out]) == 0
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["entries"][0]["imported"]["file"].endswith("clip_b32.jsonl")
    # without metadata there is no data fingerprint, so it cannot be compared with measured runs
    assert wg(["compare", path, world["seed0"]]) == 2
    assert "different data" in capsys.readouterr().err


def test_metadata_fingerprint_is_the_tasks(world):
    from winoground_eval.tasks.winoground import WinogroundTask

    ids, tags, fingerprint = WinogroundTask.score_file_examples(world["data"] / "examples.jsonl")
    assert fingerprint == WinogroundTask(data_dir=str(world["data"])).info()["data_fingerprint"]
    assert ids == [str(i) for i in range(8)] and tags["0"]["collapsed_tag"]
    bare = world["root"] / "bare.jsonl"
    bare.write_text(
        json.dumps({"id": 0, "collapsed_tag": "Object", "tag": "", "secondary_tag": "", "num_main_preds": 1}) + "\n"
    )
    assert WinogroundTask.score_file_examples(bare)[2] is None


def test_runs_on_other_data_are_ranked_apart(world, tmp_path):
    other = write_winoground_sample(tmp_path / "other-data", n_examples=3, seed=7)
    runs = tmp_path / "runs"
    assert (
        cli.main(
            ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", str(other), "--out", str(runs), "-q"]
        )
        == 0
    )
    out = tmp_path / "lb.json"
    assert wg(["export", world["runs"], runs, "-o", out]) == 0
    entries = json.loads(out.read_text())["entries"]
    validate(json.loads(out.read_text()))
    by_data = {}
    for e in entries:
        by_data.setdefault(e["task"]["data_fingerprint"], []).append(e["rank"])
    assert sorted(map(sorted, by_data.values())) == [[1], [1, 2, 3, 4]]


def test_task_lookup_says_why_data_is_missing(world, monkeypatch):
    from winoground_eval.core import registry
    from winoground_eval.core.errors import DataError
    from winoground_eval.results.taskfinder import TaskFinder

    hub_info = {
        "name": "winoground",
        "version": "1",
        "source": "hf:facebook/winoground",
        "revision": "main",
        "revision_resolved": "abc123",
        "data_fingerprint": "f" * 16,
    }
    task, why = TaskFinder(hub=False).task_for(hub_info)
    assert task is None and "--data-dir" in why and "--no-hub" in why
    calls = []

    def offline_task(*, data_dir=None, revision=None, limit=None, token=None):
        calls.append((data_dir, revision))
        raise DataError("cannot reach the Hugging Face Hub")

    monkeypatch.setattr(registry, "resolve_task", lambda name: offline_task)
    task, why = TaskFinder().task_for(hub_info)
    assert task is None and calls == [(None, "abc123")] and "the Hub" in why and "cannot reach" in why
    monkeypatch.undo()
    task, why = TaskFinder([world["data"]]).task_for(hub_info)  # a local copy of other data
    assert task is None and "holds other data" in why
    task, why = TaskFinder([world["data"]]).task_for(read_run(world["seed0"]).task)
    assert why is None and task.info()["data_fingerprint"] == read_run(world["seed0"]).task["data_fingerprint"]


def test_export_errors(world, tmp_path, capsys):
    assert wg(["export", tmp_path / "missing", "-o", tmp_path / "x.json"]) == 4
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    (empty / "half").mkdir(parents=True)
    (empty / "half" / "run.json").write_text("{}")
    assert wg(["export", empty, "-o", tmp_path / "x.json"]) == 4
    err = capsys.readouterr().err
    assert "no finished runs" in err
    assert wg(["export", world["runs"], "-o", tmp_path / "x.json", "--baseline", "dummy"]) == 4
    assert "names 2 runs" in capsys.readouterr().err
    assert wg(["export", world["runs"], "-o", tmp_path / "x.json", "--baseline", "nope"]) == 4
    assert "names none of the exported runs" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_export_through_wg_eval_main(world, tmp_path):
    """The `export` command as installed: cli.build_parser registers results_cli's commands."""
    out = tmp_path / "lb.json"
    assert cli.main(["export", str(world["runs"]), "-o", str(out)]) == 0
    validate(json.loads(out.read_text()))


def test_metrics_save_run_through_wg_eval_main(world, tmp_path, capsys):
    """`wg-eval metrics --scores FILE --save-run NAME --out DIR` (wired in cli.cmd_metrics)."""
    ids = [str(i) for i in range(8)]
    path = tmp_path / "elsewhere.jsonl"
    write_score_file(path, random_scores(ids, 5))
    argv = [
        "metrics",
        "--task",
        "winoground",
        "--scores",
        str(path),
        "--metadata",
        str(world["data"] / "examples.jsonl"),
        "--save-run",
        "scored-elsewhere",
        "--out",
        str(tmp_path / "runs"),
        "--json",
    ]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)  # --json output stays machine-readable
    [run_dir] = list((tmp_path / "runs" / "winoground" / "scored-elsewhere").iterdir())
    run = read_run(run_dir)
    assert run.result["metrics"] == printed["metrics"]
    assert run.task["data_fingerprint"] == read_run(world["seed0"]).task["data_fingerprint"]
