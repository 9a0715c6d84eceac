"""The DiT family's options (no torch import): the shared groups plus DiT's own fields.

Defaults are the reference's DiT setting (``eval_prob_dit.py`` as its ImageNet commands
run it: ``--t_interval 4`` = 250 timesteps of 1000, every class, float32, the l2 error
as the headline number, a shared saved noise bank with ``--randomize_noise``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .options import DType, ScorerOptions, _choice, _opt, _positive_int

DiTLoss = Literal["l2", "l1", "vlb", "l2+vlb"]
Condition = Literal["caption", "position"]
TimestepEmbedding = Literal["original", "diffusers"]
# The reference's grid: every 4th timestep of 1000 (t_interval=4 in its commands).
REFERENCE_N_TIMESTEPS = 250


@dataclass(frozen=True)
class DiTOptions(ScorerOptions):
    """Every option of a DiT scorer: :class:`~.options.ScorerOptions`' groups (grid,
    strategy, precision; two defaults restated: 250 timesteps and float32) and DiT's own."""

    n_timesteps: int = _opt(
        REFERENCE_N_TIMESTEPS,
        "evenly spaced grid timesteps (250 = every 4th of 1000, the reference's setting)",
        check=_positive_int,
    )
    dtype: DType = _opt(
        "float32", "float32 (the reference's), float16 or bfloat16", check=lambda n, v: _choice(n, v, DType)
    )
    loss: DiTLoss = _opt("l2", "l2 | l1 | vlb | l2+vlb (see docs/dit.md)", check=lambda n, v: _choice(n, v, DiTLoss))
    condition: Condition = _opt(
        "caption",
        "caption (each caption is a class id or an id2label label) | position (caption k = class k)",
        config=None,  # recorded in the conditioning block
        check=lambda n, v: _choice(n, v, Condition),
    )
    timestep_embedding: TimestepEmbedding = _opt(
        "original",
        "original (facebookresearch/DiT's sinusoid, frequencies exp(-ln(10000) i / half): the network the reference "
        "evaluates) or diffusers (diffusers' port, i / (half - 1))",
        check=lambda n, v: _choice(n, v, TimestepEmbedding),
    )

    def check(self) -> None:
        """The checks construction already made (kept for callers of the old API)."""
        self.__post_init__()
