import json
from pathlib import Path

from winoground_eval.cli.main import main
from winoground_eval.results.scorefile import read_score_file

REF = Path(__file__).parent / "data" / "reference_scores"


def test_metrics_json_from_a_reference_file(capsys):
    assert main(["metrics", "--task", "winoground", "--scores", str(REF / "clip_b32.jsonl"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert round(r["metrics"]["text"] * 100, 2) == 30.75 and round(r["metrics"]["image"] * 100, 2) == 10.25
    assert r["n_examples"] == 400 and set(r["ci95"]) == {"text", "image", "group"}
    assert r["breakdown"] == {}  # without --metadata: overall only


def test_metrics_with_metadata_breakdown(tmp_path, capsys):
    # Winoground's metadata is not redistributable: build a stand-in with the real ids and a
    # known tag assignment, then check the breakdown against a direct computation.
    scores = read_score_file(REF / "clip_l14.jsonl")
    rows = [
        {
            "id": int(i),
            "tag": "t",
            "secondary_tag": "Symbolic" if int(i) % 10 == 0 else "",
            "num_main_preds": 1 + int(i) % 2,
            "collapsed_tag": ("Object", "Relation", "Both")[int(i) % 3],
        }
        for i in scores
    ]
    meta = tmp_path / "examples.jsonl"
    meta.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        main(
            [
                "metrics",
                "--task",
                "winoground",
                "--scores",
                str(REF / "clip_l14.jsonl"),
                "--metadata",
                str(meta),
                "--json",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)
    objects = [i for i in scores if int(i) % 3 == 0]
    text = sum(scores[i][0, 0] > scores[i][0, 1] and scores[i][1, 1] > scores[i][1, 0] for i in objects) / len(objects)
    assert r["breakdown"]["collapsed_tag"]["Object"]["text"] == text
    assert r["breakdown"]["collapsed_tag"]["Object"]["n"] == len(objects)
    assert r["breakdown"]["secondary_tag"]["Symbolic"]["n"] == 40
    assert set(r["breakdown"]["num_main_preds"]) == {"1", "2"}
    assert sum(v["n"] for v in r["breakdown"]["why_hard"].values()) >= 400  # every id has >= 1 tag (or NoTag)


def test_metrics_rejects_bad_file_and_mismatched_metadata(tmp_path, capsys):
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"label": "0_c0_i0", "score": 1}\n{"label": "0_c0_i0", "score": 1}\n')
    assert main(["metrics", "--task", "winoground", "--scores", str(bad)]) == 3
    assert "duplicate label '0_c0_i0'" in capsys.readouterr().err
    meta = tmp_path / "examples.jsonl"
    meta.write_text(json.dumps({"id": 0, "collapsed_tag": "Object"}) + "\n")
    assert (
        main(["metrics", "--task", "winoground", "--scores", str(REF / "ofa_medium.jsonl"), "--metadata", str(meta)])
        == 3
    )
    assert "disagree" in capsys.readouterr().err


def test_metrics_table(capsys):
    assert main(["metrics", "--task", "winoground", "--scores", str(REF / "ofa_medium.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "22.75" in text and "7 examples hold tied scores" in text
