"""``-o lora=PATH``: a LoRA adapter in diffusers format, fused into the loaded model.

Loading goes through diffusers' own API: the family's pipeline class is built around the
loaded components, ``load_lora_weights`` reads the file (diffusers, kohya and other formats
it converts) into the denoiser and any text encoder it targets, ``fuse_lora`` merges it into
the weights and ``unload_lora_weights`` drops the adapter layers, so the scorer runs plain
modules. diffusers does this through the ``peft`` package only; without it the option is a
ConfigError saying so.

What the run records is the adapter's content: ``{"file": name, "sha256": first 16 hex digits
of the file's SHA-256}`` in the family config, so two adapters never share a run id and a
renamed or moved file keeps its id.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any

from ...core.errors import ConfigError, ModelLoadError


def lora_file(path: str) -> Path:
    """The adapter's safetensors file: ``path`` itself, or the one ``.safetensors`` in the folder ``path``."""
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix != ".safetensors":
            raise ConfigError(
                f"option lora={path}: give a .safetensors file (diffusers LoRA format); pickled weights are not loaded"
            )
        return p.resolve()
    if p.is_dir():
        files = sorted(p.glob("*.safetensors"))
        preferred = [f for f in files if f.name == "pytorch_lora_weights.safetensors"]
        if preferred or len(files) == 1:
            return (preferred or files)[0].resolve()
        what = (
            "no .safetensors file"
            if not files
            else f"{len(files)} .safetensors files ({', '.join(f.name for f in files)})"
        )
        raise ConfigError(f"option lora={path}: the folder holds {what}; name the adapter file itself")
    raise ConfigError(f"option lora={path}: no such file or folder (a local diffusers-format LoRA .safetensors)")


def lora_record(file: Path) -> dict[str, str]:
    """What the config records of an adapter: its file name and content hash."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"file": file.name, "sha256": digest.hexdigest()[:16]}


def peft_available() -> bool:
    from diffusers.utils import USE_PEFT_BACKEND

    return bool(USE_PEFT_BACKEND)


def lora_ready(path: str | None) -> Path | None:
    """The adapter file of ``lora=path`` once it can be loaded (the file exists, peft is
    installed), else ConfigError; called before any weight is read. None without ``path``."""
    if path is None:
        return None
    file = lora_file(path)
    if not peft_available():
        raise ConfigError(
            f"option lora={path}: diffusers loads LoRA adapters only through the peft package, which is not "
            "installed; pip install peft (and run again)"
        )
    return file


def apply_lora(components: dict[str, Any], pipeline: str, path: str | None) -> dict[str, str] | None:
    """Fuse the adapter at ``path`` into ``components`` (in place) through ``pipeline``'s
    ``load_lora_weights``; returns :func:`lora_record` of it (None without ``path``)."""
    file = lora_ready(path)
    if file is None:
        return None
    record = lora_record(file)
    import diffusers

    cls = getattr(diffusers, pipeline)
    params = inspect.signature(cls.__init__).parameters
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    kwargs = {name: components.get(name) for name, p in params.items() if name != "self" and p.kind in named}
    if "requires_safety_checker" in params:
        kwargs["requires_safety_checker"] = False
    pipe = cls(**kwargs)
    try:
        pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name="wg_lora")
        pipe.fuse_lora(lora_scale=1.0, adapter_names=["wg_lora"])
        pipe.unload_lora_weights()
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load the LoRA {file} into this {pipeline} ({type(exc).__name__}: {exc})") from exc
    return record
