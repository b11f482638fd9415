"""What a scan's story finder does to upright, phone-shaped **photos** (not screenshots): the
labelled sets hold almost none (no val image and two train images are at least
``STORY_SHAPE`` times as high as wide), so the checks on their unedited images say little about
them. Synthetic scenes instead, each layered top to bottom: a busy edge (twigs, power lines; or
none), a smooth sky, studio wall, fog, bokeh or dusk, a busy band across the middle (buildings,
a subject), a smooth lower part (snow, water, floor), a busy bottom edge (grass; or none); with
sensor grain of several strengths, at 540x960 and 1080x1920, as PNG and as JPEG q85 and q70.
Such scenes are what a story finder can mistake for a story (smooth margins around a picture),
so they are a hard case, not a sample of phone photos.

For each setting (``decode``'s module settings, ``NAME=VALUE``; ``shipped``: as shipped), the
scenes that :func:`fakedet.data.decode.picture_to_score` cuts out (scored on a box), names
(scored whole, ``Result.framed``) or leaves whole:

    python experiments/upright_photos.py --settings "shipped;STORY_NOTE_TOLS=();STORY_FILL=0.8" \\
        --json results/2026-12-07/upright_photos.json

No model is run.
"""

from __future__ import annotations

import argparse
import ast
import io
import itertools
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from fakedet.data import decode
from fakedet.data.decode import picture_to_score, scored_framed
from fakedet.data.preprocess import PreprocessConfig

KINDS = ("sky_snow", "studio", "fog", "bokeh", "dusk")


def _branches(rng, h: int, w: int, n: int = 40) -> np.ndarray:
    """A mask of thin lines across a band (twigs, power lines, grass blades)."""
    m = np.zeros((h, w), bool)
    for _ in range(n):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        ang, length = rng.uniform(0, np.pi), rng.integers(w // 8, w // 2)
        t = np.linspace(0, 1, 3 * length)
        xs, ys = (x0 + np.cos(ang) * length * t).astype(int), (y0 + np.sin(ang) * length * t).astype(int)
        ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
        m[ys[ok], xs[ok]] = True
        m[np.clip(ys[ok] + 1, 0, h - 1), xs[ok]] = True
    return m


def scene(kind: str, w: int, h: int, grain: float, seed: int, edges: bool) -> Image.Image:
    """One synthetic upright photo (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    if kind == "sky_snow":
        top = np.stack([90 + yy * 0.05, 140 + yy * 0.04, 220 - yy * 0.02], -1)
        low = np.stack([225 + 0 * yy, 228 + 0 * yy, 235 - yy * 0.005], -1) - (yy / h)[..., None] * 10
    elif kind == "studio":  # a vignetted backdrop
        r = np.hypot((xx - w / 2) / w, (yy - h / 2) / h)
        top = low = np.stack([150 - 120 * r ** 2] * 3, -1) + np.array([0, -5, -12])
    elif kind == "fog":
        top = low = np.stack([170 + 20 * yy / h] * 3, -1) + np.array([0, 2, 6])
    elif kind == "bokeh":
        base = rng.integers(30, 220, (6, 4, 3)).astype(np.uint8)
        top = low = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
                               .filter(ImageFilter.GaussianBlur(w / 12)), float)
    else:  # dusk: a strong gradient sky over dark water
        top = np.stack([250 - yy * 0.2, 150 - yy * 0.1, 120 + yy * 0.05], -1)
        low = np.stack([40 + 0 * yy, 50 + yy * 0.02, 80 + 0 * yy], -1)
    b0, b1 = int(0.38 * h), int(0.62 * h)
    arr = np.where((yy < b0)[..., None], top, low).copy()
    arr += rng.normal(0, 1, (h, w))[..., None] * grain
    cell = max(4, w // 30)
    cells = rng.integers(-60, 60, (h // cell + 2, w // cell + 2, 3))
    y, x = np.mgrid[0:b1 - b0, 0:w]
    arr[b0:b1] = arr[b0:b1].mean((0, 1)) + cells[y // cell, x // cell] + rng.normal(0, 12, (b1 - b0, w, 3))
    if edges:
        e = int(0.07 * h)
        for band in (arr[:e], arr[h - e:]):
            m = _branches(rng, e, w)
            band[m] = band[m] * 0.3
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def _jpeg(img: Image.Image, quality) -> Image.Image:
    if quality is None:
        return img
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _setting(text: str) -> dict:
    if text == "shipped":
        return {}
    name, _, value = text.partition("=")
    if not hasattr(decode, name):
        raise SystemExit(f"no setting {name!r} in fakedet.data.decode")
    return {name: ast.literal_eval(value)}


def outcome(img: Image.Image, cfg, setting: dict) -> str:
    shipped = {k: getattr(decode, k) for k in setting}
    for k, v in setting.items():
        setattr(decode, k, v)
    try:
        share, box = picture_to_score(img, cfg)
    finally:
        for k, v in shipped.items():
            setattr(decode, k, v)
    return "cut" if box is not None else "named" if scored_framed(share, box) else "whole"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="shipped",
                    help="';'-separated: shipped, or NAME=VALUE of fakedet.data.decode")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    settings = [s for s in args.settings.split(";") if s]
    cfg = PreprocessConfig()
    counts = {s: {k: {"cut": 0, "named": 0, "whole": 0} for k in KINDS} for s in settings}
    moved = []
    n = 0
    for kind in KINDS:
        for (w, h), grain, edges in itertools.product(((540, 960), (1080, 1920)), (0, 1, 2, 4), (False, True)):
            img = scene(kind, w, h, grain, seed=10 * int(grain) + len(kind), edges=edges)
            for q in (None, 85, 70):
                shot = _jpeg(img, q)
                got = {s: outcome(shot, cfg, _setting(s)) for s in settings}
                for s, o in got.items():
                    counts[s][kind][o] += 1
                if len(set(got.values())) > 1:
                    moved.append({"kind": kind, "size": [w, h], "grain": grain, "edges": edges,
                                  "quality": q, **got})
                n += 1
        print(f"{kind}: " + "; ".join(f"{s}: {counts[s][kind]}" for s in settings), flush=True)
    totals = {s: {o: sum(c[o] for c in counts[s].values()) for o in ("cut", "named", "whole")} for s in settings}
    for s in settings:
        print(f"{s}: {totals[s]} of {n}")
    print(f"scenes whose outcome differs between settings: {len(moved)}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"scenes": n, "settings": settings, "totals": totals,
                                               "counts": counts, "differ": moved}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
