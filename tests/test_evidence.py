"""Provenance evidence in scans, the API and eval: what it does to the verdict and the records.
(The reader itself: tests/test_provenance.py and tests/test_watermark.py.)"""

import json

import pytest
from click.testing import CliRunner
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from fakedet.cli import cli

from conftest import random_image

A1111 = ("a portrait of a woman, detailed\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
         "CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly")


@pytest.fixture
def images(tmp_path):
    """A PNG with AUTOMATIC1111's generation parameters, the same pixels without them, and a file
    that cannot be decoded."""
    img = random_image((96, 96), seed=7)
    info = PngInfo()
    info.add_text("parameters", A1111)
    img.save(tmp_path / "generated.png", pnginfo=info)
    img.save(tmp_path / "plain.png")
    (tmp_path / "z_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return tmp_path


def scan(tiny_weights, *args):
    return CliRunner().invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", *args])


def test_evidence_of_generation_labels_fake_and_keeps_the_model_score(tiny_weights, images):
    # -t 1: the model alone labels both images real
    r = scan(tiny_weights, "-t", "1", "-f", "jsonl", str(images))
    gen, plain, broken = [json.loads(line) for line in r.stdout.splitlines()]
    assert gen["label"] == "fake" and gen["label_by"] == "evidence"
    assert plain["label"] == "real" and plain["label_by"] == "model" and plain["evidence"] == []
    assert any(e["kind"] == "parameters" and e["says"] == "generated" for e in gen["evidence"])
    assert broken["error"] and broken["label"] is None and broken["label_by"] is None
    alone = json.loads(scan(tiny_weights, "-t", "1", "-f", "jsonl", str(images / "plain.png")).stdout)
    assert gen["p_fake"] == plain["p_fake"] == alone["p_fake"]  # p_fake stays the model's
    assert (f"1 image with provenance evidence of how it was made, 1 labelled fake by it ({images / 'generated.png'}); "
            "-f jsonl (or json, parquet, --report) shows what it says") in r.stderr


def test_the_reports_summary_has_the_provenance_line(tiny_weights, images, tmp_path):
    import html
    import re

    report = tmp_path / "r.html"
    r = scan(tiny_weights, "-t", "1", "--report", str(report), str(images))
    summary = json.loads(html.unescape(re.search(r'id="fakedet-summary">([^<]*)<', report.read_text("utf-8"))
                                       .group(1)))["summary"]
    line = next(x for x in r.stderr.splitlines() if "provenance evidence of how" in x).removeprefix("fakedet: ")
    assert line in summary.splitlines()


def test_no_provenance_leaves_the_verdict_to_the_model(tiny_weights, images):
    r = scan(tiny_weights, "-t", "1", "-f", "jsonl", "--no-provenance", str(images / "generated.png"))
    rec = json.loads(r.stdout)
    assert rec["label"] == "real" and set(rec) == {"path", "p_fake", "label", "error", "cropped", "framed",
                                                              "animated"}
    assert "provenance" not in r.stderr


def test_tsv_and_csv_keep_four_columns_with_the_evidence_verdict(tiny_weights, images):
    r = scan(tiny_weights, "-t", "1", str(images / "generated.png"))
    assert r.stdout.rstrip("\n").split("\t")[2:] == ["fake", ""]
    r = scan(tiny_weights, "-t", "1", "-f", "csv", str(images / "generated.png"))
    assert r.stdout.splitlines()[0] == "path,p_fake,label,error"


def test_the_api_reports_evidence_and_the_models_own_label(tiny_weights, images):
    from fakedet import Detector

    det = Detector.load(tiny_weights, device="cpu", threshold=1.0, workers=0)
    gen, plain = det.predict([str(images / "generated.png"), (images / "plain.png").read_bytes()])
    assert gen.label == "fake" and gen.label_by == "evidence" and gen.model_label == "real"
    assert plain.label == plain.model_label == "real" and plain.evidence == []
    # a printed result says why a low score is labelled fake (a persona's script printed it)
    assert "label='fake'" in repr(gen) and "label_by='evidence'" in repr(gen)
    off = Detector.load(tiny_weights, device="cpu", threshold=1.0, workers=0, provenance=False)
    (r,) = off.predict([str(images / "generated.png")])
    assert r.label == "real" and r.evidence is None and "evidence" not in r.to_dict()


def test_eval_counts_evidence_apart_from_the_models_figures(tiny_weights, images, tmp_path):
    root = tmp_path / "set"
    info = PngInfo()
    info.add_text("prompt", "{not json")  # an item that says nothing (says None): not evidence
    random_image((96, 96), seed=9).save(images / "odd.png", pnginfo=info)
    for label, name in (("real", "generated.png"), ("real", "plain.png"), ("fake", "plain.png"), ("fake", "odd.png")):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{label}-{name}").write_bytes((images / name).read_bytes())
    r = CliRunner().invoke(cli, ["eval", "-w", str(tiny_weights), "-j", "0", "-t", "1", "--json", str(root)])
    assert r.exit_code == 0, r.output
    (s,) = json.loads(r.stdout)["sets"].values()
    assert s["fpr"] == 0.0  # the real image with generation parameters: the model said real
    assert s["provenance_evidence"] == {"real": {"any": 1, "generated": 1}, "fake": {"any": 0, "generated": 0}}
    r = CliRunner().invoke(cli, ["eval", "-w", str(tiny_weights), "-j", "0", "-t", "1", str(root)])
    assert "provenance evidence on 1 real images (1 saying generated)" in r.stdout


def test_a_stable_diffusion_watermark_in_a_png_labels_fake_and_a_jpeg_copy_is_not_read(tiny_weights, tmp_path):
    imwatermark = pytest.importorskip("imwatermark")
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512] / 512
    rgb = np.clip(np.stack([60 + 120 * xx, 90 + 80 * yy, 140 - 70 * xx * yy], -1)
                  + rng.normal(0, 48, (512, 512, 3)), 0, 255).astype(np.uint8)
    enc = imwatermark.WatermarkEncoder()
    enc.set_watermark("bytes", b"StableDiffusionV1")  # as SD 1.x's txt2img.py does
    marked = enc.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "dwtDct")[:, :, ::-1]
    Image.fromarray(np.ascontiguousarray(marked)).save(tmp_path / "sd.png")
    Image.fromarray(np.ascontiguousarray(marked)).save(tmp_path / "sd.jpg", quality=90)
    r = scan(tiny_weights, "-t", "1", "-f", "jsonl", str(tmp_path / "sd.png"), str(tmp_path / "sd.jpg"))
    png, jpg = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["kind"] for e in png["evidence"]] == ["watermark"] and png["label_by"] == "evidence"
    assert "SD 1.x" in png["evidence"][0]["detail"] and png["label"] == "fake"
    assert jpg["evidence"] == [] and jpg["label"] == "real"


def test_ci_installs_the_extras_the_provenance_tests_need():
    """The C2PA and watermark tests skip without their extras; in CI they must run."""
    import importlib
    import os

    if not os.environ.get("CI"):
        pytest.skip("outside CI the c2pa and watermark extras are optional")
    for name in ("c2pa", "cryptography", "imwatermark", "cv2"):
        importlib.import_module(name)


def test_explain_draws_the_verdict_a_scan_prints_for_evidence_of_generation(tiny_weights, images):
    from fakedet import Detector
    from fakedet.inference.explain import explain

    det = Detector.load(tiny_weights, device="cpu", threshold=1.0, workers=0, provenance=False)
    _, gen = explain(det, str(images / "generated.png"), grid=2, provenance=True)
    assert gen.label == "fake" and gen.label_by == "evidence"
    assert any(e["kind"] == "parameters" and e["says"] == "generated" for e in gen.evidence)
    _, plain = explain(det, (images / "plain.png").read_bytes(), grid=2, provenance=True)
    assert plain.label == "real" and plain.label_by == "model" and plain.evidence == []
    assert gen.p_fake == plain.p_fake  # the heatmap and p_fake stay the model's
    _, off = explain(det, str(images / "generated.png"), grid=2)  # as the detector: loaded without
    assert off.label == "real" and off.evidence is None
    on = Detector.load(tiny_weights, device="cpu", threshold=1.0, workers=0)
    assert explain(on, str(images / "generated.png"), grid=2)[1].label_by == "evidence"


def test_explain_command_draws_the_provenance_verdict_unless_told_not_to(tiny_weights, images, tmp_path,
                                                                       monkeypatch):
    import fakedet.inference.explain as mod

    seen = []
    real_explain = mod.explain

    def spy(*a, **k):
        img, ex = real_explain(*a, **k)
        seen.append((ex.label, ex.label_by))
        return img, ex

    monkeypatch.setattr(mod, "explain", spy)
    for extra in ([], ["--no-provenance"]):
        r = CliRunner().invoke(cli, ["explain", "-w", str(tiny_weights), "--grid", "2", "--no-faces",
                                     "-o", str(tmp_path / "out"), *extra, str(images / "generated.png")])
        assert r.exit_code == 0, r.output
    assert seen == [("fake", "evidence"), (seen[1][0], "model")]


def test_items_that_say_nothing_are_not_counted_as_evidence(tiny_weights, tmp_path):
    """A PNG whose generation-parameters text cannot be read gets an item with says None (listed
    in jsonl); the summary counts only images with evidence that says something."""
    info = PngInfo()
    info.add_text("prompt", "{not json")
    random_image((96, 96), seed=8).save(tmp_path / "odd.png", pnginfo=info)
    r = scan(tiny_weights, "-t", "1", "-f", "jsonl", str(tmp_path / "odd.png"))
    rec = json.loads(r.stdout)
    assert [e["says"] for e in rec["evidence"]] == [None] and rec["label_by"] == "model"
    assert "provenance evidence" not in r.stderr
