"""Write the shipped prompt CSVs (``prompt,classname,classidx``) from their licensed sources.

    python data_manifests/prompts/build.py --clip-prompts PROMPTS_MD --clip-benchmark DIR [--out DIR]

- ``PROMPTS_MD``: ``data/prompts.md`` of openai/CLIP (MIT): class lists and templates of
  CIFAR10, STL10, Food101, FGVCAircraft and OxfordPets as used in the CLIP paper;
- ``DIR``: LAION-AI/CLIP_benchmark's ``en_classnames.json`` and
  ``en_zeroshot_classification_templates.json`` (MIT): pets, flowers, imagenet1k.

One prompt per class, with the template the Diffusion Classifier reference code uses for
that dataset (see SOURCES.md); the class order is the torchvision dataset's label order.
ObjectNet has no CSV: its prompts are built at load time from the mapping files that ship
with the ObjectNet download (see tasks/classification_data.py).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import re
from pathlib import Path

# The reference code's template per dataset (its prompts/*.csv), each also a template of
# CLIP / CLIP_benchmark for that dataset.
TEMPLATES = {
    "cifar10": "a blurry photo of a {}.",
    "stl10": "a photo of a {}.",
    "pets": "a photo of a {}, a type of pet.",
    "flowers": "a photo of a {}, a type of flower.",
    "food": "a photo of {}, a type of food.",
    "aircraft": "a photo of a {}, a type of aircraft.",
    "imagenet": "a photo of a {}.",
}


def clip_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {"classes": [...], "templates": [...]}} from CLIP's data/prompts.md."""
    out: dict[str, dict[str, list[str]]] = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        name = block.splitlines()[0].strip()
        entry = {}
        for key in ("classes", "templates"):
            m = re.search(rf"^{key} = (\[.*?^\])", block, flags=re.M | re.S)
            if m:
                entry[key] = ast.literal_eval(m.group(1))
        out[name] = entry
    return out


def class_lists(clip: dict, classnames: dict) -> dict[str, list[str]]:
    pets = classnames["pets"]  # CLASS-ID order of the Oxford-IIIT Pet annotations (case-insensitive A-Z)
    # CLIP's list capitalises exactly the 12 cat breeds (as the dataset's file names do).
    cats = {c.lower() for c in clip["OxfordPets"]["classes"] if c[0].isupper()}
    assert len(cats) == 12 and len(pets) == 37
    food = clip["Food101"]["classes"]
    # torchvision's Food101 labels are sorted(folder names) with "_" for spaces.
    assert [c.replace(" ", "_") for c in food] == sorted(c.replace(" ", "_") for c in food) and len(food) == 101
    return {
        "cifar10": clip["CIFAR10"]["classes"],
        "stl10": clip["STL10"]["classes"],
        "pets": [_with_species(c, "cat" if c.lower() in cats else "dog") for c in pets],
        "flowers": classnames["flowers"],
        "food": food,
        "aircraft": clip["FGVCAircraft"]["classes"],
        "imagenet": classnames["imagenet1k"],
    }


def _with_species(name: str, species: str) -> str:
    """ "Abyssinian cat", "Beagle dog"; a name that already ends in the species ("American Bulldog") keeps it once."""
    return name if name.lower().endswith(species) else f"{name} {species}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-prompts", required=True, help="openai/CLIP data/prompts.md")
    parser.add_argument("--clip-benchmark", required=True, help="folder with CLIP_benchmark's en_classnames.json")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args()
    clip = clip_sections(Path(args.clip_prompts).read_text(encoding="utf-8"))
    classnames = json.loads((Path(args.clip_benchmark) / "en_classnames.json").read_text(encoding="utf-8"))
    for dataset, classes in class_lists(clip, classnames).items():
        with open(Path(args.out) / f"{dataset}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["prompt", "classname", "classidx"])
            for i, name in enumerate(classes):
                w.writerow([TEMPLATES[dataset].format(name), name, i])


if __name__ == "__main__":
    main()
