"""Provenance metadata reader: every case is an image built in the test (no files, no network)."""

from __future__ import annotations

import datetime
import io
import json
import struct
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin

from fakedet.data import provenance
from fakedet.data.provenance import SAYS, read_evidence

DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"
A1111 = ("a cat on a sofa, masterpiece, " * 40 + "\nNegative prompt: blurry, ugly\n"
         "Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1234, "
         "Size: 1024x1024, Model hash: 31e35c80fc, Model: sd_xl_base, "
         'Lora hashes: "a: 1, b: 2", Version: v1.10.1')


# --------------------------------------------------------------------------- builders

def _image(size=(48, 32)) -> Image.Image:
    """A small picture with a gradient (a scan refuses an image of one colour)."""
    w, h = size
    return Image.linear_gradient("L").resize((w, h)).convert("RGB").point(lambda v: 60 + v // 2)


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png(pnginfo=None) -> bytes:
    return _save(_image(), "PNG", pnginfo=pnginfo)


def _png_text(*pairs, kind="tEXt") -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in pairs:
        if kind == "tEXt":
            info.add_text(key, value)
        elif kind == "zTXt":
            info.add_text(key, value, zip=True)
        else:
            info.add_itxt(key, value, zip=kind == "iTXt-z")
    return _png(info)


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(
        ">I", zlib.crc32(ctype + payload))


def _png_with_chunks(*chunks: bytes) -> bytes:
    """A plain PNG with raw chunks inserted right after IHDR."""
    data = _png()
    at = 8 + 8 + 13 + 4
    return data[:at] + b"".join(chunks) + data[at:]


def _jpeg_with_segments(*segments: tuple[int, bytes]) -> bytes:
    """A plain JPEG with raw segments (marker, payload) inserted right after SOI."""
    data = _save(_image(), "JPEG")
    raw = b"".join(bytes([0xFF, m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments)
    return data[:2] + raw + data[2:]


def _exif(software=None, user_comment=None, description=None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R6"
    if software is not None:
        exif[0x0131] = software
    if description is not None:
        exif[0x010E] = description
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    return exif.tobytes()


def _xmp(body: str) -> str:
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
            f'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"{body}'
            '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def _dst_xmp(code: str, form: str = "attribute") -> str:
    if form == "attribute":
        return _xmp(f' Iptc4xmpExt:DigitalSourceType="{DST}{code}"/>')
    if form == "element":
        return _xmp(f"><Iptc4xmpExt:DigitalSourceType>{DST}{code}"
                    "</Iptc4xmpExt:DigitalSourceType></rdf:Description>")
    return _xmp(f'><Iptc4xmpExt:DigitalSourceType rdf:resource="{DST}{code}"/></rdf:Description>')


def _with_xmp(fmt: str, packet: str) -> bytes:
    if fmt == "JPEG":
        return _jpeg_with_segments((0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode()))
    if fmt == "PNG":
        return _png_text(("XML:com.adobe.xmp", packet), kind="iTXt")
    return _save(_image(), "WEBP", xmp=packet.encode())


def _strip(data: bytes, fmt: str) -> bytes:
    """The same pixels re-saved without any metadata."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    return _save(Image.frombytes(im.mode, im.size, im.tobytes()), fmt)


def _only(items: list[dict]) -> dict:
    assert len(items) == 1, items
    return items[0]


def _assert_shape(items: list[dict]) -> None:
    for it in items:
        assert set(it) >= {"kind", "says", "detail"}
        assert it["says"] in SAYS or it["says"] is None
        assert isinstance(it["detail"], str) and len(it["detail"]) <= 200
        assert ("signature" in it) == (it["kind"] == "c2pa")


def _unreadable(items: list[dict], *words: str) -> dict:
    """The single item of something that could not be read."""
    _assert_shape(items)
    it = _only(items)
    assert it["says"] is None
    assert "could not be read" in it["detail"], it
    for word in words:
        assert word in it["detail"], it
    return it


# --------------------------------------------------------------------------- plain images

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP"])
def test_plain_images_have_no_evidence(fmt):
    assert read_evidence(_save(_image(), fmt)) == []


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBP",
                                  b"II*\x00", b"MM\x00*\x00\x00\x00\x08", b"\x00\x00\x00\x0cftypavif",
                                  b"not an image at all"])
def test_tiny_and_odd_inputs(data):
    items = read_evidence(data)
    _assert_shape(items)
    assert all(it["says"] is None for it in items)


def test_metadata_free_jpeg_costs_almost_nothing(monkeypatch):
    monkeypatch.setattr(provenance, "_read_c2pa", lambda *a: pytest.fail("c2pa called"))
    data = _save(Image.effect_noise((1024, 1024), 40).convert("RGB"), "JPEG", quality=90)
    start = time.perf_counter()
    for _ in range(5):
        Image.open(io.BytesIO(data)).load()
    decode = (time.perf_counter() - start) / 5
    start = time.perf_counter()
    for _ in range(200):
        assert read_evidence(data) == []
    read = (time.perf_counter() - start) / 200
    assert read < 0.02 * decode, (read, decode)
    assert read < 1e-3


# --------------------------------------------------------------------------- generation parameters

@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt", "iTXt-z"])
def test_a1111_parameters_chunk(kind):
    data = _png_text(("parameters", A1111), kind=kind)
    it = _only(read_evidence(data))
    assert it["kind"] == "parameters" and it["says"] == "generated"
    assert it["detail"].startswith("AUTOMATIC1111 parameters: Steps: 20, Sampler: Euler a")
    assert "Model: sd_xl_base" in it["detail"] and "cat" not in it["detail"]
    assert read_evidence(_strip(data, "PNG")) == []


def test_forge_and_inpainting_parameters():
    forge = A1111.replace("v1.10.1", "f2.0.1v1.10.1-previous-313")
    assert _only(read_evidence(_png_text(("parameters", forge))))["detail"].startswith("Forge")
    inpaint = A1111.replace("Steps: 20,", "Steps: 20, Mask blur: 4,")
    assert _only(read_evidence(_png_text(("parameters", inpaint))))["says"] == "partly generated"


def test_plain_text_is_not_parameters():
    assert read_evidence(_png_text(("parameters", "holiday photo, 20 steps from the beach"),
                                   ("Comment", "Steps: many"), ("Description", "my cat"))) == []


COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "cfg": 8,
                                               "sampler_name": "euler", "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat " * 500, "clip": ["4", 1]}},
}
COMFY_WORKFLOW = {"last_node_id": 9, "last_link_id": 9, "links": [],
                  "nodes": [{"id": 3, "type": "KSampler"}, {"id": 4, "type": "CheckpointLoaderSimple"},
                            {"id": 6, "type": "CLIPTextEncode"}]}


def test_comfyui_prompt_and_workflow():
    data = _png_text(("prompt", json.dumps(COMFY_PROMPT)), ("workflow", json.dumps(COMFY_WORKFLOW)))
    items = read_evidence(data)
    _assert_shape(items)
    assert [it["kind"] for it in items] == ["parameters", "parameters"]
    assert all(it["says"] == "generated" for it in items)
    assert items[0]["detail"].startswith("ComfyUI prompt: 3 nodes")
    assert "sd_xl_base_1.0.safetensors" in items[0]["detail"] and "cat" not in items[0]["detail"]
    assert items[1]["detail"].startswith("ComfyUI workflow: 3 nodes (KSampler")
    assert read_evidence(_strip(data, "PNG")) == []


def test_invokeai_metadata():
    meta = {"generation_mode": "sdxl_txt2img", "positive_prompt": "a cat " * 300,
            "model": {"name": "juggernautXL", "base": "sdxl"}, "steps": 30, "scheduler": "euler"}
    data = _png_text(("invokeai_metadata", json.dumps(meta)), kind="iTXt")
    it = _only(read_evidence(data))
    assert it["says"] == "generated" and it["detail"].startswith("InvokeAI metadata:")
    assert "juggernautXL" in it["detail"] and "cat" not in it["detail"]
    assert read_evidence(_strip(data, "PNG")) == []


def test_novelai_software_and_comment():
    comment = {"prompt": "1girl, " * 200, "steps": 28, "height": 1216, "width": 832, "scale": 5.0,
               "uncond_scale": 0.0, "seed": 1, "sampler": "k_euler_ancestral", "uc": "lowres"}
    data = _png_text(("Title", "AI generated image"), ("Description", "1girl, " * 200),
                     ("Software", "NovelAI"), ("Source", "NovelAI Diffusion V4 4F49EC75"),
                     ("Comment", json.dumps(comment)))
    items = read_evidence(data)
    _assert_shape(items)
    assert [(it["kind"], it["says"]) for it in items] == [
        ("png-text", "generated"), ("png-text", "generated"), ("parameters", "generated")]
    assert items[2]["detail"].startswith("NovelAI parameters: steps 28, sampler k_euler_ancestral")
    assert read_evidence(_strip(data, "PNG")) == []


def test_fooocus_and_midjourney_and_swarmui():
    fooocus = {"Prompt": "a cat", "Fooocus V2 Expansion": "a cat, detailed", "Steps": 30,
               "Base Model": "juggernautXL_v8Rundiffusion.safetensors", "Performance": "Speed"}
    it = _only(read_evidence(_png_text(("parameters", json.dumps(fooocus)), ("fooocus_scheme", "fooocus"))))
    assert it["says"] == "generated" and it["detail"].startswith("Fooocus parameters")
    mj = "a lighthouse at dusk --ar 16:9 --v 6.1 Job ID: 0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    it = _only(read_evidence(_png_text(("Description", mj))))
    assert it["says"] == "generated" and it["detail"].startswith("Midjourney job 0f1e2d3c")
    swarm = {"sui_image_params": {"prompt": "x", "model": "flux1-dev", "steps": 20, "seed": 3}}
    it = _only(read_evidence(_png_text(("parameters", json.dumps(swarm)))))
    assert it["detail"].startswith("SwarmUI parameters: model flux1-dev")


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("encoding", ["unicode-be", "unicode-le", "ascii"])
def test_a1111_in_exif_user_comment(fmt, encoding):
    text = A1111.replace("a cat", "ein Kätzchen") if encoding != "ascii" else A1111
    prefix, codec = {"unicode-be": (b"UNICODE\x00", "utf-16-be"), "unicode-le": (b"UNICODE\x00", "utf-16-le"),
                     "ascii": (b"ASCII\x00\x00\x00", "ascii")}[encoding]
    comment = prefix + text.encode(codec)
    data = _save(_image(), fmt, exif=_exif(user_comment=comment))
    it = _only(read_evidence(data))
    assert it["kind"] == "parameters" and it["says"] == "generated"
    assert it["detail"].startswith("AUTOMATIC1111 parameters: Steps: 20")
    assert read_evidence(_strip(data, fmt)) == []


def test_novelai_exif_description_and_jpeg_comment():
    data = _save(_image(), "JPEG", exif=_exif(software="NovelAI", description="1girl, solo"))
    it = _only(read_evidence(data))
    assert (it["kind"], it["says"], it["detail"]) == ("exif", "generated", "EXIF Software: NovelAI")
    data = _save(_image(), "JPEG", comment=A1111.encode())
    assert _only(read_evidence(data))["detail"].startswith("AUTOMATIC1111")


# --------------------------------------------------------------------------- EXIF / XMP tools

def test_photoshop_software_is_edited():
    data = _save(_image(), "JPEG", exif=_exif(software="Adobe Photoshop 25.0 (Windows)"))
    assert read_evidence(data) == [
        {"kind": "exif", "says": "edited", "detail": "EXIF Software: Adobe Photoshop 25.0 (Windows)"}]
    assert read_evidence(_strip(data, "JPEG")) == []


@pytest.mark.parametrize("software", ["Ver.1.00", "HDR+ 1.0.540104767zd", "iOS 17.2.1",
                                      "Firmware Version 1.1.0", "Editor de Imagen 2", "Imagination",
                                      # a review: a surname, Spanish, the camera glasses' app
                                      "Marco Dalle Vedove", "Foto dalle collezioni del Museo",
                                      "Imagen 2 cortesía de NASA", "Meta AI"])
def test_camera_software_is_not_evidence(software):
    assert read_evidence(_save(_image(), "JPEG", exif=_exif(software=software))) == []
    assert read_evidence(_save(_image(), "TIFF", exif=_exif(software=software))) == []


@pytest.mark.parametrize("software", ["DALL-E", "DALL-E 3", "dall-e-3", "OpenAI DALL-E", "Imagen 3",
                                      "Google Imagen", "Midjourney 6.1", "Imagined with AI"])
def test_generator_names_are_evidence(software):
    it = _only(read_evidence(_save(_image(), "JPEG", exif=_exif(software=software))))
    assert (it["says"], it["detail"]) == ("generated", f"EXIF Software: {software}")


def test_tiff_software():
    data = _save(_image(), "TIFF", exif=_exif(software="GIMP 2.10.36"))
    assert _only(read_evidence(data))["says"] == "edited"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("code,says", [
    ("trainedAlgorithmicMedia", "generated"), ("algorithmicMedia", "generated"),
    ("compositeWithTrainedAlgorithmicMedia", "partly generated"), ("compositeSynthetic", "partly generated"),
    ("algorithmicallyEnhanced", "edited"), ("minorHumanEdits", "edited"), ("compositeCapture", "edited"),
    ("digitalCapture", "captured"), ("computationalCapture", "captured"), ("negativeFilm", "captured"),
    ("screenCapture", "captured")])
def test_xmp_digital_source_type(fmt, code, says):
    data = _with_xmp(fmt, _dst_xmp(code))
    assert read_evidence(data) == [
        {"kind": "xmp", "says": says, "detail": f"IPTC DigitalSourceType: {code}"}]
    assert read_evidence(_strip(data, fmt)) == []


@pytest.mark.parametrize("form", ["attribute", "element", "resource"])
def test_xmp_forms(form):
    items = read_evidence(_with_xmp("JPEG", _dst_xmp("trainedAlgorithmicMedia", form)))
    assert _only(items)["says"] == "generated"


@pytest.mark.parametrize("code", ["digitalCreation", "virtualRecording", "somethingNew2031"])
def test_xmp_digital_source_type_without_a_verdict(code):
    it = _only(read_evidence(_with_xmp("PNG", _dst_xmp(code))))
    assert it["says"] is None and code in it["detail"]


def test_xmp_credit_and_creator_tool():
    packet = _xmp(' photoshop:Credit="Made with Google AI" xmp:CreatorTool="Adobe Photoshop 25.0"'
                  f' Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"/>')
    items = read_evidence(_with_xmp("JPEG", packet))
    _assert_shape(items)
    assert [(it["kind"], it["says"]) for it in items] == [
        ("xmp", "generated"), ("xmp", "edited"), ("xmp", "generated")]
    packet = _xmp("><photoshop:Credit>Edited with Google AI</photoshop:Credit>"
                  "<xmp:CreatorTool>Canon EOS Utility</xmp:CreatorTool></rdf:Description>")
    assert _only(read_evidence(_with_xmp("WEBP", packet)))["says"] == "partly generated"


def test_jpeg_extended_xmp():
    packet = _dst_xmp("trainedAlgorithmicMedia").encode()
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    half = len(packet) // 2
    ext = b"http://ns.adobe.com/xmp/extension/\x00" + guid + struct.pack(">I", len(packet))
    data = _jpeg_with_segments((0xE1, ext + struct.pack(">I", half) + packet[half:]),
                               (0xE1, ext + struct.pack(">I", 0) + packet[:half]))
    assert _only(read_evidence(data))["says"] == "generated"


def test_duplicates_are_merged():
    packet = _dst_xmp("trainedAlgorithmicMedia").encode()
    segment = (0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet)
    assert len(read_evidence(_jpeg_with_segments(segment, segment))) == 1


# --------------------------------------------------------------------------- malformed metadata

def test_truncated_jpeg_segment():
    data = _save(_image(), "JPEG", exif=_exif(software="Adobe Photoshop 25.0"))
    at = data.index(b"Exif")
    _unreadable(read_evidence(data[:at + 30]), "APP1", "declares")


def test_bad_exif_offsets():
    tiff = b"MM\x00*\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHII", 0x0131, 2, 5000, 99999)
    _unreadable(read_evidence(_jpeg_with_segments((0xE1, b"Exif\x00\x00" + tiff))), "EXIF")
    tiff = b"II*\x00\xff\xff\x00\x00"
    _unreadable(read_evidence(_jpeg_with_segments((0xE1, b"Exif\x00\x00" + tiff))), "EXIF")


def _fake_jumbf(declared: int | None = None) -> bytes:
    """The start of a C2PA manifest store: a jumb superbox with a c2pa description box."""
    jumd = b"jumd" + provenance._C2PA_UUID_PREFIX + b"\x03c2pa\x00"
    jumd = struct.pack(">I", len(jumd) + 4) + jumd
    body = jumd + b"\x00" * 64
    return struct.pack(">I", declared if declared is not None else len(body) + 8) + b"jumb" + body


def test_jumbf_with_bogus_length():
    data = _png_with_chunks(_chunk(b"caBX", _fake_jumbf(0xFFFFFFF0)))
    _unreadable(read_evidence(data), "JUMBF", "4294967280")
    segment = b"JP\x00\x01\x00\x00\x00\x01" + _fake_jumbf(3)
    it = _unreadable(read_evidence(_jpeg_with_segments((0xEB, segment))), "invalid length")
    assert it["kind"] == "c2pa" and it["signature"] == "not checked"
    _unreadable(read_evidence(_png_with_chunks(_chunk(b"caBX", b"\x00\x01"))), "no JUMBF")


def test_c2pa_present_without_the_extra(monkeypatch):
    data = _png_with_chunks(_chunk(b"caBX", _fake_jumbf()))
    monkeypatch.setitem(provenance._c2pa_state, "module", None)
    assert not provenance.c2pa_available()
    it = _only(read_evidence(data))
    assert it == {"kind": "c2pa", "says": None, "signature": "not checked",
                  "detail": "C2PA manifest present; reading it needs the c2pa extra: "
                            "pip install 'fakedet[c2pa]'"}
    assert "reading is off" in _only(read_evidence(data, use_c2pa=False))["detail"]


def test_c2pa_library_failures_are_items(monkeypatch):
    class Broken:
        class Reader:
            def __init__(self, *a, **k):
                raise RuntimeError("native library exploded")

        class Settings:
            @staticmethod
            def from_dict(d):
                return None

        @staticmethod
        def Context(settings):
            return None

    monkeypatch.setitem(provenance._c2pa_state, "module", Broken)
    it = _unreadable(read_evidence(_png_with_chunks(_chunk(b"caBX", _fake_jumbf()))), "exploded")
    assert it["kind"] == "c2pa"


def test_c2pa_hang_is_bounded(monkeypatch):
    monkeypatch.setattr(provenance, "C2PA_TIMEOUT_S", 0.2)
    monkeypatch.setattr(provenance, "_c2pa_store", lambda *a: time.sleep(3))
    monkeypatch.setitem(provenance._c2pa_state, "module", object())
    monkeypatch.setitem(provenance._c2pa_state, "hung", False)
    data = _png_with_chunks(_chunk(b"caBX", _fake_jumbf()))
    start = time.perf_counter()
    _unreadable(read_evidence(data), "took over")
    assert time.perf_counter() - start < 1.5
    assert "hung earlier" in _only(read_evidence(data))["detail"]


_LAUGHS = "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10))
BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + _LAUGHS
                  + ']>' + _xmp(' Iptc4xmpExt:DigitalSourceType="&lol9;"/>'))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_xmp_billion_laughs(fmt):
    start = time.perf_counter()
    _unreadable(read_evidence(_with_xmp(fmt, BILLION_LAUGHS)), "DTD")
    assert time.perf_counter() - start < 0.5


def test_xmp_deep_nesting():
    nested = "<rdf:Bag><rdf:li>" * 25_000 + "x" + "</rdf:li></rdf:Bag>" * 25_000
    start = time.perf_counter()
    assert read_evidence(_with_xmp("PNG", _xmp(">" + nested + "</rdf:Description>"))) == []
    deep = _xmp(">" + "<a>" * 100_000 + "<Iptc4xmpExt:DigitalSourceType>" + "<b>" * 1000)
    items = read_evidence(_with_xmp("PNG", deep))
    _assert_shape(items)
    assert all(it["says"] is None for it in items)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("ctype", [b"tEXt", b"zTXt", b"iTXt"])
def test_100_mb_text_chunk_is_refused_quickly(ctype):
    size = 100 << 20
    head = struct.pack(">I", size) + ctype + b"parameters\x00"
    chunk = head + bytes(size - 11) + b"\x00\x00\x00\x00"
    data = _png_with_chunks(chunk)
    start = time.perf_counter()
    it = _unreadable(read_evidence(data), f"{size} bytes exceeds the limit")
    assert time.perf_counter() - start < 0.05
    assert it["kind"] == "parameters"


def test_zlib_bomb_in_ztxt():
    bomb = zlib.compress(bytes(32 << 20), 9)
    assert len(bomb) < (1 << 20)
    data = _png_with_chunks(_chunk(b"zTXt", b"parameters\x00\x00" + bomb))
    start = time.perf_counter()
    _unreadable(read_evidence(data), "beyond the limit")
    assert time.perf_counter() - start < 0.5


def test_corrupt_ztxt_and_truncated_chunk():
    _unreadable(read_evidence(_png_with_chunks(_chunk(b"zTXt", b"parameters\x00\x00garbage"))), "corrupt")
    data = _png_text(("parameters", A1111))
    at = data.index(b"tEXtparameters")
    _unreadable(read_evidence(data[:at + 100]), "tEXt", "remain")


def test_invalid_utf8_text_chunks():
    bad = b"Steps: 20, \xff\xfe\xc3(, Sampler: \x80Euler, Seed: 1"
    itxt = _chunk(b"iTXt", b"parameters\x00\x00\x00\x00\x00" + bad)
    _unreadable(read_evidence(_png_with_chunks(itxt)), "invalid UTF-8")
    items = read_evidence(_png_with_chunks(_chunk(b"tEXt", b"parameters\x00" + bad)))
    _assert_shape(items)    # tEXt is Latin-1 by definition: read, not refused
    items = read_evidence(_png_with_chunks(_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + bad)))
    _unreadable(items, "invalid UTF-8")


def test_broken_json_and_deep_json():
    _unreadable(read_evidence(_png_text(("prompt", "{\"3\": {\"class_type\": "))), "invalid JSON")
    deep = "[" * 200_000 + "]" * 200_000
    items = read_evidence(_png_text(("workflow", "{\"nodes\": " + deep + "}"), kind="zTXt"))
    _unreadable(items, "invalid JSON")


def test_reader_bug_never_raises(monkeypatch):
    monkeypatch.setattr(provenance._Scan, "png", lambda self: 1 / 0)
    it = _unreadable(read_evidence(_png()), "ZeroDivisionError")
    assert it["kind"] == "metadata"


# --------------------------------------------------------------------------- C2PA, signed in the test

@pytest.fixture(scope="module")
def signer():
    c2pa = pytest.importorskip("c2pa")
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fakedet tests")])

    def usage(sign: bool):
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, public, ca: bool):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name("Throw-away CA"))
                   .public_key(public).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(usage(sign=not ca), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))
        if not ca:
            builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                                             critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                      critical=False))
        return builder.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    chain = (cert("Throw-away signer", key.public_key(), False).public_bytes(pem)
             + cert("Throw-away CA", ca_key.public_key(), True).public_bytes(pem))
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def sign(fmt: str, source_type: str, blob: int = 0) -> bytes:
        mime = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[fmt]
        manifest = {"claim_generator_info": [{"name": "fakedet-test-generator", "version": "1.0"}],
                    "title": "test image",
                    "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                        {"action": "c2pa.created", "digitalSourceType": DST + source_type}]}}]}
        if blob:        # a manifest too big for one JPEG APP11 segment
            manifest["assertions"].append({"label": "org.fakedet.test", "data": {"blob": "x" * blob}})
        source = io.BytesIO(_save(Image.effect_noise((64, 48), 30).convert("RGB"), fmt))
        out = io.BytesIO()
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None)
        with c2pa.Signer.from_info(info) as signer_, c2pa.Builder(manifest) as builder:
            builder.sign(signer_, mime, source, out)
        return out.getvalue()

    return sign


def _tamper(data: bytes, fmt: str) -> bytes:
    """Change pixel data after signing (a byte of the JPEG scan / the PNG image data)."""
    out = bytearray(data)
    at = len(out) - 20 if fmt == "JPEG" else data.index(b"IDAT") + 12
    out[at] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_c2pa_generated(signer, fmt):
    data = signer(fmt, "trainedAlgorithmicMedia")
    it = _only(read_evidence(data))
    _assert_shape([it])
    assert it["kind"] == "c2pa" and it["says"] == "generated"
    assert it["signature"] == "valid, signer not verified (no trust list)"
    assert "fakedet-test-generator" in it["detail"] and "trainedAlgorithmicMedia" in it["detail"]
    assert read_evidence(_strip(data, fmt)) == []
    off = _only(read_evidence(data, use_c2pa=False))
    assert off["says"] is None and off["signature"] == "not checked"


def test_c2pa_manifest_across_jpeg_segments(signer):
    data = signer("JPEG", "trainedAlgorithmicMedia", blob=150_000)
    assert data.count(b"\xff\xeb") >= 3     # APP11 markers
    it = _only(read_evidence(data))
    assert (it["says"], it["signature"]) == ("generated", provenance.NOT_VERIFIED)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_c2pa_captured(signer, fmt):
    it = _only(read_evidence(signer(fmt, "digitalCapture")))
    assert (it["says"], it["signature"]) == ("captured", "valid, signer not verified (no trust list)")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_c2pa_tampered(signer, fmt):
    it = _only(read_evidence(_tamper(signer(fmt, "trainedAlgorithmicMedia"), fmt)))
    assert it["signature"].startswith("invalid: ") and "dataHash.mismatch" in it["signature"]
    assert "dataHash.mismatch" in it["detail"]
    assert it["says"] == "generated"          # what the manifest says; the integrator weighs it


def test_c2pa_truncated_file(signer):
    data = signer("JPEG", "trainedAlgorithmicMedia")
    it = _unreadable(read_evidence(data[: data.index(b"jumb") + 400]), "APP11")
    assert it["kind"] == "c2pa" and it["signature"] == "not checked"


def test_c2pa_manifest_interpretation():
    """Manifests c2pa-python would return, interpreted without the library."""
    def store(actions, ingredients=(), failures=(), state="Valid", extra=None):
        manifests = {"m1": {"claim_generator_info": [{"name": "Adobe Photoshop", "version": "26.0"}],
                            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
                            "ingredients": list(ingredients)}}
        manifests.update(extra or {})
        return {"active_manifest": "m1", "manifests": manifests, "validation_state": state,
                "validation_results": {"activeManifest": {"failure": [{"code": c} for c in failures]}}}

    fill = [{"action": "c2pa.opened"},
            {"action": "c2pa.edited", "digitalSourceType": DST + "compositeWithTrainedAlgorithmicMedia"}]
    it = provenance._c2pa_evidence(store(fill, failures=["signingCredential.untrusted"]))
    assert it["says"] == "partly generated" and it["signature"] == provenance.NOT_VERIFIED
    assert it["detail"].startswith("C2PA manifest by Adobe Photoshop 26.0: c2pa.opened, c2pa.edited")
    crop = [{"action": "c2pa.opened"}, {"action": "c2pa.cropped"}]
    camera = {"m0": {"assertions": [{"label": "c2pa.actions", "data": {"actions": [
        {"action": "c2pa.created", "digitalSourceType": DST + "digitalCapture"}]}}]}}
    parent = [{"relationship": "parentOf", "active_manifest": "m0"}]
    assert provenance._c2pa_evidence(store(crop, parent, extra=camera))["says"] == "edited"
    firefly = {"m0": {"assertions": [{"label": "c2pa.actions", "data": {"actions": [
        {"action": "c2pa.created", "digitalSourceType": DST + "trainedAlgorithmicMedia"}]}}]}}
    assert provenance._c2pa_evidence(store(crop, parent, extra=firefly))["says"] == "generated"
    component = [{"relationship": "componentOf", "active_manifest": "m0"}]
    assert provenance._c2pa_evidence(store(crop, component, extra=firefly))["says"] == "partly generated"
    bad = provenance._c2pa_evidence(store(crop, failures=["claimSignature.mismatch"], state="Invalid"))
    assert bad["signature"] == "invalid: claimSignature.mismatch"
    assert provenance._c2pa_evidence(store([]))["says"] is None
    loop = {"m1x": {}}
    assert provenance._c2pa_evidence(
        store(crop, [{"relationship": "parentOf", "active_manifest": "m1"}], extra=loop))["says"] == "edited"


def test_mutated_files_never_raise():
    """Random byte changes, cuts and insertions in files with every kind of metadata."""
    import random

    seeds = [_png_text(("parameters", A1111)), _png_text(("prompt", json.dumps(COMFY_PROMPT)), kind="zTXt"),
             _with_xmp("JPEG", _dst_xmp("trainedAlgorithmicMedia")), _with_xmp("WEBP", _dst_xmp("digitalCapture")),
             _save(_image(), "JPEG", exif=_exif(software="GIMP", user_comment=b"ASCII\0\0\0" + A1111.encode())),
             _save(_image(), "TIFF", exif=_exif(software="GIMP")),
             _png_with_chunks(_chunk(b"caBX", _fake_jumbf()))]
    rng = random.Random(1234)
    for _ in range(1500):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[at] = rng.randrange(256)
            else:
                del data[at:at + rng.randint(1, 64)]
        items = read_evidence(bytes(data[:rng.randrange(len(data)) if rng.random() < 0.2 else None]),
                              use_c2pa=False)
        _assert_shape(items)


def test_a_null_json_field_neither_breaks_the_reader_nor_hides_other_evidence(monkeypatch):
    data = _png_text(("parameters", A1111), ("Comment", json.dumps({"app_id": None})))
    items = read_evidence(data)
    assert [it["says"] for it in items if it["kind"] == "parameters"] == ["generated"]
    assert not any("could not be read" in it["detail"] for it in items)

    # a reader's bug after some evidence was found keeps that evidence beside the failure
    monkeypatch.setattr(provenance, "_json_parameters", lambda *a, **k: (_ for _ in ()).throw(AttributeError()))
    items = read_evidence(data)
    assert any(it["kind"] == "parameters" and it["says"] == "generated" for it in items)
    assert any("metadata could not be read: AttributeError" in it["detail"] for it in items)


def test_a_caption_with_steps_is_not_parameters():
    """A photo caption with the word Steps and one field a generator also writes is no evidence;
    the generators' lines hold Steps with at least two of Sampler, Seed, CFG scale and Size."""
    for caption in ("Morning walk. Steps: 12000, Size: medium", "Steps: 12000, Seed: the garden",
                    "Steps: 3, Sampler: none, Size: large"):
        assert read_evidence(_png_text(("Description", caption))) == [], caption
    short = "portrait\nSteps: 20, Sampler: Euler a, Seed: 7"
    assert _only(read_evidence(_png_text(("parameters", short))))["says"] == "generated"


def test_a_record_labelled_by_evidence_keeps_the_models_own_verdict():
    """jsonl and json records of an image labelled fake by its provenance say what the model said."""
    from fakedet.inference.result import Result

    item = {"kind": "metadata", "says": "generated", "detail": "x"}
    by_evidence = Result("a.png", 0.2, "fake", evidence=[item], label_by="evidence", model_label="uncertain")
    assert by_evidence.to_dict()["model_label"] == "uncertain"
    by_model = Result("b.png", 0.2, "uncertain", evidence=[], label_by="model")
    assert by_model.to_dict()["model_label"] == "uncertain"  # every record has the same keys
    assert "model_label" not in Result("c.png", 0.2, "uncertain").to_dict()  # --no-provenance


def test_a_pil_image_keeps_the_evidence_of_its_files_metadata(tmp_path):
    """Image.open(p) and p get the same evidence and verdict from generation parameters, EXIF
    and XMP (Pillow keeps them in ``info``); a PIL image without metadata has none."""
    from PIL import Image, PngImagePlugin

    from fakedet.data.provenance import read_evidence, read_image_evidence

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    png = tmp_path / "a.png"
    _image((64, 64)).save(png, pnginfo=info)
    exif = Image.Exif()
    exif[0x0131] = "Midjourney"
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:'
           'DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
           '</rdf:RDF></x:xmpmeta>')
    jpg = tmp_path / "b.jpg"
    _image((64, 64)).save(jpg, exif=exif.tobytes(), xmp=xmp.encode())
    for path in (png, jpg):
        expected = read_evidence(path.read_bytes())
        assert expected and all(e["says"] == "generated" for e in expected)
        def key(e):
            return e["kind"], e["detail"]

        with Image.open(path) as im:  # the same items (in the order of the PNG they are read from)
            assert sorted(read_image_evidence(im), key=key) == sorted(expected, key=key)
            assert sorted(read_image_evidence(im.convert("RGB")), key=key) == sorted(expected, key=key)
    tif = tmp_path / "c.tif"
    Image.new("RGB", (16, 16)).save(tif, exif=exif.tobytes())  # a TIFF keeps its tags apart from info
    with Image.open(tif) as im:
        assert read_image_evidence(im) == read_evidence(tif.read_bytes()) != []
    assert read_image_evidence(Image.new("RGB", (8, 8))) == []
    odd = Image.new("RGB", (8, 8))
    odd.info.update({"Ünïcode key": "x", "": "y", "comment": b"\xff\xfe", "dpi": (72, 72), "参数": "z",
                     "lone": "\udc80", "big": "x" * (2 << 20)})
    assert read_image_evidence(odd) == []  # nothing that says how it was made, and no exception
    odd.info["parameters"] = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"
    assert [e["kind"] for e in read_image_evidence(odd)] == ["parameters"]  # the odd keys lose nothing


def test_a_pil_image_labelled_by_its_metadata_in_a_scan(tmp_path):
    from PIL import Image, PngImagePlugin

    from fakedet import Detector

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    png = tmp_path / "a.png"
    _image((64, 64)).save(png, pnginfo=info)
    det = Detector.load(workers=0)
    with Image.open(png) as im:
        by_path, by_image = det.predict([str(png), im])
    assert by_image.label == by_path.label == "fake" and by_image.label_by == "evidence"
    assert by_image.evidence == by_path.evidence
    # a TIFF keeps its tags in a directory of its own, which the copy the API takes must carry
    # (a code review: the copy had none, and the image was scored by the model alone)
    exif = Image.Exif()
    exif[0x0131] = "Midjourney 6.1"
    tif = tmp_path / "c.tif"
    _image((64, 64)).save(tif, exif=exif.tobytes())
    big = tmp_path / "d.tif"  # with a colour profile over the reader's limit, which the copy leaves out
    _image((64, 64)).save(big, exif=exif.tobytes(), icc_profile=b"\0" * 1_100_000)
    for path in (tif, big):
        with Image.open(path) as im:
            by_path, by_image = det.predict([str(path), im])
        assert by_image.label == by_path.label == "fake" and by_image.label_by == "evidence"
        assert by_image.evidence == by_path.evidence


# --------------------------------------------------------------------------- a code review's files

def _tiff_ifd0(software: bytes, exif_pointer: int | None = None, description_at: int | None = None) -> bytes:
    """A big-endian TIFF header and IFD0 holding Software, optionally an Exif IFD pointer and an
    ImageDescription whose value lies at ``description_at`` (past the data, for a broken one)."""
    entries = []
    value_at = 8 + 2 + 12 * 3 + 4
    entries.append(struct.pack(">HHI", 0x0131, 2, len(software)) + struct.pack(">I", value_at))
    if description_at is not None:
        entries.append(struct.pack(">HHII", 0x010E, 2, 100, description_at))
    if exif_pointer is not None:
        entries.append(struct.pack(">HHII", 0x8769, 4, 1, exif_pointer))
    entries += [struct.pack(">HHII", 0x0000, 1, 0, 0)] * (3 - len(entries))  # padding entries
    return b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 3) + b"".join(entries) + b"\0" * 4 + software


@pytest.mark.parametrize("broken", ["exif pointer", "a value"])
def test_one_bad_exif_offset_keeps_the_tags_that_can_be_read(broken):
    tiff = _tiff_ifd0(b"Midjourney 6.1\x00", exif_pointer=0xFFFF if broken == "exif pointer" else None,
                      description_at=0xFFFF if broken == "a value" else None)
    items = read_evidence(_jpeg_with_segments((0xE1, b"Exif\x00\x00" + tiff)))
    assert [(it["says"], it["detail"]) for it in items if it["says"]] == [
        ("generated", "EXIF Software: Midjourney 6.1")]
    assert [it["detail"] for it in items if not it["says"]] == [
        "EXIF could not be read in part: " + ("Exif IFD: IFD offset outside the data" if broken == "exif pointer"
                                               else "ImageDescription value outside the data")]


def test_png_exif_in_an_exif_chunk_after_jpegs_prefix_and_in_a_raw_profile():
    exif = _exif(software="Adobe Firefly")
    assert exif.startswith(b"Exif\x00\x00")  # as Pillow writes it, and some PNG writers keep
    want = [{"kind": "exif", "says": "generated", "detail": "EXIF Software: Adobe Firefly"}]
    assert read_evidence(_png_with_chunks(_chunk(b"eXIf", exif))) == want
    hexed = exif.hex()
    profile = "\nexif\n" + f"{len(exif):8d}\n" + "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72)) + "\n"
    raw = _png_text(("Raw profile type exif", profile), kind="zTXt")  # ImageMagick's way
    assert read_evidence(raw) == want
    assert Image.open(io.BytesIO(raw)).getexif()[0x0131] == "Adobe Firefly"  # as Pillow reads it
    bad = _png_text(("Raw profile type exif", "\nexif\n 12\nnot hex"), kind="zTXt")
    _unreadable(read_evidence(bad), "Raw profile type exif")
    # older ImageMagick wrote XMP as an APP1 profile, with or without JPEG's XMP header (a review)
    for head in (b"", b"http://ns.adobe.com/xap/1.0/\x00"):
        xmp = (head + _dst_xmp("trainedAlgorithmicMedia").encode()).hex()
        profile = f"\nAPP1\n{len(xmp) // 2:8d}\n" + "\n".join(xmp[i:i + 72] for i in range(0, len(xmp), 72))
        items = read_evidence(_png_text(("Raw profile type APP1", profile), kind="zTXt"))
        assert [(it["kind"], it["says"]) for it in items] == [("xmp", "generated")], items


def test_png_xmp_over_the_text_limit_is_read_up_to_xmps():
    packet = _dst_xmp("trainedAlgorithmicMedia")
    packet = packet.replace("<?xpacket end", " " * (provenance.TEXT_LIMIT + (300 << 10)) + "<?xpacket end")
    assert provenance.TEXT_LIMIT < len(packet) < provenance.XMP_LIMIT
    for kind in ("iTXt", "iTXt-z"):
        items = read_evidence(_png_text(("XML:com.adobe.xmp", packet), kind=kind))
        assert [it["says"] for it in items] == ["generated"], items


def test_a_png_of_exactly_the_chunks_that_are_read_says_nothing_more():
    # IHDR, the fillers and IDAT: every chunk before IEND read (a review: "more than 4096" was said)
    filler = _chunk(b"tEXt", b"Title\x00x")
    assert read_evidence(_png_with_chunks(*[filler] * (provenance.MAX_SEGMENTS - 2))) == []
    it = _only(read_evidence(_png_with_chunks(*[filler] * (provenance.MAX_SEGMENTS - 1))))
    assert it["detail"] == f"metadata reading stopped: more than {provenance.MAX_SEGMENTS} PNG chunks"


def test_a_png_of_more_chunks_than_are_read_says_so():
    filler = _chunk(b"tEXt", b"Title\x00x")
    data = _png_with_chunks(*[filler] * (provenance.MAX_SEGMENTS + 10),
                            _chunk(b"tEXt", b"parameters\x00" + A1111.encode()))
    it = _only(read_evidence(data))
    assert it["says"] is None and it["detail"] == (
        f"metadata reading stopped: more than {provenance.MAX_SEGMENTS} PNG chunks")
