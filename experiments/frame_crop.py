#!/usr/bin/env python
"""Whether a scan should score the picture inside wide plain margins (``Detector.crop``) rather
than the whole image: the run that docs/decisions/2026-12-06-scoring-the-picture-inside-a-screenshot.md
describes. On the val splits (``--split``) of every set, with the shipped default model:

1. every image, decoded as a scan decodes it: those whose margins take ``FRAME_SHARE`` or more
   (:func:`fakedet.data.decode.picture_box`) are scored whole and cropped (no other image is
   cropped, so no other score moves); counted per set: real images labelled ``fake``, fakes
   labelled ``fake``, either way;
2. phone screenshots (light and dark app, as ``experiments/robustness.py`` makes them) of a
   seeded sample of at most ``--per-set`` images per set and class, scored whole and cropped,
   with the originals.

Verdicts are the model's own (``model_label``: what evaluations of the model count).

    python experiments/frame_crop.py --json results/2026-12-06/frame_crop_val.json

With ``--smooth``, the run of docs/decisions/2026-12-06-the-picture-on-a-storys-backdrop.md:
the scan's cut-out with smooth margins too (``fakedet.data.decode.SMOOTH_MARGINS``) against
without, on every unedited image of the split, on stories (``story``, ``storygrad``,
``storyj``, also scored whole) and on the plain-margin screenshots (``phone``, ``phonedark``,
``chat``, ``chatdark``) of the sample (``--smooth-conditions`` chooses them).

    python experiments/frame_crop.py --smooth --json results/2026-12-06/frame_smooth_val.json
    python experiments/frame_crop.py --smooth --split test --smooth-conditions story,storygrad,storyj \
        --json results/2026-12-06/frame_smooth_test.json

With ``--seams-rule``, the rule of docs/decisions/2026-12-07-a-storys-picture-found-by-its-seams.md
(the story's picture found by walking out to its seams, ``fakedet.data.decode.STORY_SEAMS``):

    python experiments/frame_crop.py --smooth --seams-rule --json results/2026-12-07/story_seams_val.json

With ``--tols-rule``, the run and rule of docs/decisions/2026-12-07-stories-sent-on-as-jpeg.md
(a story's smooth margins looked for again at 3 and 4 grey levels after a miss at 2,
``fakedet.data.decode.STORY_TOLS`` (2, 3, 4) against (2,); the shipped scan's ``CUT_SHARE``;
``storyj70`` too):

    python experiments/frame_crop.py --smooth --tols-rule --json results/2026-12-07/story_tols_val.json

With ``--notes``, the note of the same record (a story the scan scores whole named where smooth
margins are found at 3 or 4 grey levels, ``STORY_NOTE_TOLS``): the images named, no model run:

    python experiments/frame_crop.py --notes --json results/2026-12-07/story_notes_val.json

With ``--fill-rule``, the run and rule of docs/decisions/2026-12-07-a-story-without-an-apps-controls.md
(a story's picture taken without an app's controls where its margins look like a blurred copy
of it filling the frame, ``STORY_FILL``; ``storyfill``, ``storyfillj`` and ``story``):

    python experiments/frame_crop.py --fill-rule --json results/2026-12-07/story_fill_val.json

With empty ``--smooth-conditions``, the unedited images only (every image of the split cut out
with smooth margins and not without, scored both ways):

    python experiments/frame_crop.py --smooth --seams-rule --split train --smooth-conditions "" \
        --json results/2026-12-07/story_seams_train_unedited.json

With ``--edges-rule``, the run and rule of docs/decisions/2026-12-07-a-pictures-edges-in-a-jpeg-screenshot.md
(a picture's edges in plain margins walked out to the first line of margin within 16 grey
levels of its colour too, ``fakedet.data.decode.EDGE_TOL`` 16 against 0; screenshots sent on as
a JPEG, ``phonej``, ``phonedarkj``, ``chatj``, ``phonej70``, and conditions that should not move):

    python experiments/frame_crop.py --edges-rule --json results/2026-12-07/edges_val.json

With ``--cut-share S``, the run of docs/decisions/2026-12-06-narrow-bands-around-a-picture.md:
plain margins cut out from ``S`` of the image on (``fakedet.data.decode.CUT_SHARE``) against
from ``FRAME_SHARE`` on, on every unedited image of the split and on narrow bands (a meme's
captions, a letterbox, white padding, a border: ``--band-conditions``) around the sample.

    python experiments/frame_crop.py --cut-share 0.15 --json results/2026-12-06/bands_val.json

With empty ``--band-conditions`` and ``--same-conditions``, the unedited images only (every
image of the split, cut out at either share: on train, what the change does to images of every
source that the leave-one-source-out runs score):

    python experiments/frame_crop.py --cut-share 0.15 --split train --band-conditions "" \
        --same-conditions "" --json results/2026-12-07/bands_train_unedited.json

With ``--framed-rule``, the run and rule of docs/decisions/2026-12-07-no-fake-verdict-from-a-framed-score.md
(a ``fake`` from the whole image's score of a picture scored with its wide margins made
``uncertain``), counted from the shipped scan's scores; ``--faces`` scores as ``scan --faces``:

    python experiments/frame_crop.py --framed-rule --json results/2026-12-07/framed_rule_val.json
    python experiments/frame_crop.py --framed-rule --faces --json results/2026-12-07/framed_rule_val_faces.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from pathlib import Path

import numpy as np

from fakedet import Detector
from fakedet.data import decode
from fakedet.data.decode import FRAME_SHARE, load, picture_box, picture_to_score
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import BY_NAME, manifest
from fakedet.evaluation.metrics import auc as roc_auc


def robustness():
    spec = importlib.util.spec_from_file_location("robustness", Path(__file__).with_name("robustness.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def verdicts(det, inputs, crop: bool):
    det.crop = crop
    res = det.predict(inputs)
    bad = [r.error for r in res if r.error]
    if bad:
        raise SystemExit(f"{len(bad)} inputs failed: {bad[:3]}")
    return [r.model_label for r in res], [r.p_fake for r in res], [r.cropped for r in res]


def finish(out: dict, checks: dict, path) -> int:
    """Prints the rule's checks, and writes ``out`` with them to ``path`` (JSON) when given."""
    checks = {k: bool(v) for k, v in checks.items()}  # numpy's bools are no JSON
    out["rule"] = checks
    for k, v in checks.items():
        print(f"rule {k}: {'holds' if v else 'FAILS'}")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=2))
    return 0


def score_both(name, rows, ways, boxes_key, rec, tot, moved) -> None:
    """Scores ``rows`` of set ``name`` both ``ways`` (two ``(key, scorer)``, a scorer as
    :func:`verdicts` on a list of paths): the shares of each in ``rec[key]`` (and the second's
    boxes in ``rec[boxes_key]``), the counts added to ``tot``, the images whose verdict moved
    appended to ``moved``."""
    (ka, score_a), (kb, score_b) = ways
    paths, y = [r.path for r in rows], [r.label for r in rows]
    a, pa, _ = score_a(paths)
    b, pb, boxes = score_b(paths)
    rec[ka], rec[kb], rec[boxes_key] = shares(a, y), shares(b, y), boxes
    for r, u, v, p, q in zip(rows, a, b, pa, pb):
        if u != v:
            moved.append({"set": name, "path": r.path, "label": r.label, ka: u, kb: v, f"p_{ka}": p, f"p_{kb}": q})
    for cls in ("real", "fake"):
        tot[f"{cls}_{ka}"] += rec[ka][f"{cls}_labelled_fake"]
        tot[f"{cls}_{kb}"] += rec[kb][f"{cls}_labelled_fake"]


def shares(labels, y):
    y = np.asarray(y)
    lab = np.asarray(labels)
    out = {}
    for name, cls in (("real", 0), ("fake", 1)):
        n = int((y == cls).sum())
        out[f"{name}_images"] = n
        out[f"{name}_labelled_fake"] = int(((lab == "fake") & (y == cls)).sum())
        out[f"{name}_share_fake"] = out[f"{name}_labelled_fake"] / n if n else None
    return out


def sample(split: str, per_set: int, seed: int):
    rng = random.Random(seed)
    picked = []
    for name in BY_NAME:
        rows = read_manifest(manifest(name), split)
        for cls in (0, 1):
            c = sorted((r for r in rows if r.label == cls), key=lambda r: r.path)
            picked += rng.sample(c, min(per_set, len(c)))
    return picked


def with_setting(name: str, value, fn, *a):
    """``fn(*a)`` with ``fakedet.data.decode``'s module setting ``name`` set to ``value`` (the scan
    reads it at each image, in this process), then set back."""
    shipped = getattr(decode, name)
    setattr(decode, name, value)
    try:
        return fn(*a)
    finally:
        setattr(decode, name, shipped)


def cut_verdicts(det, inputs, share: float):
    return with_setting("CUT_SHARE", share, verdicts, det, inputs, True)


def newly_cut(args, det, setting: str, ways, out) -> tuple[dict, list]:
    """1. every image of the split as it is: those that ``decode``'s ``setting`` at the second of
    ``ways`` (``(key, value)`` pairs) cuts out otherwise than at the first are scored both ways
    (``out["unedited"]``); the totals and the images whose verdict moved."""
    cfg = det.config.preprocess
    (ka, va), (kb, vb) = ways
    tot = {f"real_{ka}": 0, f"real_{kb}": 0, f"fake_{ka}": 0, f"fake_{kb}": 0, "fake_images": 0}
    moved = []
    for name in BY_NAME:
        rows = read_manifest(manifest(name), args.split)
        newly = []
        for r in rows:
            img = load(r.path, cfg)
            if with_setting(setting, va, picture_to_score, img, cfg)[1] != \
                    with_setting(setting, vb, picture_to_score, img, cfg)[1]:
                newly.append(r)
        tot["fake_images"] += sum(r.label == 1 for r in rows)
        rec = {"images": len(rows), "newly_cut": len(newly), "paths": [r.path for r in newly]}
        if newly:
            score_both(name, newly, ((ka, lambda paths: with_setting(setting, va, verdicts, det, paths, True)),
                                     (kb, lambda paths: with_setting(setting, vb, verdicts, det, paths, True))),
                       "boxes", rec, tot, moved)
        out["unedited"][name] = rec
        print(f"{name}: {len(newly)} of {len(rows)} {args.split} images newly cut out", flush=True)
    out["unedited_total"], out["moved"] = tot, moved
    print(f"unedited: {tot}; verdicts moved: {len(moved)}", flush=True)
    return tot, moved


def sample_originals(args, det, table: dict):
    """The seeded sample of the split (at most ``--per-set`` per set and class): its originals
    scored into ``table["original"]``; the labels and the images, to make conditions of."""
    from PIL import Image

    picked = sample(args.split, args.per_set, args.seed)
    y = np.asarray([r.label for r in picked])
    lab, p, _ = verdicts(det, [r.path for r in picked], crop=False)
    table["original"] = {**shares(lab, y), "auc": roc_auc(y, np.asarray(p))}
    print(f"original: {table['original']}", flush=True)
    return y, [Image.open(r.path).convert("RGB") for r in picked]


def compare_stories(args, det, setting: str, ways, out) -> tuple[dict, list, dict, dict]:
    """The scan with ``decode``'s ``setting`` at the first of ``ways`` (``(key, value)`` pairs:
    ``without`` and ``with``) against the second: 1. every image of the split cut out otherwise,
    scored both ways; 2. stories (also scored whole) and 3. plain-margin screenshots of the seeded
    sample (``--smooth-conditions``). The unedited totals, the unedited images whose verdict
    moved, the screenshots' verdicts changed and the real images each story makes ``fake``
    that the first way does not."""
    (ka, va), (kb, vb) = ways
    tot, moved = newly_cut(args, det, setting, ways, out)
    rob = robustness()
    conds = [c for c in args.smooth_conditions.split(",") if c]  # none: the unedited images only
    if conds:
        y, originals = sample_originals(args, det, out["stories"])
    changed, newly_fake = {}, {}
    for cond in conds:
        shots = [rob.PERTURBATIONS[cond](img) for img in originals]
        runs = {"whole": verdicts(det, shots, crop=False)} if cond.startswith("story") else {}
        runs[ka] = with_setting(setting, va, verdicts, det, shots, True)
        runs[kb] = with_setting(setting, vb, verdicts, det, shots, True)
        if cond.startswith("story"):
            for key, (lab, p, boxes) in runs.items():
                out["stories"][f"{cond}_{key}"] = {**shares(lab, y), "auc": roc_auc(y, np.asarray(p)),
                                                   "cut": sum(b is not None for b in boxes)}
                print(f"{cond}_{key}: {out['stories'][f'{cond}_{key}']}", flush=True)
            # real images the second way makes fake that the first did not (and the reverse)
            newly_fake[cond] = int(sum(c == 0 and u != "fake" and v == "fake"
                                       for c, u, v in zip(y, runs[ka][0], runs[kb][0])))
            out["stories"][f"{cond}_reals_newly_fake"] = newly_fake[cond]
            out["stories"][f"{cond}_reals_no_longer_fake"] = int(sum(
                c == 0 and u == "fake" and v != "fake" for c, u, v in zip(y, runs[ka][0], runs[kb][0])))
        else:
            changed[cond] = sum(u != v for u, v in zip(runs[ka][0], runs[kb][0]))
            out["screens"][cond] = {"verdicts_changed": changed[cond],
                                    f"cut_{ka}": sum(b is not None for b in runs[ka][2]),
                                    f"cut_{kb}": sum(b is not None for b in runs[kb][2])}
            print(f"{cond}: {out['screens'][cond]}", flush=True)
    return tot, moved, changed, newly_fake


def unedited_checks(tot, moved, changed, checks: dict) -> dict:
    """The rules' checks on the unedited images (3) and the plain-margin screenshots (4)."""
    checks["3a unedited: no real newly fake"] = not any(m["label"] == 0 and m["with"] == "fake" for m in moved)
    checks["3b unedited: fakes fake fall <= 0.5 %"] = \
        tot["fake_without"] - tot["fake_with"] <= 0.005 * tot["fake_images"]
    if changed:
        checks["4 plain-margin screenshots: no verdict changes"] = not any(changed.values())
    return checks


def main_tols(args) -> int:
    """The run of docs/decisions/2026-12-07-stories-sent-on-as-jpeg.md: the shipped scan with a
    story's smooth margins looked for at 2 grey levels only (``STORY_TOLS`` (2,), session 58)
    against at 2, 3 and 4 in turn."""
    det = Detector.load(device="cpu")
    before, after = (2,), (2, 3, 4)
    out = {"split": args.split, "frame_share": FRAME_SHARE, "cut_share": decode.CUT_SHARE,
           "story_tols": [list(before), list(after)], "unedited": {}, "stories": {}, "screens": {}}
    tot, moved, changed, newly_fake = compare_stories(
        args, det, "STORY_TOLS", (("without", before), ("with", after)), out)
    st, checks = out["stories"], {}
    if "storyj70_with" in st:
        w, wo = st["storyj70_with"], st["storyj70_without"]
        checks["1 storyj70: reals fake <= 3/4 x shipped"] = w["real_share_fake"] <= 0.75 * wo["real_share_fake"]
        checks["1 storyj70: AUC >= shipped"] = w["auc"] >= wo["auc"]
    for cond in (c for c in ("story", "storyj", "storygrad") if f"{c}_with" in st):
        w, wo = st[f"{cond}_with"], st[f"{cond}_without"]
        checks[f"2 {cond}: reals fake <= shipped"] = w["real_share_fake"] <= wo["real_share_fake"]
        checks[f"2 {cond}: AUC >= shipped - 0.005"] = w["auc"] >= wo["auc"] - 0.005
    for cond, n in newly_fake.items():
        checks[f"5 {cond}: at most one real newly fake"] = n <= 1
    return finish(out, unedited_checks(tot, moved, changed, checks), args.json)


def main_fill(args) -> int:
    """The run of docs/decisions/2026-12-07-a-story-without-an-apps-controls.md: the shipped scan
    with a story's picture taken only with an app's controls above and below (``STORY_FILL`` 0)
    against also where its margins look like a blurred copy of it filling the frame (0.8)."""
    det = Detector.load(device="cpu")
    before, after = 0.0, 0.8
    out = {"split": args.split, "frame_share": FRAME_SHARE, "cut_share": decode.CUT_SHARE,
           "story_fill": [before, after], "unedited": {}, "stories": {}, "screens": {}}
    tot, moved, changed, newly_fake = compare_stories(
        args, det, "STORY_FILL", (("without", before), ("with", after)), out)
    st, checks = out["stories"], {}
    for cond in (c for c in ("storyfill", "storyfillj") if f"{c}_with" in st):
        w, wo = st[f"{cond}_with"], st[f"{cond}_without"]
        checks[f"1 {cond}: reals fake <= half of shipped"] = w["real_share_fake"] <= 0.5 * wo["real_share_fake"]
        checks[f"1 {cond}: AUC >= shipped"] = w["auc"] >= wo["auc"]
    for cond in (c for c in ("story", "storyj", "storygrad", "storyj70") if f"{c}_with" in st):
        w, wo = st[f"{cond}_with"], st[f"{cond}_without"]
        checks[f"2 {cond}: no verdict or cut changes"] = (
            w["real_labelled_fake"] == wo["real_labelled_fake"] and w["fake_labelled_fake"] == wo["fake_labelled_fake"]
            and w["cut"] == wo["cut"] and w["auc"] == wo["auc"])
    for cond, n in newly_fake.items():
        checks[f"4 {cond}: at most one real newly fake"] = n <= 1
    return finish(out, unedited_checks(tot, moved, changed, checks), args.json)


EDGE_JPEG = ("phonej", "phonedarkj", "chatj", "phonej70")  # the rule's: screenshots sent on as a JPEG
EDGE_SAME = ("phone", "phonedark", "chat", "meme", "letterbox", "story", "storyj")  # should not move


def main_edges(args) -> int:
    """The run of docs/decisions/2026-12-07-a-pictures-edges-in-a-jpeg-screenshot.md: the shipped
    scan with a picture's edges in plain margins walked out to the first flat line only
    (``EDGE_TOL`` 0) against also to the first line within 16 grey levels of the margin's colour
    (a JPEG's ringing): every unedited image of the split whose box differs, and
    ``--edge-conditions`` of the seeded sample. With ``--edge-start-rule``, the record's
    amendment: ``EDGE_START`` False against True (``EDGE_TOL`` as shipped), by the same rule."""
    det = Detector.load(device="cpu")
    setting, ways = (("EDGE_START", (("without", False), ("with", True))) if args.edge_start_rule
                     else ("EDGE_TOL", (("without", 0), ("with", 16))))
    out = {"split": args.split, "frame_share": FRAME_SHARE, "cut_share": decode.CUT_SHARE,
           "setting": setting, "edge_tol": decode.EDGE_TOL if args.edge_start_rule else [v for _, v in ways],
           "ways": [v for _, v in ways], "unedited": {}, "screens": {}}
    tot, moved = newly_cut(args, det, setting, ways, out)
    conds = [c for c in args.edge_conditions.split(",") if c]
    if conds:
        y, originals = sample_originals(args, det, out["screens"])
    rob, checks = robustness(), {}
    for cond in conds:
        shots = [rob.PERTURBATIONS[cond](img) for img in originals]
        runs = {key: with_setting(setting, value, verdicts, det, shots, True) for key, value in ways}
        rec = {}
        for key, (lab, p, boxes) in runs.items():
            rec[key] = {**shares(lab, y), "auc": roc_auc(y, np.asarray(p)), "cut": sum(b is not None for b in boxes)}
        (la, _, ba), (lb, _, bb) = runs["without"], runs["with"]
        rec["verdicts_changed"] = sum(u != v for u, v in zip(la, lb))
        rec["boxes_changed"] = sum(u != v for u, v in zip(ba, bb))
        rec["reals_newly_fake"] = int(sum(c == 0 and u != "fake" and v == "fake" for c, u, v in zip(y, la, lb)))
        out["screens"][cond] = rec
        print(f"{cond}: {rec}", flush=True)
    sc = out["screens"]
    if conds:  # the rule reads every condition of the record: a run without some decides nothing
        checks["0 every condition of the rule run"] = all(c in sc for c in EDGE_JPEG + EDGE_SAME)
    if all(c in sc for c in EDGE_JPEG):
        w, wo = [sc[c]["with"] for c in EDGE_JPEG], [sc[c]["without"] for c in EDGE_JPEG]
        checks["1 JPEG screenshots: more fakes fake"] = \
            sum(r["fake_labelled_fake"] for r in w) > sum(r["fake_labelled_fake"] for r in wo)
        checks["1 JPEG screenshots: mean AUC >= without"] = \
            np.mean([r["auc"] for r in w]) >= np.mean([r["auc"] for r in wo])
    for cond in (c for c in EDGE_JPEG if c in sc):
        checks[f"2 {cond}: reals fake <= without"] = \
            sc[cond]["with"]["real_labelled_fake"] <= sc[cond]["without"]["real_labelled_fake"]
    for cond in (c for c in ("phone", "phonedark", "chat") if c in sc):
        checks[f"3 {cond}: at most one verdict changes"] = sc[cond]["verdicts_changed"] <= 1
    for cond in (c for c in ("meme", "letterbox", "story", "storyj") if c in sc):
        w, wo = sc[cond]["with"], sc[cond]["without"]
        checks[f"3 {cond}: reals fake <= without, at most one fake fewer"] = (
            w["real_labelled_fake"] <= wo["real_labelled_fake"]
            and w["fake_labelled_fake"] >= wo["fake_labelled_fake"] - 1)
    checks["4 unedited: no real newly fake"] = not any(m["label"] == 0 and m["with"] == "fake" for m in moved)
    checks["4 unedited: fakes fake fall <= 0.5 %"] = \
        tot["fake_without"] - tot["fake_with"] <= 0.005 * tot["fake_images"]
    return finish(out, checks, args.json)


def main_notes(args) -> int:
    """The run of docs/decisions/2026-12-07-stories-sent-on-as-jpeg.md, "A note where the cut
    fails": the images a scan names as scored whole with wide margins (``Result.framed``) with
    ``STORY_NOTE_TOLS`` () against (3, 4), on every image of the split and on the stories of the
    seeded sample. No model is run: such an image is scored whole either way, and what the scan
    cuts out must be the same both ways (checked here)."""
    from PIL import Image

    cfg = Detector.load(device="cpu").config.preprocess
    before, after = (), (3, 4)

    def status(img, tols):
        share, box = with_setting("STORY_NOTE_TOLS", tols, picture_to_score, img, cfg)
        return ("cut" if box is not None else "named" if decode.scored_framed(share, box) else "whole"), box

    out = {"split": args.split, "frame_share": FRAME_SHARE, "note_tols": [list(before), list(after)],
           "unedited": {}, "stories": {}}
    same_cuts, newly = True, 0
    for name in BY_NAME:
        rows, named = read_manifest(manifest(name), args.split), []
        for r in rows:
            img = load(r.path, cfg)
            a, b = status(img, before), status(img, after)
            same_cuts &= (a[0] == "cut") == (b[0] == "cut") and a[1] == b[1]
            if a[0] != "named" and b[0] == "named":
                named.append({"path": r.path, "label": r.label})
        newly += len(named)
        out["unedited"][name] = {"images": len(rows), "newly_named": len(named), "named": named}
        print(f"{name}: {len(named)} of {len(rows)} {args.split} images newly named", flush=True)
    rob = robustness()
    conds = [c for c in args.smooth_conditions.split(",") if c]
    picked = sample(args.split, args.per_set, args.seed) if conds else []
    originals = [Image.open(r.path).convert("RGB") for r in picked]
    for cond in conds:
        rec = {"images": len(picked)}
        shots = [load(rob.PERTURBATIONS[cond](img), cfg) for img in originals]
        for key, tols in (("without", before), ("with", after)):
            got = [status(shot, tols) for shot in shots]
            rec[key] = {k: sum(g[0] == k for g in got) for k in ("cut", "named", "whole")}
            rec[f"{key}_boxes"] = [g[1] for g in got]
        same_cuts &= rec["without_boxes"] == rec["with_boxes"]
        del rec["without_boxes"], rec["with_boxes"]
        out["stories"][cond] = rec
        print(f"{cond}: {rec}", flush=True)
    checks = {"0 the same pictures cut out either way": same_cuts,
              "1 unedited: none newly named": newly == 0}
    if "storyj70" in out["stories"]:
        w = out["stories"]["storyj70"]["with"]
        checks["2 storyj70: at least half of those scored whole named"] = w["named"] >= 0.5 * (w["named"] + w["whole"])
    return finish(out, checks, args.json)


def main_smooth(args) -> int:
    det = Detector.load(device="cpu")
    out = {"split": args.split, "frame_share": FRAME_SHARE, "seam": decode.SEAM, "unedited": {},
           "stories": {}, "screens": {}}
    tot, moved, changed, newly_fake = compare_stories(
        args, det, "SMOOTH_MARGINS", (("without", False), ("with", True)), out)
    st, checks = out["stories"], {}
    out["story_seams"] = decode.STORY_SEAMS
    for cond in (c for c in ("story", "storygrad", "storyj") if f"{c}_with" in st):
        if args.seams_rule:  # docs/decisions/2026-12-07-a-storys-picture-found-by-its-seams.md
            half = 0.5 if cond in ("story", "storyj") else 1.0
            checks[f"1 {cond}: reals fake with smooth <= {half} x shipped"] = \
                st[f"{cond}_with"]["real_share_fake"] <= half * st[f"{cond}_without"]["real_share_fake"]
        else:
            checks[f"1 {cond}: reals fake with smooth <= originals + 0.01"] = \
                st[f"{cond}_with"]["real_share_fake"] <= st["original"]["real_share_fake"] + 0.01
        checks[f"2 {cond}: AUC with smooth >= without"] = st[f"{cond}_with"]["auc"] >= st[f"{cond}_without"]["auc"]
        if args.seams_rule:
            checks[f"5 {cond}: at most one real newly fake"] = newly_fake[cond] <= 1
    return finish(out, unedited_checks(tot, moved, changed, checks), args.json)


def main_cut(args) -> int:
    """The run of docs/decisions/2026-12-06-narrow-bands-around-a-picture.md: plain margins cut
    out from ``--cut-share`` on against from :data:`FRAME_SHARE` on (the scan before it)."""
    det = Detector.load(device="cpu")
    low, high = args.cut_share, FRAME_SHARE
    out = {"split": args.split, "cut_share": low, "against": high, "unedited": {}, "bands": {}}
    # 1. every image of the split: those cut out at the lower share only, scored both ways
    tot, moved = newly_cut(args, det, "CUT_SHARE", (("high", high), ("low", low)), out)
    # 2. bands around the pictures of a sample (none: the unedited images only, as on train)
    rob = robustness()
    band_conds = [c for c in args.band_conditions.split(",") if c]
    same_conds = [c for c in args.same_conditions.split(",") if c]
    bands, checks = out["bands"], {}
    if band_conds or same_conds:
        y, originals = sample_originals(args, det, out["bands"])
    for cond in band_conds:
        shots = [rob.PERTURBATIONS[cond](img) for img in originals]
        for key, share in (("high", high), ("low", low)):
            lab, p, boxes = cut_verdicts(det, shots, share)
            bands[f"{cond}_{key}"] = {**shares(lab, y), "auc": roc_auc(y, np.asarray(p)),
                                      "cut": sum(b is not None for b in boxes)}
            print(f"{cond}_{key}: {bands[f'{cond}_{key}']}", flush=True)
        checks[f"1 {cond}: reals fake at {low} <= originals + 0.01"] = \
            bands[f"{cond}_low"]["real_share_fake"] <= bands["original"]["real_share_fake"] + 0.01
        checks[f"2 {cond}: AUC at {low} >= at {high}"] = bands[f"{cond}_low"]["auc"] >= bands[f"{cond}_high"]["auc"]
    checks[f"3a unedited: no real newly fake at {low}"] = not any(m["label"] == 0 and m["low"] == "fake" for m in moved)
    checks["3b unedited: fakes fake fall <= 0.5 %"] = \
        tot["fake_high"] - tot["fake_low"] <= 0.005 * tot["fake_images"]
    # 4. stories and phone screenshots of the sample: cut at either share, the same verdicts and notes
    out["same"] = {}
    for cond in same_conds:
        shots = [rob.PERTURBATIONS[cond](img) for img in originals]
        det.crop = True
        runs = {key: with_setting("CUT_SHARE", share, det.predict, shots)
                for key, share in (("high", high), ("low", low))}
        changed = [{"path": src.path, "label": src.label, "high": a.model_label, "low": b.model_label,
                    "p_high": a.p_fake, "p_low": b.p_fake, "box_high": a.cropped, "box_low": b.cropped}
                   for src, a, b in zip(sample(args.split, args.per_set, args.seed), runs["high"], runs["low"])
                   if a.model_label != b.model_label]
        rec = {"verdicts_changed": len(changed), "changed": changed,
               **{f"framed_{k}": sum(r.framed for r in v) for k, v in runs.items()},
               **{f"cut_{k}": sum(r.cropped is not None for r in v) for k, v in runs.items()}}
        out["same"][cond] = rec
        print(f"{cond}: {rec}", flush=True)
        checks[f"4 {cond}: no verdict changes, no fewer framed"] = \
            rec["verdicts_changed"] == 0 and rec["framed_low"] >= rec["framed_high"]
    return finish(out, checks, args.json)


FRAMED_CONDITIONS = ("story", "storygrad", "storyj", "storyj70", "storyfill", "storyfillj", "phone", "phonedark",
                     "chat", "chatdark", "phonej", "phonedarkj", "chatj", "phonej70", "meme", "letterbox",
                     "pillarwhite", "border")


def framed_tally(det, inputs, y) -> dict:
    """Scores ``inputs`` (labels ``y``) as the shipped scan does and counts the model's verdicts
    today (``before``) and with a ``fake`` from the whole image's score of a framed image made
    ``uncertain`` (``after``): docs/decisions/2026-12-07-no-fake-verdict-from-a-framed-score.md."""
    res = det.predict(inputs)
    bad = [r.error for r in res if r.error]
    if bad:
        raise SystemExit(f"{len(bad)} inputs failed: {bad[:3]}")
    face_fake = det.face_cutoffs[0] if det.faces else None
    t = {k: 0 for k in ("real", "fake", "real_fake_before", "real_fake_after", "fake_fake_before",
                        "fake_fake_after", "framed_real", "framed_fake", "framed_real_fake", "framed_fake_fake")}
    for r, c in zip(res, y):
        cls = "fake" if c else "real"
        by_face = bool(r.faces) and any(f["p_fake"] >= face_fake for f in r.faces)
        after = "uncertain" if r.model_label == "fake" and r.framed and not by_face else r.model_label
        t[cls] += 1
        t[f"{cls}_fake_before"] += r.model_label == "fake"
        t[f"{cls}_fake_after"] += after == "fake"
        t[f"framed_{cls}"] += r.framed
        t[f"framed_{cls}_fake"] += r.framed and r.model_label == "fake"
    return t


def main_framed(args) -> int:
    """The run of docs/decisions/2026-12-07-no-fake-verdict-from-a-framed-score.md: every unedited
    image of the split (not with ``--faces``) and ``FRAMED_CONDITIONS`` of the seeded sample,
    the model's verdicts today and with the change, from the same scores."""
    from PIL import Image

    det = Detector.load(device="cpu", faces=args.faces)
    out = {"split": args.split, "faces": args.faces, "per_set": args.per_set, "unedited": {}, "conditions": {}}
    total = None
    if not args.faces:
        for name in BY_NAME:
            rows = read_manifest(manifest(name), args.split)
            t = framed_tally(det, [r.path for r in rows], [r.label for r in rows])
            out["unedited"][name] = t
            total = t if total is None else {k: total[k] + v for k, v in t.items()}
            print(f"{name}: {t}", flush=True)
        out["unedited_total"] = total
    picked = sample(args.split, args.per_set, args.seed)
    y = [r.label for r in picked]
    originals = [Image.open(r.path).convert("RGB") for r in picked]
    rob = robustness()
    out["conditions"]["original"] = framed_tally(det, [r.path for r in picked], y)
    for cond in [c for c in args.framed_conditions.split(",") if c]:
        out["conditions"][cond] = framed_tally(det, [rob.PERTURBATIONS[cond](img) for img in originals], y)
        print(f"{cond}: {out['conditions'][cond]}", flush=True)
    conds = [v for k, v in out["conditions"].items() if k != "original"]
    pooled = {k: sum(t[k] for t in conds + ([total] if total else [])) for k in conds[0]} if conds else {}
    out["pooled_framed"] = pooled
    checks = {}
    if not args.faces and conds:
        checks["0 every condition of the rule run"] = all(c in out["conditions"] for c in FRAMED_CONDITIONS)
        checks["1 framed reals labelled fake > 0.1 %"] = \
            pooled["framed_real"] > 0 and pooled["framed_real_fake"] > 0.001 * pooled["framed_real"]
        checks["2 unedited: fakes fake fall <= 0.5 %"] = \
            total["fake_fake_before"] - total["fake_fake_after"] <= 0.005 * total["fake"]
        checks["3 conditions: at least one real no longer fake"] = \
            sum(t["real_fake_before"] - t["real_fake_after"] for t in conds) >= 1
    print(f"pooled framed: {pooled}")
    return finish(out, checks, args.json)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="val")
    ap.add_argument("--per-set", type=int, default=40, help="images per set and class made into screenshots")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--conditions", default="phone,phonedark",
                    help="screenshot conditions of experiments/robustness.py (phone, phonedark: the rule's; "
                         "chat, chatdark: a chat app with bubbles, read after the decision)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--smooth", action="store_true",
                    help="the cut-out with smooth margins (a story's backdrop) against without")
    ap.add_argument("--smooth-conditions", default=None,
                    help="with --smooth: the conditions of experiments/robustness.py to make of the sample "
                         "(story,storygrad,storyj,phone,phonedark,chat,chatdark; with --tols-rule, and storyj70)")
    ap.add_argument("--seams-rule", action="store_true",
                    help="with --smooth: the rule of docs/decisions/2026-12-07-a-storys-picture-found-by-its-seams.md")
    ap.add_argument("--tols-rule", action="store_true",
                    help="with --smooth: the run and rule of docs/decisions/2026-12-07-stories-sent-on-as-jpeg.md "
                         "(STORY_TOLS (2,) against (2, 3, 4), the shipped scan otherwise)")
    ap.add_argument("--fill-rule", action="store_true",
                    help="the run and rule of docs/decisions/2026-12-07-a-story-without-an-apps-controls.md "
                         "(STORY_FILL 0 against 0.8, the shipped scan otherwise)")
    ap.add_argument("--notes", action="store_true",
                    help="the run and rule of the note in docs/decisions/2026-12-07-stories-sent-on-as-jpeg.md "
                         "(STORY_NOTE_TOLS () against (3, 4); no model is run)")
    ap.add_argument("--cut-share", type=float, default=None,
                    help="plain margins cut out from this share of the image on, against from FRAME_SHARE on")
    ap.add_argument("--band-conditions", default="meme,letterbox,pillarwhite,border",
                    help="with --cut-share: the conditions of experiments/robustness.py to make of the sample")
    ap.add_argument("--same-conditions", default="story,storyj,phone,phonedark",
                    help="with --cut-share: conditions whose verdicts and notes should not change")
    ap.add_argument("--edges-rule", action="store_true",
                    help="the run and rule of docs/decisions/2026-12-07-a-pictures-edges-in-a-jpeg-screenshot.md "
                         "(EDGE_TOL 0 against 16, the shipped scan otherwise)")
    ap.add_argument("--edge-conditions", default=",".join(EDGE_JPEG + EDGE_SAME),
                    help="with --edges-rule: the conditions of experiments/robustness.py to make of the sample")
    ap.add_argument("--edge-start-rule", action="store_true",
                    help="the amendment of docs/decisions/2026-12-07-a-pictures-edges-in-a-jpeg-screenshot.md "
                         "(EDGE_START False against True, EDGE_TOL as shipped)")
    ap.add_argument("--framed-rule", action="store_true",
                    help="the run and rule of docs/decisions/2026-12-07-no-fake-verdict-from-a-framed-score.md")
    ap.add_argument("--framed-conditions", default=",".join(FRAMED_CONDITIONS))
    ap.add_argument("--faces", action="store_true", help="with --framed-rule: score as scan --faces does")
    args = ap.parse_args(argv)
    if args.framed_rule:
        return main_framed(args)
    if args.edges_rule or args.edge_start_rule:
        return main_edges(args)
    if args.cut_share is not None:
        return main_cut(args)
    if args.fill_rule:
        if args.smooth_conditions is None:
            args.smooth_conditions = "storyfill,storyfillj,story"
        return main_fill(args)
    if args.notes:
        if args.smooth_conditions is None:
            args.smooth_conditions = "story,storygrad,storyj,storyj70"
        return main_notes(args)
    if args.smooth_conditions is None:
        args.smooth_conditions = ",".join(["story", "storygrad", "storyj"] + ["storyj70"] * args.tols_rule
                                          + ["phone", "phonedark", "chat", "chatdark"])
    if args.tols_rule and not args.smooth:
        ap.error("--tols-rule needs --smooth")
    if args.smooth and args.tols_rule:  # the shipped scan: plain margins cut out from CUT_SHARE
        return main_tols(args)
    # the runs of sessions 52 and 53 cut plain margins out from FRAME_SHARE only: so do these
    decode.CUT_SHARE = FRAME_SHARE
    if args.smooth:
        return main_smooth(args)
    conditions = [c for c in args.conditions.split(",") if c]
    det = Detector.load(device="cpu")
    cfg = det.config.preprocess
    out = {"split": args.split, "frame_share": FRAME_SHARE, "unedited": {}, "phone": {}}

    # 1. every image of the split as it is: which are cropped, and what it does to them
    tot = {"real_whole": 0, "real_cropped": 0, "fake_whole": 0, "fake_cropped": 0, "fake_images": 0}
    moved = []
    for name in BY_NAME:
        rows = read_manifest(manifest(name), args.split)
        framed = []
        for r in rows:
            found = picture_box(load(r.path, cfg))
            if found is not None and found[0] >= FRAME_SHARE:
                framed.append(r)
        rec = {"images": len(rows), "framed": len(framed), "paths": [r.path for r in framed]}
        tot["fake_images"] += sum(r.label == 1 for r in rows)
        if framed:
            score_both(name, framed, (("whole", lambda paths: verdicts(det, paths, crop=False)),
                                      ("cropped", lambda paths: verdicts(det, paths, crop=True))),
                       "cropped_boxes", rec, tot, moved)
        out["unedited"][name] = rec
        print(f"{name}: {len(framed)} of {len(rows)} {args.split} images framed", flush=True)
    out["unedited_total"], out["moved"] = tot, moved
    print(f"unedited: reals labelled fake whole {tot['real_whole']}, cropped {tot['real_cropped']}; "
          f"fakes labelled fake whole {tot['fake_whole']}, cropped {tot['fake_cropped']} "
          f"(of {tot['fake_images']} fake images); verdicts moved: {len(moved)}", flush=True)

    # 2. phone screenshots of a sample
    rob = robustness()
    rng = random.Random(args.seed)
    picked = []
    for name in BY_NAME:
        rows = read_manifest(manifest(name), args.split)
        for cls in (0, 1):
            c = sorted((r for r in rows if r.label == cls), key=lambda r: r.path)
            picked += rng.sample(c, min(args.per_set, len(c)))
    y = [r.label for r in picked]
    from PIL import Image

    lab, p, _ = verdicts(det, [r.path for r in picked], crop=False)
    out["phone"]["original"] = {**shares(lab, y), "auc": roc_auc(np.asarray(y), np.asarray(p))}
    print(f"original: {out['phone']['original']}", flush=True)
    for cond in conditions:
        make = rob.PERTURBATIONS[cond]
        shots = [make(Image.open(r.path).convert("RGB")) for r in picked]
        for crop in (False, True):
            lab, p, boxes = verdicts(det, shots, crop=crop)
            key = f"{cond}_{'cropped' if crop else 'whole'}"
            out["phone"][key] = {**shares(lab, y), "auc": roc_auc(np.asarray(y), np.asarray(p)),
                                 "cropped": sum(b is not None for b in boxes)}
            print(f"{key}: {out['phone'][key]}", flush=True)

    # the rule, as the decision record states it
    ph = out["phone"]
    checks = {}
    for cond in conditions:
        c, w = ph[f"{cond}_cropped"], ph[f"{cond}_whole"]
        checks[f"1 {cond}: reals fake cropped <= originals + 0.01"] = \
            c["real_share_fake"] <= ph["original"]["real_share_fake"] + 0.01
        checks[f"2 {cond}: fakes fake cropped >= whole"] = c["fake_share_fake"] >= w["fake_share_fake"]
    checks["3a unedited: no real newly fake"] = not any(m["label"] == 0 and m["cropped"] == "fake"
                                                        and m["whole"] != "fake" for m in moved)
    checks["3b unedited: fakes fake fall <= 0.5 %"] = \
        tot["fake_whole"] - tot["fake_cropped"] <= 0.005 * tot["fake_images"]
    return finish(out, checks, args.json)


if __name__ == "__main__":
    sys.exit(main())
