"""Loading a benchmark as its authors publish it: a Hugging Face dataset at a pinned revision,
files of a Hub repository, or a local copy of either in the same layout (``--data-dir``).

Every function raises :class:`~winoground_eval.core.errors.DataError` naming the dataset, what is
missing and where to get it (the manifest's ``get`` line), never a bare library error. The
token comes from the argument, ``HF_TOKEN`` or a prior ``hf auth login`` (huggingface_hub
reads the stored one itself).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from importlib import resources
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from winoground_eval.core.errors import DataError
from winoground_eval.core.policy import hub_offline, offline_variable

CONNECT_TIMEOUT_S = 5.0
OFFLINE_WORDS = ("offlinemodeisenabled", "outgoing traffic has been disabled", "offline mode")
GATED_WORDS = ("gated", "401", "403", "unauthorized", "access to", "accept")


def manifest(name: str) -> dict[str, Any]:
    """A packaged ``data_manifests/NAME`` as a dict."""
    return json.loads(resources.files("winoground_eval.data_manifests").joinpath(name).read_text())


def _scrub(text: str, token: str | None) -> str:
    for secret in {token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")}:
        if secret:
            text = text.replace(secret, "***")
    return text


def hub_error(task: str, m: Mapping[str, Any], exc: BaseException, token: str | None) -> DataError:
    """The error for a failed Hub load: gated terms, a missing revision or no network, each with the way out."""
    text = _scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, token)
    low = text.lower()
    gated = any(w in low for w in GATED_WORDS)
    if any(w in low for w in OFFLINE_WORDS) or (hub_offline() and not gated):
        var = offline_variable() or "HF_HUB_OFFLINE"
        why = (
            f"{var} is set and the Hugging Face cache lacks {m['hf_repo']} at "
            f"{m.get('revision')!r}: load it once where there is network (unset {var})"
        )
    elif gated:
        why = (
            f"{m['hf_repo']} is gated or needs a token: accept its terms at https://huggingface.co/datasets/"
            f"{m['hf_repo']} and log in (`hf auth login`) or set HF_TOKEN"
        )
    elif "revision" in low or "not found" in low:
        why = f"revision {m.get('revision')!r} of {m['hf_repo']} was not found (pass --revision SHA, or check the manifest)"
    else:
        why = "the Hub could not be reached"
    return DataError(
        f"{task}: {why} ({text}). Get the data: {m['get']}; or pass --data-dir DIR with a local copy "
        f"in the same layout ({m.get('layout', 'see docs/benchmarks.md')})."
    )


def check_reachable(task: str, m: Mapping[str, Any]) -> None:
    """Fail fast (a few seconds, not minutes of retries) when the Hub cannot be reached; offline mode
    (HF_HUB_OFFLINE=1) skips the check and reads the Hugging Face cache."""
    if hub_offline():
        return
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    parsed = urlparse(endpoint)
    try:
        socket.create_connection(
            (parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)), timeout=CONNECT_TIMEOUT_S
        ).close()
    except OSError as exc:
        raise DataError(
            f"{task}: cannot reach the Hugging Face Hub at {endpoint} to load {m['hf_repo']} ({exc}). "
            f"Pass --data-dir DIR with a local copy ({m.get('layout', 'the Hub layout')}); get it where "
            f"there is network: {m['get']}; or set HF_HUB_OFFLINE=1 to use the Hugging Face cache."
        ) from None


def resolved_sha(repo: str, revision: str, token: str | None) -> str | None:
    """The commit a revision names on the Hub, or None when it cannot be asked (offline)."""
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
        return revision
    if hub_offline():
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(repo, revision=revision, token=token).sha
    except Exception:  # noqa: BLE001 - offline or refused: the run records revision only
        return None


def hub_split(task: str, m: Mapping[str, Any], split: str, revision: str, token: str | None) -> Any:
    """``datasets.load_dataset(hf_repo, split=..., revision=...)``."""
    from datasets import load_dataset

    check_reachable(task, m)
    try:
        return load_dataset(m["hf_repo"], split=split, revision=revision, token=token)
    except Exception as exc:  # datasets wraps hub errors in many types
        raise hub_error(task, m, exc, token) from None


def hub_files(
    task: str, m: Mapping[str, Any], revision: str, token: str | None, patterns: list[str] | None = None
) -> Path:
    """A local snapshot of the Hub repository's files (``snapshot_download``), cached by huggingface_hub."""
    from huggingface_hub import snapshot_download

    check_reachable(task, m)
    try:
        return Path(
            snapshot_download(
                m["hf_repo"], repo_type="dataset", revision=revision, token=token, allow_patterns=patterns
            )
        )
    except Exception as exc:
        raise hub_error(task, m, exc, token) from None


def local_split(task: str, m: Mapping[str, Any], root: Path, split: str) -> Any:
    """A local copy of a Hub dataset: a ``save_to_disk`` folder (a DatasetDict or one Dataset, at
    DIR or DIR/data), or the repository's parquet files (``DIR/data/<split>-*.parquet``)."""
    from datasets import load_dataset, load_from_disk

    if not root.is_dir():
        raise DataError(f"{task}: --data-dir {root} is not a folder. Get the data: {m['get']}")
    for base in (root, root / "data"):
        if (base / "dataset_dict.json").is_file() or (base / "state.json").is_file():
            loaded = load_from_disk(str(base))
            if hasattr(loaded, "keys"):
                if split not in loaded:
                    raise DataError(f"{task}: {base} has splits {', '.join(loaded)}, not {split!r} (--split)")
                return loaded[split]
            return loaded
    files = sorted(root.glob(f"**/{split}-*.parquet")) or sorted(root.glob(f"**/{split}/*.parquet"))
    if not files:
        raise DataError(
            f"{task}: no {split!r} split in {root}: expected {m.get('layout', 'the Hub layout')} "
            f"(a save_to_disk folder or DIR/data/{split}-*.parquet). Get the data: {m['get']}"
        )
    return load_dataset("parquet", data_files=[str(f) for f in files], split="train")


def load_split(
    task: str, m: Mapping[str, Any], *, data_dir: str | None, split: str, revision: str, token: str | None
) -> tuple[Any, dict[str, Any]]:
    """The split from ``--data-dir`` or the Hub, and what the run records about its source."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return local_split(task, m, root, split), {"source": f"local copy of hf:{m['hf_repo']}"}
    token = token or os.environ.get("HF_TOKEN") or None
    ds = hub_split(task, m, split, revision, token)
    return ds, {
        "source": f"hf:{m['hf_repo']}",
        "revision": revision,
        "revision_resolved": resolved_sha(m["hf_repo"], revision, token),
    }


def raw_images(ds: Any, columns: tuple[str, ...]) -> Any:
    """The dataset with its image columns left undecoded (``{"bytes", "path"}``): hashing needs no decode."""
    from datasets import Image as ImageFeature

    for col in columns:
        if col not in ds.column_names:
            raise DataError(f"column {col!r} missing (columns: {', '.join(ds.column_names)})")
        ds = ds.cast_column(col, ImageFeature(decode=False))
    return ds


def image_digest(value: Any) -> str:
    """sha256 of an undecoded image cell (its bytes, else its file)."""
    data = value.get("bytes") if isinstance(value, dict) else None
    if data is None and isinstance(value, dict) and value.get("path"):
        data = Path(value["path"]).read_bytes()
    return hashlib.sha256(data or b"").hexdigest()
