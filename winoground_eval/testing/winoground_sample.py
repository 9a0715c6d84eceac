"""A small synthetic sample in Winoground's own file layout, drawn with PIL.

Used by the tests and by benchmarks/bench_distributed.py. It is NOT Winoground: two coloured shapes per
image, captions that swap the colours (Object), the positions (Relation) or both. It
describes itself with a ``wg-eval-manifest.json`` so the Winoground task checks it against
its own counts and applies no Winoground-specific tags.
"""

from __future__ import annotations

import json
import random
import zipfile
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60), "yellow": (235, 200, 20)}
SHAPES = ("circle", "square", "triangle")
KINDS = ("Object", "Relation", "Both")
SECONDARY = ("", "Symbolic", "", "Pragmatics", "")


def _draw(objects: list[tuple[str, str]], size: int) -> Image.Image:
    """objects: [(colour, shape)] from left to right."""
    img = Image.new("RGB", (size, size), (245, 245, 245))
    d = ImageDraw.Draw(img)
    w = size // len(objects)
    for i, (colour, shape) in enumerate(objects):
        cx, cy, r = i * w + w // 2, size // 2, int(w * 0.35)
        box = (cx - r, cy - r, cx + r, cy + r)
        fill = COLOURS[colour]
        if shape == "circle":
            d.ellipse(box, fill=fill)
        elif shape == "square":
            d.rectangle(box, fill=fill)
        else:
            d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def _caption(a: tuple[str, str], b: tuple[str, str]) -> str:
    return f"a {a[0]} {a[1]} left of a {b[0]} {b[1]}"


def make_example(rng: random.Random, kind: str) -> tuple[list[str], list[list[tuple[str, str]]]]:
    c1, c2 = rng.sample(sorted(COLOURS), 2)
    s1, s2 = rng.sample(SHAPES, 2)
    a, b = (c1, s1), (c2, s2)
    if kind == "Object":  # colours swap between the shapes
        a2, b2 = (c2, s1), (c1, s2)
    elif kind == "Relation":  # the two objects swap places
        a2, b2 = b, a
    else:  # both: colours swap and the objects swap places
        a2, b2 = (c1, s2), (c2, s1)
    return [_caption(a, b), _caption(a2, b2)], [[a, b], [a2, b2]]


def write_winoground_sample(
    directory: str | Path, n_examples: int = 8, seed: int = 0, *, size: int = 64, as_zip: bool = False
) -> Path:
    """Write ``examples.jsonl``, the images (folder or ``images.zip``) and a self-describing manifest."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows, images = [], {}
    for i in range(n_examples):
        kind = KINDS[i % len(KINDS)]
        captions, scenes = make_example(rng, kind)
        rows.append(
            {
                "id": i,
                "caption_0": captions[0],
                "caption_1": captions[1],
                "tag": f"sample-{kind.lower()}",
                "secondary_tag": SECONDARY[i % len(SECONDARY)],
                "num_main_preds": 1 + (i % 2),
                "collapsed_tag": kind,
            }
        )
        for k, scene in enumerate(scenes):
            images[f"ex_{i}_img_{k}.png"] = _draw(scene, size)
    (root / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if as_zip:
        with zipfile.ZipFile(root / "images.zip", "w") as zf:
            for name, img in images.items():
                buf = BytesIO()
                img.save(buf, format="PNG")
                zf.writestr(f"images/{name}", buf.getvalue())
    else:
        (root / "images").mkdir(exist_ok=True)
        for name, img in images.items():
            img.save(root / "images" / name)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["collapsed_tag"]] = counts.get(r["collapsed_tag"], 0) + 1
    manifest = {
        "name": "winoground-sample",
        "source": "synthetic (winoground_eval.testing.winoground_sample)",
        "synthetic": True,
        "seed": seed,
        "n_examples": n_examples,
        "tag_counts": {"collapsed_tag": counts},
        "why_hard_tags": None,
    }
    (root / "wg-eval-manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return root
