"""A tiny random-weight open_clip model, for tests and `make demo`.

``write_tiny_clip`` writes an open_clip architecture JSON and a seeded random checkpoint
(safetensors). The scorer name ``open_clip:tiny-clip-test/<checkpoint>`` with
``-o arch_config=<config>`` then loads it through exactly the same code as any local
open_clip checkpoint. Its scores mean nothing: the weights are random.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_ARCH = "tiny-clip-test"

# The text tower keeps CLIP's vocabulary and context length, so that open_clip's default
# tokenizer (whose BPE vocabulary ships inside the open_clip package) works offline.
TINY_MODEL_CFG: dict = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def write_tiny_clip(directory: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write ``tiny-clip-test.json`` and ``tiny-clip-test-seed{seed}.safetensors`` into ``directory``.

    Returns (config_path, checkpoint_path). The same seed gives the same weights. open_clip
    names an architecture after its JSON file's stem, so the config file is named after
    the architecture.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / f"{TINY_ARCH}.json"
    config_path.write_text(json.dumps(TINY_MODEL_CFG, indent=2) + "\n", encoding="utf-8")

    # Seed a private copy of the RNG: building the model must not move the caller's.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**TINY_MODEL_CFG)
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    checkpoint_path = directory / f"{TINY_ARCH}-seed{seed}.safetensors"
    # One metadata key: safetensors writes its metadata map in no fixed order, and the
    # file's bytes (its sha256 goes into the run id) must not depend on the process.
    save_file(state, str(checkpoint_path), metadata={"description": f"{TINY_ARCH}, random weights, seed {seed}"})
    return config_path, checkpoint_path
