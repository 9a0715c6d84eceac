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
  Raise :class:`~winoground_eval.errors.DataError` naming the key for a key it cannot
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
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

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
        from .scorer import _cast  # the cast that keeps diffusers' fp32 modules quiet

        self.device = device
        self.text_encoder.to(device)
        if self.text_encoder.dtype != dtype:
            _cast(self.text_encoder, dtype)
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
            [caption], padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
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
