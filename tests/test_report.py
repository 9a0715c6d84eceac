"""`wg-eval report`: one self-contained HTML file, checked in a real headless Chromium."""

import json
import shutil

import numpy as np
import pytest

from winoground_eval.cli import main as cli
from winoground_eval.diffusion.grid import timestep_grid
from winoground_eval.results.compare import correctness
from winoground_eval.results.report import (
    build_report,
    license_note,
    script_json,
    subset_positions,
    subset_sizes,
    wilson,
)
from winoground_eval.results.runs import find_runs, read_run, select_runs
from winoground_eval.results.scorefile import write_score_file
from winoground_eval.results.scoreimport import save_score_file_run
from winoground_eval.results.taskfinder import TaskFinder
from winoground_eval.testing.winoground_sample import write_winoground_sample

HOSTILE = '</script><b id="pwned">x</b> & "q" <img src=x onerror="document.title=1"> \u2028 end'
RIGHT = [[2.0, 1.0], [1.0, 2.0]]
TEXT_ONLY = [[2.0, 1.0], [3.0, 4.0]]
IMAGE_ONLY = [[2.0, 3.0], [1.0, 4.0]]
WRONG = [[1.0, 2.0], [2.0, 1.0]]
MODEL_A = [RIGHT, TEXT_ONLY, IMAGE_ONLY, WRONG, RIGHT, IMAGE_ONLY, WRONG, RIGHT]
MODEL_B = [WRONG, RIGHT, IMAGE_ONLY, RIGHT, WRONG, WRONG, IMAGE_ONLY, RIGHT]
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def wg(argv):
    """`wg-eval ARGV` through cli.main."""
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_sd):
    """A sample with a hostile caption; a dummy run, two imported models, a tiny diffusion run."""
    root = tmp_path_factory.mktemp("report")
    data = write_winoground_sample(root / "data", n_examples=8, seed=0)
    rows = [json.loads(line) for line in (data / "examples.jsonl").read_text().splitlines()]
    rows[1]["caption_0"] = HOSTILE
    (data / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = root / "runs"
    assert (
        cli.main(
            ["run", "--task", "winoground", "--scorer", "dummy", "--data-dir", str(data), "--out", str(runs), "-q"]
        )
        == 0
    )
    scores = {}
    for name, pattern in (("model-a", MODEL_A), ("model-b", MODEL_B)):
        scores[name] = {str(i): np.array(m) for i, m in enumerate(pattern)}
        write_score_file(root / f"{name}.jsonl", scores[name])
        save_score_file_run("winoground", root / f"{name}.jsonl", runs, name, metadata=data / "examples.jsonl")
    model = tiny_sd(seed=0)
    argv = [
        "run",
        "--task",
        "winoground",
        "--scorer",
        f"diffusers:{model}",
        "--data-dir",
        str(data),
        "--out",
        str(runs),
        "-q",
        "-o",
        "n_timesteps=8",
        "-o",
        "normalize=uncond",
        "-o",
        "device=cpu",
    ]
    assert cli.main(argv) == 0
    [diffusion] = list((runs / "winoground").glob("diffusers_*/*"))
    return {"root": root, "data": data, "runs": runs, "scores": scores, "diffusion": diffusion, "rows": rows}


def test_subsets_of_timesteps():
    assert list(subset_positions(8, 8)) == list(range(8))
    assert list(subset_positions(8, 2)) == [2, 6] and list(subset_positions(8, 1)) == [4]
    grid = timestep_grid(1000)
    assert list(grid[subset_positions(1000, 10)]) == list(
        grid[50::100]
    )  # every 100th, from the middle of the first block
    assert subset_sizes(8) == [1, 2, 4, 8]
    sizes = subset_sizes(1000)
    assert sizes[0] == 1 and sizes[-1] == 1000 and len(sizes) <= 17 and sizes == sorted(set(sizes))
    assert subset_sizes(7)[-1] == 7 and len(subset_sizes(7)) >= 3  # a prime: log-spaced sizes added


def test_script_json_cannot_end_its_element():
    text = script_json({"caption": HOSTILE, "nan": float("nan")})
    assert not any(ch in text for ch in "<>&\u2028")
    assert json.loads(text) == {"caption": HOSTILE, "nan": None}


def test_report_content(world):
    runs = select_runs(find_runs([world["runs"]]).runs).kept
    report = build_report(runs, finder=TaskFinder([world["data"]]))
    assert report.n_images == 8 and report.notes == []
    html = report.html
    assert "Content-Security-Policy" in html and "unsafe-eval" not in html
    assert "Redistribution and use in source and binary forms" in html  # the charting libraries' notice
    assert html.count("<script") == 6  # the data, vega, vega-lite, vega-embed, the interpreter, the page's script
    assert report.license_notes == []  # a synthetic sample: no licence note
    assert HOSTILE not in html and "</script><b" not in html  # the caption travels escaped
    data = json.loads(html.split('id="report-data">')[1].split("</script>")[0])
    assert [r["run_id"] for r in data["runs"]] == [r.run_id for r in runs]
    [diff] = [r for r in data["runs"] if r["diffusion"]]
    d = diff["diffusion"]
    run = read_run(world["diffusion"])
    assert (
        d["n_timesteps"] == 8
        and d["normalize"] == "uncond"
        and d["mean_timesteps"] == [int(t) for t in timestep_grid(8)]
    )
    assert [p["k"] for p in d["by_k"]] == [1, 2, 4, 8]
    full = d["by_k"][-1]  # all stored timesteps: the run's own numbers
    assert {m: full[m] for m in ("text", "image", "group")} == run.result["metrics"]
    assert len(d["example_errors"]["0"]) == 4 and len(d["example_errors"]["0"][0]) == 8
    ds = next(iter(data["datasets"].values()))
    assert ds["examples"]["1"]["captions"][0] == HOSTILE
    assert ds["examples"]["0"]["images"][0].startswith(("data:image/jpeg;base64,", "data:image/png;base64,"))
    assert ds["heading"] == "winoground v1" and ds["license_note"] is None


def test_wilson_interval():
    lo, hi = wilson(0.0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2  # a 0% score still has an upper bound
    lo, hi = wilson(1.0, 20)
    assert hi == 1.0 and 0.8 < lo < 0.9
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)
    assert wilson(0.5, 0) is None


def test_licence_note_only_for_data_whose_manifest_carries_one(world, tmp_path):
    """The banner comes from the packaged manifest a run records, never from a task name in
    the report: a run recording the real dataset's manifest gets it, the synthetic sample not."""
    assert license_note({"manifest": "shapes.json"}) is None and license_note({"manifest": "winoground-sample"}) is None
    assert license_note({"manifest": "../winoground"}) is None and license_note({}) is None
    real = license_note({"manifest": "winoground"})
    assert real and "redistribution" in real
    dummy = next(p for p in (world["runs"] / "winoground" / "dummy").iterdir())
    copy = tmp_path / "runs" / "winoground" / "dummy" / dummy.name
    shutil.copytree(dummy, copy)
    for name in ("run.json", "result.json"):
        info = json.loads((copy / name).read_text())
        info["task"]["manifest"] = "winoground"
        (copy / name).write_text(json.dumps(info))
    report = build_report([read_run(copy)])
    assert report.license_notes == [real] and "redistribution" in report.html
    plain = build_report([read_run(dummy)])
    assert plain.license_notes == [] and "redistribution" not in plain.html


def test_report_without_data_says_so(world, tmp_path, capsys):
    out = tmp_path / "r.html"
    runs = tmp_path / "runs"  # runs that recorded no data source (made before run.json kept one)
    shutil.copytree(world["runs"], runs)
    for path in runs.rglob("run.json"):
        info = json.loads(path.read_text())
        info.pop("data_source", None)
        path.write_text(json.dumps(info))
    assert wg(["report", runs, "-o", out, "--with-published"]) == 0
    captured = capsys.readouterr()
    assert "--data-dir" in captured.err and "with images" not in captured.out
    html = out.read_text()
    data = json.loads(html.split('id="report-data">')[1].split("</script>")[0])
    ds = next(iter(data["datasets"].values()))
    assert all(e["images"] is None and e["captions"] is None for e in ds["examples"].values())
    assert "not reachable" in ds["note"] and len(data["published"]) == 4  # rows of the runs' own task


def test_report_finds_a_local_copy_the_run_recorded(world, tmp_path):
    """issue 22.3: a run made with --data-dir records the folder, absolute; no --data-dir needed later."""
    out = tmp_path / "r.html"
    assert wg(["report", world["runs"], "-o", out]) == 0
    data = json.loads(out.read_text().split('id="report-data">')[1].split("</script>")[0])
    ds = next(iter(data["datasets"].values()))
    assert ds["note"] is None and all(e["images"] for e in ds["examples"].values())


@pytest.mark.slow  # headless Chromium
def test_report_in_a_headless_browser(chromium, world, tmp_path):
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report.html"
    assert wg(["report", world["runs"], "--output", out, "--data-dir", world["data"], "--with-published"]) == 0
    runs = select_runs(find_runs([world["runs"]]).runs).kept
    by_scorer = {r.scorer_name: r for r in runs}
    a_ok = correctness(world["scores"]["model-a"])
    b_ok = correctness(world["scores"]["model-b"])
    image_a_right_b_wrong = [i for i in a_ok if a_ok[i][1] and not b_ok[i][1]]
    assert image_a_right_b_wrong == ["0", "4", "5"]
    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)

            # every chart drawn by Vega (an svg inside each chart container), none failed
            charts = page.locator(".chart")
            assert charts.count() >= 3 and page.locator(".chart[data-chart='failed']").count() == 0
            assert page.locator(".chart[data-chart='ok'] svg").count() == charts.count()
            assert page.locator(".tag-charts .chart[data-group='collapsed_tag'] svg").count() == 1
            assert page.locator(".license").count() == 0  # synthetic data: no licence banner

            # the table: one row per run, named by its label, sortable
            rows = page.locator("#task-d0 table.board tbody tr")
            assert rows.count() == len(runs) == 4
            assert page.locator("#published tbody tr").count() == 4
            labels = page.locator("#task-d0 table.board tbody td.name .label").all_text_contents()
            assert sorted(labels) == sorted(r.label for r in runs)

            def column(key):
                idx = page.locator("#task-d0 table.board thead th").evaluate_all(
                    f"(ths) => ths.findIndex((th) => th.dataset.key === {json.dumps(key)})"
                )
                return page.locator(f"#task-d0 table.board tbody tr td:nth-child({idx + 1})").evaluate_all(
                    "(tds) => tds.map((td) => td.dataset.value)"
                )

            page.click("#task-d0 table.board th[data-key='image']")
            assert page.get_attribute("#task-d0 table.board th[data-key='image']", "aria-sort") == "descending"
            values = [float(v) for v in column("image")]
            assert values == sorted(values, reverse=True) and values[0] > values[-1]
            assert "sort=image%3Adescending" in page.evaluate("location.hash")
            page.click("#task-d0 table.board th[data-key='image']")
            values = [float(v) for v in column("image")]
            assert values == sorted(values)
            page.click("#task-d0 table.board th[data-key='run']")
            assert column("run") == sorted((r.label for r in runs), key=str.lower)

            # the example browser: "A right, B wrong" on the image score, then a tag
            page.select_option("#run-a", label=by_scorer["model-a"].label)
            page.select_option("#run-b", label=by_scorer["model-b"].label)
            page.select_option("#filter-metric", "image")
            page.select_option("#filter-relation", "a-right-b-wrong")
            count = page.get_attribute("#example-count", "data-count")
            ids = page.locator("#examples .example").evaluate_all("(els) => els.map((e) => e.dataset.id)")
            assert count == str(len(image_a_right_b_wrong)) and ids == image_a_right_b_wrong

            # the filtered ids download as JSON
            with page.expect_download() as info:
                page.click("#download")
            saved = tmp_path / "ids.json"
            info.value.save_as(saved)
            payload = json.loads(saved.read_text())
            assert payload["ids"] == image_a_right_b_wrong and payload["run_a"]["run_id"] == by_scorer["model-a"].run_id

            # the view lives in the URL: a fresh page at that address shows the same examples
            view = page.evaluate("location.hash")
            assert (
                f"a={by_scorer['model-a'].run_id}" in view and "show=a-right-b-wrong" in view and "metric=image" in view
            )
            again = browser.new_page(viewport={"width": 1280, "height": 900})
            again.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            again.goto(out.as_uri() + view)
            again.wait_for_selector("body[data-ready='1']", timeout=20_000)
            assert (
                again.locator("#examples .example").evaluate_all("(els) => els.map((e) => e.dataset.id)")
                == image_a_right_b_wrong
            )
            assert (
                again.input_value("#filter-relation") == "a-right-b-wrong" and again.evaluate("location.hash") == view
            )
            assert again.get_attribute("#task-d0 table.board th[data-key='run']", "aria-sort") == "ascending"
            again.close()

            page.select_option("#filter-relation", "all")
            page.select_option("#filter-tag", label="collapsed_tag: Object")
            objects = [str(r["id"]) for r in world["rows"] if r["collapsed_tag"] == "Object"]
            ids = page.locator("#examples .example").evaluate_all("(els) => els.map((e) => e.dataset.id)")
            assert ids == objects
            card = page.locator("#examples .example[data-id='0']")
            assert card.locator("img").count() == 2
            assert (
                card.locator(".matrix").count() == 2 and card.locator(".decisions .ok").count() == 4
            )  # model-a: RIGHT

            # search by id or by caption text
            page.select_option("#filter-tag", "")
            page.fill("#search", world["rows"][3]["caption_1"][:12])
            found = page.locator("#examples .example").evaluate_all("(els) => els.map((e) => e.dataset.id)")
            assert "3" in found and len(found) < 8
            page.fill("#search", "7")
            assert page.locator("#examples .example").evaluate_all("(els) => els.map((e) => e.dataset.id)") == ["7"]
            assert "q=7" in page.evaluate("location.hash")
            page.fill("#search", "")

            # a caption is text, never markup
            assert page.locator("#pwned").count() == 0
            captions = page.locator("#examples .example[data-id='1'] .caption").all_text_contents()
            assert any("</script>" in c and 'onerror="document.title=1"' in c for c in captions)
            assert page.title() == "winoground-eval report"

            # diffusion plots, drawn by Vega
            page.select_option("#run-a", label=by_scorer[read_run(world["diffusion"]).scorer_name].label)
            assert page.locator("#diffusion-section").is_visible()
            assert page.locator("#diffusion-charts .chart svg").count() == 2
            page.wait_for_function(
                "document.querySelectorAll('#examples .example-curve[data-chart=ok] svg').length === 8"
            )

            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
    assert problems == []
    assert all(url.startswith((out.as_uri(), "data:", "blob:")) for url in requests), requests
