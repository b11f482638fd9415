#!/usr/bin/env python
"""What the provenance reader finds in the labelled data sets: evidence items by set, class,
kind and verdict, so that a reader that would call real photos generated shows up here.

    python experiments/provenance_census.py [--root DIR] [--json census.json]

Reads every image file under each set's real/ and fake/ folders (metadata only: no decoding,
no model); the data root is $FAKEDET_DATA, by default ../shared/data beside the checkout.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

from fakedet.data.provenance import c2pa_available, read_evidence
from fakedet.data.sets import data_root
from fakedet.data.sources import is_image_name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="data root (default: $FAKEDET_DATA or ../shared/data)")
    ap.add_argument("--json", default=None, help="also write the counts here")
    args = ap.parse_args(argv)
    root = Path(args.root) if args.root else data_root()
    files = collections.Counter()
    found = collections.Counter()
    example: dict = {}
    t0 = time.perf_counter()
    for set_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for dirpath, _, names in os.walk(set_dir):
            parts = Path(dirpath).relative_to(set_dir).parts
            cls = "fake" if "fake" in parts else "real" if "real" in parts else "other"
            for name in sorted(names):
                if not is_image_name(name):
                    continue
                path = os.path.join(dirpath, name)
                files[(set_dir.name, cls)] += 1
                with open(path, "rb") as fh:
                    data = fh.read()
                for e in read_evidence(data):
                    key = (set_dir.name, cls, e["kind"], e["says"])
                    found[key] += 1
                    example.setdefault(key, (os.path.relpath(path, root), e["detail"][:100]))
    elapsed = time.perf_counter() - t0
    total = sum(files.values())
    print(f"{total} image files in {root} ({elapsed:.1f} s; c2pa extra installed: {c2pa_available()})")
    print(f"{'set':<22} {'class':<6} {'files':>7}")
    for (name, cls), n in sorted(files.items()):
        print(f"{name:<22} {cls:<6} {n:>7}")
    print("evidence found (set, class, kind, says: count, e.g.):" if found else "no evidence found in any file")
    for key, n in sorted(found.items(), key=lambda kv: kv[0][:3] + (str(kv[0][3]),)):
        print(f"  {key[0]}, {key[1]}, {key[2]}, {key[3]}: {n}  e.g. {example[key][0]}: {example[key][1]}")
    generated_real = sum(n for k, n in found.items() if k[1] == "real" and k[3] in ("generated", "partly generated"))
    print(f"real images with evidence saying generated: {generated_real}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "root": str(root), "files": {f"{k[0]}/{k[1]}": n for k, n in files.items()},
            "evidence": [{"set": k[0], "class": k[1], "kind": k[2], "says": k[3], "n": n} for k, n in found.items()],
            "real_images_said_generated": generated_real}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
