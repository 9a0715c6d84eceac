"""A 1 x N task from one file (tests/ranked_fixture_task.py), registered for the module, runs
through every results command: run, show, export, compare, report, choose-timesteps, with
the dummy scorer and the tiny random diffusion model."""

import argparse
import json

import jsonschema
import numpy as np
import pytest

from winoground_eval.cli import choose as choose_cli
from winoground_eval.cli import main as cli
from winoground_eval.core import registry
from winoground_eval.core.metrics import ranked_outcome
from winoground_eval.results.export import schema
from winoground_eval.results.report import build_report
from winoground_eval.results.runs import find_runs, read_run, select_runs
from winoground_eval.results.taskfinder import TaskFinder

TASK = "ranked-fixture"


def wg(argv):
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_sd):
    root = tmp_path_factory.mktemp("ranked")
    runs = root / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.TASKS, TASK, registry.Entry("ranked_fixture_task:RankedShapes", "1 x 3 test task"))
        for seed in (0, 1):
            assert wg(["run", "--task", TASK, "--scorer", "dummy", "--out", runs, "-q", "-o", f"seed={seed}"]) == 0
        model = tiny_sd(seed=0)
        assert (
            wg(
                [
                    "run",
                    "--task",
                    TASK,
                    "--scorer",
                    f"diffusers:{model}",
                    "--out",
                    runs,
                    "-q",
                    "-o",
                    "n_timesteps=8",
                    "-o",
                    "device=cpu",
                ]
            )
            == 0
        )
        dummies = sorted((runs / TASK / "dummy").iterdir(), key=lambda p: read_run(p).scorer["config"]["seed"])
        [diffusion] = list((runs / TASK).glob("diffusers_*/*"))
        yield {"root": root, "runs": runs, "dummy0": dummies[0], "dummy1": dummies[1], "diffusion": diffusion}


def test_result_json_v2_carries_the_tasks_metrics(world):
    run = read_run(world["dummy0"])
    r = run.result
    assert r["schema_version"] == 2
    assert [m["name"] for m in r["metric_specs"]] == ["accuracy", "macro_accuracy"] and run.primary == "accuracy"
    scores = run.scores()
    assert all(s.shape == (1, 3) for s in scores.values()) and len(scores) == 10
    assert r["per_example"] == {i: ranked_outcome(s) for i, s in scores.items()}
    assert r["metrics"]["accuracy"] == pytest.approx(np.mean([ranked_outcome(s)["accuracy"] for s in scores.values()]))
    kinds = r["breakdown"]["kind"]
    assert set(kinds) == {"colour", "shape"} and "note" not in r["breakdown"]
    assert r["metrics"]["macro_accuracy"] == pytest.approx(
        (kinds["colour"]["accuracy"] + kinds["shape"]["accuracy"]) / 2
    )
    assert r["ci95"]["macro_accuracy"] is None
    lines = [json.loads(line) for line in (world["dummy0"] / "scores.jsonl").read_text().splitlines()]
    assert all(line["info"]["pred"] == int(np.argmax(line["scores"][0])) for line in lines if "scores" in line)


def test_show_prints_the_tasks_metrics(world, capsys):
    assert wg(["show", world["dummy0"]]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "macro_accuracy" in out and "kind: colour" in out and "text" not in out


def test_export_v2(world, tmp_path, capsys):
    out = tmp_path / "lb.json"
    assert wg(["export", world["runs"], "-o", out, "--baseline", world["dummy1"]]) == 0
    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(schema(2)).validate(doc)
    assert len(doc["entries"]) == 3
    for e in doc["entries"]:
        assert set(e["metrics"]) == {"accuracy", "macro_accuracy"} and e["primary"] == "accuracy"
        assert e["metrics"]["accuracy"] is not None and e["breakdown"]["kind"]
    values = [e["metrics"]["accuracy"] for e in doc["entries"]]
    assert values == sorted(values, reverse=True) and [e["rank"] for e in doc["entries"]] == [1, 2, 3]
    compared = [e["comparison"] for e in doc["entries"] if e["comparison"]]
    assert compared and all(c["comparable"] and c["metrics"] == ["accuracy"] for c in compared)
    assert "accuracy" in capsys.readouterr().out


def test_compare_paired_on_accuracy_with_breakdown(world, capsys):
    assert wg(["compare", world["dummy0"], world["dummy1"], "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    a, b = read_run(world["dummy0"]).per_example(), read_run(world["dummy1"]).per_example()
    acc = r["overall"]["accuracy"]
    assert r["metrics"] == ["accuracy"] and acc["n"] == 10
    assert acc["diff"] == pytest.approx(np.mean([a[i]["accuracy"] - b[i]["accuracy"] for i in a]))
    assert acc["a_right_b_wrong"] == sum(a[i]["accuracy"] > b[i]["accuracy"] for i in a)
    assert 0 <= acc["p_mcnemar"] <= 1
    assert set(r["breakdown"]["kind"]) == {"colour", "shape"}  # the task is rebuilt through the registry by name
    assert r["note"] is None
    assert wg(["compare", world["dummy0"], world["dummy1"]]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "colour" in out


def test_report_ranked_view(world):
    runs = select_runs(find_runs([world["runs"]]).runs).kept
    report = build_report(runs, finder=TaskFinder())
    assert report.notes == [] and report.n_images == 10
    data = json.loads(report.html.split('id="report-data">')[1].split("</script>")[0])
    entry = next(r for r in data["runs"] if r["run_id"] == read_run(world["dummy0"]).run_id)
    assert [m["name"] for m in entry["metric_specs"]] == ["accuracy", "macro_accuracy"]
    assert entry["decisions"]["0"] is None and len(entry["scores"]["0"][0]) == 3
    assert entry["outcomes"] == read_run(world["dummy0"]).result["per_example"]
    ds = next(iter(data["datasets"].values()))
    assert len(ds["examples"]["0"]["captions"]) == 3 and len(ds["examples"]["0"]["images"]) == 1
    [diff] = [r for r in data["runs"] if r["diffusion"]]
    d = diff["diffusion"]
    assert d["metrics"] == ["accuracy"] and d["cells"] == [[0, 0], [0, 1], [0, 2]]
    assert d["by_k"][-1]["accuracy"] == pytest.approx(read_run(world["diffusion"]).result["metrics"]["accuracy"])


def test_choose_timesteps_on_a_ranked_task(world, capsys):
    parser = argparse.ArgumentParser()
    choose_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "choose-timesteps",
            str(world["diffusion"]),
            "--json",
            "--window",
            "0,1000",
            "--window",
            "0,500",
            "--n-timesteps",
            "4",
        ]
    )
    assert args.func(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["metric"] == "accuracy" and r["metrics"] == ["accuracy"]
    full = r["full"]
    assert full["n_timesteps"] == 8 and full["accuracy"] == pytest.approx(
        read_run(world["diffusion"]).result["metrics"]["accuracy"]
    )
    assert any(row["n_timesteps"] == 4 for row in r["rows"])
    args = parser.parse_args(["choose-timesteps", str(world["diffusion"]), "--metric", "text"])
    with pytest.raises(Exception, match="per-example metrics accuracy"):
        args.func(args)


def _as_schema_1(src, dst):
    """A copy of a run whose result.json predates metric_specs / per_example (schema 1)."""
    import shutil

    shutil.copytree(src, dst)
    result = json.loads((dst / "result.json").read_text())
    for key in ("metric_specs", "per_example"):
        result.pop(key)
    result["schema_version"] = 1
    (dst / "result.json").write_text(json.dumps(result))
    return dst


def test_schema_1_results_are_read_by_shape(world, tmp_path, capsys):
    old = read_run(_as_schema_1(world["dummy0"], tmp_path / "old-ranked"))
    assert [m.name for m in old.metric_specs] == ["accuracy", "macro_accuracy"] and old.primary == "accuracy"
    assert [m.per_example for m in old.metric_specs] == [True, False]
    assert old.per_example() == read_run(world["dummy0"]).result["per_example"]
    assert wg(["compare", old.path, world["dummy1"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == ["accuracy"]


def test_schema_1_winoground_run_goes_through_export_compare_report(tmp_path, capsys):
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    data = write_winoground_sample(tmp_path / "data", n_examples=4, seed=0)
    runs = tmp_path / "runs"
    for seed in (0, 1):
        assert (
            wg(
                [
                    "run",
                    "--task",
                    "winoground",
                    "--scorer",
                    "dummy",
                    "--data-dir",
                    data,
                    "--out",
                    runs,
                    "-q",
                    "-o",
                    f"seed={seed}",
                ]
            )
            == 0
        )
    dirs = sorted((runs / "winoground" / "dummy").iterdir())
    old_runs = tmp_path / "old"
    old = [_as_schema_1(d, old_runs / d.name) for d in dirs]
    assert read_run(old[0]).metric_names == ["text", "image", "group"] and read_run(old[0]).primary == "group"
    out = tmp_path / "lb.json"
    assert wg(["export", old_runs, "-o", out]) == 0
    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(schema(2)).validate(doc)
    assert all(e["metrics"].keys() == {"text", "image", "group"} for e in doc["entries"])
    capsys.readouterr()
    assert wg(["compare", old[0], old[1], "--json", "--data-dir", data]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["metrics"] == ["text", "image", "group"] and set(r["breakdown"]) >= {"collapsed_tag"}
    report = build_report(select_runs(find_runs([old_runs]).runs).kept, finder=TaskFinder([data]))
    assert report.n_examples == 4


@pytest.mark.slow  # a Python subprocess per results command
def test_results_commands_never_load_torch(world, tmp_path):
    """report, export, compare and choose-timesteps re-aggregate diffusion runs with numpy only."""
    import subprocess
    import sys
    from pathlib import Path

    code = f"""
import sys
from winoground_eval.cli import main as cli
from winoground_eval.core import registry
registry.TASKS["{TASK}"] = registry.Entry("ranked_fixture_task:RankedShapes", "x")
assert cli.main(["report", r"{world["runs"]}", "-o", r"{tmp_path / "r.html"}"]) == 0
assert cli.main(["export", r"{world["runs"]}", "-o", r"{tmp_path / "lb.json"}"]) == 0
assert cli.main(["compare", r"{world["dummy0"]}", r"{world["dummy1"]}"]) == 0
assert cli.main(["choose-timesteps", r"{world["diffusion"]}"]) == 0
assert cli.main(["show", r"{world["diffusion"]}"]) == 0
print("LOADED", sorted(m for m in ("torch", "diffusers", "transformers", "open_clip") if m in sys.modules))
"""
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout


@pytest.mark.slow  # node subprocess
def test_report_script_runs_on_both_views_under_node(world, tmp_path):
    """The page's script on a stand-in DOM under node (where Chromium is absent): no runtime
    error on either example view, the controls follow the task's metrics."""
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed (the headless-Chromium test in test_report.py covers the page)")
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    data = write_winoground_sample(tmp_path / "data", n_examples=4, seed=0)
    wg_runs = tmp_path / "wg-runs"
    assert wg(["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", data, "--out", wg_runs, "-q"]) == 0
    fake_dom = Path(__file__).parent / "data" / "report_fake_dom.js"
    summaries = {}
    for name, paths, extra in (("ranked", [world["runs"]], []), ("2x2", [wg_runs], ["--data-dir", data])):
        page = tmp_path / f"{name}.html"
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(registry.TASKS, TASK, registry.Entry("ranked_fixture_task:RankedShapes", "1 x 3 test task"))
            assert wg(["report", *paths, "-o", page, *extra]) == 0
        done = subprocess.run([node, str(fake_dom), str(page)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        summaries[name] = json.loads(done.stdout.strip().splitlines()[-1])
    ranked, square = summaries["ranked"], summaries["2x2"]
    assert ranked["ready"] == "1" and ranked["examples"] == 10
    assert (
        ranked["ranked_lists"] == ranked["correct_marked"] == 20 and ranked["decisions"] == 0
    )  # runs A and B per card
    assert ranked["metric_options"] == ["accuracy"]
    assert {"accuracy", "macro_accuracy"} <= set(ranked["board_columns"]) and "text" not in ranked["board_columns"]
    right = {
        r.run_id: sum(o["accuracy"] for o in r.result["per_example"].values())
        for r in select_runs(find_runs([world["runs"]]).runs).kept
    }
    assert sorted(ranked["a_right"].values()) == sorted(right.values())
    assert square["examples"] == 4 and square["decisions"] == 4 and square["ranked_lists"] == 0
    assert square["metric_options"] == ["text", "image", "group"]
    for summary in (ranked, square):  # every chart goes through vega-embed with the CSP-safe interpreter
        assert summary["charts"] >= 2 and summary["charts_safe"] is True
        assert summary["hash"].startswith("#a=")


@pytest.mark.slow  # headless Chromium
def test_ranked_view_in_a_headless_browser(world, tmp_path):
    """The 1 x N view in real Chromium (skips like test_report.py's browser test without it)."""
    import os
    import shutil

    path = os.environ.get("WG_EVAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if not path or sync_playwright is None:
        if os.environ.get("CI"):
            pytest.fail("the browser test needs Chromium and playwright; CI must run it")
        pytest.skip("the browser test needs Chromium (apt-get install chromium, or WG_EVAL_CHROMIUM) and playwright")
    page_path = tmp_path / "ranked.html"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.TASKS, TASK, registry.Entry("ranked_fixture_task:RankedShapes", "1 x 3 test task"))
        assert wg(["report", world["runs"], "-o", page_path]) == 0
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=10_000)
            assert page.locator("#task-d0 table.board th[data-key='accuracy']").count() == 1
            assert page.locator("#task-d0 table.board th[data-key='text']").count() == 0
            card = page.locator("#examples .example[data-id='0']")
            assert card.get_attribute("data-shape") == "1x3" and card.locator("img").count() == 1
            box = card.locator(".matrix").first
            assert box.locator("ol.ranked li").count() == 3 and box.locator("ol.ranked li.correct").count() == 1
            assert "a " in box.locator("ol.ranked li.correct").text_content()
            page.select_option("#filter-relation", "a-right")
            assert int(page.get_attribute("#example-count", "data-count")) >= 0
        finally:
            browser.close()
    assert problems == []
