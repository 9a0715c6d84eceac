"""Issue 22: output that survives any width, markup that is never interpreted, and the
command-line conventions a newcomer expects (comma lists, --model, -V, help everywhere, 141)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from winoground_eval.cli.main import build_parser, main

ENV = {**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def wg_subprocess(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "winoground_eval", *map(str, argv)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
        **kw,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-output") / "runs"
    for seed in ("0", "1"):
        assert (
            main(
                [
                    "run",
                    "--task",
                    "shapes",
                    "--scorer",
                    "dummy",
                    "--limit",
                    "6",
                    "-o",
                    f"seed={seed}",
                    "--out",
                    str(out),
                    "-q",
                ]
            )
            == 0
        )
    return out


@pytest.mark.slow  # CLI subprocesses
def test_tables_written_to_a_file_keep_every_number(runs, tmp_path):
    """22.5: `compare A B > cmp.txt` wrote `│ over… │ 300 │ text │ 100.… │`."""
    ids = [p.name for p in sorted(runs.glob("shapes/dummy/*"))]
    with open(tmp_path / "cmp.txt", "w") as fh:
        done = subprocess.run(
            [sys.executable, "-m", "winoground_eval", "compare", *ids, "--out", str(runs)],
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "cmp.txt").read_text()
    assert "\u2026" not in text and "overall" in text and "McNemar" in text
    shown = wg_subprocess("show", ids[0], "--out", runs)
    assert shown.returncode == 0 and "\u2026" not in shown.stdout and "95% CI" in shown.stdout
    listed = wg_subprocess("ls", "runs", "--out", runs)
    assert all(i in listed.stdout for i in ids) and "\u2026" not in listed.stdout


def test_export_prints_json_on_request(runs, tmp_path, capsys):
    """22.5: --json wherever a table is printed."""
    capsys.readouterr()
    assert main(["export", str(runs), "-O", str(tmp_path / "lb.json"), "--include-partial", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "lb.json").read_text())


def test_markup_in_names_and_docstrings_is_printed_as_written():
    """22.9: `imagefolder:x` rendered `:x:` as an emoji and showed raw reST."""
    done = wg_subprocess("ls", "tasks", "--options", "imagefolder:x")
    assert done.returncode == 0, done.stderr
    assert "imagefolder:x" in done.stdout and "``" not in done.stdout and "`--task imagefolder:DIR`" in done.stdout


def test_every_option_has_help_and_version_has_a_short_flag(capsys):
    """22.10: --task, --scorer, --dtype and --batch-size had no help text; no -V."""
    parser = build_parser()
    missing = []

    def walk(p: argparse.ArgumentParser, where: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{where} {name}")
            elif not action.help and action.help != argparse.SUPPRESS:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")

    walk(parser, "wg-eval")
    assert not missing, missing
    with pytest.raises(SystemExit) as done:
        main(["-V"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("wg-eval ")


@pytest.mark.slow  # CLI subprocesses
def test_a_closed_pipe_exits_141_as_documented():
    """22.10: `show | head` sometimes exited 1 with no message (rich's own broken-pipe exit)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "winoground_eval", "ls", "scorers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    proc.stdout.close()  # the reader goes away before the first line
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, stderr


def test_comma_lists_sweep_every_pair_and_model_is_scorer(tmp_path, capsys):
    """22.10: `--task a,b` was refused; a sweep runs each (task, scorer) pair and sums up."""
    out = tmp_path / "runs"
    capsys.readouterr()
    assert (
        main(["run", "--task", "shapes,shapes-ranked", "--model", "dummy", "--limit", "3", "--out", str(out), "-q"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "sweep: 2 task(s) x 1 scorer(s)" in printed
    assert (
        len(list(out.glob("shapes/dummy/*/result.json"))) == 1
        and len(list(out.glob("shapes-ranked/dummy/*/result.json"))) == 1
    )
    assert (
        main(
            [
                "run",
                "--task",
                "shapes",
                "--scorer",
                "dummy,no-such-scorer",
                "--limit",
                "3",
                "--out",
                str(out),
                "-q",
                "--json",
            ]
        )
        == 2
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"][:6] for r in rows] == ["done", "failed"] and rows[0]["result"]["n_examples"] == 3


def test_classification_runs_show_per_class_rows(tmp_path, capsys):
    """22.10: imagefolder showed no per-class rows in the terminal."""
    out = tmp_path / "runs"
    capsys.readouterr()
    assert (
        main(["run", "--task", "shapes-classify", "--scorer", "dummy", "--limit", "12", "--out", str(out), "-q"]) == 0
    )
    printed = capsys.readouterr().out
    result = json.loads(next(out.glob("*/*/*/result.json")).read_text())
    assert result["per_class"]
    for row in result["per_class"]:
        assert f"class: {row['classname']}" in printed


def test_a_narrow_terminal_wraps_labels_and_keeps_numbers_whole():
    """22.5 on a terminal: the label column folds, numbers are never cut."""
    import io

    from rich.console import Console

    from winoground_eval.cli.console import result_table

    result = {
        "metric_specs": [{"name": n, "primary": n == "group"} for n in ("text", "image", "group")],
        "metrics": {"text": 1.0, "image": 0.123456, "group": 0.5},
        "n_examples": 300,
        "ci95": {"text": [0.987, 1.0], "image": [0.1, 0.15], "group": [0.45, 0.55]},
        "breakdown": {
            "a rather long breakdown group name": {"an even longer label of one tag": {"n": 300, "text": 1.0}}
        },
    }
    buf = io.StringIO()
    Console(file=buf, width=60, force_terminal=True, color_system=None).print(result_table(result))
    text = buf.getvalue()
    assert "\u2026" not in text and "100.00" in text and "12.35" in text and "98.70-100.00" in text


def test_repair_says_the_command_that_continues_the_run(tmp_path, capsys):
    """22.8: repair and resume say how to continue, as a command."""
    out = tmp_path / "runs"
    assert (
        main(["run", "--task", "shapes", "--scorer", "dummy", "--limit", "3", "-o", "seed=4", "--out", str(out), "-q"])
        == 0
    )
    (run_dir,) = out.glob("shapes/dummy/*")
    shard = run_dir / "scores.jsonl"
    shard.write_text(shard.read_text() + "garbage\n")
    capsys.readouterr()
    assert main(["repair", str(run_dir)]) == 0
    err = capsys.readouterr().err.replace("\n", " ")
    assert f"wg-eval run --task shapes --scorer dummy -o seed=4 --out {out}" in err


def test_paths_with_brackets_print_as_written(tmp_path, capsys):
    """22.9: a folder named like rich markup (`[bold]`) is text."""
    out = tmp_path / "[bold]runs[/bold]"
    assert main(["run", "--task", "shapes", "--scorer", "dummy", "--limit", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"run directory: {out}" in captured.err.replace("\n", "") and "[bold]runs[/bold]" in captured.out.replace(
        "\n", ""
    )
