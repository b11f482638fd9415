"""Data layer: reading the invisible watermark that Stable Diffusion's own code embeds.

Three messages are looked for, all embedded with invisible-watermark's ``dwtDct`` method
(``imwatermark``, https://github.com/ShieldMnt/invisible-watermark):

* SD 1.x reference scripts (CompVis/stable-diffusion ``scripts/txt2img.py``): the 17 bytes
  ``"StableDiffusionV1"`` (136 bits), ``set_watermark('bytes', ...)``, on the image converted to
  cv2's BGR order.
* SD 2.x reference scripts (Stability-AI/stablediffusion ``scripts/txt2img.py``, its gradio and
  streamlit demos, the x4 upscaler demo): the 4 bytes ``"SDV2"`` (32 bits), the same way.
  (Not ``"StableDiffusionV1"``: the 2.x scripts changed the message.)
* SDXL (Stability-AI/generative-models ``WatermarkEmbedder`` and diffusers'
  ``StableDiffusionXLWatermarker``, on by default whenever invisible-watermark is installed):
  the fixed 48-bit ``WATERMARK_MESSAGE = 0xB3EC907BB19E``, ``set_watermark('bits', ...)``, on
  the decoded image scaled to 0-255 as float32. The channel order differs by version:
  generative-models since July 2023 (PR #25) and diffusers since PR #7013 (2024) pass BGR;
  diffusers' SDXL pipelines before that passed RGB where the encoder expects BGR. Both orders
  are read. diffusers skips images
  narrower than 256 px; the encoder itself refuses images under 256x256 = 65,536 pixels.

Much generated output carries none of these marks: diffusers' SD 1.x/2.x pipelines, the
common web UIs, Midjourney, DALL-E, SD 3 and Flux embed none of them.
Only a found mark is reported.

The mark is fragile. It lives in the chroma (U) channel, in 8x8-pixel blocks counted from the
top-left corner, each carrying one bit by the remainder of a value divided by 36. Measured on
57 images marked in the tests' way (40 of them Unsplash photos), it is found in 89% (SD 1.x),
51% (SD 2.x) and 30-40% (SDXL) of clean, unmodified outputs (the scheme loses bits on smooth
images), and in none after JPEG re-compression at quality 90 or 75 or a 0.5x resize: the bits
then agree with the message no better than chance. Cropping the left or top edge, or the right
edge by any amount, loses it too. So an absent mark says nothing.

The decoder here reproduces ``imwatermark``'s ``dwtDct`` decoder bit for bit (the tests compare
the two) with numpy instead of a Python loop over blocks, because imwatermark's own costs
50 ms per 512 px image and 1.5 s per 12 MP photo for each message and channel order (four
decodes here), and because importing ``imwatermark`` imports torch, which this layer must not.
It needs only OpenCV (for the exact colour conversion the encoder used) and numpy; the
``watermark`` extra installs invisible-watermark, which brings OpenCV and pins the algorithm.

Cost on a shared 2-core AMD EPYC: about 10 ms for 512x512, 30 ms for 1024x1024 and 200 ms for
a 12 MP photo (all three messages, both channel orders for SDXL). :func:`worth_reading` is a
cheap gate on the image size for callers who want to spend that only on images that can carry it.

Thread-safe: no state is shared between calls (imwatermark's ``WatermarkDecoder`` holds only
the message type and length and builds a fresh ``EmbedMaxDct`` per ``decode`` call, so it too
could be shared; nothing of it is used here at run time). Memory is bounded by working in
strips of rows (about 50 MB per call for a 4000 px wide image).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

from fakedet.data import jpeg

MISSING = "reading the Stable Diffusion watermark needs the watermark extra: pip install 'fakedet[watermark]'"

# imwatermark's dwtDct (imwatermark/maxDct.py, EmbedMaxDct with its defaults): scales [0, 36, 36]
# with `for channel in range(2)`, so only channel 1 (U of cv2's YUV) carries the mark; the
# 4x4 blocks of the Haar LL band (8x8 pixels each) take the message bits in turn, row by row.
_SCALE = 36
_BLOCK = 4
# The encoder refuses, and the decoder cannot read, images under 256x256 pixels in area.
MIN_PIXELS = 256 * 256
# Image rows per strip (a multiple of 8, so strips hold whole blocks).
_STRIP_ROWS = 512


def _bytes_bits(text: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(text, dtype=np.uint8)).astype(bool)


# generative-models scripts/demo/streamlit_helpers.py and diffusers' watermark.py.
SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110


@dataclass(frozen=True)
class _Message:
    label: str           # what the evidence names
    bits: np.ndarray     # bool, the embedded bits in order
    threshold: int       # matching bits needed to call it found
    orders: tuple        # channel orders it was embedded in (see _ORDER_NOTES)


# How the image (RGB here) was ordered when the mark went in: "bgr", cv2's order, as the
# reference scripts and current SDXL code do; "rgb", RGB passed as if BGR, as diffusers' SDXL
# pipelines did before PR #7013 (2024).
_ORDER_NOTES = {"bgr": "", "rgb": ", embedded in RGB order as diffusers' SDXL pipelines did before 2024"}

# Thresholds. On an image that carries no mark the decoded bits agree with a message only by
# chance: if each bit were a fair coin, the count of agreeing bits would be Binomial(n, 1/2),
# and the chance of a false match per image P(X >= threshold):
#   SD 1.x, n = 136, threshold 104 (tolerates 32 wrong bits): 2.2e-10
#   SD 2.x, n = 32,  threshold 31  (tolerates 1 wrong bit):   7.7e-9
#   SDXL,   n = 48,  threshold 42  (tolerates 6 wrong bits):  5.0e-8 per channel order, 1.0e-7 for both
# in all about 1.1e-7 per image: one false match in some 9 million unmarked images.
# Real unmarked images are not fair coins: smooth chroma makes many blocks vote 0, so their bits
# lean towards 0 (in the extreme a flat image reads all zeros, which agrees with 68/136, 19/32
# and 21/48 bits). Taking the bits as independent but leaning either way with any probability p,
# the worst p gives 2.2e-10, 1.4e-8 and 7.4e-8 (p = 0.5, 0.60, 0.42), about 1.6e-7 per image in
# all; a fully biased reading never reaches a threshold, since each exceeds both the count of
# 0s and of 1s in its message. Measured on 4,925 real images (ImageNet photos, Unsplash
# portraits, FaceForensics++ and StyleGAN2 face sets, SD 1.5 fine-tune outputs that carry no
# mark) and 380 synthetic ones (flat, gradients, noise, checkerboards, stripes, shapes
# and text), the highest agreements seen were 90/136, 24/32 and 36/48 (34/48 in RGB order): the
# real tails are thinner than the binomial's. Stability AI's own detector (generative-models
# scripts/demo/detect.py) reports "very likely watermarked" from 36 of 48 bits, having seen no
# real image above 35 among 10,000; 42 is stricter, at the cost of missing marked images that
# read 36-41 (common: the scheme loses bits even on a clean, unmodified output).
_MESSAGES = (
    _Message("SD 1.x reference scripts", _bytes_bits(b"StableDiffusionV1"), 104, ("bgr",)),
    _Message("SD 2.x reference scripts", _bytes_bits(b"SDV2"), 31, ("bgr",)),
    _Message("SDXL", np.array([int(b) for b in bin(SDXL_MESSAGE)[2:]], dtype=bool), 42, ("bgr", "rgb")),
)


_available: "bool | None" = None
_available_lock = threading.Lock()


def available() -> bool:
    """Whether the watermark extra (invisible-watermark, and OpenCV with it) is installed.
    Checks without importing anything, once: asked again while another thread imports OpenCV
    (to read a mark), ``find_spec("cv2")`` can fail on the half-made module, and an image
    scored then got a record saying the extra is missing (a scan's records differed from run
    to run)."""
    global _available
    if _available is None:
        with _available_lock:
            if _available is None:
                try:
                    _available = (importlib.util.find_spec("imwatermark") is not None
                                  and importlib.util.find_spec("cv2") is not None)
                except (ImportError, ValueError):
                    _available = False
    return _available


def worth_reading(width: int, height: int, max_side: int = 2048) -> bool:
    """A cheap gate: whether an image of this size could still carry the watermark as
    generated, so that a caller short of time reads only those.

    True when the image has at least 256x256 pixels in area, both sides are multiples of 8
    (Stable Diffusion's outputs always are: its latents are 1/8 of the image) and neither side
    exceeds ``max_side``. What it misses: an output cropped at the bottom or right edge to a
    side that is not a multiple of 8 (the mark survives a bottom crop and is lost by a right
    crop anyway), and images above ``max_side``: SD 2.x's x4 upscaler demo marks its
    2048-3072 px outputs, and SDXL can be run above 2048 px. Camera photos (4000x3000,
    4032x3024) also have sides that are multiples of 8; the size cap is what skips them.
    """
    return (width * height >= MIN_PIXELS and width % 8 == 0 and height % 8 == 0
            and max(width, height) <= max_side)


def stored_losslessly(data: bytes) -> bool:
    """Whether a file's bytes keep the mark as it was embedded: PNG, BMP, TIFF or lossless
    WebP, or a JPEG saved at quality 100 (every quantisation step 1 or 2). The mark is lost by
    JPEG re-compression from quality 95 down (see the module docstring), so reading it in an
    ordinary JPEG or lossy WebP would cost time and could not find it. Reads only the header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:2] == b"BM" or data[:4] in (b"II*\0", b"MM\0*"):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":  # the first image chunk: VP8L is lossless
        i = 12
        while i + 8 <= len(data):
            fourcc, size = data[i:i + 4], int.from_bytes(data[i + 4:i + 8], "little")
            if fourcc in (b"VP8L", b"VP8 "):
                return fourcc == b"VP8L"
            i += 8 + size + (size & 1)
        return False
    if data[:2] == b"\xff\xd8":
        return _jpeg_max_quant_step(data) in (1, 2)
    return False


def _jpeg_max_quant_step(data: bytes) -> int:
    """The largest quantisation step in a JPEG's tables (0 when none was found before the
    image data): 1 at quality 100, 2-3 at 98-99, 8 and more at the usual 75-95."""
    largest = 0
    for marker, start, end in jpeg.segments(data):
        if marker != 0xDB or end > len(data):
            continue
        seg, j = data[start:end], 0  # tables: a precision/id byte, then 64 steps of 1 or 2 bytes
        while j < len(seg):
            width = 2 if seg[j] >> 4 else 1
            table = seg[j + 1:j + 1 + 64 * width]
            steps = [int.from_bytes(table[k:k + width], "big") for k in range(0, len(table) - width + 1, width)]
            largest = max([largest, *steps])
            j += 1 + 64 * width
    return largest


def _haar_ll(channel: np.ndarray) -> np.ndarray:
    """The LL band of a one-level Haar DWT, exactly as ``pywt.dwt2(x, 'haar')[0]`` computes it
    (along axis 0 first, each tap multiplied by 1/sqrt(2)): the same float64 values to the last
    bit, which matters since a block's bit is the remainder of a value divided by 36."""
    c = np.float64(0.7071067811865476)  # pywt.Wavelet('haar').dec_lo
    x = channel.astype(np.float64)
    rows = x[0::2] * c + x[1::2] * c
    return rows[:, 0::2] * c + rows[:, 1::2] * c


def _block_scores(image: np.ndarray, order: str) -> np.ndarray:
    """Each 8x8-pixel block's vote (bool), in the order the encoder assigns message bits:
    imwatermark's ``EmbedMaxDct.decode_frame`` / ``infer_dct_matrix``, vectorised."""
    import cv2

    code = cv2.COLOR_RGB2YUV if order == "bgr" else cv2.COLOR_BGR2YUV
    rows, cols = image.shape[0] // 8 * 8, image.shape[1] // 8 * 8
    if rows == 0 or cols == 0:
        return np.zeros(0, dtype=bool)
    out = []
    for top in range(0, rows, _STRIP_ROWS):
        strip = np.ascontiguousarray(image[top:min(top + _STRIP_ROWS, rows), :cols])
        u = cv2.cvtColor(strip, code)[:, :, 1]
        ll = _haar_ll(u)
        r, c = ll.shape[0] // _BLOCK, ll.shape[1] // _BLOCK
        blocks = np.abs(ll.reshape(r, _BLOCK, c, _BLOCK).transpose(0, 2, 1, 3).reshape(r * c, _BLOCK * _BLOCK))
        # The largest coefficient other than the block's first (ties: the first of them).
        rest = blocks[:, 1:]
        val = rest[np.arange(len(rest)), np.argmax(rest, axis=1)]
        out.append((val % _SCALE) > 0.5 * _SCALE)
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)


def _decode_bits(scores: np.ndarray, length: int) -> Optional[np.ndarray]:
    """The message bits: each bit is the majority vote of the blocks it was written into
    (imwatermark: mean score * 255 > 127). None when some bit has no block."""
    if len(scores) < length:
        return None
    which = np.arange(len(scores)) % length
    votes = np.bincount(which, weights=scores, minlength=length)
    counts = np.bincount(which, minlength=length)
    return (votes / counts) * 255 > 127


def agreements(rgb: np.ndarray) -> dict:
    """The number of bits agreeing with each message in each channel order, as
    ``{(label, order): (agreeing, length)}``; empty for an image too small to carry a mark.
    For measurements; raises on bad input, unlike :func:`read_watermark`."""
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
    if image.shape[0] * image.shape[1] < MIN_PIXELS:
        return {}
    result = {}
    for order in _ORDER_NOTES:
        scores = None
        for message in _MESSAGES:
            if order not in message.orders:
                continue
            if scores is None:
                scores = _block_scores(image, order)
            bits = _decode_bits(scores, len(message.bits))
            if bits is not None:
                result[(message.label, order)] = (int(np.count_nonzero(bits == message.bits)), len(message.bits))
    return result


def read_watermark(rgb) -> list:
    """Looks for the Stable Diffusion invisible watermarks in an HxWx3 uint8 RGB array.

    Returns ``[]`` when none is found (including images under 256x256 pixels in area, which
    cannot carry one), else one item per message found, e.g.
    ``{"kind": "watermark", "says": "generated",
    "detail": "Stable Diffusion invisible watermark (SDXL, 47/48 bits)"}``.
    Never raises: a failure gives ``{"kind": "watermark", "says": None,
    "detail": "could not be read: ..."}``, and without the watermark extra the one item
    ``{"kind": "watermark", "says": None, "detail": MISSING}``.
    """
    if not available():
        return [{"kind": "watermark", "says": None, "detail": MISSING}]
    try:
        found = agreements(rgb)
    except Exception as exc:  # noqa: BLE001 - reported as evidence, never raised
        text = str(exc)
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return [{"kind": "watermark", "says": None, "detail": f"could not be read: {text}"}]
    items = []
    for message in _MESSAGES:
        best = None
        for order in message.orders:
            hit = found.get((message.label, order))
            if hit and hit[0] >= message.threshold and (best is None or hit[0] > best[0][0]):
                best = (hit, _ORDER_NOTES[order])
        if best:
            (agreeing, length), note = best
            items.append({"kind": "watermark", "says": "generated",
                          "detail": f"Stable Diffusion invisible watermark "
                                    f"({message.label}, {agreeing}/{length} bits{note})"})
    return items
