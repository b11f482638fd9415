#!/usr/bin/env python
"""Re-choose a checkpoint's `real` threshold by another rule on its val splits, keeping its
network, temperature and `fake` threshold; write the result as a new checkpoint.

    python experiments/real_rule.py --weights weights/fakedet-default.safetensors \
        --rule "per-source 0.05" --out runs/real_rule.safetensors \
        --record docs/decisions/2026-12-05-the-real-verdict-on-unseen-fakes.md

The nine sets' val splits are scored through the API (``Detector``, cached under ``--cache`` by
the checkpoint's sha256) as ``experiments/head.py`` chose the shipped thresholds: each set with
real val images is a real source, each with fake val images a fake source. The `fake` threshold
is recomputed by the checkpoint's own rule (``verdict_calibration.max_fpr``) as a check, and kept
as it is; the `real` threshold is chosen by ``--rule`` (``averaged X`` or ``per-source X``, see
:func:`fakedet.evaluation.verdicts.choose`). The checkpoint's verdict tables (val and test
shares of each verdict per set, which ``fakedet info`` prints and ``tests/test_regression.py``
checks) are recomputed at the new thresholds; ``--dry-run`` prints them without writing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fakedet.data.sets import BY_NAME
from fakedet.evaluation import verdicts
from fakedet.evaluation.metrics import threshold_at_macro_fpr
from fakedet.evaluation.scorecache import scores
from fakedet.evaluation.verdicts import threshold_text
from fakedet.model import checkpoint as ckpt


def load(weights: Path):
    from fakedet import Detector

    return Detector.load(weights, provenance=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ckpt.default_weights_path())
    ap.add_argument("--rule", required=True, help='"averaged X" or "per-source X"')
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--record", required=True, help="the decision record the rule comes from")
    ap.add_argument("--cache", type=Path, default=Path("runs/loso_real/scores"))
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    try:
        family, share = args.rule.split()
        share = float(share)
    except ValueError:
        ap.error(f'--rule must be "averaged X" or "per-source X", got {args.rule!r}')
    model, meta = ckpt.load(args.weights)
    cal = meta.training["verdict_calibration"]
    max_fpr = float(cal["max_fpr"])
    sets = list(BY_NAME)
    val = {n: scores(args.weights, n, "val", args.cache, load) for n in sets}
    real = {n: p[y == 0] for n, (y, p) in val.items() if (y == 0).any()}
    fake = {n: p[y == 1] for n, (y, p) in val.items() if (y == 1).any()}
    chosen = verdicts.choose(real, fake, max_fpr, share, real_rule=family)
    t_fake = float(meta.verdicts["fake"])
    # the stored thresholds lie a margin (in logit) beyond their rules' since 2026-12-06
    # (experiments/scan_thresholds.py); files before it have none, and the shipped one of then
    # was chosen on float64 logits of stored features, 1.4e-9 from the API's float32 path
    margin = float(cal.get("margin_logit", 0.0))
    print(f"fake threshold: kept {t_fake!r} (recomputed by its rule {chosen.fake!r}, "
          f"{margin:g} in logit above: {verdicts.moved(chosen.fake, margin)!r})")
    if abs(verdicts.moved(chosen.fake, margin) - t_fake) > 1e-8:  # the real threshold is capped at it
        raise SystemExit("the recomputed fake threshold differs from the checkpoint's: other scores "
                         "or another rule than the one it was chosen by; nothing written")
    t_real = verdicts.moved(chosen.real, -margin)  # the same margin, below
    print(f"real threshold: {threshold_text(float(meta.verdicts['real']))} -> {threshold_text(t_real)} "
          f"({args.rule})")
    # the two-way threshold (-t) was chosen during training, on the val reals of the sets trained
    # on, at most 5 % labelled fake averaged over them: its share on the scan's scores, a check
    trained = [n for n in meta.training.get("calibration_sets") or meta.training.get("train_sets", []) if n in real]
    if trained:
        two = float(meta.threshold)
        share = float(np.mean([(real[n] >= two).mean() for n in trained]))
        print(f"two-way threshold {two:.7f}: {100 * share:.2f}% of the real val images of the "
              f"{len(trained)} sets trained on labelled fake, averaged over them (rule: at most 5%; "
              f"recomputed on the scan's scores: {threshold_at_macro_fpr([real[n] for n in trained], 0.05):.7f})")
    tables = {}
    for split in ("val", "test"):
        table = {}
        for n in sets:
            y, p = val[n] if split == "val" else scores(args.weights, n, split, args.cache, load)
            table[n] = verdicts.verdict_table(y, p, t_fake, t_real)
        tables[split] = table
        print(f"\n{split}: share labelled `real` (reals / fakes), before -> after")
        print("\n".join(verdicts.table_changes(meta.evaluation[f"verdicts_{split}"], table, "real", 3)))
    if args.dry_run or args.out is None:
        return 0
    rule = chosen.rule.split("; real: ")[1]
    meta.verdicts = {"fake": t_fake, "real": t_real,
                     "rule": meta.verdicts["rule"].split("; real: ")[0] + "; real: " + rule}
    meta.training["verdict_calibration"] = {**meta.training["verdict_calibration"], "real_rule": args.rule,
                                            "real_rule_script": "experiments/real_rule.py",
                                            "data": f"val splits; {args.record}"}
    for split, table in tables.items():
        meta.evaluation[f"verdicts_{split}"] = table
    ckpt.save(model, meta, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
