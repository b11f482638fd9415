"""Evaluation layer: synthetic photo-like images (gradients, texture, noise), so benchmarks run without data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# the benchmarks' image sizes: 224 px face crops, 1024 px JPEGs, 12-megapixel phone JPEGs
SIZES = {"face": (224, 224), "1024": (1024, 768), "12mp": (4032, 3024),
         # a phone held upright (a screenshot's shape: the smooth-margin measure runs on it)
         "phone": (1170, 2532)}


def photo_like(w: int, h: int, seed: int) -> Image.Image:
    """A w x h RGB image: smooth random colour fields with a little per-pixel noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_images(folder: Path, size: str, n: int) -> list[str]:
    """``n`` JPEGs of one of SIZES in ``folder`` (kept when already there); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = SIZES[size]
    paths = []
    base = [photo_like(w, h, s) for s in range(min(n, 8))]
    for i in range(n):
        p = folder / f"{size}_{i:05d}.jpg"
        if not p.exists():
            img = base[i % len(base)]
            if i >= len(base):  # vary content cheaply: flips and small crops stay the same size
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 2 else img
            img.save(p, "JPEG", quality=90 - (i % 5))
        paths.append(str(p))
    return paths
