#!/usr/bin/env python
"""Convert MTCNN's P-, R- and O-Net weights from the facenet-pytorch wheel to safetensors.

    pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/fnp
    python tools/convert_mtcnn.py /tmp/fnp/facenet_pytorch-2.6.0-py3-none-any.whl weights/mtcnn.safetensors

facenet-pytorch (MIT licence, (c) 2019 Timothy Esler) pins an old torch, so it cannot be a
dependency; fakedet defines the three small networks itself (fakedet.model.faces) and ships their
weights converted once with this script. The wheel's .pt files are read with
``torch.load(weights_only=True)`` (plain tensors only); fakedet itself loads the safetensors file.
"""

import io
import json
import zipfile

import torch
from safetensors.torch import save_file


def main(wheel: str, out: str) -> None:
    state = {}
    with zipfile.ZipFile(wheel) as zf:
        licence = zf.read(next(n for n in zf.namelist() if n.endswith("LICENSE.md"))).decode()
        for net in ("pnet", "rnet", "onet"):
            sd = torch.load(io.BytesIO(zf.read(f"facenet_pytorch/data/{net}.pt")), map_location="cpu",
                            weights_only=True)
            state.update({f"{net}.{k}": v.contiguous() for k, v in sd.items()})
    meta = {"source": wheel.rsplit("/", 1)[-1], "licence": licence.splitlines()[0],
            "copyright": "Copyright (c) 2019 Timothy Esler (facenet-pytorch), MIT licence"}
    save_file(state, out, metadata={"mtcnn": json.dumps(meta)})
    print(f"wrote {out}: {len(state)} tensors")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", help="the facenet-pytorch wheel (.whl)")
    ap.add_argument("out", help="where to write the safetensors file")
    args = ap.parse_args()
    main(args.wheel, args.out)
