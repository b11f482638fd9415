#!/usr/bin/env python
"""Leave one real source out of the whole network: the table of issue 18's first target.

    python experiments/loso_real.py runs/loso_real/without_* --json runs/loso_real/table.json

Each argument is the run folder of ``experiments/train.py --config
configs/loso_real/without_<source>.json`` (the source is read from the folder's name). For each
run, :func:`trust_eval.study` chooses the three verdicts' thresholds by the shipped rules on the
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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trust_eval import study  # noqa: E402

SETS = ("dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces", "imagenet_real_photos",
        "utkface_real", "ffpp_faces")
PAIRED = ("dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces", "ffpp_faces")
UNSEEN = "unsplash_portraits"
SPLITS = ["train", "val", "test"]
BOUND = 0.05


def held_out(run: Path) -> str:
    name = run.name.removeprefix("without_")
    if name not in SETS:
        raise SystemExit(f"{run}: the folder's name must be without_<source>, one of {', '.join(SETS)}")
    return name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--cache", type=Path, default=Path("runs/loso_real/scores"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = {}
    for run in args.runs:
        s = held_out(run)
        weights = run / "final.safetensors"
        if not weights.exists():
            print(f"{run}: no final.safetensors (not finished), left out", flush=True)
            continue
        print(f"{run}", flush=True)
        r = study(weights, [x for x in SETS if x != s], [x for x in PAIRED if x != s], [s, UNSEEN], SPLITS,
                  args.cache)
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
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
