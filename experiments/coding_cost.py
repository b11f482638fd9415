"""A generated-image expert trained on real images only: the coding cost of a small lossless coder.

A causal CNN (PixelCNN-style masked convolutions) predicts a 256-way distribution for each luma
pixel from the pixels above and to its left. It is trained on real images alone. On an image, the
statistic D is the mean over pixels of (coding cost - predicted entropy) in bits: an image more
predictable than the coder expects (D < 0) is scored as more likely generated (score = -D).
After Cozzolino, Poggi, Niessner and Verdoliva, "Zero-Shot Detection of AI-Generated Images"
(ECCV 2024). The rule this study is read by: docs/decisions/2026-12-02-coding-cost-expert.md.

    python experiments/coding_cost.py train --out runs/coding/coder.safetensors --steps 2000
    python experiments/coding_cost.py eval --coder runs/coding/coder.safetensors --json runs/coding/eval.json \\
        --rows runs/coding/rows.jsonl
    python experiments/coding_cost.py summary --rows runs/coding/rows.jsonl   # per-source means, exploratory AUCs
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import data_root, manifest
from fakedet.evaluation.metrics import auc, threshold_at_macro_fpr

TRAIN_SETS = ["dfdc_faceswap", "lfw_faceswap", "ffpp_faces", "cifake_sd14", "imagenet_real_photos",
              "utkface_real"]
SCORE_CROP = 256
LOG2 = float(np.log(2.0))


class MaskedConv2d(torch.nn.Conv2d):
    """A convolution that sees only the pixels before the centre in raster order ("A"), or
    those and the centre itself ("B")."""

    def __init__(self, kind: str, cin: int, cout: int, k: int):
        super().__init__(cin, cout, k, padding=k // 2)
        mask = torch.ones(k, k)
        mask[k // 2, k // 2 + (kind == "B"):] = 0
        mask[k // 2 + 1:] = 0
        self.register_buffer("mask", mask[None, None])

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class Coder(torch.nn.Module):
    """Luma in [0, 255] (N, 1, H, W) -> logits (N, 256, H, W) of each pixel given those before it."""

    def __init__(self, width: int = 64, blocks: int = 5):
        super().__init__()
        self.first = MaskedConv2d("A", 1, width, 7)
        self.blocks = torch.nn.ModuleList(MaskedConv2d("B", width, width, 3) for _ in range(blocks))
        self.out = torch.nn.Sequential(torch.nn.ReLU(), MaskedConv2d("B", width, width, 1),
                                       torch.nn.ReLU(), MaskedConv2d("B", width, 256, 1))

    def forward(self, luma):
        h = self.first(luma / 127.5 - 1.0)
        for block in self.blocks:
            h = h + block(F.relu(h))
        return self.out(h)


def cost_and_entropy(coder: Coder, luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel coding cost and predicted entropy, in bits, each (N, H, W)."""
    logp = F.log_softmax(coder(luma.float()), dim=1)
    cost = -logp.gather(1, luma.long()).squeeze(1) / LOG2
    entropy = -(logp.exp() * logp).sum(1) / LOG2
    return cost, entropy


def load_luma(path, jpeg_quality: int | None = None) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    if jpeg_quality is not None:  # both classes alike
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=jpeg_quality)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(img.convert("L"), dtype=np.uint8)


def centre_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return a[top:top + size, left:left + size]


def downscale2(a: np.ndarray) -> np.ndarray:
    """2x box downscale of a luma array, rounded back to 0..255."""
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    b = a[:h, :w].astype(np.float32).reshape(h // 2, 2, w // 2, 2).mean((1, 3))
    return np.clip(np.rint(b), 0, 255).astype(np.uint8)


@torch.no_grad()
def image_stats(coder: Coder, luma: np.ndarray) -> dict:
    """The statistics of one image: D (primary), NLL, and D of the 2x-downscaled luma."""
    out = {}
    for name, a in (("", centre_crop(luma, SCORE_CROP)), ("half_", downscale2(centre_crop(luma, SCORE_CROP)))):
        cost, ent = cost_and_entropy(coder, torch.from_numpy(a.copy())[None, None])
        out[name + "d"] = float((cost - ent).mean())
        out[name + "nll"] = float(cost.mean())
    return out


def real_paths(root: Path, sets, split: str) -> dict[str, list[str]]:
    return {s: [r.path for r in read_manifest(manifest(s, root), split) if r.label == 0] for s in sets}


def train(args) -> None:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    root = data_root() if args.data is None else Path(args.data)
    pools = {s: [load_luma(p) for p in ps] for s, ps in real_paths(root, TRAIN_SETS, "train").items()}
    print({s: len(v) for s, v in pools.items()}, file=sys.stderr)
    names = sorted(pools)
    coder = Coder()
    opt = torch.optim.AdamW(coder.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    start, c = time.time(), args.crop
    for step in range(args.steps):
        batch = []
        for _ in range(args.batch):
            pool = pools[names[rng.integers(len(names))]]
            a = pool[rng.integers(len(pool))]
            top, left = rng.integers(a.shape[0] - c + 1), rng.integers(a.shape[1] - c + 1)
            patch = a[top:top + c, left:left + c]
            batch.append(patch[:, ::-1] if rng.random() < 0.5 else patch)
        luma = torch.from_numpy(np.ascontiguousarray(np.stack(batch)))[:, None]
        loss = F.cross_entropy(coder(luma.float()), luma[:, 0].long()) / LOG2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} bits/px {loss.item():.3f} {time.time() - start:.0f}s", file=sys.stderr, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_file(coder.state_dict(), args.out, metadata={"steps": str(args.steps), "sets": ",".join(TRAIN_SETS),
                                                      "seconds": f"{time.time() - start:.0f}"})


_scored: dict = {}  # (path, JPEG quality) -> statistics: an image read twice is scored once


def score_items(coder, items, jpeg_quality=None) -> list[dict]:
    rows = []
    for path, label, name in items:
        key = (path, jpeg_quality)
        if key not in _scored:
            _scored[key] = image_stats(coder, load_luma(path, jpeg_quality))
        rows.append(dict(_scored[key], label=label, set=name))
    return rows


def items_of(root: Path, name: str, split: str | None):
    return [(r.path, r.label, name) for r in read_manifest(manifest(name, root), split)]


def aucs(rows, stats=("d", "nll", "half_d", "half_nll")) -> dict:
    labels = [r["label"] for r in rows]
    return {s: round(auc(labels, [-r[s] for r in rows]), 4) for s in stats}


@torch.no_grad()
def evaluate(args) -> None:
    root = data_root() if args.data is None else Path(args.data)
    coder = Coder()
    coder.load_state_dict(load_file(args.coder))
    coder.eval()
    report, t0 = {}, time.time()
    plan = {
        "cifake_sd14 val": items_of(root, "cifake_sd14", "val"),
        "stylegan2_faces all": items_of(root, "stylegan2_faces", None),
        "sd15_finetunes vs unsplash_portraits (flagged)": items_of(root, "sd15_finetunes", None)
        + items_of(root, "unsplash_portraits", None),
        "dfdc_faceswap val": items_of(root, "dfdc_faceswap", "val"),
        "lfw_faceswap val": items_of(root, "lfw_faceswap", "val"),
        "ffpp_faces val": items_of(root, "ffpp_faces", "val"),
    }
    rows = {}
    for key, items in plan.items():
        rows[key] = score_items(coder, items)
        report[key] = aucs(rows[key])
        print(key, len(items), report[key], f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    for key in ("cifake_sd14 val", "stylegan2_faces all"):
        rows[key + " JPEG q50"] = r = score_items(coder, plan[key], jpeg_quality=50)
        report[key + " JPEG q50"] = aucs(r)
        print(key, "q50", report[key + " JPEG q50"], file=sys.stderr, flush=True)
    # False alarms on unseen real sources, at the 5 % threshold of the training sources' real val
    # images, each source weighted equally, for the primary score (-D) and the reversed one (+D).
    calib = {s: score_items(coder, [(p, 0, s) for p in ps]) for s, ps in real_paths(root, TRAIN_SETS, "val").items()}
    unseen = {"stylegan2_faces reals": [r for r in rows["stylegan2_faces all"] if r["label"] == 0],
              "unsplash_portraits": [r for r in rows["sd15_finetunes vs unsplash_portraits (flagged)"]
                                     if r["label"] == 0]}
    unseen["both"] = unseen["stylegan2_faces reals"] + unseen["unsplash_portraits"]
    fakes = {key: [r for r in rows[key] if r["label"] == 1] for key in plan}
    for name, sign in (("-D", -1.0), ("+D", 1.0)):
        threshold = threshold_at_macro_fpr([[sign * r["d"] for r in rs] for rs in calib.values()], 0.05)
        above = lambda rs: round(float(np.mean([sign * r["d"] >= threshold for r in rs])), 4)  # noqa: E731, B023
        report[f"score {name}"] = {
            "threshold": round(threshold, 4),
            "training sources' real val above": {s: above(rs) for s, rs in calib.items()},
            "unseen real sources above": {s: above(rs) for s, rs in unseen.items()},
            "fakes above": {key: above(rs) for key, rs in fakes.items()},
            "AUC": {key: round(auc([r["label"] for r in rs], [sign * r["d"] for r in rs]), 4)
                    for key, rs in rows.items()}}
    if args.rows:
        with open(args.rows, "w") as f:
            for (path, quality), stats in _scored.items():
                f.write(json.dumps(dict(stats, path=path, jpeg_quality=quality)) + "\n")
    report["seconds"] = round(time.time() - t0)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


def summary(args) -> None:
    """From a --rows file: each set's mean statistics per class (images as stored), and the AUCs
    of the exploratory native-minus-half-resolution differences (score = +difference)."""
    by: dict = {}
    for line in Path(args.rows).read_text().splitlines():
        r = json.loads(line)
        if r["jpeg_quality"] is None:  # the data's layout: <set>/<real|fake>/<file>
            path = Path(r["path"])
            by.setdefault(path.parent.parent.name, []).append((int(path.parent.name == "fake"), r))
    report = {"mean by set and class": {
        f"{name} {'fake' if label else 'real'}": {k: round(float(np.mean([r[k] for y, r in rs if y == label])), 3)
                                                  for k in ("d", "nll", "half_d")}
        for name, rs in sorted(by.items()) for label in (0, 1) if any(y == label for y, _ in rs)}}
    pairs = {name: rs for name, rs in by.items() if len({y for y, _ in rs}) == 2}
    pairs["sd15_finetunes vs unsplash_portraits"] = by.get("sd15_finetunes", []) + by.get("unsplash_portraits", [])
    report["AUC of the difference"] = {
        diff: {name: round(auc([y for y, _ in rs], [r[a] - r[b] for _, r in rs]), 3)
               for name, rs in sorted(pairs.items())}
        for diff, (a, b) in {"d - half_d": ("d", "half_d"), "nll - half_nll": ("nll", "half_nll")}.items()}
    print(json.dumps(report, indent=1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--crop", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", default=None, help="the data root (default: ../shared/data)")
    e = sub.add_parser("eval")
    e.add_argument("--coder", required=True)
    e.add_argument("--json", default=None)
    e.add_argument("--rows", default=None, help="write every image's statistics here (jsonl)")
    e.add_argument("--data", default=None)
    m = sub.add_parser("summary")
    m.add_argument("--rows", required=True)
    args = ap.parse_args(argv)
    {"train": train, "eval": evaluate, "summary": summary}[args.cmd](args)


if __name__ == "__main__":
    main()
