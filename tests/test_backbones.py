"""fakedet's own EfficientNet-Lite against timm's: same keys, same outputs; and scans skip timm."""

import subprocess
import sys

import pytest
import torch

from fakedet.model.backbones import LITE_VARIANTS, EfficientNetLite, create_backbone

timm = pytest.importorskip("timm")


def _randomise(model, seed):
    """Random weights and BatchNorm statistics, so that a wrong layer cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.uniform_(0.5, 1.5, generator=g)
                else:
                    t.normal_(0, 0.2, generator=g)


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_lite_matches_timm(name):
    ref = timm.create_model(name, pretrained=False, num_classes=0).eval()
    _randomise(ref, 0)
    ours = EfficientNetLite(*LITE_VARIANTS[name]).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert ours.num_features == ref.num_features
    for size in [(128, 128), (97, 131), (33, 40)]:  # odd sizes exercise the "same" padding
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            a, b = ref(x), ours(x)
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        assert a.std() > 0.01  # the features are not all saturated or zero


def test_lite_trains_like_timm():
    """Training mode (batch statistics, gradients) matches too."""
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).train()
    ours = EfficientNetLite().train()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    ref(x).square().mean().backward()
    ours(x).square().mean().backward()
    g_ref = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, g_ref[name].grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.state_dict()["bn1.running_mean"], ref.state_dict()["bn1.running_mean"])


def test_other_names_and_kwargs_go_to_timm():
    assert isinstance(create_backbone("tf_efficientnet_lite0"), EfficientNetLite)
    m = create_backbone("tf_efficientnet_lite0", drop_path_rate=0.1)
    assert not isinstance(m, EfficientNetLite) and m.num_features == 1280
    assert not isinstance(create_backbone("test_efficientnet"), EfficientNetLite)


@pytest.mark.slow  # a python subprocess
def test_scan_with_shipped_weights_does_not_import_timm(tmp_path):
    """The start-up saving is the point: neither timm nor torchvision is imported by a scan."""
    from conftest import write_image

    for i in range(3):
        write_image(tmp_path / f"{i}.jpg", size=(80, 80), seed=i)
    code = (
        "import sys\n"
        "from fakedet import Detector\n"
        f"r = Detector.load(device='cpu').predict(sorted(__import__('glob').glob({str(tmp_path)!r} + '/*.jpg')))\n"
        "assert len(r) == 3 and all(x.ok for x in r), r\n"
        "bad = [m for m in ('timm', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_backbone_that_needs_timm_says_how_to_install_it(monkeypatch, tmp_path):
    from fakedet.model import checkpoint as ckpt

    from conftest import make_tiny_checkpoint

    path = make_tiny_checkpoint(tmp_path / "tiny.safetensors")  # test_efficientnet: a timm model
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    assert isinstance(create_backbone("tf_efficientnet_lite0"), EfficientNetLite)  # needs no timm
    with pytest.raises(ImportError, match=r"pip install 'fakedet\[timm\]'"):
        create_backbone("test_efficientnet")
    with pytest.raises(ckpt.CheckpointError, match=r"cannot build model 'test_efficientnet'.*fakedet\[timm\]"):
        ckpt.load(path)


def test_timm_is_an_extra_not_a_requirement():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("timm") for d in project["dependencies"])
    assert any(d.startswith("timm") for d in project["optional-dependencies"]["timm"])
