"""Facts about the software and machine a run used, for run.json."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "open_clip_torch", "datasets", "numpy", "scipy")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"winoground-eval": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, if it is a git checkout."""
    root = Path(__file__).resolve().parent.parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, Any]:
    return {
        "packages": package_versions(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": thread_settings(),
    }


# --- CPU threads ----------------------------------------------------------------------------
# torch's default (one intra-op thread per core the process may use) oversubscribes a machine
# that other CPU-bound processes share: OpenMP threads spin-wait for each other, and on a
# 2-core machine with one other busy process the tiny diffusion model ran 3-4x slower with
# 2 threads than with 1. The default below takes only the cores nobody else is using.

_applied: dict[str, Any] | None = None  # what set_threads() did in this process


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a container's or taskset's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads(*, local_world_size: int | None = None) -> tuple[int, str]:
    """(threads, why): the intra-op thread count a run uses when ``--threads`` is not given.

    ``OMP_NUM_THREADS`` wins when set (the user or a launcher such as torchrun chose).
    Otherwise: the usable cores minus the 1-minute load average already on them (rounded),
    shared among the processes of this node (``local_world_size``, default: the launcher's
    ``LOCAL_WORLD_SIZE`` or 1), and at least 1.
    """
    env_value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env_value.isdigit() and int(env_value) > 0:
        return int(env_value), "OMP_NUM_THREADS"
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    if local_world_size is None:
        raw = os.environ.get("LOCAL_WORLD_SIZE", "").strip()
        local_world_size = int(raw) if raw.isdigit() else 1
    free = cores - math.floor(load + 0.5)
    threads = max(1, min(cores, free) // max(1, local_world_size))
    return threads, f"{cores} usable cores, load {load:.2f}"


def set_threads(threads: int | None = None, *, local_world_size: int | None = None) -> dict[str, Any]:
    """Set torch's intra-op (and, where still allowed, inter-op) thread counts before models load.

    ``threads=None`` takes ``default_threads()``. Returns what was set, and what
    ``environment()`` records from then on. Imports torch only if it is installed.
    """
    global _applied
    if threads is not None and threads < 1:
        from .errors import ConfigError

        raise ConfigError(f"--threads {threads}: give a positive number of CPU threads (e.g. --threads 1)")
    why = "--threads"
    if threads is None:
        threads, why = default_threads(local_world_size=local_world_size)
    record: dict[str, Any] = {"intra_op": threads, "chosen_by": why}
    try:
        import torch
    except ImportError:  # a torch-free install (dummy scorer only): nothing to set
        _applied = record
        return record
    torch.set_num_threads(threads)
    try:
        # Allowed once per process and only before any inter-op work; a second run in the
        # same process (the demo, the Python API) keeps the first value.
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass
    record["interop"] = torch.get_num_interop_threads()
    _applied = record
    return record


def thread_settings() -> dict[str, Any] | None:
    """The CPU thread counts in force (None when torch has not been imported)."""
    if "torch" not in sys.modules:
        return _applied
    import torch

    settings = dict(_applied or {"chosen_by": "torch default"})
    settings["intra_op"] = torch.get_num_threads()
    settings["interop"] = torch.get_num_interop_threads()
    return settings


def stable_hash(obj: Any, length: int = 12) -> str:
    """Hash of a JSON-able object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def device_description(device: str | None) -> str:
    """A human description of where a run computed, e.g. 'cuda:0 (NVIDIA H200)' or 'cpu'."""
    device = device or "cpu"
    if device.startswith("cuda"):
        try:
            import torch

            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        except Exception:
            return device
    return f"{device} ({platform.processor() or platform.machine()})"
