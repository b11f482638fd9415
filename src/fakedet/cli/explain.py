"""CLI layer: ``fakedet explain``, one PNG per image showing where the model's evidence lies.

The computation is :mod:`fakedet.inference.explain` (occlusion sensitivity of the scan's own
score); this module draws it with Pillow alone: the picture, the heatmap over it, each face's
box and score, a colour bar, the verdict, p_fake and the thresholds.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import click

from fakedet._parts import new_part, remove_stale_parts
from fakedet.cli.common import (
    CONTEXT,
    EXIT_OK,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    err,
    interrupt_status,
    interrupt_word,
    load_errors_exit,
    settled,
    stdin_binary,
    stdout,
)
from fakedet.cli.options import DeviceType, crop_option, face_expert_option, weights_option
from fakedet.evaluation.verdicts import threshold_text

EXAMPLES = """\b
Examples:
  fakedet explain photo.jpg -o explained/      writes explained/photo.explain.png
  fakedet explain --no-faces --grid 12 a.jpg b.png -o out/
  fakedet explain -w my.safetensors photos/ -o out/
"""

# ----------------------------------------------------------------------------- drawing
#: the picture's longest side in the PNG: scaled down to at most MAX_SIDE, small images up to MIN_SIDE
MAX_SIDE, MIN_SIDE = 1024, 512
#: the PNG is at least this wide, so that the legend fits under a narrow picture
MIN_WIDTH = 640
#: height of the legend band under the picture
BAND = 244
BACKGROUND = (28, 28, 28)
TEXT = (235, 235, 235)
DIM = (170, 170, 170)
#: face boxes: a colour the heat map never takes, cyan (magenta, its red and blue's mix, was lost
#: on red cells; a green reads as "fine")
FACE_COLOUR = (0, 230, 255)
FACE_WIDTH = 3
#: opacity of the hottest cell; a cell's opacity grows with the size of its heat
MAX_ALPHA = 160
VERDICT_COLOURS = {"fake": (240, 80, 60), "uncertain": (240, 190, 60), "real": (90, 160, 240)}
#: what each verdict means, under it in the legend (``fakedet info`` says it at more length)
MEANINGS = {"fake": "the model found evidence of manipulation or generation: look closer, not proof",
            "uncertain": "real photos of some sources score here too, and so do most fakes",
            "real": "no evidence found: not proof that the image is genuine (fakes get this verdict too)"}

# A diverging colour map for signed heat, -1 (blue: hiding the cell raises p_fake) to +1 (red:
# hiding it lowers p_fake): Moreland's "cool to warm", a perceptually ordered map (its lightness
# rises evenly to the neutral middle and falls evenly again), sampled at five points.
_COOLWARM = ((59, 76, 192), (141, 176, 254), (221, 221, 221), (244, 154, 123), (180, 4, 38))


def colour(v: float) -> tuple[int, int, int]:
    """The colour map at ``v`` in [-1, 1] (clipped): linear between the five anchors."""
    t = (min(1.0, max(-1.0, float(v))) + 1.0) / 2.0 * (len(_COOLWARM) - 1)
    i = min(int(t), len(_COOLWARM) - 2)
    f = t - i
    a, b = _COOLWARM[i], _COOLWARM[i + 1]
    return tuple(int(round(x + (y - x) * f)) for x, y in zip(a, b))


def display_scale(width: int, height: int) -> float:
    """How much the picture is scaled in the PNG: its longest side becomes at most
    :data:`MAX_SIDE`, and at least :data:`MIN_SIDE` (small images are enlarged)."""
    long = max(width, height)
    return min(MAX_SIDE, max(long, MIN_SIDE)) / long


def figure_size(width: int, height: int) -> tuple[int, int]:
    """The PNG's size for an image of ``width`` x ``height``: the scaled picture above a legend
    band of :data:`BAND` px, at least :data:`MIN_WIDTH` wide."""
    s = display_scale(width, height)
    return max(MIN_WIDTH, round(width * s)), round(height * s) + BAND


def picture_origin(width: int, height: int) -> tuple[int, int]:
    """Where the scaled picture's top-left corner lies in the PNG (centred horizontally)."""
    s = display_scale(width, height)
    return (figure_size(width, height)[0] - round(width * s)) // 2, 0


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: scalable
    except TypeError:
        return ImageFont.load_default()


#: fonts with more than ASCII that systems commonly have (Linux, macOS, Windows), for a file name
#: Pillow's own font would draw as boxes ("Group chat \u00fcn\u00efcode"); the CJK ones for
#: Korean, Japanese and Chinese names (Debian's fonts-nanum and fonts-noto-cjk, Windows' Malgun
#: Gothic, Meiryo and YaHei, macOS's Apple SD Gothic Neo and Hiragino)
_WIDE_FONTS = ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "LiberationSans-Regular.ttf", "NotoSansCJK-Regular.ttc",
               "NanumGothic.ttf", "malgun.ttf", "AppleSDGothicNeo.ttc", "Arial Unicode.ttf", "Arial.ttf",
               "arial.ttf", "segoeui.ttf", "msgothic.ttc", "meiryo.ttc", "msyh.ttc", "Hiragino Sans GB.ttc")
#: words in a font file's name that mark a style other than the plain one
_STYLED = ("bold", "italic", "oblique", "light", "thin", "black", "heavy", "extra", "semi", "medium", "mono")


@functools.lru_cache(maxsize=64)
def _truetype(name: str, size: int):
    """The font file ``name`` (a file name Pillow searches its font folders for, or a path) at
    ``size``, or None where the system has none of that name (each name is looked for once)."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype(name, size)
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=64)
def _fontconfig_files(letters: frozenset) -> tuple:
    """Font files that fontconfig (most Linux and BSD systems) lists as drawing every one of
    ``letters``, plain styles first: the fonts a system has beyond :data:`_WIDE_FONTS` (a
    Korean name drawn as boxes while fonts-nanum was installed). Empty without ``fc-list``."""
    import shutil
    import subprocess

    exe = shutil.which("fc-list")
    if exe is None or not letters:
        return ()
    charset = " ".join(f"{ord(ch):x}" for ch in sorted(letters))
    try:
        out = subprocess.run([exe, "--format", "%{file}\n", f":charset={charset}"], capture_output=True,
                             text=True, timeout=10, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return ()
    files = sorted({f for f in out.splitlines() if f.lower().endswith((".ttf", ".ttc", ".otf"))})
    return tuple(sorted(files, key=lambda f: any(w in os.path.basename(f).lower() for w in _STYLED)))


def _name_font(size: int, text: str):
    """The font to draw ``text`` (a file name) in: Pillow's own for ASCII, else the first of
    :data:`_WIDE_FONTS` the system has (Pillow searches its font folders) that draws every letter
    of it, else the first font fontconfig lists as drawing them all, else the font that draws
    most of them, else Pillow's own. A letter a font lacks is drawn as its "missing" glyph, the
    one it draws for a code point no font has."""
    if text.isascii():
        return _font(size)
    letters = frozenset(ch for ch in text if not ch.isascii() and ch.isprintable())
    def candidates():  # fontconfig is asked only when no font of the list draws every letter
        yield from _WIDE_FONTS
        yield from _fontconfig_files(letters)[:4]

    best, best_has = None, -1
    for name in candidates():
        font = _truetype(name, size)
        if font is None:
            continue
        missing = bytes(font.getmask("\U0010fffd"))  # a private code point: the missing glyph
        has = sum(bytes(font.getmask(ch)) != missing for ch in letters)
        if has == len(letters):
            return font
        if has > best_has:
            best, best_has = font, has
    return best if best is not None else _font(size)


def _fmt_p(p: float) -> str:
    """A probability as the scan's records print it (:func:`fakedet.data.writers.score_text`)."""
    from fakedet.data.writers import score_text

    return score_text(p)


def fit_from_the_end(text: str, width, room: float) -> str:
    """``text``, or the longest end of it that fits after an ellipsis (``width(t) <= room``; ""
    when not even the ellipsis and the last character fit): a path too long loses its start, and
    the file's name is the last of it to go. A binary search: a few measurements however long."""
    if width(text) <= room:
        return text
    lo, hi = 0, len(text) - 1  # characters kept: lo fits (0 stands for ""), hi + 1 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if width("\u2026" + text[-mid:]) <= room:
            lo = mid
        else:
            hi = mid - 1
    return "\u2026" + text[-lo:] if lo else ""


def caption(path: str) -> str:
    """A path as drawn on one line: its text as given, but control characters (a newline, a tab,
    an escape) as ``\\n``, ``\\t``, ``\\xHH`` and bytes that are not UTF-8 as ``\\xHH``;
    backslashes (Windows paths) stay single."""
    from fakedet.data.writers import control_escape, utf8_text

    return control_escape(utf8_text(path).replace("\t", "\\t").replace("\n", "\\n"))


def render(img, ex, name: str = "", stamp: "tuple[str, ...]" = ()):
    """The figure for the RGB PIL image ``img`` and its :class:`~fakedet.inference.explain.Explanation`:
    a PIL RGB image of :func:`figure_size`. ``stamp``: up to two lines at the legend's foot that
    say what made it and from what (:func:`stamp_lines`)."""
    from PIL import Image, ImageDraw

    w, h = img.size
    s = display_scale(w, h)
    dw, dh = max(1, round(w * s)), max(1, round(h * s))  # a 70000x32 strip keeps a 1 px side
    fw, fh = figure_size(w, h)
    ox, oy = picture_origin(w, h)
    # enlarged a whole number of times or more: nearest neighbour, so pixels stay pixels
    resample = Image.Resampling.NEAREST if s >= 2 else Image.Resampling.LANCZOS
    pic = img.resize((dw, dh), resample).convert("RGBA")

    heat = ex.heat
    vmax = float(abs(heat).max()) if heat.size else 0.0
    overlay = Image.new("RGBA", (dw, dh), (0, 0, 0, 0))
    od = ImageDraw.Draw(overlay)
    if vmax > 0:
        for r in range(heat.shape[0]):
            for c in range(heat.shape[1]):
                v = float(heat[r, c]) / vmax
                alpha = int(round(MAX_ALPHA * abs(v)))
                if alpha == 0:
                    continue
                x0, x1 = round(ex.xs[c] * s), round(ex.xs[c + 1] * s)
                y0, y1 = round(ex.ys[r] * s), round(ex.ys[r + 1] * s)
                if x1 > x0 and y1 > y0:
                    od.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(*colour(v), alpha))
    pic = Image.alpha_composite(pic, overlay).convert("RGB")

    fig = Image.new("RGB", (fw, fh), BACKGROUND)
    fig.paste(pic, (ox, oy))
    d = ImageDraw.Draw(fig)
    small, big = _font(14), _font(22)

    boxes = []
    for face in ex.faces or []:  # every box first, then the labels over them
        x0, y0, x1, y1 = (round(v * s) for v in face.box)
        boxes.append((ox + x0, oy + y0, ox + max(x0, x1 - 1), oy + max(y0, y1 - 1)))
        d.rectangle(boxes[-1], outline=FACE_COLOUR, width=FACE_WIDTH)
    placed: list = []  # the face labels drawn so far: none may hide another
    for i, (face, box) in enumerate(zip(ex.faces or [], boxes)):
        text = f"face {i + 1}: p_fake {_fmt_p(face.p_fake)}  (detector {face.confidence:.2f})"
        tw, th = _text_size(d, text, small)
        tx = min(max(box[0], 0), max(0, fw - tw - 4))
        ty = _label_row(box, th + 4, tx, tw + 4, placed, top=oy, bottom=oy + dh)
        placed.append((tx, ty, tx + tw + 4, ty + th + 4))
        d.rectangle(placed[-1], fill=(0, 0, 0))
        d.text((tx + 2, ty + 1), text, fill=FACE_COLOUR, font=small)
    # what a scan's summary would say of the image, on the picture's lower left corner (the
    # legend's lines are full)
    notes = [text for flag, text in ((getattr(ex, "animated", False), "only the first frame of an animation"),
                                     (getattr(ex, "framed", False), "wide margins, explained whole: crop it"))
             if flag]
    if notes:
        text = "; ".join(notes)
        tw, th = _text_size(d, text, small)
        box = (ox, oy + max(0, dh - th - 6), ox + tw + 6, oy + max(0, dh - th - 6) + th + 6)
        d.rectangle(box, fill=(0, 0, 0))
        d.text((box[0] + 3, box[1] + 2), text, fill=VERDICT_COLOURS.get("uncertain", TEXT), font=small)

    # ---- the legend band: every line fits in MIN_WIDTH
    x, y = 10, dh + 8
    # in face mode, which scan gives this score (an editor put it beside a report's, from a scan
    # without --faces, and found them different for every portrait)
    mode = "   (scan --faces)" if ex.faces is not None else ""
    by = " (provenance)" if ex.label_by == "evidence" else ""
    verdict = f"{ex.label.upper()}{by}   p_fake {_fmt_p(ex.p_fake)}{mode}"
    d.text((x, y), verdict, fill=VERDICT_COLOURS.get(ex.label, TEXT), font=big)
    meaning = MEANINGS.get(ex.label, "")
    if ex.label_by == "evidence":
        meaning = "the file's provenance evidence (metadata, watermark) says it was made by AI"
    if name:
        room = fw - (x + _text_size(d, verdict, big)[0] + 30)
        font = _name_font(14, name)
        name = fit_from_the_end(name, lambda t: _text_size(d, t, font)[0], room)
        if name:
            d.text((fw - 10 - _text_size(d, name, font)[0], y + 6), name, fill=DIM, font=font)
    y += 30
    d.text((x, y), f"{ex.label}: {meaning}", fill=TEXT, font=small)
    y += 20
    fake_at, real_below = ex.cutoffs
    which = "face-mode" if ex.faces else "whole-image"
    if real_below < fake_at:
        rule = f"fake at >= {threshold_text(fake_at)}, real below {threshold_text(real_below)}, " + (
            "framed: not fake by p_fake" if getattr(ex, "framed", False) else "uncertain in between")
    else:
        rule = f"fake at >= {threshold_text(fake_at)}, else real"
    if ex.label_by == "evidence":
        rule = f"verdict from provenance evidence, not p_fake ({which} fake threshold {threshold_text(fake_at)})"
    else:
        rule = f"{rule} ({which} thresholds)"
    d.text((x, y), rule, fill=TEXT, font=small)
    y += 20
    if ex.faces is None:
        faces = "faces not looked for"
    elif not ex.faces:
        faces = "no face found"
    else:
        n = len(ex.faces)
        faces = (f"{n} face box{'es' if n > 1 else ''}, scored " + ("with the face expert" if ex.face_expert
                                                                    else "on the crop"))
    what = "picture inside margins" if getattr(ex, "cropped", None) else "whole image"
    d.text((x, y), f"heatmap: {what}, p_fake {_fmt_p(ex.p_whole)}; {faces}", fill=TEXT, font=small)
    y += 24

    # colour bar, -vmax .. 0 .. +vmax
    bar_w, bar_h = 256, 14
    bar = Image.new("RGB", (bar_w, bar_h))
    bd = ImageDraw.Draw(bar)
    for i in range(bar_w):
        bd.line((i, 0, i, bar_h - 1), fill=colour(i / (bar_w - 1) * 2 - 1))
    fig.paste(bar, (x, y))
    d.rectangle((x - 1, y - 1, x + bar_w, y + bar_h), outline=DIM)
    # below the fake threshold, red cells raised a score that stayed short of it: an editor shown
    # a real portrait's PNG (p_fake 0.0004) read red on the face as a sign of manipulation
    short = getattr(ex, "p_whole", math.nan) < getattr(ex, "whole_fake_at", math.nan)
    d.text((x + bar_w + 12, y - 1), "red: raised the score (still below fake)    blue: lowered it" if short
           else "red: raised the score    blue: lowered it", fill=TEXT, font=small)
    ty = y + bar_h + 2
    size = bar_label(vmax)
    for label, at in ((f"-{size}", 0.0), ("0", 0.5), (f"+{size}", 1.0)):
        tw = _text_size(d, label, small)[0]
        d.text((x + min(max(0, round(at * bar_w - tw / 2)), bar_w - tw), ty), label, fill=DIM, font=small)
    y = ty + 22
    d.text((x, y), "heat: how far the score falls when the cell is hidden (log-odds, scaled to this image); not proof",
           fill=TEXT, font=small)
    y += 20
    fill = "mean-colour" if ex.fill == "mean" else "blurred"
    d.text((x, y), f"occlusion of the whole-image score: {ex.grid}x{ex.grid} cells, {fill} fill",
           fill=DIM, font=small)
    if differs_from_a_plain_scan(ex):  # the verdict a scan without --faces prints beside this one
        d.text((x, y + 20), f"a scan without --faces says {ex.whole_label} (the whole image by the whole-image "
               "thresholds)", fill=DIM, font=small)
    elif ex.faces and ex.label == "uncertain" and ex.label_by == "model" and ex.p_fake < real_below:
        # face mode: `real` needs every score below its threshold, the whole image's included
        d.text((x, y + 20), f"not real: every score must be below {threshold_text(real_below)}, and the whole "
               f"image's is {_fmt_p(ex.p_whole)}", fill=DIM, font=small)
    y += 40
    for line in stamp[:2]:
        d.text((x, y), line, fill=DIM, font=small)
        y += 18
    return fig


def differs_from_a_plain_scan(ex) -> bool:
    """Whether face mode's verdict (explain's default) differs from the one a scan without
    ``--faces`` gives the same file (the whole image's), so that both are said: a persona put
    scan's 'uncertain' beside explain's 'REAL' for one file."""
    whole = getattr(ex, "whole_label", None)
    return whole is not None and whole != ex.label and ex.label_by == "model"


@functools.lru_cache(maxsize=8)
def _file_sha256(path) -> str:
    """A weights file's SHA-256, read once a run (as the HTML report's; "" when unknown)."""
    from fakedet.cli.htmlreport import _weights_sha256

    return _weights_sha256(path)


def stamp_lines(info: dict) -> tuple[str, str]:
    """The legend's foot, from :func:`stamp_info`'s dict: what made the PNG and when, and the
    SHA-256 of the image explained and of the weights (their first 16 hex digits; the PNG's text
    chunks hold them whole), so that a PNG shown later can be tied to its file and model."""
    def short(h):
        return f"{h[:16]}..." if h else "unknown"
    version = info["fakedet:version"]
    version = version if len(version) <= 16 else f"{version[:13]}..."  # a development build's long one
    first = f"fakedet {version}, {info['fakedet:created']}; image sha256 {short(info['fakedet:image-sha256'])}"
    second = f"weights sha256 {short(info['fakedet:weights-sha256'])}"
    if info.get("fakedet:face-expert-sha256"):
        second += f"; face expert sha256 {short(info['fakedet:face-expert-sha256'])}"
    return first, second


def stamp_info(det, ex) -> dict:
    """What an explain PNG records of how it was made, as its PNG text chunks (each ``fakedet:``
    key): the version, the time (UTC), the SHA-256 of the bytes explained (``ex.sha256``: those
    read once and scored, whatever the file holds later) and of the weights (and of the face
    expert, where it scored a face), the verdict and p_fake."""
    import datetime

    from fakedet._version import __version__

    expert = getattr(det, "expert", None)
    info = {"fakedet:version": __version__,
            "fakedet:created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fakedet:image-sha256": getattr(ex, "sha256", None) or "",
            "fakedet:weights-sha256": _file_sha256(getattr(det, "weights_path", None)),
            "fakedet:label": ex.label, "fakedet:p_fake": repr(ex.p_fake)}
    if getattr(ex, "whole_label", None) is not None:  # face mode: what a scan without --faces says
        info["fakedet:whole-image-label"] = ex.whole_label
        info["fakedet:p_whole"] = repr(ex.p_whole)
    if getattr(ex, "face_expert", False) and expert is not None and len(expert) > 2:
        info["fakedet:face-expert-sha256"] = _file_sha256(expert[2])
    return info


def _text_size(draw, text: str, font) -> tuple[int, int]:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    return x1 - x0, y1 - y0


#: the PNG text chunk that marks a file as an explain PNG (Software, as other tools set it)
MARK = ("Software", "fakedet explain")


def made_by_explain(path) -> bool:
    """Whether ``path`` is a PNG this command wrote (its :data:`MARK`): one that a later run may
    replace, and that a folder walk does not explain again. Reads only the file's first chunks."""
    import stat

    from PIL import Image

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a named pipe would block the open
            return False
        with Image.open(path) as im:
            return im.format == "PNG" and im.info.get(MARK[0]) == MARK[1]
    except Exception:
        return False


def bar_label(vmax: float) -> str:
    """The colour bar's end value: two decimals, as real photos' heat needs (0.8 to 3.4 in
    log-odds); a near-flat image's tiny heat keeps two significant digits (not ±0.00)."""
    return f"{vmax:.2f}" if vmax >= 0.01 or vmax == 0 else f"{vmax:.2g}"


def _typed_as(target: Path, typed: set) -> bool:
    """Whether ``target`` is one of the input paths typed (``typed``: their absolute paths),
    under that name or through a link."""
    return os.path.abspath(target) in typed or any(
        os.path.exists(t) and os.path.samefile(t, target) for t in typed if os.path.basename(t) == target.name)


def output_name(path: str, used: set) -> str:
    """The PNG's file name for the input ``path``: ``<stem>.explain.png``, with ``-2``, ``-3``...
    after the stem when an earlier input of this run already took the name."""
    stem = Path(path).stem if path not in ("-", "") else "stdin"
    stem = _fit(stem or "image", NAME_MAX - len(b"-99999.explain.png"))
    name, n = f"{stem}.explain.png", 1
    while name.lower() in used:  # case-insensitive file systems see A.png and a.png as one
        n += 1
        name = f"{stem}-{n}.explain.png"
    used.add(name.lower())
    return name


NAME_MAX = 255  # bytes in one file name, on Linux, macOS and Windows alike


def _save_whole(fig, target: Path, mark) -> None:
    """Writes the PNG under a hidden temporary name beside ``target``, then renames it: a command
    stopped mid-write (Ctrl-C, SIGTERM, a full disk) leaves no cut-off PNG under the name (one
    killed outright leaves its temporary file, which the next run in the folder removes:
    :func:`remove_stale_parts`). The file is created with mode 0666 less the umask, as ``open``
    would create the PNG itself."""
    fd, tmp = new_part(target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.save(fh, "PNG", pnginfo=mark)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fit(stem: str, limit: int) -> str:
    """``stem`` cut, character by character, to at most ``limit`` bytes as the file system
    stores it: a long input name must not make its PNG's name too long to write."""
    while len(os.fsencode(stem)) > limit:
        stem = stem[:-1]
    return stem


def _label_row(box, h: int, x: int, w: int, placed: list, top: int, bottom: int) -> int:
    """The top of a face's label, ``h`` high and ``w`` wide at ``x``: above its box when there is
    room, else below it, moved down past any label already ``placed`` that it would cover, and
    always inside the picture (``top`` to ``bottom``): when no free row is left there, at the top
    of its own box, over whatever lies there."""
    y = box[1] - h - 2 if box[1] - h - 2 >= top else box[3] + 3

    def covered(y):  # the labels a label at row y would cover
        return [r for r in placed if x < r[2] and r[0] < x + w and y < r[3] and r[1] < y + h]

    while (under := covered(y)) and y + h <= bottom:
        y = max(r[3] for r in under) + 1
    if y + h > bottom:
        y = max(top, min(box[1] + 2, bottom - h))
    return y


# ----------------------------------------------------------------------------- the command
@click.command(context_settings=CONTEXT, epilog=EXAMPLES,
               short_help="Draw where the model's evidence lies: one PNG per image.")
@click.argument("paths", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder for the PNGs (created when missing); one <name>.explain.png per image.")
@weights_option
@click.option("-d", "--device", type=DeviceType(), default="auto", show_default=True,
              help="auto (GPU when present), cpu, cuda or cuda:N.")
@click.option("--faces/--no-faces", default=True, show_default=True,
              help="Find faces (MTCNN), draw each one's box and score it as scan --faces does "
                   "(fused with the face expert); p_fake and the verdict are scan --faces's. The "
                   "heatmap explains the whole image's score (p_whole), the network's.")
@face_expert_option
@click.option("--grid", type=click.IntRange(2, 32), default=10, show_default=True,
              help="Heatmap cells per side: grid x grid occluded copies are scored, so the time "
                   "grows with its square.")
@click.option("--no-provenance", "no_provenance", is_flag=True,
              help="Do not read provenance metadata or watermarks: the verdict drawn is then the "
                   "model's alone, as in scan --no-provenance.")
@crop_option
def explain(paths, out_dir, weights, device, faces, face_expert, grid, no_provenance, crop):
    """Draw where the model's evidence lies in each image: one PNG per IMAGE.

    Each PNG shows the picture with a heatmap over it, the faces found with their boxes
    and scores, a colour bar, the verdict and what it means, p_fake and the thresholds,
    and, to tie it to its image and model later, the SHA-256 of the bytes explained and of
    the weights (whole in the PNG's text chunks, fakedet:*). IMAGE is a file, a
    folder (searched for image files as scan searches it by default: hidden files and
    folders skipped, no -E) or '-' for stdin; the path of each PNG written goes to stdout.

    The heatmap is occlusion sensitivity: each cell of a grid is hidden in turn (filled
    with the image's mean colour) and the image scored again by the same model and
    preprocessing as scan; a cell's heat is how much hiding it lowers the log-odds of
    'fake' (red: evidence for fake; blue: hiding it raises p_fake). It explains the
    whole-image score; each face's own score is on its box. A cell is one part of the
    evidence, not proof: see docs/explain.md for how to read it and its limits.

    \b
    Exit status:
      0  every image was explained
      2  usage error, no images found, unusable weights or device, or the PNGs
         cannot be written
      3  some inputs could not be read (the others were still written)
      130 interrupted (Ctrl-C); 143 terminated (SIGTERM); 129 hung up
          (SIGHUP); the PNGs already written are kept
      70 internal error (a bug or a broken install; a traceback on stderr)
    """
    from fakedet.data.decode import ImageError, exception_text
    from fakedet.data.sources import WalkFilter, iter_items
    from fakedet.data.writers import tsv_escape
    from fakedet.inference.explain import explain as explain_one
    from fakedet.inference.stream import load_detector

    ctx = click.get_current_context()
    if list(paths).count("-") > 1:
        raise click.UsageError("'-' (stdin) can be given only once")
    if out_dir == "":
        raise click.BadParameter("needs a folder name ('.' for this one)", param_hint="--output")
    out = stdout()
    try:
        os.makedirs(out_dir, exist_ok=True)
    except FileExistsError:  # a file, or a device (/dev/null), by that name
        err(f"cannot write into {out_dir}: it is not a folder (-o names the folder the explanations go to)")
        ctx.exit(EXIT_USAGE)
    except OSError as exc:
        err(f"cannot create the output folder {out_dir}: {exc.strerror or exc}")
        ctx.exit(EXIT_USAGE)
    remove_stale_parts(out_dir)
    if not face_expert and not faces:
        err("warning: --no-face-expert has no effect without --faces")
    # face search is explain's default: the way round a broken torchvision is to turn it off
    with load_errors_exit(ctx, "; fakedet explain --no-faces explains without face mode" if faces else ""):
        det = load_detector(weights, device=device, faces=faces, workers=0, provenance=False,
                            expert="auto" if face_expert else None, crop=crop)  # faces scored as a scan does

    status = EXIT_OK
    used: set = set()

    def on_empty(path: str) -> None:  # a warning, as in scan; nothing at all to explain is an error
        err(f"warning: no image files found in {tsv_escape(path)}")

    from PIL.PngImagePlugin import PngInfo

    typed = {os.path.abspath(p) for p in paths if p != "-"}
    earlier = 0  # explain PNGs met in a folder walk, and skipped
    attempted = 0  # inputs explained or reported as unreadable
    written = 0  # PNGs written
    unlisted = 0  # folders that could not be listed (an error record each, but no image)
    filt = WalkFilter()  # what the folder walks skipped: here, the images reached a second time
    try:
        for item in iter_items(paths, stdin=stdin_binary(), on_empty=on_empty, filt=filt):
            if (item.error is None and isinstance(item.source, str) and item.path.endswith(".explain.png")
                    and os.path.abspath(item.path) not in typed and made_by_explain(item.path)):
                earlier += 1  # an earlier run's output in a folder being explained: not an input
                continue
            attempted += 1
            unlisted += item.folder
            if item.error is not None:
                err(f"{tsv_escape(item.path)}: {item.error}")
                status = EXIT_UNREADABLE
                continue
            try:
                img, ex = explain_one(det, item.source, grid=grid, provenance=not no_provenance)
            except ImageError as exc:
                err(f"{tsv_escape(item.path)}: {exc}")
                status = EXIT_UNREADABLE
                continue
            except MemoryError:
                err(f"{tsv_escape(item.path)}: out of memory")
                status = EXIT_UNREADABLE
                continue
            except Exception as exc:  # one bad image must not stop the others
                err(f"{tsv_escape(item.path)}: cannot explain: {exception_text(exc)}")
                status = EXIT_UNREADABLE
                continue
            if ex.animated:  # as a scan's summary says
                err(f"{tsv_escape(item.path)}: an animation or a file of several pages: only its first frame or "
                    "page was explained")
            if differs_from_a_plain_scan(ex):
                err(f"{tsv_escape(item.path)}: {ex.label} in face mode (scan --faces); a scan without --faces "
                    f"says {ex.whole_label}")
            if ex.framed:
                err(f"{tsv_escape(item.path)}: wide margins (an app's, or a story's blurred or gradient backdrop) "
                    "explained whole: crop it to the picture and explain again")
            target = Path(out_dir) / output_name(item.path, used)
            # a file there that this command did not write (an input of this run, say, when -o is
            # the folder being explained), or an earlier PNG named as an input of this run (read
            # later, perhaps), is never replaced: the PNG takes the next free name
            while os.path.lexists(target) and (not made_by_explain(target) or _typed_as(target, typed)):
                target = Path(out_dir) / output_name(item.path, used)
            try:
                # the path as given, so that two files of one name in two folders can be told apart
                stamp = stamp_info(det, ex)
                fig = render(img, ex, caption(item.path), stamp_lines(stamp))
            except Exception as exc:  # one picture that cannot be drawn must not stop the others
                err(f"{tsv_escape(item.path)}: cannot draw its explanation: {exception_text(exc)}")
                status = EXIT_UNREADABLE
                continue
            chunks = PngInfo()
            chunks.add_text(*MARK)
            for key, value in stamp.items():
                chunks.add_itxt(key, value)  # international text: a value need not be Latin-1
            # the path as given, whole (the caption cuts a long one, and a font may lack its letters)
            chunks.add_itxt("fakedet:path", os.fsencode(item.path).decode("utf-8", "backslashreplace"))
            try:
                _save_whole(fig, target, chunks)
            except OSError as exc:
                err(f"cannot write {tsv_escape(str(target))}: {exc.strerror or exc}")
                ctx.exit(EXIT_USAGE)
            click.echo(tsv_escape(str(target)), file=out)  # one line each, as scan's records
            out.flush()
            written += 1
    except KeyboardInterrupt as exc:
        settled()
        err(interrupt_word(exc))
        ctx.exit(interrupt_status(exc))
    if earlier:
        err(f"skipped {earlier} PNG{'s' if earlier != 1 else ''} an earlier explain wrote "
            "(name one to explain it)")
    settled()
    if not attempted:
        err("no images found")
        ctx.exit(EXIT_USAGE)
    # the count, as scan's summary gives it: a folder of 40 PNGs for 42 photos must not look whole
    failed, twice = attempted - written - unlisted, filt.skipped_twice
    err(f"{written} PNG{'s' if written != 1 else ''} written to {tsv_escape(str(out_dir))}"
        + (f"; {failed} image{'s' if failed != 1 else ''} could not be explained (named above)" if failed else "")
        + (f"; {unlisted} folder{'s' if unlisted != 1 else ''} could not be read (named above)" if unlisted else "")
        + (f"; {twice} image{'s' if twice != 1 else ''} reached a second time through a folder, explained once"
           if twice else ""))
    ctx.exit(status)
