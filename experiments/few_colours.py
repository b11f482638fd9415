#!/usr/bin/env python
"""How many images of every set (all splits, real and fake) have one or two colours only, or
are almost all black and white, decoded as a scan decodes them: the images a scan gives no
score since 2026-12-06 (``fakedet.data.decode.check_colours``: a blank image, a 1-bit one, a
dithered copy sent on as JPEG). Each one found would leave the evaluations' figures.

    python experiments/few_colours.py --json runs/few_colours.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import BY_NAME, manifest


def colours(path: str) -> "str | None":
    """Why a scan refuses the image for its colours ("1", "2": that many colours; "bw": almost all
    black and white), None where it does not."""
    from fakedet.data.decode import FEW_COLOURS, black_and_white, picture_to_score, to_rgb, upright
    from fakedet.data.preprocess import PreprocessConfig

    with Image.open(path) as img:
        img.seek(0)
        img.load()
        rgb = to_rgb(upright(img))
        found = rgb.getcolors(FEW_COLOURS)
        if found is not None:
            return str(len(found))
        box = picture_to_score(rgb, PreprocessConfig())[1]  # read on the picture a scan scores
        return "bw" if black_and_white(rgb, box) else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out, total, found = {}, 0, []
    for name in BY_NAME:
        rows = read_manifest(str(manifest(name)))
        hits = [(r.path, r.label, n) for r in rows if (n := colours(r.path)) is not None]
        out[name] = {label: {"images": sum(r.label == k for r in rows),
                             "refused": sum(h[1] == k for h in hits),
                             "few_colours": sum(h[1] == k and h[2] != "bw" for h in hits)}
                     for k, label in ((0, "real"), (1, "fake"))}
        total += len(rows)
        found += hits
        print(f"{name}: {len(hits)} of {len(rows)} images refused ({out[name]})", flush=True)
    print(f"all sets: {len(found)} of {total}")
    result = {"sets": out, "images": total,
              "found": [{"path": p, "label": lab, "why": n} for p, lab, n in found]}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
