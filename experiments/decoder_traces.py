#!/usr/bin/env python
"""Train the small autoencoders of the decoder-trace pseudo-fakes (fakedet.training.decoders).

    python experiments/decoder_traces.py --out runs/decoders            # trains every kind
    python experiments/decoder_traces.py --out runs/decoders --steps 200  # a quick smoke run

Each autoencoder is trained on random crops of the *real* train images of
``imagenet_real_photos`` (a set that every leave-one-set-out run keeps, so no held-out image is
ever seen) and saved as ``<kind>.safetensors``; ``experiments/train.py`` loads the folder named by
the recipe's ``train.recon_dir`` and turns a share ``train.recon_share`` of the samples into
reconstructions of real training images labelled fake.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from PIL import Image
from safetensors.torch import save_file

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import data_root, manifest
from fakedet.training.decoders import KINDS, train_autoencoder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(data_root()))
    ap.add_argument("--set", default="imagenet_real_photos", help="set whose real train images are used")
    ap.add_argument("--out", required=True)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    paths = [r.path for r in read_manifest(manifest(args.set, args.data), "train") if r.label == 0]
    images = [Image.open(p).convert("RGB") for p in paths]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for kind in args.kinds.split(","):
        model, report[kind] = train_autoencoder(kind, images, args.steps, args.batch_size, args.crop, args.seed)
        save_file(model.state_dict(), str(out / f"{kind}.safetensors"))
    (out / "decoders.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
