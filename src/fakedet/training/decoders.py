"""Training layer: decoder-trace pseudo-fakes, real photos passed through small autoencoders trained on real photos.

Generators paint their output through a decoder: transposed convolutions, pixel shuffle, or
nearest/bilinear up-sampling followed by convolutions. A real photo passed through such a decoder
keeps its content but takes on the decoder's traces, so "real vs its reconstruction" teaches the
detector those traces and nothing about content (after Rajan et al., 2024, who trained on real
images against latent-diffusion-autoencoder reconstructions). ``experiments/decoder_traces.py``
trains the autoencoders (:func:`train_autoencoder`); a recipe's ``train.recon_dir`` names their
folder and ``train.recon_share`` the share of the samples made by :func:`decoder_trace`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageFilter
from safetensors.torch import load_file

log = logging.getLogger("fakedet.training")

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
        raise FileNotFoundError(f"no decoder weights in {folder}: run experiments/decoder_traces.py")
    return models


def crops(images: list[Image.Image], n: int, size: int, rng: random.Random) -> torch.Tensor:
    out = []
    for _ in range(n):
        img = rng.choice(images)
        if rng.random() < 0.3:  # also learn smaller scales
            s = rng.uniform(0.5, 1.0)
            img = img.resize((max(size, int(img.width * s)), max(size, int(img.height * s))), Image.BICUBIC)
        x, y = rng.randint(0, img.width - size), rng.randint(0, img.height - size)
        out.append(np.asarray(img.crop((x, y, x + size, y + size)), dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def train_autoencoder(kind: str, images: list[Image.Image], steps: int, batch_size: int, crop: int,
                      seed: int) -> tuple[AutoEncoder, dict]:
    """One autoencoder trained on random ``crop``-pixel crops of ``images`` (L1 loss, Adam with a
    cosine schedule); returns it with its PSNR on held-back 64-pixel crops."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = AutoEncoder(kind)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        x = crops(images, batch_size, crop, rng)
        loss = F.l1_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            log.info("%s step %d/%d l1 %.4f", kind, step + 1, steps, loss.item())
    model.eval()
    with torch.no_grad():
        x = crops(images, 64, 64, random.Random(seed + 1))
        mse = F.mse_loss(model(x), x).item()
    psnr = 10 * math.log10(1.0 / max(mse, 1e-12))
    log.info("%s: PSNR %.2f dB on held-back crops, %.0f s", kind, psnr, time.time() - t0)
    return model, {"psnr_db": round(psnr, 2), "seconds": round(time.time() - t0, 1), "steps": steps}


_DECODERS: list | None = None


def decoder_trace(img: Image.Image, rng: random.Random, recon_dir: str, p_local: float) -> Image.Image:
    """A decoder-trace pseudo-fake: the image passed through one of the small autoencoders of
    ``experiments/decoder_traces.py``; with probability ``p_local`` only a soft-edged region is
    replaced (the trace of an inpainting or local generative edit)."""
    global _DECODERS
    if _DECODERS is None:  # once per worker process
        _DECODERS = load_all(recon_dir)
    recon = reconstruct(rng.choice(_DECODERS), img)
    if rng.random() >= p_local:
        return recon
    w, h = img.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.25, 0.75), h * rng.uniform(0.25, 0.75)
    ax, ay = w * rng.uniform(0.2, 0.45), h * rng.uniform(0.2, 0.45)
    mask = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1).astype(np.uint8) * 255
    m = np.asarray(Image.fromarray(mask).filter(ImageFilter.GaussianBlur(rng.uniform(1, 0.05 * min(w, h) + 1))),
                   dtype=np.float32)[..., None] / 255.0
    out = np.asarray(recon, dtype=np.float32) * m + np.asarray(img, dtype=np.float32) * (1 - m)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
