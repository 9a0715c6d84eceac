import http.server
import json
import threading
import time

import numpy as np
import pytest

from winoground_eval.core.errors import DataError
from winoground_eval.tasks.winoground import WinogroundTask, tags_from_jsonl
from winoground_eval.testing.winoground_sample import write_winoground_sample


def test_local_folder_and_zip_give_the_same_examples(tmp_path):
    a = WinogroundTask(data_dir=str(write_winoground_sample(tmp_path / "a", 6, seed=1)))
    b = WinogroundTask(data_dir=str(write_winoground_sample(tmp_path / "b", 6, seed=1, as_zip=True)))
    ea, eb = list(a.examples()), list(b.examples())
    assert [e.id for e in ea] == [str(i) for i in range(6)]
    for x, y in zip(ea, eb):
        assert x.captions == y.captions and x.tags == y.tags
        for ix, iy in zip(x.images, y.images):
            assert ix.mode == "RGB" and np.array_equal(np.asarray(ix), np.asarray(iy))
    assert a.info() == b.info()


def test_layout_with_data_subfolder(tmp_path):
    write_winoground_sample(tmp_path / "repo" / "data", 3)
    task = WinogroundTask(data_dir=str(tmp_path / "repo"))
    assert len(task.metadata()) == 3


def test_skip_does_not_load_and_tags(sample_dir):
    task = WinogroundTask(data_dir=str(sample_dir))
    ids = [e.id for e in task.examples(skip={"1", "3"})]
    assert ids == ["0", "2", "4", "5"]
    tags = task.metadata()["1"]
    assert tags["collapsed_tag"] == ["Relation"] and tags["secondary_tag"] == ["Symbolic"]
    assert tags["num_main_preds"] == ["2"] and tags["why_hard"] == []  # the sample gets no Winoground tags


def test_missing_image_names_example_and_file(sample_dir):
    (sample_dir / "images" / "ex_3_img_1.png").unlink()
    task = WinogroundTask(data_dir=str(sample_dir))
    with pytest.raises(DataError, match=r"example 3: image file ex_3_img_1\.\* not found"):
        list(task.examples())


def test_corrupt_image_names_example(sample_dir):
    (sample_dir / "images" / "ex_2_img_0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="example 2: ex_2_img_0"):
        list(WinogroundTask(data_dir=str(sample_dir)).examples())


def test_bad_examples_jsonl(sample_dir):
    p = sample_dir / "examples.jsonl"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:2] + ["{broken"] + lines[3:]) + "\n")
    with pytest.raises(DataError, match=r"examples.jsonl:3 is not valid JSON"):
        WinogroundTask(data_dir=str(sample_dir))
    row = json.loads(lines[0])
    del row["collapsed_tag"]
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="example 0 lacks field.*collapsed_tag"):
        WinogroundTask(data_dir=str(sample_dir))
    row = json.loads(lines[0])
    del row["caption_1"]
    p.write_text(json.dumps(row) + "\n")
    task = WinogroundTask(data_dir=str(sample_dir), limit=1)
    with pytest.raises(DataError, match="example 0: caption_1 is missing"):
        list(task.examples())


def test_not_a_dataset_dir(tmp_path):
    with pytest.raises(DataError, match="holds no examples.jsonl"):
        WinogroundTask(data_dir=str(tmp_path))
    with pytest.raises(DataError, match="is not a directory"):
        WinogroundTask(data_dir=str(tmp_path / "nope"))


def test_count_mismatch_is_an_error_unless_limit(sample_dir):
    # Without its own manifest the copy is checked against Winoground's (400 examples).
    (sample_dir / "wg-eval-manifest.json").unlink()
    with pytest.raises(DataError, match="has 6 examples but its manifest expects 400"):
        WinogroundTask(data_dir=str(sample_dir))
    task = WinogroundTask(data_dir=str(sample_dir), limit=4)
    # the limit relaxes the check and bounds examples(); metadata() stays the full target
    assert [ex.id for ex in task.examples()] == ["0", "1", "2", "3"] and len(task.metadata()) == 6
    assert "limit" not in task.info()  # a limit never changes a score, so it is not part of the run id


def test_tag_count_mismatch(sample_dir):
    man = json.loads((sample_dir / "wg-eval-manifest.json").read_text())
    man["tag_counts"]["collapsed_tag"]["Object"] += 1
    (sample_dir / "wg-eval-manifest.json").write_text(json.dumps(man))
    with pytest.raises(DataError, match="collapsed_tag counts"):
        WinogroundTask(data_dir=str(sample_dir))


def test_why_hard_tags_from_the_shipped_file(tmp_path):
    rows = [
        {"id": i, "tag": "x", "secondary_tag": "", "num_main_preds": 1, "collapsed_tag": "Object"} for i in (0, 3, 4)
    ]
    p = tmp_path / "examples.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tags = tags_from_jsonl(p)
    shipped = json.loads(
        (
            __import__("pathlib").Path(__file__).parents[1] / "data_manifests" / "why_winoground_hard_tags.json"
        ).read_text()
    )
    for i in ("0", "3", "4"):
        want = [{"Non Minimal": "NonCompositional"}.get(t, t) for t in shipped[i]] or ["NoTag"]
        assert tags[i]["why_hard"] == want


# --- the Hugging Face path, without the Hub --------------------------------------------
def test_offline_fails_fast_and_points_to_data_dir(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # closed port: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    t0 = time.monotonic()
    with pytest.raises(DataError, match="--data-dir") as exc:
        WinogroundTask()
    assert time.monotonic() - t0 < 10
    assert "cannot reach the Hugging Face Hub" in str(exc.value)


class _GatedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b'{"error": "Access to dataset facebook/winoground is restricted."}'
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to dataset facebook/winoground is restricted.")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def gated_hub(monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _GatedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read at import time
    yield
    server.shutdown()


def test_gated_dataset_says_how_to_accept_and_never_shows_the_token(gated_hub, monkeypatch):
    secret = "hf_SECRETtoken1234567890"
    monkeypatch.setenv("HF_TOKEN", secret)
    with pytest.raises(DataError) as exc:
        WinogroundTask()
    msg = str(exc.value)
    assert "gated" in msg and "hf auth login" in msg and "Accept its terms" in msg
    assert secret not in msg and secret not in repr(exc.value.__cause__) and exc.value.__cause__ is None
