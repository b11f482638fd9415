"""Data layer: decoding images safely and turning them into model inputs.

Everything here runs in the decoding threads and in training's data-loader processes, so it
imports only PIL and numpy, never torch.
Every failure becomes an :class:`ImageError` whose message is what the user sees in the record's
``error`` field.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from fakedet.data.preprocess import INTERPOLATIONS, PreprocessConfig
from fakedet.data.sources import AVIF_BRANDS, HEIF_BRANDS, not_found_error, not_regular_error


class _FileBytes(io.BytesIO):
    """An image file's bytes, which note a read past their end once :attr:`watching` (set for
    the decode itself): Pillow's decoders read past the end of a file cut off, and only there.
    A truncated file must be reported, never silently padded with grey. Pillow reports it
    unless ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set, which pads the image instead; that
    setting is the whole process's, so fakedet leaves a host program's choice as it is and
    checks the reads itself (:data:`TRUNCATED`)."""

    watching = False
    ran_out = False

    def read(self, size: "int | None" = -1) -> bytes:
        out = super().read(size)
        if not out and size != 0 and self.watching:
            self.ran_out = True
        return out

Source = Union[str, os.PathLike, bytes, Image.Image]

# PreprocessConfig names the filter; preprocess.INTERPOLATIONS lists the names it accepts.
_RESAMPLE = {name: getattr(Image.Resampling, name.upper()) for name in INTERPOLATIONS}


class ImageError(Exception):
    """An input that cannot be scored; ``str(err)`` is the record's error message."""


def check_min_side(width: int, height: int, min_side: int) -> None:
    """Refuses an image whose shorter side is below ``min_side`` pixels: the one "too small"
    check, whichever decoder made the image."""
    if min(width, height) < min_side:
        raise ImageError(f"image too small to analyse: {width}x{height} "
                         f"(both sides must be at least {min_side} px)")


def exception_text(exc: BaseException) -> str:
    """An unexpected exception for a record's error message; some have no text of their own."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# The most bytes one image file may have: above the largest uncompressed file an image within
# PreprocessConfig's default max_pixels (80 megapixels) can need (16-bit RGBA TIFF: 640 MB).
MAX_FILE_BYTES = 1 << 30


def read_bytes(path: Union[str, os.PathLike], max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Reads a regular file whole, translating OS errors into clear messages.

    A named pipe, socket or device is refused without being opened (and, should one replace the
    file between the check and the opening, without being read: the opening does not wait for a
    pipe's writer); a file over ``max_bytes`` is refused without being read whole.
    """
    fd = None
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(not_regular_error(st.st_mode, path))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_BINARY", 0))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(not_regular_error(st.st_mode, path))
        with os.fdopen(fd, "rb") as fh:
            fd = None  # the file object closes it
            video = video_container(fh.read(_SNIFF_BYTES))  # a film is refused unread
            if video:
                raise ImageError(video_error(video))
            if st.st_size > max_bytes:
                raise ImageError(f"file too large: {st.st_size} bytes exceeds the limit of {max_bytes}")
            fh.seek(0)
            data = _read_bounded(fh, st.st_size, max_bytes)
    except FileNotFoundError:
        name = os.fspath(path) if not isinstance(path, bytes) else ""
        if re.match(r"(?i)(https?|ftp)://", name):
            raise ImageError("file not found (a web address: fakedet downloads nothing; save the image and "
                             "scan the file)") from None
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]+://", name):
            raise ImageError("file not found (a URI: --engine ray reads s3://, gs://, hdfs:// and "
                             "file:// URIs)") from None
        raise ImageError(not_found_error(path)) from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except IsADirectoryError:
        raise ImageError("is a directory") from None
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"), which no file name can hold
        raise ImageError("invalid file name (it holds a character the file system cannot encode)") from None
    except ValueError:  # the only other one open() raises: a NUL byte in the name
        raise ImageError("invalid file name (it contains a NUL byte)") from None
    finally:
        if fd is not None:
            os.close(fd)
    if not data:
        raise ImageError("empty file")
    return data


def _read_bounded(fh, size: int, max_bytes: int) -> bytes:
    """The file's bytes, ``size`` of them expected; a file that grows past ``max_bytes`` while it
    is read (or one that reports no size, as some virtual file systems do) is still bounded."""
    parts = [fh.read(size + 1)]  # +1: sees at once whether the file has grown
    total = len(parts[0])
    while total > size:  # more than fstat said: read on, in pieces, up to the limit
        if total > max_bytes:
            raise ImageError(f"file too large: more than {max_bytes} bytes")
        chunk = fh.read(min(1 << 20, max_bytes + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


# ISO-BMFF brands (sources.HEIF_BRANDS, AVIF_BRANDS): HEIF/HEIC (iPhone photos) and AVIF.
# Pillow reads AVIF itself (11.3 and later); HEIF needs the optional pillow-heif plug-in,
# registered the first time such a file turns up so that nobody pays for importing it otherwise.
_heif_lock = threading.Lock()
_heif_state: list = []  # [True] once registered, [False] when pillow-heif is missing


def _brand(data: bytes) -> bytes:
    return data[8:12] if len(data) >= 12 and data[4:8] == b"ftyp" else b""


def _register_heif() -> bool:
    with _heif_lock:
        if not _heif_state:
            try:
                import pillow_heif

                pillow_heif.register_heif_opener()
                _heif_state.append(True)
            except Exception:  # not installed, or a broken install: both mean "cannot read"
                _heif_state.append(False)
        return _heif_state[0]


def _unreadable_format(data: bytes) -> ImageError:
    brand = _brand(data)
    if brand in HEIF_BRANDS:
        if _heif_state and _heif_state[0]:
            return ImageError("corrupt or truncated HEIC/HEIF image")
        return ImageError("HEIC/HEIF image: reading it needs pillow-heif (pip install pillow-heif)")
    if brand in AVIF_BRANDS:
        from PIL import features

        if features.check("avif"):
            return ImageError("corrupt or truncated AVIF image")
        return ImageError("AVIF image: this Pillow cannot read AVIF (Pillow 11.3 or later can)")
    video = video_container(data[:_SNIFF_BYTES])
    if video:
        return ImageError(video_error(video))
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # TIFF and BigTIFF byte orders
        return ImageError("TIFF image (or camera RAW file built on TIFF) of a kind Pillow cannot read "
                          "(its compression, sample format or layout), or corrupt: convert it to PNG or JPEG")
    # a file cut off inside its header starts as an image and is not one: not "unrecognised"
    kind = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
    if kind is not None:
        return ImageError(f"corrupt or truncated image data, or a {kind} of a kind Pillow cannot read (it starts "
                          f"as a {kind} file; {GET_AGAIN})")
    return ImageError(UNRECOGNISED)


UNRECOGNISED = "not an image (unrecognised format)"
#: what to do about a file cut off or damaged in transit
GET_AGAIN = "a download or copy that did not finish, or a damaged file: get the file again"
TRUNCATED = "truncated image data (the file ends early: a download or copy that did not finish; get the file again)"
#: the first bytes of formats read, for a file Pillow cannot open (cut off inside its header);
#: long enough that no text file starts with them
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"))


_IMAGE_NAME = re.compile(rb"^[^\0\n]{1,4096}\.(jpe?g|png|webp|avif|bmp|tiff?|gif|heic|heif)$", re.IGNORECASE)


def _names_a_file(data: bytes) -> bool:
    """Whether bytes given as image data look like an image file's name (``os.fsencode(path)``),
    told from the bytes alone: the file system is not asked (a service would tell an uploader
    which paths exist on it)."""
    return len(data) <= 4096 and _IMAGE_NAME.match(data) is not None


# How many bytes of a file the video check looks at (an MPEG transport stream's second packet
# starts at byte 188).
_SNIFF_BYTES = 512

# ISO base media brands (bytes 8-12 after "ftyp") of video files, by the name people know them by.
_VIDEO_BRANDS = {
    b"qt  ": "QuickTime (MOV)", b"M4V ": "M4V", b"M4VH": "M4V", b"M4VP": "M4V",
    b"f4v ": "F4V", b"MSNV": "MP4", b"dash": "MP4 (DASH)", b"avc1": "MP4", b"mmp4": "MP4",
    b"isom": "MP4", b"mp41": "MP4", b"mp42": "MP4", b"iso2": "MP4", b"iso4": "MP4",
    b"iso5": "MP4", b"iso6": "MP4", b"XAVC": "MP4 (XAVC)", b"crx ": "Canon CRM",
}


def video_container(head: bytes) -> str:
    """The container format when ``head`` (a file's first bytes) starts a video file, else "".

    Checked before a file is read whole, so that a film of several GB is refused at once and
    with a reason, not as a file too large or an unrecognised image."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _VIDEO_BRANDS:
            return _VIDEO_BRANDS[brand]
        if brand[:3] in (b"3gp", b"3g2", b"3ge", b"3gg"):
            return "3GP"
        return ""
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"pnot"):
        return "QuickTime (MOV)"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM" if b"webm" in head[:64] else "Matroska (MKV)"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"FLV\x01":
        return "FLV"
    if head[:16] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c":
        return "ASF (WMV)"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "MPEG program stream"
    # 188-byte packets, each starting with the sync byte 0x47: "G", as GIF's "GIF8" does, so a
    # GIF is never one, and as many packets as were read must agree (a GIF's palette or an
    # image's bytes may hold 0x47 at three offsets by chance)
    if len(head) > 376 and not head.startswith(b"GIF8") \
            and all(head[i] == 0x47 for i in range(0, len(head), 188)):
        return "MPEG transport stream"
    if head[:4] == b"OggS" and b"theora" in head[:64]:
        return "Ogg (Theora)"
    return ""


def video_error(container: str) -> str:
    return (f"video files are not supported ({container} container); "
            "extract frames (for example with ffmpeg) to scan them")


def open_image(data: bytes, cfg: PreprocessConfig) -> Image.Image:
    """Decodes image bytes into an upright 8-bit RGB image.

    Handles EXIF orientation, alpha, palette, grayscale, 16-bit and CMYK images, and takes the
    first frame of animations. Dimensions are checked from the header before any pixel is
    decoded, so a decompression bomb never allocates its buffer. A PNG whose text chunk
    inflates beyond Pillow's limit, or text chunks that do together (a bomb of their own, or a
    long embedded prompt), is decoded
    without its text chunks: the pixels are what is scored, and provenance reads the text apart.
    """
    try:
        return _open_image(data, cfg)
    except ImageError as exc:
        # one chunk over Pillow's limit, or many that add up to more than its total
        if not any(w in str(exc) for w in ("MAX_TEXT_CHUNK", "MAX_TEXT_MEMORY")) \
                or not data.startswith(_PNG_SIGNATURE):
            raise
    return _open_image(_without_png_text(data), cfg)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the chunks Pillow holds to its text limits, none of which a scan uses: text, and the colour
#: profile (a calibrated display's can be over 1 MB; decoding leaves colours as stored)
_PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"iCCP")


def _without_png_text(data: bytes) -> bytes:
    """A PNG's bytes without its text chunks and colour profile (each chunk: length, type, data, CRC); what cannot
    be parsed as chunks is kept as it is, for the decoder to judge."""
    out, i = [data[:8]], 8
    while i + 12 <= len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        end = i + 12 + n
        if end > len(data):
            break
        if data[i + 4:i + 8] not in _PNG_TEXT_CHUNKS:
            out.append(data[i:end])
        i = end
    out.append(data[i:])
    return b"".join(out)


#: the most scans a progressive JPEG may have. Each of its scans is decoded over the whole image,
#: so a small file of thousands of scans holds a decoding thread for minutes (2,000 scans of a
#: 2000x2000 image: 4 s on the project's CPU); ordinary progressive JPEGs have about ten.
#: Embedded JPEGs (an EXIF thumbnail) count too, which the margin allows for.
MAX_JPEG_SCANS = 100


def too_many_scans(data: bytes) -> str:
    """The error for a JPEG with more than :data:`MAX_JPEG_SCANS` start-of-scan markers, else "".
    Reads the whole file (about 3 ms for 4 MB), so callers ask only of progressive JPEGs: a
    sequential one decodes each component once, in at most four scans."""
    scans = data.count(b"\xff\xda")  # 0xFF is stuffed in the coded data: only markers match
    return f"JPEG with too many scans: {scans} exceeds the limit of {MAX_JPEG_SCANS}" \
        if scans > MAX_JPEG_SCANS else ""


#: the formats decoded (Pillow's names): those the docs list, with DIB (a BMP without its file
#: header; a multi-picture JPEG, Pillow's MPO, is opened by the JPEG plugin and so allowed with
#: it). Pillow reads others too, some by running another program on the file (EPS through
#: Ghostscript): a file of any other format gets an error record, never a decoder outside this
#: list. HEIF is there once pillow-heif has registered it.
FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "BMP", "DIB", "TIFF", "GIF", "HEIF")


def quiet_decoders() -> bool:
    """Silences what Pillow's TIFF library prints to stderr by itself: a damaged fax's lines of
    "Fax4Decode: Bad code word at line 7", up to dozens a file and without its name (the file's
    record says what fakedet found). For the whole process, so the CLI's ``-q`` calls it and the
    API never does. Linux only (the library is found among the process's mapped files); returns
    whether it was done."""
    try:
        import ctypes

        from PIL import _imaging  # noqa: F401  (maps the libraries Pillow is linked with)

        with open("/proc/self/maps") as fh:  # each copy mapped (Pillow's own, another library's)
            paths = {line.split()[-1] for line in fh if line.rsplit("/", 1)[-1].startswith("libtiff-")
                     or line.rsplit("/", 1)[-1].startswith("libtiff.so")}
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            for name in ("TIFFSetErrorHandler", "TIFFSetWarningHandler"):
                setter = getattr(lib, name)
                setter.restype, setter.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
                setter(None)  # no handler: libtiff prints nothing
        return bool(paths)
    except (OSError, ImportError, AttributeError):
        return False


def _formats() -> list[str]:
    Image.init()  # every plugin registered (once), so that OPEN lists what this Pillow can open
    return [f for f in FORMATS if f in Image.OPEN]


def _other_format(data: bytes) -> str:
    """The name of the format Pillow finds in ``data`` outside :data:`FORMATS` (its header only,
    nothing decoded), else ""."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format or ""
    except Exception:
        return ""


#: why an image over the pixel limit is refused, and what to do: a 108- or 200-megapixel phone
#: photo is no attack, and was told "possible decompression bomb"
_LIMIT_WHY = (" (the limit guards memory against decompression bombs; to scan a camera's photo this large, "
              "crop it to the part to check: a scaled-down copy loses the fine traces the model reads)")


def _too_large(exc: Exception, cfg: PreprocessConfig) -> ImageError:
    """Pillow's refusal of an image more than twice its own pixel limit (or more than the limit,
    where warnings are errors), worded as fakedet's own
    (which comes first for smaller ones): the size, where Pillow's message gives it, and the
    limit."""
    m = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(m.group(1))} pixels exceeds" if m else "over"
    return ImageError(f"image too large: {size} the limit of {cfg.max_pixels}{_LIMIT_WHY}")


def _open_image(data: bytes, cfg: PreprocessConfig) -> Image.Image:
    if _brand(data) in HEIF_BRANDS:
        _register_heif()
    try:
        fp = _FileBytes(data)
        img = Image.open(fp, formats=_formats())
    except UnidentifiedImageError:
        other = _other_format(data)
        if other and other not in FORMATS:
            raise ImageError(f"{other} image: fakedet reads JPEG, PNG, WebP, AVIF, BMP, TIFF and GIF "
                             "(HEIC with pillow-heif); convert it to PNG or JPEG") from None
        raise _unreadable_format(data) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # (a warning: where
        # the caller's filters make warnings errors)
        raise _too_large(exc, cfg) from None
    except Exception as exc:  # PIL raises many types for garbage headers
        if "truncated" in str(exc).lower():
            raise ImageError(TRUNCATED) from None
        if "could not create decoder" in str(exc):  # WebP's words for a cut-off file
            raise ImageError(f"corrupt or truncated image data ({GET_AGAIN})") from None
        raise ImageError(f"not a readable image: {exc}") from None

    if img.format in ("JPEG", "MPO") and img.info.get("progressive"):
        problem = too_many_scans(data)
        if problem:
            raise ImageError(problem)
    w, h = img.size
    if w * h > cfg.max_pixels:
        raise ImageError(
            f"image too large: {w}x{h} = {w * h} pixels exceeds the limit of {cfg.max_pixels}{_LIMIT_WHY}"
        )
    try:
        animated = _animated(img)
        img.seek(0)
        fp.watching = True
        end = img.load_end  # the pixels are whole by then; after them a PNG reads on for chunks up
        # to its end marker, which a file may lack (and be whole all the same, as Pillow finds it)

        def load_end() -> None:
            fp.watching = False
            end()

        img.load_end = load_end
        try:
            img.load()
        finally:
            fp.watching = False
            del img.load_end  # the class's again
        if fp.ran_out:  # cut off, and decoded all the same (LOAD_TRUNCATED_IMAGES, set by a host program)
            raise ImageError(TRUNCATED)
        img = upright(img)
        rgb = to_rgb(img)
        if animated:  # only the first frame is scored: a scan says so
            rgb.info[ANIMATED] = True
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # (a warning: where
        # the caller's filters make warnings errors)
        raise _too_large(exc, cfg) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc)
        if "truncated" in msg.lower() or isinstance(exc, EOFError):
            raise ImageError(TRUNCATED) from None
        raise ImageError(f"corrupt image data: {msg}") from None
    check_size(rgb, cfg)
    return rgb


_ORIENTATION = 0x0112  # the EXIF tag (Pillow's getexif also reads it from XMP)
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
          6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def exif_turn(img: Image.Image):
    """The transposition the image's EXIF (or XMP) orientation asks for, None when none."""
    try:
        return _TURNS.get(img.getexif().get(_ORIENTATION, 1))
    except TypeError:  # a value no orientation is (unhashable)
        return None


def upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; the same image object when no turn is needed.

    ``ImageOps.exif_transpose`` returns a copy even when the orientation is normal, which for a
    12-megapixel photo is 36 MB more memory and about 15 % of its decode and preprocessing time
    (``benchmarks/bench_upright.py``), so it is called only for the seven orientations that turn
    the image.
    """
    turn = exif_turn(img)
    # the turn itself, as ``ImageOps.exif_transpose`` makes it, without rewriting the EXIF, which
    # fails on a malformed tag elsewhere in it (a negative width) and would cost a good photo
    return img if turn is None else img.transpose(turn)


# The share of an image that flat margins take from which a scan cuts out the picture inside
# them (:data:`CUT_SHARE`: narrower bands too) and, where it scores the image whole all the same
# (--no-crop, a picture too small to score alone), notes it (a phone's
# screenshot, a border, a letterbox): 175 of 180 phone screenshots drawn on a
# plain background reach it (light and dark alike) and none of the same pictures cut out, against
# 6 of 1,930 real photos (3 of 250 Unsplash portraits, on black or under a blown-out sky; 2 of
# 180 ImageNet photos, one with a white border; a StyleGAN2 set's real face)
# (experiments/frame_share.py, 2026-12-06); experiments/frame_crop.py measures what cutting it
# out does to the verdicts.
FRAME_SHARE = 0.4
#: the share of an image that plain margins take from which a scan cuts out the picture inside
#: them (:func:`picture_to_score`); below :data:`FRAME_SHARE` only bands around the picture
#: (:func:`_band_box`: a letterbox, a meme's caption bands, padding to a square, a border).
#: 0.15: on val (docs/decisions/2026-12-06-narrow-bands-around-a-picture.md, third amendment;
#: experiments/frame_crop.py --cut-share 0.15) it gave fakes in memes, letterboxes, white padding
#: and borders about half of their verdicts back (memes: 4.6 % to 15.0 % of fakes `fake`, 25 %
#: unedited), made no real photo `fake`, and changed no verdict of stories and phone screenshots
CUT_SHARE = 0.15


def scored_framed(frame: "float | None", cropped) -> bool:
    """Whether an image whose margins take ``frame`` of it (None: not measured) was scored, or
    explained, whole all the same (``cropped`` None): :attr:`fakedet.Result.framed`."""
    return cropped is None and frame is not None and frame >= FRAME_SHARE
#: whether a scan cuts the picture out of smooth margins (a story's blurred or gradient
#: backdrop) where it finds no plain ones (:func:`picture_to_score`); else it only measures them,
#: for the summary's note. False from session 53 (the finder of then found a third to a half of
#: the stories' pictures: docs/decisions/2026-12-06-the-picture-on-a-storys-backdrop.md); True
#: since session 58, with the picture found by its seams (:data:`STORY_SEAMS`): on val
#: (docs/decisions/2026-12-07-a-storys-picture-found-by-its-seams.md, experiments/frame_crop.py
#: --smooth --seams-rule) real photos labelled fake on a blurred backdrop fell from 13.8 % to
#: 3.2 % (8.8 % to 3.2 % sent on as JPEG), and no unedited image or plain-margin screenshot moved
SMOOTH_MARGINS = True
#: with smooth margins, the least share of pixels along a story's seam where the step across it
#: exceeds the margin's own slope by more than the tolerance (:func:`_step`; with
#: :data:`STORY_SEAMS` False, that differ by more than the tolerance from the margin's next to them)
SEAM = 0.5
_SMOOTH_SAMPLES = 4  # per side of each pixel of the copy read for smooth margins
#: smooth margins are looked for only on images at least this many times as high as wide: a
#: phone's screen held upright (16:9 is 1.78; a 3:2 photo held upright 1.5)
STORY_SHAPE = 1.6
# set in the info of an image decoded from an animation's first frame
ANIMATED = "fakedet.animated"


def _animated(img: Image.Image) -> bool:
    """Whether ``img`` is an animation (GIF, WebP, APNG, an AVIF sequence) with more than one
    frame, or a TIFF of several pages (a scan of several, a stack), of which only the first is
    scored; not a camera JPEG's second picture (MPO), nor a TIFF whose second page is a smaller
    copy of the first (its NewSubfileType says so: a preview). A file damaged past its first
    frame is not one: answering reads ahead, and what the first frame holds is still scored."""
    if img.format not in ("GIF", "WEBP", "PNG", "AVIF", "TIFF"):  # AVIF: an image sequence ('avis')
        return False
    try:
        if not getattr(img, "is_animated", False):
            return False
        if img.format == "TIFF":
            img.seek(1)
            return not int(img.tag_v2.get(_NEW_SUBFILE_TYPE, 0) or 0) & 1  # bit 0: a reduced-resolution copy
        return True
    except Exception:
        return False


_NEW_SUBFILE_TYPE = 254  # the TIFF tag


def _longest_run(flat: np.ndarray) -> tuple[int, int]:
    """The ``[start, end)`` of the longest run of False in ``flat`` (the first of equal ones)."""
    best, start = (0, 0), 0
    for i, f in enumerate(flat):
        if f:
            start = i + 1
        elif i + 1 - start > best[1] - best[0]:
            best = (start, i + 1)
    return best


def _grey_copy(img: Image.Image, side: int, smooth: bool) -> "tuple[float, np.ndarray]":
    """The scale ``s`` and the grey copy of ``img`` (at most ``side`` px) that
    :func:`picture_box` reads lines on."""
    s = min(1.0, side / max(img.size))
    size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
    if smooth and s < 1:
        # each pixel the mean of k x k samples of its cell (near a box filter's noise at half its
        # cost): one sample carries a JPEG's noise, which a smooth backdrop's curvature would not pass
        # (Pillow's reduce of the grey samples as floats: numpy's mean of them, a fifth of the time)
        (w, h), k = size, _SMOOTH_SAMPLES
        g = img.resize((k * w, k * h), Image.Resampling.NEAREST)
        return s, np.asarray(g.convert("L").convert("F").reduce(k), np.float32)
    g = img if s == 1 else img.resize(size, Image.Resampling.NEAREST)  # first: the grey copy is then small
    return s, np.asarray(g.convert("L"), np.int16)


def picture_box(img: Image.Image, side: int = 320, tol: int = 2, full: float = 0.97,
                smooth: bool = False, _copy=None) -> "tuple[float, tuple[int, int, int, int]] | None":
    """The picture inside ``img`` and the share of ``img`` outside it: ``(share, (left, top,
    right, bottom))`` in ``img``'s pixels, the box as ``Image.crop`` takes it. The picture is the
    largest block of rows and columns that are not flat (rows, then columns across those rows,
    then rows across those columns): a flat line has ``full`` of its pixels
    within ``tol`` grey levels of its median (a screenshot's app background, with a few words of
    text, or a plain border). Read on a copy at most ``side`` px, sampled without averaging
    (which would flatten a real backdrop's noise); the box's edges are then found again in
    ``img``'s own lines next to them, walking out from inside the picture to the first flat line
    or, with plain margins, the first within :data:`EDGE_TOL` of the margin's colour (a JPEG's
    ringing): so that no line of margin stays in and none of the picture is cut, but for a
    picture whose own edge lines are within that of the margin's colour (a pale sky on a white
    app, a dark scene on a dark one), of which a few lines (up to ``2 / scale`` px) are left out,
    or a few lines of margin kept where even its inner lines there are. An image with a run of
    lines outside the block at least half as long as the block (a photo beyond a flat band
    across it, a collage's gutter, a second picture) has no frame: ``(0.0, the whole image)``.
    None for an image under 64 px, too small to tell, or flat all over.

    With ``smooth``, for a story's screenshot (the picture on a blurred, enlarged copy of itself
    or on a gradient of its colours), a line is also plain when ``full`` of its second
    differences (its curvature) are within ``tol``, read on a copy whose pixels are each the mean
    of 4x4 samples (so that a JPEG's noise does not count). A sharp photo's smooth sky is plain
    too, so the picture must also sit as a story's does: on a screen shaped as a phone's held
    upright (at least :data:`STORY_SHAPE` times as high as wide), with margin above and below
    it, and meeting its margins at seams (:func:`_story_seams`: each edge walked out through the
    picture's own smooth lines to a step onto smooth margin, along at least :data:`SEAM` of it;
    a head or a tree rising into a smooth sky makes none), with an app's controls beyond the
    seams above and below (a photo's straight horizon has none). Otherwise no frame: ``(0.0,
    the whole image)``; an image of another shape is not read (``(0.0, the whole image)`` at
    once). ``_copy`` (for :func:`story_box` alone): :func:`_grey_copy`'s answer for the same
    ``img``, ``side`` and ``smooth``, where it was made already (read at several tolerances)."""
    if min(img.size) < 64:
        return None
    if smooth and img.height < STORY_SHAPE * img.width:  # not a phone's screen: most photos
        return 0.0, (0, 0, img.width, img.height)
    s, a = _grey_copy(img, side, smooth) if _copy is None else _copy

    def flat(lines: np.ndarray) -> np.ndarray:
        plain = (np.abs(lines - np.median(lines, axis=1, keepdims=True)) <= tol).mean(axis=1) >= full
        if smooth and lines.shape[1] > 2:  # no curvature: a blur or a gradient
            bend = lines[:, 2:] - 2 * lines[:, 1:-1] + lines[:, :-2]
            plain |= (np.abs(bend) <= tol).mean(axis=1) >= full
        return plain

    def seam(inside: np.ndarray, outside: np.ndarray) -> bool:
        return (np.abs(inside - outside) > tol).mean() >= SEAM

    # rows across the whole width, then columns across those rows only (a picture narrower than
    # the screen has margins beside it, which bars of another colour above and below it would
    # hide from whole columns), then rows again across those columns
    y0, y1 = _longest_run(flat(a))
    if y1 == y0:  # flat all over: no picture to tell from a frame
        return None
    x0, x1 = _longest_run(flat(a[y0:y1].T))
    if x1 == x0:
        return None
    y0, y1 = _longest_run(flat(a[:, x0:x1]))
    if y1 == y0:  # a picture whose every row is flat (a vertical gradient): nothing to tell
        return None
    # what lies outside the block must be margin: an app's bars, lines of text, chat bubbles and
    # avatars are runs of lines much shorter than the picture; a run at least half as long is
    # another picture (beyond a flat band across a photo, a collage's gutter, a second picture
    # on the screen): such an image has no one picture in a frame, and is scored whole.
    sides = ((flat(a[:y0]), y1 - y0), (flat(a[y1:]), y1 - y0),
             (flat(a[y0:y1, :x0].T), x1 - x0), (flat(a[y0:y1, x1:].T), x1 - x0))
    if any(np.diff(np.flatnonzero(np.concatenate(([True], side, [True])))).max(initial=1) - 1 >= extent / 2
           for side, extent in sides):
        return 0.0, (0, 0, img.width, img.height)
    if smooth and STORY_SEAMS:  # a story's picture: walk out through smooth lines to its seams
        found = _story_seams(a, (x0, y0, x1, y1), flat, tol)
        if found is None:
            return 0.0, (0, 0, img.width, img.height)
        x0, y0, x1, y1 = found
    elif smooth:  # a story's picture: backdrop above and below, and a seam at each edge with margin
        seams = y0 > 0 and y1 < a.shape[0] and seam(a[y0, x0:x1], a[y0 - 1, x0:x1]) \
            and seam(a[y1 - 1, x0:x1], a[y1, x0:x1]) \
            and (x0 == 0 or seam(a[y0:y1, x0], a[y0:y1, x0 - 1])) \
            and (x1 == a.shape[1] or seam(a[y0:y1, x1 - 1], a[y0:y1, x1]))
        if not seams:
            return 0.0, (0, 0, img.width, img.height)
    share = 1.0 - (y1 - y0) * (x1 - x0) / (a.shape[0] * a.shape[1])
    if s == 1:
        return share, (x0, y0, x1, y1)
    if share == 0.0:  # most photos: no margin at all, no edge to find again
        return share, (0, 0, img.width, img.height)
    # in img's pixels: the coarse edges, then each one found again in img's own lines, walking
    # out from two sampled lines inside the picture to the first flat line (kept where that
    # starting line is itself flat: a picture too thin to walk out of)
    W, H = img.size
    box = [min(W, int(x0 * W / a.shape[1])), min(H, int(y0 * H / a.shape[0])),
           min(W, int(np.ceil(x1 * W / a.shape[1]))), min(H, int(np.ceil(y1 * H / a.shape[0])))]
    reach = int(np.ceil(2 / s))
    coarse = list(box)
    # the margin's colour beside each edge: the copy's flat line just outside the block
    beside = (a[y0:y1, x0 - 1] if x0 > 0 else None, a[y0 - 1, x0:x1] if y0 > 0 else None,
              a[y0:y1, x1] if x1 < a.shape[1] else None, a[y1, x0:x1] if y1 < a.shape[0] else None)
    for edge in range(4):
        vertical = edge in (0, 2)  # left and right edges are columns
        n = W if vertical else H
        lo, hi = max(0, coarse[edge] - reach), min(n, coarse[edge] + reach)
        if hi <= lo:
            continue
        # the margin's colour beside this edge, where plain margins are read (not a story's)
        margin = np.median(beside[edge]) if EDGE_TOL and not smooth and beside[edge] is not None else None
        # with EDGE_START, the window reaches ``reach`` lines further in (not past the opposite
        # edge), to start from where the first line inside is margin (see EDGE_START)
        deeper = reach if EDGE_START and margin is not None else 0
        if edge < 2:
            top = max(hi, min(n, hi + deeper, coarse[edge + 2]))
            bottom = lo
        else:
            top = hi
            bottom = min(lo, max(0, lo - deeper, coarse[edge - 2]))
        strip = (img.crop((bottom, coarse[1], top, coarse[3])) if vertical
                 else img.crop((coarse[0], bottom, coarse[2], top)))
        lines = np.asarray(strip.convert("L"), np.int16)
        lines = lines.T if vertical else lines
        fl = flat(lines)
        near = None
        if margin is not None:
            # a JPEG's ringing: lines of margin next to the picture that its blocks have stirred
            # beyond ``tol``, still within EDGE_TOL of the margin's colour, end the walk too
            near = (np.abs(lines - margin) <= EDGE_TOL).mean(axis=1) >= full
            fl = fl | near
        # the walk starts from the window's inner end (index ``first``); where that line is
        # margin (``near``) and EDGE_START is on, from the first line further in that is not
        first = hi - 1 - bottom if edge < 2 else lo - bottom
        inward = range(first, len(fl)) if edge < 2 else range(first, -1, -1)
        start = first
        if fl[first]:
            if not deeper or not near[first]:  # a flat line of the picture's own: kept as found
                continue
            start = next((i for i in inward if not near[i]), None)
            if start is None:
                continue
        # out from the start line (itself kept, flat or not) to the first flat line
        walk = range(start - 1, -1, -1) if edge < 2 else range(start + 1, len(fl))
        stop = next((i for i in walk if fl[i]), None)
        if edge < 2:
            box[edge] = bottom + (0 if stop is None else stop + 1)
        else:
            box[edge] = bottom + (len(fl) if stop is None else stop)
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return share, tuple(box)


#: where plain margins are read (not a story's smooth ones), :func:`picture_box` walks each edge
#: of the picture out only to the first line of margin within this many grey levels of the
#: margin's colour on ``full`` of its pixels, not only to the first flat one: a screenshot sent on
#: as a JPEG has lines of ringing next to the picture, which the box kept (a few px, and past a
#: line of text just below the picture). 0: off (until session 60). 16: on val
#: (docs/decisions/2026-12-07-a-pictures-edges-in-a-jpeg-screenshot.md, experiments/frame_crop.py
#: --edges-rule) fakes labelled fake in screenshots sent on as JPEG rose from 222 to 227 of 960,
#: their mean AUC from 0.795 to 0.800, and no real image was labelled fake that was not before
EDGE_TOL = 16
#: where the first line inside a picture's coarse edge is flat (the small copy's edge fell on a
#: line of a JPEG's ringing, so that the window read never reached the picture: its box kept a
#: few lines of margin, found by a fuzzing review in session 62), :func:`picture_box` starts its walk
#: from the first line further in that is not within EDGE_TOL of the margin's colour, up to
#: ``2 / scale`` lines further (so up to ``4 / scale`` from the coarse edge); only where plain
#: margin lies beside that edge, and never past a flat line of the picture's own. False: the walk
#: starts only from the window's inner end, as until session 62
#: (docs/decisions/2026-12-07-a-pictures-edges-in-a-jpeg-screenshot.md, "Amendment": not shipped,
#: one fake fewer labelled fake on each kind of phone screenshot on val)
EDGE_START = False


#: find a story's picture by walking out from the lines that are not smooth, through smooth
#: lines, to a step at each edge (:func:`_story_seams`), not by a seam at those lines' own ends
#: (False: the finder of sessions 53-57, which missed pictures whose own edges are smooth)
STORY_SEAMS = True
#: the share of a story's rows at the top and at the bottom of the screen where the app's
#: controls (a line that is not smooth) must lie beyond the picture's seams (:func:`_story_seams`)
STORY_CONTROLS = 0.1


def _step(inside: np.ndarray, outside: np.ndarray, beyond: np.ndarray, tol: int) -> bool:
    """Whether the line ``inside`` meets ``outside`` at a seam: in at least :data:`SEAM` of the
    pixels the step between them exceeds by more than ``tol`` the step from ``outside`` to the
    line ``beyond`` it (a backdrop's own slope, which a blur or a gradient has too)."""
    return ((np.abs(inside - outside) - np.abs(outside - beyond)) > tol).mean() >= SEAM


def _story_seams(a: np.ndarray, box, flat, tol: int) -> "tuple[int, int, int, int] | None":
    """The picture of a story's screenshot in the grey copy ``a``, from ``box`` (the block of
    lines that are not smooth): each edge walked out through smooth lines (a smooth picture's own
    sky or wall, an enlarged small picture) to the first step (:func:`_step`) onto two smooth
    lines of margin. Above and below the picture a seam must be found before a line that is not
    smooth or the image's edge, and the app's controls (a line that is not smooth: a name, a reply
    box) must lie in the outer :data:`STORY_CONTROLS` of the rows beyond it (a photo's straight
    horizon under a plain sky has none); beside it, a picture that reaches the screen's side
    without one fills the width. None where a seam or the controls above or below are missing."""
    x0, y0, x1, y1 = box
    h, w = a.shape

    def walk(lines: np.ndarray, i: int, go: int, edge):
        """From the block's first line ``i`` (walking back, ``go`` -1) or the first line after it
        (``go`` +1), the picture's first line, or the first line after it: ``edge`` where the walk
        meets the image's edge, or a line that is not smooth, without a seam."""
        fl = flat(lines)
        n = len(lines)
        while True:
            if go < 0:  # the picture's first line i, the margin's last i - 1, beyond it i - 2
                if i < 2 or not (fl[i - 1] and fl[i - 2]):
                    return edge
                if _step(lines[i], lines[i - 1], lines[i - 2], tol):
                    return i
            else:  # the picture's last line i - 1, the margin's first i, beyond it i + 1
                if i + 1 >= n or not (fl[i] and fl[i + 1]):
                    return edge
                if _step(lines[i - 1], lines[i], lines[i + 1], tol):
                    return i
            i += go

    top = walk(a[:, x0:x1], y0, -1, None)
    bottom = walk(a[:, x0:x1], y1, +1, None)
    if top is None or bottom is None:
        return None
    k = max(1, int(h * STORY_CONTROLS))
    bare = STORY_CONTROLS and (flat(a[:min(k, top)]).all() or flat(a[max(h - k, bottom):]).all())
    if bare and not STORY_FILL:
        return None  # no app's controls around it: a photo's straight horizon, not a story's seam
    left, right = walk(a[top:bottom].T, x0, -1, 0), walk(a[top:bottom].T, x1, +1, w)
    if bare and _fill_likeness(a, (left, top, right, bottom)) < STORY_FILL:
        return None  # nor a fill: the margins are not the picture enlarged
    return left, top, right, bottom


#: a story's picture without an app's controls above and below it (an edit that fills a phone's
#: frame with a blurred copy of the picture, as a video editor exports it) is taken where the
#: margins' coarse shading correlates at least this much with the picture's own, enlarged to
#: cover the frame (:func:`_fill_likeness`); 0: never (an app's controls are asked for)
STORY_FILL = 0.0
_FILL_CELL = 8  # px of the grey copy per cell compared


def _fill_likeness(a: np.ndarray, box) -> float:
    """How much the margins above and below the picture ``box`` of the grey copy ``a`` look like
    a blurred copy of the picture filling the frame: the correlation, over cells of
    :data:`_FILL_CELL` px wholly in those margins, between their mean grey and that of the
    picture enlarged to cover the frame (centred, as a fill is made); -1 where too few cells, or
    either side is flat. A photo's plain sky above a scene is not its scene enlarged."""
    x0, y0, x1, y1 = box
    h, w = a.shape
    if x1 - x0 < 2 or y1 - y0 < 2:
        return -1.0
    pic = Image.fromarray(np.ascontiguousarray(a[y0:y1, x0:x1], dtype=np.float32), "F")
    k = max(w / pic.width, h / pic.height)
    W, H = max(w, round(pic.width * k)), max(h, round(pic.height * k))
    big = np.asarray(pic.resize((W, H), Image.Resampling.BILINEAR), np.float32)
    left, top = (W - w) // 2, (H - h) // 2
    c = _FILL_CELL
    rows, cols = h // c, w // c

    def cells(x: np.ndarray) -> np.ndarray:
        return x[:rows * c, :cols * c].reshape(rows, c, cols, c).mean(axis=(1, 3))

    ys = np.arange(rows) * c
    margin = (ys + c <= y0) | (ys >= y1)
    fill, seen = cells(big[top:top + h, left:left + w])[margin].ravel(), cells(a)[margin].ravel()
    if fill.size < 8 or fill.std() < 1e-6 or seen.std() < 1e-6:
        return -1.0
    return float(np.corrcoef(fill, seen)[0, 1])


#: the tolerances (grey levels) at which a story's smooth margins are looked for, each in turn
#: where the one before finds no picture (:func:`story_box`). (2,): a story sent on as a JPEG of
#: quality 70-80, as messengers send screenshots on, has blocks whose curvature a blurred
#: backdrop's lines do not pass at 2, and (2, 3, 4) found most of those pictures on val, but
#: failed its rule (docs/decisions/2026-12-07-stories-sent-on-as-jpeg.md: stories sent on at
#: q85 ranked worse, AUC 0.768 to 0.754), and a review found it cut grainy upright photos with a
#: plain sky or wall between busy bands as stories
STORY_TOLS = (2,)


#: where a scan finds no story's picture to cut out (:data:`STORY_TOLS`), smooth margins are
#: looked for again at these tolerances (:func:`story_box`), and one found is only noted: the
#: image is scored whole, as before, and named with those that have wide margins
#: (:attr:`fakedet.Result.framed`: "crop it to the picture and scan again"): about half of the
#: stories sent on as a JPEG, which the scan misses, on val. No score changes. Since session 59
#: (docs/decisions/2026-12-07-stories-sent-on-as-jpeg.md, "A note where the cut fails")
STORY_NOTE_TOLS = (3, 4)


def story_box(img: Image.Image, tols: "tuple[int, ...] | None" = None,
              memo: "dict | None" = None) -> "tuple[float, tuple[int, int, int, int]] | None":
    """A story's picture in smooth margins: :func:`picture_box` with ``smooth`` at each of
    ``tols`` (None: :data:`STORY_TOLS`) in turn, the first answer whose margins take at least
    :data:`FRAME_SHARE` of ``img``; else the first tolerance's answer. The grey copy read is made
    once, and kept in ``memo`` (a dict) for another call on the same ``img``."""
    if min(img.size) < 64 or img.height < STORY_SHAPE * img.width:  # too small, not a phone's screen
        return picture_box(img, smooth=True)
    memo = {} if memo is None else memo
    if "copy" not in memo:
        memo["copy"] = _grey_copy(img, 320, True)
    first = None
    for i, tol in enumerate(STORY_TOLS if tols is None else tols):
        found = picture_box(img, tol=tol, smooth=True, _copy=memo["copy"])
        if found is not None and found[0] >= FRAME_SHARE:
            return found
        if i == 0:
            first = found
            if found is None:  # flat all over: flat at every looser tolerance too
                return found
    return first


def picture_to_score(img: Image.Image, cfg: PreprocessConfig) -> "tuple[float | None, list[int] | None]":
    """:func:`_picture_to_score`; where it scores the whole image and names no wide margins, a
    story's picture looked for at :data:`STORY_NOTE_TOLS` and found gives the share of its
    smooth margins, so that the image is named (:func:`scored_framed`), still scored whole."""
    memo: dict = {}  # the story finder's grey copy of img, made once
    share, box = _picture_to_score(img, cfg, memo)
    if box is None and not scored_framed(share, box) and STORY_NOTE_TOLS:
        try:
            noted = story_box(img, STORY_NOTE_TOLS, memo)
        except Exception:  # noqa: BLE001
            noted = None
        if noted is not None and noted[0] >= FRAME_SHARE:
            return noted[0], None
    return share, box


def _picture_to_score(img: Image.Image, cfg: PreprocessConfig,
                      memo: "dict | None" = None) -> "tuple[float | None, list[int] | None]":
    """``(share, box)``: the share of ``img`` that plain margins take (:func:`picture_box`; where
    they take less than :data:`FRAME_SHARE`, smooth margins (:func:`story_box`) if those take
    more: a story's backdrop; None where it cannot be told), and the box ``[left, top, right, bottom]`` of the
    picture inside them that a scan scores instead of the whole image, or None to score the whole
    image: the margins take less than :data:`CUT_SHARE`, or less than :data:`FRAME_SHARE` and
    are not bands around the picture (:func:`_band_box`, which cuts only the sides that are: not
    a strip of photo beyond a flat line across it, nor a story's upper backdrop), or the picture
    inside them is smaller than ``cfg``'s preprocessing needs (its smallest input, and a texture
    patch), or the margins are smooth and :data:`SMOOTH_MARGINS` is False. Never raises: a
    measurement that fails gives ``(None, None)``, as a note must never cost an image its record."""
    try:
        found = picture_box(img)
        if found is None or found[0] < FRAME_SHARE:  # a story's smooth backdrop, then
            smooth = story_box(img, memo=memo)
            if smooth is not None and smooth[0] >= FRAME_SHARE:
                if not SMOOTH_MARGINS:  # measured (a scan notes it), not cut out
                    return smooth[0], None
                found = smooth
        narrow = found is not None and CUT_SHARE <= found[0] < FRAME_SHARE
        bands = _band_box(img, found[1]) if narrow else None
    except Exception:  # noqa: BLE001
        return None, None
    if found is None:
        return None, None
    share, box = found
    if narrow:
        if bands is None:
            return share, None
        box = bands
        if box[3] - box[1] >= STORY_SHAPE * (box[2] - box[0]):  # a story's screen inside bars?
            try:
                inner = story_box(img.crop(tuple(box)))
            except Exception:  # noqa: BLE001
                inner = None
            if inner is not None and inner[0] >= FRAME_SHARE:
                _, (il, it, ir, ib) = inner
                share = 1.0 - (ir - il) * (ib - it) / (img.width * img.height)  # of the whole image
                if not SMOOTH_MARGINS:  # measured (a scan notes it), not cut out
                    return share, None
                box = [box[0] + il, box[1] + it, box[0] + ir, box[1] + ib]
    left, top, right, bottom = box
    if share < CUT_SHARE or min(right - left, bottom - top) < max(cfg.min_size, cfg.patch_size):
        return share, None
    return share, [left, top, right, bottom]


#: a margin narrower than :data:`FRAME_SHARE` is a band that a scan cuts off only where at least
#: this share of its pixels lie within :data:`BAND_TOL` grey levels of its edge line's median (a
#: letterbox's bars, padding and borders all; a meme's caption band most, beside its lines of
#: text), not a strip of photo beyond a flat line across it or a collage's second picture
BAND_PLAIN = 0.6
BAND_TOL = 8
#: on an image shaped as a phone's screen, the bands above and below the picture must each be at
#: least this share of the other's height (a letterbox's, a meme's), not a story's thin flat top
#: and the rest of its backdrop below
BAND_BALANCE = 1 / 3


def _band_box(img: Image.Image, box, side: int = 320, tol: int = 2, full: float = 0.97) -> "list[int] | None":
    """The box that a scan cuts out of margins narrower than :data:`FRAME_SHARE` around ``box``
    (:func:`picture_box`'s), keeping each side's margin that is not a band: a side is cut only
    where the image's own edge line there is flat (as :func:`picture_box` reads lines, on a copy
    at most ``side`` px sampled without averaging) and the margin is plain (:data:`BAND_PLAIN`):
    bars, padding, borders and caption bands run to the edge, while a picture's own flat edge
    (a portrait's plain backdrop inside black bars), a strip of photo beyond a flat line, or a
    collage's second picture do not; of such a margin only the flat lines of the edge's colour
    next to the edge are cut (a bar, a border). On an image shaped as a phone's screen held upright
    (:data:`STORY_SHAPE`), bands must be cut both above and below the picture, neither less than
    :data:`BAND_BALANCE` of the other (a story's upper backdrop read as a band above its picture
    otherwise). None where nothing is cut, or what is cut takes less than :data:`CUT_SHARE`
    (docs/decisions/2026-12-06-narrow-bands-around-a-picture.md, second and third amendments)."""
    W, H = img.size
    s = min(1.0, side / max(img.size))
    g = img if s == 1 else img.resize((max(1, round(W * s)), max(1, round(H * s))), Image.Resampling.NEAREST)
    a = np.asarray(g.convert("L"), np.int16)
    h, w = a.shape
    left, top, right, bottom = box
    x0, y0 = int(left * w / W), int(top * h / H)
    x1, y1 = int(np.ceil(right * w / W)), int(np.ceil(bottom * h / H))
    # each margin beside the box only (not the corners, which belong to the bands beside it too)
    sides = ((0, left > 0, a[:, 0], a[y0:y1, :x0]), (1, top > 0, a[0], a[:y0, x0:x1]),
             (2, right < W, a[:, -1], a[y0:y1, x1:]), (3, bottom < H, a[-1], a[y1:, x0:x1]))
    out = [0, 0, W, H]
    for i, margin, edge, region in sides:
        if not margin or region.size == 0:
            continue
        colour = np.median(edge)
        if (np.abs(edge - colour) <= tol).mean() < full:
            continue  # no band runs to this edge
        if (np.abs(region - colour) <= BAND_TOL).mean() >= BAND_PLAIN:
            out[i] = box[i]
            continue
        # not a band as a whole (a picture's own flat edge, a strip of photo, a second picture):
        # only the plain lines of the edge's colour next to the edge: up to the last such line
        # sampled (the copy's line k is the image's line (k + 0.5) * r, rounded down), so that a
        # line of band may stay and none of the picture goes
        lines = region if i in (1, 3) else region.T
        if i in (2, 3):
            lines = lines[::-1]
        plain = ((np.abs(lines - colour) <= tol).mean(axis=1) >= full)
        n = int(np.argmin(plain)) if not plain.all() else len(plain)
        if n == 0:
            continue
        r, size = (W / w, w) if i in (0, 2) else (H / h, h)
        out[i] = min(box[i], int((n - 0.5) * r) + 1) if i < 2 else max(box[i], int((size - n + 0.5) * r))
    if H >= STORY_SHAPE * W:
        above, below = out[1], H - out[3]
        if min(above, below) <= 0 or min(above, below) < BAND_BALANCE * max(above, below):
            return None
    if 1.0 - (out[2] - out[0]) * (out[3] - out[1]) / (W * H) < CUT_SHARE:
        return None
    return out


def frame_share(img: Image.Image, side: int = 320, tol: int = 2, full: float = 0.97) -> "float | None":
    """The share of ``img`` outside its picture (:func:`picture_box`), or None where it cannot be
    told."""
    found = picture_box(img, side, tol, full)
    return None if found is None else found[0]


def to_rgb(img: Image.Image) -> Image.Image:
    """Converts any PIL mode to 8-bit RGB; transparent areas are composited onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "I" and arr.size and arr.max() > 65535:
            # 32-bit integers beyond 16 bits' range have no standard white: stretched to their
            # own range, as floating-point images are (they were clipped to white above 65535;
            # a constant image stays white)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.full_like(arr, 255.0)
        elif mode == "F":
            finite = np.isfinite(arr)
            if not finite.any():
                raise ImageError("a floating-point image with no finite pixel value (only NaN or infinity)")
            lo, hi = float(arr[finite].min()), float(arr[finite].max())
            # an infinite pixel is the brightest or darkest finite value, NaN the darkest: one of
            # them must not flatten the whole range
            arr = np.where(finite, arr, np.where(arr > 0, hi, lo))
            arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        elif mode.startswith("I;16") or arr.max() > 255:
            arr = arr / 257.0  # 65535 -> 255
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        if mode == "La":  # premultiplied: Pillow converts it to RGBA only by way of LA
            img = img.convert("LA")
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def check_size(img: Image.Image, cfg: PreprocessConfig) -> None:
    w, h = img.size
    check_min_side(w, h, cfg.min_size)
    if w * h > cfg.max_pixels:
        raise ImageError(f"image too large: {w}x{h} = {w * h} pixels exceeds the limit of {cfg.max_pixels}{_LIMIT_WHY}")
    check_colours(img)


#: the most colours an image may have and get no score: the model reads a photo's colours and
#: fine texture, and an image of one colour has neither, while a black-and-white one (a 1-bit
#: scan, a dithered "bitmap" copy, line art) has a texture no photo has: 87 % of real test
#: photos dithered to black and white were labelled `fake` (``experiments/robustness.py
#: --conditions bilevel``, results/2026-12-06)
FEW_COLOURS = 2
ONE_COLOUR = "one colour only (a blank image): nothing for the model to score"
TWO_COLOURS = ("two colours only (a 1-bit scan, a dithered copy, line art, a flat graphic): the model reads "
               "photos and cannot score it")


BLACK_AND_WHITE = ("black-and-white dots only (a dithered copy, a 1-bit scan): the model reads photos and cannot "
                   "score it")
#: grey levels counted as black (below the first) and white (above the second), the share of an
#: image's pixels that must be in them, and the least share of each: a dithered copy sent on as
#: a JPEG (86 % of real test photos so made were labelled `fake`) has many colours but all near
#: black or white (docs/decisions/2026-12-06-black-and-white-images-get-no-score.md)
BW_LEVELS, BW_SHARE, BW_EACH = (48, 207), 0.98, 0.05
BW_SAMPLE = 256  # the longest side of the sample read (nearest neighbour: no grey made by averaging)
#: ... and dithered: the share of the sample's pixels, near black or white, next to one of the
#: other (above, below, left or right). A dark photo with white bands (a meme's captions, a white
#: letterbox, a collage's gutters) or a hard silhouette on a pale sky is black and white in large
#: areas that meet only along their edges: at most 0.12 of the pixels, where dithered copies
#: have 0.235 or more (train images; the decision record's second amendment)
BW_MIXED = 0.17


def check_colours(rgb: Image.Image) -> None:
    """Refuses an RGB image of :data:`FEW_COLOURS` colours or fewer (quick on a photo: Pillow
    stops counting at the third colour it meets): no picture to score anywhere in it."""
    found = rgb.getcolors(FEW_COLOURS)
    if found is not None:
        raise ImageError(ONE_COLOUR if len(found) == 1 else TWO_COLOURS)


def check_picture_colours(img: Image.Image, box) -> None:
    """Refuses the picture a scan scores (``box`` of ``img``, from :func:`picture_to_score`, or
    the whole image where None) when it is almost all black and white (:func:`black_and_white`).
    Read on the picture, not the whole image: a dark photo in a light app's screenshot is black
    and white with its margins, and is scored cut out."""
    if black_and_white(img, box):
        raise ImageError(BLACK_AND_WHITE)


def black_and_white(rgb: Image.Image, box=None) -> bool:
    """Whether the image (its ``box`` ``[left, top, right, bottom]`` where given: read in place,
    not copied) is dithered black and white: :data:`BW_SHARE` of its pixels near black or white
    (:data:`BW_LEVELS`), :data:`BW_EACH` of them each, and :data:`BW_MIXED` of them next to one
    of the other, read on a nearest-neighbour sample."""
    left, top, right, bottom = box if box is not None else (0, 0, *rgb.size)
    w, h = right - left, bottom - top
    s = min(1.0, BW_SAMPLE / max(w, h))
    small = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.NEAREST,
                       box=(left, top, right, bottom)).convert("L")
    hist = small.histogram()
    n = sum(hist)
    dark, light = sum(hist[: BW_LEVELS[0]]) / n, sum(hist[BW_LEVELS[1] + 1 :]) / n
    if dark + light < BW_SHARE or min(dark, light) < BW_EACH:
        return False
    g = np.asarray(small)
    d, li = g < BW_LEVELS[0], g > BW_LEVELS[1]
    mixed = np.zeros_like(d)
    for a, b in ((d, li), (li, d)):  # a pixel of one next to a pixel of the other
        mixed[:, 1:] |= a[:, 1:] & b[:, :-1]
        mixed[:, :-1] |= a[:, :-1] & b[:, 1:]
        mixed[1:] |= a[1:] & b[:-1]
        mixed[:-1] |= a[:-1] & b[1:]
    return float(mixed.mean()) >= BW_MIXED


def source_bytes(source: Source) -> "bytes | None":
    """The file bytes of a path or bytes source (None for a PIL image, which has none)."""
    if isinstance(source, Image.Image):
        return None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageError("empty input")
        return data
    return read_bytes(source)


def load(source: Source, cfg: PreprocessConfig, data: "bytes | None" = None) -> Image.Image:
    """Any supported source (path, bytes, PIL image) -> upright RGB PIL image; ``data``: the
    source's bytes when already read (:func:`source_bytes`)."""
    if isinstance(source, Image.Image):
        img = upright(source)
        rgb = to_rgb(img)
        check_size(rgb, cfg)
        return rgb
    try:
        return open_image(source_bytes(source) if data is None else data, cfg)
    except ImageError as exc:
        if (isinstance(source, (bytes, bytearray, memoryview)) and str(exc) == UNRECOGNISED
                and _names_a_file(bytes(source))):
            raise ImageError(f"{UNRECOGNISED}: these bytes look like a file's name, and bytes are read as "
                             "the image itself; pass a name as a str or a Path") from None
        raise


def patch_origins(width: int, height: int, cfg: PreprocessConfig) -> list[tuple[int, int]]:
    """Deterministic top-left corners of the texture patches, spread on a grid over the image."""
    p, k = cfg.patch_size, cfg.num_patches
    rows = max(1, int(np.floor(np.sqrt(k))))
    cols = int(np.ceil(k / rows))
    xs = np.linspace(0, max(0, width - p), cols + 2)[1:-1] if cols > 0 else [0]
    ys = np.linspace(0, max(0, height - p), rows + 2)[1:-1]
    grid = [(int(round(x)), int(round(y))) for y in ys for x in xs]
    # If the grid has more cells than patches, keep an evenly spaced subset.
    idx = np.linspace(0, len(grid) - 1, k).round().astype(int)
    return [grid[i] for i in idx]


def preprocess(
    img: Image.Image, cfg: PreprocessConfig, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Turns an RGB image into the model's inputs, both uint8 and channels-first.

    Returns:
        ``(view, patches)``: the whole image resized to ``global_size`` square, shape
        ``(3, G, G)``, and ``num_patches`` native-resolution crops, shape ``(K, 3, P, P)``.
        With ``rng`` the patch positions are random (training); without, a fixed grid.
    """
    g, p = cfg.global_size, cfg.patch_size
    w, h = img.size
    check_min_side(w, h, p)
    view = img.resize((g, g), _RESAMPLE[cfg.interpolation], reducing_gap=3.0)
    view_arr = np.asarray(view, dtype=np.uint8).transpose(2, 0, 1)

    if rng is None:
        origins = patch_origins(w, h, cfg)
    else:
        xs = rng.integers(0, w - p + 1, cfg.num_patches)
        ys = rng.integers(0, h - p + 1, cfg.num_patches)
        origins = list(zip(xs.tolist(), ys.tolist()))
    # Crop patch by patch: converting a 12-megapixel image to one array would copy all of it.
    patches = np.stack(
        [np.asarray(img.crop((x, y, x + p, y + p)), dtype=np.uint8) for x, y in origins]
    ).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(view_arr), np.ascontiguousarray(patches)
