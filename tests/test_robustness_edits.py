"""experiments/robustness.py's everyday edits: each gives a decodable JPEG of the expected size,
the same bytes for the same image, and changes the pixels it says it changes."""

import io

import numpy as np
import pytest
from PIL import Image

from conftest import load_experiment


@pytest.fixture(scope="module")
def rb():
    return load_experiment("robustness")


def _photo():
    rng = np.random.default_rng(0)
    a = np.clip(rng.normal(120, 40, (90, 120, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def _decode(b):
    with Image.open(io.BytesIO(b)) as im:
        assert im.format == "JPEG"
        return np.asarray(im.convert("RGB"), np.float32)


@pytest.mark.parametrize("name", ["jpeg90", "crop", "bright", "contrast", "saturate", "warm", "sharpen",
                                  "noise", "rotate"])
def test_each_edit_is_a_jpeg_and_the_same_twice(rb, name):
    img = _photo()
    a, b = rb.EDITS[name](img), rb.EDITS[name](img)
    assert a == b
    size = {"crop": (96, 72), "rotate": (108, 81)}.get(name, (120, 90))
    assert _decode(a).shape == (size[1], size[0], 3)


def test_edits_change_what_they_say(rb):
    img = _photo()
    base = _decode(rb.EDITS["jpeg90"](img))
    assert _decode(rb.EDITS["bright"](img)).mean() > base.mean() + 15
    warm = _decode(rb.EDITS["warm"](img))
    assert warm[..., 0].mean() > base[..., 0].mean() + 5 and warm[..., 2].mean() < base[..., 2].mean() - 5
    assert _decode(rb.EDITS["contrast"](img)).std() > base.std() * 1.15
    assert "original" in rb.PERTURBATIONS and set(rb.EDITS) <= set(rb.PERTURBATIONS)


@pytest.mark.parametrize("name,fmt,size", [("shot125", "PNG", (150, 112)), ("shot075", "PNG", (90, 68)),
                                           ("shot075j", "JPEG", (90, 68))])
def test_screenshots_are_the_image_at_another_size_in_their_format(rb, name, fmt, size):
    yy, xx = np.mgrid[0:90, 0:120]
    smooth = np.stack([xx * 2, yy * 2, 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], 2)
    img = Image.fromarray(smooth.astype(np.uint8))  # a picture with no detail finer than scaling keeps
    b = rb.SCREENS[name](img)
    assert b == rb.SCREENS[name](img)
    with Image.open(io.BytesIO(b)) as im:
        assert im.format == fmt and im.size == size
        shown = im.convert("RGB")
    back = np.asarray(shown.resize((120, 90), Image.Resampling.BILINEAR), np.float32)
    assert np.abs(back - smooth).mean() < 4  # the same picture
    assert set(rb.SCREENS) <= set(rb.PERTURBATIONS)


@pytest.mark.parametrize("name,size", [("thumb100", (133, 100)), ("thumb64", (85, 64)), ("thumb40", (53, 40)),
                                       ("square48", (48, 48))])
def test_thumbnails_keep_the_aspect_but_the_squashed_avatar(rb, name, size):
    img = Image.fromarray(np.zeros((300, 400, 3), np.uint8) + 90)  # 400 x 300
    assert _decode(rb.THUMBS[name](img)).shape == (size[1], size[0], 3)
    assert _decode(rb.THUMBS["thumb100"](_photo())).shape == (90, 120, 3)  # never enlarged
    assert set(rb.THUMBS) <= set(rb.PERTURBATIONS)
