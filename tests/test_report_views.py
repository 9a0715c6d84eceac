"""The report of any mix of runs (issue 22.6), in headless Chromium at 1280 px: two runs of one
task, five runs of three tasks, a classification run, a user-data run. Each page: no console
error, every chart drawn, one section per task with its own leaderboard, metric notes and
tag selector, nothing wider than the window; the classification page has per-class bars and
a confusion view; a run keeps its colour from report to report; the deciding digits of close
scores are printed (issue 22.11).

Screenshots go to a temporary folder; with ``WG_EVAL_SCREENSHOTS=DIR`` they are written to
DIR (``WG_EVAL_SCREENSHOTS=docs`` refreshes the four PNGs docs/report.md shows).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from winoground_eval.cli.main import main
from winoground_eval.results.report import run_colours

pytestmark = pytest.mark.slow  # headless Chromium

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WIDTH = 1280

# A user's scorer whose two captions differ only in the sixth significant digit (decisive)
CLOSE_SCORER = """
import numpy as np

class Close:
    def score(self, images, captions):
        base = -0.0045330
        return np.array([[base - 1e-9 * i - (0.0 if "red" in c else 4e-10) for c in captions] for i, _ in enumerate(images)])

    def config(self):
        return {"name": "close"}

def make(**options):
    return Close()
"""


def wg(*argv) -> None:
    assert main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    out = root / "runs"
    common = ["--out", out, "-q", "--threads", "1"]
    wg("run", "--task", "shapes", "--scorer", "tiny-clip", "--limit", "24", *common)
    wg("run", "--task", "shapes", "--scorer", "dummy", "--limit", "24", *common)
    wg("run", "--task", "shapes-ranked", "--scorer", "tiny-clip", "--limit", "24", *common)
    wg("run", "--task", "shapes-ranked", "--scorer", "dummy", "--limit", "24", *common)
    wg("run", "--task", "shapes-classify", "--scorer", "tiny-clip", "--limit", "60", *common)
    data = root / "mine"
    data.mkdir()
    for name, colour in (("red.png", (230, 30, 30)), ("blue.png", (30, 30, 230))):
        Image.new("RGB", (24, 24), colour).save(data / name)
    rows = [
        {"id": "red-1", "images": ["red.png"], "captions": ["a red square", "a blue square"]},
        {"id": "blue-1", "images": ["blue.png"], "captions": ["a blue square", "a red square"]},
    ]
    (data / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "close.py").write_text(CLOSE_SCORER)
    user_out = root / "user-runs"
    wg(
        "run",
        "--task",
        f"captions:{data / 'pairs.jsonl'}",
        "--scorer",
        f"{data / 'close.py'}:make",
        "--out",
        user_out,
        "-q",
    )
    wg("run", "--task", f"captions:{data / 'pairs.jsonl'}", "--scorer", "tiny-clip", "--out", user_out, "-q")
    ids = {}
    for path in out.glob("*/*/*/run.json"):
        info = json.loads(path.read_text())
        ids[(info["task"]["name"], info["scorer"]["name"])] = path.parent
    return root, out, user_out, ids


def _shots_dir(tmp_path: Path) -> Path:
    where = os.environ.get("WG_EVAL_SCREENSHOTS")
    return Path(where) if where else tmp_path


def _open(browser, html: Path):
    problems = []
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page, problems


def _check_page(page, problems, n_tasks: int) -> None:
    assert not problems, problems
    charts = page.locator(".chart")
    assert charts.count() >= n_tasks and page.locator(".chart[data-chart='failed']").count() == 0
    assert page.locator(".chart[data-chart='ok'] svg").count() == charts.count()
    assert page.locator("section.task").count() == n_tasks
    assert page.locator("section.task table.board").count() == n_tasks  # a leaderboard per task
    assert page.locator("section.task ul.metric-help li").count() >= n_tasks  # a line per metric
    for i in range(n_tasks):  # ranks restart in every task: 1, 2, ...
        ranks = page.locator(f"section.task >> nth={i}").locator("table.board tbody td:first-child").all_text_contents()
        assert sorted(map(int, ranks)) == list(range(1, len(ranks) + 1))
    wide = page.evaluate(f"""() => Array.from(document.querySelectorAll('body *'))
        .filter((e) => e.getBoundingClientRect().right > {WIDTH} + 1 && e.getClientRects().length)
        .map((e) => e.tagName + '.' + e.className)""")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH and not wide, wide


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _report(paths, html: Path) -> None:
    wg("report", *paths, "-O", html, "--include-partial")


def test_report_views_at_1280_px(chromium, runs, tmp_path):
    from playwright.sync_api import sync_playwright

    root, out, user_out, ids = runs
    shots = _shots_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    two = tmp_path / "two.html"
    _report([ids[("shapes", "tiny-clip")], ids[("shapes", "dummy")]], two)
    five = tmp_path / "five.html"
    _report(
        [ids[k] for k in sorted(ids) if k[0] in ("shapes", "shapes-ranked")] + [ids[("shapes-classify", "tiny-clip")]],
        five,
    )
    five_reversed = tmp_path / "five-reversed.html"
    _report(
        list(
            reversed(
                [ids[k] for k in sorted(ids) if k[0] in ("shapes", "shapes-ranked")]
                + [ids[("shapes-classify", "tiny-clip")]]
            )
        ),
        five_reversed,
    )
    classify = tmp_path / "classify.html"
    _report([ids[("shapes-classify", "tiny-clip")]], classify)
    user = tmp_path / "user.html"
    _report([user_out], user)
    clip_id = ids[("shapes", "tiny-clip")].name
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page, problems = _open(browser, two)
            _check_page(page, problems, 1)
            colour_two = page.locator(f"tr[data-run-id='{clip_id}'] .swatch").evaluate(
                "(e) => getComputedStyle(e).backgroundColor"
            )
            page.screenshot(path=str(shots / "report-two-runs.png"), full_page=False)

            page, problems = _open(browser, five)
            _check_page(page, problems, 3)
            # a metric selector per task with tags (shapes-classify has none), each driving its own charts only
            selects = page.locator(".tag-metric")
            assert selects.count() == 2
            ranked = page.locator("section.task", has=page.locator("th[data-key='accuracy']")).locator(".tag-metric")
            other = [
                o for o in ranked.locator("option").evaluate_all("(os) => os.map((o) => o.value)") if o != "accuracy"
            ]
            ranked.select_option(other[0])
            shown = page.locator(".tag-charts .chart").evaluate_all(
                "(cs) => cs.map((c) => c.closest('section.task').id + ':' + c.dataset.metric)"
            )
            assert {m.split(":")[1] for m in shown} == {"text", other[0]} and len({m.split(":")[0] for m in shown}) == 2
            page.wait_for_function("() => !document.querySelector('.chart[data-chart=pending]')")
            assert page.locator(".chart[data-chart='failed']").count() == 0
            colour_five = page.locator(f"tr[data-run-id='{clip_id}'] .swatch").evaluate(
                "(e) => getComputedStyle(e).backgroundColor"
            )
            # a run's colour comes from its run id, not its position: the same runs in another order
            # get the same colours; a run keeps its own colour unless another run's id took that slot
            expected = run_colours(
                [d.name for d in ids.values() if d.parent.parent.name != "shapes-classify"]
                + [ids[("shapes-classify", "tiny-clip")].name]
            )
            assert colour_five == _rgb(expected[clip_id]) and colour_two == _rgb(
                run_colours([clip_id, ids[("shapes", "dummy")].name])[clip_id]
            )
            again, problems = _open(browser, five_reversed)
            assert not problems
            assert (
                again.locator(f"tr[data-run-id='{clip_id}'] .swatch").evaluate(
                    "(e) => getComputedStyle(e).backgroundColor"
                )
                == colour_five
            )
            colours = page.locator("table.board .swatch").evaluate_all(
                "(es) => es.map((e) => getComputedStyle(e).backgroundColor)"
            )
            assert len(set(colours)) == 5  # five runs, five colours
            page.locator("#tasks").screenshot(path=str(shots / "report-five-runs.png"))

            page, problems = _open(browser, classify)
            _check_page(page, problems, 1)
            assert (
                page.locator(".chart.per-class svg").count() == 1 and page.locator(".chart.confusion svg").count() == 1
            )
            page.locator("#tasks").screenshot(path=str(shots / "report-classification.png"))

            page, problems = _open(browser, user)
            _check_page(page, problems, 1)
            assert page.locator("#examples .example img").count() >= 2  # the user's own images
            close = page.locator("#examples .example .matrix[data-run] ol.ranked").first
            scores = close.locator(".score").all_text_contents()
            assert len(scores) == 2 and scores[0] != scores[1]  # the deciding digit is printed
            page.screenshot(path=str(shots / "report-user-data.png"), full_page=True)
        finally:
            browser.close()
