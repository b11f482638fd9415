"""Inference layer: API input coercion, turning what callers pass to :meth:`Detector.predict`
(paths, bytes, PIL images, numpy arrays) into :class:`~fakedet.data.sources.Item` s."""

from __future__ import annotations

import io
import os
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from fakedet.data.decode import exception_text
from fakedet.data.sources import Item
from fakedet.inference.pipeline import LiveItems


def is_single_input(inputs: Any) -> bool:
    """Whether ``inputs`` is one input (an image, or something not iterable, which gets its own
    error record) rather than a sequence of inputs. An open file is one input too (its own
    error record), not a sequence of its lines, and so is a mapping, not a sequence of its keys.
    A one-dimensional array of text or objects (``df.path.values``) is a sequence of inputs."""
    if isinstance(inputs, np.ndarray):
        return not _is_array_of_inputs(inputs)
    return isinstance(inputs, (str, os.PathLike, bytes, bytearray, memoryview, io.IOBase, Mapping)) or (
        _is_pil(inputs) or _is_tensor(inputs) or not isinstance(inputs, Iterable))


def _is_array_of_inputs(x: np.ndarray) -> bool:
    """A 1-D array of str (paths) or objects (any inputs): not an image, whose arrays hold numbers."""
    return x.ndim == 1 and x.dtype.kind in "UO"


def _is_pil(x: Any) -> bool:
    """A PIL image (its ``mode`` is text; a torch tensor's is a method), without importing PIL."""
    return isinstance(getattr(x, "mode", None), str) and hasattr(x, "size")


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "numpy")


def as_items(inputs: Iterable[Any]) -> Iterator[Item]:
    """Each input as an :class:`Item` (Items pass through), lazily and in order; a
    :class:`~fakedet.inference.pipeline.LiveItems` passes through whole (its inputs are Items).
    One input (:func:`is_single_input`: a path, an image) is a sequence of one, not of its
    characters or rows."""
    if isinstance(inputs, LiveItems):
        return inputs
    if is_single_input(inputs):
        inputs = [inputs]  # one input (an image, or None: its own error record), not a sequence
    return (as_item(x, i) for i, x in enumerate(inputs))


_ORIENTATION, _EXIF_IFD = 0x0112, 0x8769


def _copy_with_tags(img):
    """A copy of a PIL image that keeps the EXIF tags a scan of its file reads: a TIFF holds
    them in its own directory, which ``copy()`` leaves behind, so that the copy's provenance (a
    Software tag) and orientation would differ from those of the same file scanned by its path."""
    c = img.copy()
    if "exif" not in c.info and getattr(img, "tag_v2", None) is not None:
        try:
            from PIL import Image

            from fakedet.data.provenance import EXIF_IFD_TAGS, IFD0_TAGS

            # the tags the provenance reader reads, and Orientation: not a colour profile or a
            # Photoshop layer, which could take the copy's EXIF past the reader's limit
            tags, kept = img.getexif(), Image.Exif()
            for tag in IFD0_TAGS | {_ORIENTATION}:
                if tag in tags:
                    kept[tag] = tags[tag]
            inner = tags.get_ifd(_EXIF_IFD)
            for tag in EXIF_IFD_TAGS:
                if tag in inner:
                    kept.get_ifd(_EXIF_IFD)[tag] = inner[tag]
            if len(kept):
                c.info["exif"] = kept.tobytes()
        except Exception:  # noqa: BLE001 - tags Pillow cannot write back: the copy goes without
            pass
    return c


def as_item(x: Any, index: int) -> Item:
    """One API input (a path, bytes, a PIL image, an HxWx3 uint8 array, or an Item) -> an Item;
    ``index`` names inputs that have no path of their own."""
    if isinstance(x, Item):
        return x
    if isinstance(x, (str, os.PathLike)):
        path = os.fspath(x)
        if isinstance(path, str) and type(path) is not str:  # numpy's str_ (a path from an array): a plain str
            path = str.__str__(path)
        return Item(path, source=path)
    if isinstance(x, (bytes, bytearray, memoryview)):
        return Item(f"<bytes:{index}>", source=bytes(x))
    if isinstance(x, np.ndarray):
        from PIL import Image

        expected = f"unsupported array {x.dtype}{list(x.shape)}: expected HxW or HxWx3/HxWx4 uint8"
        if x.dtype != np.uint8:
            # Pillow would take many (floats stretched to their own range, int32 divided by 257,
            # booleans), each scored as a different picture than the caller meant
            hint = (" (floats in [0, 1]: (a * 255).round().astype(np.uint8))" if x.dtype.kind == "f" else
                    " (16-bit: (a >> 8).astype(np.uint8))" if x.dtype.kind == "u" and x.dtype.itemsize == 2
                    else "")
            return Item(f"<array:{index}>", error=expected + hint)
        if not (x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (3, 4))):  # HxWx2: grey and alpha
            hint = (" (one channel: a[..., 0])" if x.ndim == 3 and x.shape[2] == 1 else
                    # np.frombuffer(upload, np.uint8), as for cv2.imdecode: a file's bytes
                    " (a file's encoded bytes? pass them as bytes: a.tobytes())" if x.ndim == 1 else "")
            return Item(f"<array:{index}>", error=expected + hint)
        try:
            img = Image.fromarray(x)
        except (TypeError, ValueError) as exc:
            return Item(f"<array:{index}>", error=f"{expected} ({exc})")
        # Pillow wraps some arrays (grayscale, RGBA) without copying them, and inputs are taken
        # ahead of decoding: a caller that refills one buffer would have every input scored
        # as its last contents.
        return Item(f"<array:{index}>", source=img.copy() if img.readonly else img)
    if _is_pil(x):  # PIL image
        name = getattr(x, "filename", "") or f"<image:{index}>"
        try:
            # Decode a lazily opened image here, once: the decoding threads would otherwise load
            # it concurrently when the same object is passed twice, sharing one file handle.
            x.load()
        except Exception as exc:
            if "truncated" in str(exc).lower():
                msg = "truncated image data"
            elif isinstance(exc, AssertionError) and not str(exc):  # Pillow's, for a closed file
                msg = "cannot decode image: AssertionError (was the image's file closed before it was loaded?)"
            else:
                msg = f"cannot decode image: {exception_text(exc)}"
            return Item(name, error=msg)
        # Inputs are taken ahead of decoding: an image the caller goes on drawing into (one
        # canvas refilled per frame) would otherwise be scored as its later, or half-drawn, pixels.
        return Item(name, source=_copy_with_tags(x))
    hint = (": pass its path, or its bytes (f.read())" if isinstance(x, io.IOBase) or hasattr(x, "read") else
            ": pass an HxWx3 uint8 array (t.cpu().numpy(), channels last)" if _is_tensor(x) else
            ": pass a list of inputs, e.g. list(d.values())" if isinstance(x, Mapping) else "")
    return Item(f"<input:{index}>", error=f"unsupported input type {type(x).__name__}{hint}")
