"""Runs you can tell apart: labels everywhere a run is named, `ls runs`, run-id prefixes,
export groups."""

import json
import shutil

import jsonschema
import pytest

from winoground_eval.cli import main as cli
from winoground_eval.core.labels import label_of, run_label, short_name
from winoground_eval.results.export import build_leaderboard, schema
from winoground_eval.results.report import build_report
from winoground_eval.results.runs import RunsError, find_runs, read_run, resolve_run, select_runs, survey


def wg(argv):
    return cli.main([str(a) for a in argv])


def test_label_parts():
    task = {"name": "shapes", "split": "heldout", "version": "1"}
    assert (
        run_label(task, "tiny-diffusion", {"scorer": {"stopping": "sequential"}, "task": {"split": "heldout"}})
        == "tiny-diffusion \u00b7 shapes/heldout \u00b7 stopping=sequential"
    )
    assert run_label(task, "tiny-diffusion", None) == "tiny-diffusion \u00b7 shapes/heldout"  # an old run: no options
    subsets = {"name": "sugarcrepe", "subsets": ["add_att", "swap_obj"]}
    assert (
        run_label(subsets, "clip", {"scorer": {}, "task": {"subsets": ["add_att", "swap_obj"], "k": [1, 2]}})
        == "clip \u00b7 sugarcrepe/add_att+swap_obj \u00b7 k=1,2"
    )
    many = {"name": "t", "subsets": list("abcdef")}
    assert run_label(many, "s") == "s \u00b7 t/a+b+c+3 more"
    assert short_name("diffusers:/tmp/x/tiny-sd/") == "diffusers:tiny-sd"
    assert (
        short_name("diffusers:stabilityai/stable-diffusion-2-base") == "diffusers:stabilityai/stable-diffusion-2-base"
    )
    assert "\u2026" in run_label(task, "s", {"scorer": {"prompt": "x" * 100}})
    assert (
        label_of({"task": task, "scorer": {"name": "dummy"}, "overrides": {"scorer": {"seed": "3"}}})
        == "dummy \u00b7 shapes/heldout \u00b7 seed=3"
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels")
    runs = root / "runs"
    assert wg(["run", "--task", "shapes", "--split", "test", "--scorer", "dummy", "--out", runs, "-q"]) == 0
    assert (
        wg(["run", "--task", "shapes", "--split", "test", "--scorer", "dummy", "--out", runs, "-q", "-o", "seed=7"])
        == 0
    )
    assert (
        wg(["run", "--task", "shapes", "--split", "heldout", "--scorer", "dummy", "--out", runs, "-q", "--limit", "5"])
        == 0
    )
    found = {r.label: r for r in find_runs([runs]).runs}
    return {"root": root, "runs": runs, "found": found}


def test_run_json_records_the_options_given_and_labels_follow(world, capsys):
    labels = sorted(world["found"])
    assert labels == [
        "dummy \u00b7 shapes/heldout",
        "dummy \u00b7 shapes/test",
        "dummy \u00b7 shapes/test \u00b7 seed=7",
    ]
    seeded = world["found"]["dummy \u00b7 shapes/test \u00b7 seed=7"]
    assert seeded.info["overrides"] == {"scorer": {"seed": "7"}, "task": {"split": "test"}}
    # the options are no part of the run id: `-o seed=0` (the default) names the default run
    plain = world["found"]["dummy \u00b7 shapes/test"]
    assert seeded.run_id != plain.run_id
    capsys.readouterr()
    assert wg(["show", plain.path]) == 0
    assert "dummy \u00b7 shapes/test" in capsys.readouterr().out


def test_ls_runs_lists_labels_sizes_and_states(world, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(world["runs"], runs)
    found = {r.label: r for r in find_runs([runs]).runs}
    # a run in progress (no result.json yet, its lock held by a writer), one whose process died
    # (no result.json, no lock held: interrupted) and a damaged one (result.json torn)
    from winoground_eval.core.runstore import RunStore

    progress = runs / "shapes" / "dummy" / "aaaaaaaaaaaa"
    dead = runs / "shapes" / "dummy" / "bbbbbbbbbbbb"
    for path in (progress, dead):
        shutil.copytree(found["dummy \u00b7 shapes/test"].path, path)
        (path / "result.json").unlink()
    damaged = found["dummy \u00b7 shapes/test \u00b7 seed=7"].path
    (damaged / "result.json").write_text('{"metrics": ')
    with RunStore(progress):  # a writer holds its lock
        statuses = survey(runs)
        states = {(s.label, s.status, s.n_examples, s.n_expected) for s in statuses}
        assert ("dummy \u00b7 shapes/heldout", "partial", 5, 300) in states
        assert ("dummy \u00b7 shapes/test", "complete", 300, 300) in states
        assert ("dummy \u00b7 shapes/test", "in progress", 300, None) in states
        assert ("dummy \u00b7 shapes/test", "interrupted", 300, None) in states
        assert ("dummy \u00b7 shapes/test \u00b7 seed=7", "damaged", None, None) in states
        interrupted = next(s for s in statuses if s.status == "interrupted")
        assert interrupted.path == dead
        assert (
            interrupted.resume.startswith("wg-eval run --task shapes --scorer dummy")
            and f"--out {runs}" in interrupted.resume
        )
        capsys.readouterr()
        assert wg(["ls", "runs", "--out", runs]) == 0
    captured = capsys.readouterr()
    for word in (
        "complete",
        "partial",
        "in progress",
        "interrupted",
        "damaged",
        "5 of 300",
        found["dummy \u00b7 shapes/heldout"].run_id,
    ):
        assert word in captured.out
    assert "result.json" in captured.err  # why the damaged one is damaged
    assert "Continue it with:" in captured.err and "wg-eval repair" in captured.err


def test_run_id_prefixes(world, capsys):
    runs = world["runs"]
    run = world["found"]["dummy \u00b7 shapes/test \u00b7 seed=7"]
    assert resolve_run(run.run_id[:6], runs) == run.path
    assert resolve_run(run.path, runs) == run.path
    with pytest.raises(RunsError, match="no run directory or run id starting with 'zzz'"):
        resolve_run("zzz", runs)
    capsys.readouterr()
    assert wg(["show", run.run_id[:8], "--out", runs]) == 0
    assert "seed=7" in capsys.readouterr().out
    other = world["found"]["dummy \u00b7 shapes/test"]
    assert wg(["compare", run.run_id[:8], other.run_id[:8], "--out", runs]) == 0
    out = capsys.readouterr().out
    assert "A = dummy \u00b7 shapes/test \u00b7 seed=7" in out and "B = dummy \u00b7 shapes/test" in out
    assert wg(["report", run.run_id[:8], "--output", world["root"] / "one.html", "--out", runs]) == 0
    assert wg(["show", "zzz", "--out", runs]) == 2


def test_ambiguous_prefix_lists_the_matches(world, tmp_path):
    runs = tmp_path / "runs"
    src = world["found"]["dummy \u00b7 shapes/test"].path
    for name in ("abc111111111", "abc222222222"):
        shutil.copytree(src, runs / "shapes" / "dummy" / name)
    with pytest.raises(RunsError) as info:
        resolve_run("abc", runs)
    assert (
        "matches 2 runs" in str(info.value) and "abc111111111" in str(info.value) and "abc222222222" in str(info.value)
    )
    assert resolve_run("abc1", runs).name == "abc111111111"


def test_export_groups_by_task_version_split_and_ranks_within(world, tmp_path):
    board = build_leaderboard([world["runs"]], include_partial=True, with_published=True)
    data = board.data
    assert data["published"] == []  # reference numbers only for the exported runs' tasks
    jsonschema.validate(data, schema(2))
    headings = [g["heading"] for g in data["groups"]]
    assert headings == ["shapes v1 / heldout", "shapes v1 / test"]
    by_id = {e["run_id"]: e for e in data["entries"]}
    for group in data["groups"]:
        ranks = [by_id[i]["rank"] for i in group["entries"]]
        assert ranks == list(range(1, len(ranks) + 1))
        assert all(by_id[i]["task"]["split"] == group["split"] for i in group["entries"])
    assert sorted(e["label"] for e in data["entries"]) == sorted(world["found"])
    assert sum(len(g["entries"]) for g in data["groups"]) == len(data["entries"])
    # an older v2 file without groups and labels still validates
    old = json.loads(json.dumps(data))
    del old["groups"]
    for e in old["entries"]:
        del e["label"]
        del e["task"]["subsets"]
    jsonschema.validate(old, schema(2))


def test_report_shows_published_numbers_only_next_to_their_task(world):
    runs = select_runs(find_runs([world["runs"]]).runs).kept
    report = build_report(runs, with_published=True)
    data = json.loads(report.html.split('id="report-data">')[1].split("</script>")[0])
    assert data["published"] == [] and report.license_notes == []
    assert {r["label"] for r in data["runs"]} == {r.label for r in runs}
    assert [d["heading"] for d in data["datasets"].values()] == ["shapes v1 / test"]
    order = next(iter(data["datasets"].values()))["order"]
    assert order.index("test-2") < order.index("test-10")  # natural order
    assert read_run(runs[0].path).label == runs[0].label


def test_labels_name_the_users_data_file_or_folder():
    """issue 22.8: two runs on different captions files (or image folders) never share a label."""
    from winoground_eval.core.labels import run_label

    a = run_label({"name": "captions", "source": "captions:pairs.jsonl"}, "tiny-clip")
    b = run_label({"name": "captions", "source": "captions:other.jsonl"}, "tiny-clip")
    assert a == "tiny-clip \u00b7 captions:pairs.jsonl" and b == "tiny-clip \u00b7 captions:other.jsonl"
    folder = run_label({"name": "imagefolder", "source": "imagefolder", "folder": "pets"}, "clip-vit-b32")
    assert folder == "clip-vit-b32 \u00b7 imagefolder:pets"
    assert (
        run_label({"name": "shapes", "source": "procedural (x)", "split": "test"}, "dummy")
        == "dummy \u00b7 shapes/test"
    )
