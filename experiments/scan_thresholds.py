#!/usr/bin/env python
"""Re-choose a checkpoint's `fake`, two-way and `real` thresholds by their own rules on the
scores the scan computes, a small margin beyond each; write the result as a new checkpoint.

    python experiments/scan_thresholds.py --out runs/scan_thresholds.safetensors \
        --record docs/decisions/2026-12-06-thresholds-on-the-scans-own-scores.md

The shipped `fake` threshold was chosen by ``experiments/head.py`` on float64 logits of stored
features and the two-way one by the training run's evaluation; the scan computes float32 scores
through the fused model, and a real val image within 1e-9 of a threshold can fall on the other
side. Here the nine sets' val splits are scored through the API (``Detector``, cached under
``--cache`` by the checkpoint's sha256, as ``experiments/real_rule.py`` does) and the rules are
applied unchanged: `fake`, per real source at most ``verdict_calibration.max_fpr`` of its val
images; two-way, at most ``--two-way-fpr`` of the real val images of ``calibration_sets``,
averaged over them; `real`, by its own rule (``verdict_calibration.real_rule``). The `fake` and
two-way thresholds are placed ``--margin`` above their rules' in logit, the `real` one as far
below (a float step is smaller than the differences between numerical paths), and no val image
may lie in a margin. The verdict tables (val and test shares, which ``fakedet info`` prints and
``tests/test_regression.py`` checks) are recomputed. ``--dry-run`` writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fakedet.data.sets import BY_NAME
from fakedet.evaluation import verdicts
from fakedet.evaluation.metrics import threshold_at_macro_fpr
from fakedet.evaluation.scorecache import scores
from fakedet.model import checkpoint as ckpt


def load(weights: Path):
    from fakedet import Detector

    return Detector.load(weights, provenance=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=ckpt.default_weights_path())
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--record", required=True, help="the decision record the change comes from")
    ap.add_argument("--margin", type=float, default=1e-4, help="logit margin above each rule's threshold")
    ap.add_argument("--two-way-fpr", type=float, default=0.05)
    ap.add_argument("--cache", type=Path, default=Path("runs/loso_real/scores"))
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    model, meta = ckpt.load(args.weights)
    cal = meta.training["verdict_calibration"]
    max_fpr = float(cal["max_fpr"])
    family, share = cal["real_rule"].split()
    sets = list(BY_NAME)
    val = {n: scores(args.weights, n, "val", args.cache, load) for n in sets}
    real = {n: p[y == 0] for n, (y, p) in val.items() if (y == 0).any()}
    fake = {n: p[y == 1] for n, (y, p) in val.items() if (y == 1).any()}
    every = np.concatenate([p for _, p in val.values()])
    calib = [n for n in meta.training["calibration_sets"] if n in real]
    ok = True

    chosen = verdicts.choose(real, fake, max_fpr, float(share), real_rule=family)
    rule_fake = chosen.fake
    t_fake = verdicts.moved(rule_fake, args.margin)
    rule_two = threshold_at_macro_fpr([real[n] for n in calib], args.two_way_fpr)
    t_two = verdicts.moved(rule_two, args.margin)
    rule_real = chosen.real  # its rule's, on the same scores (capped at the rule's fake threshold)
    t_real = verdicts.moved(rule_real, -args.margin)
    for name, old, rule, new in (("fake", float(meta.verdicts["fake"]), rule_fake, t_fake),
                                 ("two-way", float(meta.threshold), rule_two, t_two),
                                 ("real", float(meta.verdicts["real"]), rule_real, t_real)):
        lo, hi = min(rule, new), max(rule, new)
        gap = int(((every >= lo) & (every < hi)).sum())
        print(f"{name} threshold: {old!r} -> {new!r} (the rule's on the scan's scores {rule!r}, "
              f"{args.margin:g} in logit {'below' if name == 'real' else 'above'}; val images in the margin: {gap})")
        ok &= gap == 0  # rule 2 of the record
    worst = max((float((real[n] >= t_fake).mean()), n) for n in real)
    two_share = float(np.mean([(real[n] >= t_two).mean() for n in calib]))
    print(f"fake: the largest real val share at or above it {100 * worst[0]:.2f}%"
          f"{f' ({worst[1]})' if worst[0] else ''} (rule: "
          f"at most {100 * max_fpr:g}% per source); two-way: {100 * two_share:.2f}% averaged over {len(calib)} sets "
          f"(rule: at most {100 * args.two_way_fpr:g}%)")
    worst_real = max((float((fake[n] < t_real).mean()), n) for n in fake)
    print(f"real: the largest fake val share below it {100 * worst_real[0]:.2f}%"
          f"{f' ({worst_real[1]})' if worst_real[0] else ''} (rule: {cal['real_rule']})")
    ok &= worst[0] <= max_fpr and two_share <= args.two_way_fpr + 1e-9 and worst_real[0] <= float(share)

    tables = {}
    for split in ("val", "test"):
        table = {}
        for n in sets:
            y, p = val[n] if split == "val" else scores(args.weights, n, split, args.cache, load)
            table[n] = verdicts.verdict_table(y, p, t_fake, t_real)
            if split == "test":
                moved = int(((p >= float(meta.threshold)) != (p >= t_two)).sum())
                if moved:
                    print(f"  test {n}: {moved} images change side of the two-way threshold")
        tables[split] = table
        print(f"\n{split}: shares labelled fake (reals / fakes), before -> after")
        print("\n".join(verdicts.table_changes(meta.evaluation[f"verdicts_{split}"], table, "fake", 4)))
    if not ok:
        print("\nthe rule is not met: nothing written")
        return 1
    if args.dry_run or args.out is None:
        return 0
    where = f"on the scan's scores, {args.margin:g} in logit above the rule's ({args.record})"
    meta.verdicts = {**meta.verdicts, "fake": t_fake, "real": t_real}
    meta.threshold = t_two
    meta.training["threshold_rule"] = f"{meta.training['threshold_rule']}; {where}"
    meta.training["verdict_calibration"] = {**cal, "fake_rule_on": where, "margin_logit": args.margin,
                                            "fake_rule_script": "experiments/scan_thresholds.py"}
    for split, table in tables.items():
        meta.evaluation[f"verdicts_{split}"] = table
    ckpt.save(model, meta, args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
