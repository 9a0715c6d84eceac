"""``wg-eval show`` (a run's result) and ``wg-eval metrics`` (metrics from a score file)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from ..core import registry
from ..core.errors import ConfigError
from .console import err, out, print_json, print_summary, result_table


def cmd_metrics(args: argparse.Namespace) -> int:
    from ..core.taskbase import task_class
    from ..results.scorefile import read_score_file

    task_cls = task_class(registry.resolve_task(args.task))
    if task_cls is None:
        raise ConfigError(f"task {args.task!r} cannot compute metrics from a score file")
    scores = read_score_file(args.scores)
    result = task_cls.metrics_for_score_file(scores, args.metadata)
    if args.save_run:
        from ..results.scoreimport import save_score_file_run

        run_dir = save_score_file_run(args.task, args.scores, args.out, args.save_run, metadata=args.metadata)
        if not args.quiet:
            err.print(f"saved as a run: {escape(str(run_dir))}", soft_wrap=True)
        if args.metadata is None:
            err.print(
                f"[yellow]warning[/yellow]: the run {escape(args.save_run)} was saved without --metadata, so it records "
                "no data fingerprint: `compare` refuses it against measured runs and nothing checks that it scored "
                f"the same examples. Save it again with --metadata (the dataset's examples.jsonl) to make it "
                "comparable; the same run directory is reused.",
                soft_wrap=True,
                highlight=False,
            )
    if args.json:
        print_json(result)
    else:
        out.print(result_table(result, title=f"{args.task}: {args.scores}"))
        if result.get("n_ties"):
            out.print(f"{result['n_ties']} examples hold tied scores (counted wrong)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..results.runs import read_run, resolve_run, stale_note

    run = read_run(resolve_run(args.run_dir, args.out))
    stale = stale_note(run)
    if stale:
        err.print(
            f"[yellow]warning[/yellow]: {escape(str(run.path))}: {escape(stale)}", soft_wrap=True, highlight=False
        )
    if args.json:
        print_json(dict(run.result))
        return 0
    from ..core.labels import label_of

    print_summary(dict(run.result), label_of({**dict(run.result), **dict(run.info)}), run.path)
    from ..results.calibrate import read_calibration
    from .calibrate import print_calibration

    doc = read_calibration(run.path)
    if doc is not None:
        print_calibration(doc, out)
    return 0


def register(sub: Any) -> None:
    """Add ``metrics`` and ``show`` to ``wg-eval``'s subparsers."""
    p = sub.add_parser("metrics", help="metrics from a per-example score file in the official format")
    p.add_argument("--task", required=True, help="the task whose metrics to compute (e.g. winoground)")
    p.add_argument("--scores", required=True, help='JSONL: {"label": "{id}_c{k}_i{j}", "score": float} per line')
    p.add_argument("--metadata", help="the dataset's examples.jsonl, for the per-tag breakdown")
    p.add_argument("--json", action="store_true", help="print JSON (the layout of result.json)")
    p.add_argument(
        "--save-run",
        metavar="NAME",
        help="also save the scores as a run named NAME, so the model joins export, compare and report",
    )
    p.add_argument("--out", default="runs", help="with --save-run: parent of run directories (default: ./runs)")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("show", help="print a finished run's summary")
    p.add_argument("run_dir", metavar="RUN", help="a run directory, or a unique prefix of a run id under --out")
    p.add_argument("--json", action="store_true", help="print the run's result.json")
    p.add_argument("--out", default="runs", help="where run ids are looked up (default: ./runs)")
    p.set_defaults(func=cmd_show)
