"""Text encodings the SDXL, SD3 and FLUX.1 pipelines build, one caption at a time.

Each function restates what the diffusers pipeline of that family does for one prompt
(``padding="max_length"``, truncation, the hidden state it reads), so that a caption's
embedding never depends on which other captions are encoded with it. :class:`CaptionCache`
keeps them per caption, as :class:`~..conditioning.TextConditioning` does for SD.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Sequence

import torch

CACHE_SIZE = 4096


def _ids(tokenizer: Any, caption: str, max_length: int, device: torch.device) -> torch.Tensor:
    tokens = tokenizer([caption], padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return tokens.input_ids.to(device)


def clip_penultimate(
    tokenizer: Any, encoder: Any, caption: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states of the penultimate layer (1, L, D), the encoder's first output).

    The first output is ``text_embeds`` (the projected pooled embedding) for a
    ``CLIPTextModelWithProjection``, the last hidden state for a ``CLIPTextModel``; SDXL and
    SD3 read the pooled embedding from the former (``clip_skip=None``: ``hidden_states[-2]``)."""
    out = encoder(_ids(tokenizer, caption, tokenizer.model_max_length, device), output_hidden_states=True)
    return out.hidden_states[-2], out[0]


def clip_pooled(tokenizer: Any, encoder: Any, caption: str, device: torch.device) -> torch.Tensor:
    """(1, D) ``pooler_output`` of a ``CLIPTextModel`` (FLUX.1's pooled text embedding)."""
    return encoder(
        _ids(tokenizer, caption, tokenizer.model_max_length, device), output_hidden_states=False
    ).pooler_output


def t5_hidden(tokenizer: Any, encoder: Any, caption: str, max_length: int, device: torch.device) -> torch.Tensor:
    """(1, max_length, D) last hidden state of a T5 encoder (``</s>`` appended, padded)."""
    return encoder(_ids(tokenizer, caption, max_length, device), output_hidden_states=False)[0]


class CaptionCache:
    """Per-caption cache of ``encode(caption) -> {name: (1, ...) tensor}``; ``embed`` stacks rows."""

    def __init__(self, encode: Callable[[str], dict[str, torch.Tensor]]) -> None:
        self.encode = encode
        self._cache: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()

    def one(self, caption: str) -> dict[str, torch.Tensor]:
        cached = self._cache.get(caption)
        if cached is not None:
            self._cache.move_to_end(caption)
            return cached
        with torch.no_grad():
            value = self.encode(caption)
        self._cache[caption] = value
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return value

    def embed(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        rows = [self.one(k) for k in keys]
        return {name: torch.cat([r[name] for r in rows]) for name in rows[0]}

    def clear(self) -> None:
        self._cache.clear()


def take(cond: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows ``index`` of every tensor of a stacked conditioning."""
    return {name: value[index] for name, value in cond.items()}
