"""Evaluation layer: face composites, labelled face crops pasted into real photos, for studies of face mode.

Each face crop, real or fake, is pasted at its native resolution at a random place into a real
background photo (imagenet_real_photos, upscaled to 1024 px on the long side, drawn alike for
both classes) and saved as JPEG q95, so the face covers about 5-10 % of the pixels.
``experiments/face_eval.py`` builds them from test faces on test/val backgrounds,
``experiments/calibrate_faces.py`` from val faces on train backgrounds, so the two never share an image.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from PIL import Image

from fakedet.data.sets import manifest, names

FACE_SETS = names(faces=True)


def rows(root: Path, name: str, split: str) -> list[dict]:
    """The manifest rows of one split of a set, as dictionaries of the CSV's columns."""
    with open(manifest(name, root)) as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def build(root: Path, out: Path, n: int, seed: int, split: str = "test", bg_splits=("test", "val"),
          sets=FACE_SETS) -> list[dict]:
    """Composites of ``split`` face crops of ``sets`` on real backgrounds from ``bg_splits`` of
    imagenet_real_photos."""
    rng = random.Random(seed)
    bgs = [root / "imagenet_real_photos" / r["file"] for s in bg_splits for r in rows(root, "imagenet_real_photos", s)]
    items = []
    for name in sets:
        for label in (0, 1):
            cand = [r for r in rows(root, name, split) if int(r["label"]) == label]
            for r in rng.sample(cand, min(n // 2, len(cand))):
                face = Image.open(root / name / r["file"]).convert("RGB")
                bg = Image.open(rng.choice(bgs)).convert("RGB")
                s = 1024 / max(bg.size)
                bg = bg.resize((round(bg.width * s), round(bg.height * s)), Image.Resampling.BICUBIC)
                if face.width >= bg.width or face.height >= bg.height:
                    continue
                x, y = rng.randint(0, bg.width - face.width), rng.randint(0, bg.height - face.height)
                bg.paste(face, (x, y))
                path = out / f"{name}_{label}_{len(items):05d}.jpg"
                bg.save(path, quality=95)
                items.append({"path": str(path), "label": label, "set": name,
                              "rect": (x, y, x + face.width, y + face.height),
                              "face_fraction": face.width * face.height / (bg.width * bg.height)})
    return items


def hit(boxes, rect) -> bool:
    """Whether a detected box's centre lies inside the pasted crop ``rect``."""
    x0, y0, x1, y1 = rect
    return any(x0 <= (b[0] + b[2]) / 2 <= x1 and y0 <= (b[1] + b[3]) / 2 <= y1 for b in boxes)
