#!/usr/bin/env python
"""What skipping ImageOps.exif_transpose's copy saves: decode + preprocess, old way and new.

    python benchmarks/bench_upright.py

One photo-like JPEG per size (as benchmarks/benchmark.py makes them), decoded and preprocessed on
one thread with fakedet's allocator setting, alternating the two ways in rounds so that a drift
in the machine's speed hits both alike. Prints milliseconds per image.
"""

from __future__ import annotations

import io
import sys
import time

from PIL import Image, ImageOps

from fakedet.data import decode as imageio
from fakedet.evaluation.synthetic import photo_like
from fakedet.inference.alloc import tune_malloc
from fakedet.model.config import PreprocessConfig


def main() -> int:
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    tune_malloc()
    cfg = PreprocessConfig()
    print("| image | ImageOps.exif_transpose (copy), ms | imageio.upright, ms |\n|---|---|---|")
    for (w, h), n in (((4032, 3024), 10), ((1024, 768), 200)):
        buf = io.BytesIO()
        photo_like(w, h, 1).save(buf, "JPEG", quality=90)
        data = buf.getvalue()

        def new():
            return imageio.preprocess(imageio.load(data, cfg), cfg)  # noqa: B023

        def old():
            im = Image.open(io.BytesIO(data))  # noqa: B023
            im.load()
            return imageio.preprocess(imageio.to_rgb(ImageOps.exif_transpose(im) or im), cfg)

        secs = {"old": 0.0, "new": 0.0}
        for _ in range(5):
            for name, fn in (("new", new), ("old", old)):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                secs[name] += time.perf_counter() - t0
        print(f"| {w}x{h} JPEG | {1000 * secs['old'] / (5 * n):.2f} | {1000 * secs['new'] / (5 * n):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
