"""Training layer: augmentation, what images undergo on their way to a viewer, drawn alike for both classes."""

from __future__ import annotations

import io
import random
from typing import Mapping

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from fakedet.training.recipe import Augment

RESAMPLERS = [Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC,
              Image.Resampling.LANCZOS, Image.Resampling.BOX]


def augment(img: Image.Image, rng: random.Random, cfg: Augment | Mapping, min_size: int) -> Image.Image:
    """Random transformations that images undergo on the way to a viewer. Never looks at the label.
    ``cfg``: the recipe's ``train.augment`` (an :class:`Augment`, or a dict of its keys)."""
    if not isinstance(cfg, Augment):
        cfg = Augment(**cfg)
    if cfg.p_frame and rng.random() < cfg.p_frame:
        img = reframe(img, rng, min_size)
    w, h = img.size
    if rng.random() < cfg.p_crop and min(w, h) >= 2 * min_size:
        f = rng.uniform(0.7, 1.0)
        cw, ch = max(min_size, int(w * f)), max(min_size, int(h * f))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < cfg.p_colour:
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.9, 1.1))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.9, 1.1))
    if rng.random() < cfg.p_resize:
        w, h = img.size
        s = rng.uniform(0.5, 1.5)
        nw, nh = max(min_size, int(w * s)), max(min_size, int(h * s))
        img = img.resize((nw, nh), rng.choice(RESAMPLERS))
    # Optional (off unless the recipe sets them, so older recipes draw the same numbers):
    # shrink without enlarging back, and sharpen, so that both classes come in fine-grained
    # and in soft versions and per-pixel sharpness cannot stand in for the label.
    if cfg.p_downscale and rng.random() < cfg.p_downscale:
        w, h = img.size
        s = rng.uniform(0.35, 0.8)
        nw, nh = max(min_size, int(w * s)), max(min_size, int(h * s))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), rng.choice(RESAMPLERS[1:]), reducing_gap=None)
    if cfg.p_sharpen and rng.random() < cfg.p_sharpen:
        img = img.filter(ImageFilter.UnsharpMask(rng.uniform(0.5, 2.0), rng.randint(40, 150), 2))
    if rng.random() < cfg.p_blur:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    if rng.random() < cfg.p_noise:
        arr = np.asarray(img, dtype=np.float32)
        arr = arr + np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(1, 5), arr.shape)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < cfg.p_jpeg:
        img = recompress(img, "JPEG", rng.randint(30, 100))
        if rng.random() < 0.3:
            img = recompress(img, "JPEG", rng.randint(30, 100))
    elif rng.random() < cfg.p_webp:
        img = recompress(img, "WEBP", rng.randint(50, 100))
    return img


def reframe(img: Image.Image, rng: random.Random, min_size: int) -> Image.Image:
    """A new framing of the same picture, drawn alike for both classes, so that how a photo is
    framed (a tight face crop, or a head-and-shoulders portrait with background around it)
    cannot stand in for the label. Half the time it zooms in: a crop of 20-60 % of the area at
    native resolution. Otherwise it zooms out: the picture, shrunk to 40-75 % of the side, on a
    backdrop of itself enlarged and strongly blurred (as a blurred-background portrait or a
    photo posted on a blurred copy of itself looks)."""
    w, h = img.size
    if rng.random() < 0.5:
        f = rng.uniform(0.2, 0.6) ** 0.5
        cw, ch = max(min_size, int(w * f)), max(min_size, int(h * f))
        if cw >= w or ch >= h:
            return img
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        return img.crop((x, y, x + cw, y + ch))
    s = rng.uniform(0.4, 0.75)
    nw, nh = max(min_size, int(w * s)), max(min_size, int(h * s))
    if nw >= w or nh >= h:
        return img
    back = img.resize((max(1, w // 8), max(1, h // 8)), Image.Resampling.BOX).resize(
        (w, h), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(rng.uniform(2.0, 6.0)))
    x, y = rng.randint(0, w - nw), rng.randint(0, h - nh)
    back.paste(img.resize((nw, nh), rng.choice(RESAMPLERS[1:]), reducing_gap=None), (x, y))
    return back


def face_crop(img: Image.Image, box, rng: random.Random) -> Image.Image:
    """A square crop around a face box ``(x0, y0, x1, y1)``: 1.2-1.6 times the box's longer side,
    centred on it and moved back inside the image where it sticks out (smaller when the image
    is). The same for both classes of a set (``train.face_crop_sets``)."""
    w, h = img.size
    x0, y0, x1, y1 = (float(v) for v in box)
    side = min(w, h, int(max(x1 - x0, y1 - y0) * rng.uniform(1.2, 1.6)))
    if side < 2:
        return img
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(min(max(cx - side / 2, 0), w - side))
    top = int(min(max(cy - side / 2, 0), h - side))
    return img.crop((left, top, left + side, top + side))


def native_crop(img: Image.Image, size: int, rng: random.Random | None) -> Image.Image:
    """Experiment (recipe "view_crop"): a size x size crop at native resolution (random in
    training, centred in evaluation), so that the backbone sees unresampled pixels. Images
    smaller than ``size`` are left whole (and resized by the preprocessing as usual)."""
    w, h = img.size
    if min(w, h) <= size:
        return img
    x = rng.randint(0, w - size) if rng else (w - size) // 2
    y = rng.randint(0, h - size) if rng else (h - size) // 2
    return img.crop((x, y, x + size, y + size))


def recompress(img: Image.Image, fmt: str, quality: int) -> Image.Image:
    """The image saved as ``fmt`` at ``quality`` and decoded again."""
    buf = io.BytesIO()
    img.save(buf, fmt, quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")
