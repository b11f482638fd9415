"""Training (fakedet.training): sampling, pseudo-fake makers, augmentation and the loop's tricks."""

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakedet.model import checkpoint as ckpt
from fakedet.training import TrainingError, decoders, resolve, train
from fakedet.training.augment import augment, face_crop, native_crop, reframe
from fakedet.training.datasets import TrainSet, balanced_weights, load_sets, with_pseudo_fakes
from fakedet.training.domain import DomainHeads
from fakedet.training.selfblend import face_mask, perturbed_copy, self_blend, self_blend_v2

ITEMS = [("a", 0, "faces"), ("b", 0, "faces"), ("c", 1, "faces"), ("d", 0, "photos"),
         ("e", 1, "gen"), ("f", 1, "gen"), ("g", 1, "gen")]


def cell_totals(items, weights):
    tot = Counter()
    for (_, label, name, make), w in zip(items, weights):
        tot[(name, label, make)] += w
    return tot


def test_sets_and_classes_are_balanced_without_pseudo_fakes():
    items = with_pseudo_fakes(ITEMS)
    tot = cell_totals(items, balanced_weights(items))
    assert tot[("faces", 0, None)] == pytest.approx(0.25) and tot[("photos", 0, None)] == pytest.approx(0.25)
    assert tot[("faces", 1, None)] == pytest.approx(0.25) and tot[("gen", 1, None)] == pytest.approx(0.25)


def test_pseudo_fakes_take_their_share_of_the_fake_half_only():
    items = with_pseudo_fakes(ITEMS, sbi_sets=["faces"], recon=True)
    assert sum(1 for it in items if it[3] == "sbi") == 2  # the two real face images
    assert sum(1 for it in items if it[3] == "recon") == 3  # every real image
    assert all(it[1] == 1 for it in items if it[3])
    w = balanced_weights(items, {"sbi": 0.1, "recon": 0.15})
    tot = cell_totals(items, w)
    assert sum(v for k, v in tot.items() if k[1] == 0) == pytest.approx(0.5)
    assert tot[("faces", 1, "sbi")] == pytest.approx(0.1)
    assert tot[("faces", 1, "recon")] + tot[("photos", 1, "recon")] == pytest.approx(0.15)
    assert tot[("faces", 1, None)] == pytest.approx(0.125) and tot[("gen", 1, None)] == pytest.approx(0.125)
    with pytest.raises(ValueError):
        balanced_weights(items, {"sbi": 0.3, "recon": 0.3})



def test_set_weights_spread_a_pseudo_fake_share_unevenly_and_leave_the_rest_alone():
    items = with_pseudo_fakes(ITEMS + [("p/c.jpg", 0, "photos")], sbi_sets=["faces", "photos"])
    even = cell_totals(items, balanced_weights(items, {"sbi": 0.2}))
    tot = cell_totals(items, balanced_weights(items, {"sbi": 0.2}, {"sbi": {"photos": 3}}))
    assert even[("faces", 1, "sbi")] == pytest.approx(0.1) and even[("photos", 1, "sbi")] == pytest.approx(0.1)
    assert tot[("faces", 1, "sbi")] == pytest.approx(0.05) and tot[("photos", 1, "sbi")] == pytest.approx(0.15)
    assert all(tot[k] == pytest.approx(even[k]) for k in even if k[2] != "sbi")  # reals, genuine fakes
    assert sum(tot.values()) == pytest.approx(1.0)
    assert balanced_weights(items, {"sbi": 0.2}, {"sbi": {}}) == balanced_weights(items, {"sbi": 0.2})


def test_real_share_moves_the_real_half_and_the_genuine_fakes_take_the_rest():
    items = with_pseudo_fakes(ITEMS, sbi_sets=["faces"])
    tot = cell_totals(items, balanced_weights(items, {"sbi": 0.3}, None, 0.35))
    assert tot[("faces", 0, None)] + tot[("photos", 0, None)] == pytest.approx(0.35)
    assert tot[("faces", 0, None)] == pytest.approx(tot[("photos", 0, None)])
    assert tot[("faces", 1, "sbi")] == pytest.approx(0.3)
    assert tot[("faces", 1, None)] + tot[("gen", 1, None)] == pytest.approx(0.35)
    assert balanced_weights(items, {"sbi": 0.3}, None, 0.5) == balanced_weights(items, {"sbi": 0.3})
    for bad in (0.0, 1.0, 0.7):  # 0.7 leaves nothing for the genuine fakes beside 0.3 of self-blends
        with pytest.raises(ValueError):
            balanced_weights(items, {"sbi": 0.3}, None, bad)


def test_pseudo_fakes_alone_make_the_whole_fake_half():
    reals = [it for it in ITEMS if it[1] == 0]  # what a pseudo_only recipe keeps
    items = with_pseudo_fakes(reals, sbi_sets=["faces"], recon=True)
    tot = cell_totals(items, balanced_weights(items, {"sbi": 0.25, "recon": 0.25}))
    assert tot[("faces", 1, "sbi")] == pytest.approx(0.25)
    assert tot[("faces", 1, "recon")] + tot[("photos", 1, "recon")] == pytest.approx(0.25)
    assert sum(tot.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError):  # shares that leave part of the fake half to nothing
        balanced_weights(items, {"sbi": 0.1, "recon": 0.15})


def photo(w=67, h=45):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", list(decoders.KINDS))
def test_every_decoder_reconstructs_at_native_size(kind):
    torch.manual_seed(0)
    out = decoders.reconstruct(decoders.AutoEncoder(kind).eval(), photo())
    assert out.size == (67, 45) and out.mode == "RGB"


def test_pseudo_fake_makers_keep_size_and_change_pixels(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(decoders.AutoEncoder("nearest2").state_dict(), str(tmp_path / "nearest2.safetensors"))
    monkeypatch.setattr(decoders, "_DECODERS", None)
    img = photo(96, 80)
    for local in (0.0, 1.0):
        out = decoders.decoder_trace(img, random.Random(1), str(tmp_path), local)
        assert out.size == img.size and np.abs(np.asarray(out, float) - np.asarray(img, float)).mean() > 0
    out = self_blend(img, random.Random(2))
    assert out.size == img.size


def test_face_mask_is_soft_and_centred_on_the_face():
    box = (40, 30, 80, 90)
    for seed in range(10):
        m = face_mask(120, 140, random.Random(seed), box)
        assert m.shape == (140, 120) and m.min() >= 0 and m.max() <= 1
        assert m[60, 60] > 0.9  # the middle of the face
        assert m[:10].max() < 0.05 and m[:, :15].max() < 0.05 and m[-10:].max() < 0.05  # far outside
        assert ((m > 0.05) & (m < 0.95)).any()  # a soft edge, not a hard cut


def test_self_blend_v2_changes_the_face_and_never_leaves_black_borders():
    img = photo(96, 112)
    orig = np.asarray(img, float)
    changed = 0
    for seed in range(30):
        out = np.asarray(self_blend_v2(img, random.Random(seed), (20, 20, 76, 92)), float)
        assert out.shape == orig.shape
        changed += np.abs(out - orig).mean() > 0.5
        # a moved copy must not drag zeros in from outside the frame
        for edge in (out[0], out[-1], out[:, 0], out[:, -1]):
            assert edge.mean() > 40
    assert changed >= 25
    assert self_blend_v2(img, random.Random(0)).size == img.size  # no face box: centre


def test_missing_decoders_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiments/decoder_traces.py"):
        decoders.load_all(tmp_path)


def test_native_crop_keeps_pixels_and_leaves_small_images_whole():
    img = photo(300, 200)
    out = native_crop(img, 128, None)
    assert out.size == (128, 128)
    assert np.array_equal(np.asarray(out), np.asarray(img)[36:164, 86:214])  # centred, unresampled
    assert native_crop(img, 128, random.Random(0)).size == (128, 128)
    small = photo(100, 90)
    assert native_crop(small, 128, None) is small


def test_optional_augmentations_shrink_or_sharpen_and_leave_older_recipes_alone():
    img = photo(200, 160)
    base = {"p_crop": 0, "p_resize": 0, "p_blur": 0, "p_noise": 0, "p_jpeg": 0, "p_webp": 0, "p_colour": 0}
    for seed in range(5):
        # The new keys absent or zero: the same random draws, so the same image, as before.
        a = augment(img, random.Random(seed), dict(base, p_resize=0.5, p_jpeg=0.5), 32)
        b = augment(img, random.Random(seed), dict(base, p_resize=0.5, p_jpeg=0.5,
                                                          p_downscale=0, p_sharpen=0), 32)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        small = augment(img, random.Random(seed), dict(base, p_downscale=1.0), 32)
        assert 0.35 * 200 - 1 <= small.size[0] <= 0.8 * 200 and small.size[1] < 160
        sharp = augment(img, random.Random(seed), dict(base, p_sharpen=1.0), 32)
        flipped = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # flips are drawn regardless
        assert sharp.size == img.size
        assert not any(np.array_equal(np.asarray(sharp), np.asarray(x)) for x in (img, flipped))
    tiny = augment(photo(40, 40), random.Random(0), dict(base, p_downscale=1.0), 32)
    assert min(tiny.size) >= 32


def test_reframing_zooms_in_or_out_keeps_the_size_floor_and_leaves_older_recipes_alone():
    img = photo(240, 200)
    base = {"p_crop": 0, "p_resize": 0, "p_blur": 0, "p_noise": 0, "p_jpeg": 0, "p_webp": 0, "p_colour": 0}
    kinds = set()
    for seed in range(20):
        a = augment(img, random.Random(seed), dict(base, p_jpeg=0.5), 32)
        b = augment(img, random.Random(seed), dict(base, p_jpeg=0.5, p_frame=0), 32)
        assert np.array_equal(np.asarray(a), np.asarray(b))  # off: the same draws as before
        out = reframe(img, random.Random(seed), 32)
        if out.size == img.size:  # zoomed out: the picture shrunk onto a blurred copy of itself
            assert not np.array_equal(np.asarray(out), np.asarray(img))
            kinds.add("out")
        else:  # zoomed in: an unresampled crop of 20-60 % of the area
            assert 0.2 * 240 * 200 * 0.9 <= out.size[0] * out.size[1] <= 0.6 * 240 * 200
            arr, sub = np.asarray(img), np.asarray(out)
            assert any(np.array_equal(arr[y:y + sub.shape[0], x:x + sub.shape[1]], sub)
                       for y in range(0, 201 - sub.shape[0]) for x in range(0, 241 - sub.shape[1]))
            kinds.add("in")
    assert kinds == {"in", "out"}
    tiny = photo(40, 40)
    assert min(reframe(tiny, random.Random(1), 32).size) >= 32


def test_face_crop_is_a_square_around_the_face_kept_inside_the_image():
    img = photo(300, 200)
    arr = np.asarray(img)
    for seed in range(10):
        out = face_crop(img, (100, 50, 160, 110), random.Random(seed))  # a 60 px face
        w, h = out.size
        assert w == h and 72 <= w <= 96  # 1.2-1.6 x 60
        x = y = None
        for y in range(0, 201 - h):
            for x in range(0, 301 - w):
                if np.array_equal(arr[y:y + h, x:x + w], np.asarray(out)):
                    break
            else:
                continue
            break
        assert x <= 100 and x + w >= 160 and y <= 50 and y + h >= 110  # the face is inside
    edge = face_crop(img, (250, 150, 300, 200), random.Random(0))  # at the corner: moved inside
    assert edge.size[0] == edge.size[1] <= 200
    big = face_crop(img, (0, 0, 300, 200), random.Random(0))  # larger than the image: its height
    assert big.size == (200, 200)


def _tiny_sets(root: Path):
    rng = np.random.default_rng(0)
    for name in ("faces", "gen"):
        rows = ["file,label,group,split"]
        for split in ("train", "val", "test"):
            for label in (0, 1):
                for i in range(4):
                    arr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                    if label:  # something learnable: fakes are brighter
                        arr = np.clip(arr.astype(int) + 60, 0, 255).astype(np.uint8)
                    f = f"{split}_{label}_{i}.jpg"
                    (root / name).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(arr).save(root / name / f, quality=90)
                    rows.append(f"{f},{label},{split}{i},{split}")
        (root / name / "manifest.csv").write_text("\n".join(rows) + "\n")


def _tiny_recipe(**train_over):
    tr = {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup": 1, "workers": 0, "threads": 1,
          "seed": 0, "log_every": 1, "save_every": 1, "augment": {}}
    tr.update(train_over)
    return {"model": {"name": "tiny", "backbone": "tf_efficientnet_lite0",
                      "preprocess": {"global_size": 32, "patch_size": 16, "num_patches": 2, "min_size": 16}},
            "data": {"train_sets": ["faces", "gen"], "eval_sets": ["faces", "gen"]},
            "calibration": {"target_fpr": 0.25, "rule": "macro"}, "train": tr}


def run_recipe(config, data, out, *sets, eval_only=False) -> int:
    """What ``experiments/train.py --config CONFIG --data DATA --out OUT --set ...`` does."""
    train(resolve(config, sets), data, out, eval_only=eval_only)
    return 0


def test_excluded_groups_leave_only_their_own_rows(tmp_path):
    _tiny_sets(tmp_path)
    every = load_sets(tmp_path, ["faces", "gen"], "train")
    kept = load_sets(tmp_path, ["faces", "gen"], "train", ["train0", "nothing-*"])
    gone = {(p, y, n) for p, y, n in every} - set(kept)
    assert len(every) == 16 and len(kept) == 12
    assert {Path(p).name for p, _, _ in gone} == {"train_0_0.jpg", "train_1_0.jpg"}
    assert load_sets(tmp_path, ["faces"], "val", ["train*"]) == load_sets(tmp_path, ["faces"], "val")
    removed = {}
    load_sets(tmp_path, ["faces", "gen"], "train", ["train0", "nothing-*"], removed)
    assert removed == {"train0": 4}


@pytest.mark.slow
def test_excluded_groups_are_left_out_of_training_and_calibration_but_not_test(tmp_path, caplog):
    data = tmp_path / "data"
    _tiny_sets(data)
    config = tmp_path / "held.json"
    recipe = _tiny_recipe()
    recipe["data"]["exclude_groups"] = ["*0"]  # train0, val0 and test0 of each set
    config.write_text(json.dumps(recipe))
    with caplog.at_level("INFO", logger="fakedet.training"):
        assert run_recipe(config, data, tmp_path / "a") == 0
    assert any("training on 12 images" in r.getMessage() for r in caplog.records)
    ev = ckpt.read_meta(tmp_path / "a" / "final.safetensors").evaluation
    assert ev["val"]["faces"]["n"] == 6 and ev["test"]["faces"]["n"] == 8
    assert any("left out: 4 training and 4 val images whose group matches '*0'" in r.getMessage()
               for r in caplog.records)

    recipe["data"]["exclude_groups"] = ["TRAIN0", "test0"]  # nothing, or only test: refused
    config.write_text(json.dumps(recipe))
    with pytest.raises(TrainingError, match="matches no training or val image"):
        run_recipe(config, data, tmp_path / "b")
    assert not (tmp_path / "b" / "last.safetensors").exists()


@pytest.mark.slow
def test_a_finished_run_can_be_continued_and_records_its_parent(tmp_path):
    data = tmp_path / "data"
    _tiny_sets(data)
    first = tmp_path / "first.json"
    first.write_text(json.dumps(_tiny_recipe()))
    assert run_recipe(first, data, tmp_path / "a") == 0
    parent = tmp_path / "a" / "final.safetensors"
    meta = ckpt.read_meta(parent)
    assert meta.training["steps"] == 2 and "continued_from" not in meta.training
    assert 0 < meta.threshold < 1 and set(meta.evaluation["test"]) >= {"faces", "gen", "all"}

    second = tmp_path / "second.json"
    second.write_text(json.dumps(_tiny_recipe(init_from=str(parent), steps=1, seed=1)))
    assert run_recipe(second, data, tmp_path / "b") == 0
    info = ckpt.read_meta(tmp_path / "b" / "final.safetensors").training["continued_from"]
    assert info == {"path": str(parent), "sha256": ckpt.sha256(parent), "steps": 2,
                    "train_sets": meta.training["train_sets"]}

    # A parent with another architecture is refused before anything is trained.
    other = _tiny_recipe(init_from=str(parent))
    other["model"]["preprocess"]["num_patches"] = 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(other))
    with pytest.raises(TrainingError, match="differs"):
        run_recipe(bad, data, tmp_path / "c")
    assert not (tmp_path / "c" / "last.safetensors").exists()


@pytest.mark.slow
def test_domain_adversary_reverses_its_gradient_and_trains(tmp_path):
    torch.manual_seed(0)
    heads = DomainHeads(6, 3, hidden=4)
    feats = torch.randn(8, 6, requires_grad=True)
    label = torch.tensor([0, 1] * 4)
    sets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    heads.loss(feats, label, sets, 0.5).backward()
    reversed_grad = feats.grad.clone()
    feats.grad = None
    plain = sum(torch.nn.functional.cross_entropy(h(feats[label == c]), sets[label == c]) * 0.5
                for c, h in enumerate(heads.heads))
    plain.backward()
    assert torch.allclose(reversed_grad, -0.5 * feats.grad)  # the features are pushed the other way
    assert heads.heads[0][0].weight.grad is not None  # the heads themselves learn normally

    data = tmp_path / "data"
    _tiny_sets(data)
    cfg = tmp_path / "dann.json"
    cfg.write_text(json.dumps(_tiny_recipe(domain_adv=0.3)))
    assert run_recipe(cfg, data, tmp_path / "d") == 0


@pytest.mark.slow
def test_probe_steps_freeze_the_backbone_and_then_release_it(tmp_path):
    """LP-FT: during train.probe_steps the backbone (weights and BatchNorm statistics) stays as
    initialised while the head learns; after them the backbone trains too."""
    from fakedet.model.config import ModelConfig
    from fakedet.model.fused import FakeDetector

    data = tmp_path / "data"
    _tiny_sets(data)
    recipe = _tiny_recipe(steps=3, probe_steps=3)
    torch.manual_seed(0)  # the recipe's seed: the model the run starts from
    init = FakeDetector(ModelConfig.from_dict(recipe["model"])).state_dict()
    runs = {}
    for name, probe in (("frozen", 3), ("released", 1)):
        cfg = tmp_path / f"{name}.json"
        cfg.write_text(json.dumps(_tiny_recipe(steps=3, probe_steps=probe)))
        assert run_recipe(cfg, data, tmp_path / name) == 0
        runs[name] = ckpt.load(tmp_path / name / "final.safetensors")[0].state_dict()
    backbone = [k for k in init if k.startswith("backbone.") and init[k].dtype.is_floating_point]
    assert backbone and all(torch.equal(runs["frozen"][k], init[k]) for k in backbone)
    assert not torch.equal(runs["frozen"]["head.weight"], init["head.weight"])
    assert not all(torch.equal(runs["released"][k], init[k]) for k in backbone)


def test_each_draw_of_an_image_gets_its_own_augmentation(tmp_path):
    from fakedet.model.config import PreprocessConfig

    path = tmp_path / "a.png"
    photo(120, 100).save(path)
    pre = PreprocessConfig(global_size=64, patch_size=32, num_patches=4, min_size=32)
    aug = {"p_crop": 0.5, "p_colour": 0.5, "p_resize": 0.5, "p_jpeg": 0.5}
    items = [(str(path), 0, "faces", None)]
    fresh = TrainSet(items, pre, aug, seed=0)
    views = {fresh[0][0].numpy().tobytes() for _ in range(6)}
    assert len(views) >= 4  # six draws, (nearly) six different variants
    legacy = TrainSet(items, pre, aug, seed=0, fresh_draws=False)
    assert len({legacy[0][0].numpy().tobytes() for _ in range(6)}) == 1  # the recipes before the fix


@pytest.mark.slow
def test_a_resumed_run_takes_its_step_from_the_weights_and_adds_up_its_time(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="fakedet.training")
    data = tmp_path / "data"
    _tiny_sets(data)
    cfg = tmp_path / "r.json"
    cfg.write_text(json.dumps(_tiny_recipe(steps=2)))
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="eval-only"):
        run_recipe(cfg, data, out, eval_only=True)
    assert run_recipe(cfg, data, out, "train.steps=1") == 0
    first = ckpt.read_meta(out / "last.safetensors").training
    assert first["step"] == 1 and first["seconds"] > 0
    # progress.json lags behind the weights (a crash between the two writes): the weights win
    (out / "progress.json").write_text(json.dumps({"step": 0}))
    assert run_recipe(cfg, data, out) == 0
    final = ckpt.read_meta(out / "final.safetensors").training
    assert final["steps"] == 2 and final["train_seconds"] > first["seconds"]
    assert "resuming from step 1" in caplog.text


@pytest.mark.slow
def test_weight_averaging_finishes_with_the_mean_of_the_steps_and_fresh_batchnorm(tmp_path):
    """train.average_from: the final weights are the mean of the weights after each step from
    there on (checked against the weights saved after every step), BatchNorm statistics are
    measured again rather than averaged, and an interrupted run carries its average on."""
    data = tmp_path / "data"
    _tiny_sets(data)
    cfg = tmp_path / "swa.json"
    cfg.write_text(json.dumps(_tiny_recipe(steps=3, average_from=0.3, bn_batches=2)))
    real_save = ckpt.save

    def run(out, *extra):
        snaps = []

        def keep(model, meta, path):  # save_every 1: the weights after every step
            real_save(model, meta, path)
            if Path(path).name == "last.safetensors":
                snaps.append({k: v.clone() for k, v in model.state_dict().items()})

        ckpt.save = keep
        try:
            assert run_recipe(cfg, data, out, *extra) == 0
        finally:
            ckpt.save = real_save
        return snaps

    def check(out, snaps):
        model, meta = ckpt.load(out / "final.safetensors")
        final = model.state_dict()
        assert meta.training["weight_average"] == {"from_step": 1, "models": 3, "bn_batches": 2}
        for k in ("head.weight", "backbone.conv_stem.weight", "texture.convs.0.weight"):
            assert torch.allclose(final[k], torch.stack([s[k] for s in snaps]).mean(0), atol=1e-6)
            assert not torch.allclose(final[k], snaps[-1][k])
        k = "backbone.bn1.running_mean"
        assert not torch.allclose(final[k], torch.stack([s[k] for s in snaps]).mean(0))

    snaps = run(tmp_path / "whole")
    assert len(snaps) == 3
    check(tmp_path / "whole", snaps)

    # Stopped after step 2 (as if killed: no final weights), then resumed to the end.
    cut = tmp_path / "cut"
    (cut).mkdir()
    first = run(cut, "train.steps=2")
    (cut / "final.safetensors").unlink()
    (cut / "progress.json").write_text(json.dumps({"step": 2}))
    second = run(cut)
    assert len(first) == 2 and len(second) == 1
    check(cut, first + second)

    # An average that does not belong to the weights' step cannot be resumed.
    (cut / "progress.json").write_text(json.dumps({"step": 3}))
    meta = ckpt.read_meta(cut / "last.safetensors")
    meta.training["step"] = 2
    real_save(ckpt.load(cut / "last.safetensors")[0], meta, cut / "last.safetensors")
    with pytest.raises(TrainingError, match="no weight average"):
        run_recipe(cfg, data, cut, eval_only=True)


def test_perturbed_copy_keeps_original_pixels_where_the_shift_leaves_the_frame():
    """The self-blend's moved copy must not leave black edges (a cue no real image carries)."""
    img = Image.new("RGB", (96, 96), (128, 128, 128))
    for seed in range(40):
        copy = perturbed_copy(img, random.Random(seed), (20, 20, 76, 76))
        assert copy.shape == (96, 96, 3)
        assert copy.min() > 40, seed  # grey shifted by colour jitter, never black



def test_sbi_set_weights_must_name_self_blended_sets_with_positive_weights(tmp_path):
    data = tmp_path / "data"
    _tiny_sets(data)
    cfg = tmp_path / "w.json"
    for share, weights in ((0.1, {"gen": 2}), (0.1, {"faces": 0}), (0.1, {"faces": -1}), (0.1, {"faces": "2"}),
                           (0.1, {"faces": True}), (0.1, {"faces": float("nan")}), (0.1, {"faces": float("inf")}),
                           (0.0, {"faces": 2})):  # weights without a share would do nothing
        cfg.write_text(json.dumps(_tiny_recipe(sbi_share=share, sbi_sets=["faces"], sbi_set_weights=weights)))
        with pytest.raises(TrainingError, match="sbi_set_weights"):
            run_recipe(cfg, data, tmp_path / "w")
        assert not (tmp_path / "w" / "last.safetensors").exists()
    cfg.write_text(json.dumps(_tiny_recipe(real_share=1.0)))
    with pytest.raises(TrainingError, match="real_share"):
        run_recipe(cfg, data, tmp_path / "w")
    # accepted weights train; null (the default) spreads evenly, and switches off a base file's weights
    cfg.write_text(json.dumps(_tiny_recipe(sbi_share=0.1, sbi_sets=["faces"], sbi_set_weights={"faces": 2})))
    assert run_recipe(cfg, data, tmp_path / "ok") == 0
    assert json.loads((tmp_path / "ok" / "recipe.json").read_text())["train"]["sbi_set_weights"] == {"faces": 2}
    child = tmp_path / "child.json"
    child.write_text(json.dumps({"extends": "w.json", "train": {"sbi_set_weights": None}}))
    assert resolve(child).train.sbi_set_weights is None

@pytest.mark.slow
def test_face_crop_sets_need_their_boxes_and_crop_both_classes(tmp_path):
    data = tmp_path / "data"
    _tiny_sets(data)
    cfg = tmp_path / "crop.json"
    cfg.write_text(json.dumps(_tiny_recipe(face_crop_sets=["faces"])))
    with pytest.raises(TrainingError, match="face_crop_boxes"):
        run_recipe(cfg, data, tmp_path / "a")
    boxes = tmp_path / "boxes.json"
    # one real and one fake training image of "faces" get a box; "gen" is not named
    boxes.write_text(json.dumps({"faces/train_0_0.jpg": [4, 4, 24, 24], "faces/train_1_0.jpg": [4, 4, 24, 24],
                                 "gen/train_0_0.jpg": [4, 4, 24, 24]}))
    cfg.write_text(json.dumps(_tiny_recipe(face_crop_sets=["faces"], face_crop_boxes=str(boxes))))
    assert run_recipe(cfg, data, tmp_path / "b") == 0

    from fakedet.model.config import ModelConfig
    from fakedet.training.datasets import TrainSet

    pre = ModelConfig.from_dict(_tiny_recipe()["model"]).preprocess
    off = {k: 0 for k in ("p_crop", "p_colour", "p_resize", "p_blur", "p_noise", "p_jpeg", "p_webp")}
    items = [(str(data / "faces" / "train_0_0.jpg"), 0, "faces", None),
             (str(data / "faces" / "train_1_0.jpg"), 1, "faces", None)]
    box = {"faces/train_0_0.jpg": [4, 4, 24, 24], "faces/train_1_0.jpg": [4, 4, 24, 24]}
    for i in range(2):
        whole = TrainSet(items, pre, off, 0, fresh_draws=False)[i][0]
        cropped = TrainSet(items, pre, off, 0, fresh_draws=False, crop_boxes=box)[i][0]
        assert whole.shape == cropped.shape and not torch.equal(whole, cropped)


def test_texture_only_rows_keep_their_texture_features_and_pass_no_gradient_to_the_rest():
    from fakedet.training.loop import texture_features_only

    feats = torch.arange(1.0, 13.0).view(2, 6).requires_grad_()
    out = texture_features_only(feats, torch.tensor([True, False]), texture_dim=2)
    assert out[0].tolist() == [0, 0, 0, 0, 5, 6] and torch.equal(out[1], feats[1])
    out.sum().backward()
    assert feats.grad[0].tolist() == [0, 0, 0, 0, 1, 1] and feats.grad[1].tolist() == [1] * 6


@pytest.mark.slow
def test_texture_only_sets_must_be_trained_on_and_then_train(tmp_path):
    data = tmp_path / "data"
    _tiny_sets(data)
    cfg = tmp_path / "tex.json"
    cfg.write_text(json.dumps(_tiny_recipe(texture_only_sets=["elsewhere"])))
    with pytest.raises(TrainingError, match="elsewhere"):
        run_recipe(cfg, data, tmp_path / "a")
    cfg.write_text(json.dumps(_tiny_recipe(texture_only_sets=["gen"])))
    assert run_recipe(cfg, data, tmp_path / "b") == 0


@pytest.mark.slow
def test_interpolation_mixes_the_trained_weights_with_the_named_checkpoint(tmp_path):
    """train.interpolate_with / interpolate_weight (WiSE-FT): the final weights and BatchNorm
    statistics are (1 - w) * the trained ones + w * the named checkpoint's, recorded in the
    metadata; a half-given pair, a weight outside (0, 1) or a checkpoint of another architecture
    is refused before any training."""
    data = tmp_path / "data"
    _tiny_sets(data)
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_tiny_recipe(steps=1)))
    assert run_recipe(base, data, tmp_path / "parent") == 0
    parent = tmp_path / "parent" / "final.safetensors"
    cfg = tmp_path / "mix.json"
    cfg.write_text(json.dumps(_tiny_recipe(steps=2, seed=1, interpolate_with=str(parent), interpolate_weight=0.25)))
    out = tmp_path / "mix"
    assert run_recipe(cfg, data, out) == 0
    trained = ckpt.load(out / "last.safetensors")[0].state_dict()  # saved before the mix
    other = ckpt.load(parent)[0].state_dict()
    model, meta = ckpt.load(out / "final.safetensors")
    final = model.state_dict()
    for k in ("head.weight", "backbone.conv_stem.weight", "backbone.bn1.running_mean", "backbone.bn1.running_var"):
        assert not torch.allclose(trained[k], other[k])
        assert torch.allclose(final[k], 0.75 * trained[k] + 0.25 * other[k], atol=1e-6)
    assert meta.training["interpolated_with"] == {"path": str(parent), "sha256": ckpt.sha256(parent), "weight": 0.25,
                                                  "trained_sha256": ckpt.sha256(out / "last.safetensors")}
    # --eval-only mixes the run's last weights again, the same way (how H4w was made from H4)
    assert run_recipe(cfg, data, out, eval_only=True) == 0
    again = ckpt.load(out / "final.safetensors")[0].state_dict()
    assert all(torch.equal(again[k], final[k]) for k in final)
    # ... and refuses weights without their progress.json rather than start from nothing
    (out / "progress.json").unlink()
    with pytest.raises(TrainingError, match="progress.json"):
        run_recipe(cfg, data, out, eval_only=True)
    for sets in (["train.interpolate_weight=1.0"], ["train.interpolate_weight=null"],
                 ["train.interpolate_with=null"]):
        with pytest.raises(TrainingError, match="interpolate"):
            run_recipe(cfg, data, tmp_path / "bad", *sets)
    with pytest.raises(TrainingError, match="config differs"):  # another architecture
        run_recipe(cfg, data, tmp_path / "bad", "model.preprocess.global_size=48")
    assert not (tmp_path / "bad" / "last.safetensors").exists()


def test_interpolate_refuses_models_of_different_architectures():
    from fakedet.model.config import ModelConfig
    from fakedet.model.fused import FakeDetector
    from fakedet.training.averaging import interpolate

    pre = {"global_size": 32, "patch_size": 16, "num_patches": 2, "min_size": 16}
    a = FakeDetector(ModelConfig.from_dict({"name": "a", "backbone": "tf_efficientnet_lite0", "preprocess": pre}))
    b = FakeDetector(ModelConfig.from_dict({"name": "b", "backbone": "tf_efficientnet_lite0", "preprocess": pre,
                                            "use_colour": False}))
    with pytest.raises(ValueError, match="architectures"):
        interpolate(a, b, 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        interpolate(a, a, 0.0)


@pytest.mark.parametrize("rule", ["pooled", "macro"])
def test_calibration_never_sets_a_threshold_above_one(rule):
    """Real val images scored 1.0 (a logit far beyond the float's reach) would put the threshold
    "just above" them past 1, which Detector refuses to load: 1.0 is the strictest there is."""
    from fakedet.training.evaluate import calibrate
    from fakedet.training.recipe import Calibration

    z = np.array([80.0, 90.0, -3.0, -2.0, 85.0, 95.0, 4.0, 5.0])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    names = np.array(["a"] * 4 + ["a"] * 4)
    _, threshold, _ = calibrate(z, y, names, ["a"], Calibration(target_fpr=0.05, rule=rule))
    assert threshold == 1.0
