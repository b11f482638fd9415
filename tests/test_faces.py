import json
import random

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fakedet import Detector
from fakedet.cli import cli
from fakedet.model.faces import MTCNN, face_crop, find_faces

from conftest import SHARED_DATA, random_image, write_image

LFW = SHARED_DATA / "lfw_faceswap"


def pasted_face(seed=0):
    """A test-split LFW face crop pasted at a known place into a larger generated background."""
    import csv

    rows = [r for r in csv.DictReader(open(LFW / "manifest.csv")) if r["split"] == "test" and r["label"] == "0"]
    face = Image.open(LFW / random.Random(seed).choice(rows)["file"]).convert("RGB")
    bg = random_image((900, 700), seed=seed).resize((900, 700))
    x, y = 500, 150
    bg.paste(face, (x, y))
    return bg, (x, y, x + face.width, y + face.height)


@pytest.mark.skipif(not LFW.is_dir(), reason="needs ../shared/data")
def test_detects_a_pasted_face_at_its_place():
    img, (x0, y0, x1, y1) = pasted_face()
    found = find_faces(img)
    assert found, "no face found"
    (bx0, by0, bx1, by1), score = found[0]
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    assert x0 <= cx <= x1 and y0 <= cy <= y1 and score > 0.9


def test_no_face_in_noise():
    assert find_faces(random_image((300, 200))) == []


def test_face_crop_stays_inside_and_has_fixed_size():
    img = random_image((400, 300))
    crop = face_crop(img, [350, 250, 400, 300])  # at the corner: shifted inside
    assert crop.size == (224, 224)


def test_mtcnn_weights_load_strictly():
    det = MTCNN.load()
    assert sum(p.numel() for p in det.parameters()) > 400_000


@pytest.mark.skipif(not LFW.is_dir(), reason="needs ../shared/data")
def test_face_mode_records(tiny_weights, tmp_path):
    img, _ = pasted_face(1)
    img.save(tmp_path / "face.jpg", quality=95)
    write_image(tmp_path / "noface.png", "PNG", size=(200, 150))
    (tmp_path / "zbroken.jpg").write_bytes(b"garbage")
    r = CliRunner().invoke(cli, ["scan", "--faces", "-f", "jsonl", "-w", str(tiny_weights), "-j", "0", str(tmp_path)])
    assert r.exit_code == 3, r.output
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["path"].rsplit("/", 1)[1] for x in recs] == ["face.jpg", "noface.png", "zbroken.jpg"]
    face, noface, broken = recs
    assert len(face["faces"]) >= 1 and face["note"] is None
    box = face["faces"][0]["box"]
    assert len(box) == 4 and box[0] < box[2] and box[1] < box[3]
    assert face["p_fake"] == pytest.approx(max([face["p_whole"]] + [f["p_fake"] for f in face["faces"]]), abs=1e-6)
    assert noface["faces"] == [] and "no face" in noface["note"] and noface["p_fake"] == noface["p_whole"]
    assert broken["error"] and broken["p_fake"] is None
    assert set(broken) == set(face)  # every jsonl line has the same keys in face mode
    assert broken["faces"] is None and broken["p_whole"] is None and broken["note"] is None
    # tsv keeps its four columns in face mode
    r = CliRunner().invoke(cli, ["scan", "--faces", "-w", str(tiny_weights), "-j", "0", str(tmp_path / "face.jpg")])
    assert r.exit_code == 0 and len(r.stdout.rstrip("\n").split("\t")) == 4
    # a persona test: "0 images without a face scored as a whole (whole-image thresholds: ...)"
    assert "a face found in every image scored" in r.stderr and "without a face" not in r.stderr
    r = CliRunner().invoke(cli, ["scan", "--faces", "-w", str(tiny_weights), "-j", "0", str(tmp_path / "zbroken.jpg")])
    assert r.exit_code == 3 and "no image scored" in r.stderr and "every image" not in r.stderr


def test_face_mode_parquet_keeps_the_face_fields(tiny_weights, tmp_path):
    """-f parquet --faces dropped faces, p_whole and note without a word: its rows now hold
    them (faces as JSON text) as jsonl's records do; a scan without --faces keeps its columns."""
    pq = pytest.importorskip("pyarrow.parquet")
    img = random_image((160, 120), seed=3)
    img.paste(Image.new("RGB", (40, 40), (200, 160, 140)), (60, 40))
    img.save(tmp_path / "a.jpg", quality=95)
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    args = ["scan", "--faces", "-w", str(tiny_weights), "-j", "0", str(tmp_path)]
    r = CliRunner().invoke(cli, [*args, "-f", "jsonl"])
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    out = tmp_path / "r.parquet"
    r = CliRunner().invoke(cli, [*args, "-f", "parquet", "-o", str(out)])
    assert r.exit_code == 3, r.output
    rows = pq.read_table(out).to_pylist()
    assert [row["path"] for row in rows] == [x["path"] for x in recs]
    for row, rec in zip(rows, recs):
        assert row["p_whole"] == pytest.approx(rec["p_whole"], abs=1e-6) if rec["p_whole"] is not None \
            else row["p_whole"] is None
        assert (None if row["faces"] is None else len(json.loads(row["faces"]))) == \
            (None if rec["faces"] is None else len(rec["faces"]))
        assert row["note"] == rec["note"]
    assert rows[0]["faces"] is not None and rows[1]["faces"] is None  # the broken file
    plain = tmp_path / "p.parquet"
    CliRunner().invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", "-f", "parquet", "-o", str(plain),
                             str(tmp_path)])
    assert pq.read_table(plain).column_names == ["path", "p_fake", "label", "error", "cropped", "framed", "animated",
                                                 "evidence", "label_by", "model_label"]


def test_face_mode_error_records_have_the_face_keys(tiny_weights, tmp_path):
    write_image(tmp_path / "a.png", "PNG", size=(120, 90))
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    r = CliRunner().invoke(cli, ["scan", "--faces", "-f", "jsonl", "-w", str(tiny_weights), "-j", "0", str(tmp_path)])
    assert r.exit_code == 3, r.output
    good, bad = [json.loads(line) for line in r.stdout.splitlines()]
    assert set(good) == set(bad) == {"path", "p_fake", "label", "error", "cropped", "framed", "animated", "faces",
                                     "p_whole",
                                     "note", "evidence", "label_by", "model_label"}
    assert bad["faces"] is None and bad["error"]
    # the summary gives the thresholds of the images without a face too, not only face mode's
    fake_at, real_below = Detector.load(tiny_weights, device="cpu").cutoffs
    whole = (f"fake at >= {fake_at:.6f}" if real_below < fake_at else f"threshold {fake_at:.6f}")
    # and names the images: a face the finder missed is told apart from the others
    assert (f"1 image ({tmp_path / 'a.png'}) without a face found scored as a whole (whole-image thresholds: "
            f"{whole}") in r.stderr
    plain = CliRunner().invoke(cli, ["scan", "-f", "jsonl", "-w", str(tiny_weights), "-j", "0", str(tmp_path)])
    keys = {"path", "p_fake", "label", "error", "cropped", "framed", "animated", "evidence", "label_by", "model_label"}
    assert all(set(json.loads(line)) == keys for line in plain.stdout.splitlines())


def test_face_mode_same_results_with_workers(tiny_weights, tmp_path):
    paths = [str(write_image(tmp_path / f"{i}.png", "PNG", size=(120, 90), seed=i)) for i in range(5)]
    a = Detector.load(tiny_weights, device="cpu", faces=True).predict(paths, workers=0, batch_size=2)
    b = Detector.load(tiny_weights, device="cpu", faces=True).predict(paths, workers=2, batch_size=2)
    assert [(r.path, r.faces) for r in a] == [(r.path, r.faces) for r in b]
    assert np.allclose([r.p_fake for r in a], [r.p_fake for r in b], atol=1e-5)
