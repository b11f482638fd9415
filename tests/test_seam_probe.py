"""The training-free seam score (experiments/seam_probe.py): its features see a face whose
texture differs from the frame around it, and see nothing where the texture is the same."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import load_experiment

cv2 = pytest.importorskip("cv2")  # comes with invisible-watermark (test extra)
sp = load_experiment("seam_probe")


def noise_face(seed, blur_inside=False):
    """A 256 px grey noise image with 468 'landmarks' filling an ellipse in its centre; with
    ``blur_inside`` the ellipse is blurred, as a resampled pasted face would be."""
    r = np.random.default_rng(seed)
    img = r.normal(128, 30, (256, 256)).clip(0, 255).astype(np.uint8)
    t = r.uniform(0, 2 * np.pi, 468)
    d = np.sqrt(r.uniform(0, 1, 468))
    lms = np.stack([128 + 60 * d * np.cos(t), 128 + 80 * d * np.sin(t)], 1).astype(np.float32)
    if blur_inside:
        blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1.5)))
        inside = np.zeros_like(img)
        cv2.fillConvexPoly(inside, cv2.convexHull(lms).astype(np.int32), 1)
        img = np.where(inside.astype(bool), blurred, img)
    return Image.fromarray(img).convert("RGB"), lms


def test_masks_are_inside_outside_and_along_the_outline():
    _, lms = noise_face(0)
    inner, ring, band = sp.masks(lms, 256, 256)
    assert inner.sum() > 0 and ring.sum() > 0 and band.sum() > 0
    assert not (inner & ring).any()
    assert inner[128, 128] and not ring[128, 128] and not band[128, 128]
    assert not inner[2, 2] and not ring[2, 2]  # far outside the face: in none of them


def test_a_blurred_face_in_a_sharp_frame_stands_out_and_an_untouched_one_does_not():
    plain = sp.features(*noise_face(1))
    pasted = sp.features(*noise_face(1, blur_inside=True))
    assert abs(plain["inner_ring"]) < 0.1 and abs(plain["grad"]) < 0.1
    assert pasted["inner_ring"] < -0.5 and pasted["grad"] < -0.3


def test_no_features_when_the_face_has_no_room():
    img, lms = noise_face(2)
    assert sp.features(img, lms * 0.02) == {}  # a face of a few pixels: masks too small


def test_two_sided_distance_ranks_fakes_that_lie_either_side_of_the_reals():
    """Fakes whose features lie away from the other sets' real faces, in either direction, are
    ranked above the reals; the held-out set's own reals take no part in the reference."""
    r = np.random.default_rng(0)

    def recs(n, shift, label):
        sign = np.where(np.arange(n) % 2, 1.0, -1.0)[:, None]  # half one side, half the other
        f = r.normal(0, 1, (n, 3)) + sign * shift
        return [{"label": label, "group": "g", **dict(zip(sp.FEATURES, row))} for row in f]

    data = {(n, s): recs(60, 0.0, 0) + recs(60, 4.0, 1) for n in sp.SETS for s in sp.SPLITS}
    report = sp.two_sided(data)
    for name in sp.SETS:
        assert report[name]["val"]["distance"] > 0.95
    data = {k: recs(60, 0.0, 0) + recs(60, 0.0, 1) for k in data}  # fakes like the reals
    assert all(abs(v["test"]["distance"] - 0.5) < 0.15 for v in sp.two_sided(data).values())


def test_signed_score_takes_its_direction_from_the_other_sets_only():
    """Each set's signs come from the other sets' val splits: a set whose fakes lie the same
    way as the others' is ranked well, one whose fakes lie the other way is ranked inverted
    (what the signed probe found for LFW), however clearly its own val split shows its way."""
    r = np.random.default_rng(1)

    def recs(n, shift, label):
        f = r.normal(0, 1, (n, 3)) + shift
        return [{"label": label, "group": "g", **dict(zip(sp.FEATURES, row))} for row in f]

    data = {(n, s): recs(80, 0.0, 0) + recs(80, 3.0, 1) for n in sp.SETS for s in sp.SPLITS}
    assert all(v["test"]["combined"] > 0.95 for v in sp.signed(data).values())
    last = sp.SETS[-1]  # its fakes the other way, in both its splits
    data.update({(last, s): recs(80, 0.0, 0) + recs(80, -3.0, 1) for s in sp.SPLITS})
    assert sp.signed(data)[last]["test"]["combined"] < 0.05
