#!/usr/bin/env python
"""Decoder-trace pseudo-fakes: small autoencoders trained here on real photos.

Generators paint their output through a decoder: transposed convolutions, pixel shuffle, or
nearest/bilinear up-sampling followed by convolutions. A real photo passed through such a decoder
keeps its content but takes on the decoder's traces, so "real vs its reconstruction" teaches the
detector those traces and nothing about content (after Rajan et al., 2024, who trained on real
images against latent-diffusion-autoencoder reconstructions).

    python scripts/decoder_traces.py --out runs/decoders            # trains every kind
    python scripts/decoder_traces.py --out runs/decoders --steps 200  # a quick smoke run

Each autoencoder is trained on random crops of the *real* train images of
``imagenet_real_photos`` (a set that every leave-one-set-out run keeps, so no held-out image is
ever seen) and saved as ``<kind>.safetensors``; ``scripts/train.py`` loads the folder named by
the recipe's ``recon_dir`` and turns a share ``p_recon`` of the real training images into
reconstructions labelled fake.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

log = logging.getLogger("decoders")

# kind -> (down-sampling factor, latent channels)
KINDS = {
    "transpose2": (2, 8),
    "pixelshuffle2": (2, 8),
    "nearest2": (2, 8),
    "bilinear2": (2, 8),
    "transpose4": (4, 24),
    "nearest4": (4, 24),
}


def _up(kind: str, ch: int) -> list[nn.Module]:
    if kind.startswith("transpose"):
        return [nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1)]
    if kind.startswith("pixelshuffle"):
        return [nn.Conv2d(ch, 4 * ch, 3, padding=1), nn.PixelShuffle(2)]
    mode = "nearest" if kind.startswith("nearest") else "bilinear"
    return [nn.Upsample(scale_factor=2, mode=mode), nn.Conv2d(ch, ch, 3, padding=1)]


class AutoEncoder(nn.Module):
    """x in [0, 1] (B, 3, H, W), H and W multiples of the factor -> reconstruction in [0, 1]."""

    def __init__(self, kind: str, width: int = 24):
        super().__init__()
        factor, latent = KINDS[kind]
        self.kind, self.factor = kind, factor
        enc: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(int(math.log2(factor))):
            enc += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        enc += [nn.Conv2d(width, latent, 1)]
        dec: list[nn.Module] = [nn.Conv2d(latent, width, 1), nn.ReLU(inplace=True)]
        for _ in range(int(math.log2(factor))):
            dec += _up(kind, width) + [nn.ReLU(inplace=True)]
        dec += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, 3, 3, padding=1)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x * 2 - 1)) * 2)


def reconstruct(model: AutoEncoder, img: Image.Image) -> Image.Image:
    """Passes a PIL image through ``model`` at native resolution (edge-padded to the factor)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    h, w = arr.shape[:2]
    f = model.factor
    ph, pw = (-h) % f, (-w) % f
    x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    with torch.no_grad():
        y = model(x)[0, :, :h, :w]
    out = (y.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out)


def load_all(folder: str | Path) -> list[AutoEncoder]:
    models = []
    for kind in KINDS:
        path = Path(folder) / f"{kind}.safetensors"
        if path.exists():
            m = AutoEncoder(kind)
            m.load_state_dict(load_file(str(path)))
            models.append(m.eval())
    if not models:
        raise FileNotFoundError(f"no decoder weights in {folder}: run scripts/decoder_traces.py")
    return models


def _crops(images: list[Image.Image], n: int, size: int, rng: random.Random) -> torch.Tensor:
    out = []
    for _ in range(n):
        img = rng.choice(images)
        if rng.random() < 0.3:  # also learn smaller scales
            s = rng.uniform(0.5, 1.0)
            img = img.resize((max(size, int(img.width * s)), max(size, int(img.height * s))), Image.BICUBIC)
        x, y = rng.randint(0, img.width - size), rng.randint(0, img.height - size)
        out.append(np.asarray(img.crop((x, y, x + size, y + size)), dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--set", default="imagenet_real_photos", help="set whose real train images are used")
    ap.add_argument("--out", required=True)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from fakedet.data.labelled import read_manifest

    root = Path(args.data)
    paths = [r.path for r in read_manifest(str(root / args.set / "manifest.csv"), "train") if r.label == 0]
    images = [Image.open(p).convert("RGB") for p in paths]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for kind in args.kinds.split(","):
        torch.manual_seed(args.seed)
        rng = random.Random(args.seed)
        model = AutoEncoder(kind)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        t0 = time.time()
        for step in range(args.steps):
            for g in opt.param_groups:
                g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / args.steps))
            x = _crops(images, args.batch_size, args.crop, rng)
            loss = F.l1_loss(model(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (step + 1) % 100 == 0:
                log.info("%s step %d/%d l1 %.4f", kind, step + 1, args.steps, loss.item())
        model.eval()
        with torch.no_grad():
            x = _crops(images, 64, 64, random.Random(args.seed + 1))
            mse = F.mse_loss(model(x), x).item()
        psnr = 10 * math.log10(1.0 / max(mse, 1e-12))
        report[kind] = {"psnr_db": round(psnr, 2), "seconds": round(time.time() - t0, 1), "steps": args.steps}
        log.info("%s: PSNR %.2f dB on held-back crops, %.0f s", kind, psnr, time.time() - t0)
        save_file(model.state_dict(), str(out / f"{kind}.safetensors"))
    (out / "decoders.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
