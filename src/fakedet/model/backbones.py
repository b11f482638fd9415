"""Model layer: backbones built without importing timm.

``import timm`` imports torchvision, whose ``ops`` package imports ``torch._dynamo``: about 2.5 s
of a fresh process's start-up on a 2-core machine, more than the rest of a one-photo scan. The
EfficientNet-Lite family that fakedet ships is small and fixed, so this module builds timm's
``tf_efficientnet_lite0`` … ``lite4`` itself, with timm's module names (state-dict keys match
one for one) and timm's arithmetic: TensorFlow "same" padding, BatchNorm eps 1e-3, ReLU6, no
squeeze-excitation. ``tests/test_backbones.py`` checks the outputs against timm's own models.

Any other backbone name, or extra keyword arguments, go to ``timm.create_model``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fakedet.model.config import NATIVE_BACKBONES, backbone_builder

# name: (channel multiplier, depth multiplier), as in timm's _gen_efficientnet_lite
LITE_VARIANTS = {
    "tf_efficientnet_lite0": (1.0, 1.0),
    "tf_efficientnet_lite1": (1.0, 1.1),
    "tf_efficientnet_lite2": (1.1, 1.2),
    "tf_efficientnet_lite3": (1.2, 1.4),
    "tf_efficientnet_lite4": (1.4, 1.8),
}
assert tuple(LITE_VARIANTS) == NATIVE_BACKBONES

# (block type, repeats, kernel, stride, expansion, out channels) per stage
_LITE_STAGES = [
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
]
_BN_EPS = 1e-3


def _make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: static when stride is 1, else computed from
    the input size, with the odd pixel on the bottom/right (timm's ``Conv2dSame``)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        self._dynamic = stride > 1
        super().__init__(cin, cout, k, stride, 0 if self._dynamic else (k - 1) // 2,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._dynamic:
            k, s = self.kernel_size[0], self.stride[0]
            ih, iw = x.shape[-2:]
            ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
            pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
            if ph or pw:
                x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return super().forward(x)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm followed by ReLU6 (or nothing), state-dict compatible with timm's."""

    def __init__(self, channels: int, act: bool = True):
        super().__init__(channels, eps=_BN_EPS)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int):
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv_dw = SameConv2d(cin, cin, k, stride, groups=cin)
        self.bn1 = BatchNormAct2d(cin)
        self.conv_pw = SameConv2d(cin, cout, 1)
        self.bn2 = BatchNormAct2d(cout, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return y + x if self.has_skip else y


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expansion: int):
        super().__init__()
        mid = _make_divisible(cin * expansion)
        self.has_skip = stride == 1 and cin == cout
        self.conv_pw = SameConv2d(cin, mid, 1)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = SameConv2d(mid, mid, k, stride, groups=mid)
        self.bn2 = BatchNormAct2d(mid)
        self.conv_pwl = SameConv2d(mid, cout, 1)
        self.bn3 = BatchNormAct2d(cout, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_skip else y


class EfficientNetLite(nn.Module):
    """timm's ``tf_efficientnet_liteN`` with ``num_classes=0``: returns pooled features."""

    def __init__(self, channel_mult: float = 1.0, depth_mult: float = 1.0, in_chans: int = 3):
        super().__init__()
        stem = 32  # not scaled (timm's fix_stem)
        self.conv_stem = SameConv2d(in_chans, stem, 3, 2)
        self.bn1 = BatchNormAct2d(stem)
        stages, cin = [], stem
        for i, (kind, reps, k, stride, exp, cout) in enumerate(_LITE_STAGES):
            if 0 < i < len(_LITE_STAGES) - 1:  # first and last stages keep their depth
                reps = int(math.ceil(reps * depth_mult))
            cout = _make_divisible(cout * channel_mult, round_limit=0.9)
            blocks = []
            for j in range(reps):
                s = stride if j == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(cin, cout, k, s))
                else:
                    blocks.append(InvertedResidual(cin, cout, k, s, exp))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.num_features = 1280  # not scaled in the Lite variants
        self.conv_head = SameConv2d(cin, self.num_features, 1)
        self.bn2 = BatchNormAct2d(self.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv_stem(x))
        x = self.blocks(x)
        x = self.bn2(self.conv_head(x))
        return x.mean(dim=(2, 3))


# (convolution, BatchNorm) attribute pairs that fold_batchnorm merges, per block type
_FOLD_PAIRS = {
    EfficientNetLite: (("conv_stem", "bn1"), ("conv_head", "bn2")),
    DepthwiseSeparable: (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    InvertedResidual: (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
}


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Folds an inference-mode BatchNorm that follows ``conv`` into the convolution's weight and
    bias, in place: ``conv`` alone then computes ``bn(conv(x))`` (to float rounding)."""
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
        conv.bias = nn.Parameter(bias, requires_grad=False)


def fold_batchnorm(model: nn.Module) -> int:
    """For inference only: merges every BatchNorm of an :class:`EfficientNetLite` into the
    convolution before it (each ``BatchNormAct2d`` becomes its bare activation). One fewer pass
    over every activation map; about 15 % faster on the CPU. Returns how many were folded;
    other models are left alone (0)."""
    folded = 0
    for block in list(model.modules()):
        for conv_name, bn_name in _FOLD_PAIRS.get(type(block), ()):
            bn = getattr(block, bn_name)
            if not isinstance(bn, BatchNormAct2d):
                continue  # already folded
            fold_conv_bn(getattr(block, conv_name), bn)
            setattr(block, bn_name, bn.act)
            folded += 1
    return folded


#: the keyword arguments a checkpoint may pass to ``timm.create_model``, each a plain number: others
#: (``checkpoint_path``, ``pretrained_cfg_overlay``, ``cache_dir``...) would have timm read, or
#: fetch, files the checkpoint names, some of them with pickle
TIMM_KWARGS = ("drop_rate", "drop_path_rate")


def create_backbone(name: str, **kwargs) -> nn.Module:
    """A backbone returning pooled features, with ``num_features`` set; never downloads, and reads
    no file: of keyword arguments only :data:`TIMM_KWARGS`, as numbers, are passed on."""
    bad = sorted(k for k in kwargs if k not in TIMM_KWARGS)
    if bad:
        raise ValueError(f"backbone_kwargs may hold only {', '.join(TIMM_KWARGS)}, not {', '.join(bad)}")
    for k, v in kwargs.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
            raise ValueError(f"backbone_kwargs {k} must be a number in [0, 1), got {v!r}")
    if backbone_builder(name, kwargs) == "fakedet":
        return EfficientNetLite(*LITE_VARIANTS[name])
    if ":" in name:  # timm's "hf-hub:" and "local-dir:" would fetch the architecture from elsewhere
        raise ValueError(f"backbone {name!r} names a source to fetch it from; fakedet builds backbones "
                         "from timm's own names only and never downloads")
    try:
        import timm  # any other backbone: timm builds it (slower start-up)
    except ImportError:
        raise ImportError(f"backbone {name!r} is built by timm, which is not installed: "
                          "pip install 'fakedet[timm]'") from None
    return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
