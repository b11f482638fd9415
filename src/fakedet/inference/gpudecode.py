"""Inference layer: the GPU decoder, batched JPEG decoding and preprocessing with torch ops on the model's device.

On CUDA this is the fast path: files are read by a pool of threads, JPEGs are decoded a whole
batch at a time by ``torchvision.io.decode_jpeg(..., device="cuda")`` (nvJPEG), and the
whole-image view and native-resolution patches are made on the GPU, so the CPU only reads bytes.
Everything that path cannot take — non-JPEG files, CMYK JPEGs, files the batched decoder refuses,
images outside the size limits — goes through the ordinary PIL path item by item, so every input
still gets its own record. On the CPU the same code runs with torchvision's CPU decoder, which is
how the tests cover it on machines without a GPU.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from fakedet.data import decode, provenance
from fakedet.data.sources import Item
from fakedet.inference.pipeline import Decoded, DecodedBatch, Task, prepare_batch, waiting

#: the torch resampling that matches each PIL filter of :data:`fakedet.data.preprocess.INTERPOLATIONS`
#: (PIL's NEAREST picks pixel centres as torch's "nearest-exact" does, not as its "nearest");
#: torch has no Lanczos, and its "area" mode averages whole pixels where PIL's BOX weighs the
#: parts of pixels a box covers (20 grey levels apart on noisy images, when the sizes are not
#: multiples): a checkpoint that resizes with either is decoded by the PIL path only
MODES = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic"}


def _header(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) if ``data`` is an RGB or grayscale JPEG the GPU may decode, else None (a
    progressive one of too many scans among them: the CPU path refuses it; and one whose EXIF
    orientation turns it: torchvision's GPU decoder does not apply the orientation, so the CPU
    path, which does, decodes it)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        img = Image.open(io.BytesIO(data))
        if img.format != "JPEG" or img.mode not in ("RGB", "L"):
            return None
        if img.info.get("progressive") and decode.too_many_scans(data):
            return None
        if decode.exif_turn(img) is not None:
            return None
        return img.size
    except Exception:
        return None


class TensorDecoder:
    """Prepares batches like :func:`fakedet.inference.pipeline.prepare_batch`, but returns tensors
    that are already on ``device``."""

    def __init__(self, task: Task, device: torch.device, threads: int = 8):
        self.task = task
        self.cfg = task.pre
        self.device = device
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="fakedet-read")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def read(self, batch: Sequence[Item]):
        """Starts reading a batch's bytes in threads; returns what :meth:`prepare` takes."""
        return [(item, self.pool.submit(self._read_one, item)) for item in batch]

    @staticmethod
    def _read_one(item: Item):
        if item.error is not None:
            return None, item.error
        if isinstance(item.source, (bytes, bytearray)):
            return bytes(item.source), None
        if not isinstance(item.source, (str, os.PathLike)):
            return None, None  # PIL images and the like: CPU path
        try:
            return decode.read_bytes(item.source), None
        except decode.ImageError as exc:
            return None, str(exc)
        except MemoryError:
            return None, "out of memory"

    def prepare(self, pending) -> DecodedBatch:
        cfg = self.cfg
        out: list = [None] * len(pending)
        jpeg_idx, jpeg_data, jpeg_raw, sizes = [], [], [], []
        for i, (item, fut) in enumerate(pending):
            with waiting():
                data, err = fut.result()
            if err is not None:
                out[i] = Decoded.failed(item.path, err, [] if self.task.provenance else None)
                continue
            size = _header(data) if data is not None else None
            if size is None or min(size) < max(cfg.min_size, cfg.patch_size) \
                    or size[0] * size[1] > cfg.max_pixels or self._mark_to_read(data, size):
                # not a plain JPEG, outside the limits, or a quality-100 JPEG whose watermark is
                # read from its pixels on the CPU: the PIL path decides and explains
                src = Item(item.path, source=data if data is not None else item.source)
                out[i] = prepare_batch([src], self.task)[0]
                continue
            jpeg_idx.append(i)
            jpeg_data.append(torch.frombuffer(bytearray(data), dtype=torch.uint8))
            jpeg_raw.append(data)
            sizes.append(size)
        if jpeg_idx:
            decoded = self._decode(jpeg_data)
            for k, i in enumerate(jpeg_idx):
                item = pending[i][0]
                img = decoded[k] if decoded is not None else None
                if img is None:
                    out[i] = prepare_batch([Item(item.path, source=jpeg_raw[k])], self.task)[0]
                    continue
                # metadata only: a JPEG whose watermark could be read went to the PIL path above
                evidence = provenance.read_evidence(jpeg_raw[k]) if self.task.provenance else None
                if _black_and_white(img):  # the PIL path reads it on the picture inside any margins
                    out[i] = prepare_batch([Item(item.path, source=jpeg_raw[k])], self.task)[0]
                    continue
                try:
                    view, patches = self._preprocess(img)
                    out[i] = Decoded(item.path, view, patches, evidence=evidence)
                except decode.ImageError as exc:
                    out[i] = Decoded.failed(item.path, str(exc), evidence)
                except (MemoryError, RuntimeError) as exc:  # the device's memory: this image's record
                    out[i] = Decoded.failed(item.path, f"cannot preprocess: {decode.exception_text(exc)}",
                                            evidence)
        return out

    def _mark_to_read(self, data: bytes, size: tuple[int, int]) -> bool:
        """Whether the PIL path would read this JPEG's Stable Diffusion watermark from its pixels
        (:func:`fakedet.inference.pipeline.watermark_evidence`: stored at quality 100, at a size
        Stable Diffusion makes, the reader installed), so that both paths find the same evidence."""
        from fakedet.data import watermark

        return (self.task.provenance and watermark.worth_reading(*size) and watermark.stored_losslessly(data)
                and watermark.available())

    def _decode(self, data: list[torch.Tensor]) -> Optional[list[Optional[torch.Tensor]]]:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device,
                                    apply_exif_orientation=True))
        except Exception:
            pass  # one bad file fails the whole batch: decode one by one to isolate it
        out = []
        for d in data:
            try:
                out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device,
                                       apply_exif_orientation=True))
            except Exception:
                out.append(None)  # the PIL path will report the precise error
        return out

    def _preprocess(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        _, h, w = img.shape
        decode.check_min_side(w, h, max(cfg.min_size, cfg.patch_size))  # as the PIL path
        colours = _colours(img)  # as the PIL path's check_colours
        if colours:
            raise decode.ImageError(decode.ONE_COLOUR if colours == 1 else decode.TWO_COLOURS)
        g, p = cfg.global_size, cfg.patch_size
        mode = MODES[cfg.interpolation]
        kw = {"antialias": True, "align_corners": False} if mode in ("bilinear", "bicubic") else {}
        view = F.interpolate(img[None].float(), size=(g, g), mode=mode, **kw)
        view = view.round_().clamp_(0, 255).to(torch.uint8)
        patches = torch.stack([img[:, y : y + p, x : x + p] for x, y in decode.patch_origins(w, h, cfg)])
        return view, patches[None]


def _colours(img: torch.Tensor) -> int:
    """1 or 2: the decoded 3xHxW image has that many colours (a JPEG of two flat areas can);
    0: more."""
    flat = img.reshape(3, -1)
    other = (flat != flat[:, :1]).any(0)
    if not bool(other.any()):
        return 1
    second = flat[:, int(other.nonzero()[0, 0])][:, None]
    return 2 if bool((~other | (flat == second).all(0)).all()) else 0


def _black_and_white(img: torch.Tensor) -> bool:
    """Whether the decoded 3xHxW uint8 tensor may be black and white
    (:func:`fakedet.data.decode.black_and_white`): its levels and shares, without the mixing, on
    a strided sample of at most about 256 px a side. Where it holds, the PIL path decides, on
    the picture inside any margins."""
    _, h, w = img.shape
    step = max(1, -(-max(h, w) // decode.BW_SAMPLE))
    rgb = img[:, ::step, ::step].float()
    grey = (rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114).round()
    dark = (grey < decode.BW_LEVELS[0]).float().mean().item()
    light = (grey > decode.BW_LEVELS[1]).float().mean().item()
    return dark + light >= decode.BW_SHARE and min(dark, light) >= decode.BW_EACH
