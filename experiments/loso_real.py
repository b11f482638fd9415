#!/usr/bin/env python
"""Leave one real source out of the whole network: the table of issue 18's first target.

    python experiments/loso_real.py runs/loso_real/without_* --json runs/loso_real/table.json

Each argument is the run folder of ``experiments/train.py --config
configs/loso_real/without_<source>.json`` (the source is read from the folder's name). For each
run, :func:`fakedet.evaluation.trust.study` chooses the three verdicts' thresholds by the shipped rules on the
val splits of the sources the run trained on, then scores the held-out source and
unsplash_portraits (unseen by every run) on all their images (train, val and test splits). It
prints, per held-out source, the share of its real images labelled ``fake`` against the issue's
bound of 0.05, the shares ``uncertain`` and ``real``, and for a paired set its fakes' AUC and the
share of them labelled ``fake``. Record: docs/decisions/2026-12-05-leave-one-real-source-out.md.
Scores are cached under ``--cache`` (per checkpoint sha256), so a rerun only prints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fakedet.evaluation.scorecache import scores
from fakedet.evaluation.trust import study
from fakedet.evaluation.verdicts import fake_threshold

SETS = ("dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces", "imagenet_real_photos",
        "utkface_real", "ffpp_faces")
PAIRED = ("dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces", "ffpp_faces")
UNSEEN = "unsplash_portraits"
SPLITS = ["train", "val", "test"]
BOUND = 0.05
#: the `fake` rule's candidates (the share of each real source's val images allowed at or above
#: the threshold; 0.02 is the shipped rule), for the record's addendum
RULES = (0.02, 0.01, 0.005, 0.002, 0.001)


def load(weights: Path):
    from fakedet import Detector  # torch is imported only when something must be scored

    return Detector.load(weights, provenance=False)


def held_out(run: Path) -> str:
    name = run.name.removeprefix("without_")
    if name not in SETS:
        raise SystemExit(f"{run}: the folder's name must be without_<source>, one of {', '.join(SETS)}")
    return name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--cache", type=Path, default=Path("runs/loso_real/scores"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--shipped", type=Path, default=None,
                    help="instead: these weights' fake threshold by each candidate rule on their val splits")
    args = ap.parse_args(argv)
    if args.shipped is not None:
        shipped_rules(args.shipped, args.cache)
        return 0
    args.runs = [r for r in args.runs if r.is_dir()]  # (a shell glob also names the runs' logs)
    rows = {}
    for run in args.runs:
        s = held_out(run)
        weights = run / "final.safetensors"
        if not weights.exists():
            print(f"{run}: no final.safetensors (not finished), left out", flush=True)
            continue
        print(f"{run}", flush=True)
        r = study(weights, [x for x in SETS if x != s], [x for x in PAIRED if x != s], [s, UNSEEN], SPLITS,
                  args.cache, load)
        rows[s] = r
    if not rows:
        return 1
    print(f"\n| held-out source | real images | labelled `fake` (bound {BOUND}) | `uncertain` | `real` "
          f"| fakes: AUC / labelled `fake` | {UNSEEN} labelled `fake` | `fake` threshold |")
    print("|---|---|---|---|---|---|---|---|")
    met = 0
    for s, r in rows.items():
        h, u = r["heldout"][s], r["heldout"][UNSEEN]
        fake, unc = h["real_labelled_fake"], h["real_labelled_uncertain"]
        met += fake <= BOUND
        fakes = "–" if h["auc"] is None else f"{h['auc']:.3f} / {h['fake_labelled_fake']:.3f}"
        print(f"| {s} | {h['n_real']:,} | {fake:.3f} ({'met' if fake <= BOUND else 'not met'}) | {unc:.3f} "
              f"| {1 - fake - unc:.3f} | {fakes} | {u['real_labelled_fake']:.3f} | {r['t_fake']:.6f} |")
    print(f"\nmet for {met} of {len(rows)} held-out sources")
    rules = rule_grid(args.runs, args.cache)
    if rules:
        print("\nstricter `fake` rules (the record's addendum): the share of each held-out source's real "
              "train and val images labelled `fake` at the run's threshold chosen by each rule")
        names = list(rules[RULES[0]])
        print("| rule (max share per source) | " + " | ".join(names) + " | worst |")
        print("|---|" + "---|" * (len(names) + 1))
        for rule in RULES:
            shares = rules[rule]
            print(f"| {rule} | " + " | ".join(f"{shares[n]:.3f}" for n in names)
                  + f" | {max(shares.values()):.3f} |")
        chosen, within = choose_rule(rules)
        print(f"\nchosen by the addendum's rule: {chosen}"
              + ("" if within else " (none keeps every source within the bound: the smallest worst share)"))
        for row in rows.values():
            row["rule_grid"] = {str(r): rules[r] for r in RULES}
            row["rule_chosen"] = chosen
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def choose_rule(grid: dict) -> tuple[float, bool]:
    """The addendum's choice from :func:`rule_grid`'s figures: the largest rule at which every
    held-out source stays within :data:`BOUND`, else the one with the smallest worst share (and
    whether the bound was kept)."""
    ok = [r for r in grid if max(grid[r].values()) <= BOUND]
    if ok:
        return max(ok), True
    return min(grid, key=lambda r: (max(grid[r].values()), -r)), False


def rule_grid(runs, cache: Path) -> dict:
    """{rule: {held-out source: share of its real train and val images at or above the run's
    `fake` threshold chosen by that rule on its training sources' val splits}} (cached scores)."""
    out = {r: {} for r in RULES}
    for run in runs:
        s = held_out(run)
        weights = run / "final.safetensors"
        if not weights.exists():
            continue
        val = {n: scores(weights, n, "val", cache, load) for n in SETS if n != s}
        real_val = [p[y == 0] for y, p in val.values()]
        parts = [scores(weights, s, split, cache, load) for split in ("train", "val")]
        held = np.concatenate([p[y == 0] for y, p in parts])
        for r in RULES:
            out[r][s] = float(np.mean(held >= fake_threshold(real_val, r)))
    return out if out[RULES[0]] else {}


def shipped_rules(weights: Path, cache: Path) -> None:
    """The shipped weights' `fake` threshold by each candidate rule on their val splits, and the
    share of their val fakes labelled `fake` (mean over the fake sources) at it: the nine sets of
    the shipped verdict study (``head.py``), so Unsplash's val portraits are a real source and the
    Stable Diffusion 1.5 fine-tunes a fake one."""
    from fakedet.data.sets import BY_NAME

    val = {n: scores(weights, n, "val", cache, load) for n in BY_NAME}
    real_val = [p[y == 0] for y, p in val.values()]
    fakes = [p[y == 1] for y, p in val.values() if (y == 1).any()]
    print("| rule | `fake` threshold | val fakes labelled `fake`, mean over the fake sources |\n|---|---|---|")
    for r in RULES:
        t = fake_threshold(real_val, r)
        print(f"| {r} | {t:.6f} | {np.mean([np.mean(f >= t) for f in fakes]):.3f} |")


if __name__ == "__main__":
    raise SystemExit(main())
