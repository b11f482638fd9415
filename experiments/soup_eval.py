#!/usr/bin/env python
"""Score test splits with several checkpoints of one architecture, with their ensemble (mean of
logits) and with their weight average (a "model soup", Wortsman et al. 2022), and print each
one's AUC per set.

    python experiments/soup_eval.py runs/ablation-all runs/ablation-all_seed1 ... \\
        --sets dfdc_faceswap,cifake_sd14,lfw_faceswap,stylegan2_faces --json runs/soup.json

A research aid. Fine-tuned copies of one pretrained network often lie in one basin, so the
average of their weights scores like their ensemble at the cost of one model; soups were found
to hold up better than any single member on shifted data. Here it asks whether averaging the
ablation runs (all trained without lfw_faceswap and stylegan2_faces) transfers better to those
two held-out sets than its members. AUC does not depend on the temperature, so the logits are
compared raw. Each image is decoded once and scored by every model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fakedet.data.decode import ImageError, load, preprocess
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import data_root, manifest
from fakedet.evaluation.metrics import auc
from fakedet.model import checkpoint as ckpt
from fakedet.model.config import ModelConfig
from fakedet.model.fused import FakeDetector


def weights_of(run: str) -> Path:
    p = Path(run)
    return p / "final.safetensors" if p.is_dir() else p


def soup(models: list[FakeDetector]) -> FakeDetector:
    """The uniform average of the members' weights and BatchNorm statistics."""
    out = FakeDetector(models[0].cfg)
    states = [m.state_dict() for m in models]
    avg = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            avg[k] = torch.stack([s[k] for s in states]).mean(0)
        else:  # num_batches_tracked
            avg[k] = v
    out.load_state_dict(avg)
    return out.eval()


def tensors(images, pre) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    ys, views, patches = [], [], []
    for im in images:
        try:
            v, p = preprocess(load(im.path, pre), pre)
        except ImageError:
            continue
        ys.append(im.label)
        views.append(torch.from_numpy(v))
        patches.append(torch.from_numpy(p))
    return np.asarray(ys), torch.stack(views), torch.stack(patches)


@torch.inference_mode()
def logits(model, views, patches, bs=64) -> np.ndarray:
    out = [model(views[i:i + bs], patches[i:i + bs]) for i in range(0, len(views), bs)]
    return torch.cat(out).float().numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders (their final.safetensors) or weight files")
    ap.add_argument("--sets", default="dfdc_faceswap,cifake_sd14,lfw_faceswap,stylegan2_faces")
    ap.add_argument("--split", default="test", help="train, val, test, or all (every split: for held-out sets)")
    ap.add_argument("--data", default=str(data_root()))
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)

    models, names = [], []
    for run in args.runs:
        m, meta = ckpt.load(weights_of(run))
        models.append(m)
        names.append(Path(run).name)
    cfg = ModelConfig.from_dict(ckpt.read_meta(weights_of(args.runs[0])).model)
    if any(m.state_dict().keys() != models[0].state_dict().keys() for m in models):
        raise SystemExit("the checkpoints do not share one architecture")
    souped = soup(models)
    if len(set(names)) < len(names):  # run/last.safetensors and run/final.safetensors
        names = [str(Path(r)) for r in args.runs]
    rows = {n: {} for n in names + ["ensemble (mean logit)", "soup (mean weights)"]}
    sets = args.sets.split(",")
    for name in sets:
        images = read_manifest(manifest(name, args.data),
                               None if args.split == "all" else args.split)
        y, v, p = tensors(images, cfg.preprocess)
        zs = [logits(m, v, p) for m in models]
        for n, z in zip(names, zs):
            rows[n][name] = auc(y, z)
        rows["ensemble (mean logit)"][name] = auc(y, np.mean(zs, axis=0))
        rows["soup (mean weights)"][name] = auc(y, logits(souped, v, p))
    print("| model | " + " | ".join(sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for n, r in rows.items():
        print(f"| {n} | " + " | ".join(f"{r[s]:.3f}" for s in sets) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": args.runs, "split": args.split,
                                               "auc": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
