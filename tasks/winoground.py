"""The Winoground task (Thrush et al., CVPR 2022).

Two sources: the gated Hugging Face dataset ``facebook/winoground`` (revision from
``data_manifests/winoground.json`` or ``--revision``; token from ``HF_TOKEN`` or a prior
``huggingface-cli login``), or a local copy in the dataset repository's own layout
(``--data-dir``): ``examples.jsonl`` and the images as a folder ``images/`` or
``images.zip``, named ``ex_{id}_img_{k}.*``, either in DIR or in DIR/data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import zipfile
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import urlparse

import numpy as np
from PIL import Image, UnidentifiedImageError

from winoground_eval.contracts import Example
from winoground_eval.errors import DataError, ScoreFileError
from winoground_eval.metrics import (
    WINOGROUND_COMPARISONS,
    WINOGROUND_METRICS,
    check_matrix,
    winoground_metrics,
    winoground_outcomes,
)

log = logging.getLogger(__name__)

HF_REPO = "facebook/winoground"
MANIFEST = "winoground.json"
LOCAL_MANIFEST = "wg-eval-manifest.json"  # a local copy may describe itself (e.g. a test sample)
FIELDS = ("id", "caption_0", "caption_1", "tag", "secondary_tag", "num_main_preds", "collapsed_tag")
GROUPS = ("collapsed_tag", "secondary_tag", "num_main_preds", "why_hard")
WHY_HARD_RENAME = {"Non Minimal": "NonCompositional"}
CONNECT_TIMEOUT_S = 5.0


def packaged_manifest(name: str) -> dict[str, Any]:
    return json.loads(resources.files("winoground_eval.data_manifests").joinpath(name).read_text())


def _why_hard_tags(manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    name = manifest.get("why_hard_tags")
    if not name:
        return {}
    raw = packaged_manifest(name)
    return {str(k): [WHY_HARD_RENAME.get(t, t) for t in v] or ["NoTag"] for k, v in raw.items()}


def _split_tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def tags_of(row: Mapping[str, Any], why_hard: Mapping[str, list[str]]) -> dict[str, Any]:
    """The breakdown groups of one example: each a list of labels (possibly empty)."""
    preds = row.get("num_main_preds")
    return {
        "tag": row.get("tag"),
        "collapsed_tag": _split_tags(row.get("collapsed_tag")),
        "secondary_tag": _split_tags(row.get("secondary_tag")),
        "num_main_preds": [str(int(preds))] if preds not in (None, "") else [],
        "why_hard": list(why_hard.get(str(row["id"]), [])),
    }


def _scrub(text: str, token: str | None) -> str:
    for secret in {token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")}:
        if secret:
            text = text.replace(secret, "***")
    return text


def _to_rgb(image: Image.Image, where: str) -> Image.Image:
    try:
        image.load()
        return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{where}: image cannot be read ({exc}); replace the file or re-download the dataset") from None


def data_fingerprint(rows: Iterable[Mapping[str, Any]]) -> str:
    """A short hash of the ids and captions in dataset order: what makes two copies the same data."""
    text = json.dumps([[str(r["id"]), r.get("caption_0"), r.get("caption_1")] for r in rows])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_examples_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of Winoground's examples.jsonl; every row has an ``id``."""
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "id" not in row:
            raise DataError(f"{path}:{lineno}: example lacks field id")
        yield lineno, row


# --- local copy ----------------------------------------------------------------------
class LocalSource:
    def __init__(self, data_dir: str | Path):
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"--data-dir {root} is not a directory; point it at a copy of the {HF_REPO} dataset repository")
        for base in (root, root / "data"):
            if (base / "examples.jsonl").is_file():
                self.base = base
                break
        else:
            raise DataError(
                f"--data-dir {root} holds no examples.jsonl (looked in {root} and {root / 'data'}); "
                f"it must hold the {HF_REPO} repository layout: examples.jsonl and images/ or images.zip"
            )
        self.root = root
        if (self.base / "images").is_dir():
            self._zip = None
            self._index = {p.stem: p.name for p in (self.base / "images").iterdir() if p.is_file()}
            self.where = str(self.base / "images")
        elif (self.base / "images.zip").is_file():
            try:
                self._zip = zipfile.ZipFile(self.base / "images.zip")
            except zipfile.BadZipFile:
                raise DataError(f"{self.base / 'images.zip'} is not a readable zip file; re-download it") from None
            self._index = {Path(n).stem: n for n in self._zip.namelist() if not n.endswith("/")}
            self.where = str(self.base / "images.zip")
        else:
            raise DataError(f"{self.base} has examples.jsonl but neither an images/ folder nor images.zip")

    def manifest(self) -> dict[str, Any] | None:
        for base in (self.base, self.root):
            p = base / LOCAL_MANIFEST
            if p.is_file():
                return json.loads(p.read_text())
        return None

    def rows(self) -> list[dict[str, Any]]:
        path = self.base / "examples.jsonl"
        rows = []
        for lineno, row in read_examples_jsonl(path):
            missing = [f for f in FIELDS if f not in row and not f.startswith("caption_")]
            if missing:
                raise DataError(f"{path}:{lineno}: example {row['id']} lacks field(s) {', '.join(missing)}")
            row["id"] = str(row["id"])
            rows.append(row)
        return rows

    def image(self, row: Mapping[str, Any], k: int) -> Image.Image:
        stem = f"ex_{row['id']}_img_{k}"
        name = self._index.get(stem)
        where = f"example {row['id']}: {stem} in {self.where}"
        if name is None:
            raise DataError(f"example {row['id']}: image file {stem}.* not found in {self.where}")
        try:
            if self._zip is not None:
                with self._zip.open(name) as fh:
                    img = Image.open(fh)
                    return _to_rgb(img, where)
            with Image.open(self.base / "images" / name) as img:
                return _to_rgb(img, where)
        except (OSError, UnidentifiedImageError, zipfile.BadZipFile) as exc:
            raise DataError(f"{where}: image cannot be read ({exc}); replace the file") from None

    def describe(self) -> dict[str, Any]:
        return {"source": "local"}


# --- the Hugging Face Hub --------------------------------------------------------------
def _offline_mode() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes", "on"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _offline_error(endpoint: str, reason: str) -> DataError:
    return DataError(
        f"cannot reach the Hugging Face Hub at {endpoint} to load {HF_REPO} ({reason}). "
        "Use a local copy with --data-dir DIR (fetch it once where there is network: "
        f"`huggingface-cli download {HF_REPO} --repo-type dataset --local-dir DIR`), "
        "or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache."
    )


def _auth_error(detail: str) -> DataError:
    return DataError(
        f"{HF_REPO} is a gated dataset and this account may not read it ({detail}). Accept its terms at "
        f"https://huggingface.co/datasets/{HF_REPO} while logged in, then log in here with "
        "`huggingface-cli login` or set HF_TOKEN to a read token; or use a local copy with --data-dir DIR."
    )


class HubSource:
    def __init__(self, revision: str | None, token: str | None):
        from huggingface_hub import HfApi
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

        self.token = token or os.environ.get("HF_TOKEN") or None
        self.revision = revision
        endpoint = _endpoint()
        if _offline_mode():
            self.resolved = revision
        else:
            parsed = urlparse(endpoint)
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            try:
                socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
            except OSError as exc:
                raise _offline_error(endpoint, _scrub(str(exc), self.token)) from None
            try:
                info = HfApi(endpoint=endpoint).dataset_info(HF_REPO, revision=revision, token=self.token, timeout=30)
            except GatedRepoError:
                raise _auth_error("gated: terms not accepted, or no token") from None
            except RevisionNotFoundError:
                raise DataError(f"{HF_REPO} has no revision {revision!r}; fix --revision or data_manifests/{MANIFEST}") from None
            except RepositoryNotFoundError as exc:
                raise _auth_error(f"not found or not authorised: {_scrub(str(exc).splitlines()[0], self.token)}") from None
            except HfHubHTTPError as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status in (401, 403):
                    raise _auth_error(f"HTTP {status}") from None
                raise _offline_error(endpoint, _scrub(str(exc).splitlines()[0], self.token)) from None
            except OSError as exc:
                raise _offline_error(endpoint, _scrub(str(exc), self.token)) from None
            self.resolved = info.sha

    @cached_property
    def dataset(self):
        from datasets import load_dataset

        try:
            return load_dataset(HF_REPO, revision=self.resolved, token=self.token, split="test")
        except Exception as exc:  # datasets wraps hub errors in many types; classify by message
            text = _scrub(str(exc), self.token)
            low = text.lower()
            if "gated" in low or "401" in low or "403" in low or "authenticated" in low:
                raise _auth_error(text.splitlines()[0] if text else type(exc).__name__) from None
            if _offline_mode() or "connection" in low or "offline" in low or "resolve" in low:
                raise _offline_error(_endpoint(), text.splitlines()[0] if text else type(exc).__name__) from None
            raise DataError(f"loading {HF_REPO} failed: {type(exc).__name__}: {text}") from None

    def manifest(self) -> None:
        return None

    def rows(self) -> list[dict[str, Any]]:
        meta = self.dataset.select_columns(list(FIELDS))
        return [{**row, "id": str(row["id"])} for row in meta]

    def describe(self) -> dict[str, Any]:
        return {"source": f"hf:{HF_REPO}", "revision": self.revision, "revision_resolved": self.resolved}


OnError = Callable[[str, Exception], None]


def _captions(row: Mapping[str, Any]) -> tuple[str, str]:
    captions = tuple(row.get(f"caption_{k}") for k in range(2))
    for k, c in enumerate(captions):
        if not isinstance(c, str) or not c.strip():
            raise DataError(f"example {row['id']}: caption_{k} is missing or empty; fix the dataset or use --skip-bad")
    return captions  # type: ignore[return-value]


# --- the task ---------------------------------------------------------------------------
class WinogroundTask:
    """Winoground: 400 examples of 2 images x 2 captions; text, image and group scores."""

    name = "winoground"
    version = "1"
    metric_specs = WINOGROUND_METRICS

    def __init__(self, *, data_dir: str | None = None, revision: str | None = None, limit: int | None = None,
                 token: str | None = None):
        manifest = packaged_manifest(MANIFEST)
        if data_dir is not None:
            self.source: LocalSource | HubSource = LocalSource(data_dir)
            own = self.source.manifest()
            if own is not None:
                manifest = own
        else:
            self.source = HubSource(revision or manifest.get("revision"), token)
        self.manifest = manifest
        self.limit = limit
        rows = self.source.rows()
        self._check(rows)
        self.rows = rows[:limit] if limit is not None else rows
        why_hard = _why_hard_tags(manifest)
        self._tags = {row["id"]: tags_of(row, why_hard) for row in self.rows}
        self._fingerprint = data_fingerprint(rows)

    def _check(self, rows: list[dict[str, Any]]) -> None:
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise DataError(f"example id {dup} appears more than once in the dataset")
        if self.limit is not None:
            if self.limit < 1:
                raise DataError(f"--limit {self.limit}: give a positive number of examples")
            return
        expected = self.manifest.get("n_examples")
        fix = "check the copy (or pass --limit N to run on part of it deliberately)"
        if expected is not None and len(rows) != expected:
            raise DataError(f"the dataset has {len(rows)} examples but its manifest expects {expected}; {fix}")
        for group, counts in self.manifest.get("tag_counts", {}).items():
            got: dict[str, int] = {}
            for r in rows:
                for label in _split_tags(r.get(group)):
                    got[label] = got.get(label, 0) + 1
            if got != counts:
                raise DataError(f"the dataset's {group} counts are {got} but its manifest expects {counts}; {fix}")

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "manifest": self.manifest.get("name", MANIFEST),
            **self.source.describe(),
            "data_fingerprint": self._fingerprint,
        }

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        return dict(self._tags)

    def examples(self, skip: Iterable[str] = (), on_error: OnError | None = None) -> Iterator[Example]:
        """Examples in dataset order. A bad one (unreadable image, missing caption) raises
        DataError naming it, or, with ``on_error``, is reported there and passed over."""
        skip = set(skip)
        index = [i for i, r in enumerate(self.rows) if r["id"] not in skip]
        hub_rows = self.source.dataset.select(index) if isinstance(self.source, HubSource) else [None] * len(index)
        for i, hub_row in zip(index, hub_rows):
            row = self.rows[i]
            try:
                captions = _captions(row)
                if hub_row is not None:
                    images = tuple(_to_rgb(hub_row[f"image_{k}"], f"example {row['id']}: image_{k}") for k in range(2))
                else:
                    images = tuple(self.source.image(row, k) for k in range(2))
            except DataError as exc:
                if on_error is None:
                    raise
                on_error(row["id"], exc)
                continue
            yield Example(row["id"], images, captions, self._tags[row["id"]], comparisons=WINOGROUND_COMPARISONS)

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        return winoground_outcomes(check_matrix(example_id, scores, (2, 2)))

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return metrics_with_tags(scores, self._tags)

    @staticmethod
    def score_file_examples(metadata: str | Path) -> tuple[list[str], dict[str, dict[str, Any]], str | None]:
        """For saving a score file as a run: the metadata file's ids in order, their tags and
        the data fingerprint (None when its rows lack captions). A self-describing local copy
        (e.g. the synthetic sample) is not Winoground: no Why-Winoground-Hard tags unless its
        manifest names them, as the task does."""
        metadata = Path(metadata)
        rows = [row for _, row in read_examples_jsonl(metadata)] if metadata.is_file() else []
        own = [p for p in (metadata.parent / LOCAL_MANIFEST, metadata.parent.parent / LOCAL_MANIFEST) if p.is_file()]
        why_hard = not own or bool(json.loads(own[0].read_text()).get("why_hard_tags"))
        tags = tags_from_jsonl(metadata, why_hard=why_hard)
        has_captions = rows and all(isinstance(r.get("caption_0"), str) and isinstance(r.get("caption_1"), str) for r in rows)
        return [str(r["id"]) for r in rows], tags, data_fingerprint(rows) if has_captions else None

    @staticmethod
    def metrics_for_score_file(scores: Mapping[str, np.ndarray], metadata: str | Path | None = None) -> dict[str, Any]:
        """Metrics for scores read from a file; with Winoground's examples.jsonl also the breakdowns."""
        if metadata is None:
            return winoground_metrics(scores)
        tags = tags_from_jsonl(metadata)
        missing = [i for i in tags if i not in scores]
        extra = [i for i in scores if i not in tags]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no scores for {len(missing)} example(s) of the metadata (first: {', '.join(missing[:5])})")
            if extra:
                parts.append(f"scores for {len(extra)} id(s) the metadata lacks (first: {', '.join(extra[:5])})")
            raise ScoreFileError("the score file and --metadata disagree: " + "; ".join(parts))
        return metrics_with_tags({i: scores[i] for i in tags}, tags)


def metrics_with_tags(scores: Mapping[str, np.ndarray], tags: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    groups = {}
    for g in GROUPS:
        labels = {i: tags[i][g] for i in scores if i in tags and tags[i].get(g)}
        if labels:
            groups[g] = labels
    return winoground_metrics(scores, groups)


def tags_from_jsonl(path: str | Path, *, why_hard: bool = True) -> dict[str, dict[str, Any]]:
    """Tags per id from an examples.jsonl (Winoground's metadata file), for `wg-eval metrics`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--metadata {path} does not exist; give Winoground's examples.jsonl")
    rows = [row for _, row in read_examples_jsonl(path)]
    hard = _why_hard_tags(packaged_manifest(MANIFEST)) if why_hard else {}
    return {str(r["id"]): tags_of(r, hard) for r in rows}
