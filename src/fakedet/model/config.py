"""Model and preprocessing configuration.

The configuration travels inside every checkpoint (see :mod:`fakedet.model.checkpoint`), so the way an
image is turned into model inputs at scan time can never drift from the way it was done in
training. This module imports neither torch nor PIL.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# the resampling filters a view can be made with (PIL's names; fakedet.data.decode maps them)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box")


@dataclass
class PreprocessConfig:
    """How one decoded RGB image becomes the model's two inputs.

    Attributes:
        global_size: side of the whole-image view, resized (squashed) to a square; it feeds the
            backbone and the colour branch.
        patch_size: side of the square patches cut at the image's native resolution, never
            resampled; they feed the texture branch.
        num_patches: how many patches per image.
        min_size: images whose shorter side is below this are refused as too small to analyse.
        max_pixels: images with more pixels than this are refused before being decoded.
        mean: per-channel mean used to normalise the whole-image view for the backbone.
        std: per-channel standard deviation, likewise.
        interpolation: PIL resampling filter name for the whole-image view.
    """

    global_size: int = 128
    patch_size: int = 32
    num_patches: int = 8
    min_size: int = 32
    max_pixels: int = 80_000_000
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"

    def __post_init__(self):
        for name in ("global_size", "patch_size", "num_patches", "min_size", "max_pixels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"preprocess {name} must be a positive integer, got {v!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"preprocess interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                             f"got {self.interpolation!r}")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if len(v) != 3 or not all(isinstance(x, (int, float)) for x in v):
                raise ValueError(f"preprocess {name} must be three numbers, got {v!r}")
        if not all(x > 0 for x in self.std):
            raise ValueError(f"preprocess std must be positive, got {self.std!r}")


@dataclass
class ModelConfig:
    """Architecture of the fused detector.

    Attributes:
        name: a human-readable model name, shown by ``fakedet info``.
        backbone: a timm model name, created with ``pretrained=False``
            (``tf_efficientnet_lite0``-``lite4`` by :mod:`fakedet.model.backbones`, without timm).
        backbone_kwargs: extra keyword arguments for ``timm.create_model`` (with any, timm
            builds the backbone).
        use_backbone: include the backbone's pooled features in the fused head.
        use_colour: include the global-colour branch.
        use_texture: include the local-texture branch.
        colour_bins: histogram bins per colour statistic in the colour branch.
        colour_dim: width of the colour branch's output.
        texture_width: channel width of the texture branch's convolutions.
        texture_dim: width of the texture branch's output.
        dropout: dropout before the fused linear head.
        preprocess: the preprocessing contract.
    """

    name: str = "fakedet"
    backbone: str = "tf_efficientnet_lite0"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    use_backbone: bool = True
    use_colour: bool = True
    use_texture: bool = True
    colour_bins: int = 16
    colour_dim: int = 32
    texture_width: int = 32
    texture_dim: int = 64
    dropout: float = 0.2
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Builds a config from a dict, refusing unknown keys so typos never pass silently."""
        data = dict(data)
        pre = data.pop("preprocess", {}) or {}
        _check_keys(cls, data, "model")
        _check_keys(PreprocessConfig, pre, "preprocess")
        if not isinstance(pre, dict):
            raise ValueError("preprocess config must be a mapping")
        pre = {k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()}
        return cls(**data, preprocess=PreprocessConfig(**pre))


def _check_keys(klass: type, data: dict[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(klass)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} config keys: {', '.join(unknown)}")
