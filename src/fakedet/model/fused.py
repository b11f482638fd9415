"""Model layer: the fused detector, a timm backbone, a global-colour branch and a local-texture branch.

The EfficientNet-Lite backbones are built by :mod:`fakedet.model.backbones` with timm's architecture
and key names but without importing timm (which halves a scan's start-up); any other timm
model name goes to ``timm.create_model``.

Each part is a small module of its own and can be switched off in :class:`ModelConfig` (for
ablations); the head fuses whatever is switched on into one logit.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fakedet.model.backbones import create_backbone, fold_batchnorm, fold_conv_bn
from fakedet.model.config import ModelConfig


class ColourBranch(nn.Module):
    """Whole-image colour statistics: soft histograms of chroma and saturation plus moments.

    Generators and face-swap blending shift colour distributions (chroma ranges, saturation
    clipping) in ways that survive resizing, so this branch reads the downscaled whole view.
    """

    def __init__(self, bins: int, out_dim: int):
        super().__init__()
        self.centres = torch.linspace(0.0, 1.0, bins).tolist()  # plain floats: no device sync
        self.sigma = 0.5 / bins
        in_dim = 3 * bins + 8
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, 64), nn.ReLU(inplace=True), nn.Linear(64, out_dim), nn.ReLU()
        )
        self.out_dim = out_dim

    def stats(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb in [0, 1], (B, 3, H, W) -> fixed colour features (B, 3*bins + 8)."""
        r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb = 0.5 + (b - y) * 0.564
        cr = 0.5 + (r - y) * 0.713
        mx = rgb.amax(dim=1)
        mn = rgb.amin(dim=1)
        sat = (mx - mn) / (mx + 1e-4)
        chans = torch.stack([cb, cr, sat], dim=1).flatten(2)  # (B, 3, N)
        # One bin at a time: the same soft histogram as exp(-(x - c)^2 / 2s^2) over a (B, 3, N,
        # bins) tensor, without materialising that tensor (16x the image, a cache and allocator
        # burden that made this branch slower than the backbone). The exponent is clamped at
        # -87: below that exp() gives float32 denormals (< 1.2e-38, nothing next to the other
        # terms), and on the CPU producing them cost more than the rest of the model.
        k = -1.0 / (2 * self.sigma**2)
        hist = torch.stack([torch.exp(((chans - c).square() * k).clamp(min=-87.0)).mean(dim=2)
                            for c in self.centres], dim=-1)  # (B, 3, bins)
        hist = hist / (hist.sum(dim=-1, keepdim=True) + 1e-6)
        all4 = torch.stack([y, cb, cr, sat], dim=1).flatten(2)
        # Standard deviation in two passes in float64: the same value as Tensor.std to float32
        # precision, and several times faster than its one-pass (Welford) kernel on the CPU.
        d = all4.double()
        mean = d.mean(-1, keepdim=True)
        std = ((d - mean).square().sum(-1) / (d.shape[-1] - 1)).sqrt()
        moments = torch.cat([mean.squeeze(-1), std], dim=1).to(all4.dtype)
        return torch.cat([hist.flatten(1), moments], dim=1)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=rgb.device.type, enabled=False):
            feats = self.stats(rgb.float())
        return self.mlp(feats)


def _fixed_kernels() -> torch.Tensor:
    """Three classic high-pass residual filters (SRM family), as 5x5 kernels."""
    k1 = torch.zeros(5, 5)
    k1[2, 1:4] = torch.tensor([1.0, -2.0, 1.0])  # second-order horizontal
    k1 = k1 / 2
    k2 = torch.tensor(
        [
            [-1, 2, -2, 2, -1],
            [2, -6, 8, -6, 2],
            [-2, 8, -12, 8, -2],
            [2, -6, 8, -6, 2],
            [-1, 2, -2, 2, -1],
        ],
        dtype=torch.float32,
    ) / 12  # KV kernel
    k3 = torch.zeros(5, 5)
    k3[1:4, 1:4] = torch.tensor([[-1.0, 2, -1], [2, -4, 2], [-1, 2, -1]]) / 4  # 3x3 SQUARE
    return torch.stack([k1, k2, k3])


class TextureBranch(nn.Module):
    """Native-resolution patches through fixed noise-residual filters and a small CNN.

    Two fixed representations feed the learned layers: SRM-style high-pass residuals per colour
    channel, and the neighbouring-pixel residual of NPR (the patch minus its nearest-neighbour
    2x down-and-up-sampled copy), which exposes the periodic traces of up-sampling layers.
    Patches are never resampled before these filters.
    """

    def __init__(self, width: int, out_dim: int):
        super().__init__()
        kernels = _fixed_kernels()  # (3, 5, 5)
        weight = kernels.unsqueeze(1).repeat(3, 1, 1, 1)  # 9 filters: 3 per colour channel
        self.register_buffer("srm", weight, persistent=False)
        in_ch = 9 + 3
        self.norm_in = nn.BatchNorm2d(in_ch)
        self.convs = nn.Sequential(
            nn.Conv2d(in_ch, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
        )
        self.proj = nn.Sequential(nn.Linear(4 * width, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        """x in [0, 1], (N, 3, P, P) -> (N, 12, P-4, P-4) fixed residual maps."""
        srm = F.conv2d(x, self.srm.to(x.dtype), groups=3)  # valid conv: no border artefacts
        h, w = x.shape[-2:]
        even = x[..., : h - h % 2, : w - w % 2]
        down_up = F.interpolate(even[..., ::2, ::2], scale_factor=2.0, mode="nearest")
        npr = even - down_up
        npr = F.pad(npr, (0, w % 2, 0, h % 2))[..., 2:-2, 2:-2]
        return torch.cat([srm * 4.0, npr * 4.0], dim=1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        b, k = patches.shape[:2]
        x = patches.flatten(0, 1)
        feats = self.convs(self.norm_in(self.residuals(x)))
        feats = feats.mean(dim=(2, 3)).view(b, k, -1)
        pooled = torch.cat([feats.mean(dim=1), feats.amax(dim=1)], dim=1)
        return self.proj(pooled)


class FakeDetector(nn.Module):
    """The fused model. ``forward(view, patches)`` returns one logit per image.

    Args (forward):
        view: the whole image resized to a square, uint8 or float in [0, 255], (B, 3, G, G).
        patches: native-resolution crops, uint8 or float in [0, 255], (B, K, 3, P, P).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if not (cfg.use_backbone or cfg.use_colour or cfg.use_texture):
            raise ValueError("at least one of backbone, colour and texture must be used")
        pre = cfg.preprocess
        self.register_buffer("mean", torch.tensor(pre.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pre.std).view(1, 3, 1, 1), persistent=False)
        dim = 0
        self.backbone = None
        if cfg.use_backbone:
            self.backbone = create_backbone(cfg.backbone, **cfg.backbone_kwargs)
            dim += self.backbone.num_features
        self.colour = ColourBranch(cfg.colour_bins, cfg.colour_dim) if cfg.use_colour else None
        dim += cfg.colour_dim if cfg.use_colour else 0
        self.texture = TextureBranch(cfg.texture_width, cfg.texture_dim) if cfg.use_texture else None
        dim += cfg.texture_dim if cfg.use_texture else 0
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(dim, 1)

    def features(self, view: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """The fused feature vector that the head reads, (B, D)."""
        rgb = view.float() / 255.0
        parts = []
        if self.backbone is not None:
            # channels_last: faster for these depthwise/pointwise convolutions on the GPU and
            # on the CPU alike.
            x = ((rgb - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            parts.append(self.backbone(x).float())
        if self.colour is not None:
            parts.append(self.colour(rgb).float())
        if self.texture is not None:
            parts.append(self.texture(patches.float() / 255.0).float())
        return torch.cat(parts, dim=1)

    def fuse_for_inference(self) -> "FakeDetector":
        """Folds every BatchNorm that follows a convolution into it and stores the weights
        channels-last (benchmarks/benchmark.py compares the two). Same outputs to float
        rounding. For inference only, for good: ``train()`` raises and ``checkpoint.save``
        refuses the model, which no longer has the trained BatchNorm layers."""
        self.eval()
        # what the checkpoint holds (fakedet info reports it), before BatchNorm disappears
        self.trained_parameters = sum(p.numel() for p in self.parameters())
        if self.backbone is not None:
            fold_batchnorm(self.backbone)
        if self.texture is not None:
            layers = list(self.texture.convs)
            for i in range(len(layers) - 1):
                if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
                    fold_conv_bn(layers[i], layers[i + 1])
                    self.texture.convs[i + 1] = nn.Identity()
        self.fused = True
        return self.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> "FakeDetector":
        if mode and getattr(self, "fused", False):
            raise RuntimeError("a model fused for inference cannot be trained")
        return super().train(mode)

    def logit(self, features: torch.Tensor) -> torch.Tensor:
        """The head: one logit per row of :meth:`features`."""
        return self.head(self.dropout(features)).squeeze(1)

    def forward(self, view: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(view, patches))
