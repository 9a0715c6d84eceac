"""The Winoground task (Thrush et al., CVPR 2022).

Two sources: the gated Hugging Face dataset ``facebook/winoground`` (revision from
``data_manifests/winoground.json`` or ``--revision``; token from ``HF_TOKEN`` or a prior
``hf auth login``), or a local copy in the dataset repository's own layout
(``--data-dir``): ``examples.jsonl`` and the images as a folder ``images/`` or
``images.zip``, named ``ex_{id}_img_{k}.*``, either in DIR or in DIR/data.

The data fingerprint (part of the run id) covers the ids, the captions and the bytes of
every image, so a replaced image never reuses old scores. Hashes of local image files are
cached by path, size and modification time in ``$XDG_CACHE_HOME/winoground-eval/``
(``~/.cache`` by default; the cache is optional: any failure to use it just rehashes).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import tempfile
import warnings
import zipfile
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import urlparse

import numpy as np
from PIL import Image, UnidentifiedImageError

from winoground_eval.core.contracts import Example
from winoground_eval.core.errors import DataError, ScoreFileError
from winoground_eval.core.jsonl import cut, text_lines
from winoground_eval.core.metrics import (
    WINOGROUND_METRICS,
    winoground_metrics,
)
from winoground_eval.core.policy import hub_offline, hub_timeout, offline_variable
from winoground_eval.core.taskbase import PairTask, Row

log = logging.getLogger(__name__)

HF_REPO = "facebook/winoground"
MANIFEST = "winoground.json"
LOCAL_MANIFEST = "wg-eval-manifest.json"  # a local copy may describe itself (e.g. a test sample)
FIELDS = ("id", "caption_0", "caption_1", "tag", "secondary_tag", "num_main_preds", "collapsed_tag")
GROUPS = ("collapsed_tag", "secondary_tag", "num_main_preds", "why_hard")
WHY_HARD_RENAME = {"Non Minimal": "NonCompositional"}
CONNECT_TIMEOUT_S = 5.0
HASH_CACHE_MAX = 20_000  # entries kept in the image hash cache (the most recently used)


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


def _num_main_preds(value: Any, where: str) -> list[str]:
    """num_main_preds as a breakdown label list; DataError naming ``where`` if not a whole number."""
    if value is None or value == "":
        return []
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        ok = False
    elif isinstance(value, str):
        ok = value.strip().isdigit()
    else:
        ok = float(value).is_integer() if isinstance(value, float) else True
    if not ok:
        raise DataError(
            f"{where}: num_main_preds {cut(repr(value), 80)} is not a whole number (e.g. 1 or 2); fix the file"
        )
    return [str(int(float(value)) if not isinstance(value, str) else int(value))]


def tags_of(row: Mapping[str, Any], why_hard: Mapping[str, list[str]]) -> dict[str, Any]:
    """The breakdown groups of one example: each a list of labels (possibly empty)."""
    return {
        "tag": row.get("tag"),
        "collapsed_tag": _split_tags(row.get("collapsed_tag")),
        "secondary_tag": _split_tags(row.get("secondary_tag")),
        "num_main_preds": _num_main_preds(row.get("num_main_preds"), f"example {row['id']}"),
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


def open_rgb(source: Any, where: str) -> Image.Image:
    """An image file (path or binary file object) as RGB; DataError naming ``where`` for an
    unreadable file or a decompression bomb (more pixels than PIL's MAX_IMAGE_PIXELS)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                return _to_rgb(img, where)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{where}: image is too large to decode safely ({exc}); replace the file or use --skip-bad"
        ) from None
    except (OSError, UnidentifiedImageError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{where}: image cannot be read ({exc}); replace the file") from None


def data_fingerprint(rows: Iterable[Mapping[str, Any]], image_digests: Iterable[Any] | None = None) -> str:
    """A short hash of the ids, captions and (with ``image_digests``, one entry per row) the
    image bytes, in dataset order: what makes two copies the same data."""
    items = [[str(r["id"]), r.get("caption_0"), r.get("caption_1")] for r in rows]
    if image_digests is not None:
        items = [item + [list(d) if isinstance(d, (list, tuple)) else d] for item, d in zip(items, image_digests)]
    text = json.dumps(items)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _valid_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and bool(value.strip()))


def read_examples_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of Winoground's examples.jsonl; every row has a valid ``id``.

    Lines end at "\\n" only (U+2028, U+2029 and U+0085 are ordinary characters inside JSON
    strings); a UTF-8 byte-order mark is accepted; blank lines are skipped."""
    for lineno, line in text_lines(path, DataError):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno} is not valid JSON ({exc.msg}): {cut(line)}") from None
        if not isinstance(row, dict) or "id" not in row:
            raise DataError(f"{path}:{lineno}: example lacks field id")
        if not _valid_id(row["id"]):
            raise DataError(
                f"{path}:{lineno}: example at line {lineno} has an invalid id {cut(row['id'], 80)} "
                "(ids are whole numbers or non-empty strings)"
            )
        _num_main_preds(row.get("num_main_preds"), f"{path}:{lineno}: example {cut(row['id'], 80)}")
        yield lineno, row


# --- image hashes -----------------------------------------------------------------------
class HashCache:
    """sha256 of files, remembered by (path, size, mtime_ns) in a small JSON file."""

    def __init__(self, path: Path | None = None):
        if path is None:
            base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
            path = Path(base) / "winoground-eval" / "image-hashes.json"
        self.path = path
        try:
            loaded = json.loads(path.read_text())
            self._data: dict[str, str] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self._data = {}
        self._dirty = False

    def digest(self, key: str, read: Callable[[], bytes]) -> str:
        value = self._data.pop(key, None)  # re-inserted below: the most recently used come last
        if isinstance(value, str):
            self._data[key] = value
        else:
            value = hashlib.sha256(read()).hexdigest()
            self._data[key] = value
            self._dirty = True
        return value

    def save(self) -> None:
        if not self._dirty:
            return
        data = self._data
        if len(data) > HASH_CACHE_MAX:
            data = dict(list(data.items())[-HASH_CACHE_MAX:])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".image-hashes.", suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)
        except OSError as exc:  # the cache is optional
            log.debug("cannot save the image hash cache %s: %s", self.path, exc)


# --- local copy ----------------------------------------------------------------------
class LocalSource:
    def __init__(self, data_dir: str | Path):
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(
                f"--data-dir {root} is not a directory; point it at a copy of the {HF_REPO} dataset repository"
            )
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
            names = [p.name for p in (self.base / "images").iterdir() if p.is_file()]
            self.where = str(self.base / "images")
        elif (self.base / "images.zip").is_file():
            try:
                self._zip = zipfile.ZipFile(self.base / "images.zip")
            except zipfile.BadZipFile:
                raise DataError(f"{self.base / 'images.zip'} is not a readable zip file; re-download it") from None
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
            self.where = str(self.base / "images.zip")
        else:
            raise DataError(f"{self.base} has examples.jsonl but neither an images/ folder nor images.zip")
        self._index: dict[str, list[str]] = {}
        for name in sorted(names):
            self._index.setdefault(Path(name).stem, []).append(name)

    def _name(self, row: Mapping[str, Any], k: int) -> str | None:
        """The file of image k of ``row``; None if there is none; DataError if several."""
        stem = f"ex_{row['id']}_img_{k}"
        names = self._index.get(stem)
        if not names:
            return None
        if len(names) > 1:
            raise DataError(
                f"example {row['id']}: image {stem} is ambiguous in {self.where}: "
                f"{' and '.join(names)} are both there; remove all but one"
            )
        return names[0]

    def image_digests(self, rows: list[dict[str, Any]]) -> list[list[str | None]]:
        """sha256 of the bytes of both images of every row (None for a missing file)."""
        cache = HashCache()
        out = []
        if self._zip is None:
            folder = self.base / "images"
            for row in rows:
                pair: list[str | None] = []
                for k in range(2):
                    name = self._name(row, k)
                    if name is None:
                        pair.append(None)
                        continue
                    path = folder / name
                    try:
                        st = path.stat()
                        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
                        pair.append(cache.digest(key, path.read_bytes))
                    except OSError as exc:
                        raise DataError(f"example {row['id']}: cannot read {path} ({exc.strerror or exc})") from None
                out.append(pair)
        else:
            zpath = self.base / "images.zip"
            st = zpath.stat()
            prefix = f"{zpath.resolve()}|{st.st_size}|{st.st_mtime_ns}|"
            zf = self._zip
            for row in rows:
                pair = []
                for k in range(2):
                    name = self._name(row, k)
                    if name is None:
                        pair.append(None)
                        continue
                    try:
                        pair.append(cache.digest(prefix + name, lambda n=name: zf.read(n)))
                    except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
                        raise DataError(f"example {row['id']}: cannot read {name} in {zpath} ({exc})") from None
                out.append(pair)
        cache.save()
        return out

    def manifest(self) -> dict[str, Any] | None:
        for base in (self.base, self.root):
            p = base / LOCAL_MANIFEST
            if p.is_file():
                try:
                    return json.loads(p.read_bytes().decode("utf-8-sig"))
                except (ValueError, UnicodeDecodeError) as exc:
                    raise DataError(f"{p} is not valid JSON ({cut(str(exc))}); fix or remove it") from None
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
        name = self._name(row, k)
        where = f"example {row['id']}: {stem} in {self.where}"
        if name is None:
            raise DataError(f"example {row['id']}: image file {stem}.* not found in {self.where}")
        if self._zip is not None:
            try:
                data = self._zip.read(name)
            except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
                raise DataError(f"{where}: image cannot be read ({exc}); replace the file") from None
            return open_rgb(io.BytesIO(data), where)
        return open_rgb(self.base / "images" / name, where)

    def describe(self) -> dict[str, Any]:
        return {"source": "local"}


# --- the Hugging Face Hub --------------------------------------------------------------
def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _offline_error(endpoint: str, reason: str) -> DataError:
    var = offline_variable()
    if var:  # offline already: the cache is what lacks the dataset
        return DataError(
            f"{var} is set and the Hugging Face cache lacks {HF_REPO} "
            f"({reason}). Load it once where there is network (unset {var}), or use a local copy "
            f"with --data-dir DIR (`hf download {HF_REPO} --repo-type dataset --local-dir DIR`)."
        )
    return DataError(
        f"cannot reach the Hugging Face Hub at {endpoint} to load {HF_REPO} ({reason}). "
        "Use a local copy with --data-dir DIR (fetch it once where there is network: "
        f"`hf download {HF_REPO} --repo-type dataset --local-dir DIR`), "
        "or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache."
    )


def _auth_error(detail: str) -> DataError:
    return DataError(
        f"{HF_REPO} is a gated dataset and this account may not read it ({detail}). Accept its terms at "
        f"https://huggingface.co/datasets/{HF_REPO} while logged in, then log in here with "
        "`hf auth login` or set HF_TOKEN to a read token; or use a local copy with --data-dir DIR."
    )


class HubSource:
    def __init__(self, revision: str | None, token: str | None):
        from huggingface_hub import HfApi
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        self.token = token or os.environ.get("HF_TOKEN") or None
        self.revision = revision
        endpoint = _endpoint()
        if hub_offline():
            self.resolved = revision
        else:
            parsed = urlparse(endpoint)
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            timeout = hub_timeout()
            try:
                socket.create_connection((parsed.hostname, port), timeout=min(CONNECT_TIMEOUT_S, timeout)).close()
            except OSError as exc:
                raise _offline_error(endpoint, _scrub(str(exc), self.token)) from None
            try:
                info = HfApi(endpoint=endpoint).dataset_info(
                    HF_REPO, revision=revision, token=self.token, timeout=timeout
                )
            except GatedRepoError:
                raise _auth_error("gated: terms not accepted, or no token") from None
            except RevisionNotFoundError:
                raise DataError(
                    f"{HF_REPO} has no revision {revision!r}; fix --revision or data_manifests/{MANIFEST}"
                ) from None
            except RepositoryNotFoundError as exc:
                raise _auth_error(
                    f"not found or not authorised: {_scrub(str(exc).splitlines()[0], self.token)}"
                ) from None
            except HfHubHTTPError as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status in (401, 403):
                    raise _auth_error(f"HTTP {status}") from None
                raise _offline_error(endpoint, _scrub(str(exc).splitlines()[0], self.token)) from None
            except Exception as exc:  # timeouts and connection errors of any HTTP backend (httpx, requests)
                what = f"{type(exc).__name__}: {_scrub(str(exc), self.token)}".strip().rstrip(":")
                if "timeout" in what.lower() or "timed out" in what.lower():
                    what = f"no answer within {timeout:g} s (HF_HUB_ETAG_TIMEOUT); a stalled proxy or Hub? {what}"
                raise _offline_error(endpoint, cut(what)) from None
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
            if hub_offline() or any(w in low for w in ("connection", "offline", "resolve", "timeout", "timed out")):
                raise _offline_error(_endpoint(), text.splitlines()[0] if text else type(exc).__name__) from None
            raise DataError(f"loading {HF_REPO} failed: {type(exc).__name__}: {text}") from None

    def manifest(self) -> None:
        return None

    @cached_property
    def raw_images(self):
        """The two image columns as stored (encoded bytes), decoded by :func:`open_rgb` per example."""
        from datasets import Image as ImageFeature

        raw = self.dataset.select_columns(["image_0", "image_1"])
        for k in range(2):
            raw = raw.cast_column(f"image_{k}", ImageFeature(decode=False))
        return raw

    def image(self, i: int, row: Mapping[str, Any], k: int) -> Image.Image:
        cell = self.raw_images[i][f"image_{k}"]
        where = f"example {row['id']}: image_{k}"
        data = (cell or {}).get("bytes")
        if data is None and (cell or {}).get("path"):
            return open_rgb(cell["path"], where)
        if data is None:
            raise DataError(f"{where}: the dataset holds no image; re-download it or use --skip-bad")
        return open_rgb(io.BytesIO(data), where)

    def image_digests(self, rows: list[dict[str, Any]]) -> list[list[str | None]]:
        """sha256 of the encoded image bytes the dataset holds (no decoding)."""
        out = []
        for cells in self.raw_images:
            pair: list[str | None] = []
            for k in range(2):
                cell = cells[f"image_{k}"] or {}
                data = cell.get("bytes")
                if data is None and cell.get("path"):
                    try:
                        data = Path(cell["path"]).read_bytes()
                    except OSError:
                        data = None
                pair.append(hashlib.sha256(data).hexdigest() if data is not None else None)
            out.append(pair)
        return out

    def rows(self) -> list[dict[str, Any]]:
        meta = self.dataset.select_columns(list(FIELDS))
        out = []
        for lineno, row in enumerate(meta, start=1):
            if not _valid_id(row.get("id")):
                raise DataError(f"{HF_REPO}: example at row {lineno} has an invalid id {cut(row.get('id'), 80)}")
            out.append({**row, "id": str(row["id"])})
        return out

    def describe(self) -> dict[str, Any]:
        return {"source": f"hf:{HF_REPO}", "revision": self.revision, "revision_resolved": self.resolved}


def _captions(row: Mapping[str, Any]) -> tuple[str, str]:
    captions = tuple(row.get(f"caption_{k}") for k in range(2))
    for k, c in enumerate(captions):
        if c is not None and not isinstance(c, str):
            raise DataError(
                f"example {row['id']}: caption_{k} must be a string, got {type(c).__name__} "
                f"({cut(c, 80)}); fix the dataset or use --skip-bad"
            )
        if c is None or not c.strip():
            raise DataError(f"example {row['id']}: caption_{k} is missing or empty; fix the dataset or use --skip-bad")
    return captions  # type: ignore[return-value]


# --- the task ---------------------------------------------------------------------------
class WinogroundTask(PairTask):
    """Winoground: 400 examples of 2 images x 2 captions; text, image and group scores."""

    name = "winoground"
    version = "1"
    metric_specs = WINOGROUND_METRICS

    def __init__(
        self,
        *,
        data_dir: str | None = None,
        revision: str | None = None,
        limit: int | None = None,
        token: str | None = None,
    ):
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
        # metadata() is every example (the run's full target); ``limit`` relaxes the manifest
        # check and bounds examples() only, so a limited run never hides finished examples
        self.dataset_rows = rows
        why_hard = _why_hard_tags(manifest)
        # a row's image sources are its position in the dataset; its captions are checked when loaded
        super().__init__([Row(row["id"], (), (i,), tags_of(row, why_hard)) for i, row in enumerate(rows)], limit=limit)
        self._data_fingerprint = data_fingerprint(rows, self.source.image_digests(rows))

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

    def fingerprint(self) -> str:
        """Ids, captions and both images' bytes of every example (:func:`data_fingerprint`)."""
        return self._data_fingerprint

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "manifest": self.manifest.get("name", MANIFEST),
            **self.source.describe(),
            "data_fingerprint": self.fingerprint(),
        }

    def load(self, row: Row) -> tuple[Image.Image, ...]:
        i = row.images[0]
        data = self.dataset_rows[i]
        if isinstance(self.source, HubSource):
            return tuple(self.source.image(i, data, k) for k in range(2))
        return tuple(self.source.image(data, k) for k in range(2))

    def example(self, row: Row) -> Example:
        """The example with its captions checked (a missing one is a bad example) and its images."""
        captions = _captions(self.dataset_rows[row.images[0]])
        return Example(row.id, self.load(row), captions, row.tags, comparisons=self.comparisons(row))

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
        has_captions = rows and all(
            isinstance(r.get("caption_0"), str) and isinstance(r.get("caption_1"), str) for r in rows
        )
        # images included (issue 14): known only when the metadata sits in a local copy with its images
        return [str(r["id"]) for r in rows], tags, fingerprint_of_metadata(metadata) if has_captions else None

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
                parts.append(
                    f"no scores for {len(missing)} example(s) of the metadata (first: {', '.join(missing[:5])})"
                )
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


def fingerprint_of_metadata(path: str | Path) -> str | None:
    """The data fingerprint of the local copy an ``examples.jsonl`` belongs to (its folder,
    or the folder above ``data/``), images included; None when its images are not beside it
    (then the data cannot be told the same as a measured run's)."""
    path = Path(path)
    for root in (path.parent, path.parent.parent):
        try:
            source = LocalSource(root)
        except DataError:
            continue
        if source.base / "examples.jsonl" != path and (source.base / "examples.jsonl").resolve() != path.resolve():
            continue
        rows = source.rows()
        digests = source.image_digests(rows)
        if any(d is None for pair in digests for d in pair):
            return None
        return data_fingerprint(rows, digests)
    return None
