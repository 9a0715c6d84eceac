"""CLI conventions (issue 15): --version, -v/-q anywhere, --json, -O for output files, ls --options,
exit codes by kind of failure, messages without Python's None."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

import winoground_eval
from winoground_eval.cli.main import build_parser, main
from winoground_eval.core import errors, registry

REF = Path(__file__).parent / "data" / "reference_scores"
SHAPES = ["run", "--task", "shapes", "--scorer", "dummy", "--limit", "4"]


def _wg(*argv: str, env_extra=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "winoground_eval", *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )


# ---------------------------------------------------------------- --version, -v/-q
def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"wg-eval {winoground_eval.__version__}"
    done = _wg("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"wg-eval {winoground_eval.__version__}"


@pytest.mark.parametrize(
    "argv, verbose, quiet",
    [
        (["ls", "tasks"], False, False),
        (["-v", "ls", "tasks"], True, False),
        (["ls", "tasks", "-v"], True, False),
        (["-q", "ls", "tasks"], False, True),
        (["ls", "tasks", "--quiet"], False, True),
        (["export", "runs", "-O", "x.json", "-v"], True, False),
        (["compare", "a", "b", "-q"], False, True),
        (["choose-timesteps", "r", "-q"], False, True),
        (["repair", "r", "-v"], True, False),
        (["run", "--task", "shapes", "--scorer", "dummy", "-q"], False, True),
        (["-v", "run", "--task", "shapes", "--scorer", "dummy"], True, False),  # a global flag survives the subcommand
    ],
)
def test_verbose_and_quiet_are_accepted_before_and_after_every_subcommand(argv, verbose, quiet):
    args = build_parser().parse_args(argv)
    assert (args.verbose, args.quiet) == (verbose, quiet)


def test_quiet_silences_progress_and_info_but_not_warnings(tmp_path, capsys):
    assert main([*SHAPES, "--out", str(tmp_path / "a")]) == 0
    loud = capsys.readouterr().err
    assert "run directory:" in loud and "loading task shapes" in loud
    assert main([*SHAPES, "--out", str(tmp_path / "b"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == "" and "overall" in captured.out  # the result still prints
    # a warning survives -q
    assert (
        main(
            [
                "metrics",
                "--task",
                "winoground",
                "--scores",
                str(REF / "clip_b32.jsonl"),
                "--save-run",
                "b32",
                "--out",
                str(tmp_path / "runs"),
                "-q",
            ]
        )
        == 0
    )
    err = " ".join(capsys.readouterr().err.split())
    assert "warning" in err and "saved without --metadata" in err and "saved as a run" not in err


def test_verbose_logs_debug_and_single_process_runs_say_nothing_of_ranks(tmp_path, capsys):
    assert main([*SHAPES, "--out", str(tmp_path), "-v"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "0 of 300 examples already done, 4 of the 300 left to go (limited by --limit 4)" in err
    assert "rank" not in err


# ---------------------------------------------------------------- --json
def test_json_on_run_show_and_ls(tmp_path, capsys):
    assert main([*SHAPES, "--out", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the JSON document alone
    assert "run directory:" in captured.err
    [run_dir] = tmp_path.glob("shapes/dummy/*")
    assert result == json.loads((run_dir / "result.json").read_text())
    assert result["n_examples"] == 4 and result["metric_specs"] and result["per_example"]
    assert main(["show", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == result
    assert main(["ls", "scorers", "--json"]) == 0
    scorers = json.loads(capsys.readouterr().out)
    assert {"name": "dummy", "kind": "scorer", "summary": registry.SCORERS["dummy"].summary} in scorers
    assert main(["ls", "tasks", "--json"]) == 0
    tasks = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert tasks["shapes"]["kind"] == "task" and tasks["compositional"]["kind"] == "suite"


def test_a_limited_run_says_so(tmp_path, capsys):
    assert main([*SHAPES, "--out", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "4 of 300 examples (limited by --limit 4)" in out and "None" not in out


@pytest.mark.slow  # CLI subprocesses in a shell pipe
def test_a_closed_pipe_ends_quietly(tmp_path):
    """`wg-eval ... --json | head -1`: no BrokenPipeError traceback, exit status 141."""
    script = f"{sys.executable} -m winoground_eval ls scorers --json | head -1; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    # ls is small enough to fit the pipe buffer: then nothing breaks and the status is 0
    assert done.returncode in (0, 141) and "Traceback" not in done.stderr and done.stdout.strip() == "["
    big = tmp_path / "big.py"  # a command whose JSON is larger than any pipe buffer
    big.write_text(
        "import sys\nfrom winoground_eval.cli import main as cli; from winoground_eval.cli import ls as ls_cli\n"
        "ls_cli._listing = lambda what: [{'name': 'x' * 100, 'kind': 'scorer', 'summary': ''}] * 20000\n"
        "sys.exit(cli.main(['ls', 'scorers', '--json']))\n"
    )
    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} {big} | head -1; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == errors.EXIT_BROKEN_PIPE, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr and done.stdout.strip() == "["


# ---------------------------------------------------------------- -O for output files
@pytest.fixture
def finished(tmp_path, capsys):
    assert main([*SHAPES, "--out", str(tmp_path / "runs"), "-q"]) == 0
    capsys.readouterr()
    return tmp_path / "runs"


def test_export_and_report_write_to_capital_o(finished, tmp_path, capsys):
    assert main(["export", str(finished), "-O", str(tmp_path / "lb.json"), "--include-partial"]) == 0
    assert json.loads((tmp_path / "lb.json").read_text())["entries"]
    assert main(["export", str(finished), "--output", str(tmp_path / "lb2.json"), "--include-partial"]) == 0
    assert main(["report", str(finished), "-O", str(tmp_path / "r.html"), "--no-hub", "--include-partial"]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!")
    assert "deprecated" not in capsys.readouterr().err


def test_lowercase_o_for_files_still_works_with_a_warning(finished, tmp_path, capsys):
    assert main(["export", str(finished), "-o", str(tmp_path / "lb.json"), "--include-partial"]) == 0
    assert (tmp_path / "lb.json").exists()
    err = " ".join(capsys.readouterr().err.split())
    assert "`export -o FILE` is deprecated" in err and "-O FILE" in err
    assert main(["report", str(finished), "-o", str(tmp_path / "r.html"), "--no-hub", "--include-partial"]) == 0
    assert "`report -o FILE` is deprecated" in " ".join(capsys.readouterr().err.split())


def test_output_file_missing_or_given_twice_is_a_usage_error(finished, tmp_path, capsys):
    assert main(["export", str(finished)]) == errors.EXIT_USAGE
    assert "--output FILE (short -O FILE)" in capsys.readouterr().err
    assert main(["export", str(finished), "-o", "a.json", "-O", "b.json"]) == errors.EXIT_USAGE


# ---------------------------------------------------------------- ls --options
def never_called(
    *, width: int = 3, mode: Literal["fast", "exact"] = "exact", window: tuple[int, int] | None = None, weights: str
):
    """A scorer whose factory must not run: listing its options loads nothing."""
    raise AssertionError("the factory was called")


def test_ls_scorer_options_from_the_signature_without_loading_weights(capsys, monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "never-called", registry.Entry("test_cli_conventions:never_called", "test"))
    assert main(["ls", "scorers", "--options", "never-called", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["options"] == [
        {"name": "width", "type": "int", "default": 3, "required": False},
        {"name": "mode", "type": "fast | exact", "default": "exact", "required": False},
        {"name": "window", "type": "int,int or none", "default": None, "required": False},
        {"name": "weights", "type": "str", "default": None, "required": True},
    ]
    assert main(["ls", "scorers", "--options", "tiny-clip", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["name"] == "tiny-clip" and doc["kind"] == "scorer"
    options = {o["name"]: o for o in doc["options"]}
    assert options["batch_size"] == {"name": "batch_size", "type": "int", "default": 256, "required": False}
    assert options["dtype"]["type"] == "float32 | float16 | bfloat16 or none"
    assert main(["ls", "scorers", "--options", "sd2"]) == 0
    table = capsys.readouterr().out
    for text in ("n_timesteps", "1000", "t_range", "int,int or none", "l2 | l1 | huber", "stopping", "-o KEY=VALUE"):
        assert text in table


def test_ls_task_options_and_prefixes(capsys):
    assert main(["ls", "tasks", "--options", "shapes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {o["name"]: (o["type"], o["default"]) for o in doc["options"]} == {
        "split": ("test | heldout | val", "test"),
        "limit": ("int or none", None),
    }
    assert main(["ls", "tasks", "--options", "shapes"]) == 0
    out = capsys.readouterr().out
    assert "split (or --split)" in out and "-t KEY=VALUE" in out
    assert main(["ls", "scorers", "--options", "open_clip:", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "ARCH/TAG" in doc["bound"] and "spec" not in {o["name"] for o in doc["options"]}
    assert main(["ls", "scorers", "--options", "nope"]) == errors.EXIT_USAGE
    assert "unknown scorer 'nope'" in capsys.readouterr().err
    assert main(["ls", "tasks", "--options", "compositional"]) == errors.EXIT_USAGE


# ---------------------------------------------------------------- exit codes
def boom(**kwargs):
    raise ValueError("the scorer's code has a bug")


def interrupted(**kwargs):
    raise KeyboardInterrupt


def model_missing(**kwargs):
    raise errors.ModelLoadError("no weights here")


def test_every_error_class_has_its_own_documented_exit_code():
    classes = {
        errors.ConfigError: 2,
        errors.DataError: 3,
        errors.ScoreFileError: 3,
        errors.RunStoreError: 4,
        errors.ModelLoadError: 5,
        errors.ScoreError: 1,
        errors.WgEvalError: 1,
    }
    for cls, code in classes.items():
        assert cls.exit_code == code and code in errors.EXIT_CODES
    from winoground_eval.results.compare import CompareError
    from winoground_eval.results.report import ReportError
    from winoground_eval.results.runs import RunsError

    assert (CompareError.exit_code, RunsError.exit_code, ReportError.exit_code) == (2, 4, 4)
    docs = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    for code in errors.EXIT_CODES:
        assert f"| {code} |" in docs


@pytest.mark.parametrize(
    "scorer, code, message",
    [
        ("boom", 1, "unexpected ValueError: the scorer's code has a bug (run with -v for the traceback)"),
        ("interrupted", 130, "interrupted"),
        ("model-missing", 5, "error: no weights here"),
    ],
)
def test_exit_codes_of_failures(scorer, code, message, tmp_path, capsys, monkeypatch):
    for name in ("boom", "interrupted", "model_missing"):
        monkeypatch.setitem(
            registry.SCORERS, name.replace("_", "-"), registry.Entry(f"test_cli_conventions:{name}", "test")
        )
    assert main([*SHAPES[:4], scorer, "--out", str(tmp_path)]) == code
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "Traceback" not in err


def test_unexpected_errors_show_the_traceback_with_verbose(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "boom", registry.Entry("test_cli_conventions:boom", "test"))
    assert main([*SHAPES[:4], "boom", "--out", str(tmp_path), "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError" in err and "run with -v" not in err


def test_usage_data_and_run_store_errors(tmp_path, capsys):
    assert main(["run", "--task", "shapes", "--scorer", "dummmy", "--out", str(tmp_path)]) == 2
    assert "Did you mean 'dummy'" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--task",
                "winoground",
                "--scorer",
                "dummy",
                "--data-dir",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path),
            ]
        )
        == 3
    )
    assert main(["show", str(tmp_path / "no-run")]) == 2  # names no run: a usage error
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "empty-run" / "run.json").write_text("[]")
    assert main(["show", str(tmp_path / "empty-run")]) == 4  # a damaged run directory
    assert "the run directory was damaged" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse's own usage errors
        main(["run", "--task", "shapes"])
    assert exc.value.code == 2


# ---------------------------------------------------------------- messages
def test_imported_run_without_metadata_is_named_not_none(tmp_path, capsys):
    assert (
        main(
            [
                "metrics",
                "--task",
                "winoground",
                "--scores",
                str(REF / "clip_b32.jsonl"),
                "--save-run",
                "b32",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot" not in err or "compare" in err
    assert "--metadata" in err and "comparable" in err
    [imported] = tmp_path.glob("winoground/b32/*")
    other = tmp_path / "copy"
    import shutil

    shutil.copytree(imported, other)
    info = json.loads((other / "run.json").read_text())
    info["task"]["data_fingerprint"] = "abc123"
    (other / "run.json").write_text(json.dumps(info))
    assert main(["compare", str(imported), str(other), "--no-hub"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not recorded vs 'abc123'" in err and "None" not in err
    assert main(["report", str(imported), "-O", str(tmp_path / "r.html"), "--no-hub"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "without a recorded fingerprint" in err and "None" not in err


def test_choose_timesteps_on_a_run_without_a_method_does_not_print_none(tmp_path, capsys):
    assert main([*SHAPES, "--out", str(tmp_path), "-q"]) == 0
    [run_dir] = tmp_path.glob("shapes/dummy/*")
    capsys.readouterr()
    assert main(["choose-timesteps", str(run_dir)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not a Diffusion Classifier run" in err and "None" not in err


def test_json_of_a_suite_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(registry.SUITES, "two-shapes", ("shapes", "shapes-ranked"))
    assert (
        main(["run", "--task", "two-shapes", "--scorer", "dummy", "--limit", "2", "--out", str(tmp_path), "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["suite"] == "two-shapes" and doc["scorer"] == "dummy"
    for name in ("shapes", "shapes-ranked"):
        entry = doc["tasks"][name]
        assert entry["status"] == "done" and entry["result"]["n_examples"] == 2
        assert json.loads((Path(entry["run_dir"]) / "result.json").read_text()) == entry["result"]
