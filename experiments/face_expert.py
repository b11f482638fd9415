#!/usr/bin/env python
"""The fused face score of ``fakedet scan --faces``: build the face expert's shipped file and
read the decision record's rule (docs/decisions/2026-12-03-a-fused-face-mode-in-the-product.md).

    python experiments/face_expert.py export --run runs/sbi_g --weight 0.7 --out weights/face-expert.safetensors
    python experiments/calibrate_faces.py --expert weights/face-expert.safetensors   # its face verdicts
    python experiments/face_expert.py evaluate --json runs/face_mode_val.json         # the rule, on val
    python experiments/face_expert.py mirror --json runs/mirror.json                  # mirrored views
    python experiments/face_expert.py lomo --json runs/lomo_face_mode_test.json       # held-out methods, test

``export`` copies a trained expert (``experiments/sbi_expert.py train``; its ``mtcnn_map.json``
from ``recrop``, or ``--box-map`` from an expert made from the same crops) into one safetensors
file with the fusion's metadata: the weight, the box map,
the sha256 of the network it pairs with, and the norms, read through the installed tool's own
face path (``Detector(faces=True)``) on the real **val** images of the expert's training sets,
largest face only, images with a face only.

``compare CANDIDATE.json CURRENT.json`` reads two ``evaluate`` JSONs of the same split and
network, a candidate expert against the current one, by rules 1 and 2 of
docs/decisions/2026-12-04-a-face-expert-that-also-sees-genuine-fakes.md.

``pool WEIGH.json...`` reads several ``weigh`` JSONs, one per held-out method, together: the
weight with the best mean benefit (docs/decisions/2026-12-04-g-weight-on-two-more-held-out-methods.md).

``mirror`` (docs/decisions/2026-12-04-mirrored-views-in-face-mode.md) records, in one face-mode
pass per detector, the network's raw logits (the whole image, then each face) on each input and
on its left-right mirror (view and native-resolution patches together), and the expert's on each
face square and its mirror, and rebuilds four candidates: 0 (as shipped), E (the expert's logit
averaged over the square and its mirror), N (the network's logits averaged over the input and
its mirror), EN (both). For each, the fusion's norms are read again from its own logits on the
expert's reference reals, and an image's score is the maximum over its whole-image logit and its
faces' fused logits at w = 0.7. Benefit: for each FaceForensics++ method, the network and the
expert trained without it (``--lomo``, ``--heldout``), the method's train and val fakes against
ffpp_faces' real val faces; cost: the shipped pair on the seen face sets' val splits. Before the
passes, candidate 0 rebuilt is checked against the tool's own ``p_fake``.

``recipe`` (docs/decisions/2026-12-04-mouth-and-lower-face-self-blends.md) scores
``sbi_expert.py train`` run folders, each trained without ``--method``, paired with a network
trained without it, as ``mirror`` scores candidate 0 (and E, for reading).

``lomo`` reports face mode's leave-one-method-out figures on a split (default test; description,
read by no rule): each method's fakes against ffpp_faces' reals of that split, the held-out pairs
of ``mirror``, network alone (w = 0) and fused at the shipped weight; the ``fake`` shares at the
shipped face-mode threshold are a reading only (the held-out pairs carry no verdicts of their own).

``evaluate`` scores the val split of every real source and face set in face mode with the
expert; each record carries the network's own face scores too (``p_network``), so today's face
score (the maximum over the whole image and the network's face scores) and the fused one come
from the same run, each labelled by its own thresholds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.evaluation.metrics import auc as roc_auc
from fakedet.inference.result import label_for
from fakedet.model import checkpoint
from fakedet.model import expert as fx

FACE_SETS = ("ffpp_faces", "dfdc_faceswap", "lfw_faceswap")  # the rule's cost is read on these
#: paired sets whose AUC is reported as description only (wholly generated faces)
DESCRIBED_SETS = ("stylegan2_faces",)
REAL_SOURCES = ("cifake_sd14", "dfdc_faceswap", "ffpp_faces", "imagenet_real_photos", "lfw_faceswap",
                "stylegan2_faces", "unsplash_portraits", "utkface_real")


def _logit(p: float) -> float:
    p = min(max(p, 1e-300), 1 - 1e-16)
    return math.log(p) - math.log1p(-p)


def method_of(im) -> str:
    """The FaceForensics++ method of an ffpp_faces image ("real" for its real videos)."""
    return im.group.split("-")[2] if im.group.count("-") >= 3 else im.group


def read_box_map(run: Path, source: str | None = None) -> dict:
    """The MTCNN-box-to-square map an export stores: from ``source`` (a JSON file such as
    ``recrop``'s ``mtcnn_map.json``, or an exported expert's ``.safetensors``, whose metadata
    holds the map it was made with), else from the run folder's ``mtcnn_map.json``. The map is
    a property of the face finders, read on real train faces, not of the expert's weights: runs
    that share their crops share it."""
    path = Path(source) if source else run / "mtcnn_map.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no box map; run `sbi_expert.py recrop --work {run}` or pass "
                         "--box-map (a mtcnn_map.json or an exported expert made from the same crops)")
    if path.suffix == ".safetensors":
        return dict(fx.read_meta(path).box_map)
    d = json.loads(path.read_text())
    try:
        return {k: float(d[k]) for k in ("ratio", "dx", "dy")}
    except (KeyError, TypeError, ValueError):
        raise SystemExit(f"{path}: not a box map (needs ratio, dx, dy)") from None


def training_record(state: dict) -> dict:
    """The expert file's ``training`` record from its run's ``state.json``: a run continued from
    another expert's weights (``sbi_expert.py train --init``) counts that expert's steps too."""
    training = {"recipe": state.get("recipe", "self"), "real_sets": list(state["train_sets"]),
                "genuine_fakes": list(state.get("genuine") or []), "left_out": state.get("leave_out"),
                "steps": int(state["step"]) + int(state.get("init_steps") or 0)}
    if state.get("init"):
        if state.get("init_steps"):  # the total counts both runs; the words say how it splits
            training["continued_from"] = f"{state['init']} ({state['init_steps']} steps)"
            training["continued_steps"] = int(state["step"])
        else:  # how long the first run trained is not known: steps count this run's only
            training["continued_from"] = f"{state['init']} (its steps not recorded)"
    return training


def export(args) -> int:
    from safetensors.torch import load_file

    run = Path(args.run)
    state = json.loads((run / "state.json").read_text())
    box_map = read_box_map(run, args.box_map)
    tensors = load_file(str(run / "expert.safetensors"))
    network = Path(args.weights) if args.weights else checkpoint.default_weights_path()
    out = Path(args.out)
    # first with identity norms, in a file of its own (not at the shipped path, where "auto"
    # would find it): then p_network and p_expert are sigmoids of the raw logits
    training = training_record(state)
    meta = fx.ExpertMeta(size=int(state["size"]), weight=args.weight, norm_expert=(0.0, 1.0),
                         norm_network=(0.0, 1.0), box_map={k: box_map[k] for k in ("ratio", "dx", "dy")},
                         network_sha256=checkpoint.sha256(network), training=training)
    first = out.with_name(out.stem + ".identity-norms.safetensors")
    fx.save(first, tensors, meta)
    try:
        det = Detector.load(network, device="cpu", faces=True, expert=first)
        recs = det.predict(paths_of_reference(state))
    finally:
        first.unlink()
    le, ln = [], []
    for r in recs:
        if r.ok and r.faces:
            pn, pe = r.faces[0]["p_network"], r.faces[0]["p_expert"]
            if not (0.0 < pn < 1.0 and 0.0 < pe < 1.0):  # a saturated probability hides its logit
                sys.exit(f"{r.path}: a face score saturated (p_network {pn}, p_expert {pe})")
            ln.append(det.temperature * _logit(pn))
            le.append(_logit(pe))
    if len(le) < 100:
        sys.exit(f"only {len(le)} reference faces found: too few for the norms")
    le, ln = np.array(le), np.array(ln)
    paths = recs
    meta = fx.ExpertMeta(size=meta.size, weight=meta.weight, norm_expert=(float(le.mean()), float(le.std())),
                         norm_network=(float(ln.mean()), float(ln.std())), box_map=meta.box_map,
                         network_sha256=meta.network_sha256, training=meta.training)
    fx.save(out, tensors, meta)
    print(f"{out}: norms from {len(le)} of {len(paths)} real val images with a face "
          f"({', '.join(state['train_sets'])}); {json.dumps(json.loads(meta.to_metadata()['fakedet_face_expert']))}")
    return 0


def paths_of_reference(state: dict) -> list[str]:
    """The reference reals: the real val images of the expert's training sets."""
    return [im.path for name in state["train_sets"]
            for im in read_manifest(manifest(name), split="val") if im.label == 0]


def _auc(neg, pos) -> float:
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    return float(roc_auc(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))


def _shares(labels, sel) -> dict:
    picked = [lbl for lbl, s in zip(labels, sel) if s]
    return {v: float(np.mean([lbl == v for lbl in picked])) if picked else None for v in ("fake", "uncertain", "real")}


def _label(p: float, cut: tuple, p_any: "float | None" = None) -> str:
    """As a scan labels: ``p_any``, the highest of the image's scores (whole image included)."""
    return label_for(p, cut[0], cut[1], p_any)


def evaluate(args) -> int:
    expert_path = Path(args.expert) if args.expert else fx.default_expert_path()
    det = Detector.load(args.weights, device="cpu", faces=True, expert=expert_path)
    meta = det.expert[1]
    if meta.face_verdicts is None:
        sys.exit(f"{expert_path} has no face verdicts yet: run experiments/calibrate_faces.py --expert first")
    whole = det.cutoffs
    today_face = det.meta.cutoffs(faces=True)
    fused_face = det.face_cutoffs
    paired = FACE_SETS + DESCRIBED_SETS
    names = sorted(set(paired) | set(REAL_SOURCES))
    if args.sets:
        names = [n for n in args.sets.split(",") if n]
    rows = {}
    for name in names:
        split = None if args.split == "all" else args.split
        ims = [im for im in read_manifest(manifest(name), split=split)
               if name in paired or im.label == 0]
        recs = det.predict([im.path for im in ims])
        bad = [r.error for r in recs if not r.ok]
        if bad:
            sys.exit(f"{name}: {len(bad)} images could not be scored: {bad[:3]}")
        y = np.array([im.label for im in ims])
        face = np.array([bool(r.faces) for r in recs])
        fused = np.array([r.p_fake for r in recs])
        today = np.array([max([r.p_whole] + [f["p_network"] for f in r.faces]) if r.faces else r.p_fake
                          for r in recs])
        expert = np.array([r.faces[0]["p_expert"] if r.faces else np.nan for r in recs])
        network_face = np.array([r.faces[0]["p_network"] if r.faces else np.nan for r in recs])
        lab_today = [_label(p, today_face if f else whole) for p, f in zip(today, face)]
        every = [max([r.p_whole] + [f["p_fake"] for f in r.faces]) if r.faces else r.p_fake for r in recs]
        lab_fused = [_label(p, fused_face if f else whole, a) for p, f, a in zip(fused, face, every)]
        modes = (("today", lab_today), ("fused", lab_fused))
        real = y == 0
        row = {"n_real": int(real.sum()), "n_fake": int((~real).sum()), "with_face": int(face.sum()),
               # every verdict's share of the real (and fake) images, in each mode (description)
               "verdicts_real": {m: _shares(lab, real) for m, lab in modes}}
        row["fake_share_real"] = {m: v["fake"] for m, v in row["verdicts_real"].items()}  # the rule's
        if name in paired:
            whole_p = np.array([r.p_whole for r in recs])  # the default scan's score of the image
            row["auc"] = {"today": _auc(today[real], today[~real]), "fused": _auc(fused[real], fused[~real]),
                          "whole_image": _auc(whole_p[real], whole_p[~real])}
            ok = face
            row["auc_largest_face"] = {  # description only: the images with a face
                "network": _auc(network_face[ok & real], network_face[ok & ~real]),
                "expert": _auc(expert[ok & real], expert[ok & ~real])}
            row["verdicts_fake"] = {m: _shares(lab, ~real) for m, lab in modes}
            row["fake_caught"] = {m: v["fake"] for m, v in row["verdicts_fake"].items()}
        rows[name] = row
        print(name, json.dumps(row), flush=True)

    cost = {n: rows[n]["auc"]["fused"] - rows[n]["auc"]["today"] for n in FACE_SETS if n in rows}
    share_ok = {}
    for n in (n for n in REAL_SOURCES if n in rows):
        s = rows[n]["fake_share_real"]
        share_ok[n] = s["fused"] <= max(s["today"], 0.02) + 1.0 / max(1, rows[n]["n_real"]) + 1e-12
    res = {"split": args.split, "expert": str(expert_path), "weights": str(det.weights_path),
           "cutoffs": {"whole_image": list(whole), "face_today": list(today_face), "face_fused": list(fused_face)},
           "sets": rows, "cost": cost, "cost_ok": all(c >= -0.01 for c in cost.values()), "share_ok": share_ok}
    res["rule_1_2"] = bool(res["cost_ok"] and all(share_ok.values()))
    print(f"cost {json.dumps(cost)}; shares within the bound: {json.dumps(share_ok)}; "
          f"rules 1 and 2 hold: {res['rule_1_2']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def compare(args) -> int:
    """Two ``evaluate`` JSONs of the same split, a candidate expert against the current one:
    each face set's fused face-mode AUC, the difference and its mean, and each real source's
    `fake` share with its bound, max(current, 2 %) + one image
    (docs/decisions/2026-12-04-a-face-expert-that-also-sees-genuine-fakes.md, rules 1 and 2)."""
    new, old = (json.loads(Path(p).read_text()) for p in (args.candidate, args.current))
    for key in ("split", "weights"):
        if new[key] != old[key]:
            sys.exit(f"different {key}: {new[key]} and {old[key]}")
    diffs = {}
    print("| set | AUC, current expert | AUC, candidate | difference |\n|---|---|---|---|")
    for name in FACE_SETS:
        a, b = old["sets"][name]["auc"]["fused"], new["sets"][name]["auc"]["fused"]
        diffs[name] = b - a
        print(f"| {name} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    mean = float(np.mean(list(diffs.values())))
    print(f"mean difference {mean:+.4f}; smallest {min(diffs.values()):+.4f}")
    if set(new["sets"]) != set(old["sets"]):
        sys.exit(f"different sets: {sorted(new['sets'])} and {sorted(old['sets'])}")
    shares = {}
    for name, r in new["sets"].items():
        if not r["n_real"]:
            continue
        cur, cand = old["sets"][name]["fake_share_real"]["fused"], r["fake_share_real"]["fused"]
        bound = max(cur, 0.02) + 1 / r["n_real"]
        shares[name] = {"current": cur, "candidate": cand, "bound": bound, "ok": cand <= bound + 1e-12}
        print(f"{name}: real labelled fake {cur:.4f} -> {cand:.4f} (bound {bound:.4f})")
    rule_1 = mean >= 0.01 and min(diffs.values()) >= -0.01
    rule_2 = all(v["ok"] for v in shares.values())
    print(f"rule 1 (mean gain >= 0.01, none falls by more than 0.01): {'holds' if rule_1 else 'fails'}; "
          f"rule 2 (real fake shares within their bounds): {'holds' if rule_2 else 'fails'}")
    res = {"auc_difference": diffs, "mean_difference": mean, "shares": shares, "rule_1": rule_1, "rule_2": rule_2}
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


WEIGHT_GRID = tuple(round(0.1 * k, 1) for k in range(11))


def _logit_arr(p):
    p = np.clip(np.asarray(p, np.float64), 1e-15, 1 - 1e-15)
    return np.log(p) - np.log1p(-p)


def image_scores_by_weight(det, paths, grid=WEIGHT_GRID, whole: "bool | str" = True, recs=None,
                           gate: float | None = None) -> dict:
    """Each image's face-mode score (in logit units over T) for every expert weight in ``grid``,
    from one face-mode pass of ``det`` (its expert's norms; the weight in the file is ignored):
    each face's fused logit ``(1 - w)·l_n + w·(mu_n + sd_n·z_e)`` rebuilt from the record's
    ``p_network`` and ``p_expert``, and the image's score the maximum over its faces and the
    whole image, as ``Detector`` does. ``w = 0`` is the network's own face mode. With ``whole``
    false, an image with a face found is scored by its faces alone (S1 of
    docs/decisions/2026-12-05-the-whole-image-in-face-mode.md); with ``whole="mean"``, by the
    mean of the whole image's logit and its most suspicious face's (S2 of
    docs/decisions/2026-12-05-the-whole-image-averaged-in-face-mode.md); with ``whole="gate"``,
    by its faces and, when ``p_whole`` is at least ``gate``, the whole image too (S3 of
    docs/decisions/2026-12-05-the-whole-image-when-it-is-sure.md). ``recs``: that pass's
    records, when the caller already has them."""
    meta, t = det.expert[1], det.temperature
    (mu_e, sd_e) = meta.norm_expert
    if recs is None:
        recs = det.predict(paths)
    bad = [r.error for r in recs if not r.ok]
    if bad:
        sys.exit(f"{len(bad)} images could not be scored: {bad[:3]}")
    out = {}
    for w in grid:
        at_w = dataclasses.replace(meta, weight=w)
        s = []
        for r in recs:
            l_whole = float(_logit_arr(r.p_whole))
            counts = whole is True or not r.faces or (whole == "gate" and r.p_whole >= gate)
            best = l_whole if counts else -math.inf
            for f in r.faces:  # back to the raw logits, then the tool's own fusion
                ln, le = t * float(_logit_arr(f["p_network"])), mu_e + sd_e * float(_logit_arr(f["p_expert"]))
                best = max(best, float(fx.fuse(ln, le, at_w)) / t)
            if whole == "mean" and r.faces:
                best = (l_whole + best) / 2
            s.append(best)
        out[w] = np.array(s)
    return out


def weigh(args) -> int:
    """The rule of docs/decisions/2026-12-04-a-weight-for-g-from-faceswap-held-out.md: the expert
    weight chosen on a FaceForensics++ method that neither the leave-one-method-out network
    (``--lomo-weights``) nor its expert (``--heldout-expert``, exported paired with it) saw, among
    the weights that cost the network that saw every set (the shipped one) at most 0.01 val AUC
    on each face set with ``--cost-expert``; compared with ``--reference-expert`` (paired with the
    same leave-one-method-out network) at ``--reference-weight``. No test image is read."""
    ims = read_manifest(manifest("ffpp_faces"))
    held = [im for im in ims if im.label == 1 and method_of(im) == args.method and im.split in ("train", "val")]
    reals = [im for im in ims if im.label == 0 and im.split == "val"]
    if not held:
        sys.exit(f"no {args.method} fakes in ffpp_faces")
    paths = [im.path for im in reals + held]
    y = np.r_[np.zeros(len(reals)), np.ones(len(held))]

    def auc_of(s):
        return _auc(s[y == 0], s[y == 1])

    lomo = Detector.load(args.lomo_weights, device="cpu", faces=True, expert=args.heldout_expert)
    benefit = {w: auc_of(s) for w, s in image_scores_by_weight(lomo, paths).items()}
    reference = None  # without --reference-expert: not measured (and rule 1 not applied)
    if args.reference_expert:
        ref_det = Detector.load(args.lomo_weights, device="cpu", faces=True, expert=args.reference_expert)
        reference = auc_of(image_scores_by_weight(ref_det, paths, (args.reference_weight,))[args.reference_weight])
    seen = Detector.load(args.weights, device="cpu", faces=True, expert=args.cost_expert)
    cost, seen_auc = {w: {} for w in WEIGHT_GRID}, {}
    for name in FACE_SETS:
        v = read_manifest(manifest(name), split="val")
        yv = np.array([im.label for im in v])
        by_w = image_scores_by_weight(seen, [im.path for im in v])
        seen_auc[name] = {w: _auc(s[yv == 0], s[yv == 1]) for w, s in by_w.items()}
        for w in WEIGHT_GRID:
            cost[w][name] = seen_auc[name][w] - seen_auc[name][0.0]
    allowed = [w for w in WEIGHT_GRID if min(cost[w].values()) >= -0.01]
    best = max(allowed, key=lambda w: (benefit[w], -w))
    rule_1 = None if reference is None else bool(best > 0 and benefit[best] >= reference + 0.02)
    print(f"{args.method}: {len(held)} train and val fakes against {len(reals)} real val faces of ffpp_faces")
    print("| w | benefit (unseen method) | " + " | ".join(f"cost {n}" for n in FACE_SETS) + " | allowed |")
    print("|---|---|" + "---|" * len(FACE_SETS) + "---|")
    for w in WEIGHT_GRID:
        print(f"| {w:.1f} | {benefit[w]:.4f} | " + " | ".join(f"{cost[w][n]:+.4f}" for n in FACE_SETS)
              + f" | {'yes' if w in allowed else 'no'} |")
    if reference is None:
        print(f"reference: not measured (no --reference-expert); chosen weight {best}; "
              f"benefit {benefit[best]:.4f}; rule 1 not applied")
    else:
        print(f"reference (--reference-expert at w = {args.reference_weight}): {reference:.4f}")
        print(f"chosen weight {best}; benefit {benefit[best]:.4f}; rule 1 (w > 0 and at least the reference "
              f"+ 0.02): {'holds' if rule_1 else 'fails'}")
    res = {"method": args.method, "n_fake": len(held), "n_real": len(reals), "lomo_weights": args.lomo_weights,
           "heldout_expert": args.heldout_expert, "reference_expert": args.reference_expert,
           "reference_weight": args.reference_weight, "cost_expert": args.cost_expert,
           "weights": args.weights or "shipped", "benefit": benefit, "reference": reference, "cost": cost,
           "seen_auc": seen_auc, "allowed": allowed, "chosen_weight": best, "rule_1": rule_1}
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def _pooled(runs: list, key: str, current: float):
    """Weigh JSONs read together: their names (``key``: each one's own), the common weight grid,
    ``at(run, w)`` and the mean benefit per weight; exits on a repeated name, different grids or
    a ``current`` weight off the grid."""
    names = [r[key] for r in runs]
    if len(set(names)) != len(names):
        sys.exit(f"one {key} twice: {names}")
    grid = sorted({float(w) for w in runs[0]["benefit"]})
    if any(sorted(float(w) for w in r["benefit"]) != grid for r in runs):
        sys.exit("the JSONs were weighed on different weight grids")
    if current not in grid:
        sys.exit(f"--current {current} is not on the grid {grid}")

    def at(r, w):
        return next(v for k, v in r["benefit"].items() if float(k) == w)
    return names, grid, at, {w: float(np.mean([at(r, w) for r in runs])) for w in grid}


def pool(args) -> int:
    """Several ``weigh`` JSONs, one per held-out method, read together by the rule of
    docs/decisions/2026-12-04-g-weight-on-two-more-held-out-methods.md: the mean benefit over the
    methods for every weight; w** the weight with the highest mean (ties: the smaller), among
    those every JSON allows; it replaces ``--current`` only if it beats it by ``--margin``
    (the record's val checks come after, with ``compare``)."""
    runs = [json.loads(Path(p).read_text()) for p in args.weigh]
    for key in ("weights", "cost_expert"):
        if len({str(r[key]) for r in runs}) != 1:
            sys.exit(f"different {key}: {[r[key] for r in runs]}")
    methods, grid, at, mean = _pooled(runs, "method", args.current)
    allowed = [w for w in grid if all(any(float(a) == w for a in r["allowed"]) for r in runs)]
    if not allowed:
        sys.exit("no weight is allowed by every JSON's cost rule")
    best = max(allowed, key=lambda w: (mean[w], -w))
    change = bool(best != args.current and mean[best] >= mean[args.current] + args.margin)
    print("| w | " + " | ".join(methods) + " | mean |\n|---|" + "---|" * (len(methods) + 1))
    for w in grid:
        print(f"| {w:.1f} | " + " | ".join(f"{at(r, w):.4f}" for r in runs) + f" | {mean[w]:.4f} |")
    refs = [r.get("reference") for r in runs]
    print("| reference | " + " | ".join("–" if x is None else f"{x:.4f}" for x in refs) + " | "
          + ("–" if None in refs else f"{float(np.mean(refs)):.4f}") + " |")
    print(f"w** = {best} (mean benefit {mean[best]:.4f}); current {args.current} ({mean[args.current]:.4f}); "
          f"{'change, if the val checks hold' if change else 'keep the current weight'} "
          f"(margin {args.margin})")
    res = {"methods": methods, "mean_benefit": mean, "allowed": allowed, "chosen_weight": best,
           "current": args.current, "margin": args.margin, "change": change,
           "reference": {m: r["reference"] for m, r in zip(methods, runs)},
           "benefit": {m: r["benefit"] for m, r in zip(methods, runs)}}
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def weigh_set(args) -> int:
    """The benefit side of docs/decisions/2026-12-05-the-expert-weight-on-unseen-face-sets.md:
    face-mode AUC at every weight on one face set's split (val), scored by a network and an expert
    both trained without that set (``--weights``, ``--expert``, exported paired with it)."""
    ims = read_manifest(manifest(args.set), split=None if args.split == "all" else args.split)
    y = np.array([im.label for im in ims])
    if y.min() == y.max():
        sys.exit(f"{args.set} {args.split}: needs both real and fake images")
    det = Detector.load(args.weights, device="cpu", faces=True, expert=args.expert)
    if args.gate is None:
        by_w = image_scores_by_weight(det, [im.path for im in ims])
    else:  # the image score of the shipped face mode since S3: the whole image gated
        by_w = image_scores_by_weight(det, [im.path for im in ims], whole="gate", gate=args.gate)
    benefit = {w: _auc(s[y == 0], s[y == 1]) for w, s in by_w.items()}
    print(f"{args.set} ({args.split}): {int((y == 0).sum())} real, {int((y == 1).sum())} fake"
          + ("" if args.gate is None else f"; whole image gated at {args.gate:.6f}"))
    print("| w | face-mode AUC |\n|---|---|")
    for w, a in benefit.items():
        print(f"| {w:.1f} | {a:.4f} |")
    res = {"set": args.set, "split": args.split, "weights": args.weights, "expert": args.expert,
           "gate": args.gate, "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()), "benefit": benefit}
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def pool_sets(args) -> int:
    """Several ``weigh-set`` JSONs (one per held-out face set, each its own pair of models): the
    mean face-mode AUC at every weight, w** (highest mean; ties: the smaller) and whether it beats
    ``--current`` by ``--margin`` (rule 1 of the 2026-12-05 record; rules 2 and 3 are read apart)."""
    runs = [json.loads(Path(p).read_text()) for p in args.weigh]
    if len({r["split"] for r in runs}) != 1:
        sys.exit(f"different splits: {[r['split'] for r in runs]}")
    sets, grid, at, mean = _pooled(runs, "set", args.current)
    best = max(grid, key=lambda w: (mean[w], -w))
    change = bool(best != args.current and mean[best] >= mean[args.current] + args.margin)
    print("| w | " + " | ".join(sets) + " | mean |\n|---|" + "---|" * (len(sets) + 1))
    for w in grid:
        print(f"| {w:.1f} | " + " | ".join(f"{at(r, w):.4f}" for r in runs) + f" | {mean[w]:.4f} |")
    print(f"w** = {best} (mean {mean[best]:.4f}); current {args.current} ({mean[args.current]:.4f}); rule 1 "
          f"{'holds' if change else 'fails'} (margin {args.margin})")
    res = {"sets": sets, "split": runs[0]["split"], "mean_benefit": mean, "chosen_weight": best,
           "current": args.current, "margin": args.margin, "rule_1": change,
           "benefit": {s: r["benefit"] for s, r in zip(sets, runs)}}
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def whole_image(args) -> int:
    """S0, S1 and S2 of the 2026-12-05 whole-image records (docs/decisions/) on each of
    ``--sets`` (``a+b``: a's fakes against b's reals), from one face-mode pass per set at the
    weight in the expert's file: the face-mode AUC with the whole image in the maximum (S0),
    without it when a face is found (S1), and averaged with the most suspicious face (S2)."""
    det = Detector.load(args.weights, device="cpu", faces=True, expert=args.expert or fx.default_expert_path())
    w = det.expert[1].weight if args.weight is None else args.weight
    split = None if args.split == "all" else args.split
    rows = {}
    for entry in [e for e in args.sets.split(",") if e]:
        fakes_of, _, reals_of = entry.partition("+")
        ims = [im for im in read_manifest(manifest(fakes_of), split=split) if im.label == 1 or not reals_of]
        if reals_of:
            ims += [im for im in read_manifest(manifest(reals_of), split=split) if im.label == 0]
        y = np.array([im.label for im in ims])
        if len(ims) == 0 or y.min() == y.max():
            sys.exit(f"{entry} {args.split}: needs both real and fake images")
        paths = [im.path for im in ims]
        recs = det.predict(paths)
        s0 = image_scores_by_weight(det, paths, (w,), recs=recs)[w]
        s1 = image_scores_by_weight(det, paths, (w,), whole=False, recs=recs)[w]
        s2 = image_scores_by_weight(det, paths, (w,), whole="mean", recs=recs)[w]
        rows[entry] = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
                       "s0": _auc(s0[y == 0], s0[y == 1]), "s1": _auc(s1[y == 0], s1[y == 1]),
                       "s2": _auc(s2[y == 0], s2[y == 1])}
        if args.gate is not None:
            s3 = image_scores_by_weight(det, paths, (w,), whole="gate", recs=recs, gate=args.gate)[w]
            rows[entry]["s3"] = _auc(s3[y == 0], s3[y == 1])
        r = rows[entry]
        print(f"| {entry} | {r['n_real']} / {r['n_fake']} | {r['s0']:.4f} | {r['s1']:.4f} | "
              f"{r['s1'] - r['s0']:+.4f} | {r['s2']:.4f} | {r['s2'] - r['s0']:+.4f} |"
              + (f" {r['s3']:.4f} | {r['s3'] - r['s0']:+.4f} |" if "s3" in r else ""), flush=True)
    res = {"split": args.split, "weights": args.weights or "shipped", "expert": args.expert or "shipped",
           "weight": w, "gate": args.gate, "sets": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def fake_share(args) -> int:
    """How often face mode labels a held-out set's genuine images `fake`, with the pair of models
    trained without it and its face-mode `fake` threshold chosen as the shipped one is: the
    expert file's own (2 % rule on val composites of the sets it saw) floored at the network's
    whole-image `fake` threshold (``--floor``: the 0.1 % per-source rule of that network, chosen
    without the set). Images with no face found are labelled by ``--floor`` too."""
    det = Detector.load(args.weights, device="cpu", faces=True, expert=args.expert)
    fv = det.expert[1].face_verdicts
    if fv is None:
        sys.exit(f"{args.expert} has no face verdicts: run experiments/calibrate_faces.py --expert first")
    face_at = max(float(fv["fake"]), args.floor)
    splits = [x for x in args.splits.split(",") if x]
    ims = [im for im in read_manifest(manifest(args.set)) if im.label == 0 and im.split in splits]
    recs = det.predict([im.path for im in ims])
    bad = [r.error for r in recs if not r.ok]
    if bad:
        sys.exit(f"{len(bad)} images could not be scored: {bad[:3]}")
    fake = [r.p_fake >= (face_at if r.faces else args.floor) for r in recs]
    res = {"set": args.set, "splits": splits, "weights": args.weights, "expert": args.expert,
           "n_real": len(recs), "with_face": sum(bool(r.faces) for r in recs),
           "fake_at_own_rule": float(fv["fake"]), "floor": args.floor, "fake_at": face_at,
           "share_fake": float(np.mean(fake)) if fake else None,
           "share_fake_unfloored": float(np.mean([r.p_fake >= (float(fv["fake"]) if r.faces else args.floor)
                                                  for r in recs])) if recs else None}
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def set_gate(args) -> int:
    """The expert's file with the whole image's gate of
    docs/decisions/2026-12-05-the-whole-image-when-it-is-sure.md: the paired network's whole-image
    `fake` threshold (its verdicts in the network's file). Tensors and norms unchanged; the face
    verdicts are dropped, for ``calibrate_faces.py --expert`` to re-choose them."""
    from safetensors.torch import load_file

    network = Path(args.weights) if args.weights else checkpoint.default_weights_path()
    meta = fx.read_meta(Path(args.expert))
    if meta.network_sha256 != checkpoint.sha256(network):
        sys.exit(f"{args.expert} was not made for {network}")
    fake_at, real_below = checkpoint.read_meta(network).cutoffs(faces=False)
    if args.at is not None:  # a network whose fake threshold lies outside its file (held-out runs)
        fake_at = args.at
    elif not real_below < fake_at:
        sys.exit(f"{network} has no three-way whole-image verdicts: no fake threshold to gate on (--at)")
    fx.save(Path(args.out), load_file(args.expert),
            dataclasses.replace(meta, whole_gate=float(fake_at), face_verdicts=None))
    print(f"wrote {args.out}: the whole image counts in face mode at p_whole >= {fake_at:.6f}; "
          "face verdicts to be chosen (calibrate_faces.py --expert)")
    return 0


# ------------------------------------------------------------------ probes of 2026-12-04 (session 36)
METHODS = ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")
CANDIDATES = ("0", "E", "N", "EN")
PROBE_WEIGHT = 0.7


def mirrored_logits(det: Detector, paths: list[str]) -> dict[str, dict]:
    """Per path: ``ln``/``ln_m`` the network's raw logits (whole image first, then each face) on
    the input and its mirror, ``le``/``le_m`` the expert's on each face square and its mirror.
    The tool's own decoding, face finding, model calls and CPU runner are used; only the scoring
    step is replaced."""
    import torch

    from fakedet.inference.detector import _cat
    from fakedet.inference.result import Result

    model = det.expert[0]
    out: dict[str, dict] = {}

    def score(batch):
        ok = [i for i, d in enumerate(batch) if d.error is None]
        if ok:
            views = _cat([batch[i].views for i in ok], det.device)
            patches = _cat([batch[i].patches for i in ok], det.device)
            ln = det.forward(views, patches).double().numpy()
            ln_m = det.forward(torch.flip(views, dims=[-1]).contiguous(),
                               torch.flip(patches, dims=[-1]).contiguous()).double().numpy()
            crops = np.concatenate([batch[i].expert_crops for i in ok])
            le = fx.expert_logits(model, crops, det._cpu)
            le_m = fx.expert_logits(model, np.ascontiguousarray(crops[:, :, ::-1]), det._cpu)
            s = e = 0
            for i in ok:
                n = len(batch[i].views)
                out[batch[i].path] = {"ln": ln[s:s + n], "ln_m": ln_m[s:s + n],
                                      "le": le[e:e + n - 1], "le_m": le_m[e:e + n - 1]}
                s, e = s + n, e + n - 1
        return [Result(d.path, None, None, d.error or "recorded by face_expert.py mirror") for d in batch]

    det.score_decoded = score
    try:
        recs = det.predict(paths)
    finally:
        del det.score_decoded
    missing = [r.path for r in recs if r.path not in out]
    if missing:
        sys.exit(f"{len(missing)} images could not be scored: {[r.error for r in recs if r.path in missing][:3]}")
    return out


def candidate_logits(rec: dict, c: str) -> tuple[np.ndarray, np.ndarray]:
    ln = (rec["ln"] + rec["ln_m"]) / 2 if "N" in c else rec["ln"]
    le = (rec["le"] + rec["le_m"]) / 2 if "E" in c else rec["le"]
    return ln, le


def candidate_norms(recs: list[dict], c: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """(network, expert) mean and sd over the reference reals' largest faces, for candidate c."""
    ln, le = [], []
    for r in recs:
        if len(r["le"]):
            a, b = candidate_logits(r, c)
            ln.append(a[1])
            le.append(b[0])
    if len(le) < 100:
        sys.exit(f"only {len(le)} reference faces")
    ln, le = np.array(ln), np.array(le)
    return (float(ln.mean()), float(ln.std())), (float(le.mean()), float(le.std()))


def candidate_score(rec: dict, c: str, nrm) -> float:
    (mu_n, sd_n), (mu_e, sd_e) = nrm
    ln, le = candidate_logits(rec, c)
    fused = (1 - PROBE_WEIGHT) * ln[1:] + PROBE_WEIGHT * (mu_n + sd_n * (le - mu_e) / sd_e)
    return float(max([ln[0], *fused]))


def candidate_scores(det: Detector, paths: list[str]) -> dict[str, np.ndarray]:
    """Each candidate's image scores for ``paths`` (network units, before the temperature), the
    norms read on the expert's reference reals in the same pass."""
    meta = det.expert[1]
    ref = [im.path for name in meta.training["real_sets"]
           for im in read_manifest(manifest(name), split="val") if im.label == 0]
    logits = mirrored_logits(det, sorted(set(paths) | set(ref)))
    out = {}
    for c in CANDIDATES:
        nrm = candidate_norms([logits[p] for p in ref], c)
        out[c] = np.array([candidate_score(logits[p], c, nrm) for p in paths])
    return out


def mirror_check(det: Detector, paths: list[str]) -> None:
    """Candidate 0, rebuilt with the file's own norms, against the tool's p_fake."""
    from fakedet.inference.result import calibrated

    recs = det.predict(paths)
    logits = mirrored_logits(det, paths)
    meta = det.expert[1]
    nrm = (meta.norm_network, meta.norm_expert)
    for r in recs:
        (mu_n, sd_n), (mu_e, sd_e) = nrm
        ln, le = logits[r.path]["ln"], logits[r.path]["le"]
        fused = (1 - meta.weight) * ln[1:] + meta.weight * (mu_n + sd_n * (le - mu_e) / sd_e)
        p = calibrated(float(max([ln[0], *fused])), det.temperature)
        if abs(p - r.p_fake) > 1e-4:
            sys.exit(f"rebuilt score {p:.6f} != the tool's {r.p_fake:.6f} for {r.path}")
    print(f"check: candidate 0 rebuilt = the tool's p_fake on {len(recs)} images")


def mirror(args) -> int:
    """The probe of docs/decisions/2026-12-04-mirrored-views-in-face-mode.md (see the module's docstring)."""
    res: dict = {"weight": PROBE_WEIGHT, "benefit": {}, "cost": {}}

    seen = Detector.load(None, device="cpu", faces=True, expert="auto")
    if seen.expert is None or seen.expert[1].training is None:
        sys.exit("the shipped face expert (with its training record) is needed")
    val = {n: read_manifest(manifest(n), split="val") for n in FACE_SETS}
    mirror_check(seen, [im.path for im in val["ffpp_faces"][:24]])
    paths = [im.path for n in FACE_SETS for im in val[n]]
    s = candidate_scores(seen, paths)
    start = 0
    for n in FACE_SETS:
        y = np.array([im.label for im in val[n]])
        sl = slice(start, start + len(y))
        res["cost"][n] = {c: _auc(s[c][sl][y == 0], s[c][sl][y == 1]) for c in CANDIDATES}
        start += len(y)
        print(n, json.dumps(res["cost"][n]), flush=True)

    for m in args.methods.split(","):
        paths, y = heldout_images(m)
        low = m.lower()
        det = Detector.load(Path(args.lomo) / f"lomo_h6_{low}" / "final.safetensors", device="cpu", faces=True,
                            expert=Path(args.heldout) / f"fe_g_no{low}_lomo_{low}.safetensors")
        s = candidate_scores(det, paths)
        res["benefit"][m] = {c: _auc(s[c][y == 0], s[c][y == 1]) for c in CANDIDATES}
        print(m, int(y.sum()), "fakes", json.dumps(res["benefit"][m]), flush=True)

    methods = list(res["benefit"])
    print("\n| candidate | " + " | ".join(methods) + " | mean gain | worst method gain | "
          + " | ".join(f"{n} gain" for n in FACE_SETS) + " | passes |")
    print("|---|" + "---|" * (len(methods) + 3 + len(FACE_SETS)))
    res["rule"] = {}
    for c in CANDIDATES:
        gains = [res["benefit"][m][c] - res["benefit"][m]["0"] for m in methods]
        costs = [res["cost"][n][c] - res["cost"][n]["0"] for n in FACE_SETS]
        ok = c != "0" and np.mean(gains) >= 0.010 and min(gains) >= -0.005 and min(costs) >= -0.005
        res["rule"][c] = {"mean_gain": float(np.mean(gains)), "worst_gain": float(min(gains)),
                          "worst_cost": float(min(costs)), "passes": bool(ok)}
        print(f"| {c} | " + " | ".join(f"{res['benefit'][m][c]:.4f}" for m in methods)
              + f" | {np.mean(gains):+.4f} | {min(gains):+.4f} | " + " | ".join(f"{x:+.4f}" for x in costs)
              + f" | {'yes' if ok else ('–' if c == '0' else 'no')} |")
    passing = [c for c in CANDIDATES if res["rule"][c]["passes"]]
    chosen = None
    if passing:
        chosen = max(passing, key=lambda c: res["rule"][c]["mean_gain"])
        if "E" in passing and res["rule"]["E"]["mean_gain"] >= res["rule"][chosen]["mean_gain"] - 0.005:
            chosen = "E"
    res["chosen"] = chosen
    print(f"chosen: {chosen or 'none (nothing changes)'}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def heldout_images(method: str) -> tuple[list[str], np.ndarray]:
    """ffpp_faces' real val faces, then ``method``'s train and val fakes; their labels."""
    ims = read_manifest(manifest("ffpp_faces"))
    reals = [im.path for im in ims if im.label == 0 and im.split == "val"]
    held = [im.path for im in ims if im.label == 1 and method_of(im) == method and im.split in ("train", "val")]
    if not held:
        sys.exit(f"no {method} fakes in ffpp_faces")
    return reals + held, np.r_[np.zeros(len(reals)), np.ones(len(held))]


def run_expert_file(run: Path, network: Path, box_map_from: str | None, out: Path) -> Path:
    """The run's expert as a file paired with ``network`` (identity norms: ``candidate_scores``
    reads its own)."""
    from safetensors.torch import load_file

    state = json.loads((run / "state.json").read_text())
    box_map = read_box_map(run, box_map_from)
    training = {"recipe": state.get("recipe", "self"), "real_sets": list(state["train_sets"]),
                "genuine_fakes": list(state.get("genuine") or []), "left_out": state.get("leave_out"),
                "steps": int(state["step"])}
    meta = fx.ExpertMeta(size=int(state["size"]), weight=PROBE_WEIGHT, norm_expert=(0.0, 1.0), norm_network=(0.0, 1.0),
                         box_map={k: box_map[k] for k in ("ratio", "dx", "dy")},
                         network_sha256=checkpoint.sha256(network), training=training)
    fx.save(out, load_file(str(run / "expert.safetensors")), meta)
    return out


def recipe(args) -> int:
    """The probe of docs/decisions/2026-12-04-mouth-and-lower-face-self-blends.md (see the module's docstring)."""
    paths, y = heldout_images(args.method)
    network = Path(args.network)
    res = {"method": args.method, "network": str(network), "n_fake": int(y.sum()), "n_real": int((y == 0).sum()),
           "weight": PROBE_WEIGHT, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for run in map(Path, args.runs):
            state = json.loads((run / "state.json").read_text())
            if state.get("leave_out") != args.method:
                sys.exit(f"{run} was not trained without {args.method} (leave_out: {state.get('leave_out')})")
            f = run_expert_file(run, network, args.box_map, Path(tmp) / f"{run.name}.safetensors")
            det = Detector.load(network, device="cpu", faces=True, expert=f)
            s = candidate_scores(det, paths)
            res["runs"][str(run)] = {"recipe": state.get("recipe", "self"), "steps": state["step"],
                                     "auc": _auc(s["0"][y == 0], s["0"][y == 1]),
                                     "auc_mirrored_expert": _auc(s["E"][y == 0], s["E"][y == 1])}
            print(f"{run}: {json.dumps(res['runs'][str(run)])}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def lomo(args) -> int:
    """Face mode's leave-one-method-out figures (description; see the module's docstring)."""
    if args.pair:
        return lomo_pair(args)
    shipped = fx.read_meta(fx.default_expert_path())
    w = shipped.weight
    fake_at = float(shipped.face_verdicts["fake"])
    ims = read_manifest(manifest("ffpp_faces"), split=args.split)
    reals = [im.path for im in ims if im.label == 0]
    res = {"split": args.split, "weight": w, "fake_at": fake_at, "n_real": len(reals), "methods": {}}
    print(f"| method ({args.split}) | fakes | network alone, face mode | fused at w = {w} | "
          f"fakes `fake` | reals `fake` |\n|---|---|---|---|---|---|")
    for m in METHODS:
        held = [im.path for im in ims if im.label == 1 and method_of(im) == m]
        low = m.lower()
        det = Detector.load(Path(args.lomo) / f"lomo_h6_{low}" / "final.safetensors", device="cpu", faces=True,
                            expert=Path(args.heldout) / f"fe_g_no{low}_lomo_{low}.safetensors")
        s = image_scores_by_weight(det, reals + held, (0.0, w))
        y = np.r_[np.zeros(len(reals)), np.ones(len(held))]
        p = 1 / (1 + np.exp(-s[w]))  # image_scores_by_weight's scores are already over T
        r = {"n_fake": len(held), "auc_network": _auc(s[0.0][y == 0], s[0.0][y == 1]),
             "auc_fused": _auc(s[w][y == 0], s[w][y == 1]),
             "fakes_fake": float((p[y == 1] >= fake_at).mean()), "reals_fake": float((p[y == 0] >= fake_at).mean())}
        res["methods"][m] = r
        print(f"| {m} | {len(held)} | {r['auc_network']:.3f} | {r['auc_fused']:.3f} | "
              f"{r['fakes_fake']:.3f} | {r['reals_fake']:.3f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def gated_check(det, recs, gate: float) -> None:
    """Exits unless the gated face-mode score rebuilt by :func:`image_scores_by_weight` at the
    expert's own weight is the tool's ``p_fake`` for every record: the network-alone figures
    beside it are then rebuilt by the same rule the tool scores by."""
    w = det.expert[1].weight
    s = image_scores_by_weight(det, None, (w,), whole="gate", recs=recs, gate=gate)[w]
    got = np.array([r.p_fake for r in recs])
    worst = float(np.max(np.abs(1 / (1 + np.exp(-s)) - got))) if len(got) else 0.0
    if worst > 1e-5:
        sys.exit(f"the rebuilt gated score differs from the tool's p_fake by up to {worst:.2e}")


def lomo_pair(args) -> int:
    """Each FaceForensics++ method against the split's reals, scored by one pair (a network and an
    expert file, e.g. both trained without all of ffpp_faces): the whole image, face mode with
    the network alone and face mode as the tool scores it with the pair, the whole image gated at
    the expert file's ``whole_gate`` in both face-mode scores
    (docs/decisions/2026-12-05-each-ffpp-method-unseen-by-both-models.md)."""
    network, expert = args.pair
    det = Detector.load(Path(network), device="cpu", faces=True, expert=Path(expert))
    gate = det.expert[1].whole_gate
    if gate is None:
        sys.exit(f"{expert} has no whole_gate: face mode would not gate the whole image")
    ims = read_manifest(manifest("ffpp_faces"), split=args.split)
    reals = [im.path for im in ims if im.label == 0]
    res = {"split": args.split, "network": network, "expert": expert, "whole_gate": gate,
           "n_real": len(reals), "methods": {}}
    print(f"| method ({args.split}) | fakes | whole image | face mode, network alone | face mode, fused |\n"
          "|---|---|---|---|---|")
    real_recs = det.predict(reals)
    gated_check(det, real_recs, gate)
    for m in args.methods.split(","):
        held = [im.path for im in ims if im.label == 1 and method_of(im) == m]
        if not held:
            sys.exit(f"no {m} fakes in ffpp_faces' {args.split} split")
        recs = real_recs + det.predict(held)
        gated_check(det, recs, gate)  # the fakes too: they reach the gate more often than reals
        y = np.r_[np.zeros(len(reals)), np.ones(len(held))]
        alone = image_scores_by_weight(det, None, (0.0,), whole="gate", recs=recs, gate=gate)[0.0]
        whole = np.array([r.p_whole for r in recs])
        tool = np.array([r.p_fake for r in recs])
        r = {"n_fake": len(held), "auc_whole": _auc(whole[y == 0], whole[y == 1]),
             "auc_network": _auc(alone[y == 0], alone[y == 1]), "auc_fused": _auc(tool[y == 0], tool[y == 1])}
        res["methods"][m] = r
        print(f"| {m} | {len(held)} | {r['auc_whole']:.3f} | {r['auc_network']:.3f} | {r['auc_fused']:.3f} |",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def repoint(args) -> int:
    """The expert's norms were read from the network's scores, which its tensors alone decide: a
    network file that differs only in its verdict thresholds and records (not in its temperature,
    which turns the fused logit into p_fake) is the same network. Checks both, then writes the
    expert with the new file's sha256. (Its fused verdict thresholds stay; ``calibrate_faces.py
    --expert`` re-chooses them.)"""
    from safetensors.numpy import load_file
    from safetensors.torch import load_file as load_torch

    meta = fx.read_meta(Path(args.expert))
    if meta.network_sha256 != checkpoint.sha256(args.old):
        sys.exit(f"{args.expert} was not made for {args.old}")
    old, new = load_file(args.old), load_file(args.new)
    if set(old) != set(new) or any(not np.array_equal(old[k], new[k]) for k in old):
        sys.exit(f"{args.new} holds other tensors than {args.old}: the expert's norms do not apply to it")
    if checkpoint.read_meta(args.old).temperature != checkpoint.read_meta(args.new).temperature:
        sys.exit(f"{args.new} has another temperature than {args.old}: the fused scores would differ")
    sha = checkpoint.sha256(args.new)
    meta = dataclasses.replace(meta, network_sha256=sha)
    if args.floor:  # thresholds floored at the network's `fake` one are never below it
        old_fake = float(checkpoint.read_meta(args.old).verdicts["fake"])
        new_fake = float(checkpoint.read_meta(args.new).verdicts["fake"])
        if new_fake < old_fake:
            sys.exit(f"{args.new}'s fake threshold is below {args.old}'s: --floor only raises")
        if meta.whole_gate is not None:
            meta = dataclasses.replace(meta, whole_gate=max(meta.whole_gate, new_fake))
        fv = meta.face_verdicts
        if fv:
            meta = dataclasses.replace(meta, face_verdicts={**fv, "fake": max(float(fv["fake"]), new_fake)})
        print(f"whole_gate {meta.whole_gate!r}, fused fake {(meta.face_verdicts or {}).get('fake')!r} "
              f"(the network's fake threshold {old_fake!r} -> {new_fake!r})")
    fx.save(Path(args.out), load_torch(args.expert), meta)
    print(f"wrote {args.out}: paired with {args.new} (sha256 {sha[:12]}…), tensors as {args.old}'s")
    return 0


def _pool_args(parser, margin: float) -> None:
    parser.add_argument("weigh", nargs="+")
    parser.add_argument("--current", type=float, required=True, help="the shipped expert's weight")
    parser.add_argument("--margin", type=float, default=margin, help="mean benefit a new weight must gain")
    parser.add_argument("--json", default=None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="the expert's shipped file, with norms read on real val faces")
    e.add_argument("--run", required=True, help="an sbi_expert.py run folder (expert.safetensors, mtcnn_map.json)")
    e.add_argument("--out", required=True, help="the file to write (the shipped one is "
                   f"{fx.default_expert_path().name} in weights/)")
    e.add_argument("--weights", default=None, help="the network it pairs with [default: the shipped one]")
    e.add_argument("--weight", type=float, default=0.2, help="the expert's weight w in the fused logit "
                   "[default: 0.2, the first expert's, as the earlier records ran it; the shipped G's is 0.7; "
                   "weigh and pool try every weight whatever the file holds]")
    e.add_argument("--box-map", default=None, help="where the box map comes from when the run folder has no "
                   "mtcnn_map.json: a JSON map, or an exported expert made from the same crops")
    v = sub.add_parser("evaluate", help="today's face mode against the fused one, by the record's rule")
    v.add_argument("--expert", default=None, help="[default: the shipped face expert]")
    v.add_argument("--weights", default=None)
    v.add_argument("--split", default="val", help="val, test, train or all (every image)")
    v.add_argument("--sets", default=None, help="comma-separated sets [default: every real source and face set]")
    v.add_argument("--json", default=None)
    c = sub.add_parser("compare", help="two evaluate JSONs: a candidate expert against the current one")
    c.add_argument("candidate")
    c.add_argument("current")
    c.add_argument("--json", default=None)
    g = sub.add_parser("weigh", help="an expert's weight from a FaceForensics++ method held out of both models")
    g.add_argument("--method", default="FaceSwap")
    g.add_argument("--lomo-weights", required=True, help="a network trained without --method")
    g.add_argument("--heldout-expert", required=True,
                   help="an expert trained without it, exported paired with that network")
    g.add_argument("--reference-expert", default=None,
                   help="the current expert, paired with that network [default: none; rule 1 not applied]")
    g.add_argument("--reference-weight", type=float, default=0.2)
    g.add_argument("--cost-expert", required=True, help="the candidate expert paired with --weights")
    g.add_argument("--weights", default=None, help="the network that saw every set [default: the shipped one]")
    g.add_argument("--json", default=None)
    _pool_args(sub.add_parser("pool", help="several weigh JSONs (one per held-out method): the weight with "
                              "the best mean"), margin=0.005)
    ws = sub.add_parser("weigh-set", help="face-mode AUC at every expert weight on a face set held out of both models")
    ws.add_argument("--set", required=True, help="the held-out face set")
    ws.add_argument("--weights", required=True, help="a network trained without --set")
    ws.add_argument("--expert", required=True, help="an expert trained without --set, exported paired with it")
    ws.add_argument("--split", default="val", help="val, test, train or all")
    ws.add_argument("--gate", type=float, default=None, help="score as S3 does: the whole image counts at p_whole "
                    ">= this (the network's whole-image fake threshold) [default: always, S0]")
    ws.add_argument("--json", default=None)
    _pool_args(sub.add_parser("pool-sets", help="several weigh-set JSONs: the weight with the best mean"),
               margin=0.01)
    wi = sub.add_parser("whole-image", help="face-mode AUC with and without the whole image in the maximum")
    wi.add_argument("--weights", default=None, help="[default: the shipped network]")
    wi.add_argument("--expert", default=None, help="[default: the shipped face expert]")
    wi.add_argument("--sets", required=True, help="comma-separated sets; a+b: a's fakes against b's reals")
    wi.add_argument("--split", default="val")
    wi.add_argument("--weight", type=float, default=None, help="the expert's weight [default: the file's]")
    wi.add_argument("--gate", type=float, default=None, help="also S3: the whole image counts when its p_fake "
                    "is at least this (the network's whole-image fake threshold)")
    wi.add_argument("--json", default=None)
    fs = sub.add_parser("fake-share", help="a held-out set's genuine images labelled fake in face mode, "
                        "by the pair trained without it, at the shipped kind of threshold")
    fs.add_argument("--set", required=True)
    fs.add_argument("--weights", required=True, help="a network trained and calibrated without --set")
    fs.add_argument("--expert", required=True, help="an expert trained without --set, with face verdicts")
    fs.add_argument("--floor", type=float, required=True, help="the network's whole-image fake threshold")
    fs.add_argument("--splits", default="val,test")
    fs.add_argument("--json", default=None)
    sg = sub.add_parser("gate", help="the expert's file with the whole image gated at the network's fake threshold")
    sg.add_argument("--expert", required=True)
    sg.add_argument("--weights", default=None, help="the network it pairs with [default: the shipped one]")
    sg.add_argument("--out", required=True)
    sg.add_argument("--at", type=float, default=None, help="the gate itself, for a network whose whole-image "
                    "fake threshold is not in its file [default: the one in the network's file]")
    m = sub.add_parser("mirror", help="face mode with each input and its mirror averaged, on methods held out "
                       "of both models and on the seen sets (val)")
    m.add_argument("--lomo", default="runs/trust", help="folder of lomo_h6_<m>/final.safetensors")
    m.add_argument("--heldout", default="runs", help="folder of fe_g_no<m>_lomo_<m>.safetensors")
    m.add_argument("--methods", default=",".join(METHODS))
    m.add_argument("--json", default=None)
    r = sub.add_parser("recipe", help="sbi_expert.py runs compared on one method held out of them and the network")
    r.add_argument("--method", required=True, help="Deepfakes, FaceSwap, Face2Face or NeuralTextures")
    r.add_argument("--network", required=True, help="a network trained without --method")
    r.add_argument("--runs", nargs="+", required=True, help="sbi_expert.py run folders, each trained without it")
    r.add_argument("--box-map", default=None, help="as export --box-map")
    r.add_argument("--json", default=None)
    h = sub.add_parser("lomo", help="face mode's leave-one-method-out figures on a split (description)")
    h.add_argument("--lomo", default="runs/trust", help="folder of lomo_h6_<m>/final.safetensors")
    h.add_argument("--heldout", default="runs", help="folder of fe_g_no<m>_lomo_<m>.safetensors")
    h.add_argument("--pair", nargs=2, metavar=("NETWORK", "EXPERT"), default=None,
                   help="one network and expert file for every method (e.g. both trained without ffpp_faces)")
    h.add_argument("--methods", default=",".join(METHODS), help="with --pair: the methods to read")
    h.add_argument("--split", default="test")
    h.add_argument("--json", default=None)
    t = sub.add_parser("repoint", help="pair the expert with a network file whose tensors are those of the "
                       "network it was made for (only the network's metadata changed, e.g. its verdict thresholds)")
    t.add_argument("--expert", required=True)
    t.add_argument("--old", required=True, help="the network file the expert was made for")
    t.add_argument("--new", required=True, help="the network file to pair it with")
    t.add_argument("--out", required=True)
    t.add_argument("--floor", action="store_true", help="raise the whole-image gate and the fused fake threshold, "
                   "where they equal the old network's fake threshold, to the new one's (they are floored at it)")
    args = ap.parse_args(argv)
    # experts are scored here before their own verdicts are chosen: their labels are not read
    warnings.filterwarnings("ignore", message="face expert .* no verdict thresholds", category=UserWarning)
    steps = {"mirror": mirror, "recipe": recipe, "lomo": lomo, "repoint": repoint, "weigh-set": weigh_set,
             "pool-sets": pool_sets, "whole-image": whole_image,
             "fake-share": fake_share, "gate": set_gate}
    if args.cmd in steps:
        return steps[args.cmd](args)
    if args.cmd == "pool":
        return pool(args)
    if args.cmd == "weigh":
        return weigh(args)
    if args.cmd == "export":
        return export(args)
    if args.cmd == "compare":
        return compare(args)
    return evaluate(args)


if __name__ == "__main__":
    sys.exit(main())
