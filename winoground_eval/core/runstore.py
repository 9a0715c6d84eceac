"""The run directory: what a run is (run.json), what it has finished (scores.jsonl), and
what it amounts to (result.json).

``OUT/<task>/<scorer>/<run_id>/``

- ``run.json``: task identity, scorer name and config, environment. Written once.
  ``run_id`` is a hash of its ``task`` and ``scorer`` sections, so a changed setting never
  mixes with old scores, while a resume on another machine or commit continues the run.
- ``scores.jsonl``: one line per finished example (id, full score matrix, info, seconds),
  appended, flushed and fsynced as each example finishes. Per-example arrays (e.g. the
  diffusion scorer's per-timestep errors) go to ``arrays/<name>.npz`` first (``<name>``: an injective,
  case-insensitive-safe encoding of the id, :func:`_array_name`), so a line's
  presence means its arrays are complete. A torn last line (a kill mid-write) is dropped
  and its example redone; a failed append (a full disk) is cut back. A corrupt line
  elsewhere is an error naming it; ``wg-eval repair`` (:mod:`.repair`) moves such lines aside.
- ``sessions.jsonl``: one line per start/resume with its environment.
- ``result.json``: always rebuilt from ``scores.jsonl``, written atomically.
- ``.lock``: held while a process writes (or sets the run aside, :meth:`RunStore.set_aside`),
  so a second process refuses instead of interleaving lines.

Every failed write ends in :class:`RunStoreError` naming the file and the OS reason.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import io
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .contracts import Scored
from .env import stable_hash
from .errors import RunStoreError
from .jsonl import cut, split_lines

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MIN_FREE_BYTES = 64 * 2**20  # refuse to start a run with less free space than this
RESUME_HINT = "finished examples are safe; free some space (or fix the directory) and rerun the same command to resume"


def write_failed(path: Path, exc: OSError) -> RunStoreError:
    """The one message of every failed write into a run directory (disk full, read-only, ...)."""
    return RunStoreError(f"cannot write {path}: {exc.strerror or exc}; {RESUME_HINT}")


def slug(name: str) -> str:
    """A file-system-safe folder name for a task or scorer name."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return out[:80] or "unnamed"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_identity(task_info: Mapping[str, Any], scorer_name: str, scorer_config: Mapping[str, Any]) -> dict[str, Any]:
    return {"task": dict(task_info), "scorer": {"name": scorer_name, "config": dict(scorer_config)}}


def run_id_of(identity: Mapping[str, Any]) -> str:
    """The hash of a run identity; the scorer config as :func:`~.scorerconfig.identity_config`
    writes it (so configs recorded before the ``{kind, version}`` header keep their ids)."""
    from .scorerconfig import identity_config

    scorer = identity.get("scorer")
    if isinstance(scorer, Mapping) and isinstance(scorer.get("config"), Mapping):
        identity = {**identity, "scorer": {**scorer, "config": identity_config(scorer["config"])}}
    return stable_hash(identity)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the rest of a group
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n").encode())


def _write_json_or_fail(path: Path, obj: Any) -> None:
    try:
        write_json(path, obj)
    except OSError as exc:
        raise write_failed(path, exc) from None


def _append_bytes(path: Path, data: bytes) -> None:
    """Append, flush and fsync ``data``; on failure cut the file back to its old size.

    The file is opened unbuffered: with a buffer, a write that failed (a full disk) leaves its
    bytes in the buffer, and the truncate and the close that follow flush them again and fail
    a second time (an OSError escaping every handler)."""
    try:
        fh = open(path, "ab", buffering=0)
    except OSError as exc:
        raise write_failed(path, exc) from None
    try:
        size = fh.tell()
        try:
            view = memoryview(data)
            while view:  # a raw write may write part of the data
                n = fh.write(view)
                if not n:
                    raise OSError(errno.EIO, "the write made no progress")
                view = view[n:]
            os.fsync(fh.fileno())
        except OSError as exc:  # e.g. a full disk: cut the partial line so the file stays whole
            try:
                fh.truncate(size)
            except OSError:
                pass  # the torn last line is dropped (and cut) when the run resumes
            raise write_failed(path, exc) from None
    finally:
        try:
            fh.close()
        except OSError:
            pass


def _finite_matrix(value: Any) -> np.ndarray:
    """A 2-d float64 matrix; ValueError (or OverflowError) if ``value`` is not one."""
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"scores have shape {matrix.shape}, not a matrix")
    return matrix


_NAME_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _array_name(example_id: str) -> str:
    """The file name (without ``.npz``) of an example's arrays: one name per id, never shared.

    Lower-case letters, digits, ``_`` and ``-`` stand for themselves; every other character
    (upper-case letters too, so that a case-insensitive file system cannot merge two ids) is
    ``~`` and the hex of its UTF-8 bytes, which is injective. An encoding longer than 120
    characters keeps its first 80 and adds ``~h`` and 32 hex digits of the id's sha256 (``~h``
    never occurs in a short name: ``~`` is always followed by hex digits there). Runs written
    before used ``slug(id)`` (+ a short hash); scores.jsonl records each file's own name, so
    those are still read."""
    import hashlib

    enc = "".join(ch if ch in _NAME_SAFE else "~" + ch.encode("utf-8").hex() for ch in example_id) or "~"
    if len(enc) <= 120:
        return enc
    return enc[:80] + "~h" + hashlib.sha256(example_id.encode("utf-8")).hexdigest()[:32]


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read in full (never unpickled); the errors of a damaged
    file (BadZipFile, EOFError, zlib.error, ValueError, ...) propagate."""
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# result.json keys and the JSON types they must have (a hand-edited file with other types is damaged)
_RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "n_examples": (int,),
    "n_expected": (int, type(None)),
    "n_skipped": (int,),
    "n_ties": (int,),
    "partial": (bool,),
    "limit": (int, type(None)),
    "metrics": (dict,),
    "breakdown": (dict,),
    "ci95": (dict,),
    "compute": (dict,),
    "per_example": (dict,),
    "metric_specs": (list,),
    "skipped": (dict,),
    "finished": (str,),
    "run_id": (str,),
    "task": (dict,),
    "scorer": (dict,),
    "environment": (dict,),
}


def _result_problem(result: dict[str, Any]) -> str | None:
    """What is wrong with the types of a parsed result.json, or None."""
    for key, types in _RESULT_TYPES.items():
        if key not in result:
            continue
        value = result[key]
        wrong = isinstance(value, bool) and bool not in types or not isinstance(value, types)
        if wrong:
            want = " or ".join(
                "null"
                if t is type(None)
                else {
                    "int": "a whole number",
                    "bool": "true/false",
                    "dict": "an object",
                    "list": "a list",
                    "str": "a string",
                }[t.__name__]
                for t in types
            )
            return f'"{key}" is {cut(json.dumps(value), 60)}, not {want}'
    for name, value in result["metrics"].items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, list, dict))):
            return f'metric "{cut(name, 40)}" is {cut(json.dumps(value), 60)}'
    for ex_id, outcome in (result.get("per_example") or {}).items():
        if not isinstance(outcome, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in outcome.values()
        ):
            return f'"per_example" of example {cut(str(ex_id), 40)} is {cut(json.dumps(outcome), 60)}, not numbers'
    return None


class RunStore:
    """One run directory. Use as a context manager to hold its lock while writing."""

    def __init__(self, path: Path, rank: int = 0):
        self.path = Path(path)
        self.rank = rank
        # Rank 0 (and every single-process run) owns scores.jsonl; rank r>0 of a distributed
        # run owns its shard scores.rank{r}.jsonl. Reading always merges every shard.
        self.shard = self.path / ("scores.jsonl" if rank == 0 else f"scores.rank{rank}.jsonl")
        self._lock_name = ".lock" if rank == 0 else f".lock.rank{rank}"
        self._lock_fh: io.TextIOWrapper | None = None
        self._records: dict[str, dict[str, Any]] = {}
        self.info: dict[str, Any] | None = None  # run.json, as create_or_open wrote or read it

    # --- creation and opening -------------------------------------------------------
    @classmethod
    def create_or_open(
        cls,
        out_dir: Path,
        identity: Mapping[str, Any],
        environment: Mapping[str, Any],
        rank: int = 0,
        overrides: Mapping[str, Any] | None = None,
        data_source: Mapping[str, Any] | None = None,
    ) -> "RunStore":
        """The run directory of ``identity`` (created with its run.json when new). ``overrides``
        (the options the user gave, for the run's label) is recorded in a new run.json only:
        it is no part of the run's identity; nor is ``data_source`` (where the data lies, absolute:
        :mod:`.datasource`), recorded likewise."""
        run_id = run_id_of(identity)
        task_name = identity["task"]["name"]
        scorer_name = identity["scorer"]["name"]
        path = Path(out_dir) / slug(task_name) / slug(scorer_name) / run_id
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-probe"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise RunStoreError(
                f"cannot write the run directory {path}: {exc.strerror or exc}. "
                "Choose a writable place with --out DIR (and check free disk space)."
            ) from None
        free = shutil.disk_usage(path).free
        if free < MIN_FREE_BYTES:
            raise RunStoreError(
                f"only {free // 2**20} MiB free where the run would be written ({path}); "
                f"free at least {MIN_FREE_BYTES // 2**20} MiB or choose another place with --out DIR"
            )
        store = cls(path, rank)
        run_json = path / "run.json"
        if run_json.exists() or rank != 0:  # rank 0 writes run.json before the others open it
            existing = store.run_info()
            if run_id_of({"task": existing["task"], "scorer": existing["scorer"]}) != run_id:
                raise RunStoreError(f"{run_json} does not match its run id {run_id}; the directory was edited by hand")
            store.info = existing
        else:
            extra = {"overrides": dict(overrides)} if overrides is not None else {}
            if data_source is not None:
                extra["data_source"] = json.loads(json.dumps(dict(data_source), default=str))
            info = {
                "schema_version": SCHEMA_VERSION,
                "run_id": run_id,
                **identity,
                "environment": dict(environment),
                "created": now(),
                **extra,
            }
            _write_json_or_fail(run_json, info)
            store.info = json.loads(json.dumps(info, default=str))
        return store

    def run_info(self) -> dict[str, Any]:
        path = self.path / "run.json"
        try:
            info = json.loads(path.read_bytes().decode("utf-8-sig"))
        except FileNotFoundError:
            raise RunStoreError(f"{self.path} is not a run directory (no run.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunStoreError(f"{path} is not valid JSON: {cut(str(exc))}; the run directory was damaged") from None
        except OSError as exc:
            raise RunStoreError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not isinstance(info, dict):
            raise RunStoreError(
                f"{path} holds a JSON {type(info).__name__}, not an object; the run directory was damaged"
            )
        bad = [k for k in ("task", "scorer") if not isinstance(info.get(k), dict)]
        if bad or "name" not in info["task"] or "name" not in info["scorer"]:
            raise RunStoreError(
                f"{path} lacks its {' and '.join(bad) or 'task or scorer name'} section; "
                "the run directory was damaged (set it aside and rerun)"
            )
        return info

    @property
    def run_id(self) -> str:
        return self.path.name

    def __enter__(self) -> "RunStore":
        self.lock()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unlock()

    def lock(self) -> None:
        fh = open(self.path / self._lock_name, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RunStoreError(
                    f"run directory {self.path} is in use by another process; wait for it to finish "
                    "or stop it (two writers would interleave their results)"
                ) from None
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock_fh = fh

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def set_aside(self) -> Path | None:
        """Move this run directory to a new sibling ``<run_id>.set-aside-<time>-<random>``
        (nothing is deleted) and return it; None if there is no directory any more.

        Holds the run's lock while moving, so a process still writing there makes this
        refuse (RunStoreError) instead of appending into the moved directory. The new name
        is reserved with an exclusive mkdir first, so two calls in the same second never
        collide or overwrite each other."""
        if self._lock_fh is not None:
            raise RunStoreError("internal: set_aside while this process holds the run's lock")
        try:
            self.lock()
        except FileNotFoundError:
            return None  # moved away by another process meanwhile: nothing left to set aside
        try:
            stamp = now().replace(":", "").replace("+0000", "Z")
            while True:
                aside = self.path.with_name(f"{self.path.name}.set-aside-{stamp}-{secrets.token_hex(4)}")
                try:
                    aside.mkdir()  # reserve the name; an empty directory is replaced by the rename
                    break
                except FileExistsError:
                    continue
            try:
                os.rename(self.path, aside)
            except OSError as exc:
                try:
                    aside.rmdir()
                except OSError:
                    pass
                raise RunStoreError(f"cannot move {self.path} aside to {aside}: {exc.strerror or exc}") from None
            return aside
        finally:
            self.unlock()

    def log_session(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps({"time": now(), **entry}, sort_keys=True, allow_nan=False) + "\n"
        _append_bytes(self.path / "sessions.jsonl", line.encode())

    def sessions(self) -> list[dict[str, Any]]:
        """Session log entries; unreadable lines are passed over (it is informational)."""
        p = self.path / "sessions.jsonl"
        if not p.exists():
            return []
        out = []
        for _, raw in split_lines(p.read_bytes()):
            try:
                entry = json.loads(raw.decode("utf-8-sig"))
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    # --- scores ---------------------------------------------------------------------
    def shards(self) -> list[Path]:
        """scores.jsonl, then the shards of distributed ranks in rank order."""
        extra = sorted(
            self.path.glob("scores.rank*.jsonl"), key=lambda p: int(p.name[len("scores.rank") : -len(".jsonl")])
        )
        return [p for p in [self.path / "scores.jsonl", *extra] if p.exists()]

    def load(self, *, repair: bool = False) -> dict[str, dict[str, Any]]:
        """Read every shard; a torn last line is ignored (and, in this process's own shard,
        cut off when ``repair``). A scored record supersedes a skipped one."""
        self._records = {}
        for path in self.shards():
            self._load_shard(path, repair=repair and path == self.shard)
        return self._records

    def _load_shard(self, path: Path, *, repair: bool) -> None:
        data = path.read_bytes()
        repair_hint = (
            f"run `wg-eval repair {self.path}` to move the bad line(s) aside (every good example is kept), then rerun"
        )
        good_end = 0
        pos = 0
        lineno = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl + 1
            raw = data[pos:end]
            lineno += 1
            if not raw.strip():  # a blank line (e.g. added by an editor): nothing to read
                good_end = pos = end
                continue
            problem = None
            try:
                if nl < 0:
                    raise ValueError("no newline")
                rec = json.loads(raw.decode("utf-8"))
                ex_id = rec["id"]
                if not isinstance(ex_id, str):
                    raise TypeError("id is not a string")
                if "skipped" not in rec:
                    matrix = _finite_matrix(rec["scores"])
                    if not np.all(np.isfinite(matrix)):
                        problem = "holds a NaN or infinite score"
            except (ValueError, KeyError, TypeError, OverflowError, UnicodeDecodeError) as exc:
                if end == len(data):  # the last line: torn by a kill mid-write
                    log.warning("%s: dropping a torn last line (%d bytes); its example will be redone", path, len(raw))
                    break
                what = (
                    "not UTF-8"
                    if isinstance(exc, UnicodeDecodeError)
                    else (f"not a complete score record ({type(exc).__name__}: {cut(str(exc), 80)})")
                )
                raise RunStoreError(
                    f"{path}:{lineno} is corrupt ({what}): {cut(raw.decode('utf-8', 'replace'))}; {repair_hint}"
                ) from None
            if problem is not None:
                # Not from the scorer (the runner refuses non-finite scores before writing):
                # the file was changed. Treat the example as not done, so a rerun redoes it.
                log.warning(
                    "%s:%d: example %s %s (the file was changed after the scorer wrote it); "
                    "it is redone by the next run; `wg-eval repair %s` moves the line aside",
                    path,
                    lineno,
                    cut(ex_id, 80),
                    problem,
                    self.path,
                )
                rec = {
                    "id": ex_id,
                    "skipped": f"{path.name}:{lineno} {problem} (a damaged line, not the scorer's output)",
                    "damaged": True,
                }
            old = self._records.get(ex_id)
            if old is not None and "skipped" not in old and "skipped" not in rec:
                raise RunStoreError(f"{path}:{lineno}: example {cut(ex_id, 80)} appears twice; {repair_hint}")
            if old is None or "skipped" in old:  # a skipped example's record is superseded when it is redone
                self._records[ex_id] = rec
            good_end = end
            pos = end
        if repair and good_end < len(data):
            try:
                with open(path, "r+b") as fh:
                    fh.truncate(good_end)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise write_failed(path, exc) from None

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        return self._records

    def append(self, example_id: str, scored: Scored, seconds: float) -> None:
        if self._lock_fh is None:
            raise RunStoreError("internal: RunStore append without holding the lock")
        arrays = {k: np.asarray(v) for k, v in scored.arrays.items()}
        rec: dict[str, Any] = {
            "id": example_id,
            "scores": np.asarray(scored.scores, dtype=np.float64).tolist(),
            "info": dict(scored.info),
            "seconds": round(float(seconds), 6),
        }
        if arrays:
            name = _array_name(example_id)
            target = self.path / "arrays" / f"{name}.npz"
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            try:
                target.parent.mkdir(exist_ok=True)
                atomic_write(target, buf.getvalue())
            except OSError as exc:
                raise write_failed(target, exc) from None
            rec["arrays"] = f"arrays/{name}.npz"
        self._append_line(rec)

    def append_skipped(self, example_id: str, reason: str) -> None:
        """Record a bad example (``--skip-bad``): counted neither right nor wrong, retried on resume."""
        self._append_line({"id": example_id, "skipped": reason})

    def _append_line(self, rec: dict[str, Any]) -> None:
        if self._lock_fh is None:
            raise RunStoreError("internal: RunStore append without holding the lock")
        line = (json.dumps(rec, allow_nan=False) + "\n").encode()
        _append_bytes(self.shard, line)
        self._records[str(rec["id"])] = rec

    def finished_ids(self) -> set[str]:
        """Ids with a score (skipped ones are not finished: a resume retries them)."""
        return {i for i, r in self._records.items() if "skipped" not in r}

    def arrays(self, example_id: str) -> dict[str, np.ndarray]:
        """The stored per-example arrays (never unpickled)."""
        rec = self._records.get(example_id)
        if rec is None or "arrays" not in rec:
            return {}
        rel = rec["arrays"]
        base = (self.path / "arrays").resolve()
        target = (self.path / rel).resolve() if isinstance(rel, str) else None
        if target is None or Path(rel).is_absolute() or ".." in Path(rel).parts or base not in target.parents:
            raise RunStoreError(
                f"example {cut(example_id, 80)}: its arrays path {cut(rel, 120)} in scores.jsonl leaves "
                f"{self.path / 'arrays'}; refusing to read it (the file was edited)"
            )
        try:
            return read_npz(target)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise RunStoreError(
                f"{target}: the arrays of example {cut(example_id, 80)} are damaged "
                f"({type(exc).__name__}: {cut(str(exc), 120)}); run `wg-eval repair {self.path}` to set "
                "the example aside, then rerun the run's command to redo it"
            ) from None

    def iter_scores(self, ids: list[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
        for ex_id in ids if ids is not None else list(self._records):
            if ex_id in self._records and "skipped" not in self._records[ex_id]:
                yield ex_id, np.asarray(self._records[ex_id]["scores"], dtype=np.float64)

    # --- result ---------------------------------------------------------------------
    def write_result(self, result: Mapping[str, Any]) -> Path:
        path = self.path / "result.json"
        _write_json_or_fail(path, result)
        return path

    def result(self) -> dict[str, Any] | None:
        """result.json as a dict; None if there is none; RunStoreError if it is damaged."""
        p = self.path / "result.json"
        try:
            result = json.loads(p.read_bytes().decode("utf-8-sig"))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunStoreError(
                f"{p} is damaged ({cut(str(exc), 120)}); rebuild it by rerunning the run's command "
                "(finished examples are read from scores.jsonl, nothing is recomputed)"
            ) from None
        except OSError as exc:
            raise RunStoreError(f"cannot read {p}: {exc.strerror or exc}") from None
        if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
            raise RunStoreError(f"{p} is not a result (no metrics object); rebuild it by rerunning the run's command")
        problem = _result_problem(result)
        if problem is not None:
            raise RunStoreError(
                f"{p} is damaged: {problem}; rebuild it by rerunning the run's command "
                "(finished examples are read from scores.jsonl, nothing is recomputed)"
            )
        return result
