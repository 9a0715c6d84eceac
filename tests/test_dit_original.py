"""The DiT network equals facebookresearch/DiT's with the same weights (the reference's network).

The reference evaluates ``DiT.models.DiT_XL_2`` (``eval_prob_dit.py``). Below, a small DiT is
built with random weights in that repository's layout (``x_embedder``, ``t_embedder``,
``y_embedder``, ``blocks.i.attn.qkv``, ``blocks.i.adaLN_modulation``, ``final_layer``) and run
by a plain restatement of its forward pass written here from its definition (models.py):
patch embedding plus the fixed 2-D sin-cos position table; the timestep sinusoid with
frequencies ``exp(-ln(10000) i / half)``, ``[cos, sin]``, through Linear-SiLU-Linear; the
class table; ``c = t + y``; adaLN-Zero blocks (LayerNorm without affine, eps 1e-6;
``x * (1 + scale) + shift``; gated attention and tanh-GELU MLP); the final adaLN layer and
unpatchify. The weights are converted to the diffusers layout, saved as a DiT folder and
loaded through ``dit:PATH``: the scorer's network must equal the restatement (float32,
CPU), and diffusers' own embedding (``timestep_embedding=diffusers``) must not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

diffusers = pytest.importorskip("diffusers")

from winoground_eval.core.registry import resolve_scorer  # noqa: E402
from winoground_eval.diffusion.dit import save_dit_folder  # noqa: E402

HIDDEN, HEADS, DEPTH, PATCH, IN_CH, SIZE, CLASSES, FREQ = 32, 2, 2, 2, 4, 8, 5, 256


def original_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights named as facebookresearch/DiT's state dict (learned sigma: 2 x IN_CH out)."""
    g = torch.Generator().manual_seed(seed)
    out_ch = 2 * IN_CH

    def r(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(shape, generator=g) * scale

    w = {
        "x_embedder.proj.weight": r(HIDDEN, IN_CH, PATCH, PATCH),
        "x_embedder.proj.bias": r(HIDDEN),
        "t_embedder.mlp.0.weight": r(HIDDEN, FREQ),
        "t_embedder.mlp.0.bias": r(HIDDEN),
        "t_embedder.mlp.2.weight": r(HIDDEN, HIDDEN),
        "t_embedder.mlp.2.bias": r(HIDDEN),
        "y_embedder.embedding_table.weight": r(CLASSES + 1, HIDDEN, scale=1.0),
        "final_layer.adaLN_modulation.1.weight": r(2 * HIDDEN, HIDDEN),
        "final_layer.adaLN_modulation.1.bias": r(2 * HIDDEN),
        "final_layer.linear.weight": r(PATCH * PATCH * out_ch, HIDDEN),
        "final_layer.linear.bias": r(PATCH * PATCH * out_ch),
    }
    for i in range(DEPTH):
        b = f"blocks.{i}."
        w |= {
            b + "attn.qkv.weight": r(3 * HIDDEN, HIDDEN),
            b + "attn.qkv.bias": r(3 * HIDDEN),
            b + "attn.proj.weight": r(HIDDEN, HIDDEN),
            b + "attn.proj.bias": r(HIDDEN),
            b + "mlp.fc1.weight": r(4 * HIDDEN, HIDDEN),
            b + "mlp.fc1.bias": r(4 * HIDDEN),
            b + "mlp.fc2.weight": r(HIDDEN, 4 * HIDDEN),
            b + "mlp.fc2.bias": r(HIDDEN),
            b + "adaLN_modulation.1.weight": r(6 * HIDDEN, HIDDEN),
            b + "adaLN_modulation.1.bias": r(6 * HIDDEN),
        }
    return w


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """(grid*grid, dim): the first half encodes the row's x coordinate... as DiT builds it: a
    meshgrid with w first, half the channels from grid[0] (w), half from grid[1] (h), each
    [sin, cos] of pos * 10000^(-j / (dim/4))."""
    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32), indexing="ij")
    halves = []
    for pos in (xs, ys):  # meshgrid(w, h)[0] varies along w
        omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
        out = pos.reshape(-1)[:, None] * omega[None]
        halves.append(np.concatenate([np.sin(out), np.cos(out)], axis=1))
    return torch.from_numpy(np.concatenate(halves, axis=1)).float()


def timestep_sinusoid(t: torch.Tensor, dim: int = FREQ) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def original_forward(w: dict[str, torch.Tensor], x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    def lin(h: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(h, w[name + ".weight"], w[name + ".bias"])

    def ln(h: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(h, (HIDDEN,), eps=1e-6)

    def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return h * (1 + scale[:, None]) + shift[:, None]

    n = x.shape[0]
    grid = SIZE // PATCH
    h = F.conv2d(x, w["x_embedder.proj.weight"], w["x_embedder.proj.bias"], stride=PATCH).flatten(2).transpose(1, 2)
    h = h + sincos_2d(HIDDEN, grid)[None]
    temb = lin(F.silu(lin(timestep_sinusoid(t), "t_embedder.mlp.0")), "t_embedder.mlp.2")
    c = temb + w["y_embedder.embedding_table.weight"][y]
    for i in range(DEPTH):
        b = f"blocks.{i}."
        sh1, sc1, g1, sh2, sc2, g2 = lin(F.silu(c), b + "adaLN_modulation.1").chunk(6, dim=1)
        a = modulate(ln(h), sh1, sc1)
        qkv = lin(a, b + "attn.qkv").reshape(n, -1, 3, HEADS, HIDDEN // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (HIDDEN // HEADS) ** -0.5, dim=-1) @ v
        h = h + g1[:, None] * lin(att.transpose(1, 2).reshape(n, -1, HIDDEN), b + "attn.proj")
        m = modulate(ln(h), sh2, sc2)
        h = h + g2[:, None] * lin(F.gelu(lin(m, b + "mlp.fc1"), approximate="tanh"), b + "mlp.fc2")
    shift, scale = lin(F.silu(c), "final_layer.adaLN_modulation.1").chunk(2, dim=1)
    h = lin(modulate(ln(h), shift, scale), "final_layer.linear")
    out_ch = 2 * IN_CH
    h = h.reshape(n, grid, grid, PATCH, PATCH, out_ch).permute(0, 5, 1, 3, 2, 4)
    return h.reshape(n, out_ch, grid * PATCH, grid * PATCH)


def to_diffusers(w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same weights in ``DiTTransformer2DModel``'s layout (every block holds its own copy
    of the timestep and class embedders; the final layer reads block 0's)."""
    d = {
        "pos_embed.proj.weight": w["x_embedder.proj.weight"],
        "pos_embed.proj.bias": w["x_embedder.proj.bias"],
        "proj_out_1.weight": w["final_layer.adaLN_modulation.1.weight"],
        "proj_out_1.bias": w["final_layer.adaLN_modulation.1.bias"],
        "proj_out_2.weight": w["final_layer.linear.weight"],
        "proj_out_2.bias": w["final_layer.linear.bias"],
    }
    for i in range(DEPTH):
        b, o = f"transformer_blocks.{i}.", f"blocks.{i}."
        q, k, v = w[o + "attn.qkv.weight"].chunk(3, dim=0)
        qb, kb, vb = w[o + "attn.qkv.bias"].chunk(3, dim=0)
        for part in ("weight", "bias"):
            d[b + f"norm1.emb.timestep_embedder.linear_1.{part}"] = w[f"t_embedder.mlp.0.{part}"]
            d[b + f"norm1.emb.timestep_embedder.linear_2.{part}"] = w[f"t_embedder.mlp.2.{part}"]
            d[b + f"norm1.linear.{part}"] = w[o + f"adaLN_modulation.1.{part}"]
            d[b + f"attn1.to_out.0.{part}"] = w[o + f"attn.proj.{part}"]
            d[b + f"ff.net.0.proj.{part}"] = w[o + f"mlp.fc1.{part}"]
            d[b + f"ff.net.2.{part}"] = w[o + f"mlp.fc2.{part}"]
        d[b + "norm1.emb.class_embedder.embedding_table.weight"] = w["y_embedder.embedding_table.weight"]
        d |= {
            b + "attn1.to_q.weight": q,
            b + "attn1.to_k.weight": k,
            b + "attn1.to_v.weight": v,
            b + "attn1.to_q.bias": qb,
            b + "attn1.to_k.bias": kb,
            b + "attn1.to_v.bias": vb,
        }
    return d


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    w = original_weights()
    model = diffusers.DiTTransformer2DModel(
        num_attention_heads=HEADS,
        attention_head_dim=HIDDEN // HEADS,
        in_channels=IN_CH,
        out_channels=2 * IN_CH,
        num_layers=DEPTH,
        sample_size=SIZE,
        patch_size=PATCH,
        num_embeds_ada_norm=CLASSES,
    )
    missing, unexpected = model.load_state_dict(to_diffusers(w), strict=False)
    assert not unexpected and set(missing) <= {"pos_embed.pos_embed"}  # the fixed table is a buffer
    out = tmp_path_factory.mktemp("dit_original")
    save_dit_folder(out, model, diffusers.DDPMScheduler())
    return w, out


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, IN_CH, SIZE, SIZE, generator=g)
    t = torch.tensor([0, 250, 500, 998])
    y = torch.tensor([0, 3, 4, CLASSES])  # CLASSES: the null (guidance) class
    return x, t, y


def _relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_network_equals_the_original_dit(converted):
    w, folder = converted
    x, t, y = _inputs()
    expected = original_forward(w, x, t, y)
    scorer = resolve_scorer(f"dit:{folder}")(device="cpu", n_timesteps=4)
    assert scorer.config()["timestep_embedding"] == "original"
    with torch.no_grad():
        got = scorer.transformer(x, timestep=t, class_labels=y).sample
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # diffusers' port of the embedding (frequencies over half - 1) is another network
    port = resolve_scorer(f"dit:{folder}")(device="cpu", n_timesteps=4, timestep_embedding="diffusers")
    assert port.config()["timestep_embedding"] == "diffusers"
    with torch.no_grad():
        other = port.transformer(x, timestep=t, class_labels=y).sample
    assert _relative_l2(other, expected) > 1e-3


def test_embedding_difference_grows_with_t():
    """The embeddings themselves: diffusers' (half - 1) against DiT's (half), relative L2 per t."""
    from diffusers.models.embeddings import get_timestep_embedding

    t = torch.tensor([0, 250, 998])
    ours = timestep_sinusoid(t)
    port = get_timestep_embedding(t, FREQ, flip_sin_to_cos=True, downscale_freq_shift=1)
    same = get_timestep_embedding(t, FREQ, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(same, ours, rtol=0, atol=1e-6)
    rel = [_relative_l2(port[i], ours[i]) for i in range(3)]
    assert rel[0] == 0.0 and 0.1 < rel[1] < rel[2]
