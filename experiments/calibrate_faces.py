#!/usr/bin/env python
"""Calibrate the face-mode threshold of a checkpoint on val composites and store it in the file.

    python experiments/calibrate_faces.py --weights weights/fakedet-default.safetensors

In face mode (``fakedet scan --faces``) an image's score is the maximum over its faces and the whole
image (with a face expert whose file gates the whole image, the whole image counts only at or above
its own fake threshold: ``Detector.load``). A maximum of several scores is higher than one score, so
the whole-image threshold labels too many real photos fake there. This script builds composites like
experiments/face_eval.py does, but from the *val* splits of the face sets, pasted into real
backgrounds from the *train* split of imagenet_real_photos (face_eval.py uses test faces on test/val
backgrounds, so the two never share an image). It scores them in face mode and picks the smallest
threshold at which at most ``--target-fpr`` of the real composites are labelled fake, averaged over
the three face sets (the rule the whole-image threshold uses). The threshold is written into the
checkpoint's metadata (``face_threshold``); ``Detector(faces=True)`` and ``scan --faces`` use it.
Only val and train images are read: never the test labels.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from fakedet import Detector
from fakedet.data.sets import data_root
from fakedet.evaluation import verdicts
from fakedet.evaluation.composites import FACE_SETS, build
from fakedet.evaluation.metrics import threshold_at_macro_fpr
from fakedet.model import checkpoint


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(data_root()))
    ap.add_argument("--weights", default=str(checkpoint.default_weights_path()))
    ap.add_argument("--out", default=None, help="write the calibrated checkpoint here  [default: in place]")
    ap.add_argument("--n", type=int, default=200, help="composites per set (half real, half fake)")
    ap.add_argument("--target-fpr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-fpr", type=float, default=0.02,
                    help="verdict rule: most real composites labelled fake per set")
    ap.add_argument("--max-fnr", type=float, default=0.10, help="verdict rule: most fake composites labelled real")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--expert", default=None,
                    help="a face expert file (experiments/face_expert.py export): choose the verdicts of the "
                         "fused face score by the same rule and write them into that file; the network's "
                         "file is left as it is")
    ap.add_argument("--real-rule", choices=("averaged", "per-source"), default="averaged",
                    help="how --max-fnr counts fakes labelled real: averaged over the face sets, or per set")
    ap.add_argument("--real-only", action="store_true",
                    help="replace only the face-mode `real` threshold; every other threshold and table of "
                         "the file is kept, after checking that the `fake` threshold recomputed here equals "
                         "the stored one")
    ap.add_argument("--leave-out", default="", help="comma-separated face sets to leave out of the composites "
                    f"(of {', '.join(FACE_SETS)}): for a network or expert trained without them, whose "
                    "thresholds must not be chosen on them either")
    args = ap.parse_args(argv)
    left = [s for s in args.leave_out.split(",") if s]
    unknown = [s for s in left if s not in FACE_SETS]
    face_sets = [s for s in FACE_SETS if s not in left]
    if unknown or not face_sets:
        ap.error(f"--leave-out takes face sets of {', '.join(FACE_SETS)} and must keep one: {args.leave_out!r}")
    # experts are scored here before their own verdicts are chosen: their labels are not read
    warnings.filterwarnings("ignore", message="face expert .* no verdict thresholds", category=UserWarning)

    tmp = Path(tempfile.mkdtemp(prefix="fakedet-facecal-"))
    try:
        items = build(Path(args.data), tmp, args.n, args.seed, split="val", bg_splits=("train",), sets=face_sets)
        det = Detector.load(args.weights, device="cpu", faces=True, workers=args.workers,
                            expert=args.expert)  # None: the network's own face score
        res = det.predict([it["path"] for it in items])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bad = [r.error for r in res if not r.ok]
    if bad:
        sys.exit(f"{len(bad)} composites could not be scored: {bad[:3]}")
    p = np.array([r.p_fake for r in res])
    # the highest of all of a composite's scores, the whole image's included: with the whole image
    # gated (the shipped expert), `real` needs it below the threshold too (result.label_for)
    p_any = np.array([max([r.p_whole] + [f["p_fake"] for f in r.faces]) if r.faces else r.p_fake for r in res])
    y = np.array([it["label"] for it in items])
    names = np.array([it["set"] for it in items])
    reals = {name: p[(y == 0) & (names == name)] for name in face_sets}
    threshold = min(threshold_at_macro_fpr(list(reals.values()), args.target_fpr), 1.0)  # p = 1.0 reals
    whole = det.meta.threshold
    stats = {name: {"n_real": int(len(v)), "fpr": float((v >= threshold).mean()),
                    "fpr_at_whole_image_threshold": float((v >= whole).mean()),
                    "tpr": float((p[(y == 1) & (names == name)] >= threshold).mean())}
             for name, v in reals.items()}

    # The three verdicts in face mode, by the whole-image rule (docs/decisions/), on the
    # composites in which a face was found (the others are labelled by the whole-image ones).
    found = np.array([bool(r.faces) for r in res])
    real_p = {n: p[found & (y == 0) & (names == n)] for n in face_sets}
    fv = verdicts.choose(real_p, {n: p[found & (y == 1) & (names == n)] for n in face_sets},
                         args.max_fpr, args.max_fnr, real_rule=args.real_rule)
    # `real` is read on p_any, as a scan labels (equal to p unless the whole image is gated); the
    # `fake` threshold (and so the cap on `real`) comes from the same real scores in both calls
    fv_any = verdicts.choose(real_p, {n: p_any[found & (y == 1) & (names == n)] for n in face_sets},
                             args.max_fpr, args.max_fnr, real_rule=args.real_rule)
    fv = verdicts.VerdictThresholds(fake=fv.fake, real=fv_any.real, rule=fv.rule)
    # The face-mode `fake` threshold is never below the whole-image one: it would call fake images
    # whose whole-image score the whole-image rule kept from `fake` (crisp real portraits, which
    # the composites lack), and with the whole image gated at it, face mode calls fake whatever
    # the default scan calls fake.
    whole_fake = (det.meta.verdicts or {}).get("fake")
    rule_fake = fv.fake  # the rule's own, before the floor (reported by --real-only)
    if whole_fake is not None and fv.fake < whole_fake:
        fv = verdicts.VerdictThresholds(fake=float(whole_fake), real=min(fv.real, float(whole_fake)),
                                        rule=fv.rule + "; never below the whole-image fake threshold")
    for name, d in _shares(p, y, names, found, fv.fake, fv.real, p_any).items():
        stats[name].update(d)
    stats["_found"] = {"with_face": int(found.sum()), "composites": int(len(found))}

    if args.real_only:
        shares = functools.partial(_shares, p, y, names, found, p_any=p_any)
        return _write_real_only(args, det, fv, stats, items, rule_fake, shares)
    if args.expert:
        return _write_expert(args, det, fv, stats, items)
    meta = det.meta  # the checkpoint as loaded; only its metadata changes
    meta.face_verdicts = {**fv.to_dict(), "rule": fv.rule + " (val face composites with a face found)"}
    meta.face_threshold = float(threshold)
    meta.training["face_threshold_rule"] = (
        f"at most {args.target_fpr:.0%} of real val face composites labelled fake in face mode, "
        f"averaged over {', '.join(face_sets)} (experiments/calibrate_faces.py, {len(items)} composites)")
    meta.evaluation["faces_val"] = stats
    out = args.out or args.weights
    # det.model is fused for inference; the file keeps the weights as trained.
    checkpoint.save(checkpoint.load(det.weights_path)[0], meta, out)

    print(f"{len(items)} val composites; face-mode threshold {threshold:.4f} "
          f"(whole-image threshold {whole:.4f}); written to {out}\n")
    print("| set | real composites | FPR at the face threshold | FPR at the whole-image threshold "
          "| TPR at the face threshold |")
    print("|---|---|---|---|---|")
    for name in face_sets:
        s = stats[name]
        print(f"| {name} | {s['n_real']} | {s['fpr']:.3f} | {s['fpr_at_whole_image_threshold']:.3f} | {s['tpr']:.3f} |")
    print(f"\nface-mode verdicts: fake at >= {fv.fake:.6f}, real below {fv.real:.6f} "
          f"({stats['_found']['with_face']} of {len(found)} composites with a face found)")
    _print_verdicts(stats)
    return 0


def _write_expert(args, det, fv, stats, items) -> int:
    """The fused face score's verdicts, written into the face expert's file."""
    import dataclasses

    from safetensors.torch import load_file

    from fakedet.model import expert as fx

    path = Path(args.expert)
    meta = dataclasses.replace(fx.read_meta(path), face_verdicts={
        **fv.to_dict(), "rule": fv.rule + f" (val face composites with a face found, {len(items)} composites, "
                                          "fused face score)"})
    fx.save(path, load_file(str(path)), meta)
    print(f"{len(items)} val composites; fused face-mode verdicts: fake at >= {fv.fake:.6f}, "
          f"real below {fv.real:.6f}; written to {path}")
    _print_verdicts(stats)
    return 0


def replace_real_rule(rule: str, words: str) -> str:
    """``rule`` ("fake: ...; real: <words>[; more][ (where)]") with its real clause's words
    replaced, what follows them (a further clause, the data in brackets) kept."""
    head, _, tail = rule.partition("; real: ")
    cut = [i for i in (tail.find("; "), tail.find(" (")) if i >= 0]
    return f"{head}; real: {words}{tail[min(cut):] if cut else ''}"


def refuse_real_only(old: dict, fv) -> "str | None":
    """Why ``--real-only`` must not write ``fv``'s `real` threshold over the stored verdicts
    ``old`` (None: it may): none stored, a recomputed `fake` threshold that differs from the
    stored one (other composites or scores), or a `real` threshold above the stored one."""
    if "fake" not in old or "real" not in old:
        return "it holds no face-mode verdicts to keep; run without --real-only"
    if abs(float(old["fake"]) - fv.fake) > 1e-9:
        return (f"the recomputed face-mode fake threshold {fv.fake:.6f} differs from the stored "
                f"{float(old['fake']):.6f}: other composites or scores than it was chosen on; nothing written")
    if fv.real > float(old["real"]):
        return f"the new real threshold {fv.real:.6f} is above the stored {float(old['real']):.6f}; nothing written"
    return None


def _shares(p, y, names, found, fake_at: float, real_below: float, p_any=None) -> dict:
    """Per face set and class, the shares labelled fake / uncertain / real at two thresholds, as a
    scan labels (``p_any``: each composite's highest score, the whole image's included)."""
    from fakedet.inference.result import label_for

    p_any = p if p_any is None else p_any
    out = {}
    for name in [n for n in FACE_SETS if n in set(names)]:
        for cls, lab in (("real", 0), ("fake", 1)):
            sel = found & (y == lab) & (names == name)
            v = [label_for(x, fake_at, real_below, a) for x, a in zip(p[sel], p_any[sel])]
            out.setdefault(name, {})[f"{cls}_verdicts"] = {k: float(np.mean([x == k for x in v])) if v else None
                                                           for k in ("fake", "uncertain", "real")}
    return out


def _write_real_only(args, det, fv, stats, items, rule_fake, shares) -> int:
    """Replace only the face-mode `real` threshold (of the expert's file with ``--expert``, else of
    the network's), keeping the stored `fake` threshold, which must equal the one recomputed here."""
    import dataclasses

    from safetensors.torch import load_file

    from fakedet.model import expert as fx

    if args.expert:
        path = Path(args.expert)
        meta = fx.read_meta(path)
    else:
        path = Path(det.weights_path)
        meta = det.meta
    old = dict(meta.face_verdicts or {})
    why = refuse_real_only(old, fv)
    if why:
        sys.exit(f"{path}: {why}")
    print(f"the fake rule's own threshold on these composites: {rule_fake:.6f}"
          + (f", floored at the whole-image one, {fv.fake:.6f}" if rule_fake < fv.fake else ""))
    print(f"before (stored thresholds: fake at >= {float(old['fake']):.6f}, real below {float(old['real']):.6f}):")
    _print_verdicts(shares(float(old["fake"]), float(old["real"])))
    print("after:")
    words = fv.rule.split("; real: ")[1].split("; never below")[0]
    new = {**old, "real": float(fv.real), "rule": replace_real_rule(str(old.get("rule", "")), words)}
    print(f"{len(items)} val composites; face-mode real threshold {float(old['real']):.6f} -> {fv.real:.6f} "
          f"({args.real_rule}, {args.max_fnr:g}); fake threshold kept at {float(old['fake']):.6f}")
    _print_verdicts(stats)
    out = Path(args.out) if args.out else path
    if args.expert:
        fx.save(out, load_file(str(path)), dataclasses.replace(meta, face_verdicts=new))
    else:
        meta.face_verdicts = new
        for n in (n for n in stats if not n.startswith("_")):  # the verdict shares at the new thresholds
            meta.evaluation.setdefault("faces_val", {}).setdefault(n, {}).update(
                {k: stats[n][k] for k in ("real_verdicts", "fake_verdicts")})
        checkpoint.save(checkpoint.load(det.weights_path)[0], meta, out)
    print(f"written to {out}: {new['rule']}")
    return 0


def _print_verdicts(stats) -> None:
    print("| set | real: fake / uncertain / real | fakes: fake / uncertain / real |")
    print("|---|---|---|")
    for name in (n for n in stats if not n.startswith("_")):
        r, f = stats[name]["real_verdicts"], stats[name]["fake_verdicts"]
        print(f"| {name} | " + " / ".join(f"{r[k]:.3f}" for k in ("fake", "uncertain", "real")) + " | "
              + " / ".join(f"{f[k]:.3f}" for k in ("fake", "uncertain", "real")) + " |")


if __name__ == "__main__":
    sys.exit(main())
