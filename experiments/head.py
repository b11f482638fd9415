#!/usr/bin/env python
"""Refit the linear head of a checkpoint on its extracted features, and leave-one-source-out
studies of the refit (features from ``experiments/features.py``).

    python experiments/features.py --weights weights/fakedet-default.safetensors --out runs/features
    python experiments/head.py --features runs/features --study all        # the tables
    python experiments/head.py --features runs/features --write runs/head/final.safetensors

The head reads the fused feature vector (backbone, colour and texture branches); a refit keeps
every other weight, so the model's size and speed do not change. Sampling weights give each
(set, class) cell the same weight, as training does; self-blended copies of the face sets' real
images take ``--sbi-share`` of it. The L2 term pulls the head towards the checkpoint's own.
Temperature (NLL) and the three verdicts' thresholds are chosen on the val splits of the sets
the head was fitted on; nothing here reads test labels to choose anything.

Studies (each fits its own heads; the features themselves come from a backbone trained on the
six original sets, so a held-out source is unseen by the head and the thresholds, and unseen
by the backbone too only for ffpp_faces, utkface_real and unsplash_portraits):
- ``real``: every real source held out in turn (for a paired set the whole set); the share of
  all its real images labelled fake and uncertain;
- ``faces``: ffpp_faces, dfdc_faceswap and lfw_faceswap held out in turn: AUC on all their images;
- ``methods``: each FaceForensics++ method's fakes held out: AUC against all ffpp real images;
- ``indist``: the full refit against the checkpoint's own head on every set's test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fakedet.data.labelled import read_manifest
from fakedet.data.sets import BY_NAME, FAKE_ONLY, PAIRED, manifest
from fakedet.evaluation import verdicts
from fakedet.evaluation.metrics import auc, fit_temperature
from fakedet.model import checkpoint as ckpt

SPLITS = ("train", "val", "test")
METHODS = ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")


class Features:
    """The extracted features: ``get(set, split)`` -> (X, y, kind, names); kind 1 = self-blend."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._cache: dict = {}

    def get(self, name: str, split: str):
        key = (name, split)
        if key not in self._cache:
            d = np.load(self.folder / f"{name}-{split}.npz")
            self._cache[key] = (d["X"].astype(np.float32), d["y"].astype(np.int64),
                                d["kind"].astype(np.int64), d["names"])
        return self._cache[key]


def ffpp_methods(names) -> np.ndarray:
    """The FaceForensics++ method of each file name ('real' for the originals)."""
    rows = read_manifest(manifest("ffpp_faces"))
    method = {Path(r.path).name: (r.group or "").split("-")[2] for r in rows}
    return np.array([method[str(n)] for n in names])


def gather(feats: Features, sets, split: str, sbi: bool = True, drop=None):
    """Stacked (X, y, cell) over sets; cell names (set, label, kind) for sampling weights.
    ``drop(name, X, y, kind, names)`` may return a mask of rows to leave out."""
    Xs, ys, cells = [], [], []
    for name in sets:
        X, y, kind, names = feats.get(name, split)
        keep = np.ones(len(y), bool) if sbi else kind == 0
        if drop is not None:
            keep &= ~drop(name, X, y, kind, names)
        Xs.append(X[keep])
        ys.append(y[keep])
        cells += [f"{name}/{lab}/{k}" for lab, k in zip(y[keep], kind[keep])]
    return np.concatenate(Xs), np.concatenate(ys), np.array(cells)


def cell_weights(y, cells, sbi_share: float) -> np.ndarray:
    """Real cells share half the weight; self-blend cells ``sbi_share``; genuine fakes the rest."""
    uniq, inv, counts = np.unique(cells, return_inverse=True, return_counts=True)
    real = [c for c in uniq if c.split("/")[1] == "0"]
    sb = [c for c in uniq if c.split("/")[2] == "1"]
    fake = [c for c in uniq if c.split("/")[1] == "1" and c.split("/")[2] == "0"]
    share = {c: 0.5 / len(real) for c in real}
    if sb:
        share.update({c: sbi_share / len(sb) for c in sb})
    share.update({c: (0.5 - (sbi_share if sb else 0.0)) / len(fake) for c in fake})
    w = np.array([share[c] for c in uniq])[inv] / counts[inv]
    return w / w.sum()


def fit_head(X, y, w, w0, b0, l2: float, steps: int = 200):
    """Weighted logistic regression by L-BFGS, with an L2 pull towards (w0, b0)."""
    Xt, yt, wt = torch.from_numpy(X).double(), torch.from_numpy(y).double(), torch.from_numpy(w).double()
    w0t = torch.from_numpy(w0).double()
    W = w0t.clone().requires_grad_(True)
    b = torch.tensor(float(b0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = Xt @ W + b
        loss = (wt * torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none")).sum()
        loss = loss + l2 * ((W - w0t) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach().numpy(), float(b.detach())


class Head:
    """A linear head, its temperature and its verdict thresholds."""

    def __init__(self, W, b, temperature=1.0, thresholds=None):
        self.W, self.b, self.temperature, self.thresholds = W, b, temperature, thresholds

    def logits(self, X):
        return X.astype(np.float64) @ self.W + self.b

    def p(self, X):
        return 1.0 / (1.0 + np.exp(-self.logits(X) / self.temperature))


def calibrate(head: Head, feats: Features, sets, max_fpr=0.02, max_fnr=0.10, temperature=True) -> Head:
    """Temperature (unless ``temperature`` is False) and verdict thresholds on the genuine val
    images of ``sets``."""
    z, y = [], []
    real, fake = {}, {}
    for name in sets:
        X, yy, kind, _ = feats.get(name, "val")
        X, yy = X[kind == 0], yy[kind == 0]
        z.append(head.logits(X))
        y.append(yy)
    if temperature:
        head.temperature = float(fit_temperature(np.concatenate(y), np.concatenate(z)))
    for name in sets:
        X, yy, kind, _ = feats.get(name, "val")
        p = head.p(X[kind == 0])
        yy = yy[kind == 0]
        if (yy == 0).any():
            real[name] = p[yy == 0]
        if (yy == 1).any():
            fake[name] = p[yy == 1]
    head.thresholds = verdicts.choose(real, fake, max_fpr, max_fnr)
    return head


def shares(head: Head, p) -> dict:
    v = np.array([verdicts.verdict(x, head.thresholds.fake, head.thresholds.real) for x in p])
    return {k: float(np.mean(v == k)) if len(v) else None for k in ("fake", "uncertain", "real")}


def refit(feats: Features, sets, w0, b0, args, drop=None) -> Head:
    X, y, cells = gather(feats, sets, "train", sbi=args.sbi_share > 0, drop=drop)
    W, b = fit_head(X, y, cell_weights(y, cells, args.sbi_share), w0, b0, args.l2)
    return calibrate(Head(W, b), feats, sets, max_fpr=args.max_fpr)


def all_images(feats: Features, name: str):
    """(X, y, names) of every genuine image of a set, all splits (train capped at extraction)."""
    parts = [feats.get(name, s) for s in SPLITS]
    keep = [k == 0 for _, _, k, _ in parts]
    return (np.concatenate([X[m] for (X, _, _, _), m in zip(parts, keep)]),
            np.concatenate([y[m] for (_, y, _, _), m in zip(parts, keep)]),
            np.concatenate([n[m] for (_, _, _, n), m in zip(parts, keep)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--weights", type=Path, default=ckpt.default_weights_path())
    ap.add_argument("--sets", default=",".join(BY_NAME))
    ap.add_argument("--sbi-share", type=float, default=0.15)
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--study", default="indist",
                    help="comma list of: indist, real, faces, methods; or all, or none (only --write)")
    ap.add_argument("--write", type=Path, default=None,
                    help="write a checkpoint with the --head chosen and its verdict thresholds")
    ap.add_argument("--head", choices=("checkpoint", "refit"), default=None,
                    help="with --write: the checkpoint's own head and temperature, or the refit")
    ap.add_argument("--max-fpr", type=float, default=0.02,
                    help="the fake verdict's rule: the share of each real source's val images allowed at or "
                         "above its threshold [default: 0.02]")
    ap.add_argument("--record", default="docs/decisions/2026-12-01-verdicts-and-trust-weights.md",
                    help="--write: the decision record the written thresholds' rule comes from")
    ap.add_argument("--json", dest="as_json", type=Path, default=None)
    args = ap.parse_args(argv)

    feats = Features(args.features)
    sets = [s for s in args.sets.split(",") if s]
    model, meta = ckpt.load(args.weights)
    w0 = model.head.weight.detach().numpy()[0].astype(np.float64)
    b0 = float(model.head.bias.detach().numpy()[0])
    known = {"indist", "real", "faces", "methods"}
    studies = known if args.study == "all" else set() if args.study == "none" else set(args.study.split(","))
    if studies - known:
        ap.error(f"unknown study {', '.join(sorted(studies - known))} "
                 f"(choose from {', '.join(sorted(known))}, all, none)")
    out: dict = {"weights": str(args.weights), "sbi_share": args.sbi_share, "l2": args.l2}

    shipped = calibrate(Head(w0, b0), feats, sets, max_fpr=args.max_fpr)  # the checkpoint's own head, same rules
    full = refit(feats, sets, w0, b0, args)
    for label, h in (("checkpoint head", shipped), ("refit head", full)):
        print(f"{label}: T {h.temperature:.3f}, t_fake {h.thresholds.fake:.4f}, t_real {h.thresholds.real:.4f}")

    if "indist" in studies:
        rows = []
        print("\nper set: val AUC, test AUC, and on test the shares of real images labelled fake / "
              "uncertain and of fakes labelled fake / real (checkpoint head -> refit head)")
        for name in sets:
            row = {"set": name}
            for label, h in (("checkpoint", shipped), ("refit", full)):
                for split in ("val", "test"):
                    X, y, kind, _ = feats.get(name, split)
                    p, y = h.p(X[kind == 0]), y[kind == 0]
                    if BY_NAME[name].kind == PAIRED:
                        row[f"{label}_{split}_auc"] = float(auc(y, p))
                    if split == "test":
                        row[f"{label}_test_real"] = shares(h, p[y == 0]) if (y == 0).any() else None
                        row[f"{label}_test_fake"] = shares(h, p[y == 1]) if (y == 1).any() else None
                    if split == "val":
                        row[f"{label}_val_fake_tpr"] = (float(np.mean(p[y == 1] >= h.thresholds.fake))
                                                        if (y == 1).any() else None)
            rows.append(row)
            print(_fmt_indist(row))
        out["indist"] = rows
        out["rule"] = _rule(rows, sets)
        print("\nshipping rule (val only):", json.dumps(out["rule"], indent=1))

    if "real" in studies:
        rows = []
        print("\nreal sources held out (head and thresholds fitted without the set): all its real images")
        for name in [s for s in sets if BY_NAME[s].kind != FAKE_ONLY]:
            rest = [s for s in sets if s != name]
            h = refit(feats, rest, w0, b0, args)
            base = calibrate(Head(w0, b0), feats, rest, max_fpr=args.max_fpr)
            X, y, _ = all_images(feats, name)
            row = {"set": name, "n_real": int((y == 0).sum()), "refit": shares(h, h.p(X[y == 0])),
                   "checkpoint": shares(base, base.p(X[y == 0])),
                   # before the verdicts: the checkpoint's own two-way threshold, as scans used it
                   "two_way": float(np.mean(Head(w0, b0, meta.temperature).p(X[y == 0]) >= meta.threshold))}
            rows.append(row)
            print(f"  {name:22s} n={row['n_real']:5d}  fake (two-way {meta.threshold:.4f}) {row['two_way']:.3f};"
                  f" verdicts {row['checkpoint']['fake']:.3f} -> {row['refit']['fake']:.3f}"
                  f"   uncertain {row['checkpoint']['uncertain']:.3f} -> {row['refit']['uncertain']:.3f}")
        out["real"] = rows

    if "faces" in studies:
        rows = []
        print("\nface sets held out: AUC on all their images (checkpoint head -> refit head)")
        for name in ("ffpp_faces", "dfdc_faceswap", "lfw_faceswap"):
            rest = [s for s in sets if s != name]
            h = refit(feats, rest, w0, b0, args)
            X, y, _ = all_images(feats, name)
            row = {"set": name, "n": int(len(y)), "checkpoint_auc": float(auc(y, Head(w0, b0).logits(X))),
                   "refit_auc": float(auc(y, h.logits(X))),
                   "refit_fake_caught": float(np.mean(h.p(X[y == 1]) >= h.thresholds.fake)),
                   "refit_real_fake": float(np.mean(h.p(X[y == 0]) >= h.thresholds.fake))}
            rows.append(row)
            print(f"  {name:22s} n={row['n']:6d}  AUC {row['checkpoint_auc']:.3f} -> {row['refit_auc']:.3f}"
                  f"  fakes caught {row['refit_fake_caught']:.3f}, reals called fake {row['refit_real_fake']:.3f}")
        out["faces"] = rows

    if "methods" in studies and "ffpp_faces" in sets:
        rows = []
        print("\nFaceForensics++ methods held out (the method's fakes left out of the fit): AUC against all ffpp reals")
        Xa, ya, na = all_images(feats, "ffpp_faces")
        ma = ffpp_methods(na)
        for m in METHODS:
            def drop(name, X, y, kind, names, m=m):
                if name != "ffpp_faces":
                    return np.zeros(len(y), bool)
                return (kind == 0) & (ffpp_methods(names) == m)
            h = refit(feats, sets, w0, b0, args, drop=drop)
            sel = (ma == m) | (ya == 0)
            row = {"method": m, "n_fake": int((ma == m).sum()), "refit_auc": float(auc(ya[sel], h.logits(Xa[sel]))),
                   "checkpoint_auc": float(auc(ya[sel], Head(w0, b0).logits(Xa[sel])))}
            rows.append(row)
            print(f"  {m:16s} n_fake={row['n_fake']:4d}  AUC {row['checkpoint_auc']:.3f} -> {row['refit_auc']:.3f}")
        out["methods"] = rows

    if args.as_json:
        args.as_json.parent.mkdir(parents=True, exist_ok=True)
        args.as_json.write_text(json.dumps(out, indent=1))
    if args.write:
        if args.head is None:
            ap.error("--write needs --head checkpoint or --head refit")
        if args.head == "refit":
            chosen = full
            with torch.no_grad():
                model.head.weight.copy_(torch.from_numpy(full.W).float()[None])
                model.head.bias.fill_(full.b)
            meta.temperature = full.temperature
            meta.training["head_refit"] = {
                "script": "experiments/head.py", "features_of": ckpt.sha256(args.weights), "sets": sets,
                "sbi_share": args.sbi_share, "l2": args.l2,
                "train_cap": "at most 4,000 images per set, split and class (experiments/features.py)"}
        else:  # the checkpoint's head and temperature as they are; only the verdicts are new
            chosen = calibrate(Head(w0, b0, meta.temperature), feats, sets, max_fpr=args.max_fpr,
                               temperature=False)
        meta.verdicts = chosen.thresholds.to_dict()
        meta.training["verdict_calibration"] = {
            "script": "experiments/head.py", "sets": sets, "max_fpr": args.max_fpr,
            "data": f"val splits; {args.record}"}
        for split in ("val", "test"):
            table = {}
            for name in sets:
                X, y, kind, _ = feats.get(name, split)
                p, y = chosen.p(X[kind == 0]), y[kind == 0]
                table[name] = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
                               "real": shares(chosen, p[y == 0]) if (y == 0).any() else None,
                               "fake": shares(chosen, p[y == 1]) if (y == 1).any() else None}
            meta.evaluation[f"verdicts_{split}"] = table
        ckpt.save(model, meta, args.write)
        print(f"wrote {args.write}: t_fake {chosen.thresholds.fake:.4f}, t_real {chosen.thresholds.real:.4f}, "
              f"T {meta.temperature:.4f}")
    return 0


def _fmt_indist(row) -> str:
    def f(x):
        return f"{x:.3f}" if isinstance(x, float) else "  -  "
    s = f"  {row['set']:22s}"
    if "checkpoint_val_auc" in row:
        s += f" val AUC {f(row['checkpoint_val_auc'])} -> {f(row['refit_val_auc'])}"
        s += f"  test AUC {f(row['checkpoint_test_auc'])} -> {f(row['refit_test_auc'])}"
    if row.get("checkpoint_test_real"):
        s += f"  real->fake {f(row['checkpoint_test_real']['fake'])} -> {f(row['refit_test_real']['fake'])}"
    if row.get("checkpoint_test_fake"):
        s += f"  fake->fake {f(row['checkpoint_test_fake']['fake'])} -> {f(row['refit_test_fake']['fake'])}"
    return s


def _rule(rows, sets) -> dict:
    """The shipping rule of docs/decisions/2026-12-01-verdicts-and-trust-weights.md (val only)."""
    paired = [r for r in rows if "checkpoint_val_auc" in r]
    mean_old = float(np.mean([r["checkpoint_val_auc"] for r in paired]))
    mean_new = float(np.mean([r["refit_val_auc"] for r in paired]))
    worst_drop = float(max(r["checkpoint_val_auc"] - r["refit_val_auc"] for r in paired))
    tpr_old = float(np.mean([r["checkpoint_val_fake_tpr"] for r in rows if r["checkpoint_val_fake_tpr"] is not None]))
    tpr_new = float(np.mean([r["refit_val_fake_tpr"] for r in rows if r["refit_val_fake_tpr"] is not None]))
    ok = [mean_new >= mean_old + 0.02, worst_drop <= 0.02, tpr_new >= tpr_old]
    return {"mean_val_auc": [mean_old, mean_new], "largest_val_auc_drop": worst_drop,
            "val_fake_tpr_at_t_fake": [tpr_old, tpr_new], "conditions_met": ok, "ship": all(ok)}


if __name__ == "__main__":
    raise SystemExit(main())
