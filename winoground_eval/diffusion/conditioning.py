"""What the denoiser is conditioned on: a component of the diffusion scorer.

The scorer's noise bank, grid, batching, out-of-memory halving, stopping, adaptive
stages and prefilter never look inside a condition; they hand *keys* (the strings of an
example's captions) to a :class:`Conditioning` and pass what it returns to the model.

Protocol (keep it this small):

- ``uncond_key: str`` -- the key whose embedding is the unconditional one, used by
  ``normalize=uncond`` (Stable Diffusion: the empty prompt ``""``; a class-conditional
  model: its null class).
- ``embed(keys) -> torch.Tensor`` -- the embeddings of ``keys`` stacked along dim 0, on
  the scorer's device, one row per key, in the order given. Rows must not depend on what
  else is in ``keys`` (embed one key at a time or in a fixed way), and are cached per key.
  Raise :class:`~winoground_eval.core.errors.DataError` naming the key for a key it cannot
  embed (e.g. a caption that is not one of a class-conditional model's class names).
- ``model_kwargs(embeddings) -> dict`` -- the keyword arguments of the denoiser's forward
  pass for a batch of rows of ``embed``'s output, e.g. ``{"encoder_hidden_states": e}``
  (a UNet) or ``{"class_labels": e}`` (DiT).
- ``to(device, dtype)`` -- move and cast its modules (eval mode, no grad); the scorer calls
  it once when it is built.
- ``clear()`` -- drop the cache.
- ``config() -> dict`` -- JSON-able settings that change the numbers; the scorer merges
  them into the top level of its own ``config()``.
- ``components() -> dict[str, Any]`` -- name -> module (or None) for ``config()["components"]``.

:class:`TextConditioning` is Stable Diffusion's: a CLIP tokenizer and text encoder, the
encoder's last hidden state for the caption padded to the tokenizer's max length.
:class:`ClassConditioning` is a class-conditional model's (DiT): class labels.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

from ..core.errors import DataError
from .dit_options import Condition
from .families.base import cast_module
from .options import _choice

CACHE_SIZE = 4096


@runtime_checkable
class Conditioning(Protocol):
    uncond_key: str

    def embed(self, keys: Sequence[str]) -> torch.Tensor: ...

    def model_kwargs(self, embeddings: torch.Tensor) -> dict[str, Any]: ...

    def to(self, device: torch.device, dtype: torch.dtype) -> None: ...

    def clear(self) -> None: ...

    def config(self) -> dict[str, Any]: ...

    def components(self) -> dict[str, Any]: ...


class TextConditioning:
    """Stable Diffusion's text conditioning: tokenizer + text encoder, cached per caption."""

    uncond_key = ""

    def __init__(self, text_encoder: Any, tokenizer: Any) -> None:
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.device = torch.device("cpu")
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device = device
        self.text_encoder.to(device)
        if self.text_encoder.dtype != dtype:
            cast_module(self.text_encoder, dtype)
        self.text_encoder.eval()
        self.text_encoder.requires_grad_(False)
        self._cache.clear()

    def embed(self, keys: Sequence[str]) -> torch.Tensor:
        return torch.cat([self._one(k) for k in keys])

    def _one(self, caption: str) -> torch.Tensor:
        """(1, max_length, dim) last hidden state, one caption at a time (so a caption's
        embedding does not depend on the others)."""
        cached = self._cache.get(caption)
        if cached is not None:
            self._cache.move_to_end(caption)
            return cached
        tokens = self.tokenizer(
            [caption],
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        embedding = self.text_encoder(tokens.input_ids.to(self.device))[0]
        self._cache[caption] = embedding
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return embedding

    def model_kwargs(self, embeddings: torch.Tensor) -> dict[str, Any]:
        return {"encoder_hidden_states": embeddings}

    def clear(self) -> None:
        self._cache.clear()

    def config(self) -> dict[str, Any]:
        return {"max_length": int(self.tokenizer.model_max_length)}

    def components(self) -> dict[str, Any]:
        return {"text_encoder": self.text_encoder, "tokenizer": self.tokenizer}


class ClassConditioning:
    """The :class:`~.conditioning.Conditioning` component of a class-conditional model.

    Keys are captions; each names a class (a decimal index or an ``id2label`` label, see the
    module docstring), and :meth:`embed` gives the model's conditioning input for them: a
    long tensor of class labels, cached per key, passed as ``class_labels``. The
    unconditional key is DiT's null class (index ``num_classes``, the classifier-free
    guidance label). ``mode="position"`` (caption k = class k) is applied by the scorer,
    which hands this component the captions ``"0", "1", ...`` instead.
    """

    uncond_key = "<null class>"

    def __init__(
        self,
        num_classes: int,
        id2label: dict[int, str] | None = None,
        *,
        mode: Condition = "caption",
        device: Any = "cpu",
    ) -> None:
        _choice("condition", mode, Condition)
        self.num_classes = int(num_classes)
        self.mode = mode
        self.device = torch.device(device)
        self.labels: dict[str, int] = {}
        for idx, names in sorted((id2label or {}).items()):
            for name in str(names).split(","):
                self.labels.setdefault(name.strip().lower(), int(idx))
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def key(self, caption: str, position: int) -> int:
        """The class index of caption number ``position`` of an example."""
        return position if self.mode == "position" else self.class_of(caption, position)

    def class_of(self, caption: str, position: int | None = None) -> int:
        """The class a caption names (DataError naming the caption if none)."""
        if caption == self.uncond_key:
            return self.num_classes
        text = caption.strip()
        if text.lstrip("-").isdigit():
            idx = int(text)
        elif text.lower() in self.labels:
            idx = self.labels[text.lower()]
        else:
            raise DataError(
                f"caption {caption!r} names no class of this model: give a class index (0..{self.num_classes - 1}) "
                "or a label of its id2label table, or use -o condition=position (caption k = class k)"
            )
        if not 0 <= idx < self.num_classes:
            where = "" if position is None else f" (position {position})"
            raise DataError(
                f"caption {caption!r}{where} is class {idx}, but the model has classes 0..{self.num_classes - 1}"
            )
        return idx

    def encode(self, classes: Sequence[int]) -> torch.Tensor:
        """Class indices as the model's (n,) long label tensor on the device."""
        return torch.tensor([int(k) for k in classes], dtype=torch.long, device=self.device)

    def embed(self, keys: Sequence[str]) -> torch.Tensor:
        for k in keys:
            if k not in self._cache:
                self._cache[k] = torch.tensor(self.class_of(k), dtype=torch.long, device=self.device)
                if len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return torch.stack([self._cache[k] for k in keys])

    @staticmethod
    def model_kwargs(cond: torch.Tensor) -> dict[str, Any]:
        return {"class_labels": cond}

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device = torch.device(device)
        self._cache.clear()

    def clear(self) -> None:
        self._cache.clear()

    def config(self) -> dict[str, Any]:
        return {"kind": "class", "num_classes": self.num_classes, "condition": self.mode}

    def components(self) -> dict[str, Any]:
        return {}
