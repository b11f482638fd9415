#!/usr/bin/env python
"""Face-mode throughput with and without the face expert, in the same run.

    python benchmarks/face_mode.py                      # val images of the face sets in ../shared/data
    python benchmarks/face_mode.py --images DIR --rounds 5 --json runs/face_mode_speed.json
    python benchmarks/face_mode.py --whole --images ../shared/data/unsplash_portraits/real --resize 4032x3024

``Detector.load(faces=True)`` (API, default workers, the model already loaded) scores the same
images with the network alone (``expert=None``, today's face mode) and with the shipped face
expert (``expert="auto"``; ``--expert FILE``: that file), alternating, ``--rounds`` times each
after one warm-up pass of each; it reports the median images/s of each and their ratio. The images: every image under
``--images``, or the first ``--n`` val images of each face set (ffpp_faces, dfdc_faceswap,
lfw_faceswap) read from their manifests. Decision record:
docs/decisions/2026-12-03-a-fused-face-mode-in-the-product.md (rule 3: the ratio at least 0.6).

``--whole`` adds the default scan (``faces=False``, the whole image only) to the alternation and
reports face mode's speed against it, the comparison that decides whether face mode could be the
default (docs/decisions/2026-12-04-face-mode-speed-against-the-default-scan.md). ``--resize WxH``
first makes a photo of that size from each image (centre crop to the aspect, bicubic resize, JPEG
quality 90, in a temporary folder), so that portraits stand in for 1024 px or 12 MP photos
with a face in them. ``--detect-side N`` (a probe; the product's is
``fakedet.model.faces.DETECT_MAX_SIDE``) makes the face finder search a copy at most N pixels
on a side, which skips faces under about 32 / N of the image's longer side. ``--cached-faces``
(a probe) keeps the faces found in the warm-up pass and hands them back in the timed passes:
face mode's cost with a face finder that cost nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageOps

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.data.sources import walk
from fakedet.model import expert as fx
from fakedet.model import faces
from fakedet.model.checkpoint import CheckpointError

FACE_SETS = ("ffpp_faces", "dfdc_faceswap", "lfw_faceswap")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=None, help="a folder of images [default: the face sets' val images]")
    ap.add_argument("--n", type=positive, default=None,
                    help="val images per face set (default 70), or the first N images under --images (default all)")
    ap.add_argument("--rounds", type=positive, default=3)
    ap.add_argument("--expert", default=None, help="a face expert file [default: the shipped one]")
    ap.add_argument("--whole", action="store_true", help="also time the default scan (the whole image only)")
    ap.add_argument("--resize", type=size, default=None, metavar="WxH",
                    help="score photos of this size made from the images")
    ap.add_argument("--detect-side", type=positive, default=None, metavar="N",
                    help=f"face finding on a copy at most N px on a side (default {faces.DETECT_MAX_SIDE})")
    ap.add_argument("--cached-faces", action="store_true",
                    help="time face mode with the faces found in the warm-up pass (a finder that costs nothing)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.detect_side:
        faces.DETECT_MAX_SIDE = args.detect_side
    if args.cached_faces:
        cache_faces()
    expert = Path(args.expert) if args.expert else fx.default_expert_path()
    if not expert.is_file():
        sys.exit(f"no face expert at {expert}")
    if args.images:
        paths = sorted(it.path for it in walk(args.images))[:args.n]
    else:
        n = 70 if args.n is None else args.n
        paths = [im.path for name in FACE_SETS for im in read_manifest(manifest(name), split="val")[:n]]
    if not paths:
        sys.exit("no images to time")
    with tempfile.TemporaryDirectory(prefix="fakedet-face-speed-") as tmp:
        if args.resize:
            paths = resized(paths, args.resize, tmp)
        return measure(args, paths, expert)


def cache_faces() -> None:
    """``faces.find_faces`` (looked up at each call by the decode pipeline) answers from a cache
    after its first call on an image. An image is known by its size, mode and 16 of its pixels
    (a 4x4 grid), read in microseconds: two images alike at all 16 would share their faces, which
    the distinct photos timed here are not."""
    find = faces.find_faces
    cache: dict = {}

    def cached(img, detector=None):
        w, h = img.size
        key = (w, h, img.mode, *(img.getpixel((x * w // 5, y * h // 5)) for x in range(1, 5) for y in range(1, 5)))
        if key not in cache:
            cache[key] = find(img, detector)
        return cache[key]

    faces.find_faces = cached


def positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return n


def size(text: str) -> str:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1024x768, not {text!r}")
    return f"{int(w)}x{int(h)}"


def resized(paths: list, size: str, folder: str) -> list:
    """Each image centre-cropped to ``size``'s aspect and resized to it, as a JPEG (q90) in ``folder``."""
    w, h = (int(v) for v in size.lower().split("x"))
    out = []
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            photo = ImageOps.fit(ImageOps.exif_transpose(im).convert("RGB"), (w, h), Image.Resampling.BICUBIC)
        out.append(os.path.join(folder, f"{i:05d}.jpg"))
        photo.save(out[-1], quality=90)
    return out


def measure(args, paths: list, expert: Path) -> int:
    try:
        modes = {"network": Detector.load(device="cpu", faces=True, expert=None),
                 "fused": Detector.load(device="cpu", faces=True, expert=expert if args.expert else "auto")}
    except (fx.ExpertError, CheckpointError) as exc:
        sys.exit(f"{expert}: {exc}")
    if modes["fused"].expert is None:  # "auto" skips an expert made for other weights or uncalibrated
        sys.exit("the shipped face expert was not made for the shipped weights, or has no verdicts")
    if args.whole:
        modes["whole"] = Detector.load(device="cpu", faces=False)
    times = {k: [] for k in modes}
    for rnd in range(args.rounds + 1):  # round 0 warms up
        for name, det in modes.items():
            t0 = time.perf_counter()
            res = det.predict(paths)
            dt = time.perf_counter() - t0
            if any(not r.ok for r in res):
                sys.exit(f"{name}: {sum(not r.ok for r in res)} images failed")
            if rnd:
                times[name].append(dt)
    ips = {k: len(paths) / statistics.median(v) for k, v in times.items()}
    faces_found = sum(bool(r.faces) for r in modes["network"].predict(paths))
    res = {"images": len(paths), "rounds": args.rounds, "images_per_s": ips, "expert": str(expert),
           "ratio_fused_to_network": ips["fused"] / ips["network"], "resize": args.resize,
           "detect_max_side": faces.DETECT_MAX_SIDE, "cached_faces": args.cached_faces,
           "faces_found": faces_found,
           "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                       "python": platform.python_version(), "torch": torch.__version__},
           "workers": modes["fused"].workers}
    print(f"| face mode | images/s ({len(paths)} images, median of {args.rounds}) |\n|---|---|")
    for k, v in ips.items():
        print(f"| {k} | {v:.1f} |")
    print(f"fused / network: {res['ratio_fused_to_network']:.2f}")
    if args.whole:
        for k in ("network", "fused"):
            res[f"ratio_{k}_to_whole"] = ips[k] / ips["whole"]
            print(f"{k} / whole: {res[f'ratio_{k}_to_whole']:.2f}")
    print(f"images with a face found: {faces_found} of {len(paths)}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
