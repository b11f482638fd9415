"""Training layer: self-blended pseudo-fakes, a face crop blended into a perturbed copy of itself (two versions)."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from fakedet.training.augment import RESAMPLERS


def self_blend(img: Image.Image, rng: random.Random) -> Image.Image:
    """A self-blended pseudo-fake (after Shiohara & Yamasaki, CVPR 2022): a colour- and
    geometry-perturbed copy of a face crop blended into itself through a soft elliptical mask
    around the centre, leaving the blending boundary and colour mismatch of a face swap."""
    w, h = img.size
    src = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    src = ImageEnhance.Contrast(src).enhance(rng.uniform(0.85, 1.15))
    src = ImageEnhance.Color(src).enhance(rng.uniform(0.8, 1.2))
    if rng.random() < 0.5:
        src = src.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)) if rng.random() < 0.5
                         else ImageFilter.SHARPEN)
    s = rng.uniform(0.95, 1.05)
    dx, dy = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.03, 0.03) * h
    src = src.transform((w, h), Image.Transform.AFFINE, (1 / s, 0, -dx, 0, 1 / s, -dy),
                        resample=rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.45, 0.55), h * rng.uniform(0.45, 0.6)
    ax, ay = w * rng.uniform(0.22, 0.38), h * rng.uniform(0.28, 0.45)
    mask = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1).astype(np.uint8) * 255
    mask_img = Image.fromarray(mask).filter(ImageFilter.GaussianBlur(rng.uniform(2, 0.08 * min(w, h))))
    m = np.asarray(mask_img, dtype=np.float32)[..., None] / 255.0 * rng.choice([0.5, 0.75, 1.0, 1.0])
    out = np.asarray(src, dtype=np.float32) * m + np.asarray(img, dtype=np.float32) * (1 - m)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def face_mask(w: int, h: int, rng: random.Random, box=None) -> np.ndarray:
    """A soft blending mask in [0, 1], shape (h, w): an ellipse around the face ``box``
    (x0, y0, x1, y1; the centre of the image when None) whose outline is warped by a few random
    low-frequency harmonics, so that the boundary is never the same clean ellipse, then blurred."""
    if box is None:
        box = (w * 0.2, h * 0.15, w * 0.8, h * 0.9)
    x0, y0, x1, y1 = box
    bw, bh = max(8.0, x1 - x0), max(8.0, y1 - y0)
    cx = (x0 + x1) / 2 + rng.uniform(-0.05, 0.05) * bw
    cy = (y0 + y1) / 2 + rng.uniform(-0.02, 0.08) * bh
    ax, ay = bw / 2 * rng.uniform(0.65, 0.95), bh / 2 * rng.uniform(0.75, 1.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xx - cx) / ax, (yy - cy) / ay
    theta = np.arctan2(dy, dx)
    radius = np.ones_like(theta)
    for k in (2, 3, 4, 5):
        radius += rng.uniform(-0.06, 0.06) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    hard = ((dx * dx + dy * dy) <= radius * radius).astype(np.uint8) * 255
    sigma = rng.uniform(0.02, 0.12) * min(bw, bh)
    soft = Image.fromarray(hard).filter(ImageFilter.GaussianBlur(max(1.0, sigma)))
    return np.asarray(soft, dtype=np.float32) / 255.0


def perturbed_copy(img: Image.Image, rng: random.Random, box=None) -> np.ndarray:
    """The copy of a face crop that a self-blend blends in (float32 array, same size): a colour
    shift (per channel, brightness, contrast, saturation), sometimes a frequency change (down-
    and up-scaling, sharpening or blur), then a slight rescale and move relative to the face
    ``box``; where the moved copy leaves the frame, the original pixels."""
    w, h = img.size
    arr = np.asarray(img, dtype=np.float32)
    src = arr + np.array([rng.uniform(-20, 20) for _ in range(3)], dtype=np.float32)
    mean = src.mean()
    src = (src - mean) * rng.uniform(0.9, 1.1) + mean + rng.uniform(-0.08, 0.08) * 255
    grey = src.mean(axis=2, keepdims=True)
    src = grey + (src - grey) * rng.uniform(0.75, 1.25)
    src_img = Image.fromarray(np.clip(src + 0.5, 0, 255).astype(np.uint8))
    r = rng.random()
    if r < 0.35:
        f = rng.uniform(0.35, 0.8)
        small = src_img.resize((max(8, round(w * f)), max(8, round(h * f))), rng.choice(RESAMPLERS))
        src_img = small.resize((w, h), rng.choice(RESAMPLERS[1:]))
    elif r < 0.6:
        src_img = src_img.filter(ImageFilter.UnsharpMask(rng.uniform(1, 2.5), rng.randint(50, 150), 2))
    elif r < 0.75:
        src_img = src_img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    s = rng.uniform(0.95, 1.05)
    fw = (box[2] - box[0]) if box else w * 0.6
    dx, dy = rng.uniform(-0.03, 0.03) * fw, rng.uniform(-0.03, 0.03) * fw
    cx, cy = w / 2, h / 2  # scale about the centre, then shift
    affine = (1 / s, 0, cx - (cx + dx) / s, 0, 1 / s, cy - (cy + dy) / s)
    src_img = src_img.transform((w, h), Image.Transform.AFFINE, affine,
                                resample=rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC]))
    # Where the moved copy leaves the frame uncovered, keep the original pixels, not black ones.
    covered = Image.new("L", (w, h), 255).transform((w, h), Image.Transform.AFFINE, affine)
    src = np.where(np.asarray(covered)[..., None] == 255, np.asarray(src_img, dtype=np.float32), arr)
    return src


def self_blend_v2(img: Image.Image, rng: random.Random, box=None) -> Image.Image:
    """A stronger self-blended pseudo-fake, closer to Shiohara & Yamasaki (CVPR 2022): one of two
    copies of the face gets a colour shift (per channel, brightness, contrast, saturation) and a
    frequency change (down- and up-scaling, sharpening or blur), one is slightly rescaled and
    moved, and they are blended through a warped soft mask around the detected face (``box``)
    with a random blend ratio. What is left is the blending boundary and the colour and
    sharpness mismatch inside it: the traces of a face swap or a pasted face edit."""
    w, h = img.size
    arr = np.asarray(img, dtype=np.float32)
    src = perturbed_copy(img, rng, box)
    if rng.random() < 0.5:  # the perturbed copy is the outside instead of the face
        arr, src = src, arr
    m = face_mask(w, h, rng, box)[..., None] * rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    out = src * m + arr * (1 - m)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
