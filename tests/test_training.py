"""The training recipe's sampling and pseudo-fake makers (scripts/train.py, scripts/decoder_traces.py)."""

import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import decoder_traces  # noqa: E402
import train  # noqa: E402

ITEMS = [("a", 0, "faces"), ("b", 0, "faces"), ("c", 1, "faces"), ("d", 0, "photos"),
         ("e", 1, "gen"), ("f", 1, "gen"), ("g", 1, "gen")]


def cell_totals(items, weights):
    tot = Counter()
    for (_, label, name, make), w in zip(items, weights):
        tot[(name, label, make)] += w
    return tot


def test_sets_and_classes_are_balanced_without_pseudo_fakes():
    items = train.with_pseudo_fakes(ITEMS)
    tot = cell_totals(items, train.balanced_weights(items))
    assert tot[("faces", 0, None)] == pytest.approx(0.25) and tot[("photos", 0, None)] == pytest.approx(0.25)
    assert tot[("faces", 1, None)] == pytest.approx(0.25) and tot[("gen", 1, None)] == pytest.approx(0.25)


def test_pseudo_fakes_take_their_share_of_the_fake_half_only():
    items = train.with_pseudo_fakes(ITEMS, sbi_sets=["faces"], recon=True)
    assert sum(1 for it in items if it[3] == "sbi") == 2  # the two real face images
    assert sum(1 for it in items if it[3] == "recon") == 3  # every real image
    assert all(it[1] == 1 for it in items if it[3])
    w = train.balanced_weights(items, {"sbi": 0.1, "recon": 0.15})
    tot = cell_totals(items, w)
    assert sum(v for k, v in tot.items() if k[1] == 0) == pytest.approx(0.5)
    assert tot[("faces", 1, "sbi")] == pytest.approx(0.1)
    assert tot[("faces", 1, "recon")] + tot[("photos", 1, "recon")] == pytest.approx(0.15)
    assert tot[("faces", 1, None)] == pytest.approx(0.125) and tot[("gen", 1, None)] == pytest.approx(0.125)
    with pytest.raises(ValueError):
        train.balanced_weights(items, {"sbi": 0.3, "recon": 0.3})


def photo(w=67, h=45):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", list(decoder_traces.KINDS))
def test_every_decoder_reconstructs_at_native_size(kind):
    torch.manual_seed(0)
    out = decoder_traces.reconstruct(decoder_traces.AutoEncoder(kind).eval(), photo())
    assert out.size == (67, 45) and out.mode == "RGB"


def test_pseudo_fake_makers_keep_size_and_change_pixels(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(decoder_traces.AutoEncoder("nearest2").state_dict(), str(tmp_path / "nearest2.safetensors"))
    monkeypatch.setattr(train, "_DECODERS", None)
    img = photo(96, 80)
    for local in (0.0, 1.0):
        out = train.decoder_trace(img, random.Random(1), str(tmp_path), local)
        assert out.size == img.size and np.abs(np.asarray(out, float) - np.asarray(img, float)).mean() > 0
    out = train.self_blend(img, random.Random(2))
    assert out.size == img.size


def test_missing_decoders_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="decoder_traces.py"):
        decoder_traces.load_all(tmp_path)


def test_native_crop_keeps_pixels_and_leaves_small_images_whole():
    img = photo(300, 200)
    out = train.native_crop(img, 128, None)
    assert out.size == (128, 128)
    assert np.array_equal(np.asarray(out), np.asarray(img)[36:164, 86:214])  # centred, unresampled
    assert train.native_crop(img, 128, random.Random(0)).size == (128, 128)
    small = photo(100, 90)
    assert train.native_crop(small, 128, None) is small
