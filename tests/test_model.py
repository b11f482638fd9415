import json

import pytest
import torch

from fakedet.model import checkpoint as ckpt
from fakedet.model.config import ModelConfig
from fakedet.model.fused import FakeDetector

from conftest import make_tiny_checkpoint, tiny_config_dict


def inputs(b=3, g=64, k=4, p=32):
    gen = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (b, 3, g, g), dtype=torch.uint8, generator=gen),
            torch.randint(0, 256, (b, k, 3, p, p), dtype=torch.uint8, generator=gen))


@pytest.mark.parametrize("parts", [(1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1)])
def test_every_branch_combination_gives_one_logit(parts):
    b, c, t = map(bool, parts)
    cfg = ModelConfig.from_dict(tiny_config_dict(use_backbone=b, use_colour=c, use_texture=t))
    model = FakeDetector(cfg).eval()
    out = model(*inputs())
    assert out.shape == (3,) and torch.isfinite(out).all()


def test_no_branch_is_refused():
    with pytest.raises(ValueError):
        FakeDetector(ModelConfig.from_dict(tiny_config_dict(use_backbone=False, use_colour=False, use_texture=False)))


def test_backbone_name_comes_from_config():
    model = FakeDetector(ModelConfig.from_dict(tiny_config_dict(backbone="test_resnet")))
    assert type(model.backbone).__name__ == "ResNet"


def _colour_stats_by_definition(rgb, centres, sigma):
    """The colour features written out plainly, in float64."""
    rgb = rgb.double()
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = 0.5 + (b - y) * 0.564, 0.5 + (r - y) * 0.713
    sat = (rgb.amax(1) - rgb.amin(1)) / (rgb.amax(1) + 1e-4)
    chans = torch.stack([cb, cr, sat], 1).flatten(2).unsqueeze(-1)  # (B, 3, N, 1)
    hist = torch.exp(-((chans - torch.tensor(centres, dtype=torch.float64)) ** 2) / (2 * sigma**2)).mean(2)
    hist = hist / (hist.sum(-1, keepdim=True) + 1e-6)
    all4 = torch.stack([y, cb, cr, sat], 1).flatten(2)
    return torch.cat([hist.flatten(1), all4.mean(-1), all4.std(-1)], 1)


def test_colour_features_match_their_definition():
    """The fast soft histogram and moments equal the plain formula, also for flat, grey and
    saturated images, whose far-off bins underflow."""
    model = FakeDetector(ModelConfig.from_dict(tiny_config_dict(use_backbone=False, use_texture=False)))
    gen = torch.Generator().manual_seed(1)
    rgb = torch.rand(4, 3, 40, 48, generator=gen)
    rgb[1] = 0.5  # flat grey
    rgb[2, 0], rgb[2, 1:] = 1.0, 0.0  # pure red
    rgb[3] = (rgb[3] * 255).round() / 255  # 8-bit levels
    got = model.colour.stats(rgb)
    want = _colour_stats_by_definition(rgb, model.colour.centres, model.colour.sigma)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-6)


def test_texture_branch_sees_high_frequencies():
    """A flat patch and a noisy patch must give different texture features."""
    cfg = ModelConfig.from_dict(tiny_config_dict(use_backbone=False, use_colour=False))
    model = FakeDetector(cfg).eval()
    flat = torch.full((1, 4, 3, 32, 32), 128.0)
    noisy = flat + torch.randn_like(flat) * 20
    res_flat = model.texture.residuals(flat.flatten(0, 1) / 255)
    res_noisy = model.texture.residuals(noisy.flatten(0, 1) / 255)
    assert res_flat.abs().max() < 1e-5 and res_noisy.abs().mean() > 1e-3


def test_unknown_config_keys_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict(tiny_config_dict(backbon="x"))


def test_checkpoint_round_trip(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "a.safetensors", threshold=0.37)
    model, meta = ckpt.load(path)
    assert meta.threshold == pytest.approx(0.37)
    assert meta.model["backbone"] == "test_efficientnet"
    again, _ = ckpt.load(path)
    x = inputs()
    assert torch.equal(model(*x), again(*x))
    # the file is a plain safetensors file with JSON metadata
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        assert json.loads(fh.metadata()["fakedet"])["format_version"] == ckpt.FORMAT_VERSION


def test_face_threshold_round_trip_and_use(tmp_path):
    from fakedet import Detector

    old = make_tiny_checkpoint(tmp_path / "old.safetensors", threshold=0.37)
    assert ckpt.read_meta(old).face_threshold is None  # checkpoints without one still load
    assert Detector.load(old, device="cpu", faces=True).threshold == pytest.approx(0.37)
    path = make_tiny_checkpoint(tmp_path / "a.safetensors", threshold=0.37, face_threshold=0.9)
    assert ckpt.read_meta(path).face_threshold == pytest.approx(0.9)
    assert Detector.load(path, device="cpu").threshold == pytest.approx(0.37)
    assert Detector.load(path, device="cpu", faces=True).threshold == pytest.approx(0.9)
    assert Detector.load(path, device="cpu", faces=True, threshold=0.2).threshold == pytest.approx(0.2)
    assert Detector.load(path, device="cpu").info()["face_threshold"] == pytest.approx(0.9)


def test_mismatching_checkpoint_is_refused(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "a.safetensors")
    meta = ckpt.read_meta(path)
    meta.model["texture_width"] = 16  # config no longer matches the stored tensors
    model, _ = ckpt.load(path)
    ckpt.save(model, meta, tmp_path / "b.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="do not match"):
        ckpt.load(tmp_path / "b.safetensors")


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(bad)
    truncated = tmp_path / "trunc.safetensors"
    good = make_tiny_checkpoint(tmp_path / "g.safetensors")
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(truncated)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match="not a fakedet checkpoint"):
        ckpt.load(tmp_path / "foreign.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load(tmp_path / "missing.safetensors")


def test_shipped_weights_load_and_give_probabilities():
    from fakedet import Detector

    from conftest import random_image

    path = ckpt.default_weights_path()
    assert path.is_file(), f"shipped weights missing at {path}"
    assert path.stat().st_size <= 50 * 1024 * 1024
    det = Detector.load(device="cpu", workers=0)
    assert det.config.backbone  # name from the checkpoint's config
    imgs = [random_image((224, 224), seed=s) for s in range(3)] + [random_image((300, 200), seed=7)]
    res = det.predict(imgs)
    assert len(res) == 4
    for r in res:
        assert r.error is None and 0.0 <= r.p_fake <= 1.0 and r.label in ("fake", "uncertain", "real")


@pytest.mark.slow  # a python subprocess
def test_read_meta_does_not_import_torch():
    """A scan reads the preprocessing config while torch is still loading in the background."""
    import subprocess
    import sys

    code = ("import sys\nfrom fakedet.model import checkpoint as c\n"
            "m = c.read_meta(c.default_weights_path())\nassert 0 < m.threshold < 1\n"
            "assert m.model_config().preprocess.min_size > 0\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_fused_model_gives_the_same_logits_and_cannot_train():
    """fuse_for_inference folds every BatchNorm after a convolution (backbone and texture
    branch) into it; with random weights and running statistics the logits stay the same."""
    import copy

    cfg = ModelConfig.from_dict(tiny_config_dict(backbone="tf_efficientnet_lite0"))
    model = FakeDetector(cfg)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # He-initialised convolutions, random BatchNorm parameters and statistics
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0, (2 / fan_in) ** 0.5, generator=g)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    model.eval()
    fused = copy.deepcopy(model).fuse_for_inference()
    bns = [n for n, m in fused.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns == ["texture.norm_in"]  # the only one not after a convolution
    # Smooth images that differ from one another (uniform noise images all look alike).
    coarse = torch.rand(5, 3, 4, 4, generator=g) * 255
    view = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear").to(torch.uint8)
    patches = view[:, None, :, :32, :32].expand(5, 4, 3, 32, 32).contiguous()
    with torch.inference_mode():
        ref, out = model.features(view, patches), fused.features(view, patches)
        logits = fused(view, patches)
    assert ref.std(dim=0).mean() > 0.01  # features differ between images
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits, model(view, patches), rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="fused for inference"):
        fused.train()
    with pytest.raises(ValueError, match="fused for inference"):
        ckpt.save(fused, ckpt.CheckpointMeta(model=cfg.to_dict()), "unused.safetensors")


@pytest.mark.parametrize("field,value,message", [
    ("threshold", None, "threshold must be a number"),
    ("threshold", "high", "threshold must be a number"),
    ("threshold", 7.5, "threshold must be a number"),
    ("face_threshold", -0.1, "face_threshold must be a number"),
    ("verdicts", {"fake": 0.3, "real": 0.6}, "verdicts must hold numbers 0 <= real <= fake <= 1"),
    ("verdicts", {"fake": 0.9}, "verdicts must hold numbers"),
    ("face_verdicts", {"fake": 1.5, "real": 0.1}, "face_verdicts must hold numbers"),
    ("temperature", 0, "temperature must be a positive number"),
    ("temperature", None, "temperature must be a positive number"),
    ("training", None, "training metadata is not a mapping"),
    ("evaluation", [], "evaluation metadata is not a mapping"),
])
def test_metadata_with_wrong_types_or_ranges_is_refused(tmp_path, field, value, message):
    from safetensors import safe_open
    from safetensors.torch import save_file

    good = make_tiny_checkpoint(tmp_path / "g.safetensors")
    with safe_open(str(good), "pt") as fh:
        meta = json.loads(fh.metadata()["fakedet"])
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta[field] = value
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"fakedet": json.dumps(meta)})
    with pytest.raises(ckpt.CheckpointError, match=message):
        ckpt.load(bad)


@pytest.mark.parametrize("pre,message", [
    ({"interpolation": "cubic"}, "interpolation"),
    ({"num_patches": 0}, "num_patches"),
    ({"global_size": "64"}, "global_size"),
    ({"std": [0.5, 0.0, 0.5]}, "std"),
    ({"std": [float("inf"), 0.5, 0.5]}, "std must be three finite numbers"),
    ({"mean": [float("nan"), 0.5, 0.5]}, "mean must be three finite numbers"),
    ({"mean": [True, 0.5, 0.5]}, "mean must be three finite numbers"),
    ({"std": [10 ** 400, 0.5, 0.5]}, "std must be three finite numbers"),
])
def test_preprocess_config_values_are_checked(pre, message):
    cfg = tiny_config_dict()
    cfg["preprocess"] = {**cfg["preprocess"], **pre}
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(cfg)


def test_deeply_nested_metadata_is_a_checkpoint_error(tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "deep.safetensors"
    save_file({"w": torch.zeros(2)}, str(bad), metadata={"fakedet": "[" * 100000 + "]" * 100000})
    with pytest.raises(ckpt.CheckpointError, match="metadata is invalid"):
        ckpt.read_meta(bad)


@pytest.mark.parametrize("kwargs", [{"checkpoint_path": "/tmp/evil.pth"}, {"pretrained_cfg_overlay": {"file": "x"}},
                                    {"drop_rate": "0.1"}, {"drop_rate": 5}])
def test_backbone_kwargs_that_would_have_timm_read_a_file_are_refused(kwargs, monkeypatch, tmp_path):
    """A checkpoint's backbone_kwargs went to timm.create_model as they were: checkpoint_path has
    timm load that file with torch.load (pickle, where timm and torch are old enough)."""
    import timm
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = tmp_path / "k.safetensors"
    make_tiny_checkpoint(path)
    asked = []
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: asked.append(k))
    with pytest.raises(ValueError, match="backbone_kwargs"):
        FakeDetector(ModelConfig.from_dict(tiny_config_dict(backbone_kwargs=kwargs)))
    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["fakedet"])
    meta["model"]["backbone_kwargs"] = kwargs
    state = load_file(str(path))
    save_file(state, str(path), metadata={"fakedet": json.dumps(meta)})
    with pytest.raises(ckpt.CheckpointError, match="backbone_kwargs"):
        ckpt.load(path)
    assert not asked


@pytest.mark.parametrize("name", ["hf-hub:timm/resnet18.a1_in1k", "local-dir:/tmp/somewhere"])
def test_a_backbone_name_that_names_a_source_is_refused_before_timm_is_asked(name, monkeypatch):
    import timm

    asked = []
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: asked.append(a))
    with pytest.raises(ValueError, match="never downloads"):
        FakeDetector(ModelConfig.from_dict(tiny_config_dict(backbone=name)))
    assert not asked


@pytest.mark.parametrize("spoil, says", [(lambda v: v.bool(), "wrong dtype"), (lambda v: v.int(), "wrong dtype"),
                                         (lambda v: v.half(), "wrong dtype"),
                                         (lambda v: torch.full_like(v, float("nan")), "not finite")])
def test_tensors_of_another_dtype_or_not_finite_are_refused(tmp_path, spoil, says):
    """load_state_dict cast bool tensors to 0.0/1.0 without a word: p_fake 1.0 'fake' for every
    image; NaN weights loaded, and every image then failed on its own."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = tmp_path / "w.safetensors"
    make_tiny_checkpoint(path)
    with safe_open(str(path), "pt") as fh:
        md = fh.metadata()
    state = load_file(str(path))
    state = {k: (spoil(v) if v.is_floating_point() else v) for k, v in state.items()}
    save_file(state, str(path), metadata=md)
    with pytest.raises(ckpt.CheckpointError, match=says):
        ckpt.load(path)


@pytest.mark.parametrize("edit, says", [
    (lambda m: m.__setitem__("temperature", 10 ** 400), "temperature"),
    (lambda m: m["model"].__setitem__("colour_bins", 6_000_000), "colour_bins"),
    (lambda m: m["model"]["preprocess"].__setitem__("global_size", 4096), "global_size"),
    (lambda m: m["model"]["preprocess"].__setitem__("num_patches", 100_000), "num_patches"),
    (lambda m: m["model"].__setitem__("use_colour", "false"), "use_colour"),
    (lambda m: m["model"].__setitem__("dropout", 5), "dropout"),
    (lambda m: m["model"].__setitem__("preprocess", [1]), "preprocess config must be a mapping"),
])
def test_metadata_that_would_build_a_huge_or_another_model_is_refused(tmp_path, edit, says):
    """A 14 MB file asking for 6 million colour bins took 5 GB and 12 s before a shape error; a
    4096 px view or 100,000 patches ran out of memory with a traceback; a 400-digit temperature
    crashed with OverflowError; "false" was true."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = tmp_path / "w.safetensors"
    make_tiny_checkpoint(path)
    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["fakedet"])
    edit(meta)
    save_file(load_file(str(path)), str(path), metadata={"fakedet": json.dumps(meta)})
    with pytest.raises(ckpt.CheckpointError, match=says):
        ckpt.load(path)


def test_a_checkpoint_larger_than_any_fakedet_writes_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """info hashed a 20 GiB sparse file whole (24 s) before anything said it was no checkpoint."""
    path = tmp_path / "w.safetensors"
    make_tiny_checkpoint(path)
    monkeypatch.setattr(ckpt, "MAX_CHECKPOINT_BYTES", path.stat().st_size - 1)
    with pytest.raises(ckpt.CheckpointError, match="more than a fakedet checkpoint may be"):
        ckpt.describe(path)
