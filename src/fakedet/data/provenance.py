"""Data layer: provenance metadata that images carry about where they came from.

`read_evidence(data)` walks an image file's container (JPEG markers up to SOS, PNG chunks,
WebP RIFF chunks, the first TIFF IFDs, top-level ISO-BMFF boxes of AVIF/HEIF) straight from
its bytes, without decoding pixels and without an XML parser, and returns evidence items:

    {"kind": "c2pa" | "xmp" | "exif" | "parameters" | "png-text" | "metadata",
     "says": "generated" | "partly generated" | "edited" | "captured" | None,
     "detail": "short human-readable text"}          # C2PA items add "signature"

* c2pa       - C2PA Content Credentials (JUMBF in JPEG APP11, PNG caBX, WebP C2PA, BMFF uuid,
               TIFF tag 0xCD41), read and validated by c2pa-python (optional extra) only when
               the container walk found a manifest store. No trust list is configured, so a
               good signature is reported as "valid, signer not verified (no trust list)".
* xmp        - IPTC DigitalSourceType, xmp:CreatorTool, photoshop:Credit.
* exif       - IFD0 Software / Artist.
* parameters - generation parameters of Stable Diffusion front-ends (AUTOMATIC1111/Forge,
               ComfyUI, InvokeAI, NovelAI, Fooocus, SwarmUI, Midjourney, generic JSON) found in
               PNG text chunks, EXIF UserComment/ImageDescription or a JPEG comment.
* png-text   - PNG Software/Source text naming a generator or editor.
* metadata   - an unexpected failure of the reader itself (never raised).

Every size is checked before anything is copied or decompressed, decompression is bounded,
XMP is searched with bounded patterns (immune to entity expansion and deep nesting) and the
whole walk has a time budget; whatever cannot be read becomes an item with says None.
"""

from __future__ import annotations

import html
import json
import os
import re
import struct
import threading
import time
import zlib

from fakedet.data import jpeg

SAYS = ("generated", "partly generated", "edited", "captured")

TEXT_LIMIT = 1 << 20            # largest text chunk / EXIF value / JSON we interpret
XMP_LIMIT = 2 << 20             # largest (extended) XMP packet we search
TOTAL_TEXT_LIMIT = 8 << 20      # all decoded text of one file together
MAX_SEGMENTS = 4096             # JPEG segments, PNG / WebP chunks, BMFF boxes, IFD entries
TIME_BUDGET_S = 0.5             # container walk of one file
C2PA_ASSET_LIMIT = 64 << 20     # largest file handed to c2pa-python
C2PA_TIMEOUT_S = 10.0           # c2pa-python is native code: never wait longer than this
BMFF_PREFIX = 1 << 20           # AVIF/HEIF/other formats: searched for an XMP packet
DETAIL_LIMIT = 200

C2PA_EXTRA_MISSING = ("C2PA manifest present; reading it needs the c2pa extra: "
                      "pip install 'fakedet[c2pa]'")
NOT_VERIFIED = "valid, signer not verified (no trust list)"

_RANK = {None: 0, "captured": 1, "edited": 2, "partly generated": 3, "generated": 4}


class _Unreadable(Exception):
    """Metadata that could not be read; the message becomes an item's detail."""


# --------------------------------------------------------------------------- public API

def read_evidence(data: bytes, *, use_c2pa: bool = True) -> list[dict]:
    """Evidence items from an image file's bytes, in file order, duplicates merged. Each item:
    {"kind": str, "says": one of SAYS or None, "detail": str}; C2PA items add "signature".
    Never raises (any failure is an item with says None and a detail saying what could not be read)."""
    scan = None
    try:
        scan = _Scan(data if isinstance(data, bytes) else bytes(data), use_c2pa)
        scan.run()
        items = scan.items
    except Exception as exc:  # the reader's own bug must not break a scan, nor lose what it found
        items = list(scan.items) if scan is not None else []
        items.append(_item("metadata", None, f"metadata could not be read: {type(exc).__name__}"))
    return _merge(items)


def read_image_evidence(im) -> list[dict]:
    """Evidence from what a PIL image keeps of its file's metadata: its text chunks (generation
    parameters), XMP and EXIF, as :func:`read_evidence` finds them in a file. Pillow keeps these in
    ``im.info`` (``Image.open`` of a PNG, JPEG or WebP, and copies of it; a TIFF's tags through
    ``getexif``), not a C2PA manifest or a comment segment, which are read from a file's bytes
    only. They are written into a one-pixel PNG and read from it, each text at most
    ``TEXT_LIMIT`` (XMP ``XMP_LIMIT``) and all of them ``TOTAL_TEXT_LIMIT``, as a file's are
    (a longer one is left out). Read it after the image is loaded: Pillow reads a PNG's text
    after its pixels only then. Never raises."""
    try:
        import io

        from PIL import Image, PngImagePlugin

        meta = getattr(im, "info", None)
        meta = meta if isinstance(meta, dict) else {}
        info, found, total = PngImagePlugin.PngInfo(), False, 0

        def add(key: str, value: str, limit: int) -> bool:
            nonlocal total
            if len(value) > limit or total + len(value) > TOTAL_TEXT_LIMIT:
                return False
            try:
                key.encode("latin-1")  # PNG keys are Latin-1, 1 to 79 characters
            except UnicodeEncodeError:
                return False
            if not 0 < len(key) < 80:
                return False
            info.add_itxt(key, value.encode("utf-8", "replace").decode("utf-8"))  # lone surrogates
            total += len(value)
            return True

        for key, value in meta.items():
            if isinstance(key, str) and key not in ("exif", "xmp") and isinstance(value, str):
                found |= add(key, value, TEXT_LIMIT)
        xmp = meta.get("xmp")
        if isinstance(xmp, (bytes, str)) and xmp:
            found |= add("XML:com.adobe.xmp", xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp,
                         XMP_LIMIT)
        exif = meta.get("exif")
        exif = exif if isinstance(exif, bytes) and 0 < len(exif) <= TEXT_LIMIT else None
        if exif is None and hasattr(im, "getexif") and "exif" not in meta:  # a TIFF keeps its tags apart
            tags = im.getexif()
            exif = tags.tobytes() if len(tags) else None
        if not found and exif is None:
            return []
        buf = io.BytesIO()
        Image.new("RGB", (1, 1)).save(buf, "PNG", pnginfo=info, **({"exif": exif} if exif else {}))
        return read_evidence(buf.getvalue(), use_c2pa=False)
    except Exception as exc:  # metadata Pillow kept in a form it cannot write back
        return [_item("metadata", None, f"metadata could not be read: {type(exc).__name__}")]


def c2pa_available() -> bool:
    """Whether c2pa-python (the `c2pa` extra) can be imported."""
    return _c2pa_module() is not None


# --------------------------------------------------------------------------- items

def _short(text: str, limit: int = DETAIL_LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _item(kind: str, says: str | None, detail: str, **extra) -> dict:
    out = {"kind": kind, "says": says, "detail": _short(detail)}
    out.update(extra)
    return out


def _merge(items: list[dict]) -> list[dict]:
    seen, out = set(), []
    for it in items:
        key = (it["kind"], it["says"], it["detail"], it.get("signature"))
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out


# --------------------------------------------------------------------------- the walk

class _Scan:
    """One file: walks its container and collects items (C2PA read after the walk)."""

    def __init__(self, data: bytes, use_c2pa: bool):
        self.data = data
        self.use_c2pa = use_c2pa
        self.items: list[dict] = []
        self.deadline = time.monotonic() + TIME_BUDGET_S
        self.text_left = TOTAL_TEXT_LIMIT
        self.c2pa: tuple[int, str, str | None] | None = None   # (item index, mime, problem)
        self.png_context: dict[str, str] = {}

    # -- bookkeeping
    def add(self, item: dict | None) -> None:
        if item is not None:
            self.items.append(item)

    def fail(self, kind: str, detail: str) -> None:
        """An item saying what could not be read (says None)."""
        extra = {"signature": "not checked"} if kind == "c2pa" else {}
        self.items.append(_item(kind, None, detail, **extra))

    def tick(self) -> bool:
        """False once the time budget is spent (reported once)."""
        if time.monotonic() <= self.deadline:
            return True
        if not any(it["detail"].startswith("metadata reading stopped") for it in self.items):
            self.add(_item("metadata", None, "metadata reading stopped: time limit reached"))
        return False

    def too_many(self, what: str) -> None:
        """Said when a container walk stops at :data:`MAX_SEGMENTS` with more to read."""
        self.add(_item("metadata", None, f"metadata reading stopped: more than {MAX_SEGMENTS} {what}"))

    def take_text(self, n: int) -> bool:
        self.text_left -= n
        return self.text_left >= 0

    def found_c2pa(self, mime: str, problem: str | None = None) -> None:
        if self.c2pa is None:
            self.c2pa = (len(self.items), mime, problem)

    # -- dispatch
    def run(self) -> None:
        d = self.data
        if d[:3] == b"\xff\xd8\xff":
            self.jpeg()
        elif d[:8] == b"\x89PNG\r\n\x1a\n":
            self.png()
        elif d[:4] == b"RIFF" and d[8:12] == b"WEBP":
            self.webp()
        elif d[:4] in (b"II*\x00", b"MM\x00*"):
            self.tiff_file()
        elif d[4:8] == b"ftyp":
            self.bmff()
        else:
            self.xmp_in_prefix()
        if self.c2pa is not None:
            index, mime, problem = self.c2pa
            self.items.insert(index, self.c2pa_item(mime, problem))

    # -- JPEG
    def jpeg(self) -> None:
        d, n = self.data, len(self.data)
        ext_xmp: dict[bytes, list] = {}
        jumbf: dict[bytes, list] = {}
        for marker, start, end in jpeg.segments(d, MAX_SEGMENTS):
            if not self.tick():
                break
            length = end - start + 2
            if length < 2 or end > n:
                if 0xE0 <= marker <= 0xEF or marker == 0xFE:
                    kind = _jpeg_segment_kind(marker, d[start:start + 40])
                    self.fail(kind, f"JPEG APP{marker - 0xE0} segment could not be read: it declares "
                              f"{length} bytes but {max(n - start + 2, 0)} remain"
                              if marker != 0xFE else "JPEG comment could not be read: truncated")
                break
            if marker == 0xE1:
                self.jpeg_app1(start, end, ext_xmp)
            elif marker == 0xEB:
                self.jpeg_app11(start, end, jumbf)
            elif marker == 0xFE:
                self.comment(d[start:min(end, start + TEXT_LIMIT)], "JPEG comment")
        self.extended_xmp(ext_xmp)
        self.jpeg_jumbf(jumbf)

    def jpeg_app1(self, start: int, end: int, ext_xmp: dict) -> None:
        d = self.data
        if d.startswith(b"Exif\x00", start):
            self.exif(start + 6, end, "image/jpeg")
        elif d.startswith(_XMP_NS, start):
            self.xmp(d[start + len(_XMP_NS):end])
        elif d.startswith(_XMP_EXT_NS, start):
            head = start + len(_XMP_EXT_NS)
            if end - head >= 40:
                guid = d[head:head + 32]
                full, offset = struct.unpack_from(">II", d, head + 32)
                ext_xmp.setdefault(guid, [full, []])[1].append((offset, head + 40, end))

    def extended_xmp(self, ext_xmp: dict) -> None:
        for _guid, (full, parts) in list(ext_xmp.items())[:4]:
            if full > XMP_LIMIT:
                self.fail("xmp", f"extended XMP could not be read: {full} bytes exceed the limit")
                continue
            buf = bytearray(full)
            for offset, a, b in parts:
                if offset + (b - a) <= full:
                    buf[offset:offset + (b - a)] = self.data[a:b]
            self.xmp(bytes(buf))

    def jpeg_app11(self, start: int, end: int, jumbf: dict) -> None:
        d = self.data
        if end - start < 8 or d[start:start + 2] != b"JP":
            return
        instance = d[start + 2:start + 4]
        jumbf.setdefault(instance, []).append((start + 8, end))

    def jpeg_jumbf(self, jumbf: dict) -> None:
        for segments in jumbf.values():
            first_start, first_end = segments[0]
            head = self.data[first_start:min(first_end, first_start + 64)]
            if not _looks_like_c2pa(head):
                continue
            present = (first_end - first_start) + sum(max(b - a - 8, 0) for a, b in segments[1:])
            self.found_c2pa("image/jpeg", _jumbf_problem(head, present))
            return

    # -- PNG
    def png(self) -> None:
        d, n, pos = self.data, len(self.data), 8
        for _ in range(MAX_SEGMENTS):
            if pos + 8 > n or not self.tick():
                break
            length, ctype = struct.unpack_from(">I4s", d, pos)
            start, end = pos + 8, pos + 8 + length
            if ctype == b"IEND":
                break
            if end + 4 > n:
                if ctype in _PNG_META:
                    self.fail("png-text" if ctype != b"caBX" else "c2pa",
                              f"PNG {ctype.decode('latin-1')} chunk could not be read: it declares "
                              f"{length} bytes but {max(n - start, 0)} remain")
                break
            if ctype in (b"tEXt", b"zTXt", b"iTXt"):
                self.png_text(ctype, start, end)
            elif ctype == b"eXIf":  # some writers keep JPEG's "Exif\0\0" before the TIFF header
                self.exif(start + 6 if d.startswith(b"Exif\x00\x00", start) else start, end, "image/png")
            elif ctype == b"caBX":
                head = d[start:min(end, start + 64)]
                self.found_c2pa("image/png", _jumbf_problem(head, length))
            pos = end + 4
        else:
            if pos + 8 <= n and d[pos + 4:pos + 8] != b"IEND":  # a chunk beyond the last one read
                self.too_many("PNG chunks")

    def png_text(self, ctype: bytes, start: int, end: int) -> None:
        d = self.data
        name = ctype.decode("latin-1")
        nul = d.find(b"\x00", start, min(end, start + 80))
        if nul < 0:
            self.fail("png-text", f"PNG {name} chunk could not be read: no keyword")
            return
        key = d[start:nul].decode("latin-1")
        length = end - start
        limit = XMP_LIMIT if key == "XML:com.adobe.xmp" else TEXT_LIMIT  # XMP's packets are larger
        if length > limit:
            self.fail(_text_kind(key), f"PNG {name} chunk '{key[:40]}' could not be read: "
                      f"text chunk of {length} bytes exceeds the limit")
            return
        if key not in _PNG_KEYS:
            return
        try:
            text = _png_text_value(ctype, d[nul + 1:end], limit)
        except _Unreadable as exc:
            self.fail(_text_kind(key), f"PNG {name} chunk '{key[:40]}' could not be read: {exc}")
            return
        if not self.take_text(len(text)):
            self.fail("png-text", "PNG text could not be read: total text exceeds the limit")
            return
        self.png_key(key, text)

    def png_key(self, key: str, text: str) -> None:
        if key == "XML:com.adobe.xmp":
            self.xmp(text.encode("utf-8", "replace"))
        elif key.startswith("Raw profile type "):
            self.raw_profile(key, text)
        elif key in ("Software", "Source"):
            self.png_context[key] = text
            says = _tool_says(text, editors=(key == "Software"))
            if says:
                self.add(_item("png-text", says, f"PNG {key}: {text}"))
        else:
            self.add(_parameters(text, key, self.png_context))

    def raw_profile(self, key: str, text: str) -> None:
        """ImageMagick's (and exiftool's) PNG text of a profile: a line with its name, one with
        its length, then its bytes in hex: EXIF (``exif``, ``APP1``) or XMP (``xmp``, and
        ``APP1`` from older ImageMagick, with or without JPEG's XMP header)."""
        parts = text.strip().split(None, 2)
        try:
            if len(parts) < 3:
                raise ValueError
            raw = bytes.fromhex("".join(parts[2].split()))
        except ValueError:
            self.fail("exif" if key != "Raw profile type xmp" else "xmp",
                      f"PNG '{key}' could not be read: not a profile's hex")
            return
        header = b"http://ns.adobe.com/xap/1.0/\x00"
        start = 6 if raw.startswith(b"Exif\x00\x00") else 0
        tiff = raw[start:start + 4] in (b"II*\x00", b"MM\x00*")  # EXIF (which may hold an XMP tag)
        if key == "Raw profile type xmp" or raw.startswith(header) or (not tiff and b"<x:xmpmeta" in raw[:4096]):
            self.xmp(raw[len(header):] if raw.startswith(header) else raw)
            return
        self.exif(start, len(raw), "image/png", data=raw)

    # -- WebP
    def webp(self) -> None:
        d = self.data
        n = min(len(d), 8 + struct.unpack_from("<I", d, 4)[0])
        pos = 12
        for _ in range(MAX_SEGMENTS):
            if pos + 8 > n or not self.tick():
                break
            fourcc, length = struct.unpack_from("<4sI", d, pos)
            start, end = pos + 8, pos + 8 + length
            if end > n:
                if fourcc in (b"EXIF", b"XMP ", b"C2PA"):
                    self.fail("c2pa" if fourcc == b"C2PA" else "exif" if fourcc == b"EXIF" else "xmp",
                              f"WebP {fourcc.decode('latin-1').strip()} chunk could not be read: it "
                              f"declares {length} bytes but {max(n - start, 0)} remain")
                break
            if fourcc == b"EXIF":
                self.exif(start + 6 if d.startswith(b"Exif\x00\x00", start) else start, end, "image/webp")
            elif fourcc == b"XMP ":
                self.xmp(d[start:min(end, start + XMP_LIMIT + 1)])
            elif fourcc == b"C2PA":
                self.found_c2pa("image/webp", _jumbf_problem(d[start:min(end, start + 64)], length))
            pos = end + (length & 1)
        else:
            if pos + 8 <= n:  # a chunk beyond the last one read
                self.too_many("WebP chunks")

    # -- TIFF / EXIF
    def tiff_file(self) -> None:
        self.exif(0, len(self.data), "image/tiff", whole_file=True)

    def exif(self, start: int, end: int, mime: str, whole_file: bool = False, data: bytes | None = None) -> None:
        """The EXIF (a TIFF header and its IFDs) in ``self.data[start:end]``, or in ``data``'s."""
        try:
            tags, problems = _read_ifds(self.data if data is None else data, start, end)
        except _Unreadable as exc:
            self.fail("exif", f"EXIF could not be read: {exc}")
            return
        for tag, raw in tags:
            self.exif_tag(tag, raw, mime, whole_file)
        for problem in problems:  # what was read is kept; what was not, said
            self.fail("exif", f"EXIF could not be read in part: {problem}")

    def exif_tag(self, tag: int, raw, mime: str, whole_file: bool) -> None:
        if tag == 0xCD41 and whole_file:
            self.found_c2pa(mime, None)
            return
        if isinstance(raw, int):                   # an oversized value: (tag, its length)
            self.fail("exif", f"EXIF {_EXIF_NAMES.get(tag, hex(tag))} could not be read: "
                      f"{raw} bytes exceed the limit")
            return
        if tag == 0x02BC:
            self.xmp(raw)
            return
        if not self.take_text(len(raw)):
            return
        if tag == 0x9286:
            text = _user_comment(raw)
        else:
            text = _decode_text(raw).strip("\x00 \r\n\t")
        if not text:
            return
        name = _EXIF_NAMES[tag]
        if tag in (0x0131, 0x013B):
            says = _tool_says(text, editors=(tag == 0x0131))
            if says:
                self.add(_item("exif", says, f"EXIF {name}: {text}"))
        else:
            self.add(_parameters(text, name, {}))

    def comment(self, raw: bytes, where: str) -> None:
        if self.take_text(len(raw)):
            self.add(_parameters(_decode_text(raw).strip("\x00 \r\n\t"), where, {}))

    # -- ISO-BMFF (AVIF / HEIF) and anything else
    def bmff(self) -> None:
        d, n, pos = self.data, len(self.data), 0
        for _ in range(MAX_SEGMENTS):
            if pos + 8 > n or not self.tick():
                break
            size, btype = struct.unpack_from(">I4s", d, pos)
            header = 8
            if size == 1 and pos + 16 <= n:
                size, header = struct.unpack_from(">Q", d, pos + 8)[0], 16
            elif size == 0:
                size = n - pos
            if size < header:
                break
            if btype == b"uuid" and d[pos + header:pos + header + 16] == _C2PA_BMFF_UUID:
                problem = None if pos + size <= n else (
                    f"C2PA box declares {size} bytes but {n - pos} remain")
                self.found_c2pa(_bmff_mime(d), problem)
            pos += size
        else:
            if pos + 8 <= n:  # a box beyond the last one read
                self.too_many("boxes")
        self.xmp_in_prefix()

    def xmp_in_prefix(self) -> None:
        d = self.data
        limit = min(len(d), BMFF_PREFIX)
        begin = d.find(b"<x:xmpmeta", 0, limit)
        if begin < 0:
            return
        stop = d.find(b"</x:xmpmeta>", begin, min(len(d), begin + XMP_LIMIT))
        self.xmp(d[begin:stop + 12] if stop >= 0 else d[begin:begin + min(XMP_LIMIT, 1 << 16)])

    # -- XMP
    def xmp(self, raw: bytes) -> None:
        if len(raw) > XMP_LIMIT:
            self.fail("xmp", f"XMP could not be read: packet of {len(raw)} bytes exceeds the limit")
            return
        if not self.take_text(len(raw)):
            return
        for it in _xmp_items(raw.decode("utf-8", "replace")):
            self.add(it)

    # -- C2PA
    def c2pa_item(self, mime: str, problem: str | None) -> dict:
        if problem:
            return _item("c2pa", None, f"C2PA manifest could not be read: {problem}",
                         signature="not checked")
        if not self.use_c2pa:
            return _item("c2pa", None, "C2PA manifest present (not read: C2PA reading is off)",
                         signature="not checked")
        if len(self.data) > C2PA_ASSET_LIMIT:
            return _item("c2pa", None, f"C2PA manifest present; not read: file of {len(self.data)} "
                         "bytes exceeds the limit", signature="not checked")
        return _read_c2pa(self.data, mime)


# --------------------------------------------------------------------------- containers

_XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT_NS = b"http://ns.adobe.com/xmp/extension/\x00"
_PNG_META = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"caBX"}
_PNG_KEYS = {"parameters", "prompt", "workflow", "invokeai_metadata", "invokeai_graph",
             "sd-metadata", "Dream", "Comment", "Description", "Software", "Source",
             "XML:com.adobe.xmp", "fooocus_scheme", "generation_data",
             "Raw profile type exif", "Raw profile type APP1", "Raw profile type xmp"}
_C2PA_UUID_PREFIX = b"c2pa\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"
_C2PA_BMFF_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")


def _jpeg_segment_kind(marker: int, head: bytes) -> str:
    if marker == 0xEB:
        return "c2pa"
    if marker == 0xE1:
        return "exif" if head.startswith(b"Exif") else "xmp"
    return "parameters" if marker == 0xFE else "metadata"


def _text_kind(key: str) -> str:
    if key == "XML:com.adobe.xmp":
        return "xmp"
    return "png-text" if key in ("Software", "Source") or key not in _PNG_KEYS else "parameters"


def _looks_like_c2pa(head: bytes) -> bool:
    """A JUMBF superbox whose description box has the C2PA manifest-store type."""
    return head[4:8] == b"jumb" and head[12:16] == b"jumd" and head[16:32] == _C2PA_UUID_PREFIX


def _jumbf_problem(head: bytes, present: int) -> str | None:
    """Why a C2PA JUMBF box (its first bytes, the bytes present) is malformed, else None."""
    if len(head) < 8 or head[4:8] != b"jumb":
        return "the C2PA chunk holds no JUMBF box"
    declared = struct.unpack_from(">I", head)[0]
    if declared == 1:
        declared = struct.unpack_from(">Q", head, 8)[0] if len(head) >= 16 else 0
    elif declared == 0:
        declared = present
    if declared < 8:
        return f"JUMBF box declares an invalid length of {declared} bytes"
    if declared > present:
        return f"JUMBF box declares {declared} bytes but {present} are present"
    if not _looks_like_c2pa(head):
        return "the JUMBF box is not a C2PA manifest store"
    return None


def _bmff_mime(d: bytes) -> str:
    brand = d[8:12]
    return "image/avif" if brand in (b"avif", b"avis") else "image/heif"


def _png_text_value(ctype: bytes, body: bytes, limit: int = TEXT_LIMIT) -> str:
    """The text of a tEXt/zTXt/iTXt chunk after its keyword (decompressed to at most ``limit``)."""
    if ctype == b"tEXt":
        return _decode_text(body)
    if ctype == b"zTXt":
        return _decode_text(_inflate(body[1:], limit))
    # iTXt: compression flag, method, language\0, translated keyword\0, text (UTF-8)
    if len(body) < 2:
        raise _Unreadable("truncated")
    flag = body[0]
    rest = body[2:]
    lang_end = rest.find(b"\x00")
    tkey_end = rest.find(b"\x00", lang_end + 1) if lang_end >= 0 else -1
    if tkey_end < 0:
        raise _Unreadable("truncated")
    text = rest[tkey_end + 1:]
    if flag:
        text = _inflate(text, limit)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable("invalid UTF-8") from None


def _inflate(payload: bytes, limit: int = TEXT_LIMIT) -> bytes:
    try:
        inflater = zlib.decompressobj()
        out = inflater.decompress(payload, limit + 1)
    except zlib.error:
        raise _Unreadable("corrupt compressed text") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _Unreadable("compressed text expands beyond the limit")
    return out


def _decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --------------------------------------------------------------------------- EXIF / TIFF

_EXIF_NAMES = {0x010E: "ImageDescription", 0x0131: "Software", 0x013B: "Artist",
               0x9286: "UserComment", 0x02BC: "XMP", 0xCD41: "C2PA"}
#: the EXIF tags read: IFD0's (ImageDescription, Software, Artist, XMP, C2PA) and the Exif IFD's
#: (UserComment)
IFD0_TAGS = frozenset({0x010E, 0x0131, 0x013B, 0x02BC, 0xCD41})
EXIF_IFD_TAGS = frozenset({0x9286})
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def _read_ifds(d: bytes, start: int, end: int) -> tuple[list[tuple[int, object]], list[str]]:
    """(tag, bytes) of IFD0's and the Exif IFD's interesting tags ((tag, length) when too long),
    and what could not be read: a tag whose value, or an Exif IFD that, lies outside the data
    costs only itself. _Unreadable when not even IFD0 can be read."""
    if end - start < 8:
        raise _Unreadable("TIFF header truncated")
    order = d[start:start + 2]
    if order == b"II":
        fmt = "<"
    elif order == b"MM":
        fmt = ">"
    else:
        raise _Unreadable("bad TIFF byte order")
    if struct.unpack_from(fmt + "H", d, start + 2)[0] != 42:
        raise _Unreadable("bad TIFF header")
    ifd0 = struct.unpack_from(fmt + "I", d, start + 4)[0]
    found: list[tuple[int, object]] = []
    problems: list[str] = []
    exif_ifd = _read_ifd(d, start, end, fmt, ifd0, IFD0_TAGS, found, problems)
    if exif_ifd:
        try:
            _read_ifd(d, start, end, fmt, exif_ifd, EXIF_IFD_TAGS, found, problems)
        except _Unreadable as exc:
            problems.append(f"Exif IFD: {exc}")
    return found, problems


def _read_ifd(d: bytes, base: int, end: int, fmt: str, offset: int, wanted: set,
              found: list, problems: list) -> int | None:
    pos = base + offset
    if offset < 8 or pos + 2 > end:
        raise _Unreadable("IFD offset outside the data")
    count = struct.unpack_from(fmt + "H", d, pos)[0]
    if count > 1000 or pos + 2 + 12 * count > end:
        raise _Unreadable("IFD entries outside the data")
    exif_pointer = None
    for i in range(count):
        tag, typ, n, value = struct.unpack_from(fmt + "HHI4s", d, pos + 2 + 12 * i)
        if tag == 0x8769 and typ in (4, 13) and n == 1:
            exif_pointer = struct.unpack(fmt + "I", value)[0]
            continue
        if tag not in wanted:
            continue
        size = _TYPE_SIZES.get(typ, 1) * n
        if size > TEXT_LIMIT:
            found.append((tag, size))
            continue
        if size <= 4:
            found.append((tag, value[:size]))
            continue
        at = base + struct.unpack(fmt + "I", value)[0]
        if at + size > end:
            problems.append(f"{_EXIF_NAMES.get(tag, hex(tag))} value outside the data")
            continue
        found.append((tag, d[at:at + size]))
    return exif_pointer


def _user_comment(raw: bytes) -> str:
    """EXIF UserComment: an 8-byte character-code prefix, then the text."""
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            text = body.decode("utf-16", "replace")
        else:
            even_zeros = body[0::2].count(0)
            odd_zeros = body[1::2].count(0)
            text = body.decode("utf-16-be" if even_zeros >= odd_zeros else "utf-16-le", "replace")
    elif prefix == b"JIS\x00\x00\x00\x00\x00":
        text = body.decode("shift_jis", "replace")
    elif prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        text = _decode_text(body)
    else:
        text = _decode_text(raw)
    return text.strip("\x00 \r\n\t")


# --------------------------------------------------------------------------- XMP

_DST_BASE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
DIGITAL_SOURCE_TYPES = {
    "trainedAlgorithmicMedia": "generated",
    "algorithmicMedia": "generated",
    "compositeWithTrainedAlgorithmicMedia": "partly generated",
    "compositeSynthetic": "partly generated",
    "algorithmicallyEnhanced": "edited",
    "minorHumanEdits": "edited",
    "humanEdits": "edited",
    "compositeCapture": "edited",
    "composite": "edited",
    "digitalCapture": "captured",
    "computationalCapture": "captured",
    "negativeFilm": "captured",
    "positiveFilm": "captured",
    "print": "captured",
    "screenCapture": "captured",
}
# NewsCodes that say neither generated nor captured (a person's digital creation, a recording of
# a virtual scene, data visualisation) or that are retired/ambiguous: reported with says None.
_DST_UNMAPPED = {"digitalCreation", "digitalArt", "virtualRecording", "dataDrivenMedia",
                 "softwareImage", "trainedAlgorithmicData", "empty"}

_XMP_ATTR = re.compile(r"\s*=\s*(?:\"([^\"<]{0,300})\"|'([^'<]{0,300})')")
_XMP_ELEM = re.compile(r"([^<>]{0,400})>")
_XMP_TEXT = re.compile(r"\s*(?:<rdf:(?:Alt|Bag|Seq)\s*>\s*<rdf:li[^<>]{0,200}>)?([^<]{1,300})<")
_XMP_RESOURCE = re.compile(r"rdf:resource\s*=\s*(?:\"([^\"]{0,300})\"|'([^']{0,300})')")
_XMP_PREFIX = re.compile(r"(</?|\s)([A-Za-z_][\w.-]{0,39}):$")


def _xmp_values(text: str, local: str, prefixes: tuple | None, limit: int = 8) -> list[str]:
    """Values of the XMP property `prefix:local` as attribute, element or rdf:resource."""
    out, pos = [], 0
    for _ in range(64):
        i = text.find(local, pos)
        if i < 0 or len(out) >= limit:
            break
        pos = i + len(local)
        before = _XMP_PREFIX.search(text, max(0, i - 42), i)
        if before is None or (prefixes and before.group(2) not in prefixes):
            continue
        if pos < len(text) and (text[pos].isalnum() or text[pos] in "_-."):
            continue                                       # a longer name, e.g. ...FileType
        opener = before.group(1)
        if opener == "</":
            continue
        if opener == "<":
            value = _xmp_element_value(text, pos)
        else:
            m = _XMP_ATTR.match(text, pos)
            value = (m.group(1) or m.group(2)) if m else None
        value = html.unescape(value).strip() if value else ""
        if value:
            out.append(value)
    return out


def _xmp_element_value(text: str, pos: int) -> str | None:
    m = _XMP_ELEM.match(text, pos)
    if not m:
        return None
    attrs = m.group(1)
    res = _XMP_RESOURCE.search(attrs)
    if res:
        return res.group(1) or res.group(2)
    if attrs.rstrip().endswith("/"):
        return None
    t = _XMP_TEXT.match(text, m.end())
    return t.group(1) if t else None


def _xmp_items(text: str) -> list[dict]:
    if "<!ENTITY" in text or "<!DOCTYPE" in text:
        return [_item("xmp", None, "XMP packet could not be read: it declares a DTD or XML "
                                   "entities, which XMP does not allow")]
    items = [_dst_item(v) for v in _xmp_values(text, "DigitalSourceType", None)]
    for local, prefixes, label, editors in (("CreatorTool", ("xmp", "xap"), "XMP CreatorTool", True),
                                            ("Credit", ("photoshop",), "XMP Credit", False),
                                            ("Software", ("tiff",), "XMP Software", True)):
        for value in _xmp_values(text, local, prefixes, limit=4):
            says = _tool_says(value, editors=editors)
            if says:
                items.append(_item("xmp", says, f"{label}: {value}"))
    return items


def _dst_code(value: str) -> str:
    return value.rstrip("/").rsplit("/", 1)[-1].strip()


def _dst_item(value: str) -> dict:
    code = _dst_code(value)
    says = DIGITAL_SOURCE_TYPES.get(code)
    if says:
        return _item("xmp", says, f"IPTC DigitalSourceType: {code}")
    what = "not mapped" if code in _DST_UNMAPPED else "unrecognised value"
    return _item("xmp", None, f"IPTC DigitalSourceType: {value[:120]} ({what})")


# --------------------------------------------------------------------------- tool names

# Each name is one that no camera, person or language uses otherwise: "Dalle" alone is an Italian
# surname and word (DALL-E needs its hyphen or dot), "Imagen 2" Spanish for "image 2" (Google's
# generator only as the whole tag), and the app of Meta's camera glasses is called "Meta AI".
_GENERATORS = [(re.compile(p, re.I), says) for p, says in (
    (r"\bAdobe Firefly\b", "generated"),
    (r"\bDALL[·\-]E\b", "generated"),
    (r"\bMidjourney\b", "generated"),
    (r"\bNovelAI\b", "generated"),
    (r"\bStable Diffusion\b", "generated"),
    (r"\bComfyUI\b", "generated"),
    (r"\bInvokeAI\b", "generated"),
    (r"\bFooocus\b", "generated"),
    (r"\bMade with Google AI\b", "generated"),
    (r"\bEdited with Google AI\b", "partly generated"),
    (r"\bGoogle Imagen\b|^\s*Imagen [1-9](\.\d+)?\s*$", "generated"),
    (r"\bBing Image Creator\b|\bImage Creator from Microsoft\b", "generated"),
    (r"\bMicrosoft Designer\b", "generated"),
    (r"\bImagined with AI\b", "generated"),
    (r"\bDraw Things\b", "generated"),
    (r"\bLeonardo\.Ai\b", "generated"),
    (r"\bIdeogram\b", "generated"),
)]
_EDITORS = re.compile(
    r"\bAdobe Photoshop\b|\bGIMP\b|\bLightroom\b|\bAffinity Photo\b|\bPixelmator\b|\bSnapseed\b"
    r"|\bPicsart\b|\bCanva\b|\bPaint\.NET\b|\bCapture One\b", re.I)


def _tool_says(value: str, editors: bool = True) -> str | None:
    """'generated' / 'partly generated' for known generators, 'edited' for editors, else None."""
    value = value[:300]
    for pattern, says in _GENERATORS:
        if pattern.search(value):
            return says
    if editors and _EDITORS.search(value):
        return "edited"
    return None


# --------------------------------------------------------------------------- parameters

_A1111_FIELDS = ("Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model",
                 "Denoising strength", "Version")
_A1111_PAIR = re.compile(r"\s*([A-Za-z][\w ./()-]{0,40}): (\"(?:[^\"\\]|\\.){0,2000}\"|[^,]{0,300})(?:,|$)")
_MJ_JOB = re.compile(r"Job ID: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_GENERIC_KEYS = {"sampler", "sampler_name", "seed", "cfg_scale", "scale", "guidance_scale",
                 "model", "prompt", "negative_prompt", "uc", "width", "height"}


def _parameters(text: str, key: str, context: dict) -> dict | None:
    """An item for generation parameters in `text` (from PNG key / EXIF tag `key`), else None."""
    text = text.strip()
    if not text:
        return None
    if text[0] in "{[":
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            return _json_parameters(obj, key, context)
        if obj is None and key in ("prompt", "workflow", "invokeai_metadata", "invokeai_graph"):
            return _item("parameters", None, f"PNG text '{key}' could not be read: invalid JSON")
        return None
    if key == "Dream":
        return _item("parameters", "generated", f"InvokeAI dream parameters: {_flags(text)}")
    a1111 = _a1111(text)
    if a1111:
        return a1111
    job = _MJ_JOB.search(text[-4000:])
    if job:
        return _item("parameters", "generated", f"Midjourney job {job.group(1)}{_mj_flags(text)}")
    return None


#: what the generators write in these fields; the line must hold two of them besides its Steps, so
#: that a caption such as "Steps: 12000, Size: medium" is no generator's parameters
_A1111_SHAPES = {"Sampler": re.compile(r".+"), "Seed": re.compile(r"-?\d+"),
                 "CFG scale": re.compile(r"\d+(\.\d+)?"), "Size": re.compile(r"\d+x\d+")}


def _a1111(text: str) -> dict | None:
    at = text.rfind("Steps: ")
    if at < 0 or (at > 0 and text[at - 1] not in "\n "):
        return None
    line = text[at:at + 8000].split("\n", 1)[0]
    fields: dict[str, str] = {}
    for m in _A1111_PAIR.finditer(line):
        fields.setdefault(m.group(1).strip(), m.group(2).strip().strip('"'))
        if len(fields) > 80:
            break
    if not fields.get("Steps", "").isdigit() or sum(bool(check.fullmatch(fields.get(k, "")))
                                                    for k, check in _A1111_SHAPES.items()) < 2:
        return None
    version = fields.get("Version", "")
    tool = ("Forge" if re.match(r"f\d", version) else "Fooocus" if "Fooocus" in version
            else "ComfyUI" if "ComfyUI" in version else "AUTOMATIC1111")
    shown = ", ".join(f"{k}: {_short(fields[k], 40)}" for k in _A1111_FIELDS
                      if k in fields and k != "Version")
    says = "partly generated" if "Mask blur" in fields else "generated"
    return _item("parameters", says, f"{tool} parameters: {shown}")


def _json_parameters(obj: dict, key: str, context: dict) -> dict | None:
    if key == "prompt" and obj and all(isinstance(v, dict) for v in obj.values()) \
            and any("class_type" in v for v in obj.values()):
        return _item("parameters", "generated", _comfy_prompt(obj))
    if isinstance(obj.get("nodes"), list) and ("links" in obj or "last_node_id" in obj):
        types = _unique(n.get("type") for n in obj["nodes"][:500] if isinstance(n, dict))
        return _item("parameters", "generated",
                     f"ComfyUI workflow: {len(obj['nodes'])} nodes ({', '.join(types[:6])})")
    if key.startswith("invokeai") or str(obj.get("app_id") or "").startswith("invoke-ai"):
        model = obj.get("model")
        model = model.get("name") if isinstance(model, dict) else model
        return _item("parameters", "generated", "InvokeAI metadata: " + _fields(
            {"mode": obj.get("generation_mode"), "model": model, "steps": obj.get("steps"),
             "scheduler": obj.get("scheduler")}))
    if isinstance(obj.get("sui_image_params"), dict):
        p = obj["sui_image_params"]
        return _item("parameters", "generated", "SwarmUI parameters: " + _fields(
            {"model": p.get("model"), "steps": p.get("steps"), "sampler": p.get("sampler"),
             "seed": p.get("seed")}))
    text_keys = {str(k) for k in obj}
    if key == "fooocus_scheme" or "Fooocus V2 Expansion" in text_keys \
            or "Fooocus" in str(obj.get("version", obj.get("Version", ""))):
        return _item("parameters", "generated", "Fooocus parameters: " + _fields(
            {"model": obj.get("base_model", obj.get("Base Model")),
             "performance": obj.get("performance", obj.get("Performance")),
             "steps": obj.get("steps", obj.get("Steps")), "seed": obj.get("seed", obj.get("Seed"))}))
    steps = obj.get("steps", obj.get("num_inference_steps"))
    if isinstance(steps, (int, str)) and str(steps).isdigit() and len(_GENERIC_KEYS & text_keys) >= 2:
        novelai = ("uc" in obj or "noise_schedule" in obj or "v4_prompt" in obj
                   or "NovelAI" in context.get("Software", ""))
        tool = "NovelAI parameters" if novelai else "generation parameters"
        model = context.get("Source") if novelai else obj.get("model")
        return _item("parameters", "generated", f"{tool}: " + _fields(
            {"steps": steps, "sampler": obj.get("sampler", obj.get("sampler_name")),
             "scale": obj.get("scale", obj.get("cfg_scale")), "seed": obj.get("seed"),
             "model": model}))
    return None


def _comfy_prompt(obj: dict) -> str:
    nodes = list(obj.values())[:2000]
    models = _unique(n.get("inputs", {}).get(k) for n in nodes if isinstance(n.get("inputs"), dict)
                     for k in ("ckpt_name", "unet_name"))
    sampler = next((n["inputs"] for n in nodes if "KSampler" in str(n.get("class_type"))
                    and isinstance(n.get("inputs"), dict)), {})
    return f"ComfyUI prompt: {len(obj)} nodes; " + _fields(
        {"model": models[0] if models else None, "steps": sampler.get("steps"),
         "sampler": sampler.get("sampler_name"), "seed": sampler.get("seed")})


def _fields(values: dict) -> str:
    shown = [f"{k} {_short(v, 48)}" for k, v in values.items()
             if isinstance(v, (str, int, float)) and str(v) != ""]
    return ", ".join(shown) if shown else "no settings listed"


def _unique(values) -> list[str]:
    out: list[str] = []
    for v in values:
        if isinstance(v, str) and v and v not in out:
            out.append(v)
    return out


def _flags(text: str) -> str:
    return " ".join(t for t in text.split()[:60] if t.startswith("-"))[:120] or "present"


def _mj_flags(text: str) -> str:
    flags = re.findall(r"--(?:ar|v|s|q|c|style|chaos|stylize|niji|seed)\b[ ]?[\w:.]{0,12}", text[-4000:])
    return f" ({' '.join(flags[:6])})" if flags else ""


# --------------------------------------------------------------------------- C2PA

_c2pa_lock = threading.Lock()
_c2pa_state: dict = {}


def _c2pa_module():
    """The c2pa module, imported once; None when it is not installed or cannot load."""
    if "module" not in _c2pa_state:
        with _c2pa_lock:
            if "module" not in _c2pa_state:
                try:
                    import c2pa  # noqa: PLC0415 - optional extra, imported lazily
                    _c2pa_state["module"] = c2pa if hasattr(c2pa, "Reader") else None
                except Exception:
                    _c2pa_state["module"] = None
    return _c2pa_state["module"]


def _c2pa_context(c2pa):
    """A Context that never fetches anything (no OCSP, no remote manifests), one per process."""
    key = ("context", os.getpid())
    if key not in _c2pa_state:
        settings = c2pa.Settings.from_dict(
            {"verify": {"ocsp_fetch": False, "remote_manifest_fetch": False}})
        _c2pa_state[key] = c2pa.Context(settings)
    return _c2pa_state[key]


def _read_c2pa(data: bytes, mime: str) -> dict:
    c2pa = _c2pa_module()
    if c2pa is None:
        return _item("c2pa", None, C2PA_EXTRA_MISSING, signature="not checked")
    if _c2pa_state.get("hung"):
        return _item("c2pa", None, "C2PA manifest present; not read: the c2pa library hung "
                     "earlier in this process", signature="not checked")
    try:
        store = _bounded_call(lambda: _c2pa_store(c2pa, data, mime), C2PA_TIMEOUT_S)
    except TimeoutError:
        _c2pa_state["hung"] = True
        return _item("c2pa", None, f"C2PA manifest could not be read: c2pa took over "
                     f"{C2PA_TIMEOUT_S:g} s", signature="not checked")
    except Exception as exc:
        return _item("c2pa", None, f"C2PA manifest could not be read: {_short(exc, 120)}",
                     signature="not checked")
    try:
        return _c2pa_evidence(store)
    except Exception as exc:
        return _item("c2pa", None, f"C2PA manifest could not be interpreted: {type(exc).__name__}",
                     signature="not checked")


def _c2pa_store(c2pa, data: bytes, mime: str) -> dict:
    import io  # noqa: PLC0415 - only needed on this rare path

    with c2pa.Reader(mime, io.BytesIO(data), None, _c2pa_context(c2pa)) as reader:
        return json.loads(reader.json())


def _bounded_call(fn, timeout: float):
    """fn() in a daemon thread; TimeoutError when it does not finish in `timeout` seconds."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="fakedet-c2pa", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["value"]


_TRUST_ONLY = {"signingCredential.untrusted", "timeStamp.untrusted",
               "signingCredential.ocsp.skipped", "signingCredential.ocsp.inaccessible"}
_EDIT_ACTIONS = {"c2pa.edited", "c2pa.color_adjustments", "c2pa.cropped", "c2pa.drawing",
                 "c2pa.filtered", "c2pa.orientation", "c2pa.resized", "c2pa.placed",
                 "c2pa.removed", "c2pa.redacted"}


def _c2pa_evidence(store: dict) -> dict:
    manifests = store.get("manifests") or {}
    manifest = manifests.get(store.get("active_manifest")) or {}
    says, summary = _manifest_says(manifest, manifests, depth=0)
    failures = _c2pa_failures(store)
    state = store.get("validation_state")
    if failures or state == "Invalid":
        signature = "invalid: " + (", ".join(failures[:4]) or f"validation state {state}")
    elif state == "Trusted":
        signature = "valid, signer trusted"
    else:
        signature = NOT_VERIFIED
    generator = _claim_generator(manifest)
    detail = f"C2PA manifest by {generator}: {summary}"
    if signature.startswith("invalid"):
        detail += f"; validation failed: {', '.join(failures[:4]) or state}"
    return _item("c2pa", says, detail, signature=signature)


def _c2pa_failures(store: dict) -> list[str]:
    codes: list[str] = []
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    for entry in list(results.get("failure") or []) + list(store.get("validation_status") or []):
        code = entry.get("code") if isinstance(entry, dict) else None
        if code and code not in _TRUST_ONLY and code not in codes:
            codes.append(code)
    return codes


def _claim_generator(manifest: dict) -> str:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        name = " ".join(str(info[0].get(k, "")) for k in ("name", "version")).strip()
        if name:
            return _short(name, 60)
    return _short(manifest.get("claim_generator") or "unknown software", 60)


def _manifest_says(manifest: dict, manifests: dict, depth: int) -> tuple[str | None, str]:
    says, parts = None, []
    for action in _actions(manifest)[:200]:
        name = str(action.get("action", ""))
        code = _dst_code(str(action.get("digitalSourceType") or ""))
        said = _action_says(name, code, action)
        if _RANK[said] > _RANK[says]:
            says = said
        if len(parts) < 4:
            parts.append(f"{name} ({code})" if code else name)
    if depth < 8:
        for ingredient in (manifest.get("ingredients") or [])[:50]:
            if not isinstance(ingredient, dict):
                continue
            parent = manifests.get(ingredient.get("active_manifest"))
            if not parent or parent is manifest:
                continue
            parent_says, _ = _manifest_says(parent, manifests, depth + 1)
            if ingredient.get("relationship") != "parentOf" and parent_says == "generated":
                parent_says = "partly generated"
            if _RANK[parent_says] > _RANK[says]:
                says = parent_says
                parts.append(f"ingredient says {parent_says}")
    return says, ", ".join(parts) if parts else "no actions"


def _actions(manifest: dict) -> list[dict]:
    out: list[dict] = []
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
            data = assertion.get("data") or {}
            out.extend(a for a in data.get("actions") or [] if isinstance(a, dict))
    return out


def _action_says(name: str, code: str, action: dict) -> str | None:
    said = DIGITAL_SOURCE_TYPES.get(code)
    if said == "generated" and name != "c2pa.created":
        return "partly generated"                  # generated content placed into / editing an asset
    if said:
        return said
    if name == "c2pa.created":
        agent = action.get("softwareAgent")
        agent = agent.get("name") if isinstance(agent, dict) else agent
        return _tool_says(str(agent or ""), editors=False)
    return "edited" if name in _EDIT_ACTIONS else None


#: what an evidence item must say to make the image "fake" whatever the model's score
GENERATED = ("generated", "partly generated")


def telling_evidence(evidence: "list | None") -> list:
    """The evidence items that say something of the image's making (not the items saying only
    what could not be read, or present but unread, which have says None)."""
    return [e for e in evidence or () if e.get("says") is not None]


def generated_evidence(evidence: "list | None") -> list:
    """The evidence items that say the image was generated or partly generated."""
    return [e for e in evidence or () if e.get("says") in GENERATED]
