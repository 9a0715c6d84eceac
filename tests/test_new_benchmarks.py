"""The issue-20 benchmarks (tasks/_bench.py and its tasks): each one's convention as its paper's
code counts, loading from the Hub (mocked: no network) and from --data-dir in the published
layouts, and the errors that say where to get missing data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winoground_eval.core import registry
from winoground_eval.core.errors import DataError
from winoground_eval.tasks import _hub, bivlc, eqben, mmvp_vlm, naturalbench, sugarcrepe_pp, vismin, whatsup


def _task(module, tmp_path, name):
    resolvable, kwargs = module.offline_fixture(tmp_path, name)
    return registry.resolve_task(resolvable)(**kwargs)


def test_whatsup_counts_a_tie_right_as_the_authors_argmax_and_keeps_the_strict_figure(tmp_path):
    task = _task(whatsup, tmp_path, "whatsup")
    assert task.subsets == ("controlled_a", "coco_one")  # the files present
    sizes = {ex.id: len(ex.captions) for ex in task.examples()}
    assert sizes["controlled_a-0"] == 4 and sizes["coco_one-0"] == 2
    assert task.outcomes("coco_one-0", np.array([[0.5, 0.5]])) == {"accuracy": 1.0, "accuracy_strict": 0.0}
    assert task.outcomes("coco_one-0", np.array([[0.4, 0.5]])) == {"accuracy": 0.0, "accuracy_strict": 0.0}
    assert task.outcomes("controlled_a-1", np.array([[0.9, 0.1, 0.9, 0.2]])) == {
        "accuracy": 1.0,
        "accuracy_strict": 0.0,
    }
    scores = {i: np.zeros((1, n)) for i, n in sizes.items()}
    result = task.metrics(scores)
    assert result["metrics"] == {"accuracy": 1.0, "accuracy_strict": 0.0}  # no macro: one subset of each pair runs
    assert result["n_ties"] == len(sizes)
    # the repeated caption of the fixture's last COCO case is counted apart
    assert result["n_identical_negatives"] == 1 and result["identical_negative_ids"] == ["coco_one-3"]
    assert result["n_ties_counted_correct"] == len(sizes)


def test_mmvp_vlm_follows_the_authors_pair_rule_and_prefix(tmp_path):
    task = _task(mmvp_vlm, tmp_path, "mmvp-vlm")
    ex = next(iter(task.examples()))
    assert ex.id == "1" and all(c.startswith("a photo of the dog is facing") for c in ex.captions)
    # statement 1 strictly prefers image 1; statement 2 ties: the code's "img1 if p > 0.5 else img2" picks img2
    assert task.outcomes("1", np.array([[1.0, 0.0], [0.0, 0.0]])) == {"pair": 1.0, "pair_strict": 0.0}
    assert task.outcomes("1", np.array([[0.0, 0.0], [0.0, 1.0]])) == {"pair": 0.0, "pair_strict": 0.0}
    assert task.outcomes("1", np.array([[1.0, 0.0], [0.0, 1.0]])) == {"pair": 1.0, "pair_strict": 1.0}
    assert set(task.metrics({"1": np.eye(2)})["breakdown"]["pattern"]) == {"Orientation"}


def test_mmvp_vlm_rejects_rows_that_are_not_pairs(tmp_path):
    root = mmvp_vlm.write_fixture(tmp_path / "m")
    (root / mmvp_vlm.CSV).write_text("Question ID,Question Type,Statement\n2,Color,a\n3,Color,b\n")
    with pytest.raises(DataError, match="odd qid"):
        mmvp_vlm.MMVPVLMTask(data_dir=str(root))


def test_sugarcrepe_pp_itt_needs_both_positives_strictly_above_the_negative(tmp_path):
    task = _task(sugarcrepe_pp, tmp_path, "sugarcrepe-pp")
    assert task.subsets == ("swap_att", "swap_obj")
    assert task.outcomes("swap_obj-0", np.array([[2.0, 1.0, 0.5]])) == {"itt": 1.0, "itt_p1": 1.0, "itt_p2": 1.0}
    assert task.outcomes("swap_obj-0", np.array([[2.0, 0.5, 0.5]])) == {"itt": 0.0, "itt_p1": 1.0, "itt_p2": 0.0}
    result = task.metrics({ex.id: np.array([[1.0, 1.0, 1.0]]) for ex in task.examples()})
    assert result["metrics"]["itt"] == 0.0 and result["n_ties"] == 6
    assert result["n_identical_negatives"] == 2  # id 0 of each subset repeats caption 1 as its negative


@pytest.mark.parametrize(
    "module,name", [(bivlc, "bivlc"), (vismin, "vismin"), (naturalbench, "naturalbench"), (eqben, "eqben")]
)
def test_pair_tasks_score_text_image_group_strictly(module, name, tmp_path):
    task = _task(module, tmp_path, name)
    ids = [ex.id for ex in task.examples()]
    good = task.metrics({i: np.eye(2) for i in ids})["metrics"]
    assert good == {"text": 1.0, "image": 1.0, "group": 1.0}
    tied = task.metrics({i: np.ones((2, 2)) for i in ids})
    assert tied["metrics"] == {"text": 0.0, "image": 0.0, "group": 0.0} and tied["n_ties"] == len(ids)


def test_the_fingerprint_follows_the_image_bytes(tmp_path):
    first = _task(eqben, tmp_path / "a", "eqben")
    root = tmp_path / "b" / "eqben"
    eqben.write_fixture(root)
    (root / "images" / "eqbenag" / "0_0.png").write_bytes(bivlc.image_tile((1, 2, 3), 7))
    second = eqben.EqBenTask(data_dir=str(root))
    assert first.info()["data_fingerprint"] != second.info()["data_fingerprint"]
    assert first.metadata() == second.metadata()


def test_naturalbench_reads_the_published_zip(tmp_path):
    zipped = naturalbench.write_fixture(tmp_path / "nb", as_zip=True)
    task = naturalbench.NaturalBenchTask(data_dir=str(zipped))
    assert len(list(task.examples())) == 4


def test_bivlc_from_the_hub_loads_the_pinned_revision_and_records_it(tmp_path, monkeypatch):
    import datasets

    local = _hub.local_split("bivlc", _hub.manifest("bivlc.json"), bivlc.write_fixture(tmp_path / "b"), "test")
    calls = []

    def fake_load(repo, **kwargs):
        calls.append((repo, kwargs))
        return local

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(_hub, "check_reachable", lambda task, m: None)
    task = bivlc.BiVLCTask()
    pinned = _hub.manifest("bivlc.json")["revision"]
    assert calls == [("imirandam/BiVLC", {"split": "test", "revision": pinned, "token": None})]
    assert task.info()["revision"] == task.info()["revision_resolved"] == pinned
    assert task.info()["source"] == "hf:imirandam/BiVLC"


def test_vismin_from_the_hub_reads_the_save_to_disk_folder_of_the_repository(tmp_path, monkeypatch):
    import huggingface_hub

    root = vismin.write_fixture(tmp_path / "v")
    seen = {}

    def fake_snapshot(repo, **kwargs):
        seen.update(kwargs, repo=repo)
        return str(root)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.setattr(_hub, "check_reachable", lambda task, m: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no revision lookup
    task = vismin.VisMinTask(revision="abc")
    assert seen["repo"] == "mair-lab/vismin-bench" and seen["revision"] == "abc" and seen["repo_type"] == "dataset"
    assert task.info()["revision"] == "abc" and len(list(task.examples())) == 4


def test_missing_or_gated_data_says_where_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="needs --data-dir.*storage.googleapis.com/eqben-data"):
        eqben.EqBenTask()
    with pytest.raises(DataError, match="no 'test' split"):
        bivlc.BiVLCTask(data_dir=str(tmp_path))
    m = _hub.manifest("colorswap.json")
    err = _hub.hub_error("colorswap", m, RuntimeError("403 Client Error: access to dataset is restricted"), None)
    assert "accept its terms at https://huggingface.co/datasets/stanfordnlp/colorswap" in str(err)
    assert "hf auth login" in str(err) and "--data-dir" in str(err)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    err = _hub.hub_error("colorswap", m, RuntimeError("401 for token hf_secret"), "hf_secret")
    assert "hf_secret" not in str(err)


def test_every_new_task_has_a_manifest_with_source_licence_and_where_to_get_it():
    for name in ("whatsup", "eqben", "mmvp_vlm", "vismin", "bivlc", "naturalbench", "sugarcrepe_pp", "colorswap"):
        m = _hub.manifest(f"{name}.json")
        assert m["source"] and m["license"] and m["get"] and m["layout"] and m.get("revision"), name
        if m.get("revision") == "main":
            assert "revision_resolved" in m["revision_note"], name


def test_aro_from_its_hub_mirrors_at_the_revisions_mteb_pins(tmp_path, monkeypatch):
    import datasets
    from datasets import Dataset, Features, Image, Value

    from winoground_eval.tasks import aro

    feats = Features(
        {
            "image": Image(),
            "true_caption": Value("string"),
            "false_caption": Value("string"),
            "relation_name": Value("string"),
        }
    )
    rel = Dataset.from_dict(
        {
            "image": [{"bytes": bivlc.image_tile((9, 9, 9), i), "path": None} for i in range(3)],
            "true_caption": ["the cat is on the mat"] * 3,
            "false_caption": ["the mat is on the cat"] * 3,
            "relation_name": ["on", "on", "under"],
        },
        features=feats,
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda repo, **kw: calls.append((repo, kw["revision"])) or rel)
    monkeypatch.setattr(_hub, "check_reachable", lambda task, m: None)
    task = aro.AroTask(source="hub", subsets=("vg_relation",))
    assert calls == [("gowitheflow/ARO-Visual-Relation", "3867ad4f46a1ac2e63be034d1fc77dd8c2ef7209")]
    examples = list(task.examples())
    assert len(examples) == 3 and examples[0].images[0].size == (24, 24)
    assert task.info()["revision"] == {"vg_relation": "3867ad4f46a1ac2e63be034d1fc77dd8c2ef7209"}
    assert task.metadata()["vg_relation-2"]["relation"] == ["under"]


def test_export_places_a_run_among_the_published_rows_of_its_task(tmp_path, capsys):
    import json

    import jsonschema

    from winoground_eval.cli import main as cli
    from winoground_eval.results.export import published_rows, schema

    rows = {r["id"]: r for r in published_rows()}
    assert rows["bivlc-results/clip-vit-b32"]["metrics"]["group"] == pytest.approx(1439 / 2933, abs=1e-6)
    assert rows["mmvp-paper/openai-vit-l14-224"]["metrics"]["pair"] == 0.193
    for r in rows.values():  # every breakdown label carries its n, every value is a fraction or null
        for labels in r["breakdown"].values():
            assert all(
                "n" in v and all(x is None or 0 <= x <= 1 for k, x in v.items() if k != "n") for v in labels.values()
            )
    _, kwargs = bivlc.offline_fixture(tmp_path / "data", "bivlc")
    out, board = tmp_path / "runs", tmp_path / "board.json"
    assert (
        cli.main(
            ["run", "--task", "bivlc", "--data-dir", kwargs["data_dir"], "--scorer", "dummy", "--out", str(out), "-q"]
        )
        == 0
    )
    assert cli.main(["export", str(out), "-O", str(board), "--with-published"]) == 0
    doc = json.loads(board.read_text())
    jsonschema.Draft202012Validator(schema(2)).validate(doc)
    assert [p["id"] for p in doc["published"]] == ["bivlc-results/clip-vit-b32"]
    page = tmp_path / "report.html"
    assert cli.main(["report", str(out), "-O", str(page), "--with-published", "--no-hub"]) == 0
    assert "CLIP ViT-B/32 (open_clip ViT-B-32, openai)" in page.read_text()


def test_whatsup_reports_the_papers_two_subset_means(tmp_path):
    root = whatsup.write_fixture(tmp_path / "w")
    (root / "controlled_clevr").mkdir()
    cases = []
    for i in range(2):
        (root / "controlled_clevr" / f"cube_behind_sphere_{i}.jpeg").write_bytes(bivlc.image_tile((5, 5, 5), i))
        cases.append(
            {
                "image_path": f"data/controlled_clevr/cube_behind_sphere_{i}.jpeg",
                "caption_options": ["a cube behind a sphere", "a cube in front of a sphere", "a", "b"],
            }
        )
    (root / "controlled_clevr_dataset.json").write_text(json.dumps(cases))
    task = whatsup.WhatsUpTask(data_dir=str(root))
    assert task.subsets == ("controlled_a", "controlled_b", "coco_one")
    # Controlled-A all right (3 of 3), Controlled-B half (1 of 2): the macro is 0.75, the pooled accuracy 0.8
    scores = {
        ex.id: np.array([[1.0] + [0.0] * (len(ex.captions) - 1)])
        for ex in task.examples()
        if ex.id.startswith("controlled")
    }
    scores["controlled_b-1"] = np.array([[0.0, 1.0, 0.0, 0.0]])
    result = task.metrics(scores)
    assert result["metrics"]["controlled"] == pytest.approx(0.75) and result["metrics"]["accuracy"] == pytest.approx(
        0.8
    )
    assert "coco" not in result["metrics"]


def test_run_suite_compositional_runs_what_it_has_and_says_what_it_skipped(tmp_path, capsys, monkeypatch):
    from winoground_eval.cli import main as cli

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache, and no reaching for the Hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))  # read when it was imported
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, kwargs = bivlc.offline_fixture(tmp_path / "data", "bivlc")
    out = tmp_path / "runs"
    code = cli.main(
        [
            "run",
            "--suite",
            "compositional",
            "--scorer",
            "dummy",
            "--data-dir",
            f"bivlc={kwargs['data_dir']}",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    assert [p.relative_to(out).parts[0] for p in out.rglob("result.json")] == ["bivlc"]
    err = " ".join(capsys.readouterr().err.split())
    for name in ("winoground", "whatsup", "eqben", "mmvp-vlm", "vismin", "naturalbench", "sugarcrepe-pp", "colorswap"):
        assert f"skipping {name}" in err, name
    assert "needs --data-dir" in err and "HF_HUB_OFFLINE" in err  # each says why and the way out
    assert cli.main(["ls", "tasks", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (
        listed["bivlc"]["data"].startswith("imirandam/BiVLC: Hub") and listed["shapes"]["data"] == "built in (offline)"
    )
    # a downloaded snapshot in the library's cache
    snapshot = tmp_path / "hf" / "hub" / "datasets--imirandam--BiVLC" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "README.md").write_text("card")
    assert cli.main(["ls", "tasks", "--json"]) == 0
    assert "in the HF cache" in {r["name"]: r for r in json.loads(capsys.readouterr().out)}["bivlc"]["data"]


def test_colorswap_reads_the_authors_download_layout(tmp_path):
    import zipfile

    from winoground_eval.tasks import colorswap

    data = tmp_path / "cs" / "data"
    data.mkdir(parents=True)
    rows = []
    with zipfile.ZipFile(data / "images.zip", "w") as zf:
        for i in range(2):
            for k in (1, 2):
                zf.writestr(f"images/img_{i}_{k}.png", bivlc.image_tile((30 * k, 90, 90), i))
            rows.append(
                {
                    "id": i,
                    "caption_1": "a yellow umbrella and a white dress",
                    "caption_2": "a white umbrella and a yellow dress",
                    "image_1": f"images/img_{i}_1.png",
                    "image_2": f"images/img_{i}_2.png",
                    "image_source": "midjourney",
                    "caption_source": "human",
                }
            )
    (data / "test.json").write_text(json.dumps(rows))
    task = colorswap.ColorSwapTask(data_dir=str(tmp_path / "cs"))
    assert [ex.id for ex in task.examples()] == ["0", "1"] and task.info()["source"].startswith(
        "the authors' test.json"
    )


def test_aro_reads_a_local_copy_of_a_hub_mirror(tmp_path):
    from datasets import Dataset, Features, Image, Value

    from winoground_eval.tasks import aro

    cols = aro.ORDER_COLUMNS
    feats = Features({"images": Image(), **{c: Value("string") for c in cols}})
    rows = {
        "images": [{"bytes": bivlc.image_tile((7, 7, 7), i), "path": None} for i in range(2)],
        **{c: [f"{c} {i}" for i in range(2)] for c in cols},
    }
    (tmp_path / "ARO-COCO-order" / "data").mkdir(parents=True)
    Dataset.from_dict(rows, features=feats).to_parquet(
        str(tmp_path / "ARO-COCO-order" / "data" / "test-00000-of-00001.parquet")
    )
    task = aro.AroTask(source="hub", subsets=("coco_order",), data_dir=str(tmp_path))
    [first, _] = list(task.examples())
    assert first.captions == tuple(f"{c} 0" for c in cols) and task.info()["source"].startswith("local copy")


def test_published_rows_name_the_tasks_metrics_and_labels():
    from winoground_eval.results.export import published_rows

    rows = published_rows()
    assert {r["task"] for r in rows} >= {"whatsup", "mmvp-vlm", "vismin", "bivlc", "eqben"}
    for r in rows:
        assert r["source"]["url"].startswith("https://") and r["source"]["citation"], r["id"]
    counts = _hub.manifest("vismin.json")["category_counts"]  # the labels of the authors' files, with their n
    for r in (r for r in rows if r["task"] == "vismin"):
        assert {k: v["n"] for k, v in r["breakdown"]["category"].items()} == counts, r["id"]
    (eq,) = [r for r in rows if r["task"] == "eqben"]
    assert set(eq["metrics"]) == {"text", "image", "group"} and "n_examples" not in eq  # split not stated: no n


def test_manifests_on_a_moving_branch_say_so():
    for name in ("colorswap", "winoground"):
        m = _hub.manifest(f"{name}.json")
        assert (
            m["revision"] == "main" and m["revision_pinned"] is False and m["revision_note"].startswith("UNPINNED")
        ), name
    for name in ("sugarcrepe_pp", "vismin", "naturalbench", "mmvp_vlm"):
        rev = _hub.manifest(f"{name}.json")["revision"]
        assert len(rev) == 40 and int(rev, 16) >= 0, name
