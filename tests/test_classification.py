"""Classification tasks: dataset layouts, prompt files, metrics, shapes-classify, CLIP caption cache.

Every dataset here is a fixture the test writes itself in the dataset's on-disk layout."""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from winoground_eval.core.errors import DataError
from winoground_eval.tasks import classification as cls
from winoground_eval.testing.classification_fixtures import write_cifar10, write_fixture

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------------------- fixtures


def draw(colour, shape: str, mode: str = "RGB") -> Image.Image:
    im = Image.new("RGB", (40, 30), (240, 240, 240))
    from PIL import ImageDraw

    d = ImageDraw.Draw(im)
    (d.ellipse if shape == "circle" else d.rectangle)((8, 5, 30, 25), fill=colour)
    return im.convert(mode) if mode != "RGB" else im


def write_imagefolder(root: Path) -> Path:
    spec = {
        "red_square": ((220, 20, 20), "square"),
        "blue_circle": ((20, 20, 220), "circle"),
        "green_square": ((20, 180, 20), "square"),
    }
    for k, (name, (colour, shape)) in enumerate(spec.items()):
        (root / name).mkdir(parents=True)
        for i in range(3):
            mode = "P" if (k, i) == (0, 1) else "RGB"
            draw(colour, shape, mode).save(root / name / f"img{i}.png")
    (root / "red_square" / "notes.txt").write_text("not an image")
    return root


def write_csv(path: Path, rows, header=("prompt", "classname", "classidx")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------- CIFAR-10


def test_cifar10_reads_torchvision_layout(tmp_path):
    pixels, labels = write_cifar10(tmp_path)
    task = cls.cifar10(data_dir=str(tmp_path))
    assert list(task.metadata()) == [f"test-{i}" for i in range(12)]
    assert [t["label"] for t in task.metadata().values()] == labels
    examples = list(task.examples())
    assert examples[3].images[0].mode == "RGB" and examples[3].images[0].size == (32, 32)
    assert np.array_equal(np.asarray(examples[3].images[0]), pixels[3].transpose(1, 2, 0))
    assert examples[0].captions == tuple(f"a blurry photo of a {c}." for c in CIFAR_NAMES)
    info = task.info()
    assert info["md5_ok"] is False and info["split"] == "test" and info["prompts"] == "shipped:cifar10.csv"
    assert task.scorer_defaults == {"n_samples": (50, 500), "to_keep": (5, 1), "loss": "l1"}
    # the fingerprint follows the bytes
    other = tmp_path / "other"
    write_cifar10(other, seed=1)
    assert cls.cifar10(data_dir=str(other)).info()["data_fingerprint"] != info["data_fingerprint"]


def test_cifar10_limit_subset_per_class(tmp_path):
    write_cifar10(tmp_path, n=30)
    limited = cls.cifar10(data_dir=str(tmp_path), limit=4)  # metadata() stays the whole split; examples() the first 4
    assert list(limited.metadata()) == [f"test-{i}" for i in range(30)]
    assert [ex.id for ex in limited.examples()] == [f"test-{i}" for i in range(4)]
    per = cls.cifar10(data_dir=str(tmp_path), per_class=2)
    assert len(per.metadata()) == 20 and per.info()["per_class"] == 2
    np.save(tmp_path / "subset.npy", np.array([5, 2, 29]))
    assert list(cls.cifar10(data_dir=str(tmp_path), subset=str(tmp_path / "subset.npy")).metadata()) == [
        "test-5",
        "test-2",
        "test-29",
    ]
    (tmp_path / "bad.txt").write_text("3\n99\n")
    with pytest.raises(DataError, match="outside 0..29"):
        cls.cifar10(data_dir=str(tmp_path), subset=str(tmp_path / "bad.txt"))


def test_cifar10_wrong_class_order_is_refused(tmp_path):
    write_cifar10(tmp_path, names=list(reversed(CIFAR_NAMES)))
    with pytest.raises(DataError, match="class 0 of the data .* 'truck' .* 'airplane'"):
        cls.cifar10(data_dir=str(tmp_path))


def test_cifar10_pickle_with_foreign_globals_is_refused(tmp_path):
    write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": []}, f)
    with pytest.raises(DataError, match="not allowed in a CIFAR batch"):
        cls.cifar10(data_dir=str(tmp_path))


# ------------------------------------------------------------ missing data, each dataset


@pytest.mark.parametrize(
    "name, expected, fix",
    [
        ("cifar10", "cifar-10-batches-py", "download=true"),
        ("stl10", "stl10_binary", "download=true"),
        ("pets", "oxford-iiit-pet", "download=true"),
        ("flowers", "flowers-102", "download=true"),
        ("food", "food-101", "download=true"),
        ("aircraft", "fgvc-aircraft-2013b", "download=true"),
        ("imagenet", "val/<wnid>", "image-net.org"),
        ("objectnet", "objectnet-1.0", "objectnet.dev"),
    ],
)
def test_missing_dataset_names_layout_and_fix(tmp_path, name, expected, fix):
    factory = getattr(cls, name)
    with pytest.raises(DataError, match="give --data-dir"):
        factory()
    with pytest.raises(DataError) as err:
        factory(data_dir=str(tmp_path))
    assert expected in str(err.value) and fix in str(err.value) and str(tmp_path) in str(err.value)


def test_unknown_split_and_download_refusals(tmp_path):
    with pytest.raises(DataError, match="no split 'val'; choose one of test, train"):
        cls.cifar10(data_dir=str(tmp_path), split="val")
    with pytest.raises(DataError, match="torchvision cannot download it"):
        cls.imagenet(data_dir=str(tmp_path), download=True)


# ------------------------------------------------------------ other layouts (detection)


def _jpg(path: Path, colour=(200, 10, 10), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (20, 16), colour if mode == "RGB" else 128).save(path)


def test_pets_layout(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    names = list(cls.shipped_prompts("pets").classnames)
    rows = []
    for k, name in enumerate(names):  # the dataset's file naming: cats capitalised, dogs lower case
        stem = "_".join(name.split()[:-1] if name.endswith((" cat", " dog")) else name.split())
        stem = stem if name.endswith(" cat") else stem.lower()
        rows.append(f"{stem}_1 {k + 1} {1 if name.endswith(' cat') else 2} 1")
        _jpg(base / "images" / f"{stem}_1.jpg")
    (base / "annotations").mkdir(parents=True)
    (base / "annotations" / "test.txt").write_text("\n".join(rows) + "\n")
    _jpg(base / "images" / "Bengal_1.jpg", mode="L")  # a greyscale file: RGB at load, as the reference's loader
    task = cls.pets(data_dir=str(tmp_path))
    assert len(task.metadata()) == 37 and task.metadata()["test-1"]["label"] == 1
    ex = next(iter(task.examples()))
    assert ex.images[0].mode == "RGB" and len(ex.captions) == 37
    bengal = [e for e in task.examples() if e.id == "test-5"][0]
    assert bengal.tags["file"] == "Bengal_1.jpg" and bengal.images[0].mode == "RGB"


def test_flowers_food_aircraft_layouts(tmp_path):
    from scipy.io import savemat

    base = tmp_path / "flowers-102"
    for i in range(1, 5):
        _jpg(base / "jpg" / f"image_{i:05d}.jpg")
    savemat(base / "imagelabels.mat", {"labels": np.array([[3, 1, 102, 2]])})
    savemat(base / "setid.mat", {"tstid": np.array([[4, 1, 3]]), "trnid": np.array([[2]]), "valid": np.array([[2]])})
    flowers = cls.flowers(data_dir=str(tmp_path))
    assert [t["label"] for t in flowers.metadata().values()] == [1, 2, 101]
    assert [t["file"] for t in flowers.metadata().values()] == ["image_00004.jpg", "image_00001.jpg", "image_00003.jpg"]

    food_names = [
        r["classname"]
        for r in csv.DictReader(open(Path(cls.__file__).parent.parent / "data_manifests/prompts/food.csv"))
    ]
    keys = [n.replace(" ", "_") for n in food_names]
    meta = {k: [f"{k}/{i}" for i in range(1)] for k in reversed(keys)}  # the file's order decides the images' order
    for k in keys:
        _jpg(tmp_path / "food-101" / "images" / k / "0.jpg")
    (tmp_path / "food-101" / "meta").mkdir(parents=True)
    (tmp_path / "food-101" / "meta" / "test.json").write_text(json.dumps(meta))
    food = cls.food(data_dir=str(tmp_path))
    assert [t["label"] for t in food.metadata().values()][:2] == [100, 99]
    assert food.metadata()["test-0"]["classname"] == "waffles"

    variants = [
        r["classname"]
        for r in csv.DictReader(open(Path(cls.__file__).parent.parent / "data_manifests/prompts/aircraft.csv"))
    ]
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    (data / "images_variant_test.txt").write_text("0001 F/A-18\n0002 707-320\n")
    for i in ("0001", "0002"):
        _jpg(data / "images" / f"{i}.jpg")
    air = cls.aircraft(data_dir=str(tmp_path))
    assert [t["classname"] for t in air.metadata().values()] == ["F/A-18", "707-320"]
    (data / "images_variant_test.txt").write_text("0001 Concorde\n")
    with pytest.raises(DataError, match=r"images_variant_test.txt:1: variant 'Concorde'"):
        cls.aircraft(data_dir=str(tmp_path))


def test_stl10_layout(tmp_path):
    base = tmp_path / "stl10_binary"
    base.mkdir()
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 256, size=(3, 3, 96, 96), dtype=np.uint8)  # (N, C, W, H): STL-10 stores columns first
    planes.tofile(base / "test_X.bin")
    np.array([1, 10, 4], dtype=np.uint8).tofile(base / "test_y.bin")
    (base / "class_names.txt").write_text(
        "\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"])
    )
    task = cls.stl10(data_dir=str(tmp_path))
    assert [t["label"] for t in task.metadata().values()] == [0, 9, 3]
    im = list(task.examples())[1].images[0]
    assert im.size == (96, 96) and np.array_equal(np.asarray(im), planes[1].transpose(2, 1, 0))


def test_imagenet_layout_needs_all_1000_classes(tmp_path):
    val = tmp_path / "imagenet" / "val"  # the reference code's layout
    wnids = [f"n{i:08d}" for i in range(1000)]
    for w in wnids:
        (val / w).mkdir(parents=True)
    _jpg(val / wnids[0] / "b.JPEG")
    _jpg(val / wnids[0] / "a.JPEG")
    _jpg(val / wnids[999] / "c.JPEG")
    task = cls.imagenet(data_dir=str(tmp_path), per_class=1)
    assert list(task.metadata()) == ["val/n00000000/a.JPEG", "val/n00000999/c.JPEG"]
    assert [t["label"] for t in task.metadata().values()] == [0, 999]
    assert task.scorer_defaults["to_keep"] == (500, 50, 10, 1) and len(next(iter(task.examples())).captions) == 1000
    os.rmdir(val / wnids[500])
    with pytest.raises(DataError, match="999 class folders, not 1000"):
        cls.imagenet(data_dir=str(tmp_path))


def test_objectnet_layout_classes_and_border_crop(tmp_path):
    base = tmp_path / "objectnet-1.0"
    (base / "mappings").mkdir(parents=True)
    folders = {"alarm_clock": "Alarm clock", "banana": "Banana", "squeegee": "Squeegee", "backpack": "Backpack"}
    (base / "mappings" / "folder_to_objectnet_label.json").write_text(json.dumps(folders))
    (base / "mappings" / "objectnet_to_imagenet_1k.json").write_text(
        json.dumps({"Banana": "banana", "Alarm clock": "analog clock; digital clock", "Backpack": "backpack"})
    )
    for f in folders:
        im = Image.new("RGB", (30, 20), (255, 0, 0))
        im.paste((0, 0, 255), (2, 2, 28, 18))
        (base / "images" / f).mkdir(parents=True)
        im.save(base / "images" / f / "x.png")
    task = cls.objectnet(data_dir=str(tmp_path))
    assert task.prompts.prompts == ("a photo of a alarm clock.", "a photo of a backpack.", "a photo of a banana.")
    assert list(task.metadata()) == [
        "alarm_clock/x.png",
        "backpack/x.png",
        "banana/x.png",
    ]  # squeegee: not an ImageNet class
    im = next(iter(task.examples())).images[0]
    assert im.size == (26, 16) and {tuple(p) for p in np.asarray(im).reshape(-1, 3).tolist()} == {(0, 0, 255)}


# ----------------------------------------------------------------- imagefolder, prompts


def test_imagefolder_ids_classes_modes(tmp_path):
    root = write_imagefolder(tmp_path / "shapes")
    task = cls.imagefolder(str(root))
    meta = task.metadata()
    assert list(meta)[:3] == ["blue_circle/img0.png", "blue_circle/img1.png", "blue_circle/img2.png"]
    assert "red_square/notes.txt" not in meta and len(meta) == 9
    assert task.prompts.prompts == (
        "a photo of a blue circle.",
        "a photo of a green square.",
        "a photo of a red square.",
    )
    modes = {e.id: e.images[0].mode for e in task.examples()}
    assert modes["red_square/img1.png"] == "P" and modes["red_square/img0.png"] == "RGB"  # original mode
    assert task.scorer_defaults == {"loss": "l2"}
    assert cls.imagefolder(str(root), limit=2, template="{}").prompts.prompts[0] == "blue circle"


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        cls.imagefolder(str(tmp_path / "nope"))
    (tmp_path / "one").mkdir()
    with pytest.raises(DataError, match="1 class subfolder"):
        cls.imagefolder(str(tmp_path))
    (tmp_path / "two").mkdir()
    _jpg(tmp_path / "one" / "a.png")
    with pytest.raises(DataError, match="two under .* hold no images"):
        cls.imagefolder(str(tmp_path))


def test_user_prompts_good(tmp_path):
    root = write_imagefolder(tmp_path / "shapes")
    good = write_csv(
        tmp_path / "p.csv",
        [
            ["a blue disc", "blue circle", 0],
            ["a round blue thing", "blue circle", 0],
            ["a green box", "green square", 1],
            ["a red box", "red square", 2],
        ],
    )
    task = cls.imagefolder(str(root), prompts=str(good))
    assert task.prompts.classidx == (0, 0, 1, 2) and task.info()["prompts"] == "user:p.csv"
    assert task.info()["n_prompts"] == 4 and task.info()["n_classes"] == 3


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([["a", "x", 0]], ("prompt", "class", "classidx"), r"p.csv:1: the header must be"),
        (
            [["a", "x", 0], ["b", "y", "one"]],
            ("prompt", "classname", "classidx"),
            r"p.csv:3: classidx 'one' is not an integer",
        ),
        (
            [["a", "x", 0], ["b", "y", 2]],
            ("prompt", "classname", "classidx"),
            r"classidx must cover 0..2; no prompt for class\(es\) 1",
        ),
        (
            [["a", "x", 0], ["b", "y", 0]],
            ("prompt", "classname", "classidx"),
            r"p.csv:3: class 0 is named 'y' here but 'x'",
        ),
        ([["a", "x", 0], ["b", "y"]], ("prompt", "classname", "classidx"), r"p.csv:3: expected 3 fields"),
        ([["a", "x", -1]], ("prompt", "classname", "classidx"), r"p.csv:2: classidx -1 is negative"),
        ([], ("prompt", "classname", "classidx"), r"p.csv: no prompts"),
    ],
)
def test_user_prompts_bad(tmp_path, rows, header, message):
    path = write_csv(tmp_path / "p.csv", rows, header)
    with pytest.raises(DataError, match=message):
        cls.user_prompts(str(path))


def test_user_prompts_must_match_class_count(tmp_path):
    write_cifar10(tmp_path)
    path = write_csv(tmp_path / "p.csv", [["a cat", "cat", 0], ["a dog", "dog", 1]])
    with pytest.raises(DataError, match="name 2 classes but the data has 10"):
        cls.cifar10(data_dir=str(tmp_path), prompts=str(path))
    with pytest.raises(DataError, match="cannot read it"):
        cls.cifar10(data_dir=str(tmp_path), prompts=str(tmp_path / "missing.csv"))


def test_shipped_prompts_and_ensemble():
    for name, n in [
        ("cifar10", 10),
        ("stl10", 10),
        ("pets", 37),
        ("flowers", 102),
        ("food", 101),
        ("aircraft", 100),
        ("imagenet", 1000),
    ]:
        p = cls.shipped_prompts(name)
        assert p.n_classes == n and p.classidx == tuple(range(n))
        # OpenAI's ImageNet names (the reference's) repeat two: "missile" (657, 744), "sunglasses" (836, 837)
        assert len(set(p.prompts)) == n - (2 if name == "imagenet" else 0)
    ens = cls.ensemble(cls.shipped_prompts("cifar10"), cls.ensemble_templates("cifar10"))
    assert len(ens.prompts) == 180 and ens.classidx[:18] == (0,) * 18 and "a blurry photo of a airplane." in ens.prompts


# -------------------------------------------------------------------------- metrics


def _task_with_labels(tmp_path, labels_per_class=(3, 1, 2)):
    root = tmp_path / "f"
    for c, n in enumerate(labels_per_class):
        for i in range(n):
            _jpg(root / f"c{c}" / f"{i}.png")
    return cls.imagefolder(
        str(root),
        prompts=str(
            write_csv(tmp_path / "p.csv", [["p0a", "c0", 0], ["p0b", "c0", 0], ["p1", "c1", 1], ["p2", "c2", 2]])
        ),
    )


def test_metrics_top1_ties_mean_per_class_confusion(tmp_path):
    task = _task_with_labels(tmp_path)
    ids = list(task.metadata())  # c0/0..2 (label 0), c1/0 (label 1), c2/0..1 (label 2)
    s = {
        ids[0]: [[5.0, 1.0, 2.0, 3.0]],  # class 0 via its first prompt: right
        ids[1]: [[1.0, 4.0, 2.0, 3.0]],  # class 0 via its second prompt: right
        ids[2]: [[1.0, 1.0, 3.0, 3.0]],  # tie between classes 1 and 2 at the top: wrong
        ids[3]: [[0.0, 0.0, 9.0, 1.0]],  # class 1: right
        ids[4]: [[9.0, 9.0, 0.0, 1.0]],  # two prompts of class 0 tie: no class tie, pred 0: wrong
        ids[5]: [[0.0, 0.0, 0.0, 1.0]],  # right
    }
    scores = {k: np.asarray(v) for k, v in s.items()}
    assert [task.outcomes(i, scores[i])["top1"] for i in ids] == [1, 1, 0, 1, 0, 1]
    assert task.example_info(ids[2], scores[ids[2]]) == {"pred": 1, "tie": True}
    assert task.example_info(ids[4], scores[ids[4]]) == {"pred": 0}
    r = task.metrics(scores)
    assert r["metrics"]["top1"] == pytest.approx(4 / 6)
    assert r["metrics"]["mean_per_class"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert r["n_ties"] == 1 and r["tie_ids"] == [ids[2]]
    assert [m["name"] for m in r["metric_specs"]] == ["top1", "mean_per_class"] and r["metric_specs"][0]["primary"]
    assert r["per_class"] == [
        {"classidx": 0, "classname": "c0", "n": 3, "top1": pytest.approx(2 / 3)},
        {"classidx": 1, "classname": "c1", "n": 1, "top1": 1.0},
        {"classidx": 2, "classname": "c2", "n": 2, "top1": 0.5},
    ]
    assert r["confusion"] == {"0": {"0": 2, "1": 1}, "1": {"1": 1}, "2": {"0": 1, "2": 1}}
    lo, hi = r["ci95"]["mean_per_class"]
    assert lo <= r["metrics"]["mean_per_class"] <= hi and r["ci95"]["top1"] is not None
    assert task.metrics(scores)["ci95"] == r["ci95"]  # seeded
    assert r["per_example"][ids[0]] == {"top1": 1.0}
    with pytest.raises(Exception, match="shape"):
        task.outcomes(ids[0], np.zeros((1, 3)))


def test_mean_combine_differs_from_max():
    idx = np.array([0, 0, 1])
    row = np.array([10.0, -10.0, 1.0])
    assert cls.decide(row, idx, 2, "max") == (0, False)
    assert cls.decide(row, idx, 2, "mean") == (1, False)


def test_mean_per_class_ci_bootstrap_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=40)
    correct = (rng.random(40) < 0.6).astype(float)
    lo, hi = cls.mean_per_class_ci(labels, correct, 4)
    point = cls.mean_per_class(labels, correct, 4)
    assert lo < point < hi and hi - lo < 0.6


def test_run_end_to_end_with_dummy_scorer(tmp_path):
    from winoground_eval.baselines.dummy import DummyScorer
    from winoground_eval.core.runner import RunSpec, open_store, run

    task = cls.imagefolder(str(write_imagefolder(tmp_path / "shapes")))
    scorer = DummyScorer()
    spec = RunSpec("imagefolder", "dummy", tmp_path / "runs")
    store = open_store(spec, task, scorer)
    with store:
        result = run(spec, task, scorer, store)
    assert result["n_examples"] == 9 and set(result["metrics"]) == {"top1", "mean_per_class"}
    assert sum(sum(r.values()) for r in result["confusion"].values()) == 9
    assert json.loads((store.path / "result.json").read_text())["per_class"] == result["per_class"]


# ------------------------------------------------------------------ shapes-classify


def test_shapes_classify_labels_are_the_colour_pair():
    from winoground_eval.tasks import shapes
    from winoground_eval.tasks import shapes_classify as sc

    task = sc.ShapesClassifyTask(split="val", limit=40)
    assert task.info()["n_classes"] == 10 and task.info()["n_prompts"] == 20 and len(task.metadata()) == 600
    for ex_id, tags in task.metadata().items():
        split, i, k = ex_id.rsplit("-", 2)
        scene = shapes.make_spec(split, int(i)).scenes[int(k)]
        assert set(tags["classname"].split(" and ")) == {scene.subject.colour, scene.object.colour}
    assert len(sc.make_prompts("full").prompts) == 120 and len(set(sc.make_prompts("full").prompts)) == 120
    ex = next(iter(task.examples()))
    assert ex.images[0].size == (32, 32) and len(ex.captions) == 20


def test_shapes_classify_manifest_guards(monkeypatch):
    from winoground_eval.tasks import shapes_classify as sc

    real = sc.packaged_manifest()
    broken = json.loads(json.dumps(real))
    broken["splits"]["test"]["sha256"] = "0" * 64
    monkeypatch.setattr(sc, "packaged_manifest", lambda: broken)
    with pytest.raises(DataError, match="has checksum .* but data_manifests/shapes_classify.json records 0000"):
        sc.ShapesClassifyTask(split="test")


def test_tiny_clip_on_shapes_classify_beats_chance_by_far():
    """Guard: the shipped tiny-clip on the first 100 val images (measured 0.70; chance 0.10)."""
    from winoground_eval.baselines.tiny_models import tiny_clip
    from winoground_eval.core.contracts import evaluate_examples
    from winoground_eval.tasks import shapes_classify as sc

    task = sc.ShapesClassifyTask(split="val", limit=100)
    scorer = tiny_clip(device="cpu")
    examples = list(task.examples())
    scored = evaluate_examples(scorer, examples)
    r = task.metrics({e.id: s.scores for e, s in zip(examples, scored)})
    assert r["metrics"]["top1"] >= 0.5


# -------------------------------------------------------------------- CLIP caption cache


def test_clip_encodes_each_caption_once_across_chunks(tiny_clip):
    from winoground_eval.baselines.clip import from_open_clip_spec
    from winoground_eval.core.contracts import Example

    config, ckpt = tiny_clip()
    scorer = from_open_clip_spec(f"tiny-clip-test/{ckpt}", arch_config=str(config), device="cpu", batch_size=4)
    encoded = []
    original = scorer._caption_batch
    scorer._caption_batch = lambda caps: (encoded.extend(caps), original(caps))[1]
    prompts = tuple(f"a photo of a thing number {i}." for i in range(7))
    images = [draw((10 * i, 0, 0), "circle") for i in range(5)]
    first = scorer.evaluate([Example(f"e{i}", (images[i],), prompts) for i in range(3)])
    second = scorer.evaluate([Example(f"e{i}", (images[i],), prompts) for i in range(3, 5)])
    assert sorted(encoded) == sorted(prompts)  # 7 encodings for 5 images x 7 prompts in two chunks
    fresh = from_open_clip_spec(f"tiny-clip-test/{ckpt}", arch_config=str(config), device="cpu", batch_size=4)
    again = fresh.evaluate([Example("e4", (images[4],), prompts)])
    np.testing.assert_allclose(second[1].scores, again[0].scores, rtol=1e-6, atol=1e-6)
    assert first[0].scores.shape == (1, 7)


def test_shipped_class_order_agrees_with_torchvision_flowers():
    """Flowers-102 carries no names in its files; torchvision's list has the same order. The
    three names that differ are CLIP_benchmark's cleaned ones (also the reference code's)."""
    from torchvision.datasets import Flowers102

    ours = cls.shipped_prompts("flowers").classnames
    differ = [k for k, (a, b) in enumerate(zip(ours, Flowers102.classes)) if a != b]
    assert len(ours) == len(Flowers102.classes) == 102 and differ == [15, 59, 92]


def test_templates_ensemble_on_a_dataset(tmp_path):
    write_cifar10(tmp_path)
    task = cls.cifar10(data_dir=str(tmp_path), templates="ensemble")
    assert task.info()["n_prompts"] == 180 and task.info()["combine"] == "mean" and task.combine == "mean"
    assert task.info()["data_fingerprint"] != cls.cifar10(data_dir=str(tmp_path)).info()["data_fingerprint"]
    row = np.zeros((1, 180))
    row[0, 18:36] = 1.0  # every template of class 1 ("automobile")
    assert task.example_info("test-1", row) == {"pred": 1} and task.outcomes("test-1", row) == {"top1": 1.0}


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets as tv

    calls = []

    def fake_cifar(root, train, download):
        calls.append((root, train, download))
        write_cifar10(Path(root))

    monkeypatch.setattr(tv, "CIFAR10", fake_cifar)
    task = cls.cifar10(data_dir=str(tmp_path / "new"), download=True)
    assert calls == [(str(tmp_path / "new"), False, True)] and len(task.metadata()) == 12

    def offline(root, train, download):
        raise OSError("Name or service not known")

    monkeypatch.setattr(tv, "CIFAR10", offline)
    with pytest.raises(DataError, match="download into .* failed .*Name or service not known"):
        cls.cifar10(data_dir=str(tmp_path / "other"), download=True)


@pytest.mark.parametrize(
    "name", ["cifar10", "stl10", "pets", "flowers", "food", "aircraft", "imagenet", "objectnet", "imagefolder"]
)
def test_offline_fixtures_build_and_score(tmp_path, name):
    """The contract tests' fixtures: each dataset's tiny copy builds, rebuilds to the same identity, and reduces."""
    from winoground_eval.tasks.classification import ClassificationTask

    offline_fixture = ClassificationTask.offline_fixture
    from winoground_eval.core import registry

    def build(where):
        resolved, kwargs = offline_fixture(where, name if name != "imagefolder" else "imagefolder:")
        if resolved.startswith("imagefolder:"):
            return cls.imagefolder(resolved.partition(":")[2], **kwargs)
        return registry.resolve_task(resolved)(**kwargs)

    task = build(tmp_path / "a")
    assert task.info() == build(tmp_path / "b").info()
    examples = list(task.examples())
    assert examples and all(e.images[0].mode == "RGB" and len(e.captions) >= 2 for e in examples)
    rng = np.random.default_rng(0)
    result = task.metrics({e.id: rng.normal(size=(1, len(e.captions))) for e in examples})
    assert result["n_examples"] == len(examples)
    assert all(task.outcomes(e.id, np.zeros((1, len(e.captions)))) == {"top1": 0.0} for e in examples)


@pytest.mark.parametrize("name", ["cifar10", "stl10", "pets", "flowers", "food", "aircraft"])
def test_readers_agree_with_torchvision_index_for_index(tmp_path, name, monkeypatch):
    """Same files, same order, same labels and pixels as the torchvision class (md5 checks
    switched off: the fixtures are not the real files)."""
    import torchvision.datasets as tv

    write_fixture(name, tmp_path)
    make = {
        "cifar10": lambda: tv.CIFAR10(str(tmp_path), train=False),
        "stl10": lambda: tv.STL10(str(tmp_path), split="test"),
        "pets": lambda: tv.OxfordIIITPet(str(tmp_path), split="test"),
        "flowers": lambda: tv.Flowers102(str(tmp_path), split="test"),
        "food": lambda: tv.Food101(str(tmp_path), split="test"),
        "aircraft": lambda: tv.FGVCAircraft(str(tmp_path), split="test"),
    }
    for klass in (tv.CIFAR10, tv.STL10, tv.Flowers102):
        monkeypatch.setattr(klass, "_check_integrity", lambda self: True)
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # batches.meta's md5
    reference = make[name]()
    task = getattr(cls, name)(data_dir=str(tmp_path))
    examples = list(task.examples())
    assert len(examples) == len(reference)
    for i, ex in enumerate(examples):
        image, label = reference[i]
        assert ex.id == f"test-{i}" and task.label(ex.id) == label
        assert np.array_equal(np.asarray(ex.images[0]), np.asarray(image))
