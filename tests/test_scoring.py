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


def test_detector_labels_a_score_at_its_threshold_fake(tiny_weights, images):
    scores = [r.p_fake for r in Detector.load(tiny_weights, device="cpu", workers=0).predict(images)]
    for image, p in zip(images, scores):
        det = Detector.load(tiny_weights, device="cpu", workers=0, threshold=p)
        r = det.predict(image)[0]
        assert r.p_fake == p and r.label == "fake", (p, r)
        det.threshold = math.nextafter(p, 2.0)
        assert det.predict(image)[0].label == "real"


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
