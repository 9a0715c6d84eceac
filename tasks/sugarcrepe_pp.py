"""``sugarcrepe-pp``: SugarCrepe++ (Dumpala et al., NeurIPS 2024 D&B), one COCO 2017 val image x
[positive caption, a second positive worded differently, the SugarCrepe hard negative].

Subsets: ``replace_att``, ``replace_obj``, ``replace_rel``, ``swap_att``, ``swap_obj`` (788 /
1652 / 1406 / 666 / 245). Captions: ``data/<subset>.json`` of the Hub repository
``Aman-J/SugarCrepe_pp`` at the revision in ``data_manifests/sugarcrepe_pp.json``, or
``-t captions_dir=DIR`` with those files (or those files in ``--data-dir`` itself); images: ``--data-dir`` the COCO 2017 val folder, as
for ``sugarcrepe``. As the authors' ``VLMs/test_*.py``: ``itt`` (primary; the image-to-text
task) is right when both positives score strictly above the negative; ``itt_p1`` / ``itt_p2``
each positive alone. ``tot`` (the text-only task, the authors' ``correct_text``): cos(P1, P2)
strictly above both cos(P1, N) and cos(P2, N), from the caption x caption similarities a
scorer with ``text_similarity`` (CLIP-family: its text embeddings) stores in each example's
``info["text_scores"]``; for a scorer without it (diffusion) ``tot`` is null and
``undefined_metrics.tot`` says why.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import DataError
from winoground_eval.core.metrics import check_matrix, metric_ci
from winoground_eval.core.taskbase import RankedTask, Row

from ._bench import Published, image_tile
from .sugarcrepe import image_folder

TOT = Metric(
    "tot",
    "text only: cos(P1, P2) strictly above cos(P1, N) and cos(P2, N) (the paper's TOT; needs a "
    "scorer with text embeddings)",
    per_example=False,
)
SPECS = (
    Metric("itt", "both positives strictly above the negative (the paper's ITT)", primary=True),
    Metric("itt_p1", "positive 1 strictly above the negative"),
    Metric("itt_p2", "positive 2 strictly above the negative"),
    TOT,
)
NO_TEXT_SCORES = (
    "the scorer gives no text-text similarity (it has no text_similarity: a diffusion scorer has no "
    "text embedding to compare), so the run stores no text_scores (a CLIP run scored before they were "
    "stored has none either: run it again into a new --out)"
)
COMPARISONS = (("itt", (0, 0), (0, 2)), ("itt", (0, 1), (0, 2)))


class SugarCrepePPTask(Published, RankedTask):
    name = "sugarcrepe-pp"
    MANIFEST = "sugarcrepe_pp.json"
    metric_specs = SPECS  # type: ignore[assignment]
    text_scores = True  # a scorer with text_similarity stores each example's 3 x 3 caption similarities
    SUBSETS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")

    def __init__(
        self,
        *,
        captions_dir: str | None = None,
        data_dir: str | None = None,
        revision: str | None = None,
        split: str | None = None,
        subsets: tuple[str, ...] | None = None,
        limit: int | None = None,
        token: str | None = None,
    ):
        self.captions_dir = captions_dir
        super().__init__(data_dir=data_dir, revision=revision, split=split, subsets=subsets, limit=limit, token=token)

    def comparisons(self, row: Row) -> tuple:
        return COMPARISONS

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        s = check_matrix(example_id, scores, (1, 3))
        p1, p2 = bool(s[0, 0] > s[0, 2]), bool(s[0, 1] > s[0, 2])
        return {"itt": float(p1 and p2), "itt_p1": float(p1), "itt_p2": float(p2)}

    def tie(self, example_id: str, scores: np.ndarray) -> bool:
        return bool(scores[0, 0] == scores[0, 2] or scores[0, 1] == scores[0, 2])

    @staticmethod
    def tot(example_id: str, text_scores: Any) -> float:
        """The text-only outcome from a stored 3 x 3 caption similarity matrix [P1, P2, N]."""
        t = check_matrix(example_id, np.asarray(text_scores, dtype=np.float64), (3, 3))
        return float(t[0, 1] > t[0, 2] and t[0, 1] > t[1, 2])

    def metrics_from_run(
        self, scores: Mapping[str, np.ndarray], infos: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        result = self.metrics(scores)
        have = {i: infos.get(i, {}).get("text_scores") for i in scores}
        missing = [i for i, t in have.items() if t is None]
        result["metric_specs"] = [*result["metric_specs"], asdict(TOT)]
        result["ci95"]["tot"] = None
        if not scores or missing:
            why = (
                NO_TEXT_SCORES
                if len(missing) == len(scores)
                else (
                    f"{len(missing)} of {len(scores)} examples have no stored text_scores (e.g. {missing[0]}; scored before "
                    "they were stored): run the task again into a new --out with a scorer that has text_similarity"
                )
            )
            result["metrics"]["tot"] = None
            result["undefined_metrics"] = {"tot": why if scores else "no examples"}
            return result
        outcome = {i: self.tot(i, t) for i, t in have.items()}
        result["metrics"]["tot"] = float(np.mean(list(outcome.values())))
        result["ci95"]["tot"] = metric_ci(list(outcome.values()))
        for label, cell in result["breakdown"].get("subset", {}).items():
            members = [i for i in outcome if label in self.row(i).tags["subset"]]
            cell["tot"] = float(np.mean([outcome[i] for i in members]))
        return result

    def read_rows(self) -> Iterable[Row]:
        try:
            images = image_folder(self.data_dir)
        except DataError as exc:  # sugarcrepe's message, told of this task
            raise DataError(f"sugarcrepe-pp: {exc}".replace("sugarcrepe needs", "it needs")) from None
        beside = Path(self.data_dir).expanduser() if self.data_dir else None
        if (
            self.captions_dir is None
            and beside is not None
            and any((beside / d / f"{s}.json").is_file() for s in self.subsets for d in ("data", "."))
        ):
            self.captions_dir = str(beside)  # the caption files laid beside the COCO folder
        if self.captions_dir is not None:
            root = Path(self.captions_dir).expanduser()
            self.source_info = {"source": f"local copy of hf:{self.manifest['hf_repo']} caption files + COCO 2017 val"}
        else:
            data_dir, self.data_dir = self.data_dir, None  # the Hub for the captions; the COCO folder stays
            root = self.hub_folder(["data/*.json"])
            self.data_dir = data_dir
            self.source_info["source"] += " + COCO 2017 val"
        for subset in self.subsets:
            path = next((p for p in (root / "data" / f"{subset}.json", root / f"{subset}.json") if p.is_file()), None)
            if path is None:
                raise DataError(
                    f"sugarcrepe-pp: no {subset}.json in {root} or {root / 'data'}. Get: {self.manifest['get']}"
                )
            try:
                for case in json.loads(path.read_text(encoding="utf-8")):
                    yield Row(
                        id=f"{subset}-{case['id']}",
                        images=(images / case["filename"],),
                        captions=(case["caption"], case["caption2"], case["negative_caption"]),
                        tags={"subset": [subset]},
                        correct=(0, 1),
                    )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(
                    f"sugarcrepe-pp: {path} is not a list of {{id, filename, caption, caption2, "
                    f"negative_caption}} ({exc!r})"
                ) from None


def write_fixture(root: Any, n: int = 3) -> Any:
    """A small SugarCrepe++: ``root/val2017/`` and the caption files as in the Hub repository (``root/data/<subset>.json``)."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    for subset in SugarCrepePPTask.SUBSETS:
        cases = []
        for i in range(n):
            fname = f"{500000 + i:012d}.jpg"
            (root / "val2017" / fname).write_bytes(image_tile((150, 150, 30 * i), i))
            neg = f"A plant swats at a cat {i}." if i else f"A cat swats at a plant {i}."
            cases.append(
                {
                    "id": i,
                    "filename": fname,
                    "caption": f"A cat swats at a plant {i}.",
                    "caption2": f"The plant is swatted at by a cat {i}.",
                    "negative_caption": neg,
                }
            )
        (root / "data" / f"{subset}.json").write_text(json.dumps(cases, indent=1))
    return root


def offline_fixture(tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
    return name, {"data_dir": str(write_fixture(tmp_path / "scpp")), "subsets": ("swap_obj", "swap_att")}
