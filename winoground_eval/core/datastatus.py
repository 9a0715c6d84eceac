"""Where each registered task's data comes from, and whether this machine has it: the
``data`` column of ``wg-eval ls tasks``. Cheap: reads no dataset, imports no task module;
a Hub dataset counts as had when the Hugging Face Hub cache holds a downloaded snapshot of
its repository.

The cache is huggingface_hub's own (``huggingface_hub.constants.HF_HUB_CACHE``: the library
resolves ``HF_HUB_CACHE``, the legacy ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME`` and
``XDG_CACHE_HOME``, with ``~`` and ``$VARS`` expanded, when it is imported), its repository
folder named by the library (``repo_folder_name``). That is where the loaders' files go:
``snapshot_download`` and ``datasets.load_dataset`` (which fetches a Hub repository's files
through ``hf_hub_download`` into the same cache). ``HF_DATASETS_CACHE`` is datasets' other
cache, of the Arrow tables it prepares from those files: it is not where a download lands
and is not consulted here."""

from __future__ import annotations

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


def hub_cache() -> Path:
    """The Hugging Face Hub cache the loaders download into, as huggingface_hub resolves it."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def in_hub_cache(repo: str) -> bool:
    """Whether the Hub cache holds a downloaded snapshot of the dataset repository ``repo``
    (a snapshot folder with a file in it: an interrupted first download leaves none)."""
    from huggingface_hub.file_download import repo_folder_name

    snapshots = hub_cache() / repo_folder_name(repo_id=repo, repo_type="dataset") / "snapshots"
    try:
        return any(s.is_dir() and any(s.iterdir()) for s in snapshots.iterdir())
    except OSError:  # no such folder, or unreadable: not had
        return False


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
