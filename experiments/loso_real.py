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

``--real-rules`` (record: docs/decisions/2026-12-05-the-real-verdict-on-unseen-fakes.md) reads the
runs that held out a paired set instead: at each run's `fake` threshold by the shipped rule
(0.1 %), its `real` threshold by each candidate rule on the val fakes of the sets it trained on,
and the share labelled `real` of the held-out set's fakes, of sd15_finetunes' fakes (unseen by
every run) and of the held-out set's reals (train and val; test apart), then the record's choice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from fakedet.evaluation.scorecache import scores
from fakedet.evaluation.trust import study
from fakedet.evaluation.verdicts import RuleUnmet, fake_threshold, real_threshold, real_threshold_per_source

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
    ap.add_argument("--real-rules", action="store_true",
                    help="instead: the real verdict's candidate rules on the held-out paired sets' fakes")
    ap.add_argument("--fake-threshold", action="store_true",
                    help="instead: each run's whole-image `fake` threshold by the shipped rule, on the val "
                    "reals of the sources it trained on (a run named without_<source> lacks that source)")
    args = ap.parse_args(argv)
    if args.shipped is not None:
        shipped_rules(args.shipped, args.cache)
        return 0
    args.runs = [r for r in args.runs if r.is_dir()]  # (a shell glob also names the runs' logs)
    if args.fake_threshold:
        return fake_thresholds(args.runs, args.cache, args.json)
    if args.real_rules:
        return real_rules(args.runs, args.cache, args.json)
    rows = {}
    for run in args.runs:
        s = held_out(run)
        weights = run / "final.safetensors"
        if not weights.exists():
            print(f"{run}: no final.safetensors (not finished), left out", flush=True)
            continue
        print(f"{run}", flush=True)
        try:
            r = study(weights, [x for x in SETS if x != s], [x for x in PAIRED if x != s], [s, UNSEEN], SPLITS,
                      args.cache, load)
        except RuleUnmet as exc:  # the rule cannot be met: one run left out, the sweep goes on
            print(f"{run}: {exc}; left out", file=sys.stderr, flush=True)
            continue
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
            print(f"| {rule} | " + " | ".join("–" if shares[n] is None else f"{shares[n]:.3f}" for n in names)
                  + f" | {_share(_worst(shares))} |")
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
    whether the bound was kept). A rule that some run could not meet (share None) is never kept."""
    ok = [r for r in grid if _worst(grid[r]) <= BOUND]
    if ok:
        return max(ok), True
    return min(grid, key=lambda r: (_worst(grid[r]), -r)), False


def _share(x: float) -> str:
    return "none met" if x == float("inf") else f"{x:.3f}"


def _worst(shares: dict) -> float:
    """The largest share; a rule that no threshold met for some run (None) counts as the worst."""
    return max(float("inf") if v is None else v for v in shares.values())


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
            t = _fake_threshold(real_val, r, run)
            out[r][s] = None if t is None else float(np.mean(held >= t))
    return out if out[RULES[0]] else {}


#: the shipped `fake` rule since 2026-12-05
FAKE_RULE = 0.001
#: the `real` rule's candidates, loosest first: (family, share); "averaged" is the shipped family
REAL_RULES = tuple((fam, x) for x in (0.10, 0.05, 0.02, 0.01) for fam in ("averaged", "per-source"))
REAL_BOUND = 0.10
UNSEEN_FAKES = "sd15_finetunes"


def real_rules(runs, cache: Path, json_path) -> int:
    """The record's table and choice (see the module's docstring)."""
    out = {}
    for run in runs:
        s = held_out(run)
        weights = run / "final.safetensors"
        if s not in PAIRED or not weights.exists():
            continue
        print(f"{run}", flush=True)
        val = {n: scores(weights, n, "val", cache, load) for n in SETS if n != s}
        t_fake = _fake_threshold([p[y == 0] for y, p in val.values()], FAKE_RULE, run)
        if t_fake is None:
            continue
        fakes = [p[y == 1] for n, (y, p) in val.items() if n in PAIRED]

        held, held_test = _part(weights, s, ("train", "val"), cache), _part(weights, s, ("test",), cache)
        sd15 = _part(weights, UNSEEN_FAKES, ("train", "val"), cache)
        sd15_test = _part(weights, UNSEEN_FAKES, ("test",), cache)
        row = {"t_fake": t_fake, "rules": {}}
        for fam, x in REAL_RULES:
            pick = real_threshold if fam == "averaged" else real_threshold_per_source
            t = pick(fakes, x, cap=t_fake)
            row["rules"][f"{fam} {x}"] = {
                "t_real": t, "heldout_fakes_real": _below(held, 1, t), "sd15_real": _below(sd15, 1, t),
                "heldout_reals_real": _below(held, 0, t), "test": {
                    "heldout_fakes_real": _below(held_test, 1, t), "sd15_real": _below(sd15_test, 1, t),
                    "heldout_reals_real": _below(held_test, 0, t)}}
        out[s] = row
    if not out:
        return 1
    names = list(out)
    print(f"\nshare labelled `real` (train and val), at each run's `fake` threshold by the {FAKE_RULE} rule")
    print("| `real` rule | " + " | ".join(f"{n} fakes" for n in names) + f" | {UNSEEN_FAKES} (worst run) "
          "| worst | held-out reals labelled `real`: " + ", ".join(names) + " |")
    print("|---|" + "---|" * (len(names) + 3))
    worst = {}
    for fam, x in REAL_RULES:
        key = f"{fam} {x}"
        held = [out[n]["rules"][key]["heldout_fakes_real"] for n in names]
        sd15 = max(out[n]["rules"][key]["sd15_real"] for n in names)
        worst[key] = max(held + [sd15])
        reals = ", ".join(f"{out[n]['rules'][key]['heldout_reals_real']:.3f}" for n in names)
        print(f"| {key} | " + " | ".join(f"{h:.3f}" for h in held) + f" | {sd15:.3f} | {worst[key]:.3f} | {reals} |")
    ok = [f"{fam} {x}" for fam, x in REAL_RULES if worst[f"{fam} {x}"] <= REAL_BOUND]
    chosen = ok[0] if ok else min(worst, key=worst.get)
    print(f"\nchosen by the record's rule: {chosen}" + ("" if ok else " (none keeps every source within "
                                                              f"{REAL_BOUND}: the smallest worst share)"))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({"runs": out, "worst": worst, "chosen": chosen}, indent=2))
    return 0


def _fake_threshold(real_val, rule: float, run) -> float | None:
    """The `fake` threshold by ``rule``, or None (said on stdout) where no threshold meets it: a
    source's real scores saturated at 1.0 leave one run or rule out of a sweep, not stop it."""
    try:
        return fake_threshold(real_val, rule)
    except RuleUnmet as exc:  # (on stderr: the tables on stdout stay whole)
        print(f"{run}: {exc} (rule {rule}); left out", file=sys.stderr, flush=True)
        return None


def _part(weights: Path, name: str, splits, cache: Path):
    got = [scores(weights, name, split, cache, load) for split in splits]
    return np.concatenate([y for y, _ in got]), np.concatenate([p for _, p in got])


def _below(yp, label: int, t: float):
    """The share of ``label``'s images scored below ``t`` (labelled `real`); None when none."""
    y, p = yp
    return float(np.mean(p[y == label] < t)) if (y == label).any() else None


def trained_sources(run: Path) -> list[str]:
    """The real sources a run's calibration read: every one of ``SETS`` but the one its folder's
    name holds out (a leave-one-method-out run, ``without_<method>``, trained on all of them)."""
    name = run.name.removeprefix("without_")
    return [x for x in SETS if x != name]


def fake_thresholds(runs, cache: Path, json_path) -> int:
    """Each run's whole-image `fake` threshold by the shipped rule (``FAKE_RULE`` of each real
    source's val images at or above it): the gate face mode pairs with that network."""
    out = {}
    for run in runs:
        weights = run / "final.safetensors"
        if not weights.exists():
            print(f"{run}: no final.safetensors (not finished), left out", flush=True)
            continue
        val = {n: scores(weights, n, "val", cache, load) for n in trained_sources(run)}
        t = _fake_threshold([p[y == 0] for y, p in val.values()], FAKE_RULE, run)
        if t is None:
            continue
        out[str(run)] = t
        print(f"{run}: `fake` at p_fake >= {out[str(run)]:.6f} ({FAKE_RULE} rule over "
              f"{', '.join(val)})", flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2))
    return 0 if out else 1


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
        t = _fake_threshold(real_val, r, weights)
        if t is None:
            print(f"| {r} | no threshold meets the rule | – |")
            continue
        print(f"| {r} | {t:.6f} | {np.mean([np.mean(f >= t) for f in fakes]):.3f} |")


if __name__ == "__main__":
    raise SystemExit(main())
