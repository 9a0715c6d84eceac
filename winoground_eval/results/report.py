"""One self-contained static HTML report of runs.

Everything the page needs is inlined into one file: the CSS, the script (vanilla JS), the
data as JSON, the charting libraries (Vega, Vega-Lite, Vega-Embed and Vega's CSP-safe
expression interpreter, BSD-3-Clause, ``report_assets/NOTICE.vega.txt``) that draw every
chart from Vega-Lite specs the script builds, and the images as ``data:`` URIs (small images
as PNG at their own size, scaled up with crisp pixels by the page; larger ones downscaled
JPEG). A Content-Security-Policy forbids every network request and any ``eval`` (the charts
evaluate their expressions with the interpreter), so the file opens the same anywhere,
offline.

Text from runs and datasets (captions, tags, scorer names) is user data: it travels as
JSON inside a ``<script type="application/json">`` element with ``<``, ``>`` and ``&``
escaped, and the script puts it into the page with ``textContent`` and
``setAttribute`` only, never as markup.

Runs are named by their labels (:mod:`winoground_eval.core.labels`). A dataset's licence note (``license_note``
in the packaged data manifest its runs record) is shown only when one of its runs is; the
published reference numbers only next to runs of their task.

Sections: the leaderboard table (sortable; each task's own metrics, from result.json's
``metric_specs``; percentages with 95% intervals) and a chart of it, per-tag breakdown
charts (95% Wilson intervals and each run's own ``n`` per tag), for
diffusion runs the mean error per timestep and the scores recomputed on evenly spaced
subsets of the stored timesteps, and a per-example browser (thumbnails, captions; for a
Winoground-style 2x2 example each run's score matrix with the four decisions, for a
1 x N example the captions ranked by each run's score with the correct one marked;
examples in natural id order; search by id or caption; filters by tag and by "A right, B
wrong" on any per-example metric; the view's state in the URL's hash, so a link opens the
same view; the filtered ids downloadable as JSON).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from ..core.errors import EXIT_RUNS, ConfigError, WgEvalError
from ..core.metrics import shape_rule, wilson
from .compare import natural_key
from .export import group_heading, published_rows
from .runs import RunRecord
from .taskfinder import TaskFinder, example_tags

ASSETS = "report_assets"
# the charting libraries, inlined in this order (vega-interpreter extends the global `vega`)
LIBRARIES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "vega-interpreter.min.js")
LIBRARY_NOTICE = "NOTICE.vega.txt"
LICENSE_SUFFIX = "A report that shows these examples must not be published or shared beyond what that license allows."
MAX_CURVE_POINTS = 48  # per-example error curves are subsampled to at most this many timesteps
MAX_MEAN_POINTS = 250  # run-level mean error curves likewise
MAX_SUBSETS = 16


class ReportError(WgEvalError):
    """A report that cannot be built or written."""

    exit_code = EXIT_RUNS


@dataclass
class Report:
    html: str
    notes: list[str]
    n_examples: int
    n_images: int
    license_notes: list[str] = field(default_factory=list)  # of the datasets shown, when their licence limits sharing


# --- diffusion: re-aggregating stored per-timestep errors ----------------------------------------
def subset_positions(n_grid: int, k: int) -> np.ndarray:
    """``k`` grid positions spread evenly over ``n_grid``: ``floor((i + 1/2) n_grid / k)``.

    The middle position of each of k equal blocks (when k divides n_grid, every
    (n_grid/k)-th position, as the scorer's own grid spaces timesteps); k = n_grid gives
    every position.
    """
    if not 1 <= k <= n_grid:
        raise ConfigError(f"cannot take {k} of {n_grid} timesteps")
    return np.floor((np.arange(k) + 0.5) * n_grid / k).astype(np.int64)


def subset_sizes(n_grid: int) -> list[int]:
    """The numbers of timesteps to re-score with: the divisors of ``n_grid`` (thinned to
    about ``MAX_SUBSETS`` on a log scale), plus log-spaced sizes when it has fewer than four."""
    ks = {k for k in range(1, n_grid + 1) if n_grid % k == 0}
    if len(ks) < 4:
        ks |= {int(round(x)) for x in np.geomspace(1, n_grid, num=min(8, n_grid))}
    ks = sorted(k for k in ks if 1 <= k <= n_grid)
    if len(ks) > MAX_SUBSETS:
        wanted = np.geomspace(1, n_grid, MAX_SUBSETS)
        ks = sorted({min(ks, key=lambda k: abs(math.log(k) - math.log(w))) for w in wanted} | {n_grid})
    return ks


def _round(values: Any, digits: int = 5) -> list:
    arr = np.asarray(values, dtype=np.float64)
    return [float(f"{x:.{digits}g}") for x in arr.ravel()]


def diffusion_summary(run: RunRecord, store: Any, ids: Sequence[str]) -> dict[str, Any] | None:
    """Mean error per timestep and scores on timestep subsets, from ``arrays/<id>.npz``;
    None when the run stored no per-timestep errors, its matrices have no built-in outcome
    rule giving the run's metrics (2x2: text / image / group; 1 x N: accuracy), or it
    stopped early (its errors hold NaN where timesteps were not evaluated, so timestep
    curves would compare unlike sets)."""
    from ..diffusion.grid import scores_from_errors, stored_timesteps

    if run.scorer_config.get("stopping"):
        return None

    errors: dict[str, np.ndarray] = {}
    uncond: dict[str, np.ndarray] = {}
    grids: set[tuple[int, ...]] = set()
    for ex_id in ids:
        arrays = store.arrays(ex_id)
        if "errors" not in arrays:
            continue
        e = np.asarray(arrays["errors"], dtype=np.float64)
        if e.ndim != 3:
            continue
        try:
            grids.add(tuple(int(t) for t in stored_timesteps(arrays, run.scorer_config)))
        except WgEvalError:  # no timesteps stored and a config that describes no grid: no curves
            return None
        errors[ex_id] = e
        if "uncond_errors" in arrays:
            uncond[ex_id] = np.asarray(arrays["uncond_errors"], dtype=np.float64)
    if not errors:
        return None
    shapes = {e.shape for e in errors.values()}
    if len(shapes) != 1 or len(grids) != 1:  # unlike grids cannot share a curve
        return None
    n_img, n_cap, n_grid_ = shapes.pop()
    rule = shape_rule((n_img, n_cap))
    wanted = [m.name for m in run.metric_specs if m.per_example]
    if rule is None or not set(wanted) <= {m.name for m in rule[0]}:
        return None
    grid = list(grids.pop())
    if len(grid) != n_grid_:
        return None
    stack = np.stack(list(errors.values()))  # (N, n_img, n_cap, T)
    cells = [(j, k) for j in range(n_img) for k in range(n_cap)]
    matched = [c for c in cells if c[0] == c[1]]
    mismatched = [c for c in cells if c[0] != c[1]]
    use_uncond = len(uncond) == len(errors)
    mean_pos = subset_positions(n_grid_, min(n_grid_, MAX_MEAN_POINTS))
    mean_curves = {
        "matched": _round(np.mean([stack[:, j, k] for j, k in matched], axis=(0, 1))[mean_pos]),
        "mismatched": _round(np.mean([stack[:, j, k] for j, k in mismatched], axis=(0, 1))[mean_pos]),
    }
    if use_uncond:
        mean_curves["unconditional"] = _round(np.stack(list(uncond.values())).mean(axis=(0, 1))[mean_pos])
    by_k = []
    for k in subset_sizes(n_grid_):
        pos = subset_positions(n_grid_, k)
        outcomes = [
            rule[1](scores_from_errors(e, uncond.get(i) if use_uncond else None, pos)) for i, e in errors.items()
        ]
        by_k.append({"k": k, **{m: float(np.mean([o[m] for o in outcomes])) for m in wanted}})
    curve_pos = subset_positions(n_grid_, min(n_grid_, MAX_CURVE_POINTS))
    per_example = {i: [_round(e[j, k][curve_pos], 4) for j, k in cells] for i, e in errors.items()}
    return {
        "n_timesteps": n_grid_,
        "normalize": "uncond" if use_uncond else "none",
        "metrics": wanted,
        "mean_timesteps": [grid[p] for p in mean_pos],
        "mean_error": mean_curves,
        "by_k": by_k,
        "curve_timesteps": [grid[p] for p in curve_pos],
        "cells": [list(c) for c in cells],
        "example_errors": per_example,
        "n_with_errors": len(errors),
    }


# --- intervals --------------------------------------------------------------------------------
def breakdown_ci(breakdown: Mapping[str, Any], binary: set[str]) -> dict[str, Any]:
    """``{group: {label: {metric: [lo, hi]}}}``: Wilson intervals of the breakdown's
    per-example metrics whose outcomes are all 0 or 1 (``binary``)."""
    out: dict[str, Any] = {}
    for group, labels in (breakdown or {}).items():
        if not isinstance(labels, Mapping):
            continue
        for label, row in labels.items():
            if not isinstance(row, Mapping):
                continue
            n = row.get("n")
            cis = {
                m: wilson(float(row[m]), int(n))
                for m in binary
                if isinstance(row.get(m), (int, float)) and isinstance(n, int)
            }
            out.setdefault(group, {})[label] = cis
    return out


def license_note(task: Mapping[str, Any]) -> str | None:
    """The licence note of the packaged data manifest a run's task records (``manifest``), if
    it carries one: data whose licence limits sharing a report says so. None otherwise."""
    name = task.get("manifest")
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        return None
    file = name if name.endswith(".json") else f"{name}.json"
    try:
        text = resources.files("winoground_eval.data_manifests").joinpath(file).read_text(encoding="utf-8")
        note = json.loads(text).get("license_note")
    except (OSError, ValueError, AttributeError, ModuleNotFoundError):
        return None
    return f"{note} {LICENSE_SUFFIX}" if isinstance(note, str) and note.strip() else None


# --- images ----------------------------------------------------------------------------------
def thumbnail_uri(image: Any, size: int) -> str:
    """A ``data:`` URI of a PIL image for the page: an image no larger than ``size`` as a
    lossless PNG at its own size (the page scales it up with crisp pixels); a larger one
    downscaled to ``size`` (longest side) as JPEG."""
    from PIL import Image

    img = image.convert("RGB").copy()
    buf = io.BytesIO()
    if max(img.size) <= size:
        img.save(buf, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    img.save(buf, format="JPEG", quality=80, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _dataset_examples(task: Any, ids: Sequence[str], thumb_size: int) -> tuple[dict[str, Any], str | None]:
    """Captions, tags and thumbnails of ``ids`` from a rebuilt task; a note when images fail."""
    tags = example_tags(task, ids)
    out: dict[str, Any] = {i: {"captions": None, "images": None, "tags": tags.get(i, {})} for i in ids}
    from ..core.taskbase import as_task

    hooks = as_task(task)  # correct_captions: a 1 x N task whose right captions are not column 0
    for i in ids:
        right = hooks.correct_captions(i)
        if right is not None:
            out[i]["correct"] = [int(k) for k in right]
    wanted = set(ids)
    skip = [i for i in task.metadata() if i not in wanted]
    problems: list[str] = []

    def on_error(ex_id: str, exc: Exception) -> None:
        problems.append(f"example {ex_id}: {exc}")

    try:
        for ex in task.examples(skip=skip, on_error=on_error):
            if ex.id in out:
                out[ex.id]["captions"] = [str(c) for c in ex.captions]
                out[ex.id]["images"] = [thumbnail_uri(im, thumb_size) for im in ex.images]
    except (WgEvalError, OSError) as exc:
        problems.append(str(exc))
    note = None
    if problems:
        note = f"{len(problems)} problem(s) loading examples (shown without images): {problems[0]}"
    return out, note


# --- the page ----------------------------------------------------------------------------------
def _clean(obj: Any) -> Any:
    """JSON-able copy with NaN/inf as None (the page's JSON must be strict)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _clean(obj.item())
    return obj


def script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``,
    U+2028 or U+2029 appear literally (each is a valid JSON string escape)."""
    text = json.dumps(_clean(data), allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _asset(name: str) -> str:
    return resources.files("winoground_eval").joinpath(f"{ASSETS}/{name}").read_text(encoding="utf-8")


def _library(name: str) -> str:
    """A charting library's text, checked to be safe inside an inline ``<script>``."""
    text = _asset(name)
    low = text.lower()
    if "</script" in low or "<!--" in low or "<script" in low:
        raise ReportError(
            f"internal: {ASSETS}/{name} holds '</script', '<script' or '<!--', which breaks its inline element"
        )
    return text


def render_html(data: Mapping[str, Any]) -> str:
    """The page: the template with the CSS, the charting libraries (and their notice), the
    script and the data inlined. Each placeholder is replaced once, in one pass, so no
    inlined text is searched for placeholders again."""
    css, js = _asset("report.css"), _asset("report.js")
    for name, text in (("report.css", css), ("report.js", js)):
        if "</" in text.replace("<\\/", ""):
            raise ReportError(f"internal: {ASSETS}/{name} holds '</', which would end its inline element")
    notice = _asset(LIBRARY_NOTICE)
    if "--" in notice:
        raise ReportError(f"internal: {ASSETS}/{LIBRARY_NOTICE} holds '--', which would end its HTML comment")
    parts = {
        "/*@CSS@*/": css,
        "/*@JS@*/": js,
        "@DATA@": script_json(data),
        "@LIBRARY_NOTICE@": notice,
        "/*@LIBRARIES@*/": "\n</script>\n<script>\n".join(_library(n) for n in LIBRARIES),
    }
    page = _asset("report.html")
    return re.sub("|".join(re.escape(k) for k in parts), lambda m: parts[m.group(0)], page)


def _decisions(s: np.ndarray) -> list[int] | None:
    """For a 2x2 matrix, the four comparisons behind text and image: i0 prefers c0, i1
    prefers c1, c0 prefers i0, c1 prefers i1 (strict ``>``); None for other shapes (the
    page ranks a 1 x N example's captions by score instead)."""
    if np.shape(s) != (2, 2):
        return None
    return [int(s[0, 0] > s[0, 1]), int(s[1, 1] > s[1, 0]), int(s[0, 0] > s[1, 0]), int(s[1, 1] > s[0, 1])]


# well-separated colours; a run's slot comes from its run id (so a run keeps its colour from
# report to report), and a run whose slot another run of the same report already took (in run-id
# order) takes the next free one
PALETTE = (
    "#2f5bd3",
    "#d1495b",
    "#2a9d8f",
    "#e9a03b",
    "#7b4fbf",
    "#5c946e",
    "#c45ab3",
    "#3d8fd1",
    "#8d6e63",
    "#707a8a",
    "#b8860b",
    "#1f7a7a",
)


def colour_slot(run_id: str) -> int:
    import hashlib

    return int(hashlib.sha256(str(run_id).encode("utf-8")).hexdigest()[:8], 16) % len(PALETTE)


def run_colour(run_id: str) -> str:
    """A run's own colour, from its run id (not its place in the list)."""
    return PALETTE[colour_slot(run_id)]


def run_colours(run_ids: Sequence[str]) -> dict[str, str]:
    """Each run's colour in one report: its own (:func:`run_colour`) unless an earlier run id (in
    sorted order) took that slot, then the next free slot; past len(PALETTE) runs, colours repeat."""
    taken: set[int] = set()
    out = {}
    for rid in sorted(set(run_ids)):
        slot = colour_slot(rid)
        for step in range(len(PALETTE)):
            if (slot + step) % len(PALETTE) not in taken:
                slot = (slot + step) % len(PALETTE)
                break
        taken.add(slot)
        if len(taken) == len(PALETTE):
            taken.clear()
        out[rid] = PALETTE[slot]
    return out


def _per_class(rows: Any) -> list[dict[str, Any]] | None:
    """A classification result's ``per_class`` rows, each with its 95% Wilson interval."""
    if not isinstance(rows, list) or not rows:
        return None
    out = []
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        n, top1 = row.get("n"), row.get("top1")
        ci = wilson(float(top1), int(n)) if isinstance(n, int) and isinstance(top1, (int, float)) else None
        out.append({**row, "ci95": ci})
    return out


def _run_entry(key: str, run: RunRecord, dataset: str, superseded: Sequence[RunRecord]) -> dict[str, Any]:
    r = run.result
    return {
        "key": key,
        "per_class": _per_class(r.get("per_class")),
        "confusion": r.get("confusion") if isinstance(r.get("confusion"), Mapping) else None,
        "label": run.label,
        "overrides": run.overrides,
        "run_id": run.run_id,
        "run_dir": str(run.path),
        "scorer": run.scorer_name,
        "config": dict(run.scorer_config),
        "task": run.task,
        "dataset": dataset,
        "metric_specs": [asdict(m) for m in run.metric_specs],
        "primary": run.primary,
        "metrics": r.get("metrics", {}),
        "ci95": r.get("ci95", {}),
        "breakdown": r.get("breakdown", {}),
        "n_examples": r.get("n_examples"),
        "n_expected": r.get("n_expected"),
        "n_ties": r.get("n_ties", 0),
        "partial": run.partial,
        "imported": bool(r.get("imported")),
        "compute": r.get("compute", {}),
        "finished": run.finished,
        "superseded": [s.run_id for s in superseded],
        "calibration": _calibration(run),
    }


def _calibration(run: RunRecord) -> dict[str, Any] | None:
    """The held-out calibration figures of ``wg-eval calibrate`` (RUN/calibration.json), or None."""
    from .calibrate import brief, read_calibration

    doc = read_calibration(run.path)
    return brief(doc) if doc is not None else None


def build_report(
    runs: Sequence[RunRecord],
    *,
    finder: TaskFinder | None = None,
    with_published: bool = False,
    thumb_size: int = 160,
    superseded: Mapping[str, Sequence[RunRecord]] | None = None,
    title: str = "winoground-eval report",
) -> Report:
    """The HTML report of ``runs`` (already selected: one per configuration, ranked)."""
    if not runs:
        raise ReportError("no runs to report")
    if not 16 <= thumb_size <= 1024:
        raise ConfigError(f"--thumb-size {thumb_size}: choose 16..1024 pixels")
    notes: list[str] = []
    datasets: dict[tuple, dict[str, Any]] = {}
    run_entries = []
    for n, run in enumerate(runs):
        t = run.task
        dkey = (t.get("name"), t.get("version"), t.get("data_fingerprint"))
        ds = datasets.setdefault(
            dkey,
            {
                "key": f"d{len(datasets)}",
                "task": t.get("name"),
                "version": t.get("version"),
                "fingerprint": t.get("data_fingerprint"),
                "runs": [],
                "ids": set(),
            },
        )
        store = run.store()
        scores = dict(store.iter_scores())
        try:
            outcomes = run.per_example(scores)
        except WgEvalError as exc:
            raise ReportError(f"{run.path}: {exc}") from None
        entry = _run_entry(f"r{n}", run, ds["key"], (superseded or {}).get(str(run.path), ()))
        entry["outcomes"] = {i: outcomes[i] for i in scores if i in outcomes}
        binary = {
            m.name
            for m in run.metric_specs
            if m.per_example
            and entry["outcomes"]
            and all(o.get(m.name) in (0, 1, 0.0, 1.0) for o in entry["outcomes"].values())
        }
        entry["breakdown_ci"] = breakdown_ci(entry["breakdown"], binary)
        entry["decisions"] = {i: _decisions(m) for i, m in scores.items()}  # exact, not from the rounded display
        # 10 significant digits: the deciding difference of two close scores stays visible (the
        # page prints each matrix with as many digits as its values need to read apart)
        entry["scores"] = {i: [_round(row, 10) for row in s] for i, s in scores.items()}
        entry["diffusion"] = (
            diffusion_summary(run, store, list(scores))
            if any("arrays" in rec for rec in store.records.values())
            else None
        )
        ds["runs"].append(entry["key"])
        ds["ids"].update(scores)
        run_entries.append(entry)
    n_images = 0
    out_datasets = {}
    for dkey, ds in datasets.items():
        ids = sorted(ds["ids"], key=natural_key)
        first = next(r for r, e in zip(runs, run_entries) if e["dataset"] == ds["key"])
        members = [r for r, e in zip(runs, run_entries) if e["dataset"] == ds["key"]]
        source = next(
            (r.info.get("data_source") for r in members if r.info.get("data_source")), None
        )  # any run's record
        task, why = finder.task_for(first.task, source) if finder is not None else (None, "no data lookup requested")
        if task is not None:
            examples, note = _dataset_examples(task, ids, thumb_size)
        else:
            examples = {i: {"captions": None, "images": None, "tags": {}} for i in ids}
            note = f"images, captions and tags are not shown: {why}"
        if note:
            notes.append(f"{ds['task']} (data {ds['fingerprint'] or 'without a recorded fingerprint'}): {note}")
        n_images += sum(1 for e in examples.values() if e["images"])
        out_datasets[ds["key"]] = {
            "task": ds["task"],
            "version": ds["version"],
            "fingerprint": ds["fingerprint"],
            "runs": ds["runs"],
            "heading": group_heading(first.task),
            "license_note": license_note(first.task),
            "order": ids,
            "examples": examples,
            "note": note,
            "images": any(e["images"] for e in examples.values()),
        }
    colours = run_colours([e["run_id"] for e in run_entries])
    for e in run_entries:
        e["color"] = colours[e["run_id"]]
    shown_tasks = {r.task_name for r in runs}
    data = {
        "title": title,
        "generated": _now(),
        "generator": {"name": "winoground-eval", "version": __version__},
        "notes": notes,
        "runs": run_entries,
        "datasets": out_datasets,
        # reference numbers only next to runs of their own task
        "published": [p for p in published_rows() if p.get("task") in shown_tasks] if with_published else [],
    }
    html = render_html(data)
    licences = sorted({d["license_note"] for d in out_datasets.values() if d["license_note"]})
    return Report(html, notes, sum(len(d["order"]) for d in out_datasets.values()), n_images, licences)


def write_report(path: str | Path, html: str) -> Path:
    """Write the page atomically; a symlink, FIFO, device or a file inside a run directory
    is refused (:func:`winoground_eval.core.safeio.write_output`)."""
    from ..core.safeio import write_output

    return write_output(path, html.encode("utf-8"), ReportError)


def _now() -> str:
    from ..core.runstore import now

    return now()
