"""What a run is asked to do, and what it did: the typed request and result of :mod:`.execute`.

The command line (``wg-eval run``) and the Python API (``winoground_eval.evaluate``) build a
:class:`RunRequest` and hand it to :func:`.execute.execute`, which returns a
:class:`RunResult`: one :class:`TaskRun` per task (one for a task, one per member of a
suite), each with its run directory, result.json's dict and why it was skipped or failed
when it was. Nothing here imports a model, a task or the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

# Flags that are task (scorer) options of the same name: --data-dir, --revision, --limit,
# --split (--device, --dtype, --batch-size) may also be given as -t (-o) key=value.
TASK_FLAGS = ("data_dir", "revision", "limit", "split")
SCORER_FLAGS = ("device", "dtype", "batch_size")


@dataclass(frozen=True)
class RunRequest:
    """One ``wg-eval run``: a task (or a suite) with one scorer.

    ``scorer_options`` and ``task_options`` hold ``-o`` / ``-t`` exactly as written
    (``KEY=VALUE``, in a suite ``-t TASK.KEY=VALUE``): they are typed once, against the
    signature of the factory the registry resolves (:func:`.overrides.parse_options`),
    by :func:`.execute.plan`; the API's ``task_options=`` arrive here as such pairs
    (:func:`.api.task_option_pairs`). ``scorer_values`` are options already typed in Python
    (the API's ``options=``): checked against the signature, not parsed. ``command`` is the
    command line that made the request (quoted in the resume hints of errors and
    interrupts); None for a request made in Python.
    """

    task: str
    scorer: str
    out: Path = Path("runs")
    scorer_options: tuple[str, ...] = ()
    task_options: tuple[str, ...] = ()
    scorer_values: Mapping[str, Any] = field(default_factory=dict)
    data_dir: tuple[str, ...] = ()  # DIR (every task that takes one) or TASK=DIR
    revision: str | None = None
    split: str | None = None
    limit: int | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: int | None = None
    threads: int | None = None  # None: the process's setting is left alone
    no_resume: bool = False
    skip_bad: bool = False
    command: tuple[str, ...] | None = None

    def flag(self, key: str) -> Any:
        """The value of the flag that is also the option ``key`` (None when not given)."""
        if key == "data_dir":
            return self.data_dir or None
        return getattr(self, key)


@dataclass(frozen=True)
class TaskRun:
    """One task's run: ``status`` is ``done``, ``interrupted`` (finished examples saved,
    ``signal`` set), ``skipped: WHY`` or ``failed: WHY``. ``result`` is result.json's dict
    (None when skipped or failed, and on the other ranks of a distributed run); ``label``
    the run's human name (:mod:`.labels`) from its run.json."""

    task: str  # as requested (a suite member's registered name)
    scorer: str
    status: str
    exit_code: int = 0
    run_dir: Path | None = None
    result: Mapping[str, Any] | None = None
    label: str = ""
    task_options: Mapping[str, Any] = field(default_factory=dict)  # typed, as the task was built
    scorer_options: Mapping[str, Any] = field(default_factory=dict)  # typed, as the scorer was built
    signal: int | None = None
    resume_command: str | None = None

    @property
    def run_id(self) -> str | None:
        return None if self.result is None else str(self.result.get("run_id", "")) or None

    @property
    def metrics(self) -> Mapping[str, Any]:
        return (self.result or {}).get("metrics") or {}

    @property
    def n_examples(self) -> int:
        return int((self.result or {}).get("n_examples") or 0)

    @property
    def done(self) -> bool:
        return self.status == "done"


@dataclass(frozen=True)
class RunResult:
    """What :func:`.execute.execute` did: every task's :class:`TaskRun`, in the suite's order
    (one for a single task). ``suite`` is the suite's name, or None."""

    request: RunRequest
    runs: tuple[TaskRun, ...]
    suite: str | None = None

    @property
    def interrupted(self) -> TaskRun | None:
        return next((r for r in self.runs if r.status == "interrupted"), None)

    @property
    def skipped(self) -> dict[str, str]:
        """Task name -> why it was skipped or failed."""
        return {r.task: r.status.partition(": ")[2] for r in self.runs if r.status.startswith(("skipped", "failed"))}

    @property
    def exit_code(self) -> int:
        """0 when a task finished (a suite needs one); an interrupt's 128 + signal; otherwise
        the first failure's status (docs/cli.md)."""
        stop = self.interrupted
        if stop is not None:
            return stop.exit_code
        if any(r.done for r in self.runs):
            return 0
        return next((r.exit_code for r in self.runs if r.exit_code), 1)
