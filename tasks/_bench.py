"""What the published benchmarks of issue 20 share on top of the task bases
(:mod:`winoground_eval.core.taskbase`): a data manifest, a source (the Hub at a pinned revision or a
local copy via ``--data-dir``), subsets, and images that stay in the Hub dataset until needed.

A task is ``class X(Published, PairTask)`` (or ``RankedTask``) with ``MANIFEST`` (and
``SUBSETS``) and a ``read_rows()`` that returns its rows; ``__init__`` is this one's.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from winoground_eval.core.errors import DataError
from winoground_eval.core.taskbase import Row, open_rgb

from . import _hub


class HubImage:
    """One undecoded image cell of a ``datasets.Dataset``: read when the example is loaded or hashed."""

    __slots__ = ("ds", "index", "column")

    def __init__(self, ds: Any, index: int, column: str):
        self.ds, self.index, self.column = ds, index, column

    def read(self) -> bytes:
        cell = self.ds[self.index][self.column]
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if data is None:
            if not isinstance(cell, dict) or not cell.get("path"):
                raise DataError(f"{self!r}: the dataset holds no image there")
            data = Path(cell["path"]).read_bytes()
        return data

    def __repr__(self) -> str:
        return f"row {self.index} column {self.column}"


def hub_images(ds: Any, columns: tuple[str, ...]) -> tuple[Any, list[tuple[HubImage, ...]]]:
    """The dataset with its image columns undecoded, and each row's images as :class:`HubImage`."""
    ds = _hub.raw_images(ds, columns)
    return ds, [tuple(HubImage(ds, i, c) for c in columns) for i in range(len(ds))]


class Published:
    """Mixin (before the shape class): manifest, source, subsets, split, lazy Hub images."""

    MANIFEST = ""
    SUBSETS: tuple[str, ...] = ()
    DEFAULT_SPLIT = "test"

    def __init__(
        self,
        *,
        data_dir: str | None = None,
        revision: str | None = None,
        split: str | None = None,
        subsets: tuple[str, ...] | None = None,
        limit: int | None = None,
        token: str | None = None,
    ):
        self.manifest = _hub.manifest(self.MANIFEST)
        self.data_dir, self.token = data_dir, token
        self.revision = revision or self.manifest.get("revision", "main")
        self.split = split or self.DEFAULT_SPLIT
        chosen = tuple(subsets) if subsets else self.SUBSETS
        unknown = [s for s in chosen if s not in self.SUBSETS]
        if unknown or len(set(chosen)) != len(chosen):
            raise DataError(
                f"{self.name} subsets {', '.join(chosen)}: give distinct names among {', '.join(self.SUBSETS)}"
            )
        self.subsets = tuple(s for s in self.SUBSETS if s in chosen)
        self.source_info: dict[str, Any] = {}
        rows = list(self.read_rows())
        if not rows:
            raise DataError(
                f"{self.name}: no examples in {data_dir or self.manifest.get('hf_repo')}. Get: {self.manifest['get']}"
            )
        super().__init__(rows, limit=limit)  # type: ignore[call-arg]

    def read_rows(self) -> Iterable[Row]:
        """Every row of the selected subsets, in the published order; sets ``self.source_info``."""
        raise NotImplementedError

    def hub_split(self, split: str | None = None) -> Any:
        """The split from ``--data-dir`` or the Hub (``datasets.load_dataset`` at the pinned revision)."""
        ds, self.source_info = _hub.load_split(
            self.name,
            self.manifest,
            data_dir=self.data_dir,
            split=split or self.split,
            revision=self.revision,
            token=self.token,
        )
        return ds

    def hub_folder(self, patterns: list[str]) -> Path:
        """``--data-dir``, or a snapshot of the Hub repository's files at the pinned revision."""
        repo = self.manifest["hf_repo"]
        if self.data_dir is not None:
            self.source_info = {"source": f"local copy of hf:{repo}"}
            return Path(self.data_dir).expanduser()
        folder = _hub.hub_files(self.name, self.manifest, self.revision, self.token, patterns)
        self.source_info = {
            "source": f"hf:{repo}",
            "revision": self.revision,
            "revision_resolved": _hub.resolved_sha(repo, self.revision, self.token),
        }
        return folder

    @classmethod
    def offline_fixture(cls, tmp_path: Path, name: str) -> tuple[str, dict[str, Any]] | None:
        """The base's hook: the task module's ``offline_fixture`` (small data in the published format)."""
        hook = getattr(sys.modules[cls.__module__], "offline_fixture", None)
        return hook(tmp_path, name) if hook is not None else None

    # --- the base's image hooks, taught HubImage ------------------------------------------------
    def load(self, row: Row) -> tuple[Image.Image, ...]:
        return tuple(
            open_rgb(src.read() if isinstance(src, HubImage) else src, f"{self.name} example {row.id} ({src})")
            for src in row.images
        )

    def image_digest(self, source: Any) -> str:
        if isinstance(source, HubImage):
            return hashlib.sha256(source.read()).hexdigest()
        return super().image_digest(source)  # type: ignore[misc]

    def info(self) -> dict[str, Any]:
        out = {**super().info(), "manifest": self.MANIFEST, "split": self.split, **self.source_info}  # type: ignore[misc]
        if self.SUBSETS:
            out["subsets"] = list(self.subsets)
        return out


def image_tile(colour: tuple[int, int, int], mark: int, size: int = 24) -> bytes:
    """A small PNG for test fixtures: a solid colour with ``mark`` dark pixels (distinct bytes)."""
    arr = np.zeros((size, size, 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
    arr.reshape(-1, 3)[: mark % (size * size)] = 0
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
