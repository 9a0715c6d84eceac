"""CLIP / OpenCLIP baselines through open_clip.

Score = the model's logit scale (``logit_scale.exp()``) times the cosine similarity of the
image and caption embeddings: image rows, caption columns. The model owns its
preprocessing (``open_clip.create_model_and_transforms``) and its tokenizer
(``open_clip.get_tokenizer``); nothing here normalises images by hand.

Weights come from one of three places, all loaded by open_clip from a local file:
- a pretrained tag (``open_clip:ViT-L-14/openai``): the file is fetched from the Hub (or
  taken from its cache) here first, so that an unreachable Hub fails within seconds
  instead of after minutes of retries, and then loaded exactly like a local checkpoint,
  with the tag's preprocessing and QuickGELU setting;
- a local checkpoint (``open_clip:ARCH/PATH``), optionally with an architecture JSON
  (``-o arch_config=PATH``) registered through ``open_clip.add_model_config``;
- an open_clip repository on the Hub (``hf-hub:ORG/NAME``).

Nothing unpickles an arbitrary file: safetensors are preferred, and any other torch file
must load with ``torch.load(weights_only=True)`` before open_clip sees it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import open_clip
import torch
from open_clip.constants import HF_CONFIG_NAME, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from PIL import Image

from winoground_eval.core.contracts import Example, Scored
from winoground_eval.core.errors import ConfigError, ModelLoadError
from winoground_eval.core.policy import DType, hub_timeout, offline_variable, resolve_device, resolve_dtype
from winoground_eval.core.scorerconfig import header

logger = logging.getLogger(__name__)

# open_clip's names for our dtypes. "fp16"/"bf16" are its OpenAI-style mixed precision
# (low-precision weights, LayerNorm in fp32), the way CLIP was released.
_PRECISION: dict[str, str] = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}

# Caption embeddings kept across chunks (float64 rows; 100,000 x 1024 is 0.8 GB at most).
CAPTION_CACHE_SIZE = 100_000
_PATH_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
CONFIG_VERSION = 1  # the {kind, version} header's version: bump when a change alters the numbers
_NETWORK_FIX = (
    "Check the network connection and HF_TOKEN (or `hf auth login`); "
    "or fetch the weights on a machine that has network and pass the local file as {local}."
)


class OpenClipScorer:
    """A CLIP-style model scoring images against captions: logit_scale.exp() * cosine.

    Components are arguments: an open_clip model, its own inference transform and its
    tokenizer. ``source`` describes where the model came from (arch, weights and their
    sha256, architecture config) and goes into :meth:`config`. ``device`` is the model's;
    neither it nor ``batch_size`` changes the numbers, so :meth:`config` leaves them out.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Callable[[Image.Image], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        *,
        source: Mapping[str, Any],
        dtype: DType = "float32",
        batch_size: int = 64,
    ) -> None:
        if dtype not in _PRECISION:
            raise ConfigError(f"dtype {dtype!r}: choose one of {', '.join(_PRECISION)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.source = _jsonable(dict(source))
        self.dtype = dtype
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self._input_dtype = open_clip.get_input_dtype(_PRECISION[dtype])  # None: as is (fp32)
        # The multiplier of the cosine, computed in float64.
        self.logit_scale = math.exp(float(model.logit_scale.detach().float().reshape(-1)[0]))
        self._caption_cache: dict[str, np.ndarray] = {}  # caption text -> unit-norm embedding

    @property
    def chunk_size(self) -> int:
        """Examples the runner hands to :meth:`evaluate` at once: enough to fill an encoder
        batch with their images (a kill loses at most this chunk's seconds of work)."""
        return max(1, self.batch_size // 2)

    def config(self) -> dict[str, Any]:
        """Everything that changes the numbers, JSON-able. ``logit_scale`` is the multiplier
        of the cosine (``exp`` of the model's parameter, ~100 for OpenAI CLIP)."""
        preprocess = open_clip.get_model_preprocess_cfg(self.model)
        return {
            **header("open_clip", CONFIG_VERSION),
            **self.source,
            "dtype": self.dtype,
            "preprocess": _jsonable(dict(preprocess)),
            "tokenizer": {
                "class": type(self.tokenizer).__name__,
                "context_length": getattr(self.tokenizer, "context_length", None),
            },
            "logit_scale": self.logit_scale,
        }

    def score(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """(n_images, n_captions) float64: logit_scale * cosine similarity."""
        example = Example(id="", images=tuple(images), captions=tuple(captions))
        return self.evaluate([example])[0].scores

    def evaluate(self, examples: Sequence[Example]) -> list[Scored]:
        """Score a chunk of examples, encoding each distinct image and caption once.

        Images are deduplicated by object identity, captions by text; both are encoded in
        batches of ``batch_size`` across the whole chunk and split back per example.
        """
        images, image_row = _distinct((im for ex in examples for im in ex.images), key=id)
        captions, caption_row = _distinct((c for ex in examples for c in ex.captions), key=str)
        with torch.inference_mode():
            image_features = self._encode(images, self._image_batch)
            caption_features = self._caption_features(captions)
        scored = []
        for ex in examples:
            if not ex.images or not ex.captions:
                scored.append(Scored(scores=np.zeros((len(ex.images), len(ex.captions)))))
                continue
            rows = image_features[[image_row[id(im)] for im in ex.images]]
            cols = caption_features[[caption_row[c] for c in ex.captions]]
            scored.append(Scored(scores=self.logit_scale * (rows @ cols.T)))
        return scored

    def text_similarity(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray:
        """(len(a), len(b)) float64 cosine similarity of the text embeddings (the optional
        :class:`~winoground_eval.core.contracts.TextScorer` capability; SugarCrepe++'s text-only task
        compares captions this way). No logit scale: only the order of the cosines matters.
        Through the caption cache, so captions the chunk has scored are not encoded again."""
        with torch.inference_mode():
            features = self._caption_features(list(dict.fromkeys([*texts_a, *texts_b])))
        row = {c: k for k, c in enumerate(dict.fromkeys([*texts_a, *texts_b]))}
        if not texts_a or not texts_b:
            return np.zeros((len(texts_a), len(texts_b)))
        return features[[row[c] for c in texts_a]] @ features[[row[c] for c in texts_b]].T

    def _caption_features(self, captions: Sequence[str]) -> np.ndarray:
        """Caption embeddings through a cache keyed by caption text, so that a task whose
        examples share their captions (classification: every image x all prompts of the
        dataset) encodes each caption once per run, not once per chunk. An embedding
        depends only on the text, so the cache changes no number. Bounded: beyond
        ``CAPTION_CACHE_SIZE`` entries it starts afresh."""
        cache = self._caption_cache
        todo = [c for c in captions if c not in cache]
        if len(cache) + len(todo) > CAPTION_CACHE_SIZE:
            cache.clear()
            todo = list(captions)
        if todo:
            for c, row in zip(todo, self._encode(todo, self._caption_batch)):
                cache[c] = row
        if not captions:
            return np.zeros((0, 0))
        return np.stack([cache[c] for c in captions])

    def _image_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device, dtype=self._input_dtype)
        return self.model.encode_image(pixels)

    def _caption_batch(self, captions: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(captions)).to(self.device)
        return self.model.encode_text(tokens)

    def _encode(self, items: Sequence[Any], encode_batch: Callable[[Sequence[Any]], torch.Tensor]) -> np.ndarray:
        """Unit-norm float64 embeddings, one row per item (normalised here, in float64)."""
        if not items:
            return np.zeros((0, 0))
        chunks = [
            encode_batch(items[start : start + self.batch_size]).float().cpu().numpy().astype(np.float64)
            for start in range(0, len(items), self.batch_size)
        ]
        features = np.concatenate(chunks)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.maximum(norms, 1e-12)  # the eps of torch.nn.functional.normalize


# ---------------------------------------------------------------------------- factories


def clip_vit_b32(*, device: str | None = None, dtype: DType | None = "float32", batch_size: int = 64) -> OpenClipScorer:
    """CLIP ViT-B/32 with OpenAI's weights (open_clip ViT-B-32/openai); float32 by default, the
    precision of the published baseline numbers (dtype=None: float16 on CUDA)."""
    return from_open_clip_spec("ViT-B-32/openai", device=device, dtype=dtype, batch_size=batch_size)


def clip_vit_l14(*, device: str | None = None, dtype: DType | None = "float32", batch_size: int = 64) -> OpenClipScorer:
    """CLIP ViT-L/14 with OpenAI's weights (open_clip ViT-L-14/openai): the paper's CLIP baseline;
    float32 by default, the precision of the published numbers (dtype=None: float16 on CUDA)."""
    return from_open_clip_spec("ViT-L-14/openai", device=device, dtype=dtype, batch_size=batch_size)


def openclip_vit_h14(
    *, device: str | None = None, dtype: DType | None = "float32", batch_size: int = 64
) -> OpenClipScorer:
    """OpenCLIP ViT-H/14 trained on LAION-2B (laion2b_s32b_b79k): the paper's OpenCLIP baseline;
    float32 by default, the precision of the published numbers (dtype=None: float16 on CUDA)."""
    return from_open_clip_spec("ViT-H-14/laion2b_s32b_b79k", device=device, dtype=dtype, batch_size=batch_size)


def from_open_clip_spec(
    spec: str,
    *,
    device: str | None = None,
    dtype: DType | None = None,
    batch_size: int = 64,
    arch_config: str | None = None,
) -> OpenClipScorer:
    """``ARCH/TAG`` (an open_clip pretrained tag) or ``ARCH/PATH`` (a local checkpoint file).

    The spec is split at its first '/'; the rest is a path if it exists or looks like one
    (absolute, starting with '.' or '~', or ending in .safetensors/.pt/.pth/.bin).
    ``arch_config`` is an open_clip architecture JSON named ``ARCH.json``, registered with
    ``open_clip.add_model_config`` so that a custom architecture loads. A local checkpoint
    gets the architecture's own activation: OpenAI weights need the ``-quickgelu`` variant
    (a tag sets that by itself).
    """
    arch, sep, rest = spec.partition("/")
    if not sep or not arch or not rest:
        raise ConfigError(
            f"open_clip:{spec}: expected open_clip:ARCH/TAG or open_clip:ARCH/PATH, "
            "e.g. open_clip:ViT-B-32/openai or open_clip:ViT-B-32/./model.safetensors"
        )
    device = _pick_device(device)
    dtype = _pick_dtype(dtype, device)
    if arch_config is not None:
        _register_arch_config(arch, arch_config)
    _check_arch(arch)
    model_cfg = open_clip.get_model_config(arch)

    if _looks_like_path(rest):
        path = Path(rest).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f"checkpoint file {rest!r} ({path.resolve()}, from open_clip:{spec}) does not exist or is not a file. "
                f"Pass an existing .safetensors (preferred) or .pt file as open_clip:{arch}/PATH."
            )
        _check_weights_only(path)
        weights = {"checkpoint": str(path.resolve())}
        tag_cfg: dict[str, Any] = {}
    else:
        tag_cfg = _check_tag(arch, rest)
        path, weights = _fetch_tag(arch, rest, tag_cfg)

    quick_gelu = bool(model_cfg.get("quick_gelu", False) or tag_cfg.get("quick_gelu", False))
    logger.info("loading open_clip %s from %s on %s (%s)", arch, path, device, dtype)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch,
            pretrained=str(path),
            precision=_PRECISION[dtype],
            device=device,
            force_quick_gelu=quick_gelu,
            # A tag's preprocessing, as open_clip applies it when it loads a tag itself.
            image_mean=tag_cfg.get("mean"),
            image_std=tag_cfg.get("std"),
            image_interpolation=tag_cfg.get("interpolation"),
            image_resize_mode=tag_cfg.get("resize_mode"),
            weights_only=True,
        )
    except Exception as exc:
        raise ModelLoadError(
            f"open_clip could not load {str(path)!r} into architecture {arch!r}: {exc}. "
            "Is the checkpoint one of this architecture (for a custom one, the -o arch_config it was trained with)?"
        ) from exc
    source = {
        "arch": arch,
        "weights": {**weights, "sha256": _sha256(path)},
        "model_cfg": model_cfg,
        "quick_gelu": quick_gelu,
    }
    return OpenClipScorer(
        model, preprocess, open_clip.get_tokenizer(arch), source=source, dtype=dtype, batch_size=batch_size
    )


def from_hf_hub(
    spec: str, *, device: str | None = None, dtype: DType | None = None, batch_size: int = 64
) -> OpenClipScorer:
    """``ORG/NAME``: an open_clip repository on the Hugging Face Hub (open_clip_config.json + weights)."""
    org, sep, name = spec.partition("/")
    if not sep or not org or not name or "/" in name:
        raise ConfigError(f"hf-hub:{spec}: expected hf-hub:ORG/NAME, e.g. hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K")
    device = _pick_device(device)
    dtype = _pick_dtype(dtype, device)
    fix = _NETWORK_FIX.format(
        local="open_clip:ARCH/PATH (with -o arch_config=ARCH.json from the repository's model_cfg)"
    )
    what = f"hf-hub:{spec}"
    config_path = _fetch_from_hub(spec, [HF_CONFIG_NAME], what=what, fix=fix)
    path = _fetch_from_hub(spec, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME], what=what, fix=fix)
    _check_weights_only(path)
    try:
        hub_config = json.loads(config_path.read_text(encoding="utf-8"))
        model_cfg = hub_config["model_cfg"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{what}: {HF_CONFIG_NAME} is not an open_clip config with a model_cfg ({exc})") from exc

    logger.info("loading open_clip hf-hub:%s from %s on %s (%s)", spec, path, device, dtype)
    # open_clip's local-dir: source, over a folder holding exactly the two files fetched
    # above, so that no other cached weights file can be picked instead.
    with tempfile.TemporaryDirectory(prefix="wg-eval-hf-hub-") as folder:
        _link(config_path, Path(folder) / HF_CONFIG_NAME)
        _link(path, Path(folder) / path.name)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                f"local-dir:{folder}", precision=_PRECISION[dtype], device=device, weights_only=True
            )
        except Exception as exc:
            raise ModelLoadError(f"open_clip could not load {what}: {exc}") from exc
        if model_cfg.get("text_cfg", {}).get("hf_tokenizer_name"):
            tokenizer = open_clip.get_tokenizer(f"hf-hub:{spec}")  # a transformers tokenizer, from the Hub
        else:
            tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    source = {
        "arch": f"hf-hub:{spec}",
        "weights": {"hf_hub": f"{spec}/{path.name}", "sha256": _sha256(path)},
        "model_cfg": model_cfg,
        "quick_gelu": bool(model_cfg.get("quick_gelu", False)),
    }
    return OpenClipScorer(model, preprocess, tokenizer, source=source, dtype=dtype, batch_size=batch_size)


# ----------------------------------------------------------------------------- helpers


def _pick_device(device: str | None) -> str:
    return resolve_device(device)  # the policy of every scorer (winoground_eval.core.policy)


def _pick_dtype(dtype: str | None, device: str) -> str:
    dtype = resolve_dtype(dtype, device)
    if dtype != "float32" and torch.device(device).type == "cpu":
        logger.warning("dtype %s on CPU is slow and less precise than float32", dtype)
    return dtype


def _looks_like_path(rest: str) -> bool:
    return (
        Path(rest).expanduser().exists()
        or Path(rest).is_absolute()
        or rest.startswith((".", "~"))
        or rest.endswith(_PATH_SUFFIXES)
    )


def _register_arch_config(arch: str, arch_config: str) -> None:
    path = Path(arch_config).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"arch_config {str(path)!r} does not exist: pass an open_clip architecture JSON named {arch}.json"
        )
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"arch_config {str(path)!r} is not readable JSON: {exc}") from exc
    missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if not isinstance(cfg, dict) or key not in cfg]
    if missing:
        raise ConfigError(
            f"arch_config {str(path)!r} is not an open_clip architecture: it lacks {', '.join(missing)} "
            "(see open_clip/model_configs/*.json for the format)"
        )
    if path.stem != arch:
        raise ConfigError(
            f"arch_config {str(path)!r} would register architecture {path.stem!r} (open_clip names an "
            f"architecture after its file), but the scorer names {arch!r}: rename the file to {arch}.json "
            f"or use open_clip:{path.stem}/..."
        )
    if open_clip.get_model_config(arch) != cfg:  # registering the same file again would only rescan
        open_clip.add_model_config(path)


def _check_arch(arch: str) -> None:
    known = open_clip.list_models()
    if arch in known:
        return
    lowered = {name.lower(): name for name in known}
    close = [lowered[c] for c in difflib.get_close_matches(arch.lower(), list(lowered), n=5, cutoff=0.6)]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f'open_clip has no architecture {arch!r}.{hint} `python -c "import open_clip; print(open_clip.list_models())"` '
        f"lists all {len(known)}; a custom architecture needs -o arch_config=PATH/{arch}.json."
    )


def _check_tag(arch: str, tag: str) -> dict[str, Any]:
    if open_clip.is_pretrained_cfg(arch, tag):
        return dict(open_clip.get_pretrained_cfg(arch, tag))
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tags:
        raise ModelLoadError(
            f"open_clip knows no pretrained weights for {arch!r}, so {tag!r} is not a tag; "
            f"pass a local checkpoint as open_clip:{arch}/PATH (a path that exists or ends in .safetensors/.pt)."
        )
    close = difflib.get_close_matches(tag, tags, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ModelLoadError(
        f"{tag!r} is not a pretrained tag of open_clip {arch!r}, nor an existing file.{hint} "
        f"Its tags: {', '.join(tags)}. A local checkpoint is open_clip:{arch}/PATH."
    )


def _fetch_tag(arch: str, tag: str, tag_cfg: Mapping[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The local file of a tag's weights (cache or download) and its description for config()."""
    # OpenAI weights need QuickGELU: a local copy must name the -quickgelu architecture, or it
    # would load with GELU and change the numbers
    local_arch = f"{arch}-quickgelu" if tag_cfg.get("quick_gelu") and not arch.endswith("-quickgelu") else arch
    fix = _NETWORK_FIX.format(local=f"open_clip:{local_arch}/PATH")
    what = f"the weights of open_clip {arch}/{tag}"
    if tag_cfg.get("hf_hub"):
        # open_clip's convention: 'org/name/' means its default file, 'org/name/file' that file.
        repo_id, filename = os.path.split(tag_cfg["hf_hub"])
        filename = filename or HF_WEIGHTS_NAME
        names = [_safetensors_name(filename), filename] if filename.endswith((".bin", ".pth")) else [filename]
        path = _fetch_from_hub(repo_id, names, what=what, fix=fix)
        return path, {"tag": tag, "hf_hub": f"{repo_id}/{path.name}"}
    if tag_cfg.get("url"):
        if offline_variable():
            logger.warning("%s is set but %s is a plain URL: trying the open_clip cache", offline_variable(), what)
        try:
            path = Path(open_clip.download_pretrained_from_url(tag_cfg["url"]))
        except Exception as exc:
            raise ModelLoadError(f"could not fetch {what} from {tag_cfg['url']}: {exc}. {fix}") from exc
        return path, {"tag": tag, "url": tag_cfg["url"]}
    raise ModelLoadError(
        f"open_clip records no download location for {arch}/{tag}; pass a local checkpoint as open_clip:{arch}/PATH"
    )


def _safetensors_name(filename: str) -> str:
    return HF_SAFE_WEIGHTS_NAME if filename == HF_WEIGHTS_NAME else filename.rsplit(".", 1)[0] + ".safetensors"


def _fetch_from_hub(repo_id: str, filenames: Sequence[str], *, what: str, fix: str) -> Path:
    """The first of ``filenames`` that ``repo_id`` has: from the cache, else downloaded.

    huggingface_hub retries an unreachable Hub for about a minute before it gives up; here
    one HEAD request without retries decides first (seconds), and only a Hub that answers
    gets the download, with huggingface_hub's own retries.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HFValidationError, RepositoryNotFoundError

    for name in filenames:
        try:
            return Path(hf_hub_download(repo_id, name, local_files_only=True))
        except EntryNotFoundError:  # not in the cache
            continue
        except HFValidationError as exc:
            raise ConfigError(f"{what}: {repo_id!r} is not a Hugging Face repository id ({exc})") from exc
    offline = offline_variable()
    if offline:
        raise ModelLoadError(
            f"could not fetch {what}: {repo_id} ({' or '.join(filenames)}) is not in the local Hugging Face "
            f"cache and {offline} is set. {fix}"
        )
    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, not at huggingface_hub's import
    for name in filenames:
        try:
            get_hf_file_metadata(
                hf_hub_url(repo_id, name, endpoint=endpoint), timeout=hub_timeout()
            )  # one request, no retries
        except EntryNotFoundError:  # the repository has no such file: try the next name
            continue
        except GatedRepoError as exc:
            raise ModelLoadError(
                f"could not fetch {what}: {repo_id} is gated. Accept its terms at https://huggingface.co/{repo_id} "
                f"and set HF_TOKEN (or run `hf auth login`). ({type(exc).__name__})"
            ) from exc
        except RepositoryNotFoundError as exc:
            raise ModelLoadError(
                f"could not fetch {what}: the Hub has no repository {repo_id} that this token may see; "
                f"check the name and HF_TOKEN. ({type(exc).__name__})"
            ) from exc
        except Exception as exc:
            raise ModelLoadError(
                f"could not fetch {what}: the Hugging Face Hub did not answer for {repo_id}/{name} "
                f"({type(exc).__name__}: {exc}). {fix}"
            ) from exc
        try:
            return Path(hf_hub_download(repo_id, name, endpoint=endpoint))
        except Exception as exc:
            raise ModelLoadError(f"could not fetch {what}: downloading {repo_id}/{name} failed ({exc}). {fix}") from exc
    raise ModelLoadError(f"could not fetch {what}: {repo_id} on the Hub has none of {', '.join(filenames)}")


def _check_weights_only(path: Path) -> None:
    """Refuse a torch file that needs arbitrary unpickling, before open_clip opens it.

    open_clip loads it with ``weights_only=True`` too, but falls back to a full unpickle on
    a TypeError; a file that loads here never reaches that fallback.
    """
    if path.suffix in (".safetensors", ".npz", ".npy"):  # no pickle inside
        return
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
        reason = next((line for line in lines if "WeightsUnpickler error" in line), lines[0])[:300]
        raise ModelLoadError(
            f"checkpoint {str(path)!r} is not a weights-only torch file ({type(exc).__name__}: {reason}). The suite "
            "never unpickles arbitrary files: save its state dict as safetensors "
            "(safetensors.torch.save_file(state_dict, 'model.safetensors')) and pass that."
        ) from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # no symlinks (Windows without privilege): copy
        shutil.copyfile(src, dst)


def _distinct(items: Any, *, key: Callable[[Any], Any]) -> tuple[list[Any], dict[Any, int]]:
    """Distinct items in first-seen order, and each key's row."""
    unique: list[Any] = []
    row: dict[Any, int] = {}
    for item in items:
        k = key(item)
        if k not in row:
            row[k] = len(unique)
            unique.append(item)
    return unique, row


def _jsonable(value: Any) -> Any:
    """Tuples to lists and a check that the value is JSON: config() feeds the run id."""
    return json.loads(json.dumps(value))
