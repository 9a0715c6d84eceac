"""Where each registered task's data comes from, and whether this machine has it: the
``data`` column of ``wg-eval ls tasks``. Cheap: reads no dataset, imports no task module;
a Hub dataset counts as had when the Hugging Face cache holds its repository."""

from __future__ import annotations

import os
from pathlib import Path

BUILT_IN = "built in (offline)"
# task -> (Hub dataset repository or None, gated, what else it needs / where it comes from otherwise)
SOURCES: dict[str, tuple[str | None, bool, str]] = {
    "winoground": ("facebook/winoground", True, "or --data-dir"),
    "sugarcrepe": (None, False, "captions shipped; COCO 2017 val images via --data-dir"),
    "aro": (None, False, "the authors' files via --data-dir (-t source=hub: the gowitheflow mirrors)"),
    "whatsup": ("joaomonteirof/whatsup_all_perturbed", False, "(a mirror) or the authors' files via --data-dir"),
    "eqben": (None, False, "the authors' files via --data-dir (not on the Hub)"),
    "mmvp-vlm": ("MMVP/MMVP_VLM", False, "or --data-dir"),
    "vismin": ("mair-lab/vismin-bench", False, "or --data-dir"),
    "bivlc": ("imirandam/BiVLC", False, "or --data-dir"),
    "naturalbench": ("BaiqiL/NaturalBench", False, "or --data-dir"),
    "sugarcrepe-pp": ("Aman-J/SugarCrepe_pp", False, "captions; COCO 2017 val images via --data-dir"),
    "colorswap": ("stanfordnlp/colorswap", True, "or --data-dir"),
}
OFFLINE_TASKS = {"shapes", "shapes-ranked", "shapes-classify", "digits"}


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "huggingface"
    )
    return Path(home) / "hub"


def in_hub_cache(repo: str) -> bool:
    return (_hub_cache() / f"datasets--{repo.replace('/', '--')}").is_dir()


def data_status(name: str) -> str:
    """One line: where the task's data comes from and whether the Hugging Face cache has it."""
    if name in OFFLINE_TASKS:
        return BUILT_IN
    if name not in SOURCES:
        return "--data-dir (a local copy)"
    repo, gated, rest = SOURCES[name]
    if repo is None:
        return rest
    where = (
        "in the HF cache"
        if in_hub_cache(repo)
        else ("Hub, gated: accept its terms, log in" if gated else "Hub (downloaded on first run)")
    )
    return f"{repo}: {where}; {rest}"
