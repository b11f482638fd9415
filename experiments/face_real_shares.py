#!/usr/bin/env python
"""How often face mode labels images `real`, per set and class, at several `real` thresholds.

    python experiments/face_real_shares.py --real-below 0.376141,0.056076 \
        --sets ffpp_faces,dfdc_faceswap,lfw_faceswap,stylegan2_faces,utkface_real,unsplash_portraits

Every readable image of each set's ``--split`` (test by default) is scored once as
``scan --faces`` scores it (the shipped weights and face expert, or ``--weights`` and
``--no-face-expert``); each image is then labelled by the checkpoint's face-mode `fake`
threshold and each ``--real-below`` value where a face was found, and by the whole-image
thresholds where none was (as a scan does). Reported: per set and class, the share labelled
`real` at each value, and the share of images in which a face was found. For a threshold
change that moves only face mode's `real` threshold, the scores are the same before and after,
so one pass gives both. Reports a split; chooses nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.inference.result import label_for


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", required=True, help="comma-separated set names")
    ap.add_argument("--split", default="test")
    ap.add_argument("--real-below", required=True, help="comma-separated face-mode real thresholds")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--no-face-expert", action="store_true")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    det = Detector.load(args.weights, device="cpu", faces=True, workers=args.workers, provenance=False,
                        expert=None if args.no_face_expert else "auto")
    values = [float(v) for v in args.real_below.split(",")]
    fake_at = det.face_cutoffs[0]
    whole_fake, whole_real = det.cutoffs
    out = {"fake_at": fake_at, "whole_image": [whole_fake, whole_real], "real_below": values, "sets": {}}
    for name in args.sets.split(","):
        rows = read_manifest(str(manifest(name)), args.split)
        res = det.predict([r.path for r in rows])
        y = np.array([r.label for r, x in zip(rows, res) if x.ok])
        ok = [x for x in res if x.ok]
        found = np.array([bool(x.faces) for x in ok])
        # as a scan labels: `real` in face mode needs every score below the value, the whole image's too
        every = [max([x.p_whole] + [g["p_fake"] for g in x.faces]) if f else x.p_fake for x, f in zip(ok, found)]
        labels = {v: np.array([label_for(x.p_fake, fake_at, v, a) if f else label_for(x.p_fake, whole_fake, whole_real)
                               for x, f, a in zip(ok, found, every)]) for v in values}
        entry = {"errors": len(res) - len(ok)}
        for cls, lab in (("real", 0), ("fake", 1)):
            sel = y == lab
            if not sel.any():
                continue
            entry[cls] = {"n": int(sel.sum()), "face_found": float(found[sel].mean()),
                          "labelled_real": {str(v): float(np.mean(labels[v][sel] == "real")) for v in values},
                          "labelled_fake": float(np.mean(labels[values[0]][sel] == "fake"))}
        out["sets"][name] = entry
        print(f"  {name}: {len(ok)} images scored", file=sys.stderr, flush=True)

    print(f"face mode: fake at >= {fake_at:.6f}; images without a face: whole-image thresholds "
          f"{whole_fake:.6f} / {whole_real:.3g}; {args.split} split\n")
    head = " | ".join(f"labelled real (< {v:.6f})" for v in values)
    print(f"| set | class | n | face found | {head} | labelled fake |")
    print("|---|---|---|---|" + "---|" * (len(values) + 1))
    for name, entry in out["sets"].items():
        for cls in ("real", "fake"):
            if cls in entry:
                e = entry[cls]
                cells = " | ".join(f"{e['labelled_real'][str(v)]:.3f}" for v in values)
                print(f"| {name} | {cls} | {e['n']} | {e['face_found']:.3f} | {cells} | {e['labelled_fake']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
