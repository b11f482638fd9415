#!/usr/bin/env python
"""Robustness of the shipped model to how photos travel: re-compression, resizing, blur.

    python experiments/robustness.py --per-set 400 --json robustness.json

Takes a fixed sample (seeded, at most ``--per-set`` images per set and class) of the test splits
in the data root, applies each perturbation alike to real and fake images, and reports AUC and
the false-positive rate on real images at the checkpoint's threshold, per set and overall:

  original, png (lossless re-save), jpeg75, jpeg50, half (0.5x bicubic downscale),
  blur (Gaussian, radius 1), double (2x bicubic upscale, as a high-resolution copy would be)

and everyday edits, each followed by a JPEG q90 re-save as an edited photo would get (``jpeg90``
alone is the baseline for them): crop (the central 80 %), bright (brightness x1.25), contrast
(x1.3), saturate (colour x1.5, as a photo filter), warm (red x1.08, blue x0.92), sharpen (unsharp
mask, radius 2, 80 %), noise (Gaussian, sd 4 grey levels, seeded by the image), rotate (3 degrees,
then the central 90 % so that no corner is blank). ``--conditions edits`` runs those nine.

Screenshots (``--conditions screens``): the image shown at another size and captured, bilinear as
a display scales it: shot125 (125 %, PNG), shot075 (75 %, PNG), shot075j (75 %, then sent on
as a JPEG q85).

Stories (``--conditions stories``): story, storygrad, storyj, storyj70: a phone's screenshot of
a story, the picture on a blurred, enlarged copy of itself or on a gradient of its colours, with
a progress bar, a name and a reply box, as PNG (storyj: the blurred one sent on as a JPEG q85;
storyj70: as a JPEG q70); storyfill, storyfillj: the picture on a blurred copy of itself filling
a phone's frame with no app around it (an edit, as a video editor exports it), as PNG and as a
JPEG q85.

Bands (``--conditions bands``): meme, letterbox, pillarwhite, border: narrow plain bands around
the picture (a quarter of the image or less), sent on as JPEG q85.

Turns (``--conditions turns``): rot90, rot180, rot270, a photo whose pixels lie on their side or
upside down (its EXIF orientation lost), as PNG.

With ``--faces`` the images are scored as ``scan --faces`` scores them (with the shipped face
expert unless ``--no-face-expert``), labelled by the face-mode thresholds where a face is found.

Images that a perturbation makes too small to analyse (cifake's 32 px images halved) are
reported as errors and left out of that row.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import BY_NAME, CORE, PAIRED, data_root, manifest, names
from fakedet.evaluation.metrics import summarize
from fakedet.evaluation.report import report


def _jpeg(q):
    def f(img):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        return buf.getvalue()
    return f


def _png(img):
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _edited(edit):
    """An everyday edit, then the JPEG q90 re-save an edited photo gets."""
    def f(img):
        buf = io.BytesIO()
        edit(img).save(buf, "JPEG", quality=90)
        return buf.getvalue()
    return f


def _centre(img, share):
    w, h = img.width, img.height
    cw, ch = max(1, round(w * share)), max(1, round(h * share))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return img.crop((x0, y0, x0 + cw, y0 + ch))


def _warm(img):
    a = np.asarray(img, np.float32) * np.array([1.08, 1.0, 0.92], np.float32)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def _noise(img):
    a = np.asarray(img, np.float32)
    rng = np.random.default_rng(int(a.sum()) % (2 ** 32))  # the same draw for the same image
    return Image.fromarray(np.clip(a + rng.normal(0, 4.0, a.shape) + 0.5, 0, 255).astype(np.uint8))


EDITS = {
    "jpeg90": _edited(lambda img: img),
    "crop": _edited(lambda img: _centre(img, 0.8)),
    "bright": _edited(lambda img: ImageEnhance.Brightness(img).enhance(1.25)),
    "contrast": _edited(lambda img: ImageEnhance.Contrast(img).enhance(1.3)),
    "saturate": _edited(lambda img: ImageEnhance.Color(img).enhance(1.5)),
    "warm": _edited(_warm),
    "sharpen": _edited(lambda img: img.filter(ImageFilter.UnsharpMask(radius=2, percent=80, threshold=2))),
    "noise": _edited(_noise),
    "rotate": _edited(lambda img: _centre(img.rotate(3, resample=Image.Resampling.BICUBIC), 0.9)),
}


def _shown(scale, save):
    """The image as a screenshot captures it: shown at ``scale`` times its size (bilinear, as a
    browser or a phone's display scales it), then saved by ``save``."""
    def f(img):
        return save(img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                               Image.Resampling.BILINEAR))
    return f


def _phone(dark: bool = False, crop: bool = False, jpeg: "bool | int" = False):
    """The image as a phone's screenshot of a chat or social app shows it: scaled to the screen's
    width (1080 px; to the height left by the app's bars when it is tall), on a 1080x2340 screen
    of the app's plain background with a status bar, a header and a reply bar holding a few words
    of text, saved as PNG, or with ``jpeg`` sent on as a JPEG (q85, or the quality ``jpeg``
    gives); with ``crop``, that screenshot cut back to the picture (the advice the README gives)."""
    def f(img):
        from PIL import ImageDraw

        w, h, top, bottom = 1080, 2340, 260, 200
        s = min(w / img.width, (h - top - bottom) / img.height)
        shown = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.BILINEAR)
        bg, bar, ink = ((18, 18, 18), (32, 32, 32), (230, 230, 230)) if dark else \
            ((255, 255, 255), (240, 240, 240), (20, 20, 20))
        screen = Image.new("RGB", (w, h), bg)
        d = ImageDraw.Draw(screen)
        d.rectangle((0, 0, w, top - 40), fill=bar)
        d.text((40, 30), "12:41", fill=ink)
        d.text((900, 30), "5G 87%", fill=ink)
        d.text((120, 150), "Family group", fill=ink)
        d.rectangle((0, h - bottom, w, h), fill=bar)
        d.text((60, h - bottom + 80), "Did you see this?", fill=ink)
        x0, y0 = (w - shown.width) // 2, top + (h - top - bottom - shown.height) // 2
        screen.paste(shown, (x0, y0))
        d.text((x0 + 20, y0 + shown.height + 10), "forwarded  10:32", fill=ink)
        if crop:
            screen = screen.crop((x0, y0, x0 + shown.width, y0 + shown.height))
        return _jpeg(85 if jpeg is True else jpeg)(screen) if jpeg else _png(screen)
    return f


def _chat(dark: bool = False, jpeg: "bool | int" = False):
    """The image as a chat app's screenshot shows it: a 1080x2340 screen with a coloured header
    holding an avatar and the chat's name, two bubbles of text above the picture, the picture in
    a bubble of its own at most 700 px wide on the right, and a bubble of text and the reply bar
    below, saved as PNG, or with ``jpeg`` sent on as a JPEG (q85, or the quality ``jpeg`` gives)
    (closer to a messenger's screen than ``_phone``'s bare app)."""
    def f(img):
        from PIL import ImageDraw

        w, h = 1080, 2340
        s = min(700 / img.width, 900 / img.height)
        shown = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.BILINEAR)
        bg, head, bubble, mine, ink = (((11, 20, 26), (31, 44, 52), (32, 44, 51), (0, 92, 75), (233, 237, 239))
                                       if dark else ((236, 229, 221), (7, 94, 84), (255, 255, 255),
                                                     (220, 248, 198), (20, 20, 20)))
        screen = Image.new("RGB", (w, h), bg)
        d = ImageDraw.Draw(screen)
        d.rectangle((0, 0, w, 220), fill=head)
        d.ellipse((30, 80, 130, 180), fill=(200, 180, 160))
        d.text((160, 110), "Family group", fill=(255, 255, 255))
        for y, words in ((280, "did you see what they posted?"), (430, "it's everywhere now")):
            d.rounded_rectangle((40, y, 700, y + 110), 24, fill=bubble)
            d.text((70, y + 45), words, fill=ink)
        x0, y0 = w - 40 - 20 - shown.width, 600
        d.rounded_rectangle((x0 - 20, y0 - 20, w - 40, y0 + shown.height + 60), 24, fill=mine)
        screen.paste(shown, (x0, y0))
        d.text((w - 160, y0 + shown.height + 20), "10:32", fill=ink)
        y = y0 + shown.height + 100
        d.rounded_rectangle((40, y, 760, y + 110), 24, fill=bubble)
        d.text((70, y + 45), "this one is fake, right?", fill=ink)
        d.rectangle((0, h - 160, w, h), fill=head)
        return _jpeg(85 if jpeg is True else jpeg)(screen) if jpeg else _png(screen)
    return f


def _story(backdrop: str = "blur", jpeg: "bool | int" = False, controls: bool = True):
    """The image as a phone's screenshot of a story (a status, a reel) shows it: scaled to the
    screen's width (to 1400 px high when it is tall) on a 1080x1920 screen whose backdrop is the
    picture itself, enlarged to cover the screen and blurred (Gaussian, radius 36;
    ``backdrop="blur"``), or a diagonal gradient between the mean colours of the picture's top
    and bottom halves (``"gradient"``); a progress bar, an avatar and a name above it, a reply
    box below (none without ``controls``: an edit that fills a phone's frame with a blurred copy
    of the picture, as a video editor exports it); saved as PNG, or with ``jpeg`` sent on as a
    JPEG (q85, or the quality ``jpeg`` gives)."""
    def f(img):
        from PIL import ImageDraw

        w, h = 1080, 1920
        s = min(w / img.width, 1400 / img.height)
        shown = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.Resampling.BILINEAR)
        if backdrop == "blur":
            k = max(w / img.width, h / img.height)
            big = img.resize((max(w, round(img.width * k)), max(h, round(img.height * k))), Image.Resampling.BILINEAR)
            left, top = (big.width - w) // 2, (big.height - h) // 2
            screen = big.crop((left, top, left + w, top + h)).filter(ImageFilter.GaussianBlur(36))
        else:
            ends = np.asarray(img.resize((1, 2), Image.Resampling.BOX), np.float64).reshape(2, 3)
            yy, xx = np.mgrid[0:h, 0:w]
            t = ((yy / h + xx / w) / 2)[..., None]
            screen = Image.fromarray(((1 - t) * ends[0] + t * ends[1]).round().astype(np.uint8))
        if controls:
            d = ImageDraw.Draw(screen)
            d.rectangle((20, 30, w - 20, 34), fill=(235, 235, 235))
            d.ellipse((30, 60, 110, 140), fill=(200, 180, 160))
            d.text((130, 90), "someone  5h", fill=(255, 255, 255))
            d.rounded_rectangle((30, h - 130, w - 160, h - 50), 40, outline=(255, 255, 255), width=3)
            d.text((70, h - 100), "Send message", fill=(255, 255, 255))
        screen.paste(shown, ((w - shown.width) // 2, (h - shown.height) // 2))
        return _jpeg(85 if jpeg is True else jpeg)(screen) if jpeg else _png(screen)
    return f


SCREENS = {
    "shot125": _shown(1.25, _png),  # zoomed to 125 % (a high-density display), a PNG screenshot
    "shot075": _shown(0.75, _png),  # shown smaller than its size, a PNG screenshot
    "shot075j": _shown(0.75, _jpeg(85)),  # the same screenshot sent on as a JPEG (q85)
}

# a phone's screenshot with the app around the picture, and cut back to the picture
PHONE = {"phone": _phone(), "phonedark": _phone(dark=True), "phonecrop": _phone(crop=True),
         # the same sent on as a JPEG, as messengers send screenshots on (q85; q70)
         "phonej": _phone(jpeg=True), "phonedarkj": _phone(dark=True, jpeg=True), "phonej70": _phone(jpeg=70)}

# a chat app's screenshot: avatar, bubbles of text, the picture in a bubble
CHATS = {"chat": _chat(), "chatdark": _chat(dark=True), "chatj": _chat(jpeg=True)}

# a story's screenshot: the picture on a blurred, enlarged copy of itself, or on a gradient
STORIES = {"story": _story(), "storygrad": _story("gradient"), "storyj": _story(jpeg=True),
           "storyj70": _story(jpeg=70),  # sent on as a messenger might (q70)
           # the picture on a blurred copy of itself filling a phone's frame, no app around it (an
           # edit exported as a video editor does), as PNG and sent on as a JPEG q85
           "storyfill": _story(controls=False), "storyfillj": _story(jpeg=True, controls=False)}

# a photo whose pixels lie on their side or upside down (its EXIF orientation lost), saved as PNG
TURNS = {"rot90": lambda img: _png(img.transpose(Image.Transpose.ROTATE_90)),
         "rot180": lambda img: _png(img.transpose(Image.Transpose.ROTATE_180)),
         "rot270": lambda img: _png(img.transpose(Image.Transpose.ROTATE_270))}

# a photo in black and white only: dithered (Pillow's Floyd-Steinberg, as a 1-bit scan or a
# "bitmap" export makes it) and thresholded, saved as 1-bit PNG
BILEVEL = {"dither": lambda img: _png(img.convert("1")),
           "bw": lambda img: _png(img.convert("L").point(lambda v: 255 if v >= 128 else 0).convert("1")),
           # the dithered copy sent on as a JPEG (q90): no longer two colours, so scored
           "ditherj": lambda img: _jpeg(90)(img.convert("1").convert("RGB"))}

# a photo reduced to a palette: saved as GIF (Pillow's own reduction to 256 colours), and
# dithered to the 216-colour web palette as older tools did (saved as PNG)
def _gif(img):
    buf = io.BytesIO()
    img.save(buf, "GIF")
    return buf.getvalue()


PALETTE = {"gif": _gif,
           "webdither": lambda img: _png(img.convert("P", palette=Image.Palette.WEB,
                                                     dither=Image.Dither.FLOYDSTEINBERG))}

def _meme(img):
    """A meme made of the image: a caption in black on a white band above it and one below (each
    a sixth of the picture's height), in a large font, sent on as JPEG q85."""
    from PIL import ImageDraw, ImageFont

    w, h = img.size
    band = max(12, h // 6)
    out = Image.new("RGB", (w, h + 2 * band), (255, 255, 255))
    out.paste(img, (0, band))
    d = ImageDraw.Draw(out)
    try:
        font = ImageFont.load_default(size=max(8, band * 2 // 3))
    except TypeError:
        font = ImageFont.load_default()
    for y, text in ((band // 6, "WHEN THE PHOTO"), (h + band + band // 6, "IS REAL")):
        d.text((max(2, w // 10), y), text, fill=(0, 0, 0), font=font)
    return _jpeg(85)(out)


# a meme: captions on white bands above and below the picture
MEMES = {"meme": _meme}


def _bands(colour, across: bool, frac: float, border: bool = False):
    """The image on plain bands of ``colour``, sent on as JPEG q85: above and below it, each
    ``frac`` of its height (``across``: a letterbox), left and right of it, each ``frac`` of its
    width (padding towards a square), or, with ``border``, all round it, each ``frac`` of its
    longer side."""
    def f(img):
        w, h = img.size
        if border:
            bx = by = max(1, round(frac * max(w, h)))
        elif across:
            bx, by = 0, max(1, round(frac * h))
        else:
            bx, by = max(1, round(frac * w)), 0
        out = Image.new("RGB", (w + 2 * bx, h + 2 * by), colour)
        out.paste(img, (bx, by))
        return _jpeg(85)(out)
    return f


# narrow plain bands around the picture (a quarter of the image or less): a meme's caption
# bands, a letterbox (black bars above and below, each a sixth of the picture's height), white
# padding left and right (each an eighth of its width), a white border (5 % of the longer side)
BANDS = {"meme": _meme, "letterbox": _bands((0, 0, 0), True, 1 / 6),
         "pillarwhite": _bands((255, 255, 255), False, 1 / 8),
         "border": _bands((255, 255, 255), False, 0.05, border=True)}


def _thumb(side: int, square: bool = False):
    """A thumbnail sent on as JPEG q85: the shorter side ``side`` px (Lanczos, the aspect kept,
    never enlarged), or ``square``: squashed to ``side`` x ``side`` whatever the aspect, as some
    avatar and gallery thumbnails are."""
    def f(img):
        w, h = img.size
        k = min(1.0, side / min(w, h))
        size = (side, side) if square else (max(1, round(w * k)), max(1, round(h * k)))
        return _jpeg(85)(img.resize(size, Image.Resampling.LANCZOS))
    return f


# thumbnails and avatars: what a platform's gallery, a chat's preview or a profile picture keeps
THUMBS = {"thumb100": _thumb(100), "thumb64": _thumb(64), "thumb40": _thumb(40),
          "square48": _thumb(48, square=True)}

PERTURBATIONS = {
    "original": None,
    "png": _png,
    "jpeg75": _jpeg(75),
    "jpeg50": _jpeg(50),
    "half": lambda img: _png(img.resize((max(1, img.width // 2), max(1, img.height // 2)),
                                       Image.Resampling.BICUBIC)),
    "blur": lambda img: _png(img.filter(ImageFilter.GaussianBlur(1.0))),
    "double": lambda img: _png(img.resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC)),
    **EDITS,
    **SCREENS,
    **PHONE,
    **CHATS,
    **STORIES,
    **TURNS,
    **BILEVEL,
    **PALETTE,
    **MEMES,
    **BANDS,
    **THUMBS,
}


def sample(root: Path, per_set: int, seed: int, sets=CORE):
    rng = random.Random(seed)
    out = {}
    for name in sets:
        rows = read_manifest(manifest(name, root), "test")
        picked = []
        for label in (0, 1):
            cls = sorted((r for r in rows if r.label == label), key=lambda r: r.path)
            picked += rng.sample(cls, min(per_set, len(cls)))
        out[name] = picked
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(data_root()))
    ap.add_argument("--per-set", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", default="robustness.json")
    ap.add_argument("--sets", default="core",
                    help="comma-separated sets, 'core' (the six original sets) or 'all' (all nine)")
    ap.add_argument("--conditions", default=",".join(k for k in PERTURBATIONS
                                                     if k not in EDITS and k not in SCREENS and k not in PHONE
                                                     and k not in TURNS and k not in CHATS and k not in STORIES
                                                     and k not in BILEVEL and k not in PALETTE
                                                     and k not in MEMES and k not in BANDS
                                                     and k not in THUMBS),
                    help="comma-separated subset of: " + ", ".join(PERTURBATIONS)
                    + "; 'edits' for the everyday edits, 'screens' for the screenshots, 'phone' for "
                      "phone screenshots with the app around the picture, 'turns' for photos on their side or "
                      "upside down, 'stories' for stories' screenshots, 'bilevel' for black-and-white "
                      "copies (dithered, thresholded), 'palette' for GIF and web-palette copies, 'memes' for "
                      "captions on white bands, 'bands' for narrow plain bands around the picture (memes, "
                      "letterboxes, padding, borders), 'thumbs' for thumbnails and squashed avatars "
                      "[default: all but those groups]")
    ap.add_argument("--faces", action="store_true", help="score as scan --faces does")
    ap.add_argument("--no-face-expert", action="store_true", help="with --faces: the network alone")
    ap.add_argument("--expert", default="auto", help="with --faces: a face expert file [default: the shipped one]")
    ap.add_argument("--no-crop", action="store_true",
                    help="score every image whole, as scans did before 2026-12-06 (a picture inside wide "
                         "plain margins is otherwise cut out, as a scan does)")
    args = ap.parse_args(argv)

    det = Detector.load(args.weights, device="cpu", workers=args.workers, faces=args.faces,
                        expert=None if args.no_face_expert else args.expert, crop=not args.no_crop)
    sets = (list(CORE) if args.sets == "core" else list(BY_NAME) if args.sets == "all"
            else [s for s in args.sets.split(",") if s])
    base = sample(Path(args.data), args.per_set, args.seed, sets)
    results = {"threshold": det.threshold, "per_set": args.per_set, "faces": args.faces,
               "face_expert": det.expert is not None, "crop": det.crop, "conditions": {}}
    groups = {"edits": ["original", *EDITS], "screens": ["original", *SCREENS], "phone": ["original", *PHONE],
              "turns": ["original", *TURNS], "stories": ["original", *STORIES],
              "bilevel": ["original", *BILEVEL], "palette": ["original", *PALETTE],
              "memes": ["original", *MEMES], "bands": ["original", *BANDS], "thumbs": ["original", *THUMBS]}
    conditions = groups.get(args.conditions) or args.conditions.split(",")
    unknown = [c for c in conditions if c not in PERTURBATIONS]
    if unknown:
        sys.exit(f"unknown conditions {unknown}; known: {', '.join(PERTURBATIONS)}")
    reports = {}
    for cond in conditions:
        fn = PERTURBATIONS[cond]
        datasets = {}
        for name, rows in base.items():
            if fn is None:
                datasets[name] = rows
            else:
                # Perturbed bytes are made here and handed to the engine as in-memory inputs.
                datasets[name] = [type(r)(fn(Image.open(r.path).convert("RGB")), r.label) for r in rows]
        rep = report(det, datasets, workers=args.workers)
        reports[cond] = rep
        results["conditions"][cond] = rep.sets
        a = rep.sets["all"] if "all" in rep.sets else rep.sets[sets[0]]  # one set: no pooled row
        print(f"{cond:<9} AUC {a['auc']:.4f}  real FPR {a['fpr']:.4f}  errors {a['errors']}", file=sys.stderr)
    # "all" pools the images each condition could score: a set that fails under one condition
    # (CIFAKE's 32 px images halved or cropped fall below the smallest input) leaves that
    # condition's pool only, so its pooled row is of other images. "common" pools the sets scored
    # whole under every condition, the same images in every row.
    common = [n for n in sets if all(r.sets[n]["errors"] == 0 for r in reports.values())]
    results["common_sets"] = common
    for rep in reports.values():
        if len(common) > 1:
            rep.sets["common"] = summarize(np.concatenate([rep.scores[n][0] for n in common]),
                                           np.concatenate([rep.scores[n][1] for n in common]), det.threshold,
                                           verdicts=np.concatenate([rep.verdicts[n] for n in common]))
    Path(args.json).write_text(json.dumps(results, indent=2, default=lambda x: None))

    paired = [n for n in names(PAIRED, core=False) if n in sets]
    rule = (f"fake at >= {det.threshold:.6f}, real below {det.real_below:.6f}" if det.three_way
            else f"threshold {det.threshold:.4f}")
    print(f"{rule}; at most {args.per_set} test images per set and class\n")
    print("| condition | " + " | ".join(f"{n} AUC" for n in paired)
          + " | all AUC | reals labelled fake (all) | fakes labelled fake (all) | uncertain (all) |")
    print("|---|" + "---|" * (len(paired) + 4))
    for cond, res in results["conditions"].items():
        cells = [f"{res[n]['auc']:.3f}" if res[n]["auc"] == res[n]["auc"] else "-" for n in paired]
        a = res["all"] if "all" in res else res[sets[0]]
        print(f"| {cond} | " + " | ".join(cells)
              + f" | {a['auc']:.3f} | {a['fpr']:.3f} | {a['tpr']:.3f} | {a['uncertain']:.3f} |")
    if len(common) > 1 and len(common) < len(sets):
        print(f"\nthe same images under every condition: the sets scored whole under all ({', '.join(common)})\n")
        print("| condition | AUC | reals labelled fake | fakes labelled fake | uncertain |\n|---|---|---|---|---|")
        for cond, res in results["conditions"].items():
            c = res["common"]
            print(f"| {cond} | {c['auc']:.3f} | {c['fpr']:.3f} | {c['tpr']:.3f} | {c['uncertain']:.3f} |")
    with_fakes = [n for n in sets if results["conditions"][conditions[0]][n].get("n_fake")]
    print("\nfakes labelled real, per set\n\n| condition | " + " | ".join(with_fakes) + " |")
    print("|---|" + "---|" * len(with_fakes))
    for cond, res in results["conditions"].items():
        print(f"| {cond} | " + " | ".join(f"{res[n]['fake_labelled_real']:.3f}" for n in with_fakes) + " |")
    with_reals = [n for n in sets if results["conditions"][conditions[0]][n].get("n_real")]
    print("\nreal images labelled fake, per source\n\n| condition | " + " | ".join(with_reals) + " |")
    print("|---|" + "---|" * len(with_reals))
    for cond, res in results["conditions"].items():
        print(f"| {cond} | " + " | ".join(f"{res[n]['fpr']:.3f}" for n in with_reals) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
