"""`wg-eval calibrate RUN (--val-ids FILE | --val-run VAL_RUN)`: fit a temperature on a run's scores.

The work is :mod:`.calibration_run`'s (fit, write and read ``RUN/calibration.json``); this
module prints the held-out figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping

from ..results import calibration as cal
from ..results.calibrate import calibrate
from .console import print_json


def _fmt(x: Any, ci: Any, pct: bool) -> str:
    if x is None:
        return "-"
    f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
    return f"{f(x)} [{f(ci[0])}, {f(ci[1])}]" if ci else f(x)


def calibration_table(doc: Mapping[str, Any]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    held = doc.get("held_out") or {}
    fitted = doc.get("fitted_on") or {}
    title = (
        f"calibration: T = {doc['temperature']:.4g} ({doc.get('scale', 'raw')} scores), fitted on {fitted.get('n_images')} images of run "
        f"{fitted.get('run_id')} ({fitted.get('task')} / {fitted.get('split')}, {fitted.get('how')}); "
        f"held out: {held.get('n_images')} images, 95% bootstrap intervals"
    )
    table = Table(title=escape(title), title_justify="left")
    for col in ("", "NLL", f"ECE ({held.get('ece_bins', cal.ECE_BINS)} bins), %", "top-1, %", "mean confidence, %"):
        table.add_column(col, justify="left" if not col else "right")
    for name in ("before", "after"):
        s = held.get(name)
        if not s:
            continue
        ci = s.get("ci95") or {}
        table.add_row(
            "T = 1" if name == "before" else "T fitted",
            _fmt(s["nll"], ci.get("nll"), False),
            _fmt(s["ece"], ci.get("ece"), True),
            _fmt(s["top1"], ci.get("top1"), True),
            _fmt(s["mean_confidence"], None, True),
        )
    return table


def print_calibration(doc: Mapping[str, Any], out: Any) -> None:
    from rich.markup import escape

    out.print(calibration_table(doc))
    und = doc.get("undefined") or {}
    if und.get("n"):
        first = (und.get("rows") or [{}])[0]
        out.print(
            f"{und['n']} images have undefined probabilities and are left out (e.g. {escape(str(first.get('id')))}: "
            f"{escape(str(first.get('why')))})",
            soft_wrap=True,
            highlight=False,
        )


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..results.runs import resolve_run
    from ..results.taskfinder import TaskFinder
    from ..results.timestep_select import read_ids
    from .console import out

    run_dir = resolve_run(args.run_dir, args.out)
    ids = read_ids(args.val_ids) if args.val_ids else None
    doc = calibrate(
        run_dir, val_ids=ids, val_run=args.val_run, finder=TaskFinder(args.data_dir or (), hub=not args.no_hub)
    )
    if args.json:
        print_json({k: v for k, v in doc.items() if k != "probabilities"})
        return 0
    print_calibration(doc, out)
    out.print(f"written: [bold]{Path(run_dir) / cal.CALIBRATION_FILE}[/bold]", soft_wrap=True)
    return 0


def register(sub: Any) -> None:
    """Add ``calibrate`` to ``wg-eval``'s subparsers."""
    p = sub.add_parser(
        "calibrate",
        help="fit a temperature on validation scores: calibrated probabilities, NLL and ECE",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument(
        "run_dir", metavar="RUN", help="the run to calibrate (a directory, or a unique run-id prefix under --out)"
    )
    p.add_argument(
        "--val-ids", metavar="FILE", help="fit on these example ids of RUN (one per line); measure on the others"
    )
    p.add_argument(
        "--val-run", metavar="VAL_RUN", help="fit on every example of this run (same scorer, e.g. the val split)"
    )
    p.add_argument("--out", default="runs", help="where run ids are looked up (default: ./runs)")
    p.add_argument(
        "--data-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a local copy of the run's data, when its task must be rebuilt for its classes",
    )
    p.add_argument("--no-hub", action="store_true", help="do not load Hugging Face Hub data to rebuild the run's task")
    p.add_argument("--json", action="store_true", help="print calibration.json (without the per-image probabilities)")
    p.set_defaults(func=cmd_calibrate)
