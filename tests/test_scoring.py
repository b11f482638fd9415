"""How a score becomes a record: the calibration temperature and the threshold's edge.

Each test here fails under a one-character mutation of the scoring code: labelling with ``>``
instead of ``>=`` the threshold, or leaving the temperature out of ``sigmoid(logit / T)``.
"""

import math

import numpy as np
import pytest

from fakedet import Detector
from fakedet.inference.result import label_for

from conftest import TEMPERATURE, random_image


@pytest.fixture(scope="module")
def images():
    return [random_image((96, 80), seed=s) for s in range(6)]


def test_a_score_equal_to_the_threshold_is_fake():
    assert label_for(0.5, 0.5) == "fake"
    assert label_for(math.nextafter(0.5, 0.0), 0.5) == "real"
    assert label_for(1.0, 1.0) == "fake" and label_for(0.0, 0.0) == "fake"


def test_three_verdicts_edges():
    assert label_for(0.9, 0.9, 0.2) == "fake"
    assert label_for(math.nextafter(0.9, 0.0), 0.9, 0.2) == "uncertain"
    assert label_for(0.2, 0.9, 0.2) == "uncertain"
    assert label_for(math.nextafter(0.2, 0.0), 0.9, 0.2) == "real"


def test_real_needs_every_score_below_its_threshold_when_given():
    # p_any: the highest of all the image's scores (face mode, the whole image gated)
    assert label_for(0.1, 0.9, 0.2, p_any=0.1) == "real"
    assert label_for(0.1, 0.9, 0.2, p_any=math.nextafter(0.2, 0.0)) == "real"
    assert label_for(0.1, 0.9, 0.2, p_any=0.2) == "uncertain"
    assert label_for(0.95, 0.9, 0.2, p_any=0.95) == "fake"
    assert label_for(0.1, 0.9, 0.2, p_any=float("nan")) == "uncertain"  # an unknown score is no evidence of real
    # the two-way rule stays a plain threshold on p_fake
    assert label_for(0.1, 0.5, 0.5, p_any=0.7) == "real" and label_for(0.1, 0.5, None, p_any=0.7) == "real"


def test_detector_labels_a_score_at_its_threshold_fake(tiny_weights, images):
    scores = [r.p_fake for r in Detector.load(tiny_weights, device="cpu", workers=0).predict(images)]
    for image, p in zip(images, scores):
        det = Detector.load(tiny_weights, device="cpu", workers=0, threshold=p)
        r = det.predict(image)[0]
        assert r.p_fake == p and r.label == "fake", (p, r)
        above = Detector.load(tiny_weights, device="cpu", workers=0, threshold=math.nextafter(p, 2.0))
        assert above.predict(image)[0].label == "real"


def test_the_cli_labels_a_score_at_its_threshold_fake(runner, tiny_weights, tmp_path):
    import json

    from fakedet.cli import cli

    path = tmp_path / "a.png"
    random_image((96, 80), seed=3).save(path)
    p = Detector.load(tiny_weights, device="cpu", workers=0).predict(path)[0].p_fake  # all its digits
    r = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", "-f", "jsonl", "-t", repr(p), str(path)])
    assert json.loads(r.stdout)["label"] == "fake", r.stdout


def test_probabilities_are_sigmoid_of_logit_over_temperature(tiny_weights, tiny_weights_calibrated, images):
    import torch

    from fakedet.inference.inputs import as_item
    from fakedet.inference.pipeline import Task, prepare_batch

    det = Detector.load(tiny_weights_calibrated, device="cpu", workers=0)
    assert det.temperature == TEMPERATURE
    decoded = prepare_batch([as_item(x, i) for i, x in enumerate(images)], Task(det.config.preprocess))
    logits = det.forward(torch.from_numpy(np.concatenate([d.views for d in decoded])),
                         torch.from_numpy(np.concatenate([d.patches for d in decoded])))
    expected = torch.sigmoid(logits / TEMPERATURE).tolist()
    got = [r.p_fake for r in det.predict(images)]
    assert got == pytest.approx(expected, abs=1e-6)
    # the same weights at T = 1: the temperature, and only it, changes the probabilities
    plain = [r.p_fake for r in Detector.load(tiny_weights, device="cpu", workers=0).predict(images)]
    assert plain == pytest.approx(torch.sigmoid(logits).tolist(), abs=1e-6)
    assert any(abs(a - b) > 1e-3 for a, b in zip(got, plain))


def test_info_and_labels_use_the_calibrated_probability(tiny_weights_calibrated, images):
    det = Detector.load(tiny_weights_calibrated, device="cpu", workers=0)
    assert det.info()["temperature"] == TEMPERATURE
    for r in det.predict(images):
        assert r.label == label_for(r.p_fake, det.threshold)


# ---------------------------------------------------------------------------- three verdicts
def _verdict_weights(tmp_path, images, **kw):
    """A tiny checkpoint whose 'uncertain' band holds the middle of the images' scores."""
    from conftest import make_tiny_checkpoint

    base = make_tiny_checkpoint(tmp_path / "base.safetensors")
    p = sorted(r.p_fake for r in Detector.load(base, device="cpu", workers=0).predict(images))
    lo, hi = p[1], p[-2]  # two below the band's bottom edge or at it, two at or above the top
    return make_tiny_checkpoint(tmp_path / "v.safetensors", verdicts={"fake": hi, "real": lo, "rule": "test"},
                                **kw), lo, hi


def test_detector_gives_three_verdicts(tmp_path, images):
    path, lo, hi = _verdict_weights(tmp_path, images)
    det = Detector.load(path, device="cpu", workers=0)
    assert det.three_way and (det.threshold, det.real_below) == (hi, lo)
    for r in det.predict(images):
        want = "fake" if r.p_fake >= hi else "real" if r.p_fake < lo else "uncertain"
        assert r.label == want
    labels = {r.label for r in det.predict(images)}
    assert labels == {"fake", "uncertain", "real"}
    # -t gives the plain two-way rule
    two = Detector.load(path, device="cpu", workers=0, threshold=0.5)
    assert not two.three_way and {r.label for r in two.predict(images)} <= {"fake", "real"}


def test_the_cli_counts_uncertain_apart_and_exit_code_ignores_it(runner, tmp_path, images):
    from fakedet.cli import cli

    path, lo, hi = _verdict_weights(tmp_path, images)
    det = Detector.load(path, device="cpu", workers=0)
    files = []
    for i, im in enumerate(images):
        f = tmp_path / f"{i}.png"
        im.save(f)
        files.append((f, det.predict(im)[0].label))
    unsure = [str(f) for f, lab in files if lab == "uncertain"]
    r = runner.invoke(cli, ["scan", "-w", str(path), "-j", "0", "--exit-code", *unsure])
    assert r.exit_code == 0, r.output
    assert all(line.split("\t")[2] == "uncertain" for line in r.stdout.splitlines())
    assert f"0 fake, {len(unsure)} uncertain, 0 real" in r.stderr
    fake = [str(f) for f, lab in files if lab == "fake"]
    assert runner.invoke(cli, ["scan", "-w", str(path), "-j", "0", "--exit-code", *fake]).exit_code == 1


def test_face_mode_without_a_face_uses_the_whole_image_thresholds(tmp_path, images):
    """A face-mode threshold belongs to maxima over faces; an image with no face has only its
    whole-image score, which is compared with the whole-image thresholds."""
    path, lo, hi = _verdict_weights(tmp_path, images, face_verdicts={"fake": 1.0, "real": 1.0})
    whole = Detector.load(path, device="cpu", workers=0).predict(images)
    faces = Detector.load(path, device="cpu", workers=0, faces=True).predict(images)
    for a, b in zip(whole, faces):  # random noise: no face is found
        assert b.faces == [] and b.p_fake == pytest.approx(a.p_fake, abs=1e-6)
        assert b.label == a.label
