"""Loading Stable-Diffusion-layout components from a local folder or the Hugging Face Hub.

Only the five parts the Diffusion Classifier needs are loaded (unet, scheduler,
text_encoder, tokenizer and, for latent models, vae), each with its own
``from_pretrained``, so a repository's safety checker or feature extractor is never
downloaded. Weights load from safetensors only; nothing here unpickles a file.

Whatever cannot be had fails fast with :class:`~winoground_eval.core.errors.ModelLoadError`
naming the model and what to do next; a hub that cannot be reached is detected with one
request, not a minute of retries.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import ModelLoadError
from ..core.policy import hub_timeout, offline_variable  # the one Hub policy of every scorer

logger = logging.getLogger(__name__)

COMPONENTS = ("unet", "scheduler", "text_encoder", "tokenizer", "vae")
REQUIRED = ("unet", "scheduler", "text_encoder", "tokenizer")
_LIBRARIES = ("diffusers", "transformers")  # the only libraries a model_index.json may name
_DEFAULT_INDEX = {  # for a folder without model_index.json
    "unet": ["diffusers", "UNet2DConditionModel"],
    "scheduler": ["diffusers", "DDPMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "vae": ["diffusers", "AutoencoderKL"],
}
_WHOLE_FILE_LIMIT = 32 << 20  # fingerprint: files up to this size are hashed whole
_SAMPLE = 1 << 20  # larger ones by size, first and last MiB


@dataclass(frozen=True)
class Source:
    """Where components came from: what ``config()`` records to identify the weights."""

    model: str
    revision: str | None = None
    kind: str = "memory"  # "hub", "local" or "memory"
    commit: str | None = None  # hub: the resolved commit
    fingerprint: str | None = None  # local: content fingerprint of the folder

    def as_config(self) -> dict[str, Any]:
        out = {"model": self.model, "revision": self.revision, "source": self.kind}
        if self.commit is not None:
            out["commit"] = self.commit
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint
        return out


def local_folder(spec: str) -> Path | None:
    """The folder ``spec`` names, None if it reads as a hub id; ModelLoadError for a missing path."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise ModelLoadError(
            f"{spec} is a file; a diffusers model is a folder with unet/, scheduler/, text_encoder/, "
            "tokenizer/ (and vae/) subfolders, as written by save_pretrained"
        )
    reads_as_path = (
        spec.startswith(("/", "./", "../", "~")) or spec in (".", "..") or "\\" in spec or spec.count("/") >= 2
    )
    if reads_as_path:
        raise ModelLoadError(
            f"model folder {spec} does not exist; pass an existing diffusers folder as diffusers:PATH "
            "or a Hugging Face Hub id as diffusers:ORG/NAME"
        )
    return None


# Keys that only say which library version wrote a config, or where it was read from: they
# change when the same weights are saved again by another diffusers / transformers, so the
# fingerprint leaves them out. Every other key (anything that can change a number) stays in.
BOOKKEEPING_KEYS = frozenset(
    {"_diffusers_version", "transformers_version", "_name_or_path", "_commit_hash", "_use_default_values"}
)


def without_bookkeeping(value: Any) -> Any:
    """``value`` (parsed JSON) with :data:`BOOKKEEPING_KEYS` removed at every depth."""
    if isinstance(value, dict):
        return {k: without_bookkeeping(v) for k, v in value.items() if k not in BOOKKEEPING_KEYS}
    if isinstance(value, list):
        return [without_bookkeeping(v) for v in value]
    return value


def _content(path: Path) -> bytes:
    """What a small file contributes to the fingerprint: JSON canonically, bookkeeping removed."""
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return data
        return json.dumps(without_bookkeeping(parsed), sort_keys=True, separators=(",", ":")).encode()
    return data


def folder_fingerprint(root: Path, names: list[str]) -> str:
    """A content fingerprint of model_index.json and the named subfolders (16 hex digits).

    JSON files count by their parsed content, keys sorted, without the library-version and
    provenance keys of :data:`BOOKKEEPING_KEYS`, so the same weights saved by another
    diffusers or transformers keep their fingerprint (and their runs their id). Other small
    files are hashed whole; large weight files by size plus their first and last MiB,
    which is cheap and changes with any retraining in practice.
    """
    files = [root / "model_index.json"] if (root / "model_index.json").is_file() else []
    for name in sorted(names):
        files += sorted(p for p in (root / name).rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        name = path.relative_to(root).as_posix()
        if size <= _WHOLE_FILE_LIMIT:
            content = _content(path)
            digest.update(f"{name}\0{len(content)}\0".encode())
            digest.update(content)
            continue
        digest.update(f"{name}\0{size}\0".encode())
        with open(path, "rb") as f:
            digest.update(f.read(_SAMPLE))
            f.seek(size - _SAMPLE)
            digest.update(f.read(_SAMPLE))
    return digest.hexdigest()[:16]


def _read_index(path: Path, where: str) -> dict[str, Any]:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{where}: cannot read model_index.json ({exc})") from None
    if not isinstance(index, dict):
        raise ModelLoadError(f"{where}: model_index.json is not a JSON object")
    return index


def _entries(
    index: dict[str, Any], where: str, components: tuple[str, ...] = COMPONENTS, required: tuple[str, ...] = REQUIRED
) -> dict[str, tuple[str, str] | None]:
    """``{component: (library, class) or None}`` for ``components`` (SD's five by default), checked."""
    out: dict[str, tuple[str, str] | None] = {}
    for name in components:
        entry = index.get(name)
        if entry is None or (isinstance(entry, (list, tuple)) and all(e is None for e in entry)):
            if name in required:
                if required != REQUIRED:
                    raise ModelLoadError(
                        f"{where} has no {name} in model_index.json; this model needs {', '.join(required)}"
                    )
                raise ModelLoadError(
                    f"{where} has no {name} in model_index.json; the Diffusion Classifier needs "
                    f"{', '.join(REQUIRED)} (and vae for latent models) in the Stable Diffusion layout"
                )
            out[name] = None
            continue
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise ModelLoadError(f"{where}: model_index.json entry {name}={entry!r} is not [library, class]")
        library, class_name = entry
        if library not in _LIBRARIES:
            raise ModelLoadError(
                f"{where}: {name} is a {library}.{class_name}; only diffusers and transformers components are loaded"
            )
        out[name] = (library, class_name)
    return out


def _local_entries(
    root: Path, components: tuple[str, ...] = COMPONENTS, required: tuple[str, ...] = REQUIRED
) -> dict[str, tuple[str, str] | None]:
    where = f"model folder {root}"
    if (root / "model_index.json").is_file():
        entries = _entries(_read_index(root / "model_index.json", where), where, components, required)
    else:
        index = {k: v for k, v in _DEFAULT_INDEX.items() if (root / k).is_dir() or k in REQUIRED}
        entries = _entries(index, where)
    missing = [name for name, entry in entries.items() if entry is not None and not (root / name).is_dir()]
    if missing:
        raise ModelLoadError(
            f"{where} lacks the subfolder(s) {', '.join(missing)}; a diffusers model folder holds "
            f"{', '.join(REQUIRED)} (and vae) as written by save_pretrained"
        )
    return entries


def _hub_entries(
    repo: str, revision: str | None, components: tuple[str, ...] = COMPONENTS, required: tuple[str, ...] = REQUIRED
) -> tuple[str, dict[str, tuple[str, str] | None], bool]:
    """(resolved commit, component entries, whether to load from the local cache only)."""
    commit, index, local_only = hub_index(repo, revision)
    where = f"Hub model {repo}@{commit}"
    return commit, _entries(index, where, components, required), local_only


def hub_index(repo: str, revision: str | None) -> tuple[str, dict[str, Any], bool]:
    """(resolved commit, model_index.json, whether to load from the local cache only) of a Hub model."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.utils import GatedRepoError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

    what = f"{repo}" + (f" at revision {revision}" if revision else "")
    offline = offline_variable()
    local_only = offline is not None
    why = f"{offline} is set"
    commit: str | None = None
    if not local_only:
        try:
            commit = HfApi().model_info(repo, revision=revision, timeout=hub_timeout()).sha
        except HFValidationError as exc:
            raise ModelLoadError(f"{repo!r} is neither an existing folder nor a valid Hub id ({exc})") from None
        except GatedRepoError:
            raise ModelLoadError(
                f"{what} is gated: accept its license on https://huggingface.co/{repo} and log in "
                "(`hf auth login` or HF_TOKEN), or pass a local copy as diffusers:PATH"
            ) from None
        except RevisionNotFoundError:
            raise ModelLoadError(
                f"{repo} has no revision {revision!r}; pass an existing branch, tag or commit"
            ) from None
        except RepositoryNotFoundError:
            raise ModelLoadError(
                f"no Hub repository {repo} (or it is private): check the id, log in (`hf auth login` or "
                "HF_TOKEN) if it is private, or pass a local folder as diffusers:PATH"
            ) from None
        except Exception as exc:  # network failure of any HTTP backend: fall back to the cache
            logger.info("cannot reach the Hugging Face Hub for %s (%s); trying the local cache", repo, exc)
            detail = f"{type(exc).__name__}: {exc}"[:200]
            if "timeout" in detail.lower() or "timed out" in detail.lower():
                detail = f"no answer within {hub_timeout():g} s (HF_HUB_ETAG_TIMEOUT): {detail}"
            why = f"the Hugging Face Hub cannot be reached ({detail})"
            local_only = True
    try:
        index_file = hf_hub_download(
            repo,
            "model_index.json",
            revision=commit or revision,
            local_files_only=local_only,
            etag_timeout=hub_timeout(),
        )
    except Exception as exc:
        if local_only:
            raise ModelLoadError(
                f"cannot get {what}: {why} and the model is not in the local Hugging Face cache. "
                "Check the network (proxy, HF_ENDPOINT) and HF token, or download the model elsewhere "
                "(`hf download REPO --local-dir DIR`) and pass the folder as diffusers:DIR"
            ) from None
        raise ModelLoadError(f"cannot download model_index.json of {what} ({type(exc).__name__}: {exc})") from None
    if commit is None:  # from the cache: .../snapshots/<commit>/model_index.json
        commit = Path(index_file).parent.name
    return commit, _read_index(Path(index_file), f"Hub model {repo}@{commit}"), local_only


def _model_index(model: str, revision: str | None) -> dict[str, Any]:
    folder = local_folder(model)
    if folder is not None:
        path = folder / "model_index.json"
        return _read_index(path, f"model folder {folder}") if path.is_file() else {}
    return hub_index(model, revision)[1]


def pipeline_class(model: str, revision: str | None = None) -> str | None:
    """The pipeline class ``model_index.json`` names (``_class_name``) for a folder or Hub id;
    None for a folder without model_index.json (read as the Stable Diffusion layout)."""
    name = _model_index(model, revision).get("_class_name")
    return name if isinstance(name, str) else None


def pipeline_setting(model: str, revision: str | None, key: str, default: Any) -> Any:
    """A pipeline config value ``model_index.json`` holds (e.g. SDXL's
    ``force_zeros_for_empty_prompt``), ``default`` where it has none."""
    return _model_index(model, revision).get(key, default)


def _load_one(root: str, name: str, library: str, class_name: str, torch_dtype: Any, extra: dict[str, Any]) -> Any:
    cls = getattr(importlib.import_module(library), class_name, None)
    if cls is None:
        raise ModelLoadError(f"{root}: {name} class {library}.{class_name} does not exist in the installed {library}")
    kwargs: dict[str, Any] = dict(subfolder=name, **extra)
    is_scheduler = name == "scheduler"
    is_tokenizer = name.startswith("tokenizer")
    if not (is_scheduler or is_tokenizer):
        kwargs["use_safetensors"] = True
        kwargs["torch_dtype" if library == "diffusers" else "dtype"] = torch_dtype
        if library == "diffusers" and importlib.util.find_spec("accelerate") is None:
            kwargs["low_cpu_mem_usage"] = False  # what diffusers falls back to, without its warning
    with quiet_progress_bars():
        return cls.from_pretrained(root, **kwargs)


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' and diffusers' weight loading/saving bars (library code draws nothing)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    states = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in states:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, was_enabled in states:
            if was_enabled:
                lib.enable_progress_bar()


def load_components(
    model: str,
    *,
    revision: str | None = None,
    torch_dtype: Any = None,
    components: tuple[str, ...] = COMPONENTS,
    required: tuple[str, ...] = REQUIRED,
    skip: tuple[str, ...] = (),
) -> tuple[dict[str, Any], Source]:
    """unet, scheduler, text_encoder, tokenizer and vae (None for pixel space) of ``model``.

    ``model`` is a local folder in the Stable Diffusion layout or a Hub id. Returns the
    components and a :class:`Source` recording the resolved commit (hub) or a content
    fingerprint (folder), so that different weights never share a run id. Another
    family passes its own ``components`` and ``required`` names; ``skip`` names
    components left unloaded (None), e.g. SD3's T5 with ``t5=false``.
    """
    folder = local_folder(model)
    if folder is not None:
        if revision is not None:
            raise ModelLoadError(
                f"revision={revision!r} was given for the local folder {model}; revisions are for Hub ids"
            )
        entries = _local_entries(folder, components, required)
        entries = {n: None if n in skip else e for n, e in entries.items()}
        source = Source(
            model=model, kind="local", fingerprint=folder_fingerprint(folder, [n for n, e in entries.items() if e])
        )
        root, extra = str(folder), {}
    else:
        commit, entries, local_only = _hub_entries(model, revision, components, required)
        entries = {n: None if n in skip else e for n, e in entries.items()}
        source = Source(model=model, revision=revision, kind="hub", commit=commit)
        root, extra = model, {"revision": commit, **({"local_files_only": True} if local_only else {})}
    components: dict[str, Any] = {}
    for name, entry in entries.items():
        if entry is None:
            components[name] = None
            continue
        try:
            components[name] = _load_one(root, name, *entry, torch_dtype, extra)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load the {name} of {model} ({type(exc).__name__}: {exc}). Check that the folder or "
                "repository is a complete diffusers model with safetensors weights, and the network or HF token "
                "for Hub ids; or pass a local folder as diffusers:PATH"
            ) from exc
        logger.debug("loaded %s of %s as %s", name, model, type(components[name]).__name__)
    return components, source
