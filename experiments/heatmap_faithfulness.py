"""Is the explain heatmap faithful? A deletion check anyone can rerun.

For fakes from the val splits of the labelled sets (``$FAKEDET_DATA``, default ../shared/data),
each image is explained as ``fakedet explain --no-faces`` does (occlusion heatmap of the
whole-image score, :func:`fakedet.inference.explain.explain_image`), then scored three ways
with the same hiding method as the heatmap (cells filled with the image's mean colour; or
another one, ``--test-fill blur``):

* p_fake of the image as it is,
* p_fake with the hottest 10 % of the image hidden (the top cells of the heatmap, together),
* p_fake with a random 10 % hidden (as many cells drawn at random; ``--draws`` draws averaged).

A faithful heatmap points at what the score depends on, so hiding the hottest cells must lower
p_fake more than hiding random ones. Reported per set and over all: the mean drops (in p_fake
and in log-odds), the share of images where the hottest drop beats the random one, and paired
tests of "hottest > random": Wilcoxon signed-rank (scipy when installed, else its normal
approximation computed here) and an exact sign test.

    python experiments/heatmap_faithfulness.py --n 40 --out heatmap_faithfulness.json

Images are only read from the data folder; nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def wilcoxon_greater(d: np.ndarray) -> dict:
    """Wilcoxon signed-rank test of "the paired differences ``d`` lean positive" (zeros dropped,
    average ranks for ties): scipy's exact or normal test when scipy is installed, else the
    normal approximation with the tie correction."""
    d = np.asarray(d, dtype=np.float64)
    d = d[d != 0]
    n = len(d)
    if n == 0:
        return {"n": 0, "W+": None, "z": None, "p_one_sided": None, "method": "no nonzero differences"}
    try:
        from scipy.stats import wilcoxon

        r = wilcoxon(d, alternative="greater")
        return {"n": n, "W+": float(r.statistic), "z": None, "p_one_sided": float(r.pvalue),
                "method": "scipy.stats.wilcoxon"}
    except ImportError:
        pass
    a = np.abs(d)
    order = np.argsort(a, kind="stable")
    ranks = np.empty(n)
    sa = a[order]
    i = 0
    tie_term = 0.0
    while i < n:
        j = i
        while j + 1 < n and sa[j + 1] == sa[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        t = j - i + 1
        tie_term += t ** 3 - t
        i = j + 1
    w_plus = float(ranks[d > 0].sum())
    mean = n * (n + 1) / 4
    var = n * (n + 1) * (2 * n + 1) / 24 - tie_term / 48
    z = (w_plus - mean) / math.sqrt(var) if var > 0 else 0.0
    return {"n": n, "W+": w_plus, "z": z, "p_one_sided": 0.5 * math.erfc(z / math.sqrt(2)),
            "method": "normal approximation (scipy not installed)"}


def sign_test_greater(d: np.ndarray) -> dict:
    """Exact one-sided sign test: P(at least this many positive differences | no effect)."""
    d = np.asarray(d, dtype=np.float64)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    n = pos + neg
    if n == 0:
        return {"positive": 0, "negative": 0, "p_one_sided": None}
    p = sum(math.comb(n, i) for i in range(pos, n + 1)) / 2 ** n
    return {"positive": pos, "negative": neg, "ties": int((d == 0).sum()), "p_one_sided": p}


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    hot_p = np.array([r["p"] - r["p_hottest"] for r in rows])
    rnd_p = np.array([r["p"] - r["p_random"] for r in rows])
    hot_z = np.array([r["z"] - r["z_hottest"] for r in rows])
    rnd_z = np.array([r["z"] - r["z_random"] for r in rows])
    diff_p, diff_z = hot_p - rnd_p, hot_z - rnd_z
    return {
        "n": len(rows),
        "mean_p_fake": float(np.mean([r["p"] for r in rows])),
        "mean_drop_p_hottest": float(hot_p.mean()),
        "mean_drop_p_random": float(rnd_p.mean()),
        "median_drop_p_hottest": float(np.median(hot_p)),
        "median_drop_p_random": float(np.median(rnd_p)),
        "mean_drop_logodds_hottest": float(hot_z.mean()),
        "mean_drop_logodds_random": float(rnd_z.mean()),
        "share_hottest_beats_random_p": float((diff_p > 0).mean()),
        "share_hottest_beats_random_logodds": float((diff_z > 0).mean()),
        "wilcoxon_p": wilcoxon_greater(diff_p),
        "wilcoxon_logodds": wilcoxon_greater(diff_z),
        "sign_test_p": sign_test_greater(diff_p),
        "sign_test_logodds": sign_test_greater(diff_z),
    }


def main(argv=None) -> int:
    from fakedet.data import sets

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="data root [default: $FAKEDET_DATA or ../shared/data]")
    ap.add_argument("--sets", nargs="*", default=None,
                    help="sets to draw fakes from [default: every set with fakes, all nine listed]")
    ap.add_argument("--split", default="val")
    ap.add_argument("--n", type=int, default=40, help="fakes per set (a seeded random sample)")
    ap.add_argument("-w", "--weights", default=None, help="checkpoint [default: the shipped weights]")
    ap.add_argument("--grid", type=int, default=10, help="heatmap cells per side (as fakedet explain --grid)")
    ap.add_argument("--share", type=float, default=0.1, help="share of the image hidden")
    ap.add_argument("--draws", type=int, default=5, help="random draws averaged per image")
    ap.add_argument("--fill", default="mean", choices=("mean", "blur"),
                    help="how the heatmap's hidden cells are filled (fakedet explain: mean)")
    ap.add_argument("--test-fill", default=None, choices=("mean", "blur"),
                    help="how the hottest and random cells are hidden in the test [default: --fill]; "
                         "a different one checks that the heatmap does not only find where its own "
                         "fill misleads the model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: steadier timing on a shared machine)")
    ap.add_argument("--out", default="heatmap_faithfulness.json", help="JSON file to write")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    from fakedet.data import decode
    from fakedet.data.labelled import read_manifest
    from fakedet.inference.detector import Detector
    from fakedet.inference.explain import Occluder, explain_image, random_cells, score_hidden, sigmoid

    root = Path(args.data) if args.data else sets.data_root()
    names = args.sets or [s.name for s in sets.SETS if s.kind != sets.REAL_ONLY]
    det = Detector.load(args.weights, device="cpu", workers=0, provenance=False)
    cfg = det.config.preprocess

    rows: list[dict] = []
    skipped: list[dict] = []
    started = time.perf_counter()
    for name in names:
        mpath = sets.manifest(name, root)
        if not os.path.isfile(mpath):
            print(f"{name}: no manifest at {mpath}, skipped", file=sys.stderr)
            continue
        fakes = sorted((x for x in read_manifest(mpath, args.split) if x.label == 1), key=lambda x: x.path)
        pick = random.Random(f"{args.seed}:{name}").sample(fakes, min(args.n, len(fakes)))
        t_set = time.perf_counter()
        for i, item in enumerate(pick):
            t0 = time.perf_counter()
            try:
                img = decode.load(item.path, cfg)
                ex = explain_image(det, img, grid=args.grid, faces=False, fill=args.fill)
            except decode.ImageError as exc:
                skipped.append({"set": name, "file": os.path.relpath(item.path, root), "error": str(exc)})
                continue
            occ = Occluder(img, ex.grid, args.test_fill or args.fill)
            rng = np.random.default_rng([args.seed, i, len(rows)])
            hot = ex.hottest(args.share)
            rand = [random_cells(ex.heat.shape, args.share, rng) for _ in range(args.draws)]
            z = score_hidden(det, occ, [hot] + rand)
            z0 = ex.z_whole
            rows.append({
                "set": name, "file": os.path.relpath(item.path, root), "size": [ex.width, ex.height],
                "p": ex.p_whole, "z": z0,
                "p_hottest": float(sigmoid(z[0])), "z_hottest": float(z[0]),
                "p_random": float(np.mean(sigmoid(z[1:]))), "z_random": float(np.mean(z[1:])),
                "cells_hidden": len(hot), "seconds": time.perf_counter() - t0,
            })
        done = [r for r in rows if r["set"] == name]
        s = summarise(done)
        if s["n"]:
            print(f"{name:22s} n={s['n']:3d} p={s['mean_p_fake']:.3f} drop hottest {s['mean_drop_p_hottest']:+.4f} "
                  f"random {s['mean_drop_p_random']:+.4f}  hottest>random {s['share_hottest_beats_random_p']:.0%}"
                  f"  ({time.perf_counter() - t_set:.0f} s)", file=sys.stderr, flush=True)

    def rev():
        try:
            return subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "--short",
                                   "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        except Exception:
            return None

    result = {
        "what": "drop in p_fake after hiding the hottest vs a random share of the image (fakes only)",
        "command": "python experiments/heatmap_faithfulness.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": rev(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available()},
        "weights": str(det.weights_path), "data": str(root), "split": args.split, "sets": names,
        "n_per_set": args.n, "grid": args.grid, "share": args.share, "draws": args.draws, "fill": args.fill,
        "test_fill": args.test_fill or args.fill,
        "seed": args.seed, "seconds": time.perf_counter() - started,
        "seconds_per_image_mean": float(np.mean([r["seconds"] for r in rows])) if rows else None,
        "overall": summarise(rows),
        "per_set": {name: summarise([r for r in rows if r["set"] == name]) for name in names},
        "skipped": skipped,
        "images": rows,
    }
    Path(args.out).write_text(json.dumps(_finite(result), indent=1, allow_nan=False))
    o = result["overall"]
    if o["n"]:
        print(f"overall n={o['n']}: mean drop in p_fake, hottest {o['mean_drop_p_hottest']:+.4f} vs random "
              f"{o['mean_drop_p_random']:+.4f}; hottest > random on {o['share_hottest_beats_random_p']:.0%}; "
              f"Wilcoxon one-sided p = {o['wilcoxon_p']['p_one_sided']}, sign test p = "
              f"{o['sign_test_p']['p_one_sided']}; {result['seconds']:.0f} s -> {args.out}", file=sys.stderr)
    return 0


def _finite(obj):
    """JSON has no NaN or infinity: such figures become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


if __name__ == "__main__":
    sys.exit(main())
