"""Data layer: the preprocessing contract, how one decoded image becomes the model's inputs.

It is part of every checkpoint's model config (:class:`fakedet.model.config.ModelConfig` holds
one), and :mod:`fakedet.data.decode` follows it. This module imports neither torch nor PIL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# the resampling filters a view can be made with (PIL's names; fakedet.data.decode maps them)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box")


def _finite(x) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer too large for a float
        return False


#: the largest value a checkpoint may give each size (the shipped weights: 128, 32, 8, 32, 80 MP)
_LARGEST = {"global_size": 1024, "patch_size": 512, "num_patches": 256, "min_size": 4096,
            "max_pixels": 1_000_000_000}


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
            if v > _LARGEST[name]:  # a checkpoint asking for more would take gigabytes a batch
                raise ValueError(f"preprocess {name} must be at most {_LARGEST[name]}, got {v!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"preprocess interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                             f"got {self.interpolation!r}")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if len(v) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                      and _finite(x) for x in v):
                raise ValueError(f"preprocess {name} must be three finite numbers, got {v!r}")
        if not all(x > 0 for x in self.std):
            raise ValueError(f"preprocess std must be positive, got {self.std!r}")
